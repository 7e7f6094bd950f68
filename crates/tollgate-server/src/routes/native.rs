//! The native API (`docs/protocol.md`): decide, read a decision, dossier, health,
//! signing keys, metrics.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tollgate_api::DecisionRequest as WireRequest;
use tollgate_core::DecisionRequest;
use tollgate_ledger::public_key_pem;

use crate::service::body::{decode, fingerprint, parse_object};
use crate::service::decide::{DecideCall, Decided};
use crate::service::signing::SignatureMode;
use crate::service::{Caller, DecisionService, Error as ApiError};
use crate::state::AppState;

/// `Idempotency-Key` header, or the body field.
pub(crate) fn idempotency_key(headers: &HeaderMap, body: Option<&str>) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| body.map(str::to_owned))
}

/// Checks a body's `tenant_id` against the key's tenant and picks the idempotency key
/// (header first) and correlation id (body first) of a decision call.
pub(crate) fn call_ids(
    caller: &Caller,
    headers: &HeaderMap,
    tenant_id: Option<&str>,
    idempotency: Option<&str>,
    correlation: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    if tenant_id.is_some_and(|t| t != caller.tenant()) {
        return Err(ApiError::field(
            &["body", "tenant_id"],
            "tenant_id must be the API key's tenant",
            "value_error",
        ));
    }
    let correlation_id = correlation.map(str::to_owned).or_else(|| {
        headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    Ok((idempotency_key(headers, idempotency), correlation_id))
}

/// Where a decision sits in the ledger: `"status": "sequenced"` with its seq and entry
/// hash, or `"status": "pending"` (durable, not yet sequenced: cluster mode) with both
/// `null`.
pub(crate) fn ledger_ref(d: &Decided) -> Value {
    json!({
        "seq": d.seq,
        "entry_hash": d.entry_hash,
        "status": if d.seq.is_some() { "sequenced" } else { "pending" },
    })
}

/// The neutral verdict body of a recorded decision (unsigned).
pub(crate) fn verdict_body(state: &DecisionService, d: &Decided) -> Value {
    let v = &d.verdict;
    let mut out = json!({
        "decision_id": d.decision_id,
        "status": v.status.as_str(),
        "gate": v.gate.as_str(),
        "reason_codes": v.reason_codes,
        "explanation": v.explanation,
        "ledger": ledger_ref(d),
        "dossier_url": format!("{}/v1/dossiers/{}", state.config().base_url(), d.decision_id),
        "latency_ms": d.latency_ms,
        "environment": d.environment,
        "decided_at": d.decided_at,
        "mode": v.mode,
        "idempotency_replayed": false,
    });
    if let Some(p) = v.policies.first() {
        out["policy"] = json!({"id": p.id, "version": p.version, "text_sha256": p.text_sha256});
    }
    if v.policies.len() > 1 {
        out["policies"] = json!(v.policies);
    }
    if let Some(ms) = v.retry_after_ms {
        out["retry_after_ms"] = json!(ms);
    }
    if let Some(b) = v.adaptive_bias {
        out["adaptive_bias"] = json!(b);
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
        out["review"] = json!({"rule": r.rule, "approvers": r.approvers});
    }
    if let Some(id) = &d.review_id {
        out["review_id"] = json!(id);
    }
    if let Some(g) = &d.grant {
        out["grant"] = json!(g);
    }
    out
}

/// Adds `signature` over the RFC 8785 bytes of `body` (which must not hold one).
///
/// Native responses are signed over their canonical JSON (RFC 8785) with the server's
/// Ed25519 key; `signature.key_id` names the key in `/.well-known/jwks.json`.
pub(crate) fn sign(state: &DecisionService, mut body: Value) -> Result<Value, ApiError> {
    let bytes = tollgate_core::digest::canonical_bytes(&body).map_err(ApiError::internal)?;
    let signature =
        serde_json::to_value(state.signer().sign_alone(&bytes)).map_err(ApiError::internal)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("signature".into(), signature);
    }
    Ok(body)
}

/// The response bytes of a signed `body` (an object without `signature`): its
/// RFC 8785 bytes, signed alone or in a batch as `mode` says, with `signature` added
/// as the last member. The canonical bytes are written once and sent as they are.
pub(crate) async fn signed_bytes(
    state: &DecisionService,
    body: &Value,
    mode: SignatureMode,
) -> Result<Vec<u8>, ApiError> {
    let mut bytes = tollgate_core::digest::canonical_bytes(body).map_err(ApiError::internal)?;
    let signature = state.signer().sign(&bytes, mode).await;
    // `{...}` becomes `{...,"signature":{...}}` (or `{"signature":{...}}`).
    if bytes.pop() != Some(b'}') {
        return Err(ApiError::internal("a response body is not a JSON object"));
    }
    if bytes.len() > 1 {
        bytes.push(b',');
    }
    bytes.extend_from_slice(b"\"signature\":");
    serde_json::to_writer(&mut bytes, &signature).map_err(ApiError::internal)?;
    bytes.push(b'}');
    Ok(bytes)
}

/// The signature mode a decision request asks for: the `Tollgate-Signature-Mode`
/// header (`batch`, the default, or `single`).
pub(crate) fn signature_mode(headers: &HeaderMap) -> Result<SignatureMode, ApiError> {
    let Some(value) = headers.get(SIGNATURE_MODE) else {
        return Ok(SignatureMode::default());
    };
    value
        .to_str()
        .ok()
        .and_then(SignatureMode::parse)
        .ok_or_else(|| {
            ApiError::field(
                &["header", SIGNATURE_MODE],
                "must be `batch` or `single`",
                "value_error",
            )
        })
}

/// The request header that chooses how a verdict is signed.
pub const SIGNATURE_MODE: &str = "tollgate-signature-mode";

/// `POST /v1/decisions`.
#[utoipa::path(
    post,
    path = "/v1/decisions",
    operation_id = "decide",
    tag = "decisions",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 h")),
    request_body = WireRequest,
    responses(
        (status = 200, description = "A signed verdict, recorded before it was sent", body = Object),
        (status = 401, body = Object),
        (status = 403, body = Object),
        (status = 413, body = Object),
        (status = 422, description = "Validation failure or idempotency_key_reuse", body = Object),
        (status = 429, description = "Quota or rate limit", body = Object),
        (status = 503, description = "Ledger unavailable, overloaded or timed out: no verdict", body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require("decide")?;
    let mode = signature_mode(&headers)?;
    let received = parse_object(&bytes, state.config().max_json_depth)?;
    let req: WireRequest = decode(received.clone())?;
    let (key, correlation_id) = call_ids(
        &caller,
        &headers,
        req.tenant_id.as_deref(),
        req.idempotency_key.as_deref(),
        req.correlation_id.as_deref(),
    )?;
    let request = DecisionRequest {
        tenant: caller.tenant().to_owned(),
        actor: req.actor,
        action: req.action,
        context: req.context,
        signals: req.signals,
        intent: req.intent,
        source: req.source,
        mode: req.mode,
        adaptive: req.adaptive,
    };
    // The fingerprint only serves idempotency: no key, no canonicalisation.
    let print = match &key {
        Some(_) => fingerprint(&received)?,
        None => String::new(),
    };
    let tenant = caller.tenant().to_owned();
    let call = DecideCall {
        caller,
        request,
        received,
        policy_refs: req.policy_refs,
        idempotency_key: key.clone(),
        correlation_id,
        want_grant: req.grant,
        family: "native",
    };
    let service = state.service();
    let answer = service
        .idempotent(&tenant, key.as_deref(), &print, || async move {
            let decided = service.decide(call).await?;
            Ok(verdict_body(service, &decided))
        })
        .await?;
    let mut body = answer.body;
    if answer.replayed {
        body["idempotency_replayed"] = json!(true);
    }
    let bytes = signed_bytes(service, &body, mode).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

/// `GET /v1/decisions/{id}`.
#[utoipa::path(
    get,
    path = "/v1/decisions/{id}",
    operation_id = "get_decision",
    tag = "decisions",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The signed verdict with the recorded request", body = Object),
        (status = 202, description = "Recorded (durable) but pending integration into the ledger (cluster mode); retry after `Retry-After`", body = Object),
        (status = 401, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn get_decision(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.service();
    let (entry, decision) = service.decision(caller.tenant(), &id)?;
    let request = serde_json::to_value(&decision.request).map_err(ApiError::internal)?;
    let decided = DecisionService::decided_from_entry(&entry, decision)?;
    let mut body = verdict_body(service, &decided);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("latency_ms");
        obj.insert("request".into(), request);
    }
    Ok(Json(sign(service, body)?))
}

/// `GET /v1/dossiers/{id}`: the decision with its proof, checkable offline.
#[utoipa::path(
    get,
    path = "/v1/dossiers/{id}",
    operation_id = "dossier",
    tag = "decisions",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Request, verdict, trace, ledger entry, inclusion proof, checkpoint", body = Object),
        (status = 202, description = "Recorded (durable) but pending integration into the ledger (cluster mode); retry after `Retry-After`", body = Object),
        (status = 401, body = Object),
        (status = 404, body = Object),
    ),
    security(("bearer" = []))
)]
pub async fn dossier(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.service().dossier(&caller, &id).await?))
}

/// `GET /v1/health`.
#[utoipa::path(
    get,
    path = "/v1/health",
    operation_id = "health",
    tag = "public",
    responses(
        (status = 200, body = Object),
    )
)]
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let store = state.service().store();
    let ledger = store.ledger_tenants().is_ok();
    Json(json!({
        "status": if ledger { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "ledger": if ledger { "ok" } else { "unavailable" },
        // Cluster mode: whether this node is the elected sequencer now, and how many
        // durable entries await sequencing (always true and 0 when embedded).
        "sequencer": store.is_sequencer(),
        "pending_entries": store.pending_entries().ok(),
    }))
}

/// `GET /.well-known/jwks.json`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "public",
    responses(
        (status = 200, body = Object),
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.service().jwks()).unwrap_or(Value::Null))
}

/// `GET /v1/signing-keys`: PEM, raw and signed-note forms of the public keys.
#[utoipa::path(
    get,
    path = "/v1/signing-keys",
    operation_id = "signing_keys",
    tag = "public",
    responses(
        (status = 200, body = Object),
    )
)]
pub async fn signing_keys(State(state): State<AppState>) -> Json<Value> {
    let key = state.service().server_key();
    let vk = key.verifying_key();
    Json(json!({
        "keys": [{
            "key_id": key.kid,
            "algorithm": "Ed25519",
            "public_key_pem": public_key_pem(&vk),
            "public_key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vk.to_bytes()),
            "note_verifier": state.service().note_verifier().to_vkey(),
        }],
        "pem": public_key_pem(&vk),
    }))
}

/// `GET /metrics` (Prometheus text).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "public",
    responses(
        (status = 200, description = "Prometheus text", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config().metrics_public {
        let secret = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        state.service().authenticate(secret)?.require("admin")?;
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.service().metrics().render(),
    )
        .into_response())
}
