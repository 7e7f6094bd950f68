//! The one path to decisions, in both modes: Tollgate's own HTTP API. Remote mode
//! sends the request with reqwest; embedded mode hands it to the full server router
//! in-process (`tower::ServiceExt::oneshot`), no socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use tollgate_server::{App, AppState, Config};
use tower::ServiceExt as _;

/// The largest response body read from Tollgate.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to Tollgate got no answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not reachable, reset, or not answering in time.
    #[error("Tollgate unreachable: {0}")]
    Unreachable(String),
    /// The answer could not be read.
    #[error("unreadable answer from Tollgate: {0}")]
    BadAnswer(String),
}

/// Where the HTTP API is.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The server router in this process.
    Embedded {
        /// The router (`tollgate_server::router`).
        router: axum::Router,
        /// The gateway's key.
        key: Arc<str>,
    },
    /// A running Tollgate.
    Remote {
        /// The HTTP client.
        client: reqwest::Client,
        /// `http://host:port`.
        base: Arc<str>,
        /// The API key.
        key: Arc<str>,
    },
}

impl Backend {
    /// Sends one request (path and query in `req.uri()`); the key is added here.
    pub async fn send(
        &self,
        mut req: Request<Bytes>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, BackendError> {
        match self {
            Backend::Embedded { router, key } => {
                insert_auth(&mut req, key)?;
                let req = req.map(axum::body::Body::from);
                let call = async {
                    let resp = router
                        .clone()
                        .oneshot(req)
                        .await
                        .map_err(|e| BackendError::Unreachable(e.to_string()))?;
                    let (parts, body) = resp.into_parts();
                    let bytes = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
                        .await
                        .map_err(|e| BackendError::BadAnswer(e.to_string()))?;
                    Ok(Response::from_parts(parts, bytes))
                };
                tokio::time::timeout(timeout, call)
                    .await
                    .map_err(|_| BackendError::Unreachable("timed out".into()))?
            }
            Backend::Remote { client, base, key } => {
                let url = format!("{base}{}", req.uri());
                let (parts, body) = req.into_parts();
                let resp = client
                    .request(parts.method, &url)
                    .headers(parts.headers)
                    .bearer_auth(&**key)
                    .body(body)
                    .timeout(timeout)
                    .send()
                    .await
                    .map_err(|e| BackendError::Unreachable(e.to_string()))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let bytes = resp
                    .bytes()
                    .await
                    .map_err(|e| BackendError::Unreachable(e.to_string()))?;
                let mut out = Response::new(bytes);
                *out.status_mut() = status;
                *out.headers_mut() = headers;
                Ok(out)
            }
        }
    }

    /// A JSON call: `(status, body)`; a body that is not JSON is an error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), BackendError> {
        self.json_traced(method, path, body, None, timeout).await
    }

    /// [`Backend::json`] with the caller's W3C `traceparent` (from the MCP request's
    /// `_meta`, SEP-414) passed on, so that the decision joins the agent's trace. A
    /// value that cannot be a header is not sent (Tollgate would ignore it anyway).
    pub async fn json_traced(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        traceparent: Option<&str>,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), BackendError> {
        let bytes = match body {
            Some(v) => Bytes::from(
                serde_json::to_vec(v).map_err(|e| BackendError::BadAnswer(e.to_string()))?,
            ),
            None => Bytes::new(),
        };
        let mut builder = Request::builder().method(method).uri(path);
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(v) = traceparent.and_then(|t| http::HeaderValue::from_str(t).ok()) {
            builder = builder.header("traceparent", v);
        }
        let req = builder
            .body(bytes)
            .map_err(|e| BackendError::BadAnswer(e.to_string()))?;
        let resp = self.send(req, timeout).await?;
        let status = resp.status();
        let value = serde_json::from_slice(resp.body()).map_err(|e| {
            BackendError::BadAnswer(format!("HTTP {status}, body is not JSON: {e}"))
        })?;
        Ok((status, value))
    }
}

fn insert_auth(req: &mut Request<Bytes>, key: &str) -> Result<(), BackendError> {
    let value = http::HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|e| BackendError::BadAnswer(e.to_string()))?;
    req.headers_mut().insert(header::AUTHORIZATION, value);
    Ok(())
}

/// The file in the data directory holding the gateway's own API key and outcome
/// signing seed (mode 0600).
pub const GATEWAY_KEY_FILE: &str = "mcp-gateway-keys.json";

/// An embedded server opened for the gateway.
#[derive(Debug)]
pub struct Embedded {
    /// The server state (ticker, shutdown flush).
    pub state: AppState,
    /// The backend on its router.
    pub backend: Backend,
    /// The seed of the gateway's outcome signing key.
    pub outcome_seed: [u8; 32],
    /// The bootstrap file, when this start created the data directory.
    pub bootstrap_file: Option<PathBuf>,
}

/// Opens the full server in-process on `data_dir` and makes sure the gateway has a
/// key of its own (scopes decide, outcomes, admin; never the key reviewers use, since
/// the key that asked for a decision cannot review it).
pub fn open_embedded(
    data_dir: &Path,
    server_config: Option<&Path>,
    tenant: &str,
) -> anyhow::Result<Embedded> {
    let mut config = match server_config {
        Some(p) => Config::load(Some(p), std::iter::empty())?,
        None => Config::default(),
    };
    config.data_dir = data_dir.to_owned();
    let app = App::open(config).with_context(|| {
        format!(
            "cannot open the Tollgate data directory `{}` (is `tollgate serve` or another gateway using it? \
             run the gateway with `tollgate_url` against that server instead)",
            data_dir.display()
        )
    })?;
    let state = app.state.clone();
    if state
        .store()
        .tenant(tenant)
        .context("reading tenants")?
        .is_none()
    {
        bail!(
            "tenant `{tenant}` does not exist in `{}` (create it with `tollgate tenants create`)",
            data_dir.display()
        );
    }
    let (key, seed) = gateway_key(&state, data_dir, tenant)?;
    let router = tollgate_server::router(state.clone());
    Ok(Embedded {
        state,
        backend: Backend::Embedded {
            router,
            key: Arc::from(key),
        },
        outcome_seed: seed,
        bootstrap_file: app.bootstrap_file,
    })
}

fn gateway_key(state: &AppState, dir: &Path, tenant: &str) -> anyhow::Result<(String, [u8; 32])> {
    let path = dir.join(format!("{tenant}-{GATEWAY_KEY_FILE}"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not JSON", path.display()))?;
        let secret = v["secret"].as_str().unwrap_or_default().to_owned();
        let seed = hex::decode(v["outcome_seed"].as_str().unwrap_or_default())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match (state.service().authenticate(&secret), seed) {
            (Ok(c), Some(seed)) if c.tenant() == tenant => return Ok((secret, seed)),
            _ => {
                tracing::warn!(file = %path.display(), "the gateway's key is revoked or unknown; creating a new one");
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing `{}`", path.display()))?;
            }
        }
    }
    let now = state.now_ms();
    let scopes = ["decide", "outcomes", "admin"].map(str::to_owned).to_vec();
    let new = tollgate_server::auth::generate(tenant, "live", scopes, "mcp gateway", None, now)
        .map_err(|e| anyhow::anyhow!("creating the gateway's key: {e}"))?;
    state
        .store()
        .put_api_key(&new.record)
        .context("storing the gateway's key")?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let text = serde_json::to_string_pretty(&json!({
        "key_id": new.record.id,
        "secret": new.secret,
        "outcome_seed": hex::encode(seed),
        "note": "The MCP gateway's own API key and outcome signing seed. Keep private.",
    }))?;
    write_private(&path, text.as_bytes())?;
    Ok((new.secret, seed))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating `{}`", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Serves the embedded server's router on `addr` (for reviewers and tests) until the
/// task is dropped; returns the bound address.
pub async fn serve_api(
    state: AppState,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding api_listen {addr}"))?;
    let bound = listener.local_addr()?;
    let app = tollgate_server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the API listener stopped");
        }
    });
    Ok((bound, task))
}

/// The remote backend.
pub fn remote(base: &str, key_env: &str) -> anyhow::Result<Backend> {
    let Ok(key) = std::env::var(key_env) else {
        bail!(
            "`tollgate_url` is set but the API key variable `{key_env}` is not (see `api_key_env`)"
        );
    };
    if key.trim().is_empty() {
        bail!("the API key variable `{key_env}` is empty");
    }
    // reqwest is built without a crypto provider; building a client before one is
    // installed panics. Installing twice is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")?;
    Ok(Backend::Remote {
        client,
        base: Arc::from(base),
        key: Arc::from(key.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    /// A Tollgate stand-in that answers with the `traceparent` and `authorization`
    /// headers it received.
    async fn echo_server() -> anyhow::Result<String> {
        let app = axum::Router::new().route(
            "/v1/decisions",
            axum::routing::post(|headers: HeaderMap| async move {
                let get = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                axum::Json(json!({
                    "traceparent": get("traceparent"),
                    "authorization": get("authorization"),
                }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(format!("http://{addr}"))
    }

    #[tokio::test]
    async fn the_callers_traceparent_reaches_tollgate_and_a_bad_one_is_dropped()
    -> anyhow::Result<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let backend = Backend::Remote {
            client: reqwest::Client::new(),
            base: Arc::from(echo_server().await?),
            key: Arc::from("k-123"),
        };
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = Duration::from_secs(5);
        let body = json!({});
        let (status, v) = backend
            .json_traced(Method::POST, "/v1/decisions", Some(&body), Some(tp), t)
            .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["traceparent"], tp);
        assert_eq!(v["authorization"], "Bearer k-123");

        // Without one, none is sent; one that cannot be a header value is not sent.
        let (_, v) = backend
            .json(Method::POST, "/v1/decisions", Some(&body), t)
            .await?;
        assert_eq!(v["traceparent"], Value::Null);
        let (_, v) = backend
            .json_traced(
                Method::POST,
                "/v1/decisions",
                Some(&body),
                Some("00-\n-x"),
                t,
            )
            .await?;
        assert_eq!(v["traceparent"], Value::Null);
        Ok(())
    }
}
