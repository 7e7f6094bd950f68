//! The decision service's error enum. How each variant is answered over HTTP
//! (status, stable code, body, `Retry-After`) is the routes' business:
//! `crate::routes::error`.

use tollgate_core::FieldError;

/// Why the service did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key, or a key that does not exist, is revoked or expired.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The key lacks the scope the endpoint needs.
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// A request that cannot be read (for example a malformed tile path).
    #[error("{0}")]
    BadRequest(String),
    /// Not found (also for another tenant's ids).
    #[error("not found")]
    NotFound,
    /// Field-level validation failure.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A request that is well-formed JSON but wrong in a way with its own code.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// The per-key request rate is exceeded.
    #[error("request rate limit exceeded")]
    RateLimited {
        /// Seconds until a request is accepted.
        retry_after_s: u64,
    },
    /// The tenant's monthly quota is used up.
    #[error("monthly decision quota exhausted")]
    QuotaExceeded {
        /// When the quota resets, RFC 3339.
        resets_at: String,
        /// The quota.
        limit: u64,
    },
    /// The ledger could not record the verdict: no verdict is given.
    #[error("the ledger is unavailable")]
    LedgerUnavailable,
    /// The shared throttle (Redis) could not check the buckets: no verdict is given.
    #[error("the throttle is unavailable")]
    ThrottleUnavailable,
    /// Too many requests in flight.
    #[error("the server is overloaded")]
    Overloaded,
    /// The request was not answered within the server's request timeout and its work
    /// was cancelled: no verdict is given. (A decision already handed to the ledger
    /// writer may still be recorded, as with `LedgerUnavailable`.)
    #[error("the request was not answered in time")]
    TimedOut,
    /// Something unexpected; logged, not shown.
    #[error("internal error")]
    Internal(String),
    /// A conflict (for example a duplicate id).
    #[error("{0}")]
    Conflict(String),
    /// The decision is recorded (durable) but the cluster's sequencer has not yet
    /// given it a place in the ledger: 202 with `Retry-After`, never 404.
    #[error("the decision is recorded but pending integration into the ledger; retry shortly")]
    PendingIntegration,
}

impl Error {
    /// An internal error with a message for the log.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// One field error as a 422.
    pub fn field(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Error::Validation(vec![FieldError {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
        }])
    }
}

impl From<tollgate_store::StoreError> for Error {
    fn from(e: tollgate_store::StoreError) -> Self {
        Error::internal(e)
    }
}
