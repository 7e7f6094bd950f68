//! The admin API: tenants, API keys, sources, overrides, audit. Every write that
//! can change a later decision is a ledger entry; secrets never are.

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::{Override, OverrideScope};
use tollgate_ledger::EntryKind;
use tollgate_store::{ApiKeyRecord, Record, TenantRecord};

use crate::clock::rfc3339;
use crate::service::Error;
use crate::service::auth::{self, Caller, random_id};
use crate::service::outcomes::parse_public_key;
use crate::service::{DecisionService, Written};

/// The tenant whose admin keys may manage every tenant (the operator).
pub const OPERATOR_TENANT: &str = "default";

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The tenant an admin call acts on: its own, or any for the operator.
pub(crate) fn target_tenant(caller: &Caller, requested: Option<&str>) -> Result<String, Error> {
    caller.require("admin")?;
    tenant_of(caller, requested)
}

/// The tenant an admin *read* looks at (`admin` or `read` keys): its own, or any for
/// the operator.
pub(crate) fn target_tenant_view(
    caller: &Caller,
    requested: Option<&str>,
) -> Result<String, Error> {
    caller.require_view("admin")?;
    tenant_of(caller, requested)
}

fn tenant_of(caller: &Caller, requested: Option<&str>) -> Result<String, Error> {
    match requested {
        None => Ok(caller.tenant().to_owned()),
        Some(t) if t == caller.tenant() => Ok(t.to_owned()),
        Some(t) if caller.tenant() == OPERATOR_TENANT => Ok(t.to_owned()),
        // Another tenant's data is not found, exactly like data that does not exist.
        Some(_) => Err(Error::NotFound),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    monthly_quota: Option<u64>,
    #[serde(default)]
    shadow: Option<bool>,
}

fn tenant_view(state: &DecisionService, t: &TenantRecord) -> Value {
    let period = crate::clock::month(state.now_ms());
    let usage = state
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
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

/// `?tenant=` of admin listings.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// The tenant (the operator may name any).
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSource {
    id: String,
    /// Ed25519 public key: base64 of the 32 raw bytes, or PEM.
    public_key: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOverride {
    /// `tenant`, `actor`, `action_type` or `source`.
    scope: String,
    #[serde(default)]
    value: Option<String>,
    reason: String,
}

impl DecisionService {
    /// `POST /v1/admin/tenants` (operator): creates or updates a tenant.
    pub(crate) async fn put_tenant(
        &self,
        caller: &Caller,
        req: NewTenant,
    ) -> Result<(Written, Value), Error> {
        caller.require("admin")?;
        if caller.tenant() != OPERATOR_TENANT {
            return Err(Error::Forbidden("admin"));
        }
        if !valid_id(&req.id) {
            return Err(Error::field(
                &["body", "id"],
                "use 1 to 64 of [A-Za-z0-9_.-]",
                "value_error",
            ));
        }
        let existing = self.store().tenant(&req.id)?;
        let mut record = existing.clone().unwrap_or(TenantRecord {
            id: req.id.clone(),
            name: req.id.clone(),
            created_ms: self.now_ms(),
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
        self.store().put_tenant(&record)?;
        let status = if existing.is_some() {
            Written::Changed
        } else {
            Written::Created
        };
        Ok((status, tenant_view(self, &record)))
    }

    /// `GET /v1/admin/tenants`: every tenant for the operator, else the caller's own.
    pub async fn list_tenants(&self, caller: &Caller) -> Result<Value, Error> {
        caller.require_view("admin")?;
        let tenants: Vec<Value> = self
            .store()
            .tenants()?
            .iter()
            .filter(|t| caller.tenant() == OPERATOR_TENANT || t.id == caller.tenant())
            .map(|t| tenant_view(self, t))
            .collect();
        Ok(json!({"tenants": tenants}))
    }

    /// `POST /v1/admin/keys`: creates a key; the secret is in this response only.
    pub(crate) async fn create_key(
        &self,
        caller: &Caller,
        req: NewKey,
    ) -> Result<(Written, Value), Error> {
        let tenant = target_tenant(caller, req.tenant.as_deref())?;
        if self.store().tenant(&tenant)?.is_none() {
            return Err(Error::NotFound);
        }
        let now = self.now_ms();
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
        if self.store().api_key_by_hash(&record.hash)?.is_some() {
            return Err(Error::Conflict("this key already exists".into()));
        }
        self.store().put_api_key(&record)?;
        self.forget_keys()?;
        self.record(
            &tenant,
            EntryKind::KeyCreated,
            json!({"key": key_view(&record), "by_key_id": caller.key.id}),
        )
        .await?;
        let mut view = key_view(&record);
        view["secret"] = json!(secret);
        Ok((Written::Created, (view)))
    }

    /// `GET /v1/admin/keys`: the tenant's keys (never secrets).
    pub async fn list_keys(&self, caller: &Caller, q: TenantQuery) -> Result<Value, Error> {
        let tenant = target_tenant_view(caller, q.tenant.as_deref())?;
        let keys: Vec<Value> = self
            .store()
            .api_keys(&tenant)?
            .iter()
            .map(key_view)
            .collect();
        Ok(json!({"keys": keys}))
    }

    /// `POST /v1/admin/keys/{id}/revoke`: effective at once.
    pub async fn revoke_key(&self, caller: &Caller, id: String) -> Result<Value, Error> {
        caller.require("admin")?;
        let tenants: Vec<String> = if caller.tenant() == OPERATOR_TENANT {
            self.store().tenants()?.into_iter().map(|t| t.id).collect()
        } else {
            vec![caller.tenant().to_owned()]
        };
        for tenant in tenants {
            if let Some(mut key) = self
                .store()
                .api_keys(&tenant)?
                .into_iter()
                .find(|k| k.id == id)
            {
                if key.revoked_ms.is_none() {
                    key.revoked_ms = Some(self.now_ms());
                    self.store().put_api_key(&key)?;
                    self.forget_keys()?;
                    self.record(
                        &tenant,
                        EntryKind::KeyRevoked,
                        json!({"key_id": key.id, "by_key_id": caller.key.id}),
                    )
                    .await?;
                }
                return Ok(key_view(&key));
            }
        }
        Err(Error::NotFound)
    }

    /// `POST /v1/admin/sources`: registers a source's Ed25519 key for outcome reports.
    pub(crate) async fn add_source(
        &self,
        caller: &Caller,
        req: NewSource,
    ) -> Result<(Written, Value), Error> {
        caller.require("admin")?;
        let tenant = caller.tenant().to_owned();
        if !valid_id(&req.id) {
            return Err(Error::field(
                &["body", "id"],
                "use 1 to 64 of [A-Za-z0-9_.-]",
                "value_error",
            ));
        }
        let key = parse_public_key(&req.public_key).ok_or_else(|| {
            Error::field(
                &["body", "public_key"],
                "not an Ed25519 public key (base64 of 32 bytes, or PEM)",
                "value_error",
            )
        })?;
        let b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.to_bytes());
        let mut record = self.store().source(&tenant, &req.id)?.unwrap_or(Record {
            tenant: tenant.clone(),
            id: req.id.clone(),
            body: json!({}),
        });
        record.body["public_key"] = json!(b64);
        self.store().put_source(&record)?;
        self.record(
            &tenant,
            EntryKind::SourceRegistered,
            json!({"source": req.id, "public_key": b64, "by_key_id": caller.key.id}),
        )
        .await?;
        Ok((Written::Created, (json!({"id": req.id, "public_key": b64}))))
    }

    /// `GET /v1/admin/sources`.
    pub async fn list_sources(&self, caller: &Caller) -> Result<Value, Error> {
        caller.require_view("admin")?;
        let sources: Vec<Value> = self
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
        Ok(json!({"sources": sources}))
    }

    /// `POST /v1/admin/overrides`: engages a kill switch.
    pub(crate) async fn set_override(
        &self,
        caller: &Caller,
        req: NewOverride,
    ) -> Result<(Written, Value), Error> {
        caller.require("admin")?;
        let tenant = caller.tenant().to_owned();
        let need_value = || {
            req.value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                Error::field(&["body", "value"], "this scope needs a value", "missing")
            })
        };
        let scope = match req.scope.as_str() {
            "tenant" => OverrideScope::Tenant,
            "actor" => OverrideScope::Actor(need_value()?),
            "action_type" => OverrideScope::ActionType(need_value()?),
            "source" => OverrideScope::Source(need_value()?),
            _ => {
                return Err(Error::field(
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
        let value = serde_json::to_value(&o).map_err(Error::internal)?;
        self.record(
            &tenant,
            EntryKind::OverrideSet,
            json!({"override": value, "by_key_id": caller.key.id}),
        )
        .await?;
        self.store().put_override(&Record {
            tenant: tenant.clone(),
            id: o.id.clone(),
            body: value.clone(),
        })?;
        self.forget_overrides(&tenant)?;
        Ok((Written::Created, (value)))
    }

    /// `DELETE /v1/admin/overrides/{id}`: clears a kill switch.
    pub async fn clear_override(&self, caller: &Caller, id: String) -> Result<Value, Error> {
        caller.require("admin")?;
        let tenant = caller.tenant().to_owned();
        if !self.store().overrides(&tenant)?.iter().any(|o| o.id == id) {
            return Err(Error::NotFound);
        }
        self.record(
            &tenant,
            EntryKind::OverrideCleared,
            json!({"override_id": id, "by_key_id": caller.key.id}),
        )
        .await?;
        self.store().clear_override(&tenant, &id)?;
        self.forget_overrides(&tenant)?;
        Ok(json!({"id": id, "cleared": true}))
    }

    /// `GET /v1/admin/overrides`.
    pub async fn list_overrides(&self, caller: &Caller) -> Result<Value, Error> {
        caller.require_view("admin")?;
        let list: Vec<Value> = self
            .store()
            .overrides(caller.tenant())?
            .into_iter()
            .map(|r| r.body)
            .collect();
        Ok(json!({"overrides": list}))
    }
}
