//! The decision request: what an agent proposes to do, built fluently.
//!
//! The wire type is defined once, in `tollgate-api`, and shared with the server that
//! decodes it; this SDK re-exports it with its builder.

pub use tollgate_api::{DecisionRequest, Mode};
