//! tollgate-ledger (placeholder; built in a later issue).
