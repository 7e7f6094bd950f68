//! Console sessions: sign-in with an API key gives a random session id in an
//! `HttpOnly`, `SameSite=Strict` cookie; the server keeps the key's *hash* (never the
//! secret), a CSRF token, and the times that expire it. In memory, per node: in a
//! cluster a session works on the node that issued it (docs/console.md).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::{ConsoleState, PageError};
use crate::service::Caller;
use crate::service::auth::random_bytes;

/// The session cookie's name.
pub const COOKIE: &str = "tg_session";

#[derive(Debug)]
struct Session {
    key_hash: String,
    csrf: String,
    created_ms: i64,
    seen_ms: i64,
}

/// The sessions of this node.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle_ms: i64,
    max_ms: i64,
}

/// A signed-in console user: the key's caller, the session's CSRF token and id.
#[derive(Clone, Debug)]
pub struct User {
    /// The key, authenticated again on this request.
    pub caller: Caller,
    /// The session's CSRF token (a hidden field of every form).
    pub csrf: String,
    /// The session id.
    pub session: String,
}

impl Sessions {
    /// Sessions expiring after `idle_s` without use or `max_s` after sign-in.
    pub fn new(idle_s: u64, max_s: u64) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle_ms: ms(idle_s),
            max_ms: ms(max_s),
        }
    }

    /// Opens a session for a key hash; returns the session id.
    pub fn open(&self, key_hash: &str, now_ms: i64) -> Result<String, PageError> {
        let id = hex::encode(random_bytes::<32>()?);
        let csrf = hex::encode(random_bytes::<32>()?);
        let mut map = self.map.lock().map_err(|_| PageError::internal("lock"))?;
        // Expired sessions are dropped whenever one is opened: the map stays bounded
        // by the sessions alive.
        map.retain(|_, s| self.alive(s, now_ms));
        map.insert(
            id.clone(),
            Session {
                key_hash: key_hash.to_owned(),
                csrf,
                created_ms: now_ms,
                seen_ms: now_ms,
            },
        );
        Ok(id)
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    fn alive(&self, s: &Session, now_ms: i64) -> bool {
        now_ms.saturating_sub(s.seen_ms) < self.idle_ms
            && now_ms.saturating_sub(s.created_ms) < self.max_ms
    }

    /// The key hash and CSRF token of a live session (touching it).
    fn touch(&self, id: &str, now_ms: i64) -> Option<(String, String)> {
        let mut map = self.map.lock().ok()?;
        let s = map.get_mut(id)?;
        if !self.alive(s, now_ms) {
            map.remove(id);
            return None;
        }
        s.seen_ms = now_ms;
        Some((s.key_hash.clone(), s.csrf.clone()))
    }

    /// How long a new session's cookie lives (seconds).
    pub fn max_age_s(&self) -> i64 {
        self.max_ms / 1000
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a submitted CSRF token is the session's (constant time).
pub fn csrf_ok(user: &User, submitted: &str) -> bool {
    !submitted.is_empty() && bool::from(user.csrf.as_bytes().ct_eq(submitted.as_bytes()))
}

impl FromRequestParts<ConsoleState> for User {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, PageError> {
        let id = cookie(&parts.headers, COOKIE).ok_or(PageError::SignIn)?;
        let service = state.app.service();
        let (hash, csrf) = state
            .sessions
            .touch(id, service.now_ms())
            .ok_or(PageError::SignIn)?;
        // The key is checked on every request: a revoked or expired key ends the
        // session at once.
        let Ok(caller) = service.authenticate_hash(&hash) else {
            state.sessions.close(id);
            return Err(PageError::SignIn);
        };
        service.check_key_rate(&caller.key.id).await?;
        Ok(User {
            caller,
            csrf,
            session: id.to_owned(),
        })
    }
}
