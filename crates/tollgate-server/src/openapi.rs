//! The OpenAPI document of the native and admin API, served at `/openapi.json` and
//! checked in as `crates/tollgate-server/openapi.json` (a test fails when they differ;
//! regenerate with `UPDATE_OPENAPI=1 cargo test -p tollgate-server --test openapi`).
//!
//! It is generated with `utoipa` from what the handlers really use: the
//! `#[utoipa::path]` annotations on the handlers in `crate::routes`, and the request
//! and query types they decode (`tollgate_api::DecisionRequest`, the service's request
//! structs, the `IntoParams` query structs). Response bodies that the service still
//! builds as JSON by hand are described as generic objects, with their shape in the
//! descriptions; `Status`, `Gate` and `Mode` are the types the verdicts are built from.
//! A test drives every documented route through the router, and schema fuzzing
//! (Schemathesis) checks responses against this document.

use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, audit, grants, native, notify, outcomes, policies, reviews, tlog};

/// Said once for every operation, instead of a schema no handler uses.
const DESCRIPTION: &str = "Decision firewall for AI agents: native and admin API.\n\n\
A verdict (`POST /v1/decisions`, `GET /v1/decisions/{id}`) is a signed object: \
`decision_id`, `status` (see `Status`), `gate` (see `Gate`), `reason_codes`, `explanation`, \
`retry_after_ms?`, `policy?`, `policies?`, `adaptive_bias?`, `shadow?` (`would_be`, `gate`, \
`reason_codes`, `explanation`), `review?`, `review_id?`, `grant?`, `ledger` (`seq`, \
`entry_hash`, `status`: `sequenced` or `pending`), `dossier_url`, `latency_ms?`, \
`environment`, `decided_at`, `mode` (see `Mode`), `idempotency_replayed`, `request?` (read \
back) and `signature` (`algorithm`, `key_id`, `value`: Ed25519 over RFC 8785 of the body \
without `signature`).\n\n\
Every error body is `{error, message, request_id}`, with `detail` (field-level problems: \
`loc`, `msg`, `type`) on 422, `resets_at` on a quota 429 and `retry_after_s` on a rate-limit \
429.";

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Tollgate", description = DESCRIPTION),
    paths(
        native::decide, native::get_decision, native::dossier, outcomes::report, native::health,
        native::jwks, native::signing_keys, native::metrics,
        admin::put_tenant, admin::list_tenants, admin::create_key, admin::list_keys,
        admin::revoke_key, admin::add_source, admin::list_sources, admin::set_override,
        admin::list_overrides, admin::clear_override,
        audit::verify, audit::export, audit::consistency, audit::checkpoint, serve,
        tlog::checkpoint, tlog::tile,
        reviews::wait, reviews::list, reviews::get, reviews::approve, reviews::reject,
        grants::consume,
        policies::publish, policies::list, policies::show, policies::version, policies::diff,
        policies::activate, policies::set_default, policies::set_candidate,
        policies::clear_candidate, policies::candidate_report, policies::replay,
        policies::shadow,
        notify::add_sink, notify::list_sinks, notify::remove_sink, notify::test_sink,
        notify::list_deliveries, notify::redeliver,
    ),
    components(schemas(tollgate_api::Status, tollgate_api::Gate, tollgate_api::Mode)),
    modifiers(&Bearer),
)]
struct ApiDoc;

#[derive(Debug)]
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_json",
    tag = "public",
    responses(
        (status = 200, description = "This document", body = Object),
    )
)]
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}
