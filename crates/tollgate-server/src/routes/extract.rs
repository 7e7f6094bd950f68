//! Request extractors: the authenticated [`Caller`] from the bearer key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::service::{Caller, Error};
use crate::state::AppState;

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let secret = bearer(parts).ok_or(Error::Unauthorized)?;
        let caller = state.service().authenticate(secret)?;
        state.service().check_key_rate(&caller.key.id).await?;
        Ok(caller)
    }
}

/// The caller when the request carries a bearer key (authenticated as [`Caller`] is),
/// `None` when it carries none: for endpoints that some tenants open to everyone.
#[derive(Clone, Debug)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if bearer(parts).is_none() {
            return Ok(MaybeCaller(None));
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(|c| MaybeCaller(Some(c)))
    }
}
