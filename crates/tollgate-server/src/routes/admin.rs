//! Tenants, keys, sources and overrides over HTTP: thin handlers over `service::admin`.
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use serde_json::Value;

use crate::service::admin::*;
use crate::service::body::{decode, parse_object};
use crate::service::{Caller, Error};
use crate::state::AppState;

/// `POST /v1/admin/tenants` (operator): creates or updates a tenant.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    operation_id = "put_tenant",
    tag = "admin",
    request_body = NewTenant,
    responses(
        (status = 200, body = Object),
        (status = 201, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn put_tenant(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().put_tenant(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `GET /v1/admin/tenants`: every tenant for the operator, else the caller's own.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    operation_id = "list_tenants",
    tag = "admin",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_tenants(&caller).await?))
}

/// `POST /v1/admin/keys`: creates a key; the secret is in this response only.
#[utoipa::path(
    post,
    path = "/v1/admin/keys",
    operation_id = "create_key",
    tag = "admin",
    request_body = NewKey,
    responses(
        (status = 201, description = "The secret is in this response only", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 409, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().create_key(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `GET /v1/admin/keys`: the tenant's keys (never secrets).
#[utoipa::path(
    get,
    path = "/v1/admin/keys",
    operation_id = "list_keys",
    tag = "admin",
    params(TenantQuery),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_keys(&caller, q).await?))
}

/// `POST /v1/admin/keys/{id}/revoke`: effective at once.
#[utoipa::path(
    post,
    path = "/v1/admin/keys/{id}/revoke",
    operation_id = "revoke_key",
    tag = "admin",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().revoke_key(&caller, id).await?))
}

/// `POST /v1/admin/sources`: registers a source's Ed25519 key for outcome reports.
#[utoipa::path(
    post,
    path = "/v1/admin/sources",
    operation_id = "add_source",
    tag = "admin",
    request_body = NewSource,
    responses(
        (status = 201, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn add_source(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().add_source(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `GET /v1/admin/sources`.
#[utoipa::path(
    get,
    path = "/v1/admin/sources",
    operation_id = "list_sources",
    tag = "admin",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_sources(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_sources(&caller).await?))
}

/// `POST /v1/admin/overrides`: engages a kill switch.
#[utoipa::path(
    post,
    path = "/v1/admin/overrides",
    operation_id = "set_override",
    tag = "admin",
    request_body = NewOverride,
    responses(
        (status = 201, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn set_override(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().set_override(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `DELETE /v1/admin/overrides/{id}`: clears a kill switch.
#[utoipa::path(
    delete,
    path = "/v1/admin/overrides/{id}",
    operation_id = "clear_override",
    tag = "admin",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn clear_override(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().clear_override(&caller, id).await?))
}

/// `GET /v1/admin/overrides`.
#[utoipa::path(
    get,
    path = "/v1/admin/overrides",
    operation_id = "list_overrides",
    tag = "admin",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_overrides(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_overrides(&caller).await?))
}
