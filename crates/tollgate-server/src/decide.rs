//! The decision service every API family calls: quota, policies, overrides,
//! adaptive inputs, the engine, the throttle, the durable ledger append, metering.
//! Adapters translate to and from it; they never decide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tollgate_core::{
    DecideInput, DecisionRequest, Mode, OutcomeRecord, PolicyBinding, Verdict, csc_default, digest,
    evaluate,
};
use tollgate_ledger::{EntryDraft, EntryKind};

use crate::auth::{Caller, random_id};
use crate::clock::{month, next_month_start, rfc3339};
use crate::error::ApiError;
use crate::metrics::DecisionLabels;
use crate::state::{AppState, lock_error};

/// Stored policy versions compiled so far, by (text SHA-256, version). Compiling is
/// pure, so one cache serves every server in the process.
type CompiledCache =
    std::sync::Mutex<std::collections::HashMap<(String, u64), Arc<tollgate_core::CompiledPolicy>>>;

/// One decision to make, in the neutral shape.
#[derive(Debug)]
pub struct DecideCall {
    /// The authenticated caller.
    pub caller: Caller,
    /// The neutral request (tenant already set from the key).
    pub request: DecisionRequest,
    /// The request body as received, recorded in the ledger.
    pub received: Value,
    /// `policy_refs` as given: `id`, `id@N`; empty = the tenant default.
    pub policy_refs: Vec<String>,
    /// Idempotency key, if any (recorded).
    pub idempotency_key: Option<String>,
    /// Correlation id, if any (recorded).
    pub correlation_id: Option<String>,
    /// Which API family asked: `native`, `decionis`, `dealgo` (portal), `dealgo-runtime`, `dealgo-mcp`.
    pub family: &'static str,
}

/// A recorded decision.
#[derive(Clone, Debug)]
pub struct Decided {
    /// `dec_…`.
    pub decision_id: String,
    /// The engine's verdict.
    pub verdict: Verdict,
    /// Ledger sequence number; `None` while the entry is durable but not yet
    /// sequenced (cluster mode: "pending integration").
    pub seq: Option<u64>,
    /// Ledger entry hash, hex; `None` while pending.
    pub entry_hash: Option<String>,
    /// `live` or `test`.
    pub environment: String,
    /// Time from receipt to durable record.
    pub latency_ms: u64,
    /// RFC 3339 time of the decision.
    pub decided_at: String,
    /// ESCALATE / REVIEW_REQUIRED in enforce mode: the review opened.
    pub review_id: Option<String>,
    /// ALLOW in enforce mode: the execution grant (compact JWS).
    pub grant: Option<String>,
}

/// Tenant settings kept in the tenant record's body.
#[derive(Debug, Default)]
pub(crate) struct TenantSettings {
    pub(crate) shadow: bool,
    pub(crate) monthly_quota: Option<u64>,
}

impl AppState {
    pub(crate) fn tenant_settings(&self, tenant: &str) -> Result<Option<TenantSettings>, ApiError> {
        Ok(self.store().tenant(tenant)?.map(|t| TenantSettings {
            shadow: t
                .body
                .get("shadow")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            monthly_quota: t.body.get("monthly_quota").and_then(Value::as_u64),
        }))
    }

    /// The policies a request names, resolved to compiled versions: the built-in
    /// `csc-default`, or versions stored for the tenant (`id` = the version active
    /// for the caller's environment, else the newest; `id@N` = version N). No refs
    /// = the tenant's active policy for the environment, else `csc-default`.
    fn resolve_policies(
        &self,
        tenant: &str,
        environment: &str,
        refs: &[String],
    ) -> Result<Vec<PolicyBinding>, ApiError> {
        let builtin = csc_default().map_err(ApiError::internal)?;
        if refs.is_empty() {
            return match self.store().active_policy(tenant, environment)? {
                Some((id, version)) => Ok(vec![self.stored_policy(tenant, &id, Some(version))?]),
                None => Ok(vec![PolicyBinding::Found(builtin)]),
            };
        }
        refs.iter()
            .map(|r| match r.split_once('@') {
                None if r == builtin.id() => Ok(PolicyBinding::Found(Arc::clone(&builtin))),
                Some((id, v)) if id == builtin.id() && v == builtin.version().to_string() => {
                    Ok(PolicyBinding::Found(Arc::clone(&builtin)))
                }
                None => {
                    let active = self
                        .store()
                        .active_policy(tenant, environment)?
                        .filter(|(id, _)| id == r)
                        .map(|(_, v)| v);
                    self.stored_policy(tenant, r, active)
                }
                Some((id, v)) => match v.parse::<u64>() {
                    Ok(v) => self.stored_policy(tenant, id, Some(v)),
                    Err(_) => Ok(PolicyBinding::NotFound(r.clone())),
                },
            })
            .collect()
    }

    /// A stored policy version (`None` = the newest), compiled once per text and
    /// version and cached; missing or uncompilable → not found (the engine fails closed).
    fn stored_policy(
        &self,
        tenant: &str,
        id: &str,
        version: Option<u64>,
    ) -> Result<PolicyBinding, ApiError> {
        let record = match version {
            Some(v) => self.store().policy_version(tenant, id, v)?,
            None => self.store().policy_versions(tenant, id)?.pop(),
        };
        let name = match version {
            Some(v) => format!("{id}@{v}"),
            None => id.to_owned(),
        };
        let Some(record) = record else {
            return Ok(PolicyBinding::NotFound(name));
        };
        static COMPILED: std::sync::LazyLock<CompiledCache> =
            std::sync::LazyLock::new(Default::default);
        let slot = (record.text_hash.clone(), record.version);
        if let Some(p) = COMPILED.lock().map_err(lock_error)?.get(&slot) {
            return Ok(PolicyBinding::Found(Arc::clone(p)));
        }
        let format = tollgate_core::PolicyFormat::detect(&record.text);
        let Ok(compiled) = tollgate_core::compile_policy(&record.text, format) else {
            tracing::error!(tenant, policy = %name, "a stored policy does not compile");
            return Ok(PolicyBinding::NotFound(name));
        };
        let version = u32::try_from(record.version).unwrap_or(u32::MAX);
        let compiled = Arc::new(compiled.with_version(version));
        COMPILED
            .lock()
            .map_err(lock_error)?
            .insert(slot, Arc::clone(&compiled));
        Ok(PolicyBinding::Found(compiled))
    }

    /// Accepted outcomes of (tenant, source), as the adaptive bias reads them.
    fn outcome_records(&self, tenant: &str, source: &str) -> Result<Vec<OutcomeRecord>, ApiError> {
        let Some(record) = self.store().source(tenant, source)? else {
            return Ok(Vec::new());
        };
        let decisions = self.source_decisions(tenant, source)?;
        let mut out = Vec::new();
        for o in AppState::live_outcomes(&record.body) {
            let (Some(m), Some(c), Some(at), Some(n)) = (
                o.get("magnitude").and_then(Value::as_f64),
                o.get("confidence").and_then(Value::as_f64),
                o.get("observed_ms").and_then(Value::as_i64),
                o.get("decisions_at_accept").and_then(Value::as_u64),
            ) else {
                continue;
            };
            out.push(OutcomeRecord {
                magnitude: m,
                confidence: c,
                observed_at: tollgate_core::UnixMillis(at),
                decisions_since: decisions.saturating_sub(n),
            });
        }
        Ok(out)
    }

    /// Decisions made so far for (tenant, source): the traffic clock of the bias.
    pub(crate) fn source_decisions(&self, tenant: &str, source: &str) -> Result<u64, ApiError> {
        self.0.meter.get(
            self.store().as_ref(),
            tenant,
            "all",
            &format!("source:{source}"),
        )
    }

    /// Makes, records and meters one decision.
    pub async fn decide(&self, call: DecideCall) -> Result<Decided, ApiError> {
        let started = Instant::now();
        let tenant = call.caller.tenant().to_owned();
        let now = self.now();
        let settings = self.tenant_settings(&tenant)?.unwrap_or_default();
        let environment = call.caller.environment().to_owned();
        let enforce = call.request.mode == Mode::Enforce && !settings.shadow;
        let metered = environment == "live" && enforce;
        let period = month(now.as_millis());
        if metered {
            // The quota unit is reserved before deciding and given back if the
            // decision is not recorded, so concurrent requests cannot overshoot.
            let limit = settings
                .monthly_quota
                .unwrap_or(self.config().monthly_quota);
            let store = self.store().as_ref();
            if !self
                .0
                .meter
                .reserve(store, &tenant, &period, "decisions", limit)?
            {
                return Err(ApiError::QuotaExceeded {
                    resets_at: next_month_start(now.as_millis()),
                    limit,
                });
            }
        }
        let result = self
            .decide_reserved(call, now, settings, environment, started)
            .await;
        if metered && result.is_err() {
            self.0.meter.refund(&tenant, &period, "decisions")?;
        }
        result
    }

    async fn decide_reserved(
        &self,
        call: DecideCall,
        now: tollgate_core::UnixMillis,
        settings: TenantSettings,
        environment: String,
        started: Instant,
    ) -> Result<Decided, ApiError> {
        let tenant = call.caller.tenant().to_owned();
        let policies =
            self.resolve_policies(&tenant, call.caller.environment(), &call.policy_refs)?;
        let overrides = self.overrides(&tenant)?;
        let outcomes = match (&call.request.source, call.request.adaptive) {
            (Some(source), true) => self.outcome_records(&tenant, source)?,
            _ => Vec::new(),
        };
        let request_digest = digest::request_digest(&call.request).map_err(ApiError::internal)?;
        let digest_hex = hex::encode(request_digest);
        // An approved review for this exact request allows it once (gate `review`).
        let enforce = call.request.mode == Mode::Enforce && !settings.shadow;
        let taken = if enforce {
            self.take_approval(&tenant, &digest_hex)?
        } else {
            None
        };
        let input = DecideInput {
            request: &call.request,
            policies: &policies,
            now,
            overrides: &overrides,
            outcomes: &outcomes,
            approval: taken.as_ref().map(|(_, a)| a),
            tenant_shadow: settings.shadow,
        };
        let evaluation = match evaluate(&input) {
            Ok(e) => e,
            Err(e) => {
                if let Some((r, _)) = taken {
                    self.restore_approval(r)?;
                }
                return Err(ApiError::Validation(e.errors));
            }
        };
        // INVARIANT: reading the buckets, deciding and storing the new TATs happen
        // under one lock, so two requests cannot take the same token.
        let decision = {
            let mut buckets = self.0.buckets.lock().map_err(lock_error)?;
            let tats = buckets.read(evaluation.demands());
            let decision = evaluation.finish(&tats);
            buckets.apply(&decision.bucket_updates);
            decision
        };
        let verdict = decision.verdict;
        let decision_id = random_id("dec")?;
        let decided_at = rfc3339(now.as_millis());
        let action_digest = digest::action_digest(&call.request).map_err(ApiError::internal)?;
        let review = match (&verdict.review, verdict.mode) {
            (Some(req), Mode::Enforce) => Some(self.open_review(
                &tenant,
                &decision_id,
                &digest_hex,
                &call.caller.key.id,
                req,
            )?),
            _ => None,
        };
        let grant = match (verdict.status, verdict.mode) {
            (tollgate_core::Status::Allow, Mode::Enforce) => {
                Some(self.issue_grant(&tenant, &decision_id, &hex::encode(action_digest))?)
            }
            _ => None,
        };
        let mut body = Map::new();
        body.insert("decision_id".into(), json!(decision_id));
        body.insert("family".into(), json!(call.family));
        body.insert("received".into(), call.received);
        body.insert(
            "request".into(),
            serde_json::to_value(&call.request).map_err(ApiError::internal)?,
        );
        body.insert("policy_refs".into(), json!(call.policy_refs));
        body.insert(
            "verdict".into(),
            serde_json::to_value(&verdict).map_err(ApiError::internal)?,
        );
        body.insert("environment".into(), json!(environment));
        body.insert("api_key_id".into(), json!(call.caller.key.id));
        body.insert("request_digest".into(), json!(digest_hex));
        if let Some(r) = &review {
            body.insert("review_id".into(), json!(r.id));
        }
        if let Some((_, jti)) = &grant {
            body.insert("grant_id".into(), json!(jti));
        }
        body.insert("action_digest".into(), json!(hex::encode(action_digest)));
        if let Some(k) = &call.idempotency_key {
            body.insert("idempotency_key".into(), json!(k));
        }
        if let Some(c) = &call.correlation_id {
            body.insert("correlation_id".into(), json!(c));
        }
        let draft = EntryDraft {
            tenant: tenant.clone(),
            time: decided_at.clone(),
            kind: EntryKind::Decision,
            body: Value::Object(body),
        };
        let appended = match self.append(draft).await {
            Ok(a) => a,
            Err(e) => {
                if let Some((r, _)) = taken {
                    self.restore_approval(r)?;
                }
                return Err(e);
            }
        };
        match taken {
            Some((r, _)) if verdict.gate == tollgate_core::Gate::Review => {
                self.consumed_by(r, &decision_id)?;
            }
            Some((r, _)) => self.restore_approval(r)?,
            None => {}
        }
        if let Some(r) = &review {
            self.record_review_opened(r).await?;
        }
        let store = self.store().as_ref();
        if let Some(source) = &call.request.source {
            self.0
                .meter
                .add(store, &tenant, "all", &format!("source:{source}"), 1)?;
        }
        let elapsed = started.elapsed();
        self.0
            .metrics
            .decision_seconds
            .observe(elapsed.as_secs_f64());
        self.0
            .metrics
            .decisions
            .get_or_create(&DecisionLabels {
                status: verdict.status.as_str().to_owned(),
                gate: verdict.gate.as_str().to_owned(),
                environment: environment.clone(),
            })
            .inc();
        Ok(Decided {
            decision_id,
            verdict,
            seq: appended.seq,
            entry_hash: appended.entry_hash.map(|h| hex::encode(h.as_bytes())),
            environment,
            latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            decided_at,
            review_id: review.map(|r| r.id),
            grant: grant.map(|(token, _)| token),
        })
    }

    /// Appends an entry and waits until it is durable; 503 if it is not.
    pub(crate) async fn append(
        &self,
        draft: EntryDraft,
    ) -> Result<tollgate_store::Appended, ApiError> {
        let tenant = draft.tenant.clone();
        let started = Instant::now();
        let ack = self.store().submit(draft);
        let timeout = Duration::from_millis(self.config().ledger_timeout_ms);
        let appended = match tokio::time::timeout(timeout, ack).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "ledger append failed; answering 503");
                return Err(ApiError::LedgerUnavailable);
            }
            Err(_) => {
                tracing::error!("ledger append timed out; answering 503");
                return Err(ApiError::LedgerUnavailable);
            }
        };
        self.0
            .metrics
            .ledger_append_seconds
            .observe(started.elapsed().as_secs_f64());
        // A pending entry (cluster mode) is checkpointed by the sequencer that
        // integrates it; a sequenced one by this node's ticker.
        if appended.is_sequenced() {
            self.mark_dirty(&tenant);
        }
        Ok(appended)
    }
}
