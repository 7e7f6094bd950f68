//! The policy lifecycle over HTTP: thin handlers over `service::policies`.
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use serde_json::Value;

use crate::service::body::{decode, parse_object};
use crate::service::policies::*;
use crate::service::{Caller, Error};
use crate::state::AppState;

/// `POST /v1/admin/policies`: publishes a new immutable version, unless the newest
/// version has the same text (then nothing is published: idempotent by content hash).
#[utoipa::path(
    post,
    path = "/v1/admin/policies",
    operation_id = "publish_policy",
    tag = "policies",
    request_body = Publish,
    description = "Publishes `{text, format?, activate?, environment?}` as a new immutable version (`policy_published`); the newest version's text again publishes nothing (200).",
    responses(
        (status = 201, body = Object),
        (status = 200, description = "Unchanged text: nothing published", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 409, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().publish(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `GET /v1/admin/policies`: every policy with its versions and what is active.
#[utoipa::path(
    get,
    path = "/v1/admin/policies",
    operation_id = "list_policies",
    tag = "policies",
    params(TenantQuery),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list(&caller, q).await?))
}

/// `GET /v1/admin/policies/{id}`: one policy's versions and activations.
#[utoipa::path(
    get,
    path = "/v1/admin/policies/{id}",
    operation_id = "show_policy",
    tag = "policies",
    params(("id" = String, Path), TenantQuery),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().show(&caller, id, q).await?))
}

/// `GET /v1/admin/policies/{id}/versions/{version}`: a version's text.
#[utoipa::path(
    get,
    path = "/v1/admin/policies/{id}/versions/{version}",
    operation_id = "policy_version",
    tag = "policies",
    params(("id" = String, Path), ("version" = u64, Path), TenantQuery),
    responses(
        (status = 200, body = Object),
        (status = 400, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, u64)>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        state.service().version(&caller, (id, version), q).await?,
    ))
}

/// `GET /v1/admin/policies/{id}/diff?from=A&to=B`: rules added, removed and changed,
/// and a unified diff of the texts.
#[utoipa::path(
    get,
    path = "/v1/admin/policies/{id}/diff",
    operation_id = "diff_policy",
    tag = "policies",
    params(("id" = String, Path), DiffQuery),
    responses(
        (status = 200, body = Object),
        (status = 400, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().diff(&caller, id, q).await?))
}

/// `POST /v1/admin/policies/{id}/activate`: makes a version active (an older one
/// = a roll back).
#[utoipa::path(
    post,
    path = "/v1/admin/policies/{id}/activate",
    operation_id = "activate_policy",
    tag = "policies",
    params(("id" = String, Path)),
    request_body = VersionRef,
    description = "`{version, environment?}`: makes the version active (`policy_activated`); an older version is a roll back.",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    Ok(Json(state.service().activate(&caller, id, body).await?))
}

/// `POST /v1/admin/policies/{id}/default`: the policy requests without `policy_refs`
/// use in an environment.
#[utoipa::path(
    post,
    path = "/v1/admin/policies/{id}/default",
    operation_id = "default_policy",
    tag = "policies",
    params(("id" = String, Path), TenantQuery),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn set_default(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().set_default(&caller, id, q).await?))
}

/// `POST /v1/admin/policies/{id}/candidate`: runs a version beside the active one.
#[utoipa::path(
    post,
    path = "/v1/admin/policies/{id}/candidate",
    operation_id = "set_candidate",
    tag = "policies",
    params(("id" = String, Path)),
    request_body = VersionRef,
    description = "`{version, environment?}`: evaluates the version beside the active one on live traffic; its verdicts are recorded, never enforced.",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn set_candidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    Ok(Json(
        state.service().set_candidate(&caller, id, body).await?,
    ))
}

/// `DELETE /v1/admin/policies/{id}/candidate`: stops the candidate.
#[utoipa::path(
    delete,
    path = "/v1/admin/policies/{id}/candidate",
    operation_id = "clear_candidate",
    tag = "policies",
    params(("id" = String, Path), TenantQuery),
    responses(
        (status = 204, description = "Stopped"),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn clear_candidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<StatusCode, Error> {
    state.service().clear_candidate(&caller, id, q).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/admin/policies/{id}/candidate/report`: how many of the decisions taken
/// since the candidate started would it have changed, and which.
#[utoipa::path(
    get,
    path = "/v1/admin/policies/{id}/candidate/report",
    operation_id = "candidate_report",
    tag = "policies",
    params(("id" = String, Path), ReportQuery),
    responses(
        (status = 200, description = "How many verdicts the candidate would have changed, and which", body = Object),
        (status = 400, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn candidate_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        state.service().candidate_report(&caller, id, q).await?,
    ))
}

/// `POST /v1/admin/policies/{id}/replay`: evaluates a version against the tenant's
/// recorded decisions that used the policy, beside the versions they were decided
/// with, under the same replay conditions (no overrides, approvals or outcome bias;
/// buckets and history rebuilt from the window itself), and reports the flips. Reads
/// the ledger only; touches no live state.
#[utoipa::path(
    post,
    path = "/v1/admin/policies/{id}/replay",
    operation_id = "replay_policy",
    tag = "policies",
    params(("id" = String, Path)),
    request_body = Replay,
    description = "`{version, since?, until?, limit?}`: evaluates the version over recorded decisions and reports the flips; touches no live state.",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    Ok(Json(state.service().replay(&caller, id, body).await?))
}

/// `POST /v1/admin/shadow`: the tenant-wide shadow switch (every gate runs, the
/// would-be verdict is recorded, nothing is blocked).
#[utoipa::path(
    post,
    path = "/v1/admin/shadow",
    operation_id = "tenant_shadow",
    tag = "policies",
    request_body = ShadowSwitch,
    description = "`{enabled}`: the tenant-wide shadow switch (recorded in the ledger).",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn shadow(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    Ok(Json(state.service().shadow(&caller, body).await?))
}
