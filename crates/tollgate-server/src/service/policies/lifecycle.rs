//! The policy lifecycle: publish (immutable versions, idempotent by text hash),
//! activate and roll back, the default policy, list, show, diff, the tenant shadow
//! switch. Each change of what is enforced is a ledger entry.

use super::*;
use crate::service::records::{PolicyActivatedBody, PolicyPublishedBody};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Publish {
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

/// Activates `version` of `id` in `env`; `false` when it already was active.
async fn activate_version(
    state: &DecisionService,
    caller: &Caller,
    tenant: &str,
    env: &str,
    id: &str,
    version: u64,
) -> Result<bool, Error> {
    let store = state.store();
    if stored_version(state, tenant, id, version)?.is_none() {
        return Err(Error::NotFound);
    }
    let previous = activation(state, tenant, env, id)?.map(|a| a.version);
    if previous == Some(version) {
        return Ok(false);
    }
    // Recorded first, then enforced: no change of what is enforced goes unrecorded.
    let body = PolicyActivatedBody::Active {
        policy_id: id.to_owned(),
        version,
        previous_version: previous,
        rollback: previous.is_some_and(|p| version < p),
        environment: env.to_owned(),
        api_key_id: caller.key.id.clone(),
    };
    state
        .record(tenant, EntryKind::PolicyActivated, body.to_value()?)
        .await?;
    store.activate_policy(tenant, env, id, version)?;
    Ok(true)
}

pub(super) fn activation(
    state: &DecisionService,
    tenant: &str,
    env: &str,
    id: &str,
) -> Result<Option<PolicyActivation>, Error> {
    Ok(state
        .store()
        .policy_activations(tenant, env)?
        .into_iter()
        .find(|a| a.policy_id == id))
}

/// `?tenant=&environment=` of the policy reads.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

fn policy_view(
    state: &DecisionService,
    tenant: &str,
    id: &str,
    full: bool,
) -> Result<Value, Error> {
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

/// `?from=N&to=M` of a diff.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    from: u64,
    to: u64,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionRef {
    version: u64,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// `?limit=` of a candidate report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    #[serde(default)]
    pub(super) tenant: Option<String>,
    #[serde(default)]
    pub(super) environment: Option<String>,
    #[serde(default)]
    pub(super) limit: Option<usize>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShadowSwitch {
    enabled: bool,
    #[serde(default)]
    tenant: Option<String>,
}

impl DecisionService {
    /// `POST /v1/admin/policies`: publishes a new immutable version, unless the newest
    /// version has the same text (then nothing is published: idempotent by content hash).
    pub(crate) async fn publish(
        &self,
        caller: &Caller,
        req: Publish,
    ) -> Result<(Written, Value), Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        let env = environment(req.environment.as_deref())?;
        let format = format_of(&req.text, req.format.as_deref())?;
        let compiled = compile_policy(&req.text, format).map_err(|e| invalid_policy(&e))?;
        let id = compiled.id().to_owned();
        let sha = text_sha256(&req.text);
        let store = self.store();
        let newest = store.policy_versions(&tenant, &id)?.pop();
        let (version, published, status) = match &newest {
            Some(n) if n.text_hash == sha => (n.version, false, Written::Changed),
            _ => {
                let version = newest.as_ref().map_or(1, |n| n.version + 1);
                if let Some(v) = compiled.document().version
                    && u64::from(v) != version
                {
                    return Err(Error::Conflict(format!(
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
                    created_ms: self.now_ms(),
                };
                if let Err(e) = store.put_policy_version(&record) {
                    if store.policy_version(&tenant, &id, version)?.is_some() {
                        return Err(Error::Conflict(format!(
                            "`{id}` version {version} was published concurrently; retry"
                        )));
                    }
                    return Err(e.into());
                }
                self.record(
                    &tenant,
                    EntryKind::PolicyPublished,
                    PolicyPublishedBody {
                        policy_id: id.clone(),
                        version,
                        text_sha256: sha.clone(),
                        api_key_id: caller.key.id.clone(),
                    }
                    .to_value()?,
                )
                .await?;
                (version, true, Written::Created)
            }
        };
        let mut activated = false;
        if req.activate {
            activated = activate_version(self, caller, &tenant, &env, &id, version).await?;
        }
        Ok((
            status,
            (json!({
                "policy_id": id,
                "version": version,
                "text_sha256": sha,
                "published": published,
                "activated": activated,
                "environment": env,
            })),
        ))
    }

    /// `GET /v1/admin/policies`: every policy with its versions and what is active.
    pub async fn list(&self, caller: &Caller, q: TenantQuery) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        let store = self.store();
        let mut out = Vec::new();
        for id in store.policy_ids(&tenant)? {
            out.push(policy_view(self, &tenant, &id, false)?);
        }
        let mut defaults = serde_json::Map::new();
        for env in ENVIRONMENTS {
            defaults.insert(
                env.to_owned(),
                json!(store.active_policy(&tenant, env)?.map(|(id, _)| id)),
            );
        }
        Ok(json!({"policies": out, "default_policy": defaults}))
    }

    /// `GET /v1/admin/policies/{id}`: one policy's versions and activations.
    pub async fn show(&self, caller: &Caller, id: String, q: TenantQuery) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        if self.store().policy_versions(&tenant, &id)?.is_empty() {
            return Err(Error::NotFound);
        }
        policy_view(self, &tenant, &id, true)
    }

    /// `GET /v1/admin/policies/{id}/versions/{version}`: a version's text.
    pub async fn version(
        &self,
        caller: &Caller,
        (id, version): (String, u64),
        q: TenantQuery,
    ) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        let r = stored_version(self, &tenant, &id, version)?.ok_or(Error::NotFound)?;
        Ok(json!({
            "policy_id": r.policy_id,
            "version": r.version,
            "text_sha256": r.text_hash,
            "created_at": rfc3339(r.created_ms),
            "text": r.text,
        }))
    }

    /// `GET /v1/admin/policies/{id}/diff?from=A&to=B`: rules added, removed and changed,
    /// and a unified diff of the texts.
    pub async fn diff(&self, caller: &Caller, id: String, q: DiffQuery) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        let a = stored_version(self, &tenant, &id, q.from)?.ok_or(Error::NotFound)?;
        let b = stored_version(self, &tenant, &id, q.to)?.ok_or(Error::NotFound)?;
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
        Ok(json!({
            "policy_id": id,
            "from": q.from,
            "to": q.to,
            "rules": {"added": added, "removed": removed, "changed": changed},
            "text_diff": text_diff,
        }))
    }

    /// `POST /v1/admin/policies/{id}/activate`: makes a version active (an older one
    /// = a roll back).
    pub(crate) async fn activate(
        &self,
        caller: &Caller,
        id: String,
        req: VersionRef,
    ) -> Result<Value, Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        let env = environment(req.environment.as_deref())?;
        let changed = activate_version(self, caller, &tenant, &env, &id, req.version).await?;
        Ok(json!({
            "policy_id": id,
            "version": req.version,
            "environment": env,
            "changed": changed,
        }))
    }

    /// `POST /v1/admin/policies/{id}/default`: the policy requests without `policy_refs`
    /// use in an environment.
    pub async fn set_default(
        &self,
        caller: &Caller,
        id: String,
        q: TenantQuery,
    ) -> Result<Value, Error> {
        let tenant = target_tenant(caller, q.tenant.as_deref())?;
        let env = environment(q.environment.as_deref())?;
        let not_active = || Error::Unprocessable {
            code: "policy_not_active",
            message: format!("`{id}` has no active version in {env}"),
        };
        if activation(self, &tenant, &env, &id)?.is_none() {
            return Err(not_active());
        }
        // Recorded first, then enforced.
        let body = PolicyActivatedBody::Default {
            policy_id: id.clone(),
            environment: env.clone(),
            api_key_id: caller.key.id.clone(),
        };
        self.record(&tenant, EntryKind::PolicyActivated, body.to_value()?)
            .await?;
        if !self.store().set_default_policy(&tenant, &env, &id)? {
            return Err(not_active());
        }
        Ok(json!({"policy_id": id, "environment": env, "default": true}))
    }

    /// `POST /v1/admin/policies/{id}/candidate`: runs a version beside the active one.
    pub(crate) async fn set_candidate(
        &self,
        caller: &Caller,
        id: String,
        req: VersionRef,
    ) -> Result<Value, Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        let env = environment(req.environment.as_deref())?;
        if stored_version(self, &tenant, &id, req.version)?.is_none() {
            return Err(Error::NotFound);
        }
        let since = self.now_ms();
        let not_active = || Error::Unprocessable {
            code: "policy_not_active",
            message: format!("`{id}` has no active version in {env} to run a candidate beside"),
        };
        if activation(self, &tenant, &env, &id)?.is_none() {
            return Err(not_active());
        }
        self.record(
            &tenant,
            EntryKind::PolicyActivated,
            PolicyActivatedBody::Candidate {
                policy_id: id.clone(),
                version: req.version,
                environment: env.clone(),
                api_key_id: caller.key.id.clone(),
            }
            .to_value()?,
        )
        .await?;
        if !self
            .store()
            .set_policy_candidate(&tenant, &env, &id, Some((req.version, since)))?
        {
            return Err(not_active());
        }
        Ok(json!({
            "policy_id": id,
            "candidate": req.version,
            "environment": env,
            "since": rfc3339(since),
        }))
    }

    /// `DELETE /v1/admin/policies/{id}/candidate`: stops the candidate.
    pub async fn clear_candidate(
        &self,
        caller: &Caller,
        id: String,
        q: TenantQuery,
    ) -> Result<(), Error> {
        let tenant = target_tenant(caller, q.tenant.as_deref())?;
        let env = environment(q.environment.as_deref())?;
        let had = activation(self, &tenant, &env, &id)?.and_then(|a| a.candidate);
        let Some(version) = had else {
            return Err(Error::NotFound);
        };
        self.record(
            &tenant,
            EntryKind::PolicyActivated,
            PolicyActivatedBody::CandidateStopped {
                policy_id: id.clone(),
                version,
                environment: env.clone(),
                api_key_id: caller.key.id.clone(),
            }
            .to_value()?,
        )
        .await?;
        self.store()
            .set_policy_candidate(&tenant, &env, &id, None)?;
        Ok(())
    }

    /// `GET /v1/admin/policies/{id}/candidate/report`: how many of the decisions taken
    /// `POST /v1/admin/policies/{id}/replay`: evaluates a version against the tenant's
    /// recorded decisions that used the policy, beside the versions they were decided
    /// with, under the same replay conditions (no overrides, approvals or outcome bias;
    /// buckets and history rebuilt from the window itself), and reports the flips. Reads
    /// `POST /v1/admin/shadow`: the tenant-wide shadow switch (every gate runs, the
    /// would-be verdict is recorded, nothing is blocked).
    pub(crate) async fn shadow(&self, caller: &Caller, req: ShadowSwitch) -> Result<Value, Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        let mut record = self.store().tenant(&tenant)?.ok_or(Error::NotFound)?;
        record.body["shadow"] = json!(req.enabled);
        // Recorded first, then enforced.
        let body = PolicyActivatedBody::TenantShadow {
            enabled: req.enabled,
            api_key_id: caller.key.id.clone(),
        };
        self.record(&tenant, EntryKind::PolicyActivated, body.to_value()?)
            .await?;
        self.store().put_tenant(&record)?;
        Ok(json!({"tenant": tenant, "shadow": req.enabled}))
    }
}
