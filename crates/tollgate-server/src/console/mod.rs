//! The operator console at `/console` (docs/console.md): server-rendered pages over
//! the same [`DecisionService`](crate::service::DecisionService) methods and scopes as
//! the API — another adapter, never a second implementation of a rule.
//!
//! - `session.rs`: sign-in sessions (cookie, expiry, CSRF token).
//! - `assets.rs`: embedded, content-hashed static files (htmx, its SSE extension,
//!   `console.js`, `console.css`).
//! - `text.rs`: [`text::Text`], the one way agent-supplied strings reach a page.
//! - `views.rs`: the askama templates (`templates/console/`) and their view models.
//! - `pages.rs`: sign-in, overview, the decision stream (SSE), the decision page and
//!   its proof; `manage.rs`: reviews, policies, overrides, keys, ledger.
//!
//! Every response carries a strict CSP and the framing, referrer and sniffing headers
//! (`headers`); pages are `no-store`. GET never changes state; every POST checks the
//! session's CSRF token and, in the service, the key's scope.

pub mod assets;
mod manage;
mod pages;
pub mod session;
pub mod text;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::routes::error::HttpError as _;
use crate::service::Error;
use crate::state::AppState;

use session::Sessions;

/// What the console's handlers hold: the app (its service) and the sessions.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Whether cookies get `Secure` (the public URL is `https://`).
    secure: bool,
}

/// The console's router, to be nested at `/console`.
pub fn router<S>(app: AppState) -> Router<S> {
    let config = app.config();
    let state = ConsoleState {
        sessions: Arc::new(Sessions::new(
            config.console_session_idle_s,
            config.console_session_max_s,
        )),
        secure: config.base_url().starts_with("https://"),
        app,
    };
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/decisions", get(pages::decisions))
        .route("/decisions/stream", get(pages::stream))
        .route("/decisions/{id}", get(pages::decision))
        .route("/decisions/{id}/proof.json", get(pages::proof))
        .route("/decisions/{id}/dossier.json", get(pages::dossier))
        .route("/reviews", get(manage::reviews))
        .route("/reviews/{id}/{action}", post(manage::resolve_review))
        .route("/policies", get(manage::policies))
        .route("/policies/{id}", get(manage::policy))
        .route("/policies/{id}/activate", post(manage::activate))
        .route(
            "/overrides",
            get(manage::overrides).post(manage::set_override),
        )
        .route("/overrides/{id}/clear", post(manage::clear_override))
        .route("/keys", get(manage::keys).post(manage::create_key))
        .route("/keys/{id}/revoke", post(manage::revoke_key))
        .route("/ledger", get(manage::ledger))
        .route("/ledger/verify", post(manage::verify))
        .route("/assets/{file}", get(assets::serve))
        .fallback(|| async { PageError::Service(Error::NotFound) })
        .layer(axum::middleware::map_response(headers))
        .with_state(state)
}

/// The Content-Security-Policy of every console response: scripts and styles from
/// this origin only (no inline script or style, no eval), no framing, forms and
/// fetches to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
frame-ancestors 'none'";

async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a console request was not answered with its page.
#[derive(Debug)]
pub enum PageError {
    /// No live session: go to the sign-in page.
    SignIn,
    /// A POST without the session's CSRF token, or from another origin.
    Csrf,
    /// What the service answered.
    Service(Error),
}

impl PageError {
    /// An internal error with a note for the log.
    pub fn internal(why: impl std::fmt::Display) -> Self {
        PageError::Service(Error::internal(why))
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError::Service(e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::internal(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::SignIn => return Redirect::to("/console/login").into_response(),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "Refused",
                "The form did not carry this session's CSRF token, or came from another \
                 origin. Nothing was changed."
                    .to_owned(),
            ),
            PageError::Service(e) => {
                if let Error::Internal(why) = e {
                    tracing::error!(error = %why, "console request failed");
                }
                let message = match e {
                    Error::Validation(fields) => fields
                        .iter()
                        .map(|f| serde_json::to_string(f).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                let status = match e.status() {
                    // A console page is either there or not.
                    StatusCode::ACCEPTED => StatusCode::SERVICE_UNAVAILABLE,
                    s => s,
                };
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    s if s.is_server_error() => "Unavailable",
                    _ => "Not done",
                };
                (status, title, message)
            }
        };
        views::error_page(status, title, &message)
    }
}

/// Content negotiation for the API's decision links (`dossier_url`, DeAlgo's trace
/// link): a browser (an `Accept` that prefers `text/html` over JSON) is sent to the
/// console's decision page; API clients get JSON exactly as before.
pub async fn html_to_console(request: Request, next: Next) -> Response {
    if prefers_html(request.headers())
        && let Some(id) = request.uri().path().rsplit('/').next().filter(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    {
        return Redirect::to(&format!("/console/decisions/{id}")).into_response();
    }
    next.run(request).await
}

/// Whether an `Accept` header ranks `text/html` above `application/json` (and above
/// `*/*` alone: a bare `*/*` is an API client).
pub fn prefers_html(headers: &axum::http::HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut html = None::<f32>;
    let mut json = None::<f32>;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let media = it.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = it
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = Some(html.unwrap_or(0.0).max(q)),
            "application/json" => json = Some(json.unwrap_or(0.0).max(q)),
            _ => {}
        }
    }
    match (html, json) {
        (Some(h), Some(j)) => h > 0.0 && h > j,
        (Some(h), None) => h > 0.0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn browsers_prefer_html_and_api_clients_do_not() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,image/apng,*/*;q=0.8";
        assert!(prefers_html(&accept(chromium)));
        assert!(!prefers_html(&accept("application/json")));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&accept("application/json, text/html;q=0.5")));
        assert!(!prefers_html(&accept("text/html;q=0")));
        assert!(!prefers_html(&axum::http::HeaderMap::new()));
    }
}
