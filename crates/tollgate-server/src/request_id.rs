//! Request ids: echo `X-Request-ID` or `X-Correlation-ID`, or make one; put it on
//! every response and in every error body.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// `X-Request-ID`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Correlation-ID`.
pub static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// The current request's id, inside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// Middleware: assigns the id, runs the request in its scope, adds the header and
/// counts the response.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(acceptable)
        .or_else(|| {
            request
                .headers()
                .get(&X_CORRELATION_ID)
                .and_then(acceptable)
        })
        .unwrap_or_else(|| {
            crate::auth::random_id("req").unwrap_or_else(|_| "req_unknown".to_owned())
        });
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    tracing::info!(
        request_id = %id,
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    state
        .service()
        .metrics()
        .responses
        .get_or_create(&crate::metrics::StatusLabels {
            code: response.status().as_u16(),
        })
        .inc();
    response
}
