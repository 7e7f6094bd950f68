//! Data-driven decision tests: each file in `tests/cases/` is a policy set, engine
//! state and a sequence of requests with the expected status, gate and reason codes.
//! The full verdicts (with their traces) are snapshots in `tests/snapshots/`;
//! update them with `INSTA_UPDATE=always cargo test -p tollgate-core --test decisions`
//! and review the diff.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tollgate_core::{
    Approval, DecideInput, DecisionRequest, MemoryBuckets, OutcomeRecord, Override, PolicyBinding,
    PolicyFormat, UnixMillis, Verdict, compile_policy, csc_default, decide_with_history,
};

/// Base time of every case: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    policies: Vec<PolicySpec>,
    #[serde(default)]
    tenant_shadow: bool,
    #[serde(default)]
    overrides: Vec<Override>,
    #[serde(default)]
    outcomes: Vec<OutcomeSpec>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PolicySpec {
    /// `csc-default`, or `missing:REF` for a reference that resolves to nothing.
    Named(String),
    /// An inline policy text in YAML.
    Inline { yaml: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeSpec {
    magnitude: f64,
    confidence: f64,
    age_ms: i64,
    decisions_since: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    at_ms: i64,
    #[serde(default = "one")]
    repeat: usize,
    request: Value,
    #[serde(default)]
    approval: Option<Approval>,
    #[serde(default)]
    expect: Option<Expect>,
    /// Expected validation failure: the `loc` of every field error.
    #[serde(default)]
    expect_invalid: Option<Vec<Vec<String>>>,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: String,
    gate: String,
    #[serde(default)]
    reason_codes: Vec<String>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default)]
    would_be: Option<WouldBe>,
    #[serde(default)]
    adaptive_bias: Option<f64>,
    #[serde(default)]
    review_rule: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WouldBe {
    status: String,
    gate: String,
    #[serde(default)]
    reason_codes: Vec<String>,
}

fn run_case(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: bad case file: {e}", path.display()));
    let policies: Vec<PolicyBinding> = case
        .policies
        .iter()
        .map(|spec| match spec {
            PolicySpec::Named(name) if name == "csc-default" => {
                PolicyBinding::Found(csc_default().unwrap())
            }
            PolicySpec::Named(name) => match name.strip_prefix("missing:") {
                Some(reference) => PolicyBinding::NotFound(reference.to_owned()),
                None => panic!("unknown policy name {name}"),
            },
            PolicySpec::Inline { yaml } => PolicyBinding::Found(Arc::new(
                compile_policy(yaml, PolicyFormat::Yaml)
                    .unwrap_or_else(|e| panic!("{}: policy does not compile: {e}", path.display())),
            )),
        })
        .collect();
    let mut buckets = MemoryBuckets::new();
    let mut history = Vec::new();
    let mut out = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let mut req = step.request.clone();
        if let Some(obj) = req.as_object_mut() {
            obj.entry("tenant").or_insert_with(|| "acme".into());
        }
        let request: DecisionRequest = serde_json::from_value(req)
            .unwrap_or_else(|e| panic!("{} step {i}: bad request: {e}", path.display()));
        let now = UnixMillis(T0 + step.at_ms);
        let outcomes: Vec<OutcomeRecord> = case
            .outcomes
            .iter()
            .map(|o| OutcomeRecord {
                magnitude: o.magnitude,
                confidence: o.confidence,
                observed_at: UnixMillis(now.0 - o.age_ms),
                decisions_since: o.decisions_since,
            })
            .collect();
        for rep in 0..step.repeat {
            let where_ = format!("{} step {i} repeat {rep}", path.display());
            let input = DecideInput {
                request: &request,
                policies: &policies,
                now,
                overrides: &case.overrides,
                outcomes: &outcomes,
                approval: step.approval.as_ref(),
                tenant_shadow: case.tenant_shadow,
            };
            match decide_with_history(&input, &mut buckets, &mut history) {
                Ok(verdict) => {
                    // The last repetition is the one checked against `expect`.
                    if rep + 1 == step.repeat {
                        let expect = step
                            .expect
                            .as_ref()
                            .unwrap_or_else(|| panic!("{where_}: got a verdict, expected invalid"));
                        check(&where_, &verdict, expect);
                    }
                    out.push(serde_json::to_value(&verdict).unwrap());
                }
                Err(invalid) => {
                    let locs: Vec<Vec<String>> =
                        invalid.errors.iter().map(|e| e.loc.clone()).collect();
                    assert_eq!(
                        Some(&locs),
                        step.expect_invalid.as_ref(),
                        "{where_}: unexpected validation failure {invalid}"
                    );
                    out.push(serde_json::to_value(&invalid.errors).unwrap());
                }
            }
        }
    }
    out
}

fn check(where_: &str, v: &Verdict, e: &Expect) {
    assert_eq!(
        v.status.as_str(),
        e.status,
        "{where_}: status ({})",
        v.explanation
    );
    assert_eq!(
        v.gate.as_str(),
        e.gate,
        "{where_}: gate ({})",
        v.explanation
    );
    assert_eq!(v.reason_codes, e.reason_codes, "{where_}: reason codes");
    assert_eq!(
        v.retry_after_ms, e.retry_after_ms,
        "{where_}: retry_after_ms"
    );
    match (&v.would_be, &e.would_be) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            assert_eq!(
                got.status.as_str(),
                want.status,
                "{where_}: would-be status"
            );
            assert_eq!(got.gate.as_str(), want.gate, "{where_}: would-be gate");
            assert_eq!(
                got.reason_codes, want.reason_codes,
                "{where_}: would-be reasons"
            );
        }
        (got, want) => panic!(
            "{where_}: would_be mismatch: got {}, want {}",
            got.is_some(),
            want.is_some()
        ),
    }
    match (v.adaptive_bias, e.adaptive_bias) {
        (None, None) => {}
        (Some(got), Some(want)) => assert!(
            (got - want).abs() < 1e-9,
            "{where_}: adaptive bias {got} != {want}"
        ),
        (got, want) => panic!("{where_}: adaptive bias {got:?} != {want:?}"),
    }
    assert_eq!(
        v.review.as_ref().map(|r| r.rule.clone()),
        e.review_rule,
        "{where_}: review request"
    );
}

#[test]
fn decision_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 15,
        "expected the decision cases in {}",
        dir.display()
    );
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let verdicts = run_case(&path);
        insta::assert_yaml_snapshot!(name, verdicts);
    }
}

/// A verdict's trace is recorded compactly; serialised, read back (which holds the
/// full list) and serialised again, it gives the same bytes and compares equal.
#[test]
fn a_compact_trace_serialises_as_the_full_list_it_stands_for() {
    use tollgate_core::{
        DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, PolicyFormat, UnixMillis,
        Verdict, compile_policy, csc_default, decide,
    };
    let mut text = String::from("id: types\ndefault_effect: block\nrules:\n");
    for i in 0..5 {
        text.push_str(&format!(
            "  - {{name: deny-{i}, when: 'action.type.startsWith(\"tool_{i}_\")', effect: block, reason_code: DENY_{i}}}\n"
        ));
    }
    text.push_str("  - {name: read, when: 'action.type == \"read_file\" && action.size < 10', effect: allow, reason_code: READ}\n");
    let types = compile_policy(&text, PolicyFormat::Yaml).unwrap_or_else(|e| panic!("{e}"));
    let csc = csc_default().unwrap_or_else(|e| panic!("{e}"));
    let policies = [
        PolicyBinding::Found(std::sync::Arc::new(types)),
        PolicyBinding::Found(csc),
        PolicyBinding::NotFound("missing".into()),
    ];
    for (action, mode) in [
        ("read_file", tollgate_core::Mode::Enforce),
        ("tool_3_rm", tollgate_core::Mode::Shadow),
        (
            "a_type_longer_than_twenty_two_bytes",
            tollgate_core::Mode::DryRun,
        ),
    ] {
        let mut request = DecisionRequest {
            tenant: "t".into(),
            mode,
            ..Default::default()
        };
        request.action.insert("type".into(), action.into());
        request.action.insert("size".into(), 3.into());
        request.signals.insert("volatility".into(), 0.5);
        let input = DecideInput {
            request: &request,
            policies: &policies,
            now: UnixMillis(1_767_225_600_000),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        let verdict =
            decide(&input, &mut MemoryBuckets::new()).unwrap_or_else(|e| panic!("{action}: {e:?}"));
        let gates = verdict.trace.gates().into_owned();
        assert!(gates.len() >= 2, "{action}: {gates:?}");
        let bytes = serde_json::to_vec(&verdict).unwrap_or_else(|e| panic!("{e}"));
        let back: Verdict = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, verdict, "{action}");
        assert_eq!(back.trace.gates().into_owned(), gates, "{action}");
        let again = serde_json::to_vec(&back).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, bytes, "{action}");
        assert_eq!(
            serde_json::to_value(&verdict.trace).unwrap_or_else(|e| panic!("{e}")),
            serde_json::to_value(&gates).unwrap_or_else(|e| panic!("{e}")),
            "{action}"
        );
    }
}
