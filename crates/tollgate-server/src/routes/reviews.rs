//! Human review: `/v1/reviews…` and `/v1/decisions/{id}/wait`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::service::body::{decode, parse_object};
use crate::service::reviews::Resolution;
use crate::service::{Caller, Error};
use crate::state::AppState;

/// `?status=pending`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only reviews with this status.
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET /v1/reviews`.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    operation_id = "list_reviews",
    tag = "reviews",
    params(ListQuery),
    responses(
        (status = 200, body = Object),
        (status = 400, description = "Malformed query", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, Error> {
    let reviews = state
        .service()
        .list_reviews(&caller, q.status.as_deref())
        .await?;
    Ok(Json(json!({ "reviews": reviews })))
}

/// `GET /v1/reviews/{id}`.
#[utoipa::path(
    get,
    path = "/v1/reviews/{id}",
    operation_id = "get_review",
    tag = "reviews",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(state.service().review(&caller, &id).await?))
}

fn resolution(state: &AppState, bytes: &Bytes) -> Result<Resolution, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Resolution::default());
    }
    decode(parse_object(bytes, state.config().max_json_depth)?)
}

/// `POST /v1/reviews/{id}/approve` with `{"comment": …}`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/approve",
    operation_id = "approve_review",
    tag = "reviews",
    params(("id" = String, Path)),
    request_body = Option<Resolution>,
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 409, description = "Already approved by this key, or no longer pending", body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let r = resolution(&state, &bytes)?;
    Ok(Json(
        state
            .service()
            .resolve_review(&caller, &id, r, true)
            .await?,
    ))
}

/// `POST /v1/reviews/{id}/reject` with `{"comment": …}`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/reject",
    operation_id = "reject_review",
    tag = "reviews",
    params(("id" = String, Path)),
    request_body = Option<Resolution>,
    responses(
        (status = 200, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
        (status = 409, body = Object),
        (status = 422, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let r = resolution(&state, &bytes)?;
    Ok(Json(
        state
            .service()
            .resolve_review(&caller, &id, r, false)
            .await?,
    ))
}

/// `?timeout=SECONDS`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to wait at most (default 30, at most 60).
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `GET /v1/decisions/{id}/wait?timeout=30`: long-polls until the decision's review is
/// resolved (or the timeout passes), then answers its state.
#[utoipa::path(
    get,
    path = "/v1/decisions/{id}/wait",
    operation_id = "wait_decision",
    tag = "reviews",
    params(("id" = String, Path), WaitQuery),
    responses(
        (status = 200, description = "The decision's review once resolved, or as it is at the timeout", body = Object),
        (status = 400, description = "Malformed query", body = Object),
        (status = 401, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        state
            .service()
            .wait_for_review(&caller, &id, q.timeout)
            .await?,
    ))
}
