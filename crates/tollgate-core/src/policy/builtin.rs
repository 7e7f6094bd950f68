//! The built-in `csc-default` policy every tenant starts with.

use std::sync::{Arc, LazyLock};

use super::{CompiledPolicy, PolicyError, PolicyFormat, compile_policy};

/// Id of the built-in policy.
pub const CSC_DEFAULT_ID: &str = "csc-default";

/// The text of `csc-default`. Its values reproduce the published DeAlgo window:
/// permit iff volatility < 0.15 (when present) and confidence >= 0.90 (when present),
/// survival score `(1 - risk_score) * confidence` >= 0.5, and one tenant-wide bucket
/// of 4 refilling one token every 5 s (a steady 12 permits a minute).
pub const CSC_DEFAULT_TEXT: &str = r#"id: csc-default
version: 1
description: >-
  Built-in policy reproducing the DeAlgo CSC defaults: survival score, reality band
  on volatility and confidence, and a tenant-wide bucket of 4 refilling every 5 s.
default_effect: allow
signals:
  risk_score: {min: 0, max: 1, default: 0}
  confidence: {min: 0, max: 1, default: 1}
  volatility: {min: 0, max: 1}
rules: []
survival:
  score: '(1.0 - signals.risk_score) * signals.confidence'
  threshold: 0.5
reality:
  - {signal: volatility, lt: 0.15}
  - {signal: confidence, gte: 0.90}
throttle:
  - {key: [tenant], capacity: 4, refill_every: 5s}
adaptive:
  learning_rate: 0.01
  cap: 0.05
  half_life: 24h
  half_life_decisions: 1000
  may_tighten: false
"#;

static CSC_DEFAULT: LazyLock<Result<Arc<CompiledPolicy>, PolicyError>> =
    LazyLock::new(|| compile_policy(CSC_DEFAULT_TEXT, PolicyFormat::Yaml).map(Arc::new));

/// The compiled `csc-default` policy, compiled once per process.
///
/// It always compiles (a unit test checks it); the `Result` keeps every path free of
/// panics all the same.
pub fn csc_default() -> Result<Arc<CompiledPolicy>, PolicyError> {
    CSC_DEFAULT.clone()
}
