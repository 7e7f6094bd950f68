//! tollgate-client (placeholder; built in a later issue).
