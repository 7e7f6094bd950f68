//! The policy lifecycle (validation is `POST /v1/policies/validate` in
//! `compat/decionis.rs`): publish (immutable versions), activate and roll
//! back, list, show, diff, candidates on live traffic with their flip report, replay of
//! a version over recorded decisions, and the tenant-wide shadow switch. Every change of
//! what is enforced is a ledger entry (`policy_published`, `policy_activated`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_core::{
    CompiledPolicy, DecideInput, DecisionRequest, MemoryBuckets, Mode, PolicyBinding, PolicyError,
    PolicyFormat, Verdict, compile_policy, evaluate_with_history,
};
use tollgate_ledger::{Entry, EntryKind};
use tollgate_store::{PolicyActivation, PolicyRecord};

use crate::admin::target_tenant;
use crate::auth::Caller;
use crate::body::{decode, parse_object};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::state::AppState;

/// Environments a policy can be active in (an API key's environment).
const ENVIRONMENTS: [&str; 2] = ["live", "test"];

/// Most decisions a replay or a report reads.
const MAX_SCAN: usize = 100_000;

fn environment(e: Option<&str>) -> Result<String, ApiError> {
    match e.unwrap_or("live") {
        env @ ("live" | "test") => Ok(env.to_owned()),
        _ => Err(ApiError::field(
            &["body", "environment"],
            "must be live or test",
            "value_error",
        )),
    }
}

fn format_of(text: &str, format: Option<&str>) -> Result<PolicyFormat, ApiError> {
    match format {
        None => Ok(PolicyFormat::detect(text)),
        Some(f) => PolicyFormat::from_extension(f).ok_or_else(|| {
            ApiError::field(
                &["body", "format"],
                "must be yaml, toml or json",
                "value_error",
            )
        }),
    }
}

/// A stored version, `None` when it does not exist (including numbers beyond what the
/// store can hold, which cannot name a version).
fn stored_version(
    state: &AppState,
    tenant: &str,
    id: &str,
    version: u64,
) -> Result<Option<PolicyRecord>, ApiError> {
    if i64::try_from(version).is_err() {
        return Ok(None);
    }
    Ok(state.store().policy_version(tenant, id, version)?)
}

fn text_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn invalid_policy(e: &PolicyError) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_policy",
        message: format!("the policy does not compile: {e}"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    text: String,
    #[serde(default)]
    format: Option<String>,
    /// Also make the version active (in `environment`).
    #[serde(default)]
    activate: bool,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /v1/admin/policies`: publishes a new immutable version, unless the newest
/// version has the same text (then nothing is published: idempotent by content hash).
pub(crate) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: Publish = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    let env = environment(req.environment.as_deref())?;
    let format = format_of(&req.text, req.format.as_deref())?;
    let compiled = compile_policy(&req.text, format).map_err(|e| invalid_policy(&e))?;
    let id = compiled.id().to_owned();
    let sha = text_sha256(&req.text);
    let store = state.store();
    let newest = store.policy_versions(&tenant, &id)?.pop();
    let (version, published, status) = match &newest {
        Some(n) if n.text_hash == sha => (n.version, false, StatusCode::OK),
        _ => {
            let version = newest.as_ref().map_or(1, |n| n.version + 1);
            if let Some(v) = compiled.document().version
                && u64::from(v) != version
            {
                return Err(ApiError::Conflict(format!(
                    "the document says version {v}, but the next version of `{id}` is {version}; \
                     remove `version` from the document or set it to {version}"
                )));
            }
            let record = PolicyRecord {
                tenant: tenant.clone(),
                policy_id: id.clone(),
                version,
                text: req.text.clone(),
                text_hash: sha.clone(),
                created_ms: state.now_ms(),
            };
            if let Err(e) = store.put_policy_version(&record) {
                if store.policy_version(&tenant, &id, version)?.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "`{id}` version {version} was published concurrently; retry"
                    )));
                }
                return Err(e.into());
            }
            state
                .record(
                    &tenant,
                    EntryKind::PolicyPublished,
                    json!({
                        "policy_id": id,
                        "version": version,
                        "text_sha256": sha,
                        "api_key_id": caller.key.id,
                    }),
                )
                .await?;
            (version, true, StatusCode::CREATED)
        }
    };
    let mut activated = false;
    if req.activate {
        activated = activate_version(&state, &caller, &tenant, &env, &id, version).await?;
    }
    Ok((
        status,
        Json(json!({
            "policy_id": id,
            "version": version,
            "text_sha256": sha,
            "published": published,
            "activated": activated,
            "environment": env,
        })),
    ))
}

/// Activates `version` of `id` in `env`; `false` when it already was active.
async fn activate_version(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    env: &str,
    id: &str,
    version: u64,
) -> Result<bool, ApiError> {
    let store = state.store();
    if stored_version(state, tenant, id, version)?.is_none() {
        return Err(ApiError::NotFound);
    }
    let previous = activation(state, tenant, env, id)?.map(|a| a.version);
    if previous == Some(version) {
        return Ok(false);
    }
    store.activate_policy(tenant, env, id, version)?;
    state
        .record(
            tenant,
            EntryKind::PolicyActivated,
            json!({
                "role": "active",
                "policy_id": id,
                "version": version,
                "previous_version": previous,
                "rollback": previous.is_some_and(|p| version < p),
                "environment": env,
                "api_key_id": caller.key.id,
            }),
        )
        .await?;
    Ok(true)
}

fn activation(
    state: &AppState,
    tenant: &str,
    env: &str,
    id: &str,
) -> Result<Option<PolicyActivation>, ApiError> {
    Ok(state
        .store()
        .policy_activations(tenant, env)?
        .into_iter()
        .find(|a| a.policy_id == id))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TenantQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

/// `GET /v1/admin/policies`: every policy with its versions and what is active.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let store = state.store();
    let mut out = Vec::new();
    for id in store.policy_ids(&tenant)? {
        out.push(policy_view(&state, &tenant, &id, false)?);
    }
    let mut defaults = serde_json::Map::new();
    for env in ENVIRONMENTS {
        defaults.insert(
            env.to_owned(),
            json!(store.active_policy(&tenant, env)?.map(|(id, _)| id)),
        );
    }
    Ok(Json(json!({"policies": out, "default_policy": defaults})))
}

fn policy_view(state: &AppState, tenant: &str, id: &str, full: bool) -> Result<Value, ApiError> {
    let store = state.store();
    let versions = store.policy_versions(tenant, id)?;
    let mut active = serde_json::Map::new();
    let mut candidate = serde_json::Map::new();
    for env in ENVIRONMENTS {
        let a = activation(state, tenant, env, id)?;
        active.insert(env.to_owned(), json!(a.as_ref().map(|a| a.version)));
        candidate.insert(env.to_owned(), json!(a.and_then(|a| a.candidate)));
    }
    let mut v = json!({
        "policy_id": id,
        "latest_version": versions.last().map(|r| r.version),
        "versions": versions.len(),
        "active": active,
        "candidate": candidate,
    });
    if full {
        v["versions"] = json!(
            versions
                .iter()
                .map(|r| json!({
                    "version": r.version,
                    "text_sha256": r.text_hash,
                    "created_at": rfc3339(r.created_ms),
                }))
                .collect::<Vec<_>>()
        );
    }
    Ok(v)
}

/// `GET /v1/admin/policies/{id}`: one policy's versions and activations.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    if state.store().policy_versions(&tenant, &id)?.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(policy_view(&state, &tenant, &id, true)?))
}

/// `GET /v1/admin/policies/{id}/versions/{version}`: a version's text.
pub(crate) async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, u64)>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let r = stored_version(&state, &tenant, &id, version)?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "policy_id": r.policy_id,
        "version": r.version,
        "text_sha256": r.text_hash,
        "created_at": rfc3339(r.created_ms),
        "text": r.text,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DiffQuery {
    from: u64,
    to: u64,
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /v1/admin/policies/{id}/diff?from=A&to=B`: rules added, removed and changed,
/// and a unified diff of the texts.
pub(crate) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let a = stored_version(&state, &tenant, &id, q.from)?.ok_or(ApiError::NotFound)?;
    let b = stored_version(&state, &tenant, &id, q.to)?.ok_or(ApiError::NotFound)?;
    let rules = |r: &PolicyRecord| -> BTreeMap<String, Value> {
        tollgate_core::parse_policy(&r.text, PolicyFormat::detect(&r.text))
            .map(|d| {
                d.rules
                    .iter()
                    .map(|rule| (rule.name.clone(), json!(rule)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ra, rb) = (rules(&a), rules(&b));
    let added: Vec<&String> = rb.keys().filter(|k| !ra.contains_key(*k)).collect();
    let removed: Vec<&String> = ra.keys().filter(|k| !rb.contains_key(*k)).collect();
    let changed: Vec<&String> = ra
        .iter()
        .filter(|(k, v)| rb.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    let text_diff = similar::TextDiff::from_lines(&a.text, &b.text)
        .unified_diff()
        .header(&format!("{id}@{}", q.from), &format!("{id}@{}", q.to))
        .to_string();
    Ok(Json(json!({
        "policy_id": id,
        "from": q.from,
        "to": q.to,
        "rules": {"added": added, "removed": removed, "changed": changed},
        "text_diff": text_diff,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRef {
    version: u64,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /v1/admin/policies/{id}/activate`: makes a version active (an older one
/// = a roll back).
pub(crate) async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: VersionRef = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    let env = environment(req.environment.as_deref())?;
    let changed = activate_version(&state, &caller, &tenant, &env, &id, req.version).await?;
    Ok(Json(json!({
        "policy_id": id,
        "version": req.version,
        "environment": env,
        "changed": changed,
    })))
}

/// `POST /v1/admin/policies/{id}/default`: the policy requests without `policy_refs`
/// use in an environment.
pub(crate) async fn set_default(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let env = environment(q.environment.as_deref())?;
    if !state.store().set_default_policy(&tenant, &env, &id)? {
        return Err(ApiError::Unprocessable {
            code: "policy_not_active",
            message: format!("`{id}` has no active version in {env}"),
        });
    }
    state
        .record(
            &tenant,
            EntryKind::PolicyActivated,
            json!({"role": "default", "policy_id": id, "environment": env, "api_key_id": caller.key.id}),
        )
        .await?;
    Ok(Json(
        json!({"policy_id": id, "environment": env, "default": true}),
    ))
}

/// `POST /v1/admin/policies/{id}/candidate`: runs a version beside the active one.
pub(crate) async fn set_candidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: VersionRef = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    let env = environment(req.environment.as_deref())?;
    if stored_version(&state, &tenant, &id, req.version)?.is_none() {
        return Err(ApiError::NotFound);
    }
    let since = state.now_ms();
    if !state
        .store()
        .set_policy_candidate(&tenant, &env, &id, Some((req.version, since)))?
    {
        return Err(ApiError::Unprocessable {
            code: "policy_not_active",
            message: format!("`{id}` has no active version in {env} to run a candidate beside"),
        });
    }
    state
        .record(
            &tenant,
            EntryKind::PolicyActivated,
            json!({
                "role": "candidate",
                "policy_id": id,
                "version": req.version,
                "environment": env,
                "api_key_id": caller.key.id,
            }),
        )
        .await?;
    Ok(Json(json!({
        "policy_id": id,
        "candidate": req.version,
        "environment": env,
        "since": rfc3339(since),
    })))
}

/// `DELETE /v1/admin/policies/{id}/candidate`: stops the candidate.
pub(crate) async fn clear_candidate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<StatusCode, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let env = environment(q.environment.as_deref())?;
    let had = activation(&state, &tenant, &env, &id)?.and_then(|a| a.candidate);
    let Some(version) = had else {
        return Err(ApiError::NotFound);
    };
    state
        .store()
        .set_policy_candidate(&tenant, &env, &id, None)?;
    state
        .record(
            &tenant,
            EntryKind::PolicyActivated,
            json!({
                "role": "candidate_stopped",
                "policy_id": id,
                "version": version,
                "environment": env,
                "api_key_id": caller.key.id,
            }),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Each decision entry of the tenant, in order, up to [`MAX_SCAN`] from the newest.
fn decision_entries(
    state: &AppState,
    tenant: &str,
    mut visit: impl FnMut(&Entry) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let store = state.store();
    let Some(head) = store.head(tenant)? else {
        return Ok(());
    };
    let mut from = head.size.saturating_sub(MAX_SCAN as u64 * 4);
    while from < head.size {
        let to = (from + 1000).min(head.size);
        for e in store.range(tenant, from, to)? {
            if e.kind == EntryKind::Decision {
                visit(&e)?;
            }
        }
        from = to;
    }
    Ok(())
}

/// `GET /v1/admin/policies/{id}/candidate/report`: how many of the decisions taken
/// since the candidate started would it have changed, and which.
pub(crate) async fn candidate_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = target_tenant(&caller, q.tenant.as_deref())?;
    let env = environment(q.environment.as_deref())?;
    let a = activation(&state, &tenant, &env, &id)?.ok_or(ApiError::NotFound)?;
    let (Some(version), Some(since)) = (a.candidate, a.candidate_since_ms) else {
        return Err(ApiError::NotFound);
    };
    let limit = q.limit.unwrap_or(100);
    let since_time = rfc3339(since);
    let mut evaluated = 0u64;
    let mut changes: BTreeMap<String, u64> = BTreeMap::new();
    let mut changed = Vec::new();
    decision_entries(&state, &tenant, |e| {
        if e.time < since_time {
            return Ok(());
        }
        let Some(cands) = e.body.get("candidates").and_then(Value::as_array) else {
            return Ok(());
        };
        for c in cands {
            if c.get("policy_id").and_then(Value::as_str) != Some(id.as_str())
                || c.get("version").and_then(Value::as_u64) != Some(version)
            {
                continue;
            }
            evaluated += 1;
            if c.get("changed").and_then(Value::as_bool) == Some(true) {
                let from = c["active"]["status"].as_str().unwrap_or("?");
                let to = c["candidate"]["status"].as_str().unwrap_or("?");
                *changes.entry(format!("{from}->{to}")).or_default() += 1;
                if changed.len() < limit {
                    changed.push(json!({
                        "decision_id": e.body.get("decision_id"),
                        "seq": e.seq,
                        "time": e.time,
                        "active": c.get("active"),
                        "candidate": c.get("candidate"),
                    }));
                }
            }
        }
        Ok(())
    })?;
    let total_changed: u64 = changes.values().sum();
    Ok(Json(json!({
        "policy_id": id,
        "active_version": a.version,
        "candidate_version": version,
        "environment": env,
        "since": since_time,
        "evaluated": evaluated,
        "changed": total_changed,
        "changes": changes,
        "decisions": changed,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    version: u64,
    /// RFC 3339; entries at or after.
    #[serde(default)]
    since: Option<String>,
    /// RFC 3339; entries before.
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    tenant: Option<String>,
}

/// What a verdict amounts to: the would-be outcome in shadow modes.
pub(crate) fn effective(v: &Verdict) -> Value {
    match &v.would_be {
        Some(o) => json!({
            "status": o.status.as_str(),
            "gate": o.gate.as_str(),
            "reason_codes": o.reason_codes,
            "explanation": o.explanation,
        }),
        None => json!({
            "status": v.status.as_str(),
            "gate": v.gate.as_str(),
            "reason_codes": v.reason_codes,
            "explanation": v.explanation,
        }),
    }
}

/// One replay run's engine state: buckets and history, both starting empty.
#[derive(Default)]
struct Sim {
    buckets: MemoryBuckets,
    history: Vec<tollgate_core::HistoryEvent>,
}

impl Sim {
    fn run(
        &mut self,
        request: &DecisionRequest,
        policies: &[PolicyBinding],
        now: tollgate_core::UnixMillis,
        tenant_shadow: bool,
    ) -> Option<Verdict> {
        let input = DecideInput {
            request,
            policies,
            now,
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow,
        };
        let ev = evaluate_with_history(&input, &self.history).ok()?;
        let tats = self.buckets.read(ev.demands());
        let d = ev.finish(&tats);
        self.buckets.apply(&d.bucket_updates);
        self.history.extend(d.history_event);
        Some(d.verdict)
    }
}

/// `POST /v1/admin/policies/{id}/replay`: evaluates a version against the tenant's
/// recorded decisions that used the policy, beside the versions they were decided
/// with, under the same replay conditions (no overrides, approvals or outcome bias;
/// buckets and history rebuilt from the window itself), and reports the flips. Reads
/// the ledger only; touches no live state.
pub(crate) async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: Replay = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    let parse_time = |t: &Option<String>, field: &str| -> Result<Option<i64>, ApiError> {
        t.as_deref()
            .map(|t| {
                time_ms(t).ok_or_else(|| {
                    ApiError::field(&["body", field], "must be an RFC 3339 time", "value_error")
                })
            })
            .transpose()
    };
    let since = parse_time(&req.since, "since")?;
    let until = parse_time(&req.until, "until")?;
    let candidate = state
        .stored_policy_version(&tenant, &id, req.version)?
        .ok_or(ApiError::NotFound)?;
    let limit = req.limit.unwrap_or(100);
    let mut base = Sim::default();
    let mut new = Sim::default();
    let mut replayed = 0u64;
    let mut reproduced = 0u64;
    let mut changes: BTreeMap<String, u64> = BTreeMap::new();
    let mut flips = Vec::new();
    decision_entries(&state, &tenant, |e| {
        let at = time_ms(&e.time).unwrap_or(0);
        if since.is_some_and(|s| at < s) || until.is_some_and(|u| at >= u) {
            return Ok(());
        }
        let (Some(request), Some(recorded)) = (
            e.body
                .get("request")
                .and_then(|r| serde_json::from_value::<DecisionRequest>(r.clone()).ok()),
            e.body
                .get("verdict")
                .and_then(|v| serde_json::from_value::<Verdict>(v.clone()).ok()),
        ) else {
            return Ok(());
        };
        if !recorded.policies.iter().any(|p| &*p.id == id.as_str()) {
            return Ok(());
        }
        // The policies the decision was taken with, and the same with `id` replaced.
        let mut was = Vec::new();
        let mut will = Vec::new();
        for stamp in &recorded.policies {
            let p = state
                .stored_policy_version(&tenant, &stamp.id, u64::from(stamp.version))?
                .map(PolicyBinding::Found)
                .unwrap_or_else(|| {
                    PolicyBinding::NotFound(format!("{}@{}", stamp.id, stamp.version))
                });
            if *stamp.id == *id {
                will.push(PolicyBinding::Found(Arc::clone(&candidate)));
            } else {
                will.push(p.clone());
            }
            was.push(p);
        }
        let tenant_shadow = recorded.mode != request.mode && request.mode == Mode::Enforce;
        let now = tollgate_core::UnixMillis(at);
        let (Some(b), Some(n)) = (
            base.run(&request, &was, now, tenant_shadow),
            new.run(&request, &will, now, tenant_shadow),
        ) else {
            return Ok(());
        };
        replayed += 1;
        let (rec, b, n) = (effective(&recorded), effective(&b), effective(&n));
        if rec["status"] == b["status"] && rec["reason_codes"] == b["reason_codes"] {
            reproduced += 1;
        }
        if b["status"] != n["status"] {
            let from = b["status"].as_str().unwrap_or("?");
            let to = n["status"].as_str().unwrap_or("?");
            *changes.entry(format!("{from}->{to}")).or_default() += 1;
            if flips.len() < limit {
                flips.push(json!({
                    "decision_id": e.body.get("decision_id"),
                    "seq": e.seq,
                    "time": e.time,
                    "recorded": rec,
                    "before": b,
                    "after": n,
                }));
            }
        }
        Ok(())
    })?;
    let flipped: u64 = changes.values().sum();
    Ok(Json(json!({
        "policy_id": id,
        "version": req.version,
        "replayed": replayed,
        "reproduced": reproduced,
        "flipped": flipped,
        "changes": changes,
        "flips": flips,
    })))
}

/// An RFC 3339 time in Unix milliseconds.
fn time_ms(t: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|st| st.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowSwitch {
    enabled: bool,
    #[serde(default)]
    tenant: Option<String>,
}

/// `POST /v1/admin/shadow`: the tenant-wide shadow switch (every gate runs, the
/// would-be verdict is recorded, nothing is blocked).
pub(crate) async fn shadow(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = parse_object(&bytes, state.config().max_json_depth)?;
    let req: ShadowSwitch = decode(body)?;
    let tenant = target_tenant(&caller, req.tenant.as_deref())?;
    let mut record = state.store().tenant(&tenant)?.ok_or(ApiError::NotFound)?;
    record.body["shadow"] = json!(req.enabled);
    state.store().put_tenant(&record)?;
    state
        .record(
            &tenant,
            EntryKind::PolicyActivated,
            json!({"role": "tenant_shadow", "enabled": req.enabled, "api_key_id": caller.key.id}),
        )
        .await?;
    Ok(Json(json!({"tenant": tenant, "shadow": req.enabled})))
}

/// Compiles a stored version (for replays and candidates).
pub(crate) fn compile_record(record: &PolicyRecord) -> Result<Arc<CompiledPolicy>, PolicyError> {
    let compiled = compile_policy(&record.text, PolicyFormat::detect(&record.text))?;
    let version = u32::try_from(record.version).unwrap_or(u32::MAX);
    Ok(Arc::new(compiled.with_version(version)))
}
