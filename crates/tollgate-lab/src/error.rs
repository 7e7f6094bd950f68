//! Errors of the lab.

use tollgate_core::{InvalidRequest, PolicyError};

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A configuration value is out of its range.
    #[error("invalid configuration: `{field}` {problem}")]
    InvalidConfig {
        /// The field, e.g. `strategy.entry_z`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The policy did not compile (for `csc-default`, a bug in `tollgate-core`).
    #[error("the policy does not compile: {0}")]
    Policy(#[from] PolicyError),
    /// The engine rejected an order request as invalid (a bug in the signal mapping).
    #[error("the engine rejected the order at bar {bar} as invalid: {detail}")]
    InvalidOrder {
        /// The bar of the order.
        bar: u64,
        /// The engine's field errors.
        detail: String,
    },
    /// A characterisation probe could not talk to the server, or got an answer
    /// that is not a verdict.
    #[error("probe failed: {0}")]
    Probe(String),
}

impl LabError {
    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        LabError::InvalidConfig {
            field,
            problem: problem.into(),
        }
    }

    pub(crate) fn probe(detail: impl Into<String>) -> Self {
        LabError::Probe(detail.into())
    }

    pub(crate) fn invalid_order(bar: u64, e: &InvalidRequest) -> Self {
        LabError::InvalidOrder {
            bar,
            detail: e.to_string(),
        }
    }
}
