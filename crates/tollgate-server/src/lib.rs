//! `tollgate-server`: the HTTP service. Adapters translate wire shapes to the neutral
//! request and back; the engine in `tollgate-core` decides; the store records.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admission;
pub mod clock;
pub mod compat;
pub mod config;
pub mod console;
mod jwt;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod otel;
pub mod request_id;
pub mod routes;
mod run;
pub mod service;
pub mod state;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower::ServiceBuilder;

pub use config::Config;
pub use run::{App, BOOTSTRAP_FILE, KEY_FILE, KEY_NAME, serve, shutdown_signal};
/// The service's error, as the HTTP edge answers it (`routes::error`).
pub use service::Error as ApiError;
pub use service::auth;
pub use state::AppState;

use routes::{
    admin, audit, grants, native, notify as notify_routes, outcomes, policies, reviews, tlog,
};

/// The whole HTTP API on one router.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let routes = Router::new()
        .route("/v1/decisions", post(native::decide))
        // A browser following a decision link gets the console's page (HTML).
        .route(
            "/v1/decisions/{id}",
            get(native::get_decision).route_layer(from_fn(console::html_to_console)),
        )
        .route(
            "/v1/dossiers/{id}",
            get(native::dossier).route_layer(from_fn(console::html_to_console)),
        )
        .route("/v1/decisions/{id}/wait", get(reviews::wait))
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::get))
        .route("/v1/reviews/{id}/approve", post(reviews::approve))
        .route("/v1/reviews/{id}/reject", post(reviews::reject))
        .route("/v1/grants/consume", post(grants::consume))
        .route("/v1/outcomes", post(outcomes::report))
        .route("/v1/health", get(native::health))
        .route("/v1/decisions/evaluate", post(compat::decionis::evaluate))
        .route(
            "/v1/policies/validate",
            post(compat::decionis::validate_policy),
        )
        .route("/v1/decide", post(compat::dealgo::decide))
        .route("/api/csc/check", post(compat::dealgo::check))
        .route("/csc/live-stimulus", post(compat::dealgo::live_stimulus))
        .route("/.well-known/jwks.json", get(native::jwks))
        .route("/v1/signing-keys", get(native::signing_keys))
        .route("/metrics", get(native::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route(
            "/v1/admin/tenants",
            post(admin::put_tenant).get(admin::list_tenants),
        )
        .route(
            "/v1/admin/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route("/v1/admin/keys/{id}/revoke", post(admin::revoke_key))
        .route(
            "/v1/admin/sources",
            post(admin::add_source).get(admin::list_sources),
        )
        .route(
            "/v1/admin/overrides",
            post(admin::set_override).get(admin::list_overrides),
        )
        .route("/v1/admin/overrides/{id}", delete(admin::clear_override))
        .route(
            "/v1/admin/policies",
            post(policies::publish).get(policies::list),
        )
        .route("/v1/admin/policies/{id}", get(policies::show))
        .route(
            "/v1/admin/policies/{id}/versions/{version}",
            get(policies::version),
        )
        .route("/v1/admin/policies/{id}/diff", get(policies::diff))
        .route("/v1/admin/policies/{id}/activate", post(policies::activate))
        .route(
            "/v1/admin/policies/{id}/default",
            post(policies::set_default),
        )
        .route(
            "/v1/admin/policies/{id}/candidate",
            post(policies::set_candidate).delete(policies::clear_candidate),
        )
        .route(
            "/v1/admin/policies/{id}/candidate/report",
            get(policies::candidate_report),
        )
        .route("/v1/admin/policies/{id}/replay", post(policies::replay))
        .route("/v1/admin/shadow", post(policies::shadow))
        .merge(notify_routes::routes())
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/tlog/{tenant}/checkpoint", get(tlog::checkpoint))
        .route("/tlog/{tenant}/tile/{*path}", get(tlog::tile))
        .nest("/console", console::router(state.clone()))
        .fallback(|| async { ApiError::NotFound });
    // The trace layer exists only when telemetry is on: off, it costs nothing.
    let routes = if otel::enabled() {
        routes.layer(from_fn(otel::propagate))
    } else {
        routes
    };
    routes
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_id::layer,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::TimedOut
                    } else {
                        ApiError::internal(e)
                    }
                }))
                // Longer than the longest review long-poll (60 s), which would
                // otherwise be cut off into a 503.
                .timeout(Duration::from_secs(REQUEST_TIMEOUT_S)),
        )
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(admission::Admission::new(
                config.max_concurrency,
                config.max_connections,
                Duration::from_millis(config.admission_wait_ms),
            )),
            admission::layer,
        ))
        .with_state(state)
}

/// Longest a request may take before it is answered 503: the longest review wait plus
/// a margin. (The idle timeout of a connection, 90 s by default, is longer still.)
pub const REQUEST_TIMEOUT_S: u64 = service::reviews::MAX_WAIT_S + 15;

/// Turns framework rejections (413 body too large, 405, bad paths) that are not
/// JSON yet into the JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // The console's error pages are HTML and stay so.
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send JSON"),
        s if s.is_server_error() => ("internal_error", "internal error"),
        _ => ("bad_request", "the request could not be read"),
    };
    let body = serde_json::json!({
        "error": code,
        "message": message,
        "request_id": request_id::current(),
    });
    (status, axum::Json(body)).into_response()
}
