//! Notification and SIEM sinks over HTTP: thin handlers over `service::notify`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::Value;

use crate::service::body::{decode, parse_object};
use crate::service::notify::{DeliveryQuery, NewSink};
use crate::service::{Caller, Error};
use crate::state::AppState;

/// The routes of this module, merged into `crate::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/notify/sinks", post(add_sink).get(list_sinks))
        .route("/v1/admin/notify/sinks/{id}", delete(remove_sink))
        .route("/v1/admin/notify/sinks/{id}/test", post(test_sink))
        .route("/v1/admin/notify/deliveries", get(list_deliveries))
        .route(
            "/v1/admin/notify/deliveries/{sink}/{seq}/redeliver",
            post(redeliver),
        )
}

/// `POST /v1/admin/notify/sinks`: adds a sink; a webhook's secret is shown once.
#[utoipa::path(
    post,
    path = "/v1/admin/notify/sinks",
    operation_id = "add_sink",
    tag = "admin",
    request_body = NewSink,
    responses(
        (status = 201, description = "A webhook's signing secret is in this response only", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn add_sink(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    let (written, body) = state.service().add_sink(&caller, body).await?;
    Ok((written.status(), Json(body)))
}

/// `GET /v1/admin/notify/sinks`: the tenant's sinks (never secrets), cursors and lag.
#[utoipa::path(
    get,
    path = "/v1/admin/notify/sinks",
    operation_id = "list_sinks",
    tag = "admin",
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_sinks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_sinks(&caller).await?))
}

/// `DELETE /v1/admin/notify/sinks/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/admin/notify/sinks/{id}",
    operation_id = "remove_sink",
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
pub async fn remove_sink(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().remove_sink(&caller, &id).await?))
}

/// `POST /v1/admin/notify/sinks/{id}/test`: one synthetic event, sent now.
#[utoipa::path(
    post,
    path = "/v1/admin/notify/sinks/{id}/test",
    operation_id = "test_sink",
    tag = "admin",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "`delivered`, and the sink's `status` or the `error`", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn test_sink(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().test_sink(&caller, &id).await?))
}

/// `GET /v1/admin/notify/deliveries?state=dead`: deliveries in retry or dead.
#[utoipa::path(
    get,
    path = "/v1/admin/notify/deliveries",
    operation_id = "list_deliveries",
    tag = "admin",
    params(DeliveryQuery),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().list_deliveries(&caller, q).await?))
}

/// `POST /v1/admin/notify/deliveries/{sink}/{seq}/redeliver`: a dead delivery back in
/// retry.
#[utoipa::path(
    post,
    path = "/v1/admin/notify/deliveries/{sink}/{seq}/redeliver",
    operation_id = "redeliver",
    tag = "admin",
    params(("sink" = String, Path), ("seq" = u64, Path)),
    responses(
        (status = 200, body = Object),
        (status = 400, description = "`seq` is not a ledger position", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 409, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((sink, seq)): Path<(String, u64)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().redeliver(&caller, &sink, seq).await?))
}
