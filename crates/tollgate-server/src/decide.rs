//! The decision service every API family calls: quota, policies, overrides,
//! adaptive inputs, the engine, the throttle, the durable ledger append, metering.
//! Adapters translate to and from it; they never decide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tollgate_core::{
    DecideInput, DecisionRequest, Mode, OutcomeRecord, PolicyBinding, Verdict, csc_default, digest,
    evaluate_with_history,
};
use tollgate_ledger::{EntryDraft, EntryKind};

use crate::auth::{Caller, time_ordered_id};
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

/// The policies of one decision.
#[derive(Debug, Default)]
struct Resolved {
    bindings: Vec<PolicyBinding>,
    /// (index into `bindings`, the candidate version run beside it).
    candidates: Vec<(usize, Arc<tollgate_core::CompiledPolicy>)>,
}

/// The engine inputs besides the request and its policies.
struct EngineState<'a> {
    now: tollgate_core::UnixMillis,
    overrides: &'a [tollgate_core::Override],
    outcomes: &'a [OutcomeRecord],
    approval: Option<&'a tollgate_core::Approval>,
    tenant_shadow: bool,
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
    /// `csc-default`, or versions stored for the tenant (`id` = the version active for
    /// the caller's environment; `id@N` = version N). No refs = the environment's
    /// default policy, else `csc-default`. Anything else fails closed (not found).
    /// Also the candidates running beside the active versions.
    fn resolve_policies(
        &self,
        tenant: &str,
        environment: &str,
        refs: &[String],
    ) -> Result<Resolved, ApiError> {
        let builtin = csc_default().map_err(ApiError::internal)?;
        // Read only when a stored policy is named: the common built-in path asks the
        // store nothing more than the default-policy lookup.
        let mut activations: Option<Vec<tollgate_store::PolicyActivation>> = None;
        let mut out = Resolved::default();
        let mut active = |id: &str, out: &mut Resolved| -> Result<(), ApiError> {
            let activations = match &mut activations {
                Some(a) => a,
                None => activations.insert(self.store().policy_activations(tenant, environment)?),
            };
            let Some(a) = activations.iter().find(|a| a.policy_id == id) else {
                out.bindings.push(PolicyBinding::NotFound(id.to_owned()));
                return Ok(());
            };
            out.bindings
                .push(self.stored_policy(tenant, id, a.version)?);
            if let Some(c) = a.candidate
                && let Some(p) = self.stored_policy_version(tenant, id, c)?
            {
                out.candidates.push((out.bindings.len() - 1, p));
            }
            Ok(())
        };
        if refs.is_empty() {
            match self.store().active_policy(tenant, environment)? {
                Some((id, _)) => active(&id, &mut out)?,
                None => out.bindings.push(PolicyBinding::Found(builtin)),
            }
            return Ok(out);
        }
        for r in refs {
            match r.split_once('@') {
                None if r == builtin.id() => {
                    out.bindings
                        .push(PolicyBinding::Found(Arc::clone(&builtin)));
                }
                None => active(r, &mut out)?,
                Some((id, v)) => match v.parse::<u64>() {
                    Ok(v) => {
                        let b = self.stored_policy(tenant, id, v)?;
                        let b = match b {
                            PolicyBinding::NotFound(_) => PolicyBinding::NotFound(r.clone()),
                            found => found,
                        };
                        out.bindings.push(b);
                    }
                    Err(_) => out.bindings.push(PolicyBinding::NotFound(r.clone())),
                },
            }
        }
        Ok(out)
    }

    /// A stored policy version as a binding: not found when missing or not compilable.
    fn stored_policy(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<PolicyBinding, ApiError> {
        Ok(match self.stored_policy_version(tenant, id, version)? {
            Some(p) => PolicyBinding::Found(p),
            None => PolicyBinding::NotFound(format!("{id}@{version}")),
        })
    }

    /// A stored policy version (or the built-in `csc-default`), compiled once per text
    /// and version and cached; `None` when missing or not compilable.
    pub(crate) fn stored_policy_version(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<Option<Arc<tollgate_core::CompiledPolicy>>, ApiError> {
        let builtin = csc_default().map_err(ApiError::internal)?;
        if id == builtin.id() && version == u64::from(builtin.version()) {
            return Ok(Some(builtin));
        }
        // A number the store cannot hold names no version (and must not be a 500).
        if i64::try_from(version).is_err() {
            return Ok(None);
        }
        let Some(record) = self.store().policy_version(tenant, id, version)? else {
            return Ok(None);
        };
        static COMPILED: std::sync::LazyLock<CompiledCache> =
            std::sync::LazyLock::new(Default::default);
        let slot = (record.text_hash.clone(), record.version);
        if let Some(p) = COMPILED.lock().map_err(lock_error)?.get(&slot) {
            return Ok(Some(Arc::clone(p)));
        }
        let Ok(compiled) = crate::policies::compile_record(&record) else {
            tracing::error!(tenant, policy = %id, version, "a stored policy does not compile");
            return Ok(None);
        };
        COMPILED
            .lock()
            .map_err(lock_error)?
            .insert(slot, Arc::clone(&compiled));
        Ok(Some(compiled))
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
            self.0
                .meter
                .refund(self.store().as_ref(), &tenant, &period, "decisions")?;
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
        let resolved =
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
        let engine = self
            .run_engine(
                &tenant,
                &call.request,
                &resolved,
                &EngineState {
                    now,
                    overrides: &overrides,
                    outcomes: &outcomes,
                    approval: taken.as_ref().map(|(_, a)| a),
                    tenant_shadow: settings.shadow,
                },
            )
            .await;
        let (decision, candidates, history_id) = match engine {
            Ok(d) => d,
            Err(e) => {
                if let Some((r, _)) = taken {
                    self.restore_approval(r)?;
                }
                return Err(e);
            }
        };
        let verdict = decision.verdict;
        let decision_id = time_ordered_id("dec", now.as_millis())?;
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
        if !candidates.is_empty() {
            body.insert("candidates".into(), Value::Array(candidates));
        }
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
                if let Some(id) = history_id {
                    // The decision is not recorded, so the action it permitted does not count.
                    self.store().remove_history(&tenant, id)?;
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

    /// Runs the engine for one request: reads the history its policies need, decides,
    /// takes throttle tokens, evaluates candidates beside the active versions (they take
    /// no token and record no history), and records the permitted action's history
    /// event. Synchronous: the per-tenant history lock is never held across an await.
    async fn run_engine(
        &self,
        tenant: &str,
        request: &DecisionRequest,
        resolved: &Resolved,
        st: &EngineState<'_>,
    ) -> Result<(tollgate_core::Decision, Vec<Value>, Option<u64>), ApiError> {
        let compiled = resolved
            .bindings
            .iter()
            .filter_map(|b| match b {
                PolicyBinding::Found(p) => Some(p),
                PolicyBinding::NotFound(_) => None,
            })
            .chain(resolved.candidates.iter().map(|(_, p)| p));
        let mut scopes = Vec::new();
        let mut window = 0;
        for p in compiled {
            if let Some((s, w)) = p.history_needs() {
                scopes.extend(s);
                window = window.max(w);
            }
        }
        // INVARIANT: reading a tenant's history, deciding and recording the permitted
        // action happen under the tenant's history lock, so two concurrent requests
        // cannot both spend the same remaining allowance.
        let lock = if scopes.is_empty() {
            None
        } else {
            Some(self.history_lock(tenant)?)
        };
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let history = if scopes.is_empty() {
            Vec::new()
        } else {
            self.load_history(tenant, request, &scopes, st.now.as_millis() - window)?
        };
        let input = |policies: &'_ [PolicyBinding]| -> Result<tollgate_core::Evaluation, ApiError> {
            let input = DecideInput {
                request,
                policies,
                now: st.now,
                overrides: st.overrides,
                outcomes: st.outcomes,
                approval: st.approval,
                tenant_shadow: st.tenant_shadow,
            };
            evaluate_with_history(&input, &history).map_err(|e| ApiError::Validation(e.errors))
        };
        let evaluation = input(&resolved.bindings)?;
        let mut candidate_evals = Vec::new();
        for (i, p) in &resolved.candidates {
            let mut policies = resolved.bindings.clone();
            if let Some(slot) = policies.get_mut(*i) {
                *slot = PolicyBinding::Found(Arc::clone(p));
            }
            candidate_evals.push((Arc::clone(p), input(&policies)?));
        }
        // INVARIANT: the throttle checks and takes tokens atomically (one lock in
        // memory, one script in Redis), so two requests cannot take the same token;
        // candidates only look at the buckets.
        let (decision, candidate_verdicts) = self
            .0
            .throttle
            .finish(evaluation, candidate_evals, st.now)
            .await?;
        let active = crate::policies::effective(&decision.verdict);
        let candidates = candidate_verdicts
            .iter()
            .map(|(p, v)| {
                let candidate = crate::policies::effective(v);
                json!({
                    "policy_id": p.id(),
                    "version": p.version(),
                    "shadow": true,
                    "changed": candidate["status"] != active["status"],
                    "active": active,
                    "candidate": candidate,
                })
            })
            .collect();
        let history_id = match &decision.history_event {
            Some(e) => Some(self.store().add_history(&tollgate_store::HistoryRecord {
                id: 0,
                tenant: tenant.to_owned(),
                at_ms: e.at.as_millis(),
                actor: e.actor.clone(),
                source: e.source.clone(),
                values: e.values.clone(),
            })?),
            None => None,
        };
        Ok((decision, candidates, history_id))
    }

    /// The tenant's recorded actions since `since_ms` that the scopes read.
    fn load_history(
        &self,
        tenant: &str,
        request: &DecisionRequest,
        scopes: &[tollgate_core::Scope],
        since_ms: i64,
    ) -> Result<Vec<tollgate_core::HistoryEvent>, ApiError> {
        use tollgate_core::Scope;
        let records = if scopes.contains(&Scope::Tenant) {
            self.store().history(tenant, since_ms, None, None)?
        } else {
            let actor = request
                .actor_id()
                .filter(|_| scopes.contains(&Scope::Actor));
            let source = request
                .source
                .as_deref()
                .filter(|_| scopes.contains(&Scope::Source));
            if actor.is_none() && source.is_none() {
                return Ok(Vec::new());
            }
            self.store().history(tenant, since_ms, actor, source)?
        };
        Ok(records
            .into_iter()
            .map(|r| tollgate_core::HistoryEvent {
                at: tollgate_core::UnixMillis(r.at_ms),
                actor: r.actor,
                source: r.source,
                values: r.values,
            })
            .collect())
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
