//! The policy document as written by people: one schema for YAML, TOML and JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A policy document, before compilation. Unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Stable id (`[a-zA-Z0-9_.-]{1,128}`).
    pub id: String,
    /// Version number; the store assigns one on publish when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// What the policy is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Effect when no rule matches.
    #[serde(default)]
    pub default_effect: DefaultEffect,
    /// Declared numeric signals: range and default.
    #[serde(default)]
    pub signals: BTreeMap<String, SignalDecl>,
    /// Rules, evaluated all; the most restrictive matching effect wins.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    /// Survival score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survival: Option<SurvivalDoc>,
    /// Reality bands.
    #[serde(default)]
    pub reality: Vec<BandDoc>,
    /// Token buckets.
    #[serde(default)]
    pub throttle: Vec<ThrottleDoc>,
    /// Adaptive-bias settings; absent means the adaptive layer never runs for this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveDoc>,
    /// Every enforce-mode ALLOW under this policy carries an execution grant, asked
    /// for or not (the server's concern; the engine does not read it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grants: bool,
}

/// The effect when no rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultEffect {
    /// Allow (subject to survival, reality and throttle).
    #[default]
    Allow,
    /// Block.
    Block,
}

/// A declared signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalDecl {
    /// Smallest accepted value (default 0).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest accepted value (default 1).
    #[serde(default)]
    pub max: Option<f64>,
    /// Value used by the survival score when the request omits the signal.
    #[serde(default)]
    pub default: Option<f64>,
}

/// A rule effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Allow.
    Allow,
    /// Block.
    Block,
    /// Escalate to a person.
    Escalate,
    /// Require review by a person.
    Review,
}

impl Effect {
    /// The name as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Block => "block",
            Effect::Escalate => "escalate",
            Effect::Review => "review",
        }
    }
}

/// What a rule does when its condition cannot be evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The rule does not match (the error is in the trace).
    #[default]
    Skip,
    /// Fail closed: the rule blocks.
    Block,
}

/// A rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Unique name within the policy.
    pub name: String,
    /// CEL condition.
    pub when: String,
    /// Effect when the condition is true.
    pub effect: Effect,
    /// Reason code reported when the rule matches (`[A-Z0-9_]{1,64}`).
    pub reason_code: String,
    /// Sentence reported when the rule matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Behaviour on evaluation error.
    #[serde(default)]
    pub on_error: OnError,
    /// Review settings, for effects `escalate` and `review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewDoc>,
}

/// Review settings of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDoc {
    /// Approver groups.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Distinct approvals needed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_approvals: Option<u32>,
    /// How long the review stays open (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// The survival score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurvivalDoc {
    /// CEL expression giving a number.
    pub score: String,
    /// Pass iff score >= threshold; in [0, 1].
    pub threshold: f64,
}

/// A reality band on one signal. At least one bound is required.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandDoc {
    /// The signal.
    pub signal: String,
    /// Pass iff value < lt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// Pass iff value <= lte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// Pass iff value > gt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// Pass iff value >= gte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Whether an absent signal fails the band (default false: absent passes).
    #[serde(default)]
    pub required: bool,
    /// Only for these action types (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_types: Option<Vec<String>>,
}

/// A token bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDoc {
    /// Request attributes (or CEL expressions) the bucket is keyed by.
    pub key: Vec<String>,
    /// Burst capacity, 1..=1000000.
    pub capacity: u32,
    /// Emission interval (`5s`, `250ms`).
    pub refill_every: String,
}

/// Adaptive-bias settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveDoc {
    /// Weight of one outcome, in [0, 1].
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Absolute bound of the bias, in [0, 0.5].
    #[serde(default = "default_cap")]
    pub cap: f64,
    /// Time half-life.
    #[serde(default = "default_half_life")]
    pub half_life: String,
    /// Traffic half-life, in decisions of the same source.
    #[serde(default = "default_half_life_decisions")]
    pub half_life_decisions: u32,
    /// Whether a negative bias may block a request that passes without it.
    #[serde(default)]
    pub may_tighten: bool,
}

fn default_learning_rate() -> f64 {
    0.01
}
fn default_cap() -> f64 {
    0.05
}
fn default_half_life() -> String {
    "24h".to_owned()
}
fn default_half_life_decisions() -> u32 {
    1000
}
