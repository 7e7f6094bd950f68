//! Upstream tool servers: one rmcp client each (child process over stdio, or
//! streamable HTTP), kept alive by a supervisor that restarts a crashed child with
//! backoff. While an upstream is down only its own calls fail.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam};
use rmcp::service::{NotificationContext, Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt as _};
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use crate::redact::{Step, parse_path};

/// Longest pause between two restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First pause after a crash.
const MIN_BACKOFF: Duration = Duration::from_millis(200);

/// One upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Its configuration.
    pub config: UpstreamConfig,
    /// Its redaction paths, parsed.
    pub redact: Vec<Vec<Step>>,
    peer: watch::Receiver<Option<Peer<RoleClient>>>,
}

/// Where an upstream's notifications go.
#[derive(Clone, Debug)]
pub struct Events {
    /// `tools/list_changed` (and restarts).
    pub changed: broadcast::Sender<()>,
    /// Progress of forwarded calls.
    pub progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

/// What the gateway tells an upstream about itself, and what it hears back.
#[derive(Clone, Debug)]
struct UpstreamClient {
    events: Events,
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("tollgate-mcp-gateway", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.events.changed.send(());
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.events.progress.send(params);
    }
}

impl Upstream {
    /// Starts the supervisor of `config`; `changed` hears the upstream's
    /// `tools/list_changed` (and its restarts).
    pub fn start(
        config: UpstreamConfig,
        metrics: Arc<Metrics>,
        events: Events,
    ) -> anyhow::Result<Arc<Upstream>> {
        let redact = config
            .redact
            .iter()
            .map(|p| parse_path(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (tx, rx) = watch::channel(None);
        let upstream = Arc::new(Upstream {
            config: config.clone(),
            redact,
            peer: rx,
        });
        tokio::spawn(supervise(config, tx, metrics, events));
        Ok(upstream)
    }

    /// The running client, waiting up to `wait` for one (at start, or while it
    /// restarts).
    pub async fn peer(&self, wait: Duration) -> Option<Peer<RoleClient>> {
        let mut rx = self.peer.clone();
        let found = tokio::time::timeout(wait, rx.wait_for(|p| p.is_some())).await;
        match found {
            Ok(Ok(p)) => p.clone(),
            _ => None,
        }
    }
}

async fn connect(
    config: &UpstreamConfig,
    handler: UpstreamClient,
) -> anyhow::Result<RunningService<RoleClient, UpstreamClient>> {
    if let Some(command) = &config.command {
        let (program, args) = command
            .split_first()
            .context("the upstream command is empty")?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).envs(&config.env);
        if let Some(dir) = &config.cwd {
            cmd.current_dir(dir);
        }
        let (transport, _stderr) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting `{}`", command.join(" ")))?;
        Ok(handler
            .serve(transport)
            .await
            .context("MCP handshake with the child process")?)
    } else if let Some(url) = &config.url {
        let mut headers = HashMap::new();
        for (name, var) in &config.headers_env {
            let value = std::env::var(var)
                .with_context(|| format!("header `{name}`: variable `{var}` is not set"))?;
            headers.insert(
                HeaderName::try_from(name.as_str())
                    .with_context(|| format!("bad header name `{name}`"))?,
                HeaderValue::try_from(value)
                    .with_context(|| format!("bad value in `{var}` for header `{name}`"))?,
            );
        }
        let mut c = StreamableHttpClientTransportConfig::with_uri(url.as_str());
        c.custom_headers = headers;
        let transport = StreamableHttpClientTransport::from_config(c);
        Ok(handler
            .serve(transport)
            .await
            .with_context(|| format!("MCP handshake with {url}"))?)
    } else {
        anyhow::bail!("the upstream has neither `command` nor `url`")
    }
}

async fn supervise(
    config: UpstreamConfig,
    tx: watch::Sender<Option<Peer<RoleClient>>>,
    metrics: Arc<Metrics>,
    events: Events,
) {
    let name = config.name.clone();
    let mut backoff = MIN_BACKOFF;
    let mut first = true;
    loop {
        let handler = UpstreamClient {
            events: events.clone(),
        };
        let started = Instant::now();
        match connect(&config, handler).await {
            Ok(running) => {
                if first {
                    tracing::info!(upstream = %name, "upstream connected");
                } else {
                    tracing::warn!(upstream = %name, "upstream restarted");
                    metrics.restart(&name);
                    let _ = events.changed.send(());
                }
                let _ = tx.send(Some(running.peer().clone()));
                let reason = running.waiting().await;
                let _ = tx.send(None);
                metrics.upstream_error(&name);
                tracing::warn!(upstream = %name, reason = ?reason, "upstream exited; restarting");
            }
            Err(e) => {
                let _ = tx.send(None);
                metrics.upstream_error(&name);
                tracing::error!(upstream = %name, error = %format!("{e:#}"), "upstream did not start");
            }
        }
        first = false;
        if tx.is_closed() {
            return;
        }
        // A child that ran a while before it failed starts again quickly.
        if started.elapsed() > MAX_BACKOFF {
            backoff = MIN_BACKOFF;
        }
        tracing::info!(upstream = %name, backoff_ms = backoff.as_millis() as u64, "waiting before restart");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
