//! `tollgate-api`: the native API's wire types, defined once.
//!
//! - [`DecisionRequest`]: the body of `POST /v1/decisions` as the server decodes it and
//!   the Rust SDK builds it.
//! - [`Status`], [`Gate`] and [`Mode`]: the vocabulary of verdicts, used by the engine
//!   (`tollgate-core`), the server and the SDK alike.
//!
//! The crate depends on serde only, so the pure engine and the light SDK can use it.
//! The `utoipa` feature adds `utoipa::ToSchema` for the server's OpenAPI document.
//!
//! ```
//! use tollgate_api::{DecisionRequest, Mode};
//! use serde_json::json;
//!
//! let request = DecisionRequest::new("TRANSFER_FUNDS")
//!     .actor(json!({"id": "treasury-agent", "type": "AI_AGENT"}))
//!     .action_field("amount", 25_000)
//!     .signal("risk_score", 0.3)
//!     .mode(Mode::Shadow);
//! let wire = serde_json::to_value(&request).unwrap();
//! assert_eq!(wire["action"]["type"], "TRANSFER_FUNDS");
//! assert_eq!(wire["mode"], "shadow");
//! ```
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod request;
mod verdict;

pub use request::{DecisionRequest, Mode};
pub use verdict::{Gate, Status};
