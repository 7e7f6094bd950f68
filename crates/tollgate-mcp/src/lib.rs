//! `tollgate-mcp`: the MCP gateway. An MCP server toward the agent (stdio, or
//! streamable HTTP at `/mcp` with per-client bearer tokens), an MCP client toward
//! the real tool servers, and between them Tollgate: no `tools/call` reaches an
//! upstream without a recorded ALLOW. Built on the official Rust MCP SDK, `rmcp`.
//!
//! Decisions go through Tollgate's HTTP API in both modes ([`backend::Backend`]):
//! in-process on a data directory (embedded) or to a running Tollgate (remote).
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod config;
pub mod gate;
pub mod metrics;
pub mod policy_watch;
pub mod redact;
pub mod upstream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::{broadcast, mpsc};

pub use config::GatewayConfig;
use config::Mode;
use gate::{ClientActor, OutcomeSigner, Session, Shared};

/// A running gateway's handles (for tests and the bench).
#[derive(Debug)]
pub struct Running {
    /// The streamable HTTP address (`None` with stdio).
    pub mcp_addr: Option<SocketAddr>,
    /// The embedded API listener's address (`api_listen`), if any.
    pub api_addr: Option<SocketAddr>,
    /// The shared state.
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    embedded: Option<tollgate_server::AppState>,
}

impl Running {
    /// Stops background work and flushes the embedded server (checkpoints, counters).
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(state) = self.embedded {
            state.service().tick().await;
        }
    }
}

/// Starts everything but the agent-side transport.
async fn start(config: GatewayConfig) -> anyhow::Result<(Arc<Shared>, Running)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(metrics::Metrics::new());
    let mut tasks = Vec::new();
    let mut api_addr = None;
    let mut embedded_state = None;
    let (backend, outcomes) = match config.mode() {
        Mode::Embedded(dir) => {
            let e = backend::open_embedded(&dir, config.server_config.as_deref(), &config.tenant)?;
            if let Some(file) = &e.bootstrap_file {
                tracing::info!(file = %file.display(), "first start: the bootstrap admin key (for reviewers) is in this file (mode 0600)");
            }
            let state = e.state.clone();
            // Checkpoints and counters, as `tollgate serve` does.
            let ticker_state = state.clone();
            tasks.push(tokio::spawn(async move {
                let every =
                    Duration::from_millis(ticker_state.config().checkpoint_interval_ms.max(50));
                let mut interval = tokio::time::interval(every);
                loop {
                    interval.tick().await;
                    ticker_state.service().tick().await;
                }
            }));
            if let Some(addr) = config.api_listen {
                let (bound, task) = backend::serve_api(state.clone(), addr).await?;
                tracing::info!(%bound, "Tollgate API (embedded) listening");
                api_addr = Some(bound);
                tasks.push(task);
            }
            embedded_state = Some(state);
            let key = ed25519_dalek::SigningKey::from_bytes(&e.outcome_seed);
            let outcomes = if config.report_outcomes {
                Some(register_sources(&e.backend, &config, key).await)
            } else {
                None
            };
            (e.backend, outcomes)
        }
        Mode::Remote(url) => {
            let backend = backend::remote(&url, &config.api_key_env)?;
            let outcomes = match (&config.outcome_source, &config.outcome_key_file) {
                (Some(source), Some(file)) if config.report_outcomes => {
                    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                    let pem = std::fs::read_to_string(file).with_context(|| {
                        format!("reading outcome_key_file `{}`", file.display())
                    })?;
                    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                        anyhow::anyhow!(
                            "outcome_key_file `{}`: not an Ed25519 PKCS#8 PEM key: {e}",
                            file.display()
                        )
                    })?;
                    let sources = config
                        .upstreams
                        .iter()
                        .map(|u| (u.name.clone(), source.clone()))
                        .collect();
                    Some(OutcomeSigner { sources, key })
                }
                _ => {
                    tracing::info!("no outcome_source/outcome_key_file: outcomes are not reported");
                    None
                }
            };
            (backend, outcomes)
        }
    };
    for file in &config.policy_files {
        apply_policy(&backend, file, config.tollgate_timeout).await?;
    }
    let (changed_tx, _) = broadcast::channel(16);
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let mut upstreams = BTreeMap::new();
    for u in &config.upstreams {
        let up = upstream::Upstream::start(
            u.clone(),
            metrics.clone(),
            upstream::Events {
                changed: changed_tx.clone(),
                progress: progress_tx.clone(),
            },
        )?;
        upstreams.insert(u.name.clone(), up);
    }
    let shared = Arc::new(Shared::new(
        config.clone(),
        backend,
        upstreams,
        metrics,
        outcomes,
    ));
    {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(p) = progress_rx.recv().await {
                shared.forward_progress(p).await;
            }
        }));
    }
    {
        let shared = shared.clone();
        let mut rx = changed_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        shared.tools_changed().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
    }
    tasks.push(tokio::spawn(policy_watch::run(shared.clone())));
    let running = Running {
        mcp_addr: None,
        api_addr,
        shared: shared.clone(),
        tasks,
        embedded: embedded_state,
    };
    Ok((shared, running))
}

/// Publishes and activates one policy file (`policy_files`).
async fn apply_policy(
    backend: &backend::Backend,
    file: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading policy file `{}`", file.display()))?;
    let body = json!({"text": text, "activate": true});
    match backend
        .json(Method::POST, "/v1/admin/policies", Some(&body), timeout)
        .await
    {
        Ok((StatusCode::OK | StatusCode::CREATED, v)) => {
            tracing::info!(
                file = %file.display(),
                policy = %v["policy_id"].as_str().unwrap_or("?"),
                version = v["version"].as_u64().unwrap_or(0),
                published = v["published"].as_bool().unwrap_or(false),
                "policy file applied"
            );
            Ok(())
        }
        Ok((status, v)) => bail!(
            "policy file `{}` refused ({status}): {}",
            file.display(),
            v["message"].as_str().unwrap_or(&v.to_string())
        ),
        Err(e) => bail!("policy file `{}`: {e}", file.display()),
    }
}

/// Registers one outcome source per upstream (named after it) with the gateway's key,
/// unless a source of that name already has another key (then that upstream's
/// outcomes are not reported, and the log says why).
async fn register_sources(
    backend: &backend::Backend,
    config: &GatewayConfig,
    key: ed25519_dalek::SigningKey,
) -> OutcomeSigner {
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
    let timeout = config.tollgate_timeout;
    let existing: BTreeMap<String, String> = match backend
        .json(Method::GET, "/v1/admin/sources", None, timeout)
        .await
    {
        Ok((StatusCode::OK, v)) => v["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((
                    s["id"].as_str()?.to_owned(),
                    s["public_key"].as_str()?.to_owned(),
                ))
            })
            .collect(),
        other => {
            tracing::warn!(answer = ?other.map(|(s, _)| s), "cannot list outcome sources");
            BTreeMap::new()
        }
    };
    let mut sources = BTreeMap::new();
    for u in &config.upstreams {
        match existing.get(&u.name) {
            Some(k) if *k == public => {
                sources.insert(u.name.clone(), u.name.clone());
            }
            Some(_) => tracing::warn!(
                upstream = %u.name,
                "an outcome source of this name exists with another key; outcomes of this upstream are not reported"
            ),
            None => {
                let body = json!({"id": u.name, "public_key": public});
                match backend
                    .json(Method::POST, "/v1/admin/sources", Some(&body), timeout)
                    .await
                {
                    Ok((StatusCode::CREATED | StatusCode::OK, _)) => {
                        sources.insert(u.name.clone(), u.name.clone());
                    }
                    other => {
                        tracing::warn!(upstream = %u.name, answer = ?other, "outcome source not registered")
                    }
                }
            }
        }
    }
    OutcomeSigner { sources, key }
}

/// Serves the agent over stdio until stdin closes.
pub async fn run_stdio(config: GatewayConfig) -> anyhow::Result<()> {
    if config.actor.is_none() {
        bail!("--stdio needs `actor` in the config (the actor every call is decided for)");
    }
    let (shared, running) = start(config).await?;
    let session = Session::new(shared, random_id("mcp"));
    let service = session
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake with the agent on stdio")?;
    tokio::select! {
        r = service.waiting() => { r.context("the stdio session failed")?; }
        () = tollgate_server::shutdown_signal() => {}
    }
    running.shutdown().await;
    Ok(())
}

/// Starts the streamable HTTP side on `config.listen` (or `listen` when given) and
/// returns at once.
pub async fn start_http(config: GatewayConfig) -> anyhow::Result<Running> {
    let mut clients = Vec::new();
    for c in &config.clients {
        let token = std::env::var(&c.token_env)
            .with_context(|| format!("client token variable `{}` is not set", c.token_env))?;
        if token.len() < 16 {
            bail!(
                "the token in `{}` is shorter than 16 characters",
                c.token_env
            );
        }
        clients.push((Sha256::digest(token.as_bytes()).to_vec(), c.actor.clone()));
    }
    if clients.is_empty() {
        bail!("streamable HTTP needs at least one `[[clients]]` token (or run with --stdio)");
    }
    let listen = config.listen;
    let (shared, mut running) = start(config).await?;
    let service_shared = shared.clone();
    let service = StreamableHttpService::new(
        move || Ok(Session::new(service_shared.clone(), random_id("mcp"))),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().disable_allowed_hosts(),
    );
    let auth = Arc::new(clients);
    let metrics_shared = shared.clone();
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(auth, bearer))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics_shared.metrics.encode();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding listen {listen}"))?;
    let addr = listener.local_addr()?;
    running.tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the MCP listener stopped");
        }
    }));
    tracing::info!(%addr, "MCP gateway listening (streamable HTTP at /mcp)");
    running.mcp_addr = Some(addr);
    Ok(running)
}

/// Serves streamable HTTP until SIGTERM / Ctrl-C.
pub async fn run_http(config: GatewayConfig) -> anyhow::Result<()> {
    let running = start_http(config).await?;
    tollgate_server::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}

type Clients = Arc<Vec<(Vec<u8>, serde_json::Map<String, Value>)>>;

/// `/mcp` needs a known bearer token; its actor goes into the request.
async fn bearer(State(clients): State<Clients>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| Sha256::digest(t.trim().as_bytes()).to_vec());
    let actor = token.and_then(|t| {
        clients
            .iter()
            .find(|(hash, _)| *hash == t)
            .map(|(_, a)| a.clone())
    });
    match actor {
        Some(a) => {
            req.extensions_mut().insert(ClientActor(a));
            next.run(req).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(http::header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(
                json!({"error": "unauthorized", "message": "a client bearer token is required"}),
            ),
        )
            .into_response(),
    }
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}
