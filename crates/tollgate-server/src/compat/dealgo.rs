//! DeAlgo CSC compatibility (docs/protocol.md §3): `POST /v1/decide` (portal, SDK
//! `dealgo-csc` 2.1.1 / 2.3.0), `POST /csc/live-stimulus` (direct runtime, no key),
//! and `POST /api/csc/check` (`dealgo-mcp` 0.2.0). Outcomes are the native
//! `POST /v1/outcomes`, whose body already is the DeAlgo shape.
//!
//! The SDK infers the gate from the portal body: `DELAY` means throttle, and for
//! `DENY` it sniffs `reason` + `reason_raw` for keywords (reality words first, then
//! policy words, then "override"). [`portal_reasons`] picks texts that land on the
//! gate that decided, checked against a copy of the SDK's rule ([`sdk_gate`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tollgate_core::{DecisionRequest, Gate, Mode, Status, Verdict};
use tollgate_store::ApiKeyRecord;

use super::{Reported, lift_signal, str_field};
use crate::config::DirectRuntime;
use crate::routes::error::HttpError as _;
use crate::routes::native::{idempotency_key, sign, verdict_body};
use crate::service::Caller;
use crate::service::body::{fingerprint, parse_object};
use crate::service::decide::{DecideCall, Decided};
use crate::service::{DecisionService, Error as ApiError};
use crate::state::AppState;

/// An error in the DeAlgo families' shape: 429 is `{"error": {"message": …}}` (the
/// SDK turns it into a throttle decision); everything else is the common shape.
#[derive(Debug)]
pub struct DealgoError(pub ApiError);

impl From<ApiError> for DealgoError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for DealgoError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status() != StatusCode::TOO_MANY_REQUESTS {
            return e.into_response();
        }
        let common = e.body();
        let retry_after = match &e {
            ApiError::RateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        };
        let mut error = json!({
            "message": common["message"],
            "code": common["error"],
            "request_id": common["request_id"],
        });
        if let Some(r) = common.get("resets_at") {
            error["resets_at"] = r.clone();
        }
        if let Some(s) = retry_after {
            error["retry_after_s"] = json!(s);
        }
        let mut response = (e.status(), Json(json!({ "error": error }))).into_response();
        if let Some(s) = retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The gate the DeAlgo SDK (2.1.1, 2.3.0) infers from a portal body's `decision`,
/// `reason` and `reason_raw` (`csc_sdk.models.Decision.from_response`); `None` is
/// its `Gate.UNKNOWN`.
pub fn sdk_gate(decision: &str, reason: &str, reason_raw: &str) -> Option<Gate> {
    match decision {
        "APPROVE" => return Some(Gate::Permit),
        "DELAY" => return Some(Gate::Throttle),
        _ => {}
    }
    let text = format!("{reason} {reason_raw}").to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if any(&["reality", "volatility", "mismatch", "stated context"]) {
        Some(Gate::Reality)
    } else if any(&["policy", "safety check", "sps", "seg"]) {
        Some(Gate::Policy)
    } else if any(&["override"]) {
        Some(Gate::Override)
    } else {
        None
    }
}

/// `decision` and `action` of the portal shape.
pub fn portal_decision(status: Status, gate: Gate) -> (&'static str, &'static str) {
    match (status, gate) {
        (Status::Allow, _) => ("APPROVE", "EXECUTE"),
        (Status::Block, Gate::Throttle) => ("DELAY", "DELAY"),
        _ => ("DENY", "REJECT"),
    }
}

/// `reason` and `reason_raw` for an outcome, chosen so the SDK's keyword sniffing
/// lands on the gate that decided (review-gate approvals are permits).
pub fn portal_reasons(r: &Reported<'_>) -> (String, String) {
    let codes = r.reason_codes.join(",");
    let expl = r.explanation;
    let candidates: Vec<(String, String)> = match (r.status, r.gate) {
        (Status::Allow, _) => vec![("permitted".into(), "permitted".into())],
        (Status::Block, Gate::Throttle) => vec![(
            format!(
                "throttled: retry in {} ms",
                r.retry_after_ms.unwrap_or_default()
            ),
            format!("throttle:{codes}"),
        )],
        (Status::Block, Gate::Reality) => vec![(
            format!("reality check failed: {expl}"),
            format!("reality:{codes}"),
        )],
        (Status::Block, Gate::Override) => vec![
            (
                format!("blocked by operator override: {expl}"),
                format!("override:{codes}"),
            ),
            (
                "blocked by operator override".into(),
                format!("override:{codes}"),
            ),
            ("blocked by operator override".into(), "override".into()),
        ],
        (status, _) => {
            let lead = match status {
                Status::Escalate => "escalated by policy",
                Status::ReviewRequired => "review required by policy",
                _ => "blocked by policy",
            };
            vec![
                (format!("{lead}: {expl}"), format!("policy:{codes}")),
                (lead.into(), format!("policy:{codes}")),
                (lead.into(), "policy".into()),
            ]
        }
    };
    let want = match r.status {
        Status::Allow => Gate::Permit,
        _ => r.gate,
    };
    let (decision, _) = portal_decision(r.status, r.gate);
    let want = if matches!(want, Gate::Review) {
        Gate::Policy
    } else {
        want
    };
    let fallback = candidates.last().cloned().unwrap_or_default();
    candidates
        .into_iter()
        .find(|(reason, raw)| sdk_gate(decision, reason, raw) == Some(want))
        .unwrap_or(fallback)
}

/// The portal response body (`/v1/decide`, `/api/csc/check`) of a recorded decision.
pub fn portal_body(state: &DecisionService, d: &Decided) -> Value {
    let v = &d.verdict;
    let r = Reported::applied(v);
    let (decision, action) = portal_decision(r.status, r.gate);
    let (reason, reason_raw) = portal_reasons(&r);
    let mut out = json!({
        "decision": decision,
        "action": action,
        "reason": reason,
        "reason_raw": reason_raw,
        "stimulus_id": d.decision_id,
        "decision_log_id": d.decision_id,
        "latency_ms": d.latency_ms,
        "environment": d.environment,
        "idempotency_replayed": false,
        "status": v.status.as_str(),
        "gate": v.gate.as_str(),
        "reason_codes": v.reason_codes,
        "explanation": v.explanation,
        "dossier_url": format!("{}/v1/dossiers/{}", state.config().base_url(), d.decision_id),
        "ledger": crate::routes::native::ledger_ref(d),
        "decided_at": d.decided_at,
    });
    extras(&mut out, v);
    from_native(&mut out, state, d);
    if let Some(b) = v.adaptive_bias {
        out["v2_bias"] = json!(b);
    }
    out
}

/// Copies what the native verdict carries beyond the engine's verdict (the review
/// opened for ESCALATE / REVIEW_REQUIRED, the execution grant of an ALLOW).
fn from_native(out: &mut Value, state: &DecisionService, d: &Decided) {
    let native = verdict_body(state, d);
    for k in ["review_id", "grant"] {
        if let Some(v) = native.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    if let (Some(id), Some(review)) = (
        native.get("review_id").filter(|v| !v.is_null()),
        out.get_mut("review").and_then(Value::as_object_mut),
    ) {
        review.insert("id".into(), id.clone());
    }
}

/// Fields shared by both DeAlgo shapes: throttle delay, shadow, review.
fn extras(out: &mut Value, v: &Verdict) {
    if let Some(ms) = v.retry_after_ms {
        out["retry_after_ms"] = json!(ms);
    }
    if let Some(w) = &v.would_be {
        out["shadow"] = json!({
            "would_be": w.status.as_str(),
            "gate": w.gate.as_str(),
            "reason_codes": w.reason_codes,
            "explanation": w.explanation,
        });
    }
    if let Some(r) = &v.review {
        out["review"] = json!({
            "status": "pending",
            "rule": r.rule,
            "policy_id": r.policy_id,
            "approvers": r.approvers,
            "min_approvals": r.min_approvals,
            "expires_in_ms": r.expires_in_ms,
        });
    }
}

/// The runtime `execution` value of an outcome.
pub fn execution(status: Status, gate: Gate) -> &'static str {
    match (status, gate) {
        (Status::Allow, _) => "permitted",
        (Status::Block, Gate::Throttle) => "blocked_controlled",
        (Status::Block, Gate::Reality) => "blocked_reality_mismatch",
        (Status::Block, Gate::Override) => "blocked_override",
        _ => "blocked_policy",
    }
}

/// The direct-runtime response body (`/csc/live-stimulus`).
pub fn runtime_body(state: &DecisionService, d: &Decided) -> Value {
    let v = &d.verdict;
    let r = Reported::applied(v);
    let (reason, _) = portal_reasons(&r);
    let mut out = json!({
        "execution": execution(v.status, v.gate),
        "reason": reason,
        "stimulus": {"id": d.decision_id},
        "decision": {
            "decision_id": d.decision_id,
            "status": v.status.as_str(),
            "gate": v.gate.as_str(),
            "reason_codes": v.reason_codes,
            "explanation": v.explanation,
            "environment": d.environment,
            "decided_at": d.decided_at,
            "latency_ms": d.latency_ms,
            "ledger": crate::routes::native::ledger_ref(d),
            "dossier_url": format!("{}/v1/dossiers/{}", state.config().base_url(), d.decision_id),
        },
        "idempotency_replayed": false,
    });
    if v.status == Status::Block && v.gate == Gate::Reality {
        out["reality_reason"] = json!(v.explanation);
    }
    extras(&mut out, v);
    from_native(&mut out, state, d);
    if let Some(b) = v.adaptive_bias {
        out["v2_bias"] = json!({"delta": b});
    }
    out
}

fn field_error(field: &str, msg: &str, kind: &str) -> ApiError {
    ApiError::field(&["body", field], msg, kind)
}

/// Checks `field` of `map` is a number when present.
fn number_or_absent(map: &Map<String, Value>, field: &str) -> Result<(), ApiError> {
    match map.get(field) {
        None | Some(Value::Null | Value::Number(_)) => Ok(()),
        Some(_) => Err(field_error(
            field,
            "Input should be a valid number",
            "float_parsing",
        )),
    }
}

fn string_or_absent(map: &Map<String, Value>, field: &str) -> Result<(), ApiError> {
    match map.get(field) {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(_) => Err(field_error(
            field,
            "Input should be a valid string",
            "string_type",
        )),
    }
}

/// 2.3.0's `agent_id`: `[a-zA-Z0-9_-]{1,64}`.
pub fn valid_agent_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The neutral request of a portal `/v1/decide` body.
pub fn translate_portal(
    body: &Map<String, Value>,
    tenant: &str,
) -> Result<DecisionRequest, ApiError> {
    let action_type = match body.get("action_type") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(field_error(
                "action_type",
                "String should have at least 1 character",
                "string_too_short",
            ));
        }
        Some(_) => {
            return Err(field_error(
                "action_type",
                "Input should be a valid string",
                "string_type",
            ));
        }
        None => return Err(field_error("action_type", "Field required", "missing")),
    };
    for f in ["risk_score", "confidence"] {
        number_or_absent(body, f)?;
    }
    for f in ["intent", "agent_id"] {
        string_or_absent(body, f)?;
    }
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(field_error(
                "metadata",
                "Input should be a valid dictionary",
                "dict_type",
            ));
        }
    };
    let agent_id = str_field(body, "agent_id");
    if let Some(a) = &agent_id
        && !valid_agent_id(a)
    {
        return Err(field_error(
            "agent_id",
            "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
            "string_pattern_mismatch",
        ));
    }
    let mut signals = BTreeMap::new();
    lift_signal(&mut signals, "risk_score", body, "risk_score");
    lift_signal(&mut signals, "confidence", body, "confidence");
    for name in super::SIGNALS {
        lift_signal(&mut signals, name, &metadata, name);
    }
    let source = str_field(&metadata, "source").or_else(|| agent_id.clone());
    let actor_id = agent_id
        .clone()
        .or_else(|| str_field(&metadata, "agent_id"))
        .or_else(|| source.clone())
        .unwrap_or_else(|| "dealgo-client".to_owned());
    let mut action = Map::new();
    action.insert("type".into(), json!(action_type));
    if let Some(s) = metadata.get("symbol") {
        action.insert("symbol".into(), s.clone());
    }
    Ok(DecisionRequest {
        tenant: tenant.to_owned(),
        actor: json_map(json!({"id": actor_id, "type": "AI_AGENT"})),
        action,
        adaptive: metadata.get("v2_aware") == Some(&Value::Bool(true)),
        context: metadata,
        signals,
        intent: str_field(body, "intent"),
        source,
        mode: Mode::Enforce,
    })
}

/// The neutral request of a flat trading-coded body (`/csc/live-stimulus`,
/// `/api/csc/check`): `feed`, `risk`, `confidence`, `volatility`, `intent`,
/// `symbol`, `source`, `v2_aware`, anything else (kept as context).
pub fn translate_flat(
    body: &Map<String, Value>,
    tenant: &str,
) -> Result<DecisionRequest, ApiError> {
    let feed = match body.get("feed") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(field_error(
                "feed",
                "Input should be a non-empty string",
                "string_type",
            ));
        }
        None => return Err(field_error("feed", "Field required", "missing")),
    };
    for f in ["risk", "risk_score", "confidence", "volatility"] {
        number_or_absent(body, f)?;
    }
    for f in ["intent", "source", "agent_id"] {
        string_or_absent(body, f)?;
    }
    let agent_id = str_field(body, "agent_id");
    if let Some(a) = &agent_id
        && !valid_agent_id(a)
    {
        return Err(field_error(
            "agent_id",
            "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
            "string_pattern_mismatch",
        ));
    }
    let mut signals = BTreeMap::new();
    lift_signal(&mut signals, "risk_score", body, "risk");
    lift_signal(&mut signals, "risk_score", body, "risk_score");
    lift_signal(&mut signals, "confidence", body, "confidence");
    lift_signal(&mut signals, "volatility", body, "volatility");
    let source = str_field(body, "source");
    let actor_id = agent_id
        .or_else(|| source.clone())
        .unwrap_or_else(|| "dealgo-runtime".to_owned());
    let mut action = Map::new();
    action.insert("type".into(), json!(feed));
    if let Some(s) = body.get("symbol") {
        action.insert("symbol".into(), s.clone());
    }
    let mut context = body.clone();
    context.remove("feed");
    context.remove("idempotency_key");
    Ok(DecisionRequest {
        tenant: tenant.to_owned(),
        actor: json_map(json!({"id": actor_id, "type": "AI_AGENT"})),
        action,
        adaptive: body.get("v2_aware") == Some(&Value::Bool(true)),
        context,
        signals,
        intent: str_field(body, "intent"),
        source,
        mode: Mode::Enforce,
    })
}

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Which response shape to build.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Portal,
    Runtime,
}

/// Decides one translated request with idempotency, and answers in `shape`.
async fn run(
    state: &DecisionService,
    caller: Caller,
    headers: &HeaderMap,
    received: Value,
    request: DecisionRequest,
    shape: Shape,
    family: &'static str,
) -> Result<Response, DealgoError> {
    let key = idempotency_key(
        headers,
        received.get("idempotency_key").and_then(Value::as_str),
    );
    let print = fingerprint(&received)?;
    let tenant = caller.tenant().to_owned();
    let call = DecideCall {
        caller,
        request,
        received,
        policy_refs: Vec::new(),
        idempotency_key: key.clone(),
        correlation_id: headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        want_grant: false,
        family,
    };
    let st = state;
    let answer = state
        .idempotent(&tenant, key.as_deref(), &print, || async move {
            let decided = st.decide(call).await?;
            Ok(match shape {
                Shape::Portal => portal_body(st, &decided),
                Shape::Runtime => runtime_body(st, &decided),
            })
        })
        .await?;
    let mut body = answer.body;
    if answer.replayed {
        body["idempotency_replayed"] = json!(true);
    }
    Ok((StatusCode::OK, Json(sign(state, body)?)).into_response())
}

fn object(value: Value) -> Map<String, Value> {
    json_map(value)
}

/// `POST /v1/decide` (portal mode).
pub async fn decide(
    State(app): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, DealgoError> {
    let state = app.service();
    let caller = caller?;
    caller.require("decide")?;
    let received = parse_object(&bytes, state.config().max_json_depth)?;
    let request = translate_portal(&object(received.clone()), caller.tenant())?;
    run(
        state,
        caller,
        &headers,
        received,
        request,
        Shape::Portal,
        "dealgo",
    )
    .await
}

/// `POST /api/csc/check` (`dealgo-mcp`'s gate): the flat body, the portal answer.
pub async fn check(
    State(app): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, DealgoError> {
    let state = app.service();
    let caller = caller?;
    caller.require("decide")?;
    let received = parse_object(&bytes, state.config().max_json_depth)?;
    let request = translate_flat(&object(received.clone()), caller.tenant())?;
    run(
        state,
        caller,
        &headers,
        received,
        request,
        Shape::Portal,
        "dealgo-mcp",
    )
    .await
}

/// Whether the direct-runtime endpoint serves a caller at `peer` (`None` when the
/// server was not started with connection info: treated as not loopback).
pub fn runtime_allowed(mode: DirectRuntime, peer: Option<SocketAddr>) -> bool {
    match mode {
        DirectRuntime::Off => false,
        DirectRuntime::Open => true,
        DirectRuntime::Loopback => peer.is_some_and(|p| {
            let ip = p.ip();
            ip.is_loopback()
                || match ip {
                    std::net::IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                    }
                    std::net::IpAddr::V4(_) => false,
                }
        }),
    }
}

fn runtime_forbidden(message: &str) -> Response {
    let body = json!({
        "error": {"message": message, "code": "direct_runtime_forbidden"},
        "message": message,
        "request_id": crate::request_id::current(),
    });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// `POST /csc/live-stimulus` (direct-runtime mode, no API key): served to loopback
/// callers by default, deciding for the configured tenant and environment.
pub async fn live_stimulus(
    State(app): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, DealgoError> {
    let state = app.service();
    let config = state.config();
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    if !runtime_allowed(config.direct_runtime, peer) {
        return Ok(runtime_forbidden(match config.direct_runtime {
            DirectRuntime::Off => {
                "the direct-runtime endpoint is turned off (direct_runtime = \"off\"); use POST /v1/decide with an API key"
            }
            _ => {
                "the direct-runtime endpoint serves loopback callers only (direct_runtime = \"loopback\"); use POST /v1/decide with an API key"
            }
        }));
    }
    let tenant = config.direct_runtime_tenant.clone();
    if state
        .store()
        .tenant(&tenant)
        .map_err(ApiError::from)?
        .is_none()
    {
        return Ok(runtime_forbidden(&format!(
            "the direct-runtime tenant `{tenant}` does not exist"
        )));
    }
    // Built from JSON so that fields added to key records later take their defaults.
    let key: ApiKeyRecord = serde_json::from_value(json!({
        "id": "direct-runtime",
        "tenant": tenant,
        "hash": "",
        "scopes": ["decide"],
        "environment": config.direct_runtime_environment,
        "created_ms": 0,
        "revoked_ms": null,
        "expires_ms": null,
        "name": "direct runtime (no API key)",
    }))
    .map_err(ApiError::internal)?;
    let caller = Caller { key };
    state.check_key_rate("direct-runtime").await?;
    let received = parse_object(&bytes, config.max_json_depth)?;
    let request = translate_flat(&object(received.clone()), &tenant)?;
    run(
        state,
        caller,
        &headers,
        received,
        request,
        Shape::Runtime,
        "dealgo-runtime",
    )
    .await
}
