//! The shared GCRA test vector: `tests/gcra_vector.json` holds sequences of bucket
//! checks (bucket specs, time, whether a token is taken) with the results of
//! `tollgate_core::throttle` — per bucket `allowed`, `available`, `retry_after_ms`,
//! `new_tat`, and the stored TAT of every bucket of the case after the step.
//!
//! This test regenerates the vector from its inputs with the engine's own GCRA and
//! fails if the committed file differs, so the file is always the engine's answer.
//! Other throttle implementations (the Redis script of `tollgate-throttle-redis`)
//! replay the file and must give the same results at the same times.
//!
//! After a deliberate change to the inputs below or to the GCRA itself, rewrite the
//! file with `TOLLGATE_WRITE_GCRA_VECTOR=1 cargo test -p tollgate-core --test gcra_vector`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_core::throttle::{BucketDemand, Gcra, MemoryBuckets, check_all};
use tollgate_core::time::UnixMillis;

/// 2026-03-10T12:00:00Z.
const T0: i64 = 1_773_144_000_000;
/// 366 days: the longest `refill_every` a policy may have.
const DAY366: i64 = 366 * 24 * 3600 * 1000;

struct Step {
    now: i64,
    consume: bool,
    /// Indexes into the case's buckets, in demand order (repeats allowed).
    demands: Vec<usize>,
}

struct Case {
    name: &'static str,
    about: &'static str,
    /// (key, capacity, interval_ms).
    buckets: Vec<(&'static str, u32, i64)>,
    steps: Vec<Step>,
}

fn step(now: i64, demands: &[usize]) -> Step {
    Step {
        now,
        consume: true,
        demands: demands.to_vec(),
    }
}

fn look(now: i64, demands: &[usize]) -> Step {
    Step {
        now,
        consume: false,
        demands: demands.to_vec(),
    }
}

/// A small deterministic generator (SplitMix64), so the vector needs no `rand`.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "csc-default-bucket",
            about: "capacity 4, one token every 5 s: 4 back to back, then one per interval, exact waits",
            buckets: vec![("t", 4, 5000)],
            steps: vec![
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0 + 4999, &[0]),
                step(T0 + 5000, &[0]),
                step(T0 + 5000, &[0]),
                step(T0 + 12_345, &[0]),
                step(T0 + 60_000, &[0]),
                step(T0 + 60_001, &[0]),
            ],
        },
        Case {
            name: "capacity-one",
            about: "capacity 1: no burst, one per second",
            buckets: vec![("one", 1, 1000)],
            steps: vec![
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0 + 999, &[0]),
                step(T0 + 1000, &[0]),
                step(T0 + 1500, &[0]),
                step(T0 + 2000, &[0]),
                step(T0 + 2000, &[0]),
            ],
        },
        Case {
            name: "all-or-nothing",
            about: "two buckets per decision: a refusal by one takes no token from the other",
            buckets: vec![("a", 2, 1000), ("b", 5, 100)],
            steps: vec![
                step(T0, &[0, 1]),
                step(T0, &[0, 1]),
                step(T0, &[0, 1]),
                step(T0, &[1]),
                step(T0, &[1]),
                step(T0, &[1]),
                step(T0, &[0, 1]),
                step(T0 + 100, &[1, 0]),
                step(T0 + 1000, &[1, 0]),
                step(T0 + 1000, &[0, 1]),
            ],
        },
        Case {
            name: "look-only",
            about: "consume = false (shadow, dry-run, an earlier gate blocked): buckets are read, never changed",
            buckets: vec![("look", 2, 250)],
            steps: vec![
                look(T0, &[0]),
                step(T0, &[0]),
                look(T0, &[0]),
                step(T0, &[0]),
                look(T0, &[0]),
                look(T0 + 100, &[0]),
                step(T0 + 250, &[0]),
                look(T0 + 250, &[0]),
            ],
        },
        Case {
            name: "same-bucket-twice",
            about: "a decision that names one bucket twice sees one TAT and stores one update",
            buckets: vec![("dup", 3, 1000)],
            steps: vec![
                step(T0, &[0, 0]),
                step(T0, &[0, 0]),
                step(T0, &[0, 0]),
                step(T0, &[0, 0]),
                step(T0 + 1000, &[0, 0]),
            ],
        },
        Case {
            name: "clock-steps-back",
            about: "a node whose clock is behind sees the stored TAT further ahead",
            buckets: vec![("skew", 2, 1000)],
            steps: vec![
                step(T0 + 10_000, &[0]),
                step(T0 + 10_000, &[0]),
                step(T0 + 9_000, &[0]),
                step(T0 + 11_000, &[0]),
                step(T0 + 5_000, &[0]),
                step(T0 + 12_000, &[0]),
            ],
        },
        Case {
            name: "epoch-zero",
            about: "the earliest time accepted (0) and a never-used bucket",
            buckets: vec![("zero", 2, 7)],
            steps: vec![
                step(0, &[0]),
                step(0, &[0]),
                step(0, &[0]),
                step(6, &[0]),
                step(7, &[0]),
            ],
        },
        Case {
            name: "largest-policy-bucket",
            about: "capacity 1,000,000 refilling every 366 days: (C-1)*T is past 2^53, so double arithmetic would be inexact",
            buckets: vec![("huge", 1_000_000, DAY366), ("tiny", 1, 1)],
            steps: vec![
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0 + 1, &[0, 1]),
                step(T0 + 1, &[0, 1]),
                step(T0 + DAY366 - 1, &[0]),
                step(T0 + 3, &[0, 1]),
            ],
        },
        Case {
            name: "past-2-53",
            about: "an interval of 2^54 + 1 ms: TATs and waits that a double cannot hold exactly",
            buckets: vec![("far", 3, (1 << 54) + 1)],
            steps: vec![
                step(T0, &[0]),
                step(T0 + 1, &[0]),
                step(T0 + 2, &[0]),
                step(T0 + 3, &[0]),
                step(T0 + 5, &[0]),
                look(T0 + (1 << 54), &[0]),
                step(T0 + (1 << 54) + 9, &[0]),
            ],
        },
        Case {
            name: "saturation",
            about: "capacity 2^32-1 with a 2^61 ms interval: (C-1)*T saturates at i64::MAX and so do the TATs",
            buckets: vec![("sat", u32::MAX, 1 << 61)],
            steps: vec![
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0, &[0]),
                step(T0 + 1, &[0]),
            ],
        },
    ];
    // A long pseudo-random run over buckets of different shapes: steps of zero, small
    // and large time increments, random subsets and orders, random look-only steps.
    let buckets = vec![
        ("r-tenant", 4, 5000),
        ("r-actor", 2, 750),
        ("r-burst", 10, 100),
        ("r-slow", 3, 60_000),
        ("r-one", 1, 333),
    ];
    let mut mix = Mix(0x7011_6A7E);
    let mut now = T0;
    let mut steps = Vec::new();
    for _ in 0..400 {
        now += match mix.below(10) {
            0..=3 => 0,
            4..=6 => i64::try_from(mix.below(200)).unwrap(),
            7 | 8 => i64::try_from(mix.below(6000)).unwrap(),
            _ => i64::try_from(mix.below(120_000)).unwrap(),
        };
        let count = 1 + mix.below(3);
        let demands = (0..count)
            .map(|_| usize::try_from(mix.below(buckets.len() as u64)).unwrap())
            .collect();
        steps.push(Step {
            now,
            consume: mix.below(8) != 0,
            demands,
        });
    }
    cases.push(Case {
        name: "random-walk",
        about: "400 pseudo-random decisions over five buckets (SplitMix64, seed 0x70116A7E)",
        buckets,
        steps,
    });
    cases
}

/// Runs every case through the engine's GCRA and returns the vector.
fn generate() -> Value {
    let mut out = Vec::new();
    for case in cases() {
        let mut buckets = MemoryBuckets::new();
        let mut steps = Vec::new();
        for s in &case.steps {
            let demands: Vec<BucketDemand> = s
                .demands
                .iter()
                .map(|&i| {
                    let (key, capacity, interval_ms) = case.buckets[i];
                    BucketDemand {
                        key: Arc::from(key),
                        gcra: Gcra {
                            capacity,
                            interval_ms,
                        },
                    }
                })
                .collect();
            let tats = buckets.read(&demands);
            let (checks, updates) = check_all(&demands, &tats, UnixMillis(s.now), s.consume);
            buckets.apply(&updates);
            let state: serde_json::Map<String, Value> = case
                .buckets
                .iter()
                .map(|(key, _, _)| ((*key).to_owned(), json!(buckets.tat(key))))
                .collect();
            steps.push(json!({
                "now": s.now,
                "consume": s.consume,
                "demands": s.demands.iter().map(|&i| case.buckets[i].0).collect::<Vec<_>>(),
                "expected": {
                    "taken": !updates.is_empty(),
                    "checks": checks.iter().map(|c| json!({
                        "allowed": c.allowed,
                        "available": c.available,
                        "retry_after_ms": c.retry_after_ms,
                        "new_tat": c.new_tat,
                    })).collect::<Vec<_>>(),
                    "tats": state,
                },
            }));
        }
        out.push(json!({
            "name": case.name,
            "about": case.about,
            "buckets": case.buckets.iter().map(|(key, capacity, interval_ms)| json!({
                "key": key, "capacity": capacity, "interval_ms": interval_ms,
            })).collect::<Vec<_>>(),
            "steps": steps,
        }));
    }
    json!({
        "about": "GCRA test vector generated by tollgate-core (tests/gcra_vector.rs) from tollgate_core::throttle. Each case starts with every bucket unused; each step checks its demands (bucket keys, in order) at `now` and takes a token from every one of them only if all allow and `consume` is true. `expected.checks` are the per-demand results, `expected.tats` the stored TAT of every bucket of the case after the step (null = never used).",
        "cases": out,
    })
}

/// The vector as JSON with one step per line, so a change reads as a line diff.
fn layout(vector: &Value) -> String {
    let line = |v: &Value| serde_json::to_string(v).unwrap();
    let mut out = format!(
        "{{\n  \"about\": {},\n  \"cases\": [\n",
        line(&vector["about"])
    );
    let cases = vector["cases"].as_array().unwrap();
    for (i, case) in cases.iter().enumerate() {
        out.push_str(&format!(
            "    {{\n      \"name\": {},\n      \"about\": {},\n      \"buckets\": {},\n      \"steps\": [\n",
            line(&case["name"]),
            line(&case["about"]),
            line(&case["buckets"])
        ));
        let steps = case["steps"].as_array().unwrap();
        for (j, step) in steps.iter().enumerate() {
            let comma = if j + 1 < steps.len() { "," } else { "" };
            out.push_str(&format!("        {}{comma}\n", line(step)));
        }
        let comma = if i + 1 < cases.len() { "," } else { "" };
        out.push_str(&format!("      ]\n    }}{comma}\n"));
    }
    out.push_str("  ]\n}\n");
    out
}

fn vector_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/gcra_vector.json")
}

#[test]
fn the_committed_vector_is_the_engines_answer() {
    let generated = generate();
    let path = vector_path();
    if std::env::var_os("TOLLGATE_WRITE_GCRA_VECTOR").is_some() {
        std::fs::write(&path, layout(&generated)).unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == generated,
        "{} differs from what tollgate_core::throttle computes for its inputs; \
         if the change is deliberate, rewrite it with TOLLGATE_WRITE_GCRA_VECTOR=1",
        path.display()
    );
}

/// The vector exercises what a second implementation could get wrong.
#[test]
fn the_vector_covers_refusals_partial_refusals_looks_and_big_numbers() {
    let vector = generate();
    let steps: Vec<&Value> = vector["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["steps"].as_array().unwrap())
        .collect();
    let checks = |s: &&Value| s["expected"]["checks"].as_array().unwrap().clone();
    let refused = steps
        .iter()
        .filter(|s| checks(s).iter().any(|c| c["allowed"] == false))
        .count();
    let partial = steps
        .iter()
        .filter(|s| {
            let c = checks(s);
            c.iter().any(|c| c["allowed"] == true) && c.iter().any(|c| c["allowed"] == false)
        })
        .count();
    let looked_and_allowed = steps
        .iter()
        .filter(|s| s["consume"] == false && checks(s).iter().all(|c| c["allowed"] == true))
        .count();
    let past_2_53 = steps
        .iter()
        .filter(|s| {
            checks(s)
                .iter()
                .any(|c| c["new_tat"].as_i64().unwrap() > (1_i64 << 53))
        })
        .count();
    let saturated = steps
        .iter()
        .filter(|s| checks(s).iter().any(|c| c["new_tat"] == i64::MAX))
        .count();
    let keys: BTreeSet<&str> = steps
        .iter()
        .flat_map(|s| s["demands"].as_array().unwrap())
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(refused >= 50, "refusals: {refused}");
    assert!(partial >= 10, "partial refusals: {partial}");
    assert!(
        looked_and_allowed >= 10,
        "look-only allows: {looked_and_allowed}"
    );
    assert!(past_2_53 >= 3, "TATs past 2^53: {past_2_53}");
    assert!(saturated >= 2, "saturated TATs: {saturated}");
    assert!(keys.len() >= 12, "buckets: {keys:?}");
}
