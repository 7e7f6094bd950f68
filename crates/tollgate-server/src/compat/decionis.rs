//! Decionis 0.1.0 compatibility (docs/protocol.md §2): `POST /v1/decisions/evaluate`
//! and `POST /v1/policies/validate`. Dossiers and health are the native endpoints.
//!
//! Responses are signed the way the SDK's `DecionisClient.verify_signature` checks
//! them: Ed25519 over Python's `json.dumps(body, sort_keys=True,
//! separators=(",", ":"))` of the body without `signature` (see [`pyjson`]), and no
//! `null` anywhere, because the SDK drops `None` before dumping.
//!
//! [`pyjson`]: super::pyjson

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_core::{DecisionRequest, Mode, PolicyFormat, compile_policy};

use super::pyjson::{dumps_sorted, strip_nulls};
use super::{Reported, SIGNALS, lift_signal, str_field};
use crate::routes::native::verdict_body;
use crate::service::Caller;
use crate::service::body::{decode, fingerprint, parse_object};
use crate::service::decide::{DecideCall, Decided};
use crate::service::{DecisionService, Error as ApiError};
use crate::state::AppState;

/// The SDK's `DecisionRequest`, snake_case or camelCase. Unknown fields are kept in
/// the recorded request.
#[derive(Debug, Deserialize)]
pub struct EvaluateRequest {
    /// Must be the key's tenant when given.
    #[serde(default, alias = "tenantId")]
    pub tenant_id: Option<String>,
    /// Who acts.
    pub actor: Map<String, Value>,
    /// What is proposed (`type` is required by the engine).
    pub action: Map<String, Value>,
    /// Context; `risk_score`, `confidence`, `volatility` here (or in `action`) become
    /// signals, as does a `signals` object of numbers.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Policies: `id` or `id@N`.
    #[serde(default, alias = "policyRefs")]
    pub policy_refs: Vec<String>,
    /// Idempotency key (the header wins).
    #[serde(default, alias = "idempotencyKey")]
    pub idempotency_key: Option<String>,
    /// Correlation id (else `X-Correlation-ID`).
    #[serde(default, alias = "correlationId")]
    pub correlation_id: Option<String>,
    /// Shadow: every gate runs, the would-be verdict is recorded and answered.
    #[serde(default, alias = "shadowMode")]
    pub shadow_mode: bool,
    /// enforce | shadow | dry_run.
    #[serde(default, alias = "enforcementMode")]
    pub enforcement_mode: Mode,
}

/// The neutral request of an evaluate body, and the mode the caller asked for.
pub fn translate(req: EvaluateRequest, tenant: &str) -> (DecisionRequest, Mode) {
    let mut signals = BTreeMap::new();
    if let Some(Value::Object(given)) = req.context.get("signals") {
        for (k, v) in given {
            if let Some(n) = v.as_f64() {
                signals.insert(k.clone(), n);
            }
        }
    }
    for name in SIGNALS {
        lift_signal(&mut signals, name, &req.context, name);
        lift_signal(&mut signals, name, &req.action, name);
    }
    let mode = if req.shadow_mode {
        Mode::Shadow
    } else {
        req.enforcement_mode
    };
    let intent = str_field(&req.context, "intent").or_else(|| str_field(&req.action, "intent"));
    let source = str_field(&req.actor, "id");
    let request = DecisionRequest {
        tenant: tenant.to_owned(),
        actor: req.actor,
        action: req.action,
        context: req.context,
        signals,
        intent,
        source,
        mode,
        adaptive: false,
    };
    (request, mode)
}

/// The Decionis response body of a recorded decision (unsigned, no nulls).
///
/// Besides the SDK's fields it carries the native verdict's (gate, policy, ledger
/// position, environment, shadow, review) and the numeric `signals` the engine read.
pub fn response_body(
    state: &DecisionService,
    d: &Decided,
    requested: Mode,
    signals: &BTreeMap<String, f64>,
) -> Value {
    let mut body = verdict_body(state, d);
    if !signals.is_empty() {
        body["signals"] = json!(signals);
    }
    // A request that asked for shadow gets the would-be status, so that the SDK
    // (which does not raise in shadow) reports what would have happened.
    if requested != Mode::Enforce {
        let r = Reported::would_be(&d.verdict);
        body["status"] = json!(r.status.as_str());
        body["gate"] = json!(r.gate.as_str());
        body["reason_codes"] = json!(r.reason_codes);
        body["explanation"] = json!(r.explanation);
        if let Some(ms) = r.retry_after_ms {
            body["retry_after_ms"] = json!(ms);
        }
        if let Some(shadow) = body.get_mut("shadow").and_then(Value::as_object_mut) {
            shadow.insert("enforced".into(), json!(false));
        }
    }
    strip_nulls(&mut body);
    body
}

/// Adds `signature` (Ed25519 over the Python `json.dumps` bytes of `body`).
pub fn sign_python(state: &DecisionService, mut body: Value) -> Value {
    strip_nulls(&mut body);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("signature");
    }
    let bytes = dumps_sorted(&body);
    let key = state.server_key();
    let signature = json!({
        "algorithm": "Ed25519",
        "key_id": key.kid,
        "value": key.sign_b64(bytes.as_bytes()),
    });
    if let Some(obj) = body.as_object_mut() {
        obj.insert("signature".into(), signature);
    }
    body
}

/// `POST /v1/decisions/evaluate`.
pub async fn evaluate(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let state = app.service();
    caller.require("decide")?;
    let received = parse_object(&bytes, state.config().max_json_depth)?;
    let req: EvaluateRequest = decode(received.clone())?;
    let (key, correlation_id) = crate::routes::native::call_ids(
        &caller,
        &headers,
        req.tenant_id.as_deref(),
        req.idempotency_key.as_deref(),
        req.correlation_id.as_deref(),
    )?;
    let policy_refs = req.policy_refs.clone();
    let tenant = caller.tenant().to_owned();
    let (request, requested) = translate(req, &tenant);
    let signals = request.signals.clone();
    let print = fingerprint(&received)?;
    let call = DecideCall {
        caller,
        request,
        received,
        policy_refs,
        idempotency_key: key.clone(),
        correlation_id,
        want_grant: false,
        family: "decionis",
    };
    let st = state;
    let answer = state
        .idempotent(&tenant, key.as_deref(), &print, || async move {
            let decided = st.decide(call).await?;
            Ok(response_body(st, &decided, requested, &signals))
        })
        .await?;
    let mut body = answer.body;
    if answer.replayed {
        body["idempotency_replayed"] = json!(true);
    }
    Ok((StatusCode::OK, Json(sign_python(state, body))).into_response())
}

/// The policy text and format of a validate body: a JSON policy document, a
/// wrapper `{"text": "..."}` (or `document`, `policy`) holding YAML, TOML or JSON
/// text, or the text itself.
pub fn policy_text(bytes: &[u8]) -> Result<(String, PolicyFormat), ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::field(&["body"], "the body must be UTF-8", "value_error"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            let wrapped = (map.len() == 1)
                .then(|| {
                    ["text", "document", "policy"]
                        .iter()
                        .find_map(|k| str_field(&map, k))
                })
                .flatten();
            Ok(match wrapped {
                Some(inner) => {
                    let format = PolicyFormat::detect(&inner);
                    (inner, format)
                }
                None => (text.to_owned(), PolicyFormat::Json),
            })
        }
        _ => Ok((text.to_owned(), PolicyFormat::detect(text))),
    }
}

/// `POST /v1/policies/validate`: compiles the document without publishing it.
pub async fn validate_policy(
    State(_app): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("decide")?;
    let (text, format) = policy_text(&bytes)?;
    Ok(Json(match compile_policy(&text, format) {
        Ok(p) => json!({
            "valid": true,
            "errors": [],
            "policy": {"id": p.id(), "version": p.version()},
        }),
        Err(e) => json!({
            "valid": false,
            "errors": e.issues.iter().map(|i| json!({"path": i.path, "message": i.message})).collect::<Vec<_>>(),
        }),
    }))
}
