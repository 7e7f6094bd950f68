//! The HTTP edge of the native API: thin handlers that parse the wire shape, call the
//! decision service and serialise its answer. The SDK families' adapters are in
//! `crate::compat`; the router that mounts both is `crate::router`.

pub mod admin;
pub mod audit;
pub mod error;
pub mod extract;
pub mod grants;
pub mod native;
pub mod notify;
pub mod outcomes;
pub mod policies;
pub mod reviews;
pub mod tlog;
