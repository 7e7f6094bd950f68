#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
mod client;
mod decision;
mod error;
pub mod middleware;
mod outcome;
mod point;
mod request;
pub mod testing;
#[cfg(feature = "otel")]
mod trace;
pub mod verify;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "embedded")]
pub mod embedded;

pub use client::{Client, ClientBuilder, FailMode, ReviewState};
pub use decision::{
    BatchInfo, Decision, Gate, LedgerRef, PolicyRef, Shadow, SignatureInfo, Status,
};
pub use error::{Blocked, Error, Failure};
pub use middleware::DecisionLayer;
pub use outcome::{OutcomeReceipt, OutcomeReport, SignedOutcome};
pub use point::{DecisionPoint, RetryPolicy};
pub use request::{DecisionRequest, Mode};
pub use tollgate_ledger::{Jwks, SigningKey, Verified, VerifyingKey};
