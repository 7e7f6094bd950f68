//! `POST /v1/outcomes`: signed outcome reports.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::service::body::parse_object;
use crate::service::{Caller, Error};
use crate::state::AppState;

/// `POST /v1/outcomes`.
#[utoipa::path(
    post,
    path = "/v1/outcomes",
    operation_id = "outcomes",
    tag = "outcomes",
    request_body = crate::service::outcomes::OutcomeReport,
    responses(
        (status = 201, description = "Accepted: `{status, outcome_id, environment, accepted}`", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 422, description = "Rejected: the reason says which integrity rule failed", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let receipt = state.service().report_outcome(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(receipt)))
}
