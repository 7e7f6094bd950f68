//! How a service [`Error`] is answered over HTTP. Bodies are `{"error", "message",
//! "request_id", ...}`; 5xx bodies are generic and the details go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::service::Error;

/// The HTTP face of a service error.
pub trait HttpError {
    /// The HTTP status.
    fn status(&self) -> StatusCode;
    /// The stable error code.
    fn code(&self) -> &'static str;
    /// The JSON body, with the current request's id.
    fn body(&self) -> Value;
    /// Seconds for `Retry-After`, when the client should retry.
    fn retry_after(&self) -> Option<u64>;
}

impl HttpError for Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Validation(_) | Error::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::RateLimited { .. } | Error::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::LedgerUnavailable
            | Error::ThrottleUnavailable
            | Error::Overloaded
            | Error::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PendingIntegration => StatusCode::ACCEPTED,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::BadRequest(_) => "bad_request",
            Error::Validation(_) => "validation_error",
            Error::Unprocessable { code, .. } => code,
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::LedgerUnavailable => "ledger_unavailable",
            Error::ThrottleUnavailable => "throttle_unavailable",
            Error::Overloaded => "overloaded",
            Error::TimedOut => "timeout",
            Error::Internal(_) => "internal_error",
            Error::Conflict(_) => "conflict",
            Error::PendingIntegration => "pending_integration",
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "error": self.code(),
            "message": self.to_string(),
            "request_id": crate::request_id::current(),
        });
        match self {
            Error::Validation(errors) => {
                body["detail"] = serde_json::to_value(errors).unwrap_or(Value::Null);
            }
            Error::QuotaExceeded { resets_at, limit } => {
                body["message"] = Value::String(format!(
                    "monthly decision quota of {limit} exhausted; it resets at {resets_at}"
                ));
                body["resets_at"] = Value::String(resets_at.clone());
            }
            Error::RateLimited { retry_after_s } => {
                body["retry_after_s"] = json!(retry_after_s);
            }
            Error::PendingIntegration => {
                body["status"] = json!("pending integration");
                body["ledger"] = json!({"seq": null, "entry_hash": null, "status": "pending"});
            }
            _ => {}
        }
        body
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_s } => Some(*retry_after_s),
            Error::LedgerUnavailable
            | Error::ThrottleUnavailable
            | Error::Overloaded
            | Error::TimedOut
            | Error::PendingIntegration => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self {
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

impl crate::service::Written {
    /// 201 for a creation, 200 for a change.
    pub fn status(self) -> StatusCode {
        match self {
            crate::service::Written::Created => StatusCode::CREATED,
            crate::service::Written::Changed => StatusCode::OK,
        }
    }
}
