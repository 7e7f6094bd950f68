//! tollgate-store (placeholder; built in a later issue).
