use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::decision::Status;
use crate::error::{Blocked, Error};

/// Why the middleware refused a request: the `403` JSON body.
///
/// `{"error": "tollgate_blocked", "decision_id", "status", "gate", "reason_codes",
/// "explanation", "dossier_url", "review_id", "retry_after_ms"}` — the fields of the
/// Decionis FastAPI middleware's body plus the gate, review and retry hints. When the
/// decision point could not be used at all (a bad key, an invalid request) `error`
/// is `tollgate_error`, and the request is refused all the same.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Rejection {
    /// `tollgate_blocked` or `tollgate_error`.
    pub error: &'static str,
    /// The decision id, if there was a verdict.
    pub decision_id: Option<String>,
    /// BLOCK, ESCALATE, REVIEW_REQUIRED.
    pub status: Status,
    /// The gate (`unavailable` when the client failed closed).
    pub gate: &'static str,
    /// Reason codes.
    pub reason_codes: Vec<String>,
    /// For a person.
    pub explanation: String,
    /// The dossier URL.
    pub dossier_url: Option<String>,
    /// ESCALATE / REVIEW_REQUIRED: the review id.
    pub review_id: Option<String>,
    /// Throttle blocks: when a retry can succeed.
    pub retry_after_ms: Option<u64>,
}

impl Rejection {
    /// The rejection for a decision point's error.
    pub fn from_error(e: &Error) -> Rejection {
        match e.blocked() {
            Some(b) => Rejection::from_blocked(b),
            None => Rejection {
                error: "tollgate_error",
                decision_id: None,
                status: Status::Block,
                gate: "unavailable",
                reason_codes: vec!["TOLLGATE_ERROR".to_owned()],
                explanation: format!("{e}; failing closed"),
                dossier_url: None,
                review_id: None,
                retry_after_ms: None,
            },
        }
    }

    /// The rejection for a block.
    pub fn from_blocked(b: &Blocked) -> Rejection {
        Rejection {
            error: "tollgate_blocked",
            decision_id: b.decision_id.clone(),
            status: b.status,
            gate: b.gate.as_str(),
            reason_codes: b.reason_codes.clone(),
            explanation: b.explanation.clone(),
            dossier_url: b.dossier_url.clone(),
            review_id: b.review_id.clone(),
            retry_after_ms: b
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The `403` response (with `Retry-After` for a throttle refusal).
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        let text = serde_json::to_string(&self)
            .unwrap_or_else(|_| r#"{"error":"tollgate_blocked","status":"BLOCK"}"#.to_owned());
        let mut response = Response::new(B::from(text));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // A throttle refusal says when to come back, in whole seconds, rounded up.
        if let Some(ms) = self.retry_after_ms
            && let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
