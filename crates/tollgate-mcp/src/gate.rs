//! The agent side: an MCP server whose `tools/call` is decided by Tollgate before any
//! upstream sees it. One decision path for every transport and both modes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, JsonObject, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, MetaObject, NumberOrString, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Map, Value, json};

use crate::backend::Backend;
use crate::config::{GatewayConfig, ToolNames};
use crate::metrics::Metrics;
use crate::upstream::Upstream;

/// How long a call waits for an upstream that is (re)starting.
const UPSTREAM_READY_WAIT: Duration = Duration::from_secs(10);
/// How long `tools/list` waits for an upstream that is not running.
const LIST_READY_WAIT: Duration = Duration::from_secs(3);

/// The outcome signer: which registered source reports for an upstream, and its key.
#[derive(Debug)]
pub struct OutcomeSigner {
    /// upstream name → source id (embedded: the upstream's own source).
    pub sources: BTreeMap<String, String>,
    /// The source's Ed25519 key.
    pub key: ed25519_dalek::SigningKey,
}

/// The actor a client's calls are decided for (put in the HTTP request's extensions
/// by the bearer-token layer).
#[derive(Clone, Debug)]
pub struct ClientActor(pub Map<String, Value>);

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: GatewayConfig,
    /// Tollgate's HTTP API.
    pub backend: Backend,
    /// The tool servers, by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Outcome reports, when configured.
    pub outcomes: Option<OutcomeSigner>,
    /// Exposed tool name → (upstream, tool), as the last `tools/list` named them.
    names: RwLock<HashMap<String, (String, String)>>,
    /// Exposed prompt name → (upstream, prompt).
    prompts: RwLock<HashMap<String, (String, String)>>,
    /// Resource URI → upstream, as the last `resources/list` found them.
    resources: RwLock<HashMap<String, String>>,
    /// Tools (`<upstream>.<tool>`) the active policy blocks whatever the arguments.
    pub blocked: RwLock<BTreeSet<String>>,
    /// Agent sessions that want `notifications/tools/list_changed`.
    pub peers: Mutex<Vec<rmcp::service::Peer<RoleServer>>>,
    /// Progress tokens of forwarded calls: gateway token → (agent peer, agent token).
    progress: Mutex<HashMap<String, (rmcp::service::Peer<RoleServer>, ProgressToken)>>,
    next_token: AtomicU64,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        config: GatewayConfig,
        backend: Backend,
        upstreams: BTreeMap<String, Arc<Upstream>>,
        metrics: Arc<Metrics>,
        outcomes: Option<OutcomeSigner>,
    ) -> Self {
        Shared {
            config,
            backend,
            upstreams,
            metrics,
            outcomes,
            names: RwLock::new(HashMap::new()),
            prompts: RwLock::new(HashMap::new()),
            resources: RwLock::new(HashMap::new()),
            blocked: RwLock::new(BTreeSet::new()),
            peers: Mutex::new(Vec::new()),
            progress: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        }
    }

    /// Sends `notifications/tools/list_changed` to every live agent session.
    pub async fn tools_changed(&self) {
        let peers: Vec<_> = match self.peers.lock() {
            Ok(mut p) => {
                p.retain(|peer| !peer.is_transport_closed());
                p.clone()
            }
            Err(_) => return,
        };
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "list_changed not delivered");
            }
        }
    }

    /// Forwards an upstream's progress notification to the agent that asked.
    pub async fn forward_progress(&self, mut p: ProgressNotificationParam) {
        let key = token_key(&p.progress_token);
        let target = self.progress.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some((peer, token)) = target {
            p.progress_token = token;
            let _ = peer.notify_progress(p).await;
        }
    }
}

fn token_key(t: &ProgressToken) -> String {
    match &t.0 {
        NumberOrString::Number(n) => format!("n:{n}"),
        NumberOrString::String(s) => format!("s:{s}"),
    }
}

/// One agent session.
#[derive(Clone, Debug)]
pub struct Session {
    shared: Arc<Shared>,
    /// stdio: this process's session id; HTTP: the `Mcp-Session-Id` header wins.
    session_id: String,
}

impl Session {
    /// A session on `shared`.
    pub fn new(shared: Arc<Shared>, session_id: String) -> Self {
        Session { shared, session_id }
    }
}

/// A gate decision.
#[derive(Debug)]
enum Gate {
    Allow {
        decision_id: String,
        grant: Option<Value>,
        verdict: &'static str,
    },
    Deny {
        result: CallToolResult,
        verdict: &'static str,
    },
}

fn text_error(text: String, meta: Value) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    if let Value::Object(m) = meta {
        r.meta = Some(MetaObject(m));
    }
    r
}

fn unavailable(why: &str) -> Gate {
    Gate::Deny {
        result: text_error(
            format!(
                "Blocked by Tollgate (reason: TOLLGATE_UNAVAILABLE): no decision could be obtained ({why}). \
                 The call was not forwarded."
            ),
            json!({"tollgate": {"status": "BLOCK", "reason_codes": ["TOLLGATE_UNAVAILABLE"]}}),
        ),
        verdict: "TOLLGATE_UNAVAILABLE",
    }
}

fn blocked(v: &Value) -> Gate {
    let reasons: Vec<String> = v["reason_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let text = format!(
        "Blocked by Tollgate: status {}, gate {}, reason codes [{}]: {}. Decision {}.",
        v["status"].as_str().unwrap_or("?"),
        v["gate"].as_str().unwrap_or("?"),
        reasons.join(", "),
        v["explanation"].as_str().unwrap_or(""),
        v["decision_id"].as_str().unwrap_or("?"),
    );
    Gate::Deny {
        result: text_error(
            text,
            json!({"tollgate": {
                "status": v["status"], "gate": v["gate"], "reason_codes": reasons,
                "explanation": v["explanation"], "decision_id": v["decision_id"],
            }}),
        ),
        verdict: "BLOCK",
    }
}

impl Session {
    fn actor(&self, ctx: &RequestContext<RoleServer>) -> Option<Map<String, Value>> {
        let from_token = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<ClientActor>())
            .map(|a| a.0.clone());
        from_token.or_else(|| self.shared.config.actor.clone())
    }

    fn session_id(&self, ctx: &RequestContext<RoleServer>) -> String {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| self.session_id.clone(), str::to_owned)
    }

    /// Runs `f` on every running upstream at once; upstreams that are down or answer
    /// an error (often: no such capability) give nothing.
    async fn each_upstream<T, F, Fut>(&self, f: F) -> Vec<(String, Vec<T>)>
    where
        F: Fn(rmcp::service::Peer<rmcp::service::RoleClient>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, rmcp::ServiceError>>,
    {
        let f = &f;
        futures_util::future::join_all(self.shared.upstreams.iter().map(|(name, up)| async move {
            let items = match up.peer(LIST_READY_WAIT).await {
                Some(peer) => f(peer).await.unwrap_or_else(|e| {
                    tracing::debug!(upstream = %name, error = %e, "list failed");
                    Vec::new()
                }),
                None => Vec::new(),
            };
            (name.clone(), items)
        }))
        .await
    }

    async fn upstream_peer(
        &self,
        up: &str,
    ) -> Result<rmcp::service::Peer<rmcp::service::RoleClient>, McpError> {
        let upstream =
            self.shared.upstreams.get(up).ok_or_else(|| {
                McpError::invalid_params(format!("unknown upstream `{up}`"), None)
            })?;
        upstream.peer(UPSTREAM_READY_WAIT).await.ok_or_else(|| {
            self.shared.metrics.upstream_error(up);
            McpError::internal_error(format!("upstream `{up}` is not running (restarting)"), None)
        })
    }

    fn upstream_failed(&self, up: &str, e: &rmcp::ServiceError) -> McpError {
        self.shared.metrics.upstream_error(up);
        match e {
            rmcp::ServiceError::McpError(inner) => inner.clone(),
            other => McpError::internal_error(format!("upstream `{up}` failed: {other}"), None),
        }
    }

    /// Resolves an exposed tool name to (upstream, tool).
    async fn resolve(
        &self,
        name: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Option<(String, String)> {
        if let Some(hit) = self
            .shared
            .names
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Some(hit);
        }
        if let Some((up, tool)) = name.split_once('.')
            && self.shared.upstreams.contains_key(up)
            && (self.shared.config.tool_names == ToolNames::Prefixed || !tool.is_empty())
        {
            return Some((up.to_owned(), tool.to_owned()));
        }
        if self.shared.config.tool_names == ToolNames::Auto {
            // A bare name not seen yet: list again.
            let _ = self.all_tools(ctx).await;
            return self
                .shared
                .names
                .read()
                .ok()
                .and_then(|m| m.get(name).cloned());
        }
        None
    }

    /// Every upstream's tools, named for the agent; refreshes the name map.
    async fn all_tools(&self, _ctx: &RequestContext<RoleServer>) -> Vec<(String, String, Tool)> {
        // Every upstream at once; one that is down (or still starting) is left out
        // after a short wait, and its tools come back with tools/list_changed.
        let lists = futures_util::future::join_all(self.shared.upstreams.iter().map(
            |(name, up)| async move {
                let tools = match up.peer(LIST_READY_WAIT).await {
                    Some(peer) => match peer.list_all_tools().await {
                        Ok(t) => t,
                        Err(e) => {
                            self.shared.metrics.upstream_error(name);
                            tracing::warn!(upstream = %name, error = %e, "tools/list failed");
                            Vec::new()
                        }
                    },
                    None => {
                        tracing::warn!(upstream = %name, "upstream not running; its tools are left out");
                        Vec::new()
                    }
                };
                (name.clone(), tools)
            },
        ))
        .await;
        let mut count: HashMap<String, usize> = HashMap::new();
        for (_, tools) in &lists {
            for t in tools {
                *count.entry(t.name.to_string()).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        let mut names = HashMap::new();
        for (up, tools) in lists {
            for t in tools {
                let bare = t.name.to_string();
                let exposed = match self.shared.config.tool_names {
                    ToolNames::Auto if count.get(&bare) == Some(&1) => bare.clone(),
                    _ => format!("{up}.{bare}"),
                };
                names.insert(exposed.clone(), (up.clone(), bare.clone()));
                out.push((exposed, up.clone(), t));
            }
        }
        if let Ok(mut m) = self.shared.names.write() {
            *m = names;
        }
        out
    }

    fn decision_request(
        &self,
        up: &Upstream,
        tool: &str,
        args: &JsonObject,
        actor: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> Value {
        let mut decided_args = args.clone();
        crate::redact::redact(&mut decided_args, &up.redact);
        let client = ctx.peer.peer_info().map(
            |info| json!({"name": info.client_info.name, "version": info.client_info.version}),
        );
        let mut body = json!({
            "tenant_id": self.shared.config.tenant,
            "actor": actor,
            "action": {
                "type": "TOOL_CALL",
                "tool": format!("{}.{tool}", up.config.name),
                "server": up.config.name,
                "arguments": decided_args,
            },
            "context": {
                "mcp_session": self.session_id(ctx),
                "client": client.unwrap_or(Value::Null),
            },
            "source": up.config.name,
            // The gateway forwards an allowed call with its grant: always ask for one.
            "grant": true,
        });
        if let Some(p) = &self.shared.config.policy {
            body["policy_refs"] = json!([p]);
        }
        body
    }

    async fn decide(&self, body: &Value, traceparent: Option<&str>) -> Result<Value, Gate> {
        let timeout = self.shared.config.tollgate_timeout;
        match self
            .shared
            .backend
            .json_traced(
                Method::POST,
                "/v1/decisions",
                Some(body),
                traceparent,
                timeout,
            )
            .await
        {
            Ok((StatusCode::OK, v)) => Ok(v),
            Ok((status, v)) => {
                let why = format!(
                    "HTTP {status}: {}",
                    v["message"].as_str().or(v["error"].as_str()).unwrap_or("")
                );
                tracing::warn!(%status, body = %v, "decision refused");
                Err(unavailable(&why))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no decision");
                Err(unavailable(&e.to_string()))
            }
        }
    }

    /// One decision, and on review, the wait and the second decision.
    async fn gate(
        &self,
        body: &Value,
        ctx: &RequestContext<RoleServer>,
        progress: Option<ProgressToken>,
    ) -> Gate {
        let v = match self.decide(body, ctx.meta.get_traceparent()).await {
            Ok(v) => v,
            Err(g) => return g,
        };
        match v["status"].as_str() {
            Some("ALLOW") => allow(&v, "ALLOW"),
            Some("BLOCK") => blocked(&v),
            Some("REVIEW_REQUIRED" | "ESCALATE") => self.review(&v, body, ctx, progress).await,
            other => unavailable(&format!("unknown status {other:?}")),
        }
    }

    async fn review(
        &self,
        first: &Value,
        body: &Value,
        ctx: &RequestContext<RoleServer>,
        progress: Option<ProgressToken>,
    ) -> Gate {
        let Some(decision_id) = first["decision_id"].as_str() else {
            return unavailable("a review verdict without decision_id");
        };
        let review_id = first["review_id"].as_str().unwrap_or("?").to_owned();
        let deadline = Instant::now() + self.shared.config.review_wait;
        let mut step = 0u32;
        let status = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(token) = &progress {
                let mut p = ProgressNotificationParam::new(token.clone(), f64::from(step));
                p.message = Some(format!(
                    "waiting for a reviewer to approve {review_id} ({}s left)",
                    left.as_secs()
                ));
                let _ = ctx.peer.notify_progress(p).await;
            }
            step += 1;
            if left.is_zero() {
                break "timed out".to_owned();
            }
            // Short polls, so progress keeps coming; the server answers as soon as
            // the review is resolved.
            let secs = left.as_secs().clamp(1, 5);
            let path = format!("/v1/decisions/{decision_id}/wait?timeout={secs}");
            match self
                .shared
                .backend
                .json(Method::GET, &path, None, Duration::from_secs(secs + 10))
                .await
            {
                Ok((StatusCode::OK, w)) => {
                    let s = w["review"]["status"].as_str().unwrap_or("pending");
                    if s != "pending" {
                        break s.to_owned();
                    }
                }
                Ok((status, w)) => {
                    tracing::warn!(%status, body = %w, "review wait failed");
                    return unavailable(&format!("review wait answered HTTP {status}"));
                }
                Err(e) => return unavailable(&e.to_string()),
            }
            if ctx.ct.is_cancelled() {
                break "cancelled by the client".to_owned();
            }
        };
        if status != "approved" {
            return Gate::Deny {
                result: text_error(
                    format!(
                        "Blocked by Tollgate: review {review_id} was {status}; decision {decision_id} ({}). \
                         The call was not forwarded.",
                        first["explanation"].as_str().unwrap_or("")
                    ),
                    json!({"tollgate": {"status": "BLOCK", "review_id": review_id, "review_status": status,
                        "decision_id": decision_id, "reason_codes": first["reason_codes"]}}),
                ),
                verdict: "REVIEW_DENIED",
            };
        }
        // Approved: the same request again takes the approval (one use) → ALLOW.
        match self.decide(body, ctx.meta.get_traceparent()).await {
            Ok(v) if v["status"] == "ALLOW" => allow(&v, "REVIEW_APPROVED"),
            Ok(v) if v["status"] == "BLOCK" => blocked(&v),
            Ok(v) => Gate::Deny {
                result: text_error(
                    format!(
                        "Blocked by Tollgate: review {review_id} was approved but the call was decided {} again; decision {}.",
                        v["status"].as_str().unwrap_or("?"),
                        v["decision_id"].as_str().unwrap_or("?")
                    ),
                    json!({"tollgate": {"status": "BLOCK", "review_id": review_id}}),
                ),
                verdict: "REVIEW_DENIED",
            },
            Err(g) => g,
        }
    }

    async fn report_outcome(
        &self,
        upstream: &str,
        tool: &str,
        decision_id: String,
        is_error: bool,
        took: Duration,
    ) {
        let Some(signer) = &self.shared.outcomes else {
            return;
        };
        let Some(source) = signer.sources.get(upstream) else {
            return;
        };
        let observed = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let report = tollgate_client::OutcomeReport::new(
            decision_id.clone(),
            source.clone(),
            "TOOL_CALL",
            if is_error { -1.0 } else { 1.0 },
            1.0,
            observed,
        );
        let signed = match report.sign(&signer.key) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "outcome not signed");
                return;
            }
        };
        let mut body = match serde_json::to_value(&signed) {
            Ok(v) => v,
            Err(_) => return,
        };
        body["tool"] = json!(format!("{upstream}.{tool}"));
        body["is_error"] = json!(is_error);
        body["duration_ms"] = json!(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        let backend = self.shared.backend.clone();
        let timeout = self.shared.config.tollgate_timeout;
        tokio::spawn(async move {
            match backend
                .json(Method::POST, "/v1/outcomes", Some(&body), timeout)
                .await
            {
                Ok((StatusCode::CREATED | StatusCode::OK, _)) => {}
                Ok((status, v)) => {
                    tracing::warn!(%status, body = %v, decision_id, "outcome report refused");
                }
                Err(e) => tracing::warn!(error = %e, decision_id, "outcome not reported"),
            }
        });
    }
}

fn allow(v: &Value, verdict: &'static str) -> Gate {
    match v["decision_id"].as_str() {
        Some(id) => Gate::Allow {
            decision_id: id.to_owned(),
            grant: v.get("grant").cloned(),
            verdict,
        },
        None => unavailable("an ALLOW without decision_id"),
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_prompts()
                .enable_resources()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            "tollgate-mcp-gateway",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Tool calls pass through Tollgate: a blocked call answers isError with the reason.",
        )
    }

    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        if let Ok(mut p) = self.shared.peers.lock() {
            p.retain(|peer| !peer.is_transport_closed());
            p.push(context.peer.clone());
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let lists = self
            .each_upstream(|peer| async move { peer.list_all_prompts().await })
            .await;
        let mut out = Vec::new();
        let mut names = HashMap::new();
        for (up, prompts) in lists {
            for mut p in prompts {
                let exposed = format!("{up}.{}", p.name);
                names.insert(exposed.clone(), (up.clone(), p.name.clone()));
                p.name = exposed;
                out.push(p);
            }
        }
        if let Ok(mut m) = self.shared.prompts.write() {
            *m = names;
        }
        Ok(ListPromptsResult::with_all_items(out))
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let known = self
            .shared
            .prompts
            .read()
            .ok()
            .and_then(|m| m.get(&request.name).cloned());
        let (up, name) = known
            .or_else(|| {
                let (up, name) = request.name.split_once('.')?;
                Some((up.to_owned(), name.to_owned()))
            })
            .ok_or_else(|| {
                McpError::invalid_params(format!("unknown prompt `{}`", request.name), None)
            })?;
        request.name = name;
        let peer = self.upstream_peer(&up).await?;
        peer.get_prompt_once(request)
            .await
            .map_err(|e| self.upstream_failed(&up, &e))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let lists = self
            .each_upstream(|peer| async move { peer.list_all_resources().await })
            .await;
        let mut out = Vec::new();
        let mut uris = HashMap::new();
        for (up, resources) in lists {
            for r in resources {
                uris.insert(r.uri.clone(), up.clone());
                out.push(r);
            }
        }
        if let Ok(mut m) = self.shared.resources.write() {
            *m = uris;
        }
        Ok(ListResourcesResult::with_all_items(out))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let lists = self
            .each_upstream(|peer| async move { peer.list_all_resource_templates().await })
            .await;
        Ok(ListResourceTemplatesResult::with_all_items(
            lists.into_iter().flat_map(|(_, t)| t).collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let lookup = |s: &Shared| {
            s.resources
                .read()
                .ok()
                .and_then(|m| m.get(&request.uri).cloned())
        };
        let up = match lookup(&self.shared) {
            Some(up) => Some(up),
            None => {
                let _ = self.list_resources(None, ctx).await;
                lookup(&self.shared)
            }
        };
        let up = up.ok_or_else(|| {
            McpError::invalid_params(
                format!("no upstream lists the resource `{}`", request.uri),
                None,
            )
        })?;
        let peer = self.upstream_peer(&up).await?;
        peer.read_resource_once(request)
            .await
            .map_err(|e| self.upstream_failed(&up, &e))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let hide = self.shared.config.hide_blocked_tools;
        let blocked = self
            .shared
            .blocked
            .read()
            .map(|b| b.clone())
            .unwrap_or_default();
        let tools = self
            .all_tools(&ctx)
            .await
            .into_iter()
            .filter(|(_, up, t)| !(hide && blocked.contains(&format!("{up}.{}", t.name))))
            .map(|(exposed, _, mut t)| {
                t.name = exposed.into();
                t
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        let shared = &self.shared;
        let Some((up_name, tool)) = self.resolve(&request.name, &ctx).await else {
            return Err(McpError::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let Some(up) = shared.upstreams.get(&up_name).cloned() else {
            return Err(McpError::invalid_params(
                format!("unknown upstream `{up_name}`"),
                None,
            ));
        };
        let args = request.arguments.clone().unwrap_or_default();
        let size = tollgate_ledger::canonical_json(&Value::Object(args.clone()))
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > shared.config.max_argument_bytes {
            shared.metrics.call(&up_name, &tool, "INVALID");
            return Ok(CallToolResponse::Complete(text_error(
                format!(
                    "Rejected by the Tollgate gateway: the arguments are {size} bytes, more than max_argument_bytes = {}. \
                     The call was not forwarded.",
                    shared.config.max_argument_bytes
                ),
                json!({"tollgate": {"status": "BLOCK", "reason_codes": ["ARGUMENTS_TOO_LARGE"]}}),
            )));
        }
        let Some(actor) = self.actor(&ctx) else {
            shared.metrics.call(&up_name, &tool, "INVALID");
            return Ok(CallToolResponse::Complete(text_error(
                "Rejected by the Tollgate gateway: no actor is configured for this client.".into(),
                json!({"tollgate": {"status": "BLOCK", "reason_codes": ["NO_ACTOR"]}}),
            )));
        };
        let progress = request
            .meta
            .as_ref()
            .and_then(|m| m.get_progress_token())
            .or_else(|| ctx.meta.get_progress_token());
        let body = self.decision_request(&up, &tool, &args, actor, &ctx);
        let gate = self.gate(&body, &ctx, progress.clone()).await;
        let (decision_id, grant, verdict) = match gate {
            Gate::Deny { result, verdict } => {
                shared.metrics.call(&up_name, &tool, verdict);
                shared
                    .metrics
                    .added_latency
                    .observe(started.elapsed().as_secs_f64());
                return Ok(CallToolResponse::Complete(result));
            }
            Gate::Allow {
                decision_id,
                grant,
                verdict,
            } => (decision_id, grant, verdict),
        };
        shared.metrics.call(&up_name, &tool, verdict);
        // Forward once, with the grant.
        let mut params = CallToolRequestParams::new(tool.clone());
        params.arguments = request.arguments;
        let mut meta = request.meta.unwrap_or_default();
        let mut registered = None;
        if let Some(token) = progress {
            let key = format!(
                "tollgate-{}",
                shared.next_token.fetch_add(1, Ordering::Relaxed)
            );
            let ours = ProgressToken(NumberOrString::String(key.clone().into()));
            meta.set_progress_token(ours.clone());
            if let Ok(mut m) = shared.progress.lock() {
                m.insert(token_key(&ours), (ctx.peer.clone(), token));
                registered = Some(token_key(&ours));
            }
        }
        meta.0.0.insert(
            "tollgate".into(),
            json!({"decision_id": decision_id, "grant": grant}),
        );
        params.meta = Some(meta);
        let before_upstream = started.elapsed();
        let upstream_started = Instant::now();
        let answer = match up.peer(UPSTREAM_READY_WAIT).await {
            Some(peer) => {
                match tokio::time::timeout(
                    shared.config.upstream_timeout,
                    peer.call_tool_once(params),
                )
                .await
                {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(format!("upstream `{up_name}` failed: {e}")),
                    Err(_) => Err(format!("upstream `{up_name}` did not answer in time")),
                }
            }
            None => Err(format!("upstream `{up_name}` is not running (restarting)")),
        };
        if let Some(k) = registered
            && let Ok(mut m) = shared.progress.lock()
        {
            m.remove(&k);
        }
        let took = upstream_started.elapsed();
        shared
            .metrics
            .added_latency
            .observe(before_upstream.as_secs_f64());
        match answer {
            Ok(response) => {
                let is_error = match &response {
                    CallToolResponse::Complete(r) => r.is_error == Some(true),
                    _ => false,
                };
                if shared.config.report_outcomes {
                    self.report_outcome(&up_name, &tool, decision_id, is_error, took)
                        .await;
                }
                Ok(response)
            }
            Err(message) => {
                shared.metrics.upstream_error(&up_name);
                if shared.config.report_outcomes {
                    self.report_outcome(&up_name, &tool, decision_id, true, took)
                        .await;
                }
                Err(McpError::internal_error(message, None))
            }
        }
    }
}
