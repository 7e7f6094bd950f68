//! The admin API: tenants, API keys, sources, overrides, audit. Every write that
//! can change a later decision is a ledger entry; secrets never are.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::{Override, OverrideScope};
use tollgate_ledger::{EntryDraft, EntryKind, NoteVerifier};
use tollgate_store::{ApiKeyRecord, Record, TenantRecord};

use crate::auth::{self, Caller, random_id};
use crate::body::{decode, parse_object};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::outcomes::parse_public_key;
use crate::state::AppState;

/// The tenant whose admin keys may manage every tenant (the operator).
pub const OPERATOR_TENANT: &str = "default";

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl AppState {
    /// Records an administrative event in the tenant's ledger.
    pub(crate) async fn record(
        &self,
        tenant: &str,
        kind: EntryKind,
        body: Value,
    ) -> Result<tollgate_store::Appended, ApiError> {
        self.append(EntryDraft {
            tenant: tenant.to_owned(),
            time: rfc3339(self.now_ms()),
            kind,
            body,
        })
        .await
    }
}

/// The tenant an admin call acts on: its own, or any for the operator.
pub(crate) fn target_tenant(caller: &Caller, requested: Option<&str>) -> Result<String, ApiError> {
    caller.require("admin")?;
    match requested {
        None => Ok(caller.tenant().to_owned()),
        Some(t) if t == caller.tenant() => Ok(t.to_owned()),
        Some(t) if caller.tenant() == OPERATOR_TENANT => Ok(t.to_owned()),
        // Another tenant's data is not found, exactly like data that does not exist.
        Some(_) => Err(ApiError::NotFound),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    monthly_quota: Option<u64>,
    #[serde(default)]
    shadow: Option<bool>,
}

fn tenant_view(state: &AppState, t: &TenantRecord) -> Value {
    let period = crate::clock::month(state.now_ms());
    let usage = state
        .0
        .meter
        .get(state.store().as_ref(), &t.id, &period, "decisions")
        .unwrap_or(0);
    json!({
        "usage_this_month": usage,
        "id": t.id,
        "name": t.name,
        "created_at": rfc3339(t.created_ms),
        "monthly_quota": t.body.get("monthly_quota"),
        "shadow": t.body.get("shadow").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// `POST /v1/admin/tenants` (operator): creates or updates a tenant.
pub async fn put_tenant(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("admin")?;
    if caller.tenant() != OPERATOR_TENANT {
        return Err(ApiError::Forbidden("admin"));
    }
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: NewTenant = decode(body)?;
    if !valid_id(&req.id) {
        return Err(ApiError::field(
            &["body", "id"],
            "use 1 to 64 of [A-Za-z0-9_.-]",
            "value_error",
        ));
    }
    let existing = state.store().tenant(&req.id)?;
    let mut record = existing.clone().unwrap_or(TenantRecord {
        id: req.id.clone(),
        name: req.id.clone(),
        created_ms: state.now_ms(),
        body: json!({}),
    });
    if let Some(n) = req.name {
        record.name = n;
    }
    if let Some(q) = req.monthly_quota {
        record.body["monthly_quota"] = json!(q);
    }
    if let Some(s) = req.shadow {
        record.body["shadow"] = json!(s);
    }
    state.store().put_tenant(&record)?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(tenant_view(&state, &record))))
}

/// `GET /v1/admin/tenants`: every tenant for the operator, else the caller's own.
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let tenants: Vec<Value> = state
        .store()
        .tenants()?
        .iter()
        .filter(|t| caller.tenant() == OPERATOR_TENANT || t.id == caller.tenant())
        .map(|t| tenant_view(&state, t))
        .collect();
    Ok(Json(json!({"tenants": tenants})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default = "test_env")]
    environment: String,
    #[serde(default = "decide_scope")]
    scopes: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    /// Seconds until the key expires.
    #[serde(default)]
    expires_in_s: Option<u64>,
    /// Import an existing secret (`dealgo_sk_test_…`) instead of generating one.
    #[serde(default)]
    secret: Option<String>,
    /// Approver groups (for keys with scope `review`).
    #[serde(default)]
    groups: Vec<String>,
}

fn test_env() -> String {
    "test".into()
}
fn decide_scope() -> Vec<String> {
    vec!["decide".into()]
}

fn key_view(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "tenant": k.tenant,
        "name": k.name,
        "environment": k.environment,
        "scopes": k.scopes,
        "groups": k.groups,
        "created_at": rfc3339(k.created_ms),
        "expires_at": k.expires_ms.map(rfc3339),
        "revoked_at": k.revoked_ms.map(rfc3339),
    })
}

/// `POST /v1/admin/keys`: creates a key; the secret is in this response only.
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: NewKey = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    if state.store().tenant(&tenant)?.is_none() {
        return Err(ApiError::NotFound);
    }
    let now = state.now_ms();
    let expires = req
        .expires_in_s
        .map(|s| now.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)));
    let name = req.name.unwrap_or_default();
    let (secret, mut record) = match req.secret {
        Some(secret) => {
            let record = auth::record_for(
                &secret,
                &tenant,
                &req.environment,
                req.scopes,
                &name,
                expires,
                now,
            )?;
            (secret, record)
        }
        None => {
            let k = auth::generate(&tenant, &req.environment, req.scopes, &name, expires, now)?;
            (k.secret, k.record)
        }
    };
    record.groups = req.groups;
    if state.store().api_key_by_hash(&record.hash)?.is_some() {
        return Err(ApiError::Conflict("this key already exists".into()));
    }
    state.store().put_api_key(&record)?;
    state.forget_keys()?;
    state
        .record(
            &tenant,
            EntryKind::KeyCreated,
            json!({"key": key_view(&record), "by_key_id": caller.key.id}),
        )
        .await?;
    let mut view = key_view(&record);
    view["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// `?tenant=` of admin listings.
#[derive(Debug, Deserialize)]
pub struct TenantQuery {
    /// The tenant (the operator may name any).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `GET /v1/admin/keys`: the tenant's keys (never secrets).
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let keys: Vec<Value> = state
        .store()
        .api_keys(&tenant)?
        .iter()
        .map(key_view)
        .collect();
    Ok(Json(json!({"keys": keys})))
}

/// `POST /v1/admin/keys/{id}/revoke`: effective at once.
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let tenants: Vec<String> = if caller.tenant() == OPERATOR_TENANT {
        state.store().tenants()?.into_iter().map(|t| t.id).collect()
    } else {
        vec![caller.tenant().to_owned()]
    };
    for tenant in tenants {
        if let Some(mut key) = state
            .store()
            .api_keys(&tenant)?
            .into_iter()
            .find(|k| k.id == id)
        {
            if key.revoked_ms.is_none() {
                key.revoked_ms = Some(state.now_ms());
                state.store().put_api_key(&key)?;
                state.forget_keys()?;
                state
                    .record(
                        &tenant,
                        EntryKind::KeyRevoked,
                        json!({"key_id": key.id, "by_key_id": caller.key.id}),
                    )
                    .await?;
            }
            return Ok(Json(key_view(&key)));
        }
    }
    Err(ApiError::NotFound)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSource {
    id: String,
    /// Ed25519 public key: base64 of the 32 raw bytes, or PEM.
    public_key: String,
}

/// `POST /v1/admin/sources`: registers a source's Ed25519 key for outcome reports.
pub async fn add_source(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("admin")?;
    let tenant = caller.tenant().to_owned();
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: NewSource = decode(body)?;
    if !valid_id(&req.id) {
        return Err(ApiError::field(
            &["body", "id"],
            "use 1 to 64 of [A-Za-z0-9_.-]",
            "value_error",
        ));
    }
    let key = parse_public_key(&req.public_key).ok_or_else(|| {
        ApiError::field(
            &["body", "public_key"],
            "not an Ed25519 public key (base64 of 32 bytes, or PEM)",
            "value_error",
        )
    })?;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.to_bytes());
    let mut record = state.store().source(&tenant, &req.id)?.unwrap_or(Record {
        tenant: tenant.clone(),
        id: req.id.clone(),
        body: json!({}),
    });
    record.body["public_key"] = json!(b64);
    state.store().put_source(&record)?;
    state
        .record(
            &tenant,
            EntryKind::SourceRegistered,
            json!({"source": req.id, "public_key": b64, "by_key_id": caller.key.id}),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": req.id, "public_key": b64})),
    ))
}

/// `GET /v1/admin/sources`.
pub async fn list_sources(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let sources: Vec<Value> = state
        .store()
        .sources(caller.tenant())?
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "public_key": s.body["public_key"],
                "outcomes": s.body["outcomes"].as_array().map_or(0, Vec::len),
            })
        })
        .collect();
    Ok(Json(json!({"sources": sources})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOverride {
    /// `tenant`, `actor`, `action_type` or `source`.
    scope: String,
    #[serde(default)]
    value: Option<String>,
    reason: String,
}

/// `POST /v1/admin/overrides`: engages a kill switch.
pub async fn set_override(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("admin")?;
    let tenant = caller.tenant().to_owned();
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: NewOverride = decode(body)?;
    let need_value = || {
        req.value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
            ApiError::field(&["body", "value"], "this scope needs a value", "missing")
        })
    };
    let scope = match req.scope.as_str() {
        "tenant" => OverrideScope::Tenant,
        "actor" => OverrideScope::Actor(need_value()?),
        "action_type" => OverrideScope::ActionType(need_value()?),
        "source" => OverrideScope::Source(need_value()?),
        _ => {
            return Err(ApiError::field(
                &["body", "scope"],
                "scope must be one of tenant, actor, action_type, source",
                "enum",
            ));
        }
    };
    let o = Override {
        id: random_id("ovr")?,
        scope,
        reason: req.reason,
    };
    let value = serde_json::to_value(&o).map_err(ApiError::internal)?;
    state
        .record(
            &tenant,
            EntryKind::OverrideSet,
            json!({"override": value, "by_key_id": caller.key.id}),
        )
        .await?;
    state.store().put_override(&Record {
        tenant: tenant.clone(),
        id: o.id.clone(),
        body: value.clone(),
    })?;
    state.forget_overrides(&tenant)?;
    Ok((StatusCode::CREATED, Json(value)))
}

/// `DELETE /v1/admin/overrides/{id}`: clears a kill switch.
pub async fn clear_override(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let tenant = caller.tenant().to_owned();
    if !state.store().overrides(&tenant)?.iter().any(|o| o.id == id) {
        return Err(ApiError::NotFound);
    }
    state
        .record(
            &tenant,
            EntryKind::OverrideCleared,
            json!({"override_id": id, "by_key_id": caller.key.id}),
        )
        .await?;
    state.store().clear_override(&tenant, &id)?;
    state.forget_overrides(&tenant)?;
    Ok(Json(json!({"id": id, "cleared": true})))
}

/// `GET /v1/admin/overrides`.
pub async fn list_overrides(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let list: Vec<Value> = state
        .store()
        .overrides(caller.tenant())?
        .into_iter()
        .map(|r| r.body)
        .collect();
    Ok(Json(json!({"overrides": list})))
}

/// `GET /v1/audit/verify`: verifies the caller's tenant ledger now.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let keys: Vec<NoteVerifier> = state.note_verifiers();
    let st = state.clone();
    let tenant = caller.tenant().to_owned();
    let result = tokio::task::spawn_blocking(move || st.store().verify(&tenant, &keys))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(match result {
        Ok(v) => {
            json!({"ok": true, "entries": v.entries, "root": v.root.to_hex(), "checkpoints": v.checkpoints})
        }
        Err(f) => json!({"ok": false, "first_bad_seq": f.seq, "problem": f.to_string()}),
    }))
}

/// `GET /v1/audit/export`: the tenant's ledger as JSON Lines.
pub async fn export(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require("admin")?;
    let tenant = caller.tenant().to_owned();
    let size = state.store().head(&tenant)?.map_or(0, |h| h.size);
    // Streamed a page at a time: memory stays bounded however long the ledger is. A
    // read error mid-way aborts the response (no clean end of the chunked body), so a
    // client never mistakes a cut-off export for a complete one.
    let pages = futures_util::stream::try_unfold(0u64, move |from| {
        let state = state.clone();
        let tenant = tenant.clone();
        async move {
            if from >= size {
                return Ok(None);
            }
            let to = from.saturating_add(EXPORT_PAGE).min(size);
            let mut out = String::new();
            for e in state
                .store()
                .range(&tenant, from, to)
                .map_err(std::io::Error::other)?
            {
                out.push_str(&e.to_json_line().map_err(std::io::Error::other)?);
                out.push('\n');
            }
            Ok::<_, std::io::Error>(Some((Bytes::from(out), to)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/jsonl")],
        axum::body::Body::from_stream(pages),
    )
        .into_response())
}

/// Entries read per page of an export. Each page is parsed and re-serialised in memory;
/// with pages of 1000, five exports of a 60,000-entry ledger raised the server's RSS by
/// 36 MiB at their peak, with pages of 100 by 24 MiB (the rest is not yet explained).
const EXPORT_PAGE: u64 = 100;

/// `?from=N&to=M`.
#[derive(Debug, Deserialize)]
pub struct ConsistencyQuery {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
}

/// `GET /v1/audit/consistency?from=N&to=M`: an RFC 6962 consistency proof.
pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.tenant();
    let size = state.store().head(tenant)?.map_or(0, |h| h.size);
    if q.from > q.to || q.to > size {
        return Err(ApiError::field(
            &["query", "to"],
            format!("need from <= to <= {size}"),
            "value_error",
        ));
    }
    // Growing from nothing, or not growing, needs no proof (RFC 9162 defines proofs
    // for 0 < from < to only).
    let proof = if q.from == 0 || q.from == q.to {
        Vec::new()
    } else {
        state.store().consistency_proof(tenant, q.from, q.to)?
    };
    Ok(Json(
        json!({"from": q.from, "to": q.to, "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>()}),
    ))
}

/// `GET /v1/audit/checkpoint`: the latest checkpoint (issued now if none covers the head).
pub async fn checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant().to_owned();
    let size = state.store().head(&tenant)?.map_or(0, |h| h.size);
    let cp = match state.store().latest_checkpoint(&tenant)? {
        Some(c) if c.checkpoint.size >= size => c,
        _ => state.checkpoint_now(&tenant).await?,
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        cp.to_text().map_err(ApiError::internal)?,
    )
        .into_response())
}
