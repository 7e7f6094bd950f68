//! The one error type of the HTTP edge. Bodies are `{"error", "message",
//! "request_id", ...}`; 5xx bodies are generic and the details go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_core::FieldError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, or a key that does not exist, is revoked or expired.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The key lacks the scope the endpoint needs.
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
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

impl ApiError {
    /// An internal error with a message for the log.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    /// One field error as a 422.
    pub fn field(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        ApiError::Validation(vec![FieldError {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
        }])
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Validation(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::LedgerUnavailable
            | ApiError::ThrottleUnavailable
            | ApiError::Overloaded
            | ApiError::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PendingIntegration => StatusCode::ACCEPTED,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Validation(_) => "validation_error",
            ApiError::Unprocessable { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::LedgerUnavailable => "ledger_unavailable",
            ApiError::ThrottleUnavailable => "throttle_unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::TimedOut => "timeout",
            ApiError::Internal(_) => "internal_error",
            ApiError::Conflict(_) => "conflict",
            ApiError::PendingIntegration => "pending_integration",
        }
    }

    /// The JSON body, with the current request's id.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "error": self.code(),
            "message": self.to_string(),
            "request_id": crate::request_id::current(),
        });
        match self {
            ApiError::Validation(errors) => {
                body["detail"] = serde_json::to_value(errors).unwrap_or(Value::Null);
            }
            ApiError::QuotaExceeded { resets_at, limit } => {
                body["message"] = Value::String(format!(
                    "monthly decision quota of {limit} exhausted; it resets at {resets_at}"
                ));
                body["resets_at"] = Value::String(resets_at.clone());
            }
            ApiError::RateLimited { retry_after_s } => {
                body["retry_after_s"] = json!(retry_after_s);
            }
            ApiError::PendingIntegration => {
                body["status"] = json!("pending integration");
                body["ledger"] = json!({"seq": null, "entry_hash": null, "status": "pending"});
            }
            _ => {}
        }
        body
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_s } => Some(*retry_after_s),
            ApiError::LedgerUnavailable
            | ApiError::ThrottleUnavailable
            | ApiError::Overloaded
            | ApiError::TimedOut
            | ApiError::PendingIntegration => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let status = self.status();
        let retry = self.retry_after();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(s) = retry
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<tollgate_store::StoreError> for ApiError {
    fn from(e: tollgate_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}
