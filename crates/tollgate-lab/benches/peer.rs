//! Tollgate's engine against Microsoft's `agent-governance` crate (3.2.2,
//! `PolicyEngine::evaluate`) on the same 50 rules that each test the action type: 49
//! deny-lists by prefix (`tool_N_`) and one allow (`read_file`), in one criterion run.
//!
//! Built by the stand-alone package `crates/tollgate-lab/peer-bench` (the peer crate
//! cannot share the main workspace's lockfile; see that package's `Cargo.toml`):
//!
//! ```text
//! cd crates/tollgate-lab/peer-bench && cargo bench --bench peer
//! ```
//!
//! Before measuring, both engines decide a handful of requests and must agree. Each
//! engine is then measured on the same requests: `read_file` (the allow rule, the last
//! of the 50: the peer scans every rule, first match wins) and `tool_24_delete` (a deny
//! in the middle of the list). Criterion prints its own report; a table of medians and
//! ratios follows.

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use agent_governance::{PolicyDecision, PolicyEngine};
use criterion::Criterion;
use tollgate_core::{
    DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, PolicyFormat, Status, UnixMillis,
    compile_policy, decide,
};

const T0: i64 = 1_767_225_600_000;

/// The requests both engines are measured on.
const MEASURED: [&str; 2] = ["read_file", "tool_24_delete"];

/// Requests both engines must decide alike before anything is measured.
const CHECKED: [&str; 9] = [
    "read_file",
    "tool_0_rm",
    "tool_24_delete",
    "tool_48_exec",
    "tool_10_x",
    "tool_1_x",
    "tool_49_x",
    "tool_5",
    "write_file",
];

/// Ours: the rules of `fifty_action_type_rules()` in the `tollgate-core` bench, with
/// `default_effect: allow` because the peer allows whatever no rule matches (it has no
/// default-effect setting). The rule index makes a decision evaluate only the rules
/// whose `action.type` literal can match.
fn tollgate_policy() -> String {
    let mut text = String::from("id: fifty-types\ndefault_effect: allow\nrules:\n");
    for i in 0..49 {
        text.push_str(&format!(
            "  - {{name: deny-{i}, when: 'action.type.startsWith(\"tool_{i}_\")', effect: block, reason_code: DENY_{i}}}\n"
        ));
    }
    text.push_str("  - {name: allow-read, when: 'action.type == \"read_file\"', effect: allow, reason_code: READ}\n");
    text
}

/// The peer: 49 `capability` rules with `denied_actions: ["tool_N_*"]` (a prefix match)
/// and one with `allowed_actions: ["read_file"]`, evaluated in order, first match wins.
fn peer_policy() -> String {
    let mut text = String::from("version: \"1.0\"\nagent: bench\npolicies:\n");
    for i in 0..49 {
        text.push_str(&format!(
            "  - name: deny-{i}\n    type: capability\n    denied_actions: [\"tool_{i}_*\"]\n"
        ));
    }
    text.push_str(
        "  - name: allow-read\n    type: capability\n    allowed_actions: [\"read_file\"]\n",
    );
    text
}

fn request(action_type: &str) -> DecisionRequest {
    let mut r = DecisionRequest {
        tenant: "bench".into(),
        ..Default::default()
    };
    r.action.insert("type".into(), action_type.into());
    r
}

struct Ours {
    policies: Vec<PolicyBinding>,
    buckets: MemoryBuckets,
}

impl Ours {
    fn decide(&mut self, request: &DecisionRequest, now: i64) -> Option<Status> {
        let input = DecideInput {
            request,
            policies: &self.policies,
            now: UnixMillis(now),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        decide(&input, &mut self.buckets).ok().map(|v| v.status)
    }
}

fn main() {
    let compiled = compile_policy(&tollgate_policy(), PolicyFormat::Yaml)
        .unwrap_or_else(|e| panic!("tollgate policy: {e}"));
    let mut ours = Ours {
        policies: vec![PolicyBinding::Found(Arc::new(compiled))],
        buckets: MemoryBuckets::new(),
    };
    let peer = PolicyEngine::new();
    peer.load_from_yaml(&peer_policy())
        .unwrap_or_else(|e| panic!("peer policy: {e}"));

    println!("| request | tollgate | agent-governance |");
    println!("|---|---|---|");
    for action in CHECKED {
        let a = ours.decide(&request(action), T0);
        let b = peer.evaluate(action, None);
        let agree = matches!(
            (a, &b),
            (Some(Status::Allow), PolicyDecision::Allow)
                | (Some(Status::Block), PolicyDecision::Deny(_))
        );
        println!("| `{action}` | {a:?} | {} |", b.label());
        assert!(agree, "the engines disagree on `{action}`: {a:?} vs {b:?}");
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("peer");
    for action in MEASURED {
        let req = request(action);
        let mut now = T0;
        group.bench_function(format!("tollgate/{action}"), |b| {
            b.iter(|| {
                now += 1;
                black_box(ours.decide(black_box(&req), now))
            })
        });
        group.bench_function(format!("agent-governance/{action}"), |b| {
            b.iter(|| black_box(peer.evaluate(black_box(action), None)))
        });
    }
    group.finish();
    c.final_summary();
    print_table();
}

/// Reads criterion's median estimates and prints both engines and the ratio.
fn print_table() {
    let root = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    // Criterion stores `group/function` under `criterion/group/function`, with any `/`
    // inside the function id replaced by `_`.
    let median = |function: &str| -> Option<f64> {
        let path = root
            .join("criterion/peer")
            .join(function.replace('/', "_"))
            .join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
    println!(
        "\n| request (50 action-type rules) | tollgate median | agent-governance 3.2.2 median | tollgate / peer |"
    );
    println!("|---|---|---|---|");
    for action in MEASURED {
        let ours = median(&format!("tollgate/{action}"));
        let theirs = median(&format!("agent-governance/{action}"));
        match (ours, theirs) {
            (Some(a), Some(b)) => println!(
                "| `{action}` | {:.3} µs | {:.3} µs | {:.2} |",
                a / 1000.0,
                b / 1000.0,
                a / b
            ),
            _ => println!(
                "| `{action}` | (no estimate under {}) | | |",
                root.join("criterion").display()
            ),
        }
    }
}
