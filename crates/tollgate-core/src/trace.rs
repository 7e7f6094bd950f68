//! The compact trace: what the pipeline records on the hot path, and how the full
//! [`GateTrace`] list is materialised from it.
//!
//! A decision used to build every [`TraceStep`] as it went: a policy id and a rule
//! name cloned per step, a `BTreeMap` of the request values the rules read, strings
//! for everything. Most verdicts are never looked at step by step (the peer benchmark
//! and the embedded client read the status; the server serialises the trace once,
//! into the ledger). So the engine now records *indices* into the compiled policies
//! (policy `k` of the decision, rule `i`, band `j`) and the few values that only the
//! decision knows (whether a rule matched, a score, a signal value, the request
//! values the rules read — short strings are copied inline, without allocating), in
//! one flat list of [`Step`]s with a marker closing each gate. The policies are held
//! by `Arc`, so [`CompactTrace::materialise`] can rebuild, on demand, exactly the
//! [`GateTrace`]s the pipeline would have built directly: same steps, same order,
//! same values. Steps that are rare or carry text produced during the decision (an
//! override, an approval, an evaluation error, a bucket) are stored in full.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::expr::PathValue;
use crate::policy::CompiledPolicy;
use crate::throttle::BucketDemand;
use crate::verdict::{Gate, GateResult, GateTrace, TraceStep};

/// The compiled policies a trace refers to, in the order of the decision's bindings
/// (the ones that were found). One policy, the common case, needs no allocation.
#[derive(Clone, Debug, Default)]
pub(crate) enum PolicyList {
    #[default]
    Empty,
    One(Arc<CompiledPolicy>),
    Many(Vec<Arc<CompiledPolicy>>),
}

impl PolicyList {
    pub(crate) fn push(&mut self, policy: Arc<CompiledPolicy>) {
        *self = match std::mem::take(self) {
            PolicyList::Empty => PolicyList::One(policy),
            PolicyList::One(first) => PolicyList::Many(vec![first, policy]),
            PolicyList::Many(mut all) => {
                all.push(policy);
                PolicyList::Many(all)
            }
        };
    }

    fn get(&self, index: u32) -> Option<&CompiledPolicy> {
        match self {
            PolicyList::Empty => None,
            PolicyList::One(p) => (index == 0).then_some(&**p),
            PolicyList::Many(all) => all.get(usize::try_from(index).ok()?).map(|p| &**p),
        }
    }
}

/// Longest string stored inline in an [`InputValue`] (it then takes no more room
/// than a JSON value).
const INLINE: usize = 22;

/// A request value a policy's rules read, as recorded for the trace.
#[derive(Clone, Debug)]
pub(crate) enum InputValue {
    /// Absent.
    Null,
    /// A string of at most [`INLINE`] bytes.
    Short { len: u8, bytes: [u8; INLINE] },
    /// A number read from the signals.
    Num(f64),
    /// Anything else, cloned.
    Json(Json),
}

impl InputValue {
    pub(crate) fn of(value: Option<PathValue<'_>>) -> Self {
        match value {
            None => InputValue::Null,
            Some(PathValue::Str(s)) => Self::string(s),
            Some(PathValue::Json(Json::String(s))) => Self::string(s),
            Some(PathValue::Json(v)) => InputValue::Json(v.clone()),
            Some(PathValue::Num(n)) => InputValue::Num(n),
        }
    }

    fn string(s: &str) -> Self {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(slot), Ok(len)) => {
                slot.copy_from_slice(s.as_bytes());
                InputValue::Short { len, bytes }
            }
            _ => InputValue::Json(Json::String(s.to_owned())),
        }
    }

    /// The value exactly as `PathValue::to_json` gives it.
    fn to_json(&self) -> Json {
        match self {
            InputValue::Null => Json::Null,
            InputValue::Short { len, bytes } => {
                let s = bytes.get(..usize::from(*len)).unwrap_or_default();
                // Copied from a `str` on a whole-string boundary: always valid UTF-8.
                Json::String(String::from_utf8_lossy(s).into_owned())
            }
            InputValue::Num(n) => PathValue::Num(*n).to_json(),
            InputValue::Json(v) => v.clone(),
        }
    }
}

/// One entry of a [`CompactTrace`]. `policy` is an index into the trace's
/// [`PolicyList`], `rule` and `band` indices into that policy.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// A step stored as it will be materialised (boxed: rare, and much larger than
    /// the others).
    Full(Box<TraceStep>),
    /// `TraceStep::Inputs` of the policy; the next `count` entries are its values,
    /// one per `CompiledPolicy::rule_paths` entry, in that order.
    Inputs { policy: u32, count: u32 },
    /// One value of the preceding `Inputs`.
    Input(InputValue),
    /// `TraceStep::RuleIndex`: the policy's index chose `evaluated` rules.
    RuleIndex { policy: u32, evaluated: u32 },
    /// `TraceStep::Rule` for a rule evaluated without error.
    Rule {
        policy: u32,
        rule: u32,
        matched: bool,
    },
    /// `TraceStep::DefaultEffect`.
    DefaultEffect { policy: u32 },
    /// `TraceStep::Survival` with a score (no error).
    Survival {
        policy: u32,
        score: f64,
        bias: Option<f64>,
        passed: bool,
    },
    /// `TraceStep::Band`.
    Band {
        policy: u32,
        band: u32,
        value: Option<f64>,
        passed: bool,
        skipped: bool,
    },
    /// `TraceStep::Bucket`: demand `demand` of [`CompactTrace::set_demands`].
    Bucket {
        demand: u32,
        available: u32,
        allowed: bool,
        consumed: bool,
        retry_after_ms: Option<u64>,
    },
    /// Closes a gate: the steps since the previous marker are its steps.
    Gate { gate: Gate, result: GateResult },
}

/// The trace as the pipeline records it. See the module documentation.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompactTrace {
    policies: PolicyList,
    steps: Vec<Step>,
    /// The buckets the throttle gate checked (their keys and GCRA parameters).
    demands: Vec<BucketDemand>,
}

impl CompactTrace {
    pub(crate) fn new(policies: PolicyList) -> Self {
        Self {
            policies,
            steps: Vec::with_capacity(8),
            demands: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    pub(crate) fn full(&mut self, step: TraceStep) {
        self.steps.push(Step::Full(Box::new(step)));
    }

    /// The buckets that `Step::Bucket` entries refer to.
    pub(crate) fn set_demands(&mut self, demands: Vec<BucketDemand>) {
        self.demands = demands;
    }

    /// Closes a gate over the steps pushed since the previous gate.
    pub(crate) fn close(&mut self, gate: Gate, result: GateResult) {
        self.steps.push(Step::Gate { gate, result });
    }

    /// The full trace: exactly the [`GateTrace`]s the pipeline describes.
    pub(crate) fn materialise(&self) -> Vec<GateTrace> {
        let mut gates = Vec::new();
        let mut steps = Vec::new();
        let mut iter = self.steps.iter();
        while let Some(step) = iter.next() {
            match step {
                Step::Gate { gate, result } => gates.push(GateTrace {
                    gate: *gate,
                    result: *result,
                    steps: std::mem::take(&mut steps),
                }),
                Step::Inputs { policy, count } => {
                    let values: Vec<&InputValue> = iter
                        .by_ref()
                        .take(usize::try_from(*count).unwrap_or(usize::MAX))
                        .filter_map(|s| match s {
                            Step::Input(v) => Some(v),
                            _ => None,
                        })
                        .collect();
                    if let Some(p) = self.policies.get(*policy) {
                        steps.push(TraceStep::Inputs {
                            policy: Arc::clone(&p.stamp.id),
                            values: p
                                .rule_paths
                                .iter()
                                .zip(values)
                                .map(|((_, dotted), v)| (Arc::clone(dotted), v.to_json()))
                                .collect(),
                        });
                    }
                }
                other => steps.extend(self.one(other)),
            }
        }
        gates
    }

    fn one(&self, step: &Step) -> Option<TraceStep> {
        let policy_of = |i: &u32| self.policies.get(*i);
        Some(match step {
            Step::Full(s) => (**s).clone(),
            Step::Bucket {
                demand,
                available,
                allowed,
                consumed,
                retry_after_ms,
            } => {
                let d = self.demands.get(usize::try_from(*demand).ok()?)?;
                TraceStep::Bucket {
                    key: Arc::clone(&d.key),
                    capacity: d.gcra.capacity,
                    refill_every_ms: d.gcra.interval_ms,
                    available: *available,
                    allowed: *allowed,
                    consumed: *consumed,
                    retry_after_ms: *retry_after_ms,
                }
            }
            Step::Inputs { .. } | Step::Input(_) | Step::Gate { .. } => return None,
            Step::RuleIndex { policy, evaluated } => {
                let p = policy_of(policy)?;
                let evaluated = usize::try_from(*evaluated).ok()?;
                TraceStep::RuleIndex {
                    policy: Arc::clone(&p.stamp.id),
                    path: Arc::clone(&p.index.as_ref()?.dotted),
                    evaluated,
                    skipped: p.rules.len().saturating_sub(evaluated),
                }
            }
            Step::Rule {
                policy,
                rule,
                matched,
            } => {
                let p = policy_of(policy)?;
                let r = p.rules.get(usize::try_from(*rule).ok()?)?;
                TraceStep::Rule {
                    policy: Arc::clone(&p.stamp.id),
                    rule: Arc::clone(&r.name),
                    matched: *matched,
                    effect: r.effect,
                    error: None,
                    failed_closed: false,
                }
            }
            Step::DefaultEffect { policy } => {
                let p = policy_of(policy)?;
                TraceStep::DefaultEffect {
                    policy: Arc::clone(&p.stamp.id),
                    effect: p.default_effect,
                }
            }
            Step::Survival {
                policy,
                score,
                bias,
                passed,
            } => {
                let p = policy_of(policy)?;
                TraceStep::Survival {
                    policy: Arc::clone(&p.stamp.id),
                    score: Some(*score),
                    bias: *bias,
                    biased_score: bias.map(|b| *score + b),
                    threshold: p.survival.as_ref()?.threshold,
                    passed: *passed,
                    error: None,
                }
            }
            Step::Band {
                policy,
                band,
                value,
                passed,
                skipped,
            } => {
                let p = policy_of(policy)?;
                let b = p.bands.get(usize::try_from(*band).ok()?)?;
                TraceStep::Band {
                    policy: Arc::clone(&p.stamp.id),
                    signal: Arc::clone(&b.signal),
                    value: *value,
                    bound: Arc::clone(&b.bound_text),
                    passed: *passed,
                    skipped: *skipped,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{INLINE, InputValue};
    use crate::expr::PathValue;

    /// Whatever the value, the recorded input gives the JSON `PathValue::to_json` gives.
    #[test]
    fn input_values_give_the_same_json_as_the_path_value() {
        let long = "x".repeat(INLINE + 1);
        let exact = "y".repeat(INLINE);
        let multibyte = "é".repeat(INLINE / 2 + 1);
        let jsons = [
            json!(null),
            json!(true),
            json!(2500),
            json!(0.25),
            json!(""),
            json!("read_file"),
            json!(exact),
            json!(long),
            json!(multibyte),
            json!(["ops", "eu"]),
            json!({"a": 1}),
        ];
        for j in &jsons {
            let direct = PathValue::Json(j).to_json();
            assert_eq!(InputValue::of(Some(PathValue::Json(j))).to_json(), direct);
        }
        for s in [
            "",
            "tenant-1",
            exact.as_str(),
            long.as_str(),
            multibyte.as_str(),
        ] {
            let direct = PathValue::Str(s).to_json();
            assert_eq!(InputValue::of(Some(PathValue::Str(s))).to_json(), direct);
        }
        for n in [0.0, 0.95, -1.5, f64::NAN, f64::INFINITY] {
            let direct = PathValue::Num(n).to_json();
            assert_eq!(InputValue::of(Some(PathValue::Num(n))).to_json(), direct);
        }
        assert_eq!(InputValue::of(None).to_json(), json!(null));
        assert!(matches!(
            InputValue::of(Some(PathValue::Str(&exact))),
            InputValue::Short { .. }
        ));
    }
}
