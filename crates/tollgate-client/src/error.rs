//! Errors. A block is an error of its own type, [`Blocked`], whether the server
//! decided it or the client failed closed.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::decision::{Decision, Gate, Status};

/// Why no verdict was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made or broke.
    Transport(String),
    /// The server did not answer within the client's timeout.
    Timeout,
    /// The server answered 5xx, or 409 (a request with the same idempotency key is
    /// still being decided), after the client's retries.
    Server {
        /// HTTP status.
        status: u16,
        /// The body's `message`, if any.
        message: String,
    },
    /// An HTTP status the client does not expect (1xx, 3xx, an unknown 4xx).
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
    },
    /// A 200 whose body is not a verdict.
    InvalidResponse(String),
    /// A verdict whose signature does not verify against the pinned JWKS.
    BadSignature(String),
    /// The embedded ledger could not record the verdict, so there is none.
    Ledger(String),
}

impl Failure {
    /// A stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Transport(_) => "TOLLGATE_UNREACHABLE",
            Failure::Timeout => "TOLLGATE_TIMEOUT",
            Failure::Server { .. } => "TOLLGATE_SERVER_ERROR",
            Failure::UnexpectedStatus { .. } => "TOLLGATE_UNEXPECTED_STATUS",
            Failure::InvalidResponse(_) => "TOLLGATE_INVALID_RESPONSE",
            Failure::BadSignature(_) => "TOLLGATE_BAD_SIGNATURE",
            Failure::Ledger(_) => "TOLLGATE_LEDGER_UNAVAILABLE",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Transport(e) => write!(f, "tollgate is unreachable: {e}"),
            Failure::Timeout => f.write_str("tollgate did not answer in time"),
            Failure::Server { status, message } => {
                write!(f, "tollgate answered {status}: {message}")
            }
            Failure::UnexpectedStatus { status } => {
                write!(f, "tollgate answered an unexpected status {status}")
            }
            Failure::InvalidResponse(e) => write!(f, "tollgate's answer is not a verdict: {e}"),
            Failure::BadSignature(e) => write!(f, "the verdict's signature does not verify: {e}"),
            Failure::Ledger(e) => write!(f, "the ledger cannot record the verdict: {e}"),
        }
    }
}

/// An action that must not run: everything the caller needs to log, show or route.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Blocked {
    /// BLOCK, ESCALATE, REVIEW_REQUIRED (or UNKNOWN for a status this SDK does not know).
    pub status: Status,
    /// The gate; [`Gate::Unavailable`] when the client failed closed.
    pub gate: Gate,
    /// Reason codes.
    pub reason_codes: Vec<String>,
    /// For a person.
    pub explanation: String,
    /// The decision id (none when the client failed closed).
    pub decision_id: Option<String>,
    /// The dossier URL (record and proof).
    pub dossier_url: Option<String>,
    /// ESCALATE / REVIEW_REQUIRED: the review id.
    pub review_id: Option<String>,
    /// Throttle blocks: when a retry can succeed.
    pub retry_after: Option<Duration>,
    /// The verdict, when the server gave one.
    pub decision: Option<Box<Decision>>,
    /// Why there is no verdict, when the client failed closed.
    pub failure: Option<Failure>,
}

impl Blocked {
    /// A block decided by the server.
    pub fn from_decision(d: Decision) -> Blocked {
        Blocked {
            status: d.status,
            gate: d.gate,
            reason_codes: d.reason_codes.clone(),
            explanation: d.explanation.clone(),
            decision_id: Some(d.decision_id.clone()).filter(|s| !s.is_empty()),
            dossier_url: d.dossier_url.clone(),
            review_id: d.review_id.clone(),
            retry_after: d.retry_after(),
            decision: Some(Box::new(d)),
            failure: None,
        }
    }

    /// A block the client decided because it got no verdict (fail closed).
    pub fn fail_closed(failure: Failure) -> Blocked {
        Blocked {
            status: Status::Block,
            gate: Gate::Unavailable,
            reason_codes: vec![failure.code().to_owned()],
            explanation: format!("{failure}; failing closed"),
            decision_id: None,
            dossier_url: None,
            review_id: None,
            retry_after: None,
            decision: None,
            failure: Some(failure),
        }
    }

    /// Whether the throttle decided (transient).
    pub fn is_throttled(&self) -> bool {
        self.gate == Gate::Throttle
    }

    /// Whether the client failed closed (no verdict).
    pub fn is_fail_closed(&self) -> bool {
        self.failure.is_some()
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at the {} gate",
            self.status.as_str(),
            self.gate.as_str()
        )?;
        if !self.reason_codes.is_empty() {
            write!(f, " [{}]", self.reason_codes.join(", "))?;
        }
        if !self.explanation.is_empty() {
            write!(f, ": {}", self.explanation)?;
        }
        Ok(())
    }
}

impl std::error::Error for Blocked {}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The action must not run (a verdict, or the client failed closed).
    #[error("blocked: {0}")]
    Blocked(Box<Blocked>),
    /// The API key is missing, unknown, revoked or expired (401).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// The key lacks a scope (403).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The server's message.
        message: String,
    },
    /// No such decision or dossier (or another tenant's) (404).
    #[error("not found")]
    NotFound,
    /// The decision is recorded (durable) but a cluster's sequencer has not yet given
    /// it a place in the ledger (202 "pending integration"); ask again shortly.
    #[error("the decision is pending integration into the ledger")]
    PendingIntegration {
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// A conflict other than a decision in progress: a grant used before (409).
    #[error("conflict: {message}")]
    Conflict {
        /// The server's message.
        message: String,
    },
    /// The request is invalid (422); `detail` is the server's field-level list.
    #[error("invalid request: {message}")]
    Invalid {
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
        /// `detail` of the body, when given.
        detail: Value,
    },
    /// Rate limit or monthly quota (429), after the client's retries.
    #[error("rate limited: {message}")]
    RateLimited {
        /// The server's message.
        message: String,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// A call other than a decision got no answer.
    #[error("{0}")]
    Unavailable(Failure),
    /// The client is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
    /// An offline check failed.
    #[error("verification: {0}")]
    Verify(#[from] crate::verify::VerifyError),
}

impl Error {
    /// The block, if this is one.
    pub fn blocked(&self) -> Option<&Blocked> {
        match self {
            Error::Blocked(b) => Some(b),
            _ => None,
        }
    }

    /// Whether this is a throttle block.
    pub fn is_throttled(&self) -> bool {
        self.blocked().is_some_and(Blocked::is_throttled)
    }
}

impl From<Blocked> for Error {
    fn from(b: Blocked) -> Self {
        Error::Blocked(Box::new(b))
    }
}
