//! Engine benchmarks: median time per decision for `csc-default`, for 50 generated
//! CEL rules, and for 50 rules on `action.type` (deny-lists by prefix, one allow).
//! A decision records its trace compactly; `engine/csc-default+trace` also
//! materialises the full gate list, as writing the verdict to the ledger does.
//!
//! Run: `cargo bench -p tollgate-core --bench engine`. Criterion prints its own
//! report; a table of medians follows at the end.

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use serde_json::json;
use tollgate_core::{
    DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, PolicyFormat, Status, UnixMillis,
    compile_policy, csc_default, evaluate,
};

const T0: i64 = 1_767_225_600_000;

/// 50 rules mixing comparisons, string functions, `in` lists and logic over actor,
/// action and context; none matches the benchmark request, so all 50 are evaluated.
fn fifty_cel_rules() -> String {
    let mut text = String::from("id: fifty-cel\ndefault_effect: allow\nrules:\n");
    for i in 0..50 {
        let when = match i % 5 {
            0 => format!(
                "action.amount > {} && context.region == \"region-{i}\"",
                100_000 + i
            ),
            1 => format!("actor.id.startsWith(\"blocked-{i}-\")"),
            2 => format!("\"tag-{i}\" in action.tags"),
            3 => format!("context.hour >= 23 && action.type == \"TYPE_{i}\""),
            _ => format!(
                "size(action.memo) > {} || actor.risk_tier == {}",
                1000 + i,
                90 + i
            ),
        };
        text.push_str(&format!(
            "  - {{name: rule-{i}, when: '{when}', effect: block, reason_code: R{i}}}\n"
        ));
    }
    text
}

/// 50 rules that each test `action.type`: 49 deny-lists by prefix and one allow.
fn fifty_action_type_rules() -> String {
    let mut text = String::from("id: fifty-types\ndefault_effect: block\nrules:\n");
    for i in 0..49 {
        text.push_str(&format!(
            "  - {{name: deny-{i}, when: 'action.type.startsWith(\"tool_{i}_\")', effect: block, reason_code: DENY_{i}}}\n"
        ));
    }
    text.push_str("  - {name: allow-read, when: 'action.type == \"read_file\"', effect: allow, reason_code: READ}\n");
    text
}

fn request(action: serde_json::Value) -> DecisionRequest {
    let mut r = DecisionRequest {
        tenant: "bench".into(),
        actor: json!({"id": "agent-7", "risk_tier": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        action: action.as_object().cloned().unwrap_or_default(),
        context: json!({"region": "eu-west", "hour": 10})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        source: Some("agent-7".into()),
        ..Default::default()
    };
    r.signals.insert("volatility".into(), 0.05);
    r.signals.insert("confidence".into(), 0.95);
    r.signals.insert("risk_score".into(), 0.2);
    r
}

fn bench_policy(
    c: &mut Criterion,
    name: &str,
    policies: Vec<PolicyBinding>,
    req: DecisionRequest,
    expect: Status,
    materialise: bool,
) {
    let mut buckets = MemoryBuckets::new();
    let mut now = T0;
    let run = |now: i64, buckets: &mut MemoryBuckets| {
        let input = DecideInput {
            request: &req,
            policies: &policies,
            now: UnixMillis(now),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        let eval = evaluate(&input).ok()?;
        let tats = buckets.read(eval.demands());
        let d = eval.finish(&tats);
        buckets.apply(&d.bucket_updates);
        if materialise {
            black_box(d.verdict.trace.gates().len());
        }
        Some(d.verdict)
    };
    let first = run(now, &mut buckets).map(|v| v.status);
    assert_eq!(first, Some(expect), "{name}: unexpected verdict");
    c.bench_function(name, |b| {
        b.iter(|| {
            // A token refills every 5 s: advancing the clock keeps every decision a permit.
            now += 5_000;
            black_box(run(black_box(now), &mut buckets))
        })
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let csc = match csc_default() {
        Ok(p) => p,
        Err(e) => panic!("csc-default: {e}"),
    };
    let cel = Arc::new(
        compile_policy(&fifty_cel_rules(), PolicyFormat::Yaml).unwrap_or_else(|e| panic!("{e}")),
    );
    let types = Arc::new(
        compile_policy(&fifty_action_type_rules(), PolicyFormat::Yaml)
            .unwrap_or_else(|e| panic!("{e}")),
    );

    bench_policy(
        &mut c,
        "engine/csc-default",
        vec![PolicyBinding::Found(csc)],
        request(json!({"type": "OPEN_POSITION"})),
        Status::Allow,
        false,
    );
    bench_policy(
        &mut c,
        "engine/csc-default+trace",
        vec![PolicyBinding::Found(
            csc_default().unwrap_or_else(|e| panic!("{e}")),
        )],
        request(json!({"type": "OPEN_POSITION"})),
        Status::Allow,
        true,
    );
    bench_policy(
        &mut c,
        "engine/50-cel-rules",
        vec![PolicyBinding::Found(cel)],
        request(
            json!({"type": "TRANSFER_FUNDS", "amount": 2500, "tags": ["ops", "eu"], "memo": "invoice 42"}),
        ),
        Status::Allow,
        false,
    );
    bench_policy(
        &mut c,
        "engine/50-action-type-rules",
        vec![PolicyBinding::Found(types)],
        request(json!({"type": "read_file"})),
        Status::Allow,
        false,
    );
    c.final_summary();
    print_medians(&[
        "engine/csc-default",
        "engine/csc-default+trace",
        "engine/50-cel-rules",
        "engine/50-action-type-rules",
    ]);
}

/// Reads criterion's estimates and prints the medians as a table.
fn print_medians(ids: &[&str]) {
    let root = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    println!("\n| benchmark | median per decision | bar (docs/quality.md) |");
    println!("|---|---|---|");
    for id in ids {
        let path = root
            .join("criterion")
            .join(id.replace('/', "_"))
            .join("new/estimates.json");
        let path = if path.exists() {
            path
        } else {
            root.join("criterion").join(id).join("new/estimates.json")
        };
        let median = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["median"]["point_estimate"].as_f64());
        let bar = match *id {
            "engine/csc-default" => "≤ 1 µs",
            "engine/csc-default+trace" => "(csc-default, full trace materialised)",
            "engine/50-cel-rules" => "≤ 5 µs",
            _ => "≤ peer's median (~1.5 µs)",
        };
        match median {
            Some(ns) => println!("| {id} | {:.3} µs | {bar} |", ns / 1000.0),
            None => println!("| {id} | (no estimate at {}) | {bar} |", path.display()),
        }
    }
}
