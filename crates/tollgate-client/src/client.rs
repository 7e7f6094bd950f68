//! The HTTP client of the native API.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tollgate_ledger::Jwks;

use crate::decision::Decision;
use crate::error::{Blocked, Error, Failure};
use crate::outcome::{OutcomeReceipt, SignedOutcome};
use crate::point::DecisionPoint;
use crate::request::DecisionRequest;
use crate::verify::{self, DossierDocument};

/// The largest response body read (a dossier with its trace is far smaller).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How long an idle pooled connection is kept: under the server's 30 s keep-alive.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the client does when it gets no verdict (transport error, timeout, 5xx, an
/// unexpected status or body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// No verdict is a block: `decide` answers `Err(Error::Blocked)` with
    /// [`crate::Gate::Unavailable`]. The default, and the only safe choice for actions
    /// that matter.
    #[default]
    Closed,
    /// No verdict lets the action through: `decide` answers an ALLOW stand-in whose
    /// [`Decision::fail_open`] says why. Errors that are the caller's (401, 403, 422),
    /// rate limits (429) and verdicts whose signature does not verify are never
    /// turned into an ALLOW.
    Open,
}

/// Builds a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    tenant: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    max_retries: u32,
    backoff: Duration,
    max_backoff: Duration,
    fail_mode: FailMode,
    trusted_jwks: Option<Jwks>,
    extra_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ClientBuilder {
    // The API key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tenant", &self.tenant)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("fail_mode", &self.fail_mode)
            .field("trusted_jwks", &self.trusted_jwks.is_some())
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            base_url: "http://127.0.0.1:8765".to_owned(),
            api_key: None,
            tenant: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_retries: 2,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            fail_mode: FailMode::Closed,
            trusted_jwks: None,
            extra_roots: Vec::new(),
        }
    }
}

impl ClientBuilder {
    /// The server (default `http://127.0.0.1:8765`).
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The API key, sent as `Authorization: Bearer …`.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The tenant, sent as `tenant_id` (the server checks it is the key's).
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The whole-request timeout (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retries of a request that got no answer, 408, 409, 429 or 5xx (default 2). Decisions
    /// are retried with the same idempotency key, so a retry never decides twice.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first retry's wait, doubled at each retry (default 250 ms); a server's
    /// `Retry-After` wins. No wait is longer than `max_backoff`.
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest wait between retries (default 10 s).
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// What to do without a verdict (default [`FailMode::Closed`]).
    #[must_use]
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Checks every verdict's signature against these keys, offline; a verdict that
    /// does not verify is a block (in either fail mode: it means tampering).
    #[must_use]
    pub fn trust_jwks(mut self, jwks: Jwks) -> Self {
        self.trusted_jwks = Some(jwks);
        self
    }

    /// Also trusts the CA certificates of this PEM bundle, besides the platform's
    /// roots: for a server whose certificate comes from a private CA.
    #[must_use]
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let base = self.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "base url `{base}` must start with http:// or https://"
            )));
        }
        // reqwest is built with rustls and no crypto provider of its own, so that the
        // SDK does not need aws-lc (cmake): use ring unless the application installed
        // a provider first. An `Err` means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for pem in &self.extra_roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("invalid root certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(
                    "a root certificate PEM holds no certificate".to_owned(),
                ));
            }
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("tollgate-client/", env!("CARGO_PKG_VERSION")))
            // Tollgate closes a kept-alive connection after 30 s without a request
            // (`header_read_timeout_ms`); dropping idle ones sooner keeps a request
            // from being sent on a connection the server is closing at that moment.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // A redirect is not a verdict: it is answered as an unexpected status
            // (and the key is never replayed to another host).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                config: self,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    config: ClientBuilder,
}

/// The async client of a Tollgate server. Cheap to clone (an `Arc`).
///
/// ```no_run
/// use tollgate_client::{Client, DecisionPoint, DecisionRequest};
///
/// # async fn run() -> Result<(), tollgate_client::Error> {
/// let client = Client::builder()
///     .base_url("http://127.0.0.1:8765")
///     .api_key("tg_test_…")
///     .build()?;
/// let decision = client
///     .enforce(&DecisionRequest::new("SEND_EMAIL").signal("confidence", 0.95))
///     .await?;
/// println!("allowed: {}", decision.decision_id);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Where the review of a decision stands.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReviewState {
    /// Whether the review is over (approved, rejected or expired).
    pub resolved: bool,
    /// `pending`, `approved`, `rejected`, `expired`; `None` when the decision opened
    /// no review.
    pub review_status: Option<String>,
    /// The review id.
    pub review_id: Option<String>,
    /// The whole answer.
    pub raw: Value,
}

impl ReviewState {
    fn from_json(raw: Value) -> ReviewState {
        let review = raw.get("review").filter(|r| r.is_object());
        ReviewState {
            resolved: raw["resolved"].as_bool().unwrap_or(false),
            review_status: review.and_then(|r| r["status"].as_str()).map(str::to_owned),
            review_id: review
                .and_then(|r| r["review_id"].as_str())
                .map(str::to_owned),
            raw,
        }
    }

    /// Whether the review approved the action.
    pub fn is_approved(&self) -> bool {
        self.review_status.as_deref() == Some("approved")
    }
}

/// Why one attempt got no answer.
enum Sent {
    /// The connection was never made: the server did nothing.
    NotConnected(Failure),
    /// Anything else: the request may have reached the server.
    Failed(Failure),
}

/// A response that arrived.
pub(crate) struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The body: JSON, or a JSON string holding the text when a text body was asked for
    /// (see [`Body`]).
    pub(crate) body: Value,
}

/// What a successful response's body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// JSON (any other 2xx body is an invalid response).
    Json,
    /// UTF-8 text (a signed note, JSON Lines), kept as a JSON string.
    Text,
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from `TOLLGATE_URL` and `TOLLGATE_API_KEY` (and
    /// `TOLLGATE_TENANT` when set).
    pub fn from_env() -> Result<Client, Error> {
        let mut b = Client::builder();
        if let Ok(url) = std::env::var("TOLLGATE_URL") {
            b = b.base_url(url);
        }
        let key = std::env::var("TOLLGATE_API_KEY")
            .map_err(|_| Error::Config("TOLLGATE_API_KEY is not set".to_owned()))?;
        b = b.api_key(key);
        if let Ok(t) = std::env::var("TOLLGATE_TENANT") {
            b = b.tenant(t);
        }
        b.build()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The fail mode.
    pub fn fail_mode(&self) -> FailMode {
        self.inner.config.fail_mode
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        timeout: Option<Duration>,
        expect: Body,
    ) -> Result<Answer, Sent> {
        let url = format!("{}{}", self.inner.base, path);
        let mut req = self.inner.http.request(method.clone(), url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(key) = &self.inner.config.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        #[cfg(feature = "otel")]
        for (name, value) in crate::trace::context_headers() {
            req = req.header(name, value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| {
            if e.is_connect() {
                Sent::NotConnected(transport(e))
            } else {
                Sent::Failed(transport(e))
            }
        })?;
        let status = res.status();
        let headers = res.headers().clone();
        let mut res = res;
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| Sent::Failed(transport(e)))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Sent::Failed(Failure::InvalidResponse(format!(
                    "the body is larger than {MAX_RESPONSE_BYTES} bytes"
                ))));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else if expect == Body::Text && status.is_success() {
            match String::from_utf8(bytes) {
                Ok(text) => Value::String(text),
                Err(_) => {
                    return Err(Sent::Failed(Failure::InvalidResponse(
                        "the body is not UTF-8 text".to_owned(),
                    )));
                }
            }
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) if status.is_success() => {
                    return Err(Sent::Failed(Failure::InvalidResponse(
                        "the body is not JSON".to_owned(),
                    )));
                }
                Err(_) => Value::Null,
            }
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends with retries; `Ok` holds a 2xx answer, `Err` everything else.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, Error> {
        self.send_timed(method, path, body, idempotency_key, None, Body::Json)
            .await
    }

    /// [`Client::send`] with a timeout of its own (long polls) and a choice of body.
    pub(crate) async fn send_timed(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        timeout: Option<Duration>,
        expect: Body,
    ) -> Result<Answer, Error> {
        let config = &self.inner.config;
        let mut attempt = 0u32;
        loop {
            let result = self
                .send_once(&method, path, body, idempotency_key, timeout, expect)
                .await;
            // Decisions (one idempotency key for every attempt) and reads are safe to
            // repeat. Other writes (an outcome, a grant to consume) are repeated only
            // when the server cannot have acted: no connection, or turned away (429,
            // 503) before processing.
            let safe = method == Method::GET || idempotency_key.is_some();
            let retryable = match &result {
                Err(Sent::NotConnected(_)) => true,
                Err(Sent::Failed(Failure::Transport(_) | Failure::Timeout)) => safe,
                Err(Sent::Failed(_)) => false,
                Ok(a) if !safe => {
                    a.status == StatusCode::TOO_MANY_REQUESTS
                        || a.status == StatusCode::SERVICE_UNAVAILABLE
                }
                Ok(a) => {
                    // 409 on a decision: a request with the same idempotency key is
                    // still being decided (an earlier attempt that timed out on our
                    // side). Elsewhere (a used grant) it is final.
                    a.status == StatusCode::REQUEST_TIMEOUT
                        || (a.status == StatusCode::CONFLICT && idempotency_key.is_some())
                        || a.status == StatusCode::TOO_MANY_REQUESTS
                        || a.status.is_server_error()
                }
            };
            if retryable && attempt < config.max_retries {
                let server_says = result.as_ref().ok().and_then(|a| retry_after(&a.headers));
                let doubling = config.backoff.saturating_mul(1u32 << attempt.min(16));
                let wait = server_says.unwrap_or(doubling).min(config.max_backoff);
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return match result {
                Err(Sent::NotConnected(f) | Sent::Failed(f)) => Err(Error::Unavailable(f)),
                Ok(a) if a.status.is_success() => Ok(a),
                Ok(a) => Err(classify(a, idempotency_key.is_some())),
            };
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, Error> {
        Ok(self.send(Method::GET, path, None, None).await?.body)
    }

    /// A GET of a recorded decision: 202 means "pending integration".
    async fn get_recorded(&self, path: &str) -> Result<Value, Error> {
        let answer = self.send(Method::GET, path, None, None).await?;
        if answer.status == StatusCode::ACCEPTED {
            let retry_after = answer
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Error::PendingIntegration { retry_after });
        }
        Ok(answer.body)
    }

    /// Asks for a verdict, without applying the fail mode (every failure is an `Err`).
    async fn decide_raw(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        let mut request = request.clone();
        if request.tenant_id.is_none() {
            request.tenant_id.clone_from(&self.inner.config.tenant);
        }
        // A key of our own makes the client's retries safe: a retried request that
        // did reach the server is answered from the record, not decided twice.
        let key = match &request.idempotency_key {
            Some(k) => k.clone(),
            None => random_key()?,
        };
        request.idempotency_key = Some(key.clone());
        let body = serde_json::to_value(&request)
            .map_err(|e| Error::Config(format!("the request cannot be encoded: {e}")))?;
        let answer = self
            .send(Method::POST, "/v1/decisions", Some(&body), Some(&key))
            .await?;
        let decision = Decision::from_json(answer.body)
            .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))?;
        if let Some(jwks) = &self.inner.config.trusted_jwks {
            verify::decision_signature(&decision, jwks)
                .map_err(|e| Error::Unavailable(Failure::BadSignature(e.to_string())))?;
        }
        Ok(decision)
    }

    /// A recorded decision (`GET /v1/decisions/{id}`).
    pub async fn get_decision(&self, decision_id: &str) -> Result<Decision, Error> {
        let body = self
            .get_recorded(&format!("/v1/decisions/{}", path_segment(decision_id)?))
            .await?;
        Decision::from_json(body)
            .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))
    }

    /// A decision's dossier: its ledger entry, inclusion proof, checkpoint and keys
    /// (verify it with [`verify::dossier`]).
    pub async fn dossier(&self, decision_id: &str) -> Result<DossierDocument, Error> {
        let body = self
            .get_recorded(&format!("/v1/dossiers/{}", path_segment(decision_id)?))
            .await?;
        DossierDocument::from_json(body)
            .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))
    }

    /// The server's public keys (`/.well-known/jwks.json`). Fetch once, pin, and
    /// verify offline from then on.
    pub async fn jwks(&self) -> Result<Jwks, Error> {
        let body = self.get_json("/.well-known/jwks.json").await?;
        serde_json::from_value(body)
            .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Value, Error> {
        self.get_json("/v1/health").await
    }

    /// Fetches the JWKS and checks the decision's signature, its dossier's proof and
    /// that the dossier is this decision's record.
    pub async fn verify(&self, decision: &Decision) -> Result<(), Error> {
        let jwks = self.jwks().await?;
        verify::decision_signature(decision, &jwks)?;
        let dossier = self.dossier(&decision.decision_id).await?;
        verify::dossier_of(decision, &dossier, &jwks)?;
        Ok(())
    }

    /// Waits (long poll, at most 60 s) until the review that an ESCALATE or
    /// REVIEW_REQUIRED decision opened is resolved, or `wait` passes. Once it is
    /// approved, deciding the same request again is allowed (once).
    pub async fn wait_for_review(
        &self,
        decision_id: &str,
        wait: Duration,
    ) -> Result<ReviewState, Error> {
        let secs = wait.as_secs().clamp(1, 60);
        let path = format!(
            "/v1/decisions/{}/wait?timeout={secs}",
            path_segment(decision_id)?
        );
        let answer = self
            .send_timed(
                Method::GET,
                &path,
                None,
                None,
                Some(Duration::from_secs(secs) + self.inner.config.timeout),
                Body::Json,
            )
            .await?;
        Ok(ReviewState::from_json(answer.body))
    }

    /// Marks a grant used (`POST /v1/grants/consume`), so that it works once; with
    /// `request`, the server also checks that it authorises exactly that action. A
    /// grant used before is `Err(Error::Conflict)`. Check the grant offline first with
    /// [`verify::grant_for`].
    pub async fn consume_grant(
        &self,
        grant: &str,
        request: Option<&DecisionRequest>,
    ) -> Result<Value, Error> {
        let mut body = serde_json::json!({"grant": grant});
        if let Some(r) = request {
            body["actor"] = Value::Object(r.actor.clone());
            body["action"] = Value::Object(r.action.clone());
            body["context"] = Value::Object(r.context.clone());
        }
        Ok(self
            .send(Method::POST, "/v1/grants/consume", Some(&body), None)
            .await?
            .body)
    }

    /// Reports a signed outcome (`POST /v1/outcomes`) for the adaptive bias.
    pub async fn report_outcome(&self, outcome: &SignedOutcome) -> Result<OutcomeReceipt, Error> {
        let body = serde_json::to_value(outcome)
            .map_err(|e| Error::Config(format!("the outcome cannot be encoded: {e}")))?;
        let answer = self
            .send(Method::POST, "/v1/outcomes", Some(&body), None)
            .await?;
        serde_json::from_value(answer.body)
            .map_err(|e| Error::Unavailable(Failure::InvalidResponse(e.to_string())))
    }
}

impl DecisionPoint for Client {
    async fn decide(&self, request: &DecisionRequest) -> Result<Decision, Error> {
        match self.decide_raw(request).await {
            Ok(d) => Ok(d),
            // A verdict that does not verify is a sign of tampering, not of an
            // outage: it blocks even when failing open.
            Err(Error::Unavailable(failure @ Failure::BadSignature(_))) => {
                Err(Blocked::fail_closed(failure).into())
            }
            Err(Error::Unavailable(failure)) => match self.inner.config.fail_mode {
                FailMode::Closed => Err(Blocked::fail_closed(failure).into()),
                FailMode::Open => Ok(Decision::fail_open_stand_in(failure.to_string())),
            },
            Err(e) => Err(e),
        }
    }
}

fn transport(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        // The chain says what happened (connection refused, reset...).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Failure::Transport(text)
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn message(body: &Value) -> String {
    match body.get("message") {
        Some(Value::String(m)) => m.clone(),
        _ => match body.get("error").and_then(|e| e.get("message")) {
            Some(Value::String(m)) => m.clone(),
            _ => String::new(),
        },
    }
}

/// A non-2xx answer as an error.
fn classify(a: Answer, decision: bool) -> Error {
    let message = message(&a.body);
    match a.status.as_u16() {
        401 => Error::Unauthorized { message },
        403 => Error::Forbidden { message },
        404 => Error::NotFound,
        409 if decision => Error::Unavailable(Failure::Server {
            status: 409,
            message,
        }),
        409 => Error::Conflict { message },
        400 | 413 | 415 | 422 => Error::Invalid {
            code: a.body["error"].as_str().unwrap_or("invalid").to_owned(),
            message,
            detail: a.body.get("detail").cloned().unwrap_or(Value::Null),
        },
        429 => Error::RateLimited {
            message,
            retry_after: retry_after(&a.headers),
        },
        s @ 500..=599 => Error::Unavailable(Failure::Server { status: s, message }),
        s => Error::Unavailable(Failure::UnexpectedStatus { status: s }),
    }
}

fn random_key() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
    let mut out = String::from("tgc_");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

/// An id used in a URL path or query: ids are `[A-Za-z0-9_.-]`; anything else is
/// refused (so nothing needs escaping).
pub(crate) fn path_segment(id: &str) -> Result<&str, Error> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(id)
    } else {
        Err(Error::Config(format!(
            "`{id}` is not a valid id (use [A-Za-z0-9_.-])"
        )))
    }
}
