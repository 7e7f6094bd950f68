//! The decision pipeline: override → policy rules and survival score → reality bands
//! → throttle → permit.
//!
//! The pipeline runs in two steps so that throttle state can live anywhere (a map in
//! memory, Redis) while the engine stays pure: [`evaluate`] runs every gate up to the
//! throttle and says which buckets it needs; the caller reads their state and calls
//! [`Evaluation::finish`], which returns the verdict and the state changes to apply.
//! [`decide`] does both against [`MemoryBuckets`].

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::adaptive::{self, OutcomeRecord};
use crate::expr::{self, Activation, CompiledExpr};
use crate::fast;
use crate::history::HistoryEvent;
use crate::policy::compile::KeyPart;
use crate::policy::{CompiledPolicy, DefaultEffect, Effect, OnError};
use crate::request::{DecisionRequest, FieldError, InvalidRequest, Mode};
use crate::throttle::{self, BucketDemand, GcraCheck, MemoryBuckets, TatUpdate};
use crate::time::UnixMillis;
use crate::trace::{CompactTrace, InputValue, PolicyList, Step};
use crate::verdict::{
    Gate, GateResult, Outcome, PolicyStamp, ReviewRequest, Status, Trace, TraceStep, Verdict,
};

/// Longest `action.type`, `actor.id` or `source` accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest `intent` accepted, in bytes.
pub const MAX_INTENT_LEN: usize = 16 * 1024;
/// Most signals accepted in one request.
pub const MAX_SIGNALS: usize = 64;

/// A `policy_refs` entry after the caller looked it up.
#[derive(Clone, Debug)]
pub enum PolicyBinding {
    /// The reference names this compiled policy version.
    Found(Arc<CompiledPolicy>),
    /// The reference names no known policy: the decision fails closed.
    NotFound(String),
}

/// What an operator kill switch covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "value", rename_all = "snake_case")]
pub enum OverrideScope {
    /// All of the tenant's traffic.
    Tenant,
    /// Requests whose `actor.id` is this.
    Actor(String),
    /// Requests whose `action.type` is this.
    ActionType(String),
    /// Requests whose `source` is this.
    Source(String),
}

impl OverrideScope {
    fn matches(&self, request: &DecisionRequest) -> bool {
        match self {
            OverrideScope::Tenant => true,
            OverrideScope::Actor(id) => request.actor_id() == Some(id.as_str()),
            OverrideScope::ActionType(t) => request.action_type() == Some(t.as_str()),
            OverrideScope::Source(s) => request.source.as_deref() == Some(s.as_str()),
        }
    }

    fn describe(&self) -> String {
        match self {
            OverrideScope::Tenant => "tenant".to_owned(),
            OverrideScope::Actor(v) => format!("actor:{v}"),
            OverrideScope::ActionType(v) => format!("action_type:{v}"),
            OverrideScope::Source(v) => format!("source:{v}"),
        }
    }
}

/// An engaged kill switch of the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Override id.
    pub id: String,
    /// What it covers.
    pub scope: OverrideScope,
    /// Why it was set (reported in the explanation).
    pub reason: String,
}

/// A human approval that the caller found valid for this request's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The review that was approved.
    pub review_id: String,
    /// Who approved it.
    pub approvers: Vec<String>,
}

/// Everything a decision depends on. The engine reads nothing else.
#[derive(Clone, Copy, Debug)]
pub struct DecideInput<'a> {
    /// The request.
    pub request: &'a DecisionRequest,
    /// The policies to evaluate, resolved from `policy_refs` (or the tenant default).
    pub policies: &'a [PolicyBinding],
    /// The decision time.
    pub now: UnixMillis,
    /// The tenant's engaged overrides.
    pub overrides: &'a [Override],
    /// Accepted outcomes of (tenant, source); read only when the request opts in.
    pub outcomes: &'a [OutcomeRecord],
    /// A valid approval for this request's digest, if the caller found one.
    pub approval: Option<&'a Approval>,
    /// The tenant-wide shadow switch.
    pub tenant_shadow: bool,
}

/// A verdict and the state changes the caller must apply atomically with the ledger
/// append.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Bucket TATs to store (empty unless a token was taken).
    pub bucket_updates: Vec<TatUpdate>,
    /// The event to add to the history: present for a permitted enforce-mode decision
    /// when a policy evaluated for it reads the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_event: Option<HistoryEvent>,
}

/// The pipeline after every gate up to the throttle.
#[derive(Debug)]
pub struct Evaluation {
    now: UnixMillis,
    mode: Mode,
    policies: Vec<PolicyStamp>,
    adaptive_bias: Option<f64>,
    /// The trace so far, compact. The throttle gate's key errors are already in it
    /// (they are its first steps); `finish` adds its buckets and closes it.
    trace: CompactTrace,
    /// The first blocking outcome; `None` while every gate passed.
    outcome: Option<Outcome>,
    /// Whether the throttle gate runs (its trace step is added by `finish`).
    throttle_runs: bool,
    /// Whether a bucket key could not be computed.
    key_error: bool,
    demands: Vec<BucketDemand>,
    /// Reason codes of matching allow rules, reported on a permit.
    allow_codes: Vec<String>,
    /// The history event this request becomes if it is permitted in enforce mode.
    pending_event: Option<Box<HistoryEvent>>,
}

/// [`decide`] with a history, which it extends with the decision's event.
pub fn decide_with_history(
    input: &DecideInput<'_>,
    buckets: &mut MemoryBuckets,
    history: &mut Vec<HistoryEvent>,
) -> Result<Verdict, InvalidRequest> {
    let eval = evaluate_with_history(input, history)?;
    let tats = buckets.read(eval.demands());
    let decision = eval.finish(&tats);
    buckets.apply(&decision.bucket_updates);
    history.extend(decision.history_event);
    Ok(decision.verdict)
}

/// Runs the whole pipeline with bucket state in `buckets`, applying the state changes.
#[inline]
pub fn decide(
    input: &DecideInput<'_>,
    buckets: &mut MemoryBuckets,
) -> Result<Verdict, InvalidRequest> {
    let eval = evaluate(input)?;
    let tats = buckets.read(eval.demands());
    let decision = eval.finish(&tats);
    buckets.apply(&decision.bucket_updates);
    Ok(decision.verdict)
}

/// Validates the request and runs every gate before the throttle, with no history
/// (velocity conditions see an empty one).
#[inline]
pub fn evaluate(input: &DecideInput<'_>) -> Result<Evaluation, InvalidRequest> {
    evaluate_with_history(input, &[])
}

/// [`evaluate`] with the tenant's permitted enforce-mode actions, for velocity
/// conditions (`history.count`, `history.sum`). Events older than the longest window a
/// policy reads may be left out.
pub fn evaluate_with_history(
    input: &DecideInput<'_>,
    history: &[HistoryEvent],
) -> Result<Evaluation, InvalidRequest> {
    validate(input)?;
    let request = input.request;
    let mode = if input.tenant_shadow && request.mode.is_enforce() {
        Mode::Shadow
    } else {
        request.mode
    };
    let stop_early = mode.is_enforce();
    let mut stamps = Vec::with_capacity(input.policies.len());
    let mut compiled = PolicyList::default();
    for b in input.policies {
        if let PolicyBinding::Found(p) = b {
            stamps.push(p.stamp.clone());
            compiled.push(Arc::clone(p));
        }
    }
    let mut ev = Evaluation {
        now: input.now,
        mode,
        policies: stamps,
        adaptive_bias: None,
        trace: CompactTrace::new(compiled),
        outcome: None,
        throttle_runs: false,
        key_error: false,
        demands: Vec::new(),
        allow_codes: Vec::new(),
        pending_event: pending_event(input).map(Box::new),
    };

    // 1. Override: the emergency stop.
    override_gate(input, &mut ev);
    if ev.outcome.is_some() && stop_early {
        return Ok(ev);
    }

    // A human approval for this exact request: ALLOW at gate review.
    if let Some(approval) = input.approval {
        ev.trace.full(TraceStep::Approval {
            review_id: approval.review_id.clone(),
            approvers: approval.approvers.clone(),
        });
        ev.trace.close(Gate::Review, GateResult::Allow);
        if ev.outcome.is_none() {
            ev.outcome = Some(Outcome {
                status: Status::Allow,
                gate: Gate::Review,
                reason_codes: vec!["REVIEW_APPROVED".to_owned()],
                explanation: format!(
                    "approved in review {} by {}",
                    approval.review_id,
                    approval.approvers.join(", ")
                ),
                retry_after_ms: None,
                review: None,
            });
        }
        return Ok(ev);
    }

    // 2. Policy rules and survival score.
    policy_gate(input, history, &mut ev);
    if ev.outcome.is_some() && stop_early {
        return Ok(ev);
    }
    // ESCALATE / REVIEW_REQUIRED are final: no reality, no throttle token.
    if matches!(
        ev.outcome.as_ref().map(|o| o.status),
        Some(Status::Escalate | Status::ReviewRequired)
    ) {
        return Ok(ev);
    }

    // 3. Reality bands.
    reality_gate(input, &mut ev);
    if ev.outcome.is_some() && stop_early {
        return Ok(ev);
    }

    // 4. Throttle: compute the buckets; `finish` checks them.
    throttle_demands(input, &mut ev);
    Ok(ev)
}

impl Evaluation {
    /// The buckets whose state `finish` needs, in order.
    pub fn demands(&self) -> &[BucketDemand] {
        &self.demands
    }

    /// Whether a token will be taken when every bucket allows (enforce mode, every
    /// earlier gate passed). Otherwise the buckets are only looked at.
    pub fn consumes(&self) -> bool {
        self.mode.is_enforce() && self.outcome.is_none()
    }

    /// Finishes the pipeline with the current TAT of every demanded bucket (same
    /// order as [`Evaluation::demands`]; `None` = never used).
    #[inline]
    pub fn finish(self, tats: &[Option<i64>]) -> Decision {
        let (checks, updates) = throttle::check_all(&self.demands, tats, self.now, self.consumes());
        self.finish_with_checks(&checks, updates)
    }

    /// Finishes the pipeline with bucket checks made elsewhere with the same GCRA
    /// (for example by an atomic script in Redis): `checks` in demand order, and the
    /// updates that were applied.
    #[inline]
    pub fn finish_with_checks(mut self, checks: &[GcraCheck], updates: Vec<TatUpdate>) -> Decision {
        if self.throttle_runs {
            let consumed = !updates.is_empty();
            let mut retry: Option<u64> = None;
            for (i, c) in checks.iter().take(self.demands.len()).enumerate() {
                if !c.allowed {
                    retry = Some(retry.map_or(c.retry_after_ms, |r| r.max(c.retry_after_ms)));
                }
                self.trace.push(Step::Bucket {
                    demand: index_u32(i),
                    available: c.available,
                    allowed: c.allowed,
                    consumed,
                    retry_after_ms: (!c.allowed).then_some(c.retry_after_ms),
                });
            }
            let key_error = self.key_error;
            let missing = checks.len() < self.demands.len();
            // The bucket steps name their demand; the trace keeps the demands.
            self.trace.set_demands(std::mem::take(&mut self.demands));
            let blocked = retry.is_some() || key_error || missing;
            if blocked && self.outcome.is_none() {
                self.outcome = Some(if key_error || missing {
                    Outcome {
                        status: Status::Block,
                        gate: Gate::Throttle,
                        reason_codes: vec!["THROTTLE_ERROR".to_owned()],
                        explanation: "a throttle bucket could not be checked; failing closed"
                            .to_owned(),
                        retry_after_ms: None,
                        review: None,
                    }
                } else {
                    let wait = retry.unwrap_or(0);
                    Outcome {
                        status: Status::Block,
                        gate: Gate::Throttle,
                        reason_codes: vec!["THROTTLED".to_owned()],
                        explanation: format!(
                            "rate limit reached: no token available; retry in {wait} ms"
                        ),
                        retry_after_ms: Some(wait),
                        review: None,
                    }
                });
            }
            self.trace.close(
                Gate::Throttle,
                if blocked {
                    GateResult::Block
                } else {
                    GateResult::Pass
                },
            );
        }
        let outcome = match self.outcome {
            Some(o) => o,
            None => {
                self.trace.close(Gate::Permit, GateResult::Allow);
                Outcome {
                    status: Status::Allow,
                    gate: Gate::Permit,
                    reason_codes: std::mem::take(&mut self.allow_codes),
                    explanation: "permitted: every gate passed".to_owned(),
                    retry_after_ms: None,
                    review: None,
                }
            }
        };
        let verdict = if self.mode.is_enforce() {
            Verdict {
                status: outcome.status,
                gate: outcome.gate,
                reason_codes: outcome.reason_codes,
                explanation: outcome.explanation,
                retry_after_ms: outcome.retry_after_ms,
                review: outcome.review,
                mode: self.mode,
                would_be: None,
                policies: self.policies,
                adaptive_bias: self.adaptive_bias,
                trace: Trace::compact(self.trace),
            }
        } else {
            Verdict {
                status: Status::Allow,
                gate: Gate::Permit,
                reason_codes: Vec::new(),
                explanation: format!(
                    "{} mode: would have been {} at gate {}",
                    match self.mode {
                        Mode::DryRun => "dry-run",
                        _ => "shadow",
                    },
                    outcome.status.as_str(),
                    outcome.gate.as_str()
                ),
                retry_after_ms: None,
                review: None,
                mode: self.mode,
                would_be: Some(Box::new(outcome)),
                policies: self.policies,
                adaptive_bias: self.adaptive_bias,
                trace: Trace::compact(self.trace),
            }
        };
        let history_event = match (verdict.status, verdict.mode) {
            (Status::Allow, Mode::Enforce) => self.pending_event.map(|e| *e),
            _ => None,
        };
        Decision {
            verdict,
            bucket_updates: updates,
            history_event,
        }
    }
}

/// The history event of this request: the fields any evaluated policy sums.
fn pending_event(input: &DecideInput<'_>) -> Option<HistoryEvent> {
    let mut fields: Vec<&str> = Vec::new();
    let mut any = false;
    for b in input.policies {
        if let PolicyBinding::Found(p) = b {
            for c in &p.history_calls {
                any = true;
                if let Some(f) = &c.field {
                    fields.push(f);
                }
            }
        }
    }
    if !any {
        return None;
    }
    let r = input.request;
    Some(HistoryEvent {
        at: input.now,
        actor: r.actor_id().map(str::to_owned),
        source: r.source.clone(),
        values: fields
            .into_iter()
            .filter_map(|f| crate::history::number_at(r, f).map(|v| (f.to_owned(), v)))
            .collect(),
    })
}

fn validate(input: &DecideInput<'_>) -> Result<(), InvalidRequest> {
    let r = input.request;
    let mut errors = Vec::new();
    let mut err = |loc: &[&str], msg: String, kind: &str| {
        errors.push(FieldError {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg,
            kind: kind.to_owned(),
        });
    };
    if r.tenant.is_empty() || r.tenant.len() > MAX_ID_LEN {
        err(
            &["tenant"],
            "tenant must be 1 to 256 bytes".to_owned(),
            "value_error",
        );
    }
    match r.action.get("type") {
        None => err(&["action", "type"], "field required".to_owned(), "missing"),
        Some(Json::String(s)) if s.is_empty() || s.len() > MAX_ID_LEN => err(
            &["action", "type"],
            "action type must be 1 to 256 bytes".to_owned(),
            "string_too_long",
        ),
        Some(Json::String(_)) => {}
        Some(_) => err(
            &["action", "type"],
            "action type must be a string".to_owned(),
            "string_type",
        ),
    }
    if let Some(id) = r.actor.get("id") {
        match id {
            Json::String(s) if s.len() > MAX_ID_LEN => err(
                &["actor", "id"],
                "actor id must be at most 256 bytes".to_owned(),
                "string_too_long",
            ),
            Json::String(_) => {}
            _ => err(
                &["actor", "id"],
                "actor id must be a string".to_owned(),
                "string_type",
            ),
        }
    }
    if r.source.as_ref().is_some_and(|s| s.len() > MAX_ID_LEN) {
        err(
            &["source"],
            "source must be at most 256 bytes".to_owned(),
            "string_too_long",
        );
    }
    if r.intent.as_ref().is_some_and(|s| s.len() > MAX_INTENT_LEN) {
        err(
            &["intent"],
            "intent must be at most 16384 bytes".to_owned(),
            "string_too_long",
        );
    }
    if r.signals.len() > MAX_SIGNALS {
        err(
            &["signals"],
            format!("at most {MAX_SIGNALS} signals"),
            "too_long",
        );
    }
    for (name, value) in &r.signals {
        if !value.is_finite() {
            err(
                &["signals", name],
                "signal must be a finite number".to_owned(),
                "finite_number",
            );
            continue;
        }
        let mut ranges = input
            .policies
            .iter()
            .filter_map(|b| match b {
                PolicyBinding::Found(p) => {
                    p.signals.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
                }
                PolicyBinding::NotFound(_) => None,
            })
            .peekable();
        // A signal no policy declares is checked against the default range.
        let default = ranges
            .peek()
            .is_none()
            .then(crate::policy::SignalRange::default);
        for range in default.into_iter().chain(ranges) {
            let crate::policy::SignalRange { min, max, .. } = range;
            if *value < min || *value > max {
                err(
                    &["signals", name],
                    format!("signal must be in [{min}, {max}]"),
                    "value_error.number.out_of_range",
                );
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InvalidRequest { errors })
    }
}

fn override_gate(input: &DecideInput<'_>, ev: &mut Evaluation) {
    let mut engaged: Option<&crate::engine::Override> = None;
    for o in input.overrides {
        let hit = o.scope.matches(input.request);
        if hit && engaged.is_none() {
            engaged = Some(o);
        }
        ev.trace.full(TraceStep::Override {
            id: o.id.clone(),
            scope: o.scope.describe(),
            engaged: hit,
        });
    }
    let result = if engaged.is_some() {
        GateResult::Block
    } else {
        GateResult::Pass
    };
    ev.trace.close(Gate::Override, result);
    if let Some(o) = engaged {
        ev.outcome = Some(Outcome {
            status: Status::Block,
            gate: Gate::Override,
            reason_codes: vec!["OVERRIDE_ENGAGED".to_owned()],
            explanation: format!(
                "override {} ({}) engaged: {}",
                o.id,
                o.scope.describe(),
                o.reason
            ),
            retry_after_ms: None,
            review: None,
        });
    }
}

/// One contribution to the policy gate's verdict.
struct Candidate<'p> {
    status: Status,
    code: Cow<'p, str>,
    explanation: Cow<'p, str>,
    review: Option<Box<ReviewRequest>>,
}

/// The policy gate's candidates, in the order they arose. Most decisions have at most
/// one, kept inline: a list is allocated only for a second.
#[derive(Default)]
struct CandidateList<'p> {
    first: Option<Candidate<'p>>,
    more: Vec<Candidate<'p>>,
}

impl<'p> CandidateList<'p> {
    fn push(&mut self, c: Candidate<'p>) {
        if self.first.is_none() {
            self.first = Some(c);
        } else {
            self.more.push(c);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Candidate<'p>> {
        self.first.iter().chain(&self.more)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Most restrictive first, rule order within a level (a stable sort).
    fn sort(&mut self) {
        if self.more.is_empty() {
            return;
        }
        let mut all = Vec::with_capacity(1 + self.more.len());
        all.extend(self.first.take());
        all.append(&mut self.more);
        all.sort_by_key(|c| std::cmp::Reverse(c.status.severity()));
        let mut all = all.into_iter();
        self.first = all.next();
        self.more = all.collect();
    }
}

fn effect_status(effect: Effect) -> Status {
    match effect {
        Effect::Allow => Status::Allow,
        Effect::Block => Status::Block,
        Effect::Escalate => Status::Escalate,
        Effect::Review => Status::ReviewRequired,
    }
}

/// The signals a policy's expressions see: the request's, with declared defaults.
fn effective_signals<'r>(
    request: &'r DecisionRequest,
    p: &'r CompiledPolicy,
) -> Vec<(&'r str, f64)> {
    let mut out: Vec<(&str, f64)> = request
        .signals
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    for (name, range) in &p.signals {
        if let Some(d) = range.default
            && !request.signals.contains_key(name)
        {
            out.push((name.as_str(), d));
        }
    }
    out
}

/// Evaluates expressions natively where possible, and with the `cel` crate (built
/// on first need) otherwise.
struct Evaluator<'a> {
    env: fast::Env<'a>,
    needed: crate::vars::VarSet,
    cel: Option<Activation<'a>>,
}

impl<'a> Evaluator<'a> {
    fn new(
        request: &'a DecisionRequest,
        signals: &'a [(&'a str, f64)],
        now: UnixMillis,
        needed: crate::vars::VarSet,
        history: &'a [(crate::history::HistoryCall, f64)],
    ) -> Self {
        Self {
            env: fast::Env {
                request,
                signals,
                now,
                history,
            },
            needed,
            cel: None,
        }
    }

    fn cel(&mut self) -> &Activation<'a> {
        let env = self.env;
        let needed = self.needed;
        self.cel.get_or_insert_with(|| {
            Activation::new(env.request, env.signals, env.now, needed, env.history)
        })
    }

    fn eval_bool(&mut self, e: &CompiledExpr) -> Result<bool, String> {
        if let Some(node) = &e.fast
            && let fast::Fast::Sure(fast::V::Bool(b)) = fast::eval(node, &self.env)
        {
            return Ok(b);
        }
        self.cel().eval_bool(e)
    }

    fn eval_number(&mut self, e: &CompiledExpr) -> Result<f64, String> {
        if let Some(node) = &e.fast {
            let n = match fast::eval(node, &self.env) {
                fast::Fast::Sure(fast::V::Double(d)) => Some(d),
                fast::Fast::Sure(fast::V::Int(i)) => Some(i as f64),
                _ => None,
            };
            if let Some(n) = n.filter(|n| n.is_finite()) {
                return Ok(n);
            }
        }
        self.cel().eval_number(e)
    }

    fn eval_key(&mut self, e: &CompiledExpr) -> Result<String, String> {
        if let Some(node) = &e.fast
            && let fast::Fast::Sure(fast::V::Str(s)) = fast::eval(node, &self.env)
        {
            return Ok(s.to_owned());
        }
        let v = self.cel().eval(e)?;
        expr::key_string(&v)
    }
}

fn policy_gate<'a>(input: &DecideInput<'a>, events: &[HistoryEvent], ev: &mut Evaluation) {
    let request = input.request;
    let mut candidates = CandidateList::default();
    // The position of each found policy in the trace's policy list.
    let mut found: u32 = 0;
    for binding in input.policies {
        let p = match binding {
            PolicyBinding::NotFound(reference) => {
                ev.trace.full(TraceStep::PolicyNotFound {
                    reference: reference.clone(),
                });
                candidates.push(Candidate {
                    status: Status::Block,
                    code: Cow::Borrowed("POLICY_NOT_FOUND"),
                    explanation: Cow::Owned(format!(
                        "policy '{reference}' not found; failing closed"
                    )),
                    review: None,
                });
                continue;
            }
            PolicyBinding::Found(p) => p,
        };
        let k = found;
        found = found.saturating_add(1);
        let signals = effective_signals(request, p);
        let history: Vec<(crate::history::HistoryCall, f64)> = p
            .history_calls
            .iter()
            .map(|c| (c.clone(), c.compute(request, events, input.now)))
            .collect();
        if !history.is_empty() {
            ev.trace.full(TraceStep::History {
                policy: Arc::clone(&p.stamp.id),
                values: history.iter().map(|(c, v)| (c.describe(), *v)).collect(),
            });
        }
        let mut ctx = Evaluator::new(request, &signals, input.now, p.needed, &history);
        if !p.rule_paths.is_empty() {
            ev.trace.push(Step::Inputs {
                policy: k,
                count: index_u32(p.rule_paths.len()),
            });
            for (path, _) in &p.rule_paths {
                ev.trace
                    .push(Step::Input(InputValue::of(expr::read_path(request, path))));
            }
        }
        // The rule index narrows the rules to those whose guard can be true.
        let chosen = p.index.as_ref().and_then(|index| {
            let value = match expr::read_path(request, &index.path) {
                Some(expr::PathValue::Str(s)) => Some(s),
                Some(expr::PathValue::Json(Json::String(s))) => Some(s.as_str()),
                _ => None,
            }?;
            Some(index.candidates(value))
        });
        if let Some(chosen) = &chosen {
            ev.trace.push(Step::RuleIndex {
                policy: k,
                evaluated: index_u32(chosen.clone().count()),
            });
        }
        let mut any = false;
        let mut run_rule = |i: usize,
                            rule: &'a crate::policy::compile::Rule,
                            trace: &mut CompactTrace,
                            candidates: &mut CandidateList<'a>,
                            ctx: &mut Evaluator<'_>| {
            let (matched, error) = match ctx.eval_bool(&rule.cond) {
                Ok(m) => (m, None),
                Err(e) => (false, Some(e)),
            };
            let failed_closed = error.is_some() && rule.on_error == OnError::Block;
            if failed_closed {
                any = true;
                candidates.push(Candidate {
                    status: Status::Block,
                    code: Cow::Borrowed("RULE_EVALUATION_ERROR"),
                    explanation: Cow::Owned(format!(
                        "rule '{}' could not be evaluated and fails closed: {}",
                        rule.name,
                        error.as_deref().unwrap_or_default()
                    )),
                    review: None,
                });
            } else if matched {
                any = true;
                let status = effect_status(rule.effect);
                let review =
                    matches!(status, Status::Escalate | Status::ReviewRequired).then(|| {
                        Box::new(ReviewRequest {
                            rule: rule.name.to_string(),
                            policy_id: p.stamp.id.to_string(),
                            approvers: rule.approvers.clone(),
                            min_approvals: rule.min_approvals,
                            expires_in_ms: rule.review_expires_ms,
                        })
                    });
                candidates.push(Candidate {
                    status,
                    code: Cow::Borrowed(&rule.reason_code),
                    explanation: Cow::Borrowed(&rule.matched_explanation),
                    review,
                });
            }
            match error {
                None => trace.push(Step::Rule {
                    policy: k,
                    rule: index_u32(i),
                    matched,
                }),
                Some(error) => trace.full(TraceStep::Rule {
                    policy: Arc::clone(&p.stamp.id),
                    rule: Arc::clone(&rule.name),
                    matched,
                    effect: rule.effect,
                    error: Some(error),
                    failed_closed,
                }),
            }
        };
        match chosen {
            Some(chosen) => {
                for i in chosen {
                    if let Some(rule) = p.rules.get(i) {
                        run_rule(i, rule, &mut ev.trace, &mut candidates, &mut ctx);
                    }
                }
            }
            None => {
                for (i, rule) in p.rules.iter().enumerate() {
                    run_rule(i, rule, &mut ev.trace, &mut candidates, &mut ctx);
                }
            }
        }
        if !any {
            ev.trace.push(Step::DefaultEffect { policy: k });
            if p.default_effect == DefaultEffect::Block {
                candidates.push(Candidate {
                    status: Status::Block,
                    code: Cow::Borrowed("NO_RULE_MATCHED"),
                    explanation: Cow::Owned(format!(
                        "no rule of policy '{}' allows this action and its default is block",
                        p.stamp.id
                    )),
                    review: None,
                });
            }
        }
        if let Some(survival) = &p.survival {
            let bias = match (&p.adaptive, request.adaptive) {
                (Some(settings), true) => Some(adaptive::bias(settings, input.outcomes, input.now)),
                _ => None,
            };
            if ev.adaptive_bias.is_none() {
                ev.adaptive_bias = bias;
            }
            let may_tighten = p.adaptive.as_ref().is_some_and(|a| a.may_tighten);
            match ctx.eval_number(&survival.expr) {
                Ok(score) => {
                    let passed = adaptive::survival_passes(
                        score,
                        bias.unwrap_or(0.0),
                        survival.threshold,
                        may_tighten,
                    );
                    ev.trace.push(Step::Survival {
                        policy: k,
                        score,
                        bias,
                        passed,
                    });
                    if !passed {
                        candidates.push(Candidate {
                            status: Status::Block,
                            code: Cow::Borrowed("SURVIVAL_SCORE_LOW"),
                            explanation: Cow::Owned(match bias {
                                Some(b) if score >= survival.threshold => format!(
                                    "survival score {score} with adaptive bias {b} is below the policy threshold {}",
                                    survival.threshold
                                ),
                                _ => format!(
                                    "survival score {score} is below the policy threshold {}",
                                    survival.threshold
                                ),
                            }),
                            review: None,
                        });
                    }
                }
                Err(e) => {
                    candidates.push(Candidate {
                        status: Status::Block,
                        code: Cow::Borrowed("SURVIVAL_SCORE_ERROR"),
                        explanation: Cow::Owned(format!(
                            "survival score could not be computed; failing closed: {e}"
                        )),
                        review: None,
                    });
                    ev.trace.full(TraceStep::Survival {
                        policy: Arc::clone(&p.stamp.id),
                        score: None,
                        bias,
                        biased_score: None,
                        threshold: survival.threshold,
                        passed: false,
                        error: Some(e),
                    });
                }
            }
        }
    }

    let worst = candidates
        .iter()
        .map(|c| c.status)
        .max_by_key(|s| s.severity())
        .unwrap_or(Status::Allow);
    // Most restrictive first, rule order within a level.
    candidates.sort();
    let result = match worst {
        Status::Allow => GateResult::Pass,
        Status::Block | Status::Unknown => GateResult::Block,
        Status::Escalate => GateResult::Escalate,
        Status::ReviewRequired => GateResult::Review,
    };
    ev.trace.close(Gate::Policy, result);
    if worst != Status::Allow && ev.outcome.is_none() {
        let mut explanation = String::new();
        for (n, c) in candidates.iter().filter(|c| c.status == worst).enumerate() {
            if n > 0 {
                explanation.push_str("; ");
            }
            explanation.push_str(&c.explanation);
        }
        let review = candidates
            .iter()
            .find(|c| c.status == worst)
            .and_then(|c| c.review.clone());
        ev.outcome = Some(Outcome {
            status: worst,
            gate: Gate::Policy,
            reason_codes: dedup(candidates.iter().map(|c| &*c.code)),
            explanation,
            retry_after_ms: None,
            review,
        });
    } else if worst == Status::Allow && !candidates.is_empty() {
        // Allow rules matched: their reason codes travel with the final verdict.
        ev.allow_codes = dedup(candidates.iter().map(|c| &*c.code));
    }
}

/// A rule, band or policy position as stored in the compact trace.
fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn dedup<'s>(codes: impl Iterator<Item = &'s str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in codes {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_owned());
        }
    }
    out
}

fn reality_gate(input: &DecideInput<'_>, ev: &mut Evaluation) {
    let request = input.request;
    let action_type = request.action_type();
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    let found = input.policies.iter().filter_map(|b| match b {
        PolicyBinding::Found(p) => Some(p),
        PolicyBinding::NotFound(_) => None,
    });
    for (k, p) in found.enumerate() {
        for (j, band) in p.bands.iter().enumerate() {
            let in_scope = band
                .action_types
                .as_ref()
                .is_none_or(|types| action_type.is_some_and(|t| types.iter().any(|x| x == t)));
            let value = request.signals.get(&*band.signal).copied();
            let (passed, skipped) = match (in_scope, value) {
                (false, _) => (true, true),
                (true, None) => (!band.required, !band.required),
                (true, Some(v)) => (band.cmp.holds(v, band.bound), false),
            };
            if !passed {
                failures.push(match value {
                    Some(v) => (
                        "REALITY_OUT_OF_BAND",
                        format!(
                            "reality band: {} {v} is not {}",
                            band.signal, band.bound_text
                        ),
                    ),
                    None => (
                        "REALITY_SIGNAL_MISSING",
                        format!("reality band: required signal {} is missing", band.signal),
                    ),
                });
            }
            ev.trace.push(Step::Band {
                policy: index_u32(k),
                band: index_u32(j),
                value,
                passed,
                skipped,
            });
        }
    }
    let blocked = !failures.is_empty();
    ev.trace.close(
        Gate::Reality,
        if blocked {
            GateResult::Block
        } else {
            GateResult::Pass
        },
    );
    if blocked && ev.outcome.is_none() {
        ev.outcome = Some(Outcome {
            status: Status::Block,
            gate: Gate::Reality,
            reason_codes: dedup(failures.iter().map(|(c, _)| *c)),
            explanation: failures
                .iter()
                .map(|(_, w)| w.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            retry_after_ms: None,
            review: None,
        });
    }
}

fn throttle_demands(input: &DecideInput<'_>, ev: &mut Evaluation) {
    let request = input.request;
    for binding in input.policies {
        let PolicyBinding::Found(p) = binding else {
            continue;
        };
        let mut signals: Option<Vec<(&str, f64)>> = None;
        for (ti, t) in p.throttles.iter().enumerate() {
            ev.throttle_runs = true;
            // The key is the JSON array [tenant, policy id, index, values...], written once.
            let mut key = Vec::with_capacity(48);
            key.push(b'[');
            let mut error = write_json(&mut key, &request.tenant).err();
            key.extend_from_slice(t.key_middle.as_bytes());
            for part in &t.parts {
                if error.is_some() {
                    break;
                }
                key.push(b',');
                let written = match part {
                    KeyPart::Path(path) => match expr::read_path(request, path) {
                        Some(expr::PathValue::Str(s)) => write_json(&mut key, s),
                        Some(expr::PathValue::Json(v)) => write_json(&mut key, v),
                        Some(expr::PathValue::Num(n)) => write_json(&mut key, &n),
                        None => write_json(&mut key, &Json::Null),
                    },
                    KeyPart::Cel(e) => {
                        let signals = signals.get_or_insert_with(|| effective_signals(request, p));
                        let mut ctx = Evaluator::new(request, signals, input.now, p.needed, &[]);
                        ctx.eval_key(e).and_then(|s| write_json(&mut key, &s))
                    }
                };
                error = written.err();
            }
            key.push(b']');
            let key = match (error, String::from_utf8(key)) {
                (None, Ok(key)) => key,
                (Some(e), _) => {
                    ev.key_error = true;
                    ev.trace.full(TraceStep::BucketKeyError {
                        policy: Arc::clone(&p.stamp.id),
                        index: ti,
                        error: e,
                    });
                    continue;
                }
                (None, Err(e)) => {
                    ev.key_error = true;
                    ev.trace.full(TraceStep::BucketKeyError {
                        policy: Arc::clone(&p.stamp.id),
                        index: ti,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            ev.demands.push(BucketDemand {
                key: Arc::from(key),
                gcra: t.gcra,
            });
        }
    }
}

fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), String> {
    serde_json::to_writer(buf, value).map_err(|e| e.to_string())
}
