//! Verdicts and the trace of the gates that produced them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::request::Mode;

/// The verdict vocabulary (`ALLOW`..., `policy`...): defined once, with the wire
/// types, in `tollgate-api`. The engine produces `Status::SERVED` and `Gate::SERVED` only.
pub use tollgate_api::{Gate, Status};

/// Identifies one compiled policy version (defined with the policies).
pub use crate::policy::PolicyStamp;

/// What a review-opening rule asks the server to open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// The rule that asked for it.
    pub rule: String,
    /// The policy the rule belongs to.
    pub policy_id: String,
    /// Approver groups that may approve.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// How long the review stays open, in milliseconds.
    pub expires_in_ms: i64,
}

/// The outcome of the pipeline, before the mode is applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Status the gates produced.
    pub status: Status,
    /// Gate that decided.
    pub gate: Gate,
    /// Reason codes of every rule or check that contributed, in pipeline order.
    pub reason_codes: Vec<String>,
    /// A sentence for a person.
    pub explanation: String,
    /// For a throttle block: milliseconds until a token is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For ESCALATE / REVIEW_REQUIRED: the review to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Box<ReviewRequest>>,
}

/// The engine's answer: the verdict that applies, the would-be outcome in shadow
/// modes, the adaptive bias when it ran, and the full trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Status that applies. In shadow and dry-run modes this is always ALLOW.
    pub status: Status,
    /// Gate that decided what applies (`permit` in shadow modes).
    pub gate: Gate,
    /// Reason codes of what applies.
    pub reason_codes: Vec<String>,
    /// A sentence for a person.
    pub explanation: String,
    /// For a throttle block: milliseconds until a token is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// For ESCALATE / REVIEW_REQUIRED in enforce mode: the review to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Box<ReviewRequest>>,
    /// The mode the request ran in (after a tenant-wide shadow switch is applied).
    pub mode: Mode,
    /// In shadow and dry-run modes: what would have applied in enforce mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_be: Option<Box<Outcome>>,
    /// The policies that were evaluated, in request order.
    pub policies: Vec<PolicyStamp>,
    /// The adaptive bias added to the survival score, when the adaptive layer ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_bias: Option<f64>,
    /// Every gate that ran, in order (compact; [`Trace::gates`] gives the full list).
    pub trace: Trace,
}

/// The trace of a verdict: every gate that ran, in order.
///
/// The engine records it compactly (indices into the compiled policies and the values
/// only the decision knows; see the crate's `trace` module) and materialises the full
/// [`GateTrace`] list only when it is read: [`Trace::gates`], serialisation (the
/// ledger), comparison and `Debug`. Serialised, it is exactly that list, so the bytes
/// written for a verdict are the same as when the list was built eagerly. A trace
/// deserialised (from a ledger entry) or built [`From`] a list holds the list itself.
#[derive(Clone, Default)]
pub struct Trace {
    repr: TraceRepr,
}

#[derive(Clone)]
enum TraceRepr {
    Full(Vec<GateTrace>),
    Compact(crate::trace::CompactTrace),
}

impl Default for TraceRepr {
    fn default() -> Self {
        TraceRepr::Full(Vec::new())
    }
}

impl Trace {
    pub(crate) fn compact(trace: crate::trace::CompactTrace) -> Self {
        Self {
            repr: TraceRepr::Compact(trace),
        }
    }

    /// The full trace, materialised when the verdict holds the compact form.
    pub fn gates(&self) -> std::borrow::Cow<'_, [GateTrace]> {
        match &self.repr {
            TraceRepr::Full(gates) => std::borrow::Cow::Borrowed(gates),
            TraceRepr::Compact(c) => std::borrow::Cow::Owned(c.materialise()),
        }
    }

    /// The full trace, owned.
    pub fn into_gates(self) -> Vec<GateTrace> {
        match self.repr {
            TraceRepr::Full(gates) => gates,
            TraceRepr::Compact(c) => c.materialise(),
        }
    }
}

impl From<Vec<GateTrace>> for Trace {
    fn from(gates: Vec<GateTrace>) -> Self {
        Self {
            repr: TraceRepr::Full(gates),
        }
    }
}

impl PartialEq for Trace {
    fn eq(&self, other: &Self) -> bool {
        *self.gates() == *other.gates()
    }
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.gates().fmt(f)
    }
}

impl Serialize for Trace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.gates().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Trace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<GateTrace>::deserialize(deserializer).map(Trace::from)
    }
}

/// One gate in the trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateTrace {
    /// The gate.
    pub gate: Gate,
    /// `pass`, `block`, `escalate`, `review`, or `skipped`.
    pub result: GateResult,
    /// What the gate read and compared.
    pub steps: Vec<TraceStep>,
}

/// What one gate concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateResult {
    /// Nothing in this gate objected.
    Pass,
    /// The gate blocks.
    Block,
    /// A rule escalates.
    Escalate,
    /// A rule requires review.
    Review,
    /// The gate allowed the request outright (an approval, or permit).
    Allow,
}

/// One thing a gate read and compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TraceStep {
    /// An override was checked against the request.
    Override {
        /// Override id.
        id: String,
        /// Its scope, e.g. `actor:agent-1`.
        scope: String,
        /// Whether it matched this request.
        engaged: bool,
    },
    /// A human approval covered the request.
    Approval {
        /// Review id.
        review_id: String,
        /// Who approved.
        approvers: Vec<String>,
    },
    /// A `policy_refs` entry that named no known policy.
    PolicyNotFound {
        /// The reference as given.
        reference: String,
    },
    /// The request values the rules of a policy read.
    Inputs {
        /// Policy id.
        policy: Arc<str>,
        /// Dotted path to value; `null` when absent.
        values: std::collections::BTreeMap<Arc<str>, serde_json::Value>,
    },
    /// The history aggregates a policy's conditions read.
    History {
        /// Policy id.
        policy: Arc<str>,
        /// `sum(actor, action.amount, 86400000ms)` → value.
        values: std::collections::BTreeMap<String, f64>,
    },
    /// A rule condition was evaluated.
    Rule {
        /// Policy id.
        policy: Arc<str>,
        /// Rule name.
        rule: Arc<str>,
        /// Whether the condition matched.
        matched: bool,
        /// The effect the rule has when it matches.
        effect: crate::policy::Effect,
        /// Evaluation error, when the condition could not be evaluated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Whether the error made the rule fail closed (`on_error: block`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        failed_closed: bool,
    },
    /// No rule matched: the default effect applied.
    DefaultEffect {
        /// Policy id.
        policy: Arc<str>,
        /// `allow` or `block`.
        effect: crate::policy::DefaultEffect,
    },
    /// The rule index narrowed the rules to evaluate: the others cannot match because
    /// a condition they all start with (`action.type == "X"`, `startsWith`, `in`) is
    /// false for this request.
    RuleIndex {
        /// Policy id.
        policy: Arc<str>,
        /// The indexed request path.
        path: Arc<str>,
        /// Rules evaluated.
        evaluated: usize,
        /// Rules skipped because their guard is false.
        skipped: usize,
    },
    /// The survival score was computed and compared.
    Survival {
        /// Policy id.
        policy: Arc<str>,
        /// The score before the bias.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score: Option<f64>,
        /// The adaptive bias, when the adaptive layer ran.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<f64>,
        /// Score plus bias, when the adaptive layer ran.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        biased_score: Option<f64>,
        /// The threshold (pass iff score >= threshold).
        threshold: f64,
        /// Whether the gate passed on this step.
        passed: bool,
        /// Evaluation error, when the score could not be computed (fails closed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A reality band was checked.
    Band {
        /// Policy id.
        policy: Arc<str>,
        /// The signal name.
        signal: Arc<str>,
        /// The value read, if present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        /// The comparison, e.g. `< 0.15`.
        bound: Arc<str>,
        /// Whether the band passed.
        passed: bool,
        /// Whether the band was skipped (absent and not required, or another action type).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skipped: bool,
    },
    /// A token bucket was checked.
    Bucket {
        /// Bucket key.
        key: Arc<str>,
        /// Burst capacity.
        capacity: u32,
        /// Emission interval in milliseconds.
        refill_every_ms: i64,
        /// Whole tokens available before this request.
        available: u32,
        /// Whether a token was (or, in shadow, would have been) available.
        allowed: bool,
        /// Whether a token was taken.
        consumed: bool,
        /// Milliseconds until a token is available, when not allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A throttle key could not be computed (fails closed).
    BucketKeyError {
        /// Policy id.
        policy: Arc<str>,
        /// Index of the throttle in the policy.
        index: usize,
        /// What went wrong.
        error: String,
    },
}
