//! The native API (protocols.md §1): decide, read a decision, dossier, health,
//! signing keys, metrics.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_core::{DecisionRequest, Mode, Verdict};
use tollgate_ledger::{Dossier, EntryKind, NoteVerifier, public_key_pem};

use crate::auth::Caller;
use crate::body::{decode, fingerprint, parse_object};
use crate::decide::{DecideCall, Decided};
use crate::error::ApiError;
use crate::state::AppState;

/// The native decision request. Unknown fields are accepted and kept in the record.
#[derive(Debug, Deserialize)]
pub struct NativeRequest {
    /// Must equal the key's tenant when given.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Who acts.
    #[serde(default)]
    pub actor: Map<String, Value>,
    /// What is proposed.
    pub action: Map<String, Value>,
    /// Context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Numeric signals.
    #[serde(default)]
    pub signals: std::collections::BTreeMap<String, f64>,
    /// Free text.
    #[serde(default)]
    pub intent: Option<String>,
    /// Who asks.
    #[serde(default)]
    pub source: Option<String>,
    /// Policies: `id` or `id@N`.
    #[serde(default)]
    pub policy_refs: Vec<String>,
    /// enforce | shadow | dry_run.
    #[serde(default)]
    pub mode: Mode,
    /// Opt in to the adaptive bias.
    #[serde(default)]
    pub adaptive: bool,
    /// Idempotency key (the header wins).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Correlation id.
    #[serde(default)]
    pub correlation_id: Option<String>,
}

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
pub(crate) fn verdict_body(state: &AppState, d: &Decided) -> Value {
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
pub(crate) fn sign(state: &AppState, mut body: Value) -> Result<Value, ApiError> {
    let bytes = tollgate_core::digest::canonical_bytes(&body).map_err(ApiError::internal)?;
    let key = state.server_key();
    let signature =
        json!({"algorithm": "Ed25519", "key_id": key.kid, "value": key.sign_b64(&bytes)});
    if let Some(obj) = body.as_object_mut() {
        obj.insert("signature".into(), signature);
    }
    Ok(body)
}

/// `POST /v1/decisions`.
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require("decide")?;
    let received = parse_object(&bytes, state.config().max_json_depth)?;
    let req: NativeRequest = decode(received.clone())?;
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
        family: "native",
    };
    let st = state.clone();
    let answer = state
        .idempotent(&tenant, key.as_deref(), &print, || async move {
            let decided = st.decide(call).await?;
            Ok(verdict_body(&st, &decided))
        })
        .await?;
    let mut body = answer.body;
    if answer.replayed {
        body["idempotency_replayed"] = json!(true);
    }
    Ok((StatusCode::OK, Json(sign(&state, body)?)).into_response())
}

/// A recorded decision entry of the caller's tenant.
pub(crate) fn decision_entry(
    state: &AppState,
    tenant: &str,
    decision_id: &str,
) -> Result<tollgate_ledger::Entry, ApiError> {
    let Some(seq) = state.store().decision_seq(tenant, decision_id)? else {
        if state.store().decision_pending(tenant, decision_id)? {
            return Err(ApiError::PendingIntegration);
        }
        return Err(ApiError::NotFound);
    };
    let entry = state
        .store()
        .entry(tenant, seq)?
        .ok_or(ApiError::NotFound)?;
    if entry.kind != EntryKind::Decision || entry.tenant != tenant {
        return Err(ApiError::NotFound);
    }
    Ok(entry)
}

/// Rebuilds the `Decided` of a stored decision entry.
pub(crate) fn decided_from_entry(entry: &tollgate_ledger::Entry) -> Result<Decided, ApiError> {
    let body = &entry.body;
    let verdict: Verdict =
        serde_json::from_value(body["verdict"].clone()).map_err(ApiError::internal)?;
    Ok(Decided {
        decision_id: body["decision_id"].as_str().unwrap_or_default().to_owned(),
        verdict,
        seq: Some(entry.seq),
        entry_hash: Some(entry.entry_hash.to_hex()),
        environment: body["environment"].as_str().unwrap_or("live").to_owned(),
        latency_ms: 0,
        decided_at: entry.time.clone(),
        review_id: body["review_id"].as_str().map(str::to_owned),
        // A grant is handed out once, with the verdict; reading the decision back
        // does not mint another.
        grant: None,
    })
}

/// `GET /v1/decisions/{id}`.
pub async fn get_decision(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = decision_entry(&state, caller.tenant(), &id)?;
    let decided = decided_from_entry(&entry)?;
    let mut body = verdict_body(&state, &decided);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("latency_ms");
        obj.insert("request".into(), entry.body["request"].clone());
    }
    Ok(Json(sign(&state, body)?))
}

/// `GET /v1/dossiers/{id}`: the decision with its proof, checkable offline.
pub async fn dossier(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant().to_owned();
    let entry = decision_entry(&state, &tenant, &id)?;
    let store = state.store();
    let checkpoint = match store.latest_checkpoint(&tenant)? {
        Some(c) if c.checkpoint.size > entry.seq => c,
        _ => state.checkpoint_now(&tenant).await?,
    };
    let size = checkpoint.checkpoint.size;
    let proof = store.inclusion_proof(&tenant, entry.seq, size)?;
    let ledger = Dossier {
        inclusion_proof: proof,
        checkpoint: checkpoint.to_text().map_err(ApiError::internal)?,
        verifier_keys: state
            .note_verifiers()
            .iter()
            .map(NoteVerifier::to_vkey)
            .collect(),
        jwks: Some(state.jwks()),
        entry: entry.clone(),
    };
    let mut out = serde_json::to_value(&ledger).map_err(ApiError::internal)?;
    let body = &entry.body;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("decision_id".into(), json!(id));
        obj.insert("request".into(), body["request"].clone());
        obj.insert("verdict".into(), body["verdict"].clone());
        obj.insert("trace".into(), body["verdict"]["trace"].clone());
        obj.insert("policies".into(), body["verdict"]["policies"].clone());
        obj.insert("reviews".into(), state.reviews_of(&tenant, &id)?);
        obj.insert("outcomes".into(), state.outcomes_of(&tenant, &id)?);
    }
    Ok(Json(out))
}

/// `GET /v1/health`.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let store = state.store();
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
pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(state.jwks()).unwrap_or(Value::Null))
}

/// `GET /v1/signing-keys`: PEM, raw and signed-note forms of the public keys.
pub async fn signing_keys(State(state): State<AppState>) -> Json<Value> {
    let key = state.server_key();
    let vk = key.verifying_key();
    Json(json!({
        "keys": [{
            "key_id": key.kid,
            "algorithm": "Ed25519",
            "public_key_pem": public_key_pem(&vk),
            "public_key": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vk.to_bytes()),
            "note_verifier": state.0.note_verifier.to_vkey(),
        }],
        "pem": public_key_pem(&vk),
    }))
}

/// `GET /metrics` (Prometheus text).
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
        state.authenticate(secret)?.require("admin")?;
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.0.metrics.render(),
    )
        .into_response())
}
