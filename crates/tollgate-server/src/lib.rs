//! tollgate-server (placeholder; built in a later issue).
