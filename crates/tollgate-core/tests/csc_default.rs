//! `csc-default` reproduces the published DeAlgo window on a sweep: permit iff
//! volatility < 0.15 and confidence >= 0.90, a bucket of 4, one token per 5 s.

use serde_json::json;
use tollgate_core::{
    DecideInput, DecisionRequest, Gate, MemoryBuckets, PolicyBinding, Status, UnixMillis,
    csc_default, decide,
};

const T0: i64 = 1_767_225_600_000;

fn request(volatility: f64, confidence: f64) -> DecisionRequest {
    let mut r = DecisionRequest {
        tenant: "lab".into(),
        action: json!({"type": "OPEN_POSITION"})
            .as_object()
            .unwrap()
            .clone(),
        ..Default::default()
    };
    r.signals.insert("volatility".into(), volatility);
    r.signals.insert("confidence".into(), confidence);
    r
}

/// One decision against a fresh bucket.
fn fresh(volatility: f64, confidence: f64) -> (Status, Gate) {
    let policies = [PolicyBinding::Found(csc_default().unwrap())];
    let r = request(volatility, confidence);
    let input = DecideInput {
        request: &r,
        policies: &policies,
        now: UnixMillis(T0),
        overrides: &[],
        outcomes: &[],
        approval: None,
        tenant_shadow: false,
    };
    let v = decide(&input, &mut MemoryBuckets::new()).unwrap();
    (v.status, v.gate)
}

#[test]
fn volatility_window_is_below_0_15() {
    for i in 0..=30u32 {
        let vol: f64 = format!("{}.{:02}", i / 100, i % 100).parse().unwrap();
        let (status, gate) = fresh(vol, 0.95);
        if i <= 14 {
            assert_eq!(
                (status, gate),
                (Status::Allow, Gate::Permit),
                "volatility {vol}"
            );
        } else {
            assert_eq!(
                (status, gate),
                (Status::Block, Gate::Reality),
                "volatility {vol}"
            );
        }
    }
    assert_eq!(fresh(0.14, 0.95).0, Status::Allow);
    assert_eq!(fresh(0.15, 0.95).0, Status::Block);
}

#[test]
fn confidence_window_is_at_least_0_90() {
    for i in 50..=100u32 {
        let conf: f64 = format!("{}.{:02}", i / 100, i % 100).parse().unwrap();
        let (status, gate) = fresh(0.05, conf);
        if i >= 90 {
            assert_eq!(
                (status, gate),
                (Status::Allow, Gate::Permit),
                "confidence {conf}"
            );
        } else {
            assert_eq!(
                (status, gate),
                (Status::Block, Gate::Reality),
                "confidence {conf}"
            );
        }
    }
}

#[test]
fn bucket_of_four_refilling_every_five_seconds() {
    let policies = [PolicyBinding::Found(csc_default().unwrap())];
    let r = request(0.05, 0.95);
    let mut buckets = MemoryBuckets::new();
    let at = |ms: i64, buckets: &mut MemoryBuckets| {
        let input = DecideInput {
            request: &r,
            policies: &policies,
            now: UnixMillis(T0 + ms),
            overrides: &[],
            outcomes: &[],
            approval: None,
            tenant_shadow: false,
        };
        decide(&input, buckets).unwrap()
    };
    // 10 back to back after quiet: exactly 4 permits.
    let permits = (0..10)
        .filter(|_| at(0, &mut buckets).status == Status::Allow)
        .count();
    assert_eq!(permits, 4);
    let blocked = at(0, &mut buckets);
    assert_eq!(
        (blocked.gate, blocked.retry_after_ms),
        (Gate::Throttle, Some(5000))
    );

    // Continuous traffic for 60 s (a request every 100 ms): 12 more permits, one per 5 s.
    let steady = (1..=600)
        .filter(|k| at(k * 100, &mut buckets).status == Status::Allow)
        .count();
    assert_eq!(steady, 12);

    // After 20 s of quiet the bucket is full again: 4 back to back, not 5.
    let quiet = 60_000 + 20_000;
    let refilled = (0..5)
        .filter(|_| at(quiet, &mut buckets).status == Status::Allow)
        .count();
    assert_eq!(refilled, 4);
}
