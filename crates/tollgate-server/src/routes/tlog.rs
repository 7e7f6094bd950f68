//! `/tlog/{tenant}/…`: the tenant's log as C2SP `tlog-tiles` (checkpoint, hash tiles,
//! entry bundles), for `tollgate audit mirror` and any tlog-tiles client.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::routes::extract::MaybeCaller;
use crate::service::Error;
use crate::service::tlog::TlogAccess;
use crate::state::AppState;

/// The body of a tile or entry bundle, as the OpenAPI document describes it.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct TileBytes(pub Vec<u8>);

/// A full tile never changes: cached for a year.
const IMMUTABLE: &str = "max-age=31536000, immutable";
/// A partial tile is replaced by a wider one at the next checkpoint.
const SHORT: &str = "max-age=5";

/// `GET /tlog/{tenant}/checkpoint`: the latest signed checkpoint.
#[utoipa::path(
    get,
    path = "/tlog/{tenant}/checkpoint",
    operation_id = "tlog_checkpoint",
    tag = "audit",
    params(("tenant" = String, Path, description = "The tenant whose log")),
    responses(
        (status = 200, description = "C2SP signed-note checkpoint", body = String, content_type = "text/plain"),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []), ())
)]
pub async fn checkpoint(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(tenant): Path<String>,
) -> Result<Response, Error> {
    let access = state.service().tlog_access(caller.as_ref(), &tenant)?;
    let text = state.service().tlog_checkpoint(&tenant).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::CACHE_CONTROL, cache(access, "no-cache").as_str()),
        ],
        text,
    )
        .into_response())
}

/// `GET /tlog/{tenant}/tile/{path}`: a hash tile `L/N[.p/W]` or an entry bundle
/// `entries/N[.p/W]`.
#[utoipa::path(
    get,
    path = "/tlog/{tenant}/tile/{path}",
    operation_id = "tlog_tile",
    tag = "audit",
    params(
        ("tenant" = String, Path, description = "The tenant whose log"),
        ("path" = String, Path, description = "`<L>/<N>[.p/<W>]` (a hash tile) or `entries/<N>[.p/<W>]` (an entry bundle), N in three-digit groups all but the last prefixed `x` (C2SP tlog-tiles)"),
    ),
    responses(
        (status = 200, description = "Tile bytes: 32-byte hashes, or entries each as a big-endian uint16 length and the bytes", body = TileBytes, content_type = "application/octet-stream"),
        (status = 400, body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []), ())
)]
pub async fn tile(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path((tenant, path)): Path<(String, String)>,
) -> Result<Response, Error> {
    let access = state.service().tlog_access(caller.as_ref(), &tenant)?;
    let tile = state
        .service()
        .tlog_tile(&tenant, &format!("tile/{path}"))?;
    let policy = cache(access, if tile.full { IMMUTABLE } else { SHORT });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, policy.as_str()),
        ],
        tile.data,
    )
        .into_response())
}

fn cache(access: TlogAccess, rest: &str) -> String {
    match access {
        TlogAccess::Public => format!("public, {rest}"),
        TlogAccess::Private => format!("private, {rest}"),
    }
}
