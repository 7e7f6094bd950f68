//! The decision service every API family calls: quota, policies, overrides,
//! adaptive inputs, the engine, the throttle, the durable ledger append, metering.
//! Adapters translate to and from it; they never decide.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tollgate_core::{
    DecideInput, DecisionRequest, Mode, OutcomeRecord, PolicyBinding, Verdict, digest,
    evaluate_with_history,
};
use tollgate_ledger::{CanonicalDraft, EntryKind};
use tracing::Instrument as _;

use crate::clock::{month, next_month_start, rfc3339};
use crate::metrics::DecisionLabels;
use crate::service::DecisionService;
use crate::service::Error;
use crate::service::auth::{Caller, time_ordered_id};
use crate::service::ledger::AppendFailure;
use crate::service::policies::Resolved;
use crate::service::records::{CandidateResult, DecisionEntryBody};

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
    /// The caller asked for an execution grant with an ALLOW.
    pub want_grant: bool,
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

/// The engine inputs besides the request and its policies.
struct EngineState<'a> {
    now: tollgate_core::UnixMillis,
    overrides: &'a [tollgate_core::Override],
    outcomes: &'a [OutcomeRecord],
    approval: Option<&'a tollgate_core::Approval>,
    tenant_shadow: bool,
}

/// What one decision reserved before its ledger append; given back by
/// [`DecisionService::release`] if the decision is not recorded.
#[derive(Debug, Default)]
struct Reservations {
    /// The month of the quota unit reserved.
    quota_period: Option<String>,
    /// The approval taken from an approved review.
    approval: Option<(tollgate_store::ReviewRecord, tollgate_core::Approval)>,
    /// The history event recorded for a permitted action.
    history_event: Option<u64>,
    /// The append's outcome is unknown (timed out, or the store cannot say): the
    /// decision may be recorded, so nothing is given back.
    keep: bool,
}

/// What a recorded decision leaves to do (step 4).
#[derive(Debug)]
struct Apply {
    review: Option<tollgate_store::ReviewRecord>,
    source: Option<String>,
    elapsed: std::time::Duration,
}

/// Tenant settings kept in the tenant record's body.
#[derive(Debug, Default)]
pub(crate) struct TenantSettings {
    pub(crate) shadow: bool,
    pub(crate) monthly_quota: Option<u64>,
}

impl DecisionService {
    pub(crate) fn tenant_settings(&self, tenant: &str) -> Result<Option<TenantSettings>, Error> {
        Ok(self.store().tenant(tenant)?.map(|t| TenantSettings {
            shadow: t
                .body
                .get("shadow")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            monthly_quota: t.body.get("monthly_quota").and_then(Value::as_u64),
        }))
    }

    /// Accepted outcomes of (tenant, source), as the adaptive bias reads them.
    fn outcome_records(&self, tenant: &str, source: &str) -> Result<Vec<OutcomeRecord>, Error> {
        let Some(record) = self.store().source(tenant, source)? else {
            return Ok(Vec::new());
        };
        let decisions = self.source_decisions(tenant, source)?;
        let mut out = Vec::new();
        for o in DecisionService::live_outcomes(&record.body) {
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
    pub(crate) fn source_decisions(&self, tenant: &str, source: &str) -> Result<u64, Error> {
        self.meter.get(
            self.store().as_ref(),
            tenant,
            "all",
            &format!("source:{source}"),
        )
    }

    /// Makes, records and meters one decision.
    ///
    /// The order is **reserve → decide → append → apply**:
    ///
    /// 1. *Reserve* what the decision may use: a quota unit, an approved review's
    ///    one-use approval, the velocity history event of a permitted action (and
    ///    throttle tokens, which are never given back: a lost token can only block,
    ///    never allow). Each reservation is held in [`Reservations`].
    /// 2. *Decide* with the engine.
    /// 3. *Append* the decision entry and wait until it is durable. If anything up to
    ///    here fails, [`DecisionService::release`] gives back every reservation and
    ///    the caller gets an error: no verdict, nothing left behind.
    /// 4. *Apply* what follows from a recorded decision (mark the approval used or
    ///    put it back, store the review it opened, count the source's decisions).
    ///    These run after the verdict is durable and never turn it into an error: a
    ///    failure is logged and counted, and leaves the safe side (an approval not
    ///    put back stays unusable; a review not stored cannot be approved).
    pub async fn decide(&self, call: DecideCall) -> Result<Decided, Error> {
        let started = Instant::now();
        let tenant = call.caller.tenant().to_owned();
        let mut held = Reservations::default();
        let span = crate::otel::decision_span(&tenant, call.family);
        let outcome = self
            .reserve_decide_append(call, started, &mut held)
            .instrument(span.clone())
            .await;
        match outcome {
            Ok((decided, then)) => {
                crate::otel::record_decision(&span, &decided);
                self.apply(&tenant, &decided, held, then).await;
                Ok(decided)
            }
            Err(e) => {
                crate::otel::record_error(&span, &e);
                self.release(&tenant, held);
                Err(e)
            }
        }
    }

    /// Steps 1 to 3 of [`DecisionService::decide`].
    async fn reserve_decide_append(
        &self,
        call: DecideCall,
        started: Instant,
        held: &mut Reservations,
    ) -> Result<(Decided, Apply), Error> {
        let tenant = call.caller.tenant().to_owned();
        let now = self.now();
        let settings = self.tenant_settings(&tenant)?.unwrap_or_default();
        let environment = call.caller.environment().to_owned();
        let enforce = call.request.mode == Mode::Enforce && !settings.shadow;
        if environment == "live" && enforce {
            // The quota unit is reserved before deciding, so concurrent requests
            // cannot overshoot.
            let limit = settings
                .monthly_quota
                .unwrap_or(self.config().monthly_quota);
            let period = month(now.as_millis());
            if !self
                .meter
                .reserve(self.store().as_ref(), &tenant, &period, "decisions", limit)?
            {
                return Err(Error::QuotaExceeded {
                    resets_at: next_month_start(now.as_millis()),
                    limit,
                });
            }
            held.quota_period = Some(period);
        }
        let resolved =
            self.resolve_policies(&tenant, call.caller.environment(), &call.policy_refs)?;
        let overrides = self.overrides(&tenant)?;
        let outcomes = match (&call.request.source, call.request.adaptive) {
            (Some(source), true) => self.outcome_records(&tenant, source)?,
            _ => Vec::new(),
        };
        let (request_digest, action_digest) =
            digest::request_and_action_digests(&call.request).map_err(Error::internal)?;
        let digest_hex = hex::encode(request_digest);
        // An approved review for this exact request allows it once (gate `review`).
        if enforce {
            held.approval = self.take_approval(&tenant, &digest_hex)?;
        }
        let (decision, candidates) = self
            .run_engine(
                &tenant,
                &call.request,
                &resolved,
                &EngineState {
                    now,
                    overrides: &overrides,
                    outcomes: &outcomes,
                    approval: held.approval.as_ref().map(|(_, a)| a),
                    tenant_shadow: settings.shadow,
                },
                &mut held.history_event,
            )
            .await?;
        let verdict = decision.verdict;
        let decision_id = time_ordered_id("dec", now.as_millis())?;
        let decided_at = rfc3339(now.as_millis());
        let action_digest = hex::encode(action_digest);
        let review = match (&verdict.review, verdict.mode) {
            (Some(req), Mode::Enforce) => Some(self.new_review(
                &tenant,
                &decision_id,
                &digest_hex,
                &call.caller.key.id,
                req,
            )?),
            _ => None,
        };
        // Grants only where they are used: asked for by the request, or by a policy
        // the request ran against (`grants: true`). Each costs a signature.
        let want_grant = call.want_grant || resolved.grants();
        let grant = match (verdict.status, verdict.mode) {
            (tollgate_core::Status::Allow, Mode::Enforce) if want_grant => {
                Some(self.issue_grant(&tenant, &decision_id, &action_digest)?)
            }
            _ => None,
        };
        let body = DecisionEntryBody {
            decision_id: decision_id.clone(),
            family: call.family.to_owned(),
            received: call.received,
            request: call.request,
            policy_refs: call.policy_refs,
            verdict,
            candidates,
            environment: environment.clone(),
            api_key_id: call.caller.key.id.clone(),
            request_digest: digest_hex,
            review_id: review.as_ref().map(|r| r.id.clone()),
            grant_id: grant.as_ref().map(|(_, jti)| jti.clone()),
            action_digest,
            idempotency_key: call.idempotency_key,
            correlation_id: call.correlation_id,
        };
        let draft = CanonicalDraft {
            tenant: tenant.clone(),
            time: decided_at.clone(),
            kind: EntryKind::Decision,
            body: body.canonical()?,
            decision_id: Some(decision_id.clone()),
        };
        let appended = match self.try_append_canonical(draft).await {
            Ok(a) => a,
            Err(failure) => match self.find_decision(&tenant, &decision_id) {
                // The store reported a failure but holds the entry (the acknowledgement
                // was lost): the decision is recorded, so it is answered and kept.
                Ok(Some(a)) => a,
                // Not recorded. After a timeout it may still become durable, and when
                // the store cannot tell we do not know either: keep every reservation
                // (fail closed: a kept approval or quota unit can only refuse).
                found => {
                    held.keep = failure == AppendFailure::TimedOut || found.is_err();
                    return Err(Error::LedgerUnavailable);
                }
            },
        };
        let elapsed = started.elapsed();
        let decided = Decided {
            decision_id,
            verdict: body.verdict,
            seq: appended.seq,
            entry_hash: appended.entry_hash.map(|h| hex::encode(h.as_bytes())),
            environment,
            latency_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            decided_at,
            review_id: body.review_id,
            grant: grant.map(|(token, _)| token),
        };
        let then = Apply {
            review,
            source: body.request.source,
            elapsed,
        };
        Ok((decided, then))
    }

    /// Gives back every reservation of a decision that was not recorded. Runs on every
    /// error path of [`DecisionService::decide`] before the append is durable.
    fn release(&self, tenant: &str, held: Reservations) {
        if held.keep {
            tracing::error!(
                tenant,
                "the decision's append has no known outcome: its reservations are kept"
            );
            return;
        }
        if let Some(period) = held.quota_period
            && let Err(e) = self
                .meter
                .refund(self.store().as_ref(), tenant, &period, "decisions")
        {
            tracing::error!(tenant, error = %e, "a quota unit of an unrecorded decision was not given back");
        }
        if let Some((r, _)) = held.approval
            && let Err(e) = self.restore_approval(r)
        {
            tracing::error!(tenant, error = %e, "an approval taken by an unrecorded decision was not put back");
        }
        if let Some(id) = held.history_event
            && let Err(e) = self.store().remove_history(tenant, id)
        {
            tracing::error!(tenant, error = %e, "the history event of an unrecorded decision was not removed");
        }
    }

    /// Step 4 of [`DecisionService::decide`]: what follows from a durable decision.
    /// Never fails: the verdict is recorded and is answered.
    async fn apply(&self, tenant: &str, decided: &Decided, held: Reservations, then: Apply) {
        if let Some((r, _)) = held.approval {
            let used = decided.verdict.gate == tollgate_core::Gate::Review;
            let done = retry_once(|| {
                if used {
                    self.consumed_by(r.clone(), &decided.decision_id)
                } else {
                    self.restore_approval(r.clone())
                }
            });
            if let Err(e) = done {
                tracing::error!(tenant, decision_id = %decided.decision_id, error = %e,
                    "the approval's use was not recorded; it stays taken");
                self.metrics.apply_failures.inc();
            }
        }
        let opened = match &then.review {
            Some(r) => match self.open_review(r).await {
                Err(_) => self.open_review(r).await,
                ok => ok,
            },
            None => Ok(()),
        };
        if let Some(r) = &then.review
            && let Err(e) = opened
        {
            tracing::error!(tenant, decision_id = %decided.decision_id, review_id = %r.id, error = %e,
                "the review of a recorded decision was not opened; it cannot be approved");
            self.metrics.apply_failures.inc();
        }
        if let Some(source) = &then.source
            && let Err(e) = self.meter.add(
                self.store().as_ref(),
                tenant,
                "all",
                &format!("source:{source}"),
                1,
            )
        {
            tracing::error!(tenant, error = %e, "the source's decision count was not advanced");
            self.metrics.apply_failures.inc();
        }
        self.metrics
            .decision_seconds
            .observe(then.elapsed.as_secs_f64());
        crate::otel::record_metrics(decided, then.elapsed);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                status: decided.verdict.status.as_str().to_owned(),
                gate: decided.verdict.gate.as_str().to_owned(),
                environment: decided.environment.clone(),
            })
            .inc();
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
        history_event: &mut Option<u64>,
    ) -> Result<(tollgate_core::Decision, Vec<CandidateResult>), Error> {
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
        // action happen under the tenant's history lock in this process and under the
        // store's history guard for the scopes touched (on PostgreSQL a transaction
        // holding advisory locks, so across every node), so two concurrent requests
        // cannot both spend the same remaining allowance.
        let lock = if scopes.is_empty() {
            None
        } else {
            Some(self.history_lock(tenant)?)
        };
        let _node_guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let mut guard = if scopes.is_empty() {
            None
        } else {
            let scope = tollgate_store::HistoryScope {
                whole_tenant: scopes.contains(&tollgate_core::Scope::Tenant),
                actor: request.actor_id().map(str::to_owned),
                source: request.source.clone(),
            };
            Some(self.store().lock_history(tenant, &scope)?)
        };
        let history = match guard.as_mut() {
            Some(g) => load_history(g.as_mut(), request, &scopes, st.now, window)?,
            None => Vec::new(),
        };
        let input = |policies: &'_ [PolicyBinding]| -> Result<tollgate_core::Evaluation, Error> {
            let input = DecideInput {
                request,
                policies,
                now: st.now,
                overrides: st.overrides,
                outcomes: st.outcomes,
                approval: st.approval,
                tenant_shadow: st.tenant_shadow,
            };
            evaluate_with_history(&input, &history).map_err(|e| Error::Validation(e.errors))
        };
        let (evaluation, candidate_evals) = crate::otel::engine_span().in_scope(|| {
            let evaluation = input(&resolved.bindings)?;
            let mut candidate_evals = Vec::new();
            for (i, p) in &resolved.candidates {
                let mut policies = resolved.bindings.clone();
                if let Some(slot) = policies.get_mut(*i) {
                    *slot = PolicyBinding::Found(Arc::clone(p));
                }
                candidate_evals.push((Arc::clone(p), input(&policies)?));
            }
            Ok::<_, Error>((evaluation, candidate_evals))
        })?;
        // INVARIANT: the throttle checks and takes tokens atomically (one lock in
        // memory, one script in Redis), so two requests cannot take the same token;
        // candidates only look at the buckets.
        let (decision, candidate_verdicts) = self
            .throttle
            .finish(evaluation, candidate_evals, st.now)
            .instrument(crate::otel::throttle_span())
            .await?;
        let active = crate::service::policies::effective(&decision.verdict);
        let candidates = candidate_verdicts
            .iter()
            .map(|(p, v)| {
                let candidate = crate::service::policies::effective(v);
                CandidateResult {
                    policy_id: p.id().to_owned(),
                    version: u64::from(p.version()),
                    shadow: true,
                    changed: candidate["status"] != active["status"],
                    active: active.clone(),
                    candidate,
                }
            })
            .collect();
        if let Some(mut guard) = guard {
            let added = match &decision.history_event {
                Some(e) => Some(guard.add_history(&tollgate_store::HistoryRecord {
                    id: 0,
                    tenant: tenant.to_owned(),
                    at_ms: e.at.as_millis(),
                    actor: e.actor.clone(),
                    source: e.source.clone(),
                    values: e.values.clone(),
                })?),
                None => None,
            };
            // Held until here: the event is visible to the next decision exactly when
            // the guard's locks are released. If the commit fails with the event
            // written after all, `release` removes it by id.
            *history_event = added;
            guard.commit()?;
        }
        Ok((decision, candidates))
    }
}

/// The tenant's recorded actions of the last `window` ms before `now` that the scopes
/// read, through the decision's history guard.
///
/// An event recorded by a decision that took its time after this one's but got the
/// guard first carries a time after `now`, which the engine's windows `(now - window,
/// now]` would leave out: this decision is serialised after it, so it must count it.
/// Such events are passed at `now` (recorded before this decision, as far as the
/// limit is concerned); without this, concurrent decisions could overshoot a limit.
fn load_history(
    guard: &mut dyn tollgate_store::HistoryGuard,
    request: &DecisionRequest,
    scopes: &[tollgate_core::Scope],
    now: tollgate_core::UnixMillis,
    window: i64,
) -> Result<Vec<tollgate_core::HistoryEvent>, Error> {
    use tollgate_core::Scope;
    let since_ms = now.as_millis() - window;
    let records = if scopes.contains(&Scope::Tenant) {
        guard.history(since_ms, None, None)?
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
        guard.history(since_ms, actor, source)?
    };
    Ok(records
        .into_iter()
        .map(|r| tollgate_core::HistoryEvent {
            at: tollgate_core::UnixMillis(r.at_ms.min(now.as_millis())),
            actor: r.actor,
            source: r.source,
            values: r.values,
        })
        .collect())
}

/// Runs a follow-up write of a recorded decision, and once more if it fails (a
/// passing store error must not leave an approval unmarked or a review unopened).
fn retry_once<T>(mut write: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    write().or_else(|_| write())
}

impl DecisionService {
    /// Rebuilds the `Decided` of a stored decision entry.
    pub fn decided_from_entry(
        entry: &tollgate_ledger::Entry,
        body: DecisionEntryBody,
    ) -> Result<Decided, Error> {
        Ok(Decided {
            decision_id: body.decision_id,
            verdict: body.verdict,
            seq: Some(entry.seq),
            entry_hash: Some(entry.entry_hash.to_hex()),
            environment: body.environment,
            latency_ms: 0,
            decided_at: entry.time.clone(),
            review_id: body.review_id,
            // A grant is handed out once, with the verdict; reading the decision back
            // does not mint another.
            grant: None,
        })
    }
}
