//! `POST /v1/grants/consume`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::Value;

use crate::service::body::{decode, parse_object};
use crate::service::{Caller, Error};
use crate::state::AppState;

/// `POST /v1/grants/consume`: verifies a grant and marks it used (single use).
#[utoipa::path(
    post,
    path = "/v1/grants/consume",
    operation_id = "consume_grant",
    tag = "grants",
    request_body = crate::service::grants::ConsumeGrant,
    responses(
        (status = 200, description = "Valid, now used", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 409, description = "Already used", body = Object),
        (status = 422, description = "Invalid, expired, or another action", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn consume(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Json<Value>, Error> {
    let req = decode(parse_object(&bytes, state.config().max_json_depth)?)?;
    Ok(Json(state.service().consume_grant(&caller, req)?))
}
