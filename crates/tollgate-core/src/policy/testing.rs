//! Policy test files: cases of requests with the verdict each must get, run against
//! compiled policies with fresh engine state per case (`tollgate policy test`, like
//! `opa test`). Pure: time is a fixed origin plus each step's `at_ms`.
//!
//! ```yaml
//! policies: [treasury.yaml]        # relative to the test file; optional
//! cases:
//!   - name: a small transfer is allowed
//!     steps:
//!       - request: {actor: {id: ops-bot}, action: {type: TRANSFER_FUNDS, amount: 900}}
//!         expect: {status: ALLOW, gate: permit}
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::CompiledPolicy;
use crate::engine::{DecideInput, PolicyBinding, decide_with_history};
use crate::request::DecisionRequest;
use crate::throttle::MemoryBuckets;
use crate::time::UnixMillis;
use crate::verdict::{Gate, Status, Verdict};

/// The time origin of every case (2026-01-01T00:00:00Z); steps add `at_ms`.
pub const TEST_EPOCH_MS: i64 = 1_767_225_600_000;

/// A test file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTestFile {
    /// Policy files, relative to the test file. Empty: the caller's default.
    #[serde(default)]
    pub policies: Vec<String>,
    /// The cases.
    pub cases: Vec<PolicyTestCase>,
}

/// One case: steps sharing throttle and history state.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTestCase {
    /// What the case shows.
    pub name: String,
    /// Run as under a tenant-wide shadow switch.
    #[serde(default)]
    pub tenant_shadow: bool,
    /// The requests, in order.
    pub steps: Vec<PolicyTestStep>,
}

/// One request, maybe repeated; the last repetition is checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTestStep {
    /// The neutral request (`tenant` defaults to `test`).
    pub request: Value,
    /// Milliseconds after the case's origin.
    #[serde(default)]
    pub at_ms: i64,
    /// How many times to send it (default 1).
    #[serde(default = "one")]
    pub repeat: usize,
    /// The verdict the last repetition must get.
    pub expect: Expected,
}

fn one() -> usize {
    1
}

/// An expected verdict: the status, and the gate and reason codes when given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// `ALLOW`, `BLOCK`, `ESCALATE` or `REVIEW_REQUIRED`.
    pub status: Status,
    /// The deciding gate.
    #[serde(default)]
    pub gate: Option<Gate>,
    /// The reason codes, in order.
    #[serde(default)]
    pub reason_codes: Option<Vec<String>>,
}

/// A step whose verdict was not the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    /// Step index (from 0).
    pub step: usize,
    /// What was expected, as `STATUS gate [CODES]`.
    pub expected: String,
    /// What the engine answered, in the same form (or why there was no verdict).
    pub actual: String,
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Steps run.
    pub steps: usize,
    /// Steps that failed (empty = the case passed).
    pub failures: Vec<StepFailure>,
}

/// Parses a test file (YAML, which includes JSON).
pub fn parse_test_file(text: &str) -> Result<PolicyTestFile, String> {
    let de = serde_norway::Deserializer::from_str(text);
    // The YAML error already names the path (`cases[3].steps[0].expect.gate: …`).
    PolicyTestFile::deserialize(de).map_err(|e| e.to_string())
}

/// Runs every case against `policies` (all evaluated, the most restrictive wins).
pub fn run_tests(file: &PolicyTestFile, policies: &[Arc<CompiledPolicy>]) -> Vec<CaseResult> {
    let bindings: Vec<PolicyBinding> = policies
        .iter()
        .map(|p| PolicyBinding::Found(Arc::clone(p)))
        .collect();
    file.cases
        .iter()
        .map(|case| run_case(case, &bindings))
        .collect()
}

fn run_case(case: &PolicyTestCase, policies: &[PolicyBinding]) -> CaseResult {
    let mut buckets = MemoryBuckets::new();
    let mut history = Vec::new();
    let mut failures = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let expected = describe_expected(&step.expect);
        let mut raw = step.request.clone();
        if let Some(obj) = raw.as_object_mut() {
            obj.entry("tenant").or_insert_with(|| "test".into());
        }
        let request: DecisionRequest = match serde_json::from_value(raw) {
            Ok(r) => r,
            Err(e) => {
                failures.push(StepFailure {
                    step: i,
                    expected,
                    actual: format!("not a request: {e}"),
                });
                continue;
            }
        };
        let input = DecideInput {
            request: &request,
            policies,
            now: UnixMillis(TEST_EPOCH_MS.saturating_add(step.at_ms)),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: case.tenant_shadow,
        };
        let mut last = None;
        for _ in 0..step.repeat.max(1) {
            last = Some(decide_with_history(&input, &mut buckets, &mut history));
        }
        let actual = match last {
            Some(Ok(v)) if matches(&v, &step.expect) => continue,
            Some(Ok(v)) => describe(&v),
            Some(Err(invalid)) => format!("invalid request: {invalid}"),
            None => "no verdict".to_owned(),
        };
        failures.push(StepFailure {
            step: i,
            expected,
            actual,
        });
    }
    CaseResult {
        name: case.name.clone(),
        steps: case.steps.len(),
        failures,
    }
}

fn matches(v: &Verdict, e: &Expected) -> bool {
    v.status == e.status
        && e.gate.is_none_or(|g| g == v.gate)
        && e.reason_codes
            .as_ref()
            .is_none_or(|codes| *codes == v.reason_codes)
}

fn describe(v: &Verdict) -> String {
    let mut s = format!("{} gate={}", v.status.as_str(), v.gate.as_str());
    let _ = write!(s, " reason_codes={:?}", v.reason_codes);
    s
}

fn describe_expected(e: &Expected) -> String {
    let mut s = e.status.as_str().to_owned();
    if let Some(g) = e.gate {
        let _ = write!(s, " gate={}", g.as_str());
    }
    if let Some(c) = &e.reason_codes {
        let _ = write!(s, " reason_codes={c:?}");
    }
    s
}
