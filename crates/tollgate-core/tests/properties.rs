//! Property tests: determinism, GCRA exactness against a token-bucket model, and the
//! safety rules of the adaptive bias.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use tollgate_core::adaptive::{bias, survival_passes};
use tollgate_core::policy::AdaptiveSettings;
use tollgate_core::{
    DecideInput, DecisionRequest, Gcra, MemoryBuckets, Mode, OutcomeRecord, Override,
    OverrideScope, PolicyBinding, PolicyFormat, Status, UnixMillis, compile_policy, csc_default,
    decide,
};

const T0: i64 = 1_767_225_600_000;

const TREASURY: &str = r#"
id: treasury
signals:
  risk_score: {min: 0, max: 1, default: 0}
  confidence: {min: 0, max: 1, default: 1}
  volatility: {min: 0, max: 1}
rules:
  - {name: big, when: 'action.type == "TRANSFER_FUNDS" && action.amount > 10000', effect: review, reason_code: AMOUNT_OVER_LIMIT}
  - {name: night, when: 'context.hour >= 22', effect: block, reason_code: OUTSIDE_HOURS}
  - {name: vip, when: 'actor.id == "vip"', effect: allow, reason_code: VIP}
  - {name: strict, when: 'context.limit < action.amount', effect: escalate, reason_code: OVER_LIMIT, on_error: block}
survival: {score: '(1.0 - signals.risk_score) * signals.confidence', threshold: 0.4}
reality:
  - {signal: volatility, lt: 0.2}
throttle:
  - {key: [actor.id], capacity: 3, refill_every: 2s}
adaptive: {learning_rate: 0.2, cap: 0.1, half_life: 1h, half_life_decisions: 50, may_tighten: true}
"#;

fn policy_sets() -> Vec<Vec<PolicyBinding>> {
    let csc = csc_default().unwrap();
    let treasury = Arc::new(compile_policy(TREASURY, PolicyFormat::Yaml).unwrap());
    vec![
        vec![PolicyBinding::Found(csc.clone())],
        vec![PolicyBinding::Found(treasury.clone())],
        vec![PolicyBinding::Found(csc), PolicyBinding::Found(treasury)],
    ]
}

#[derive(Clone, Debug)]
struct Req {
    actor: &'static str,
    action: &'static str,
    amount: Option<i64>,
    hour: Option<i64>,
    limit: Option<i64>,
    risk: Option<f64>,
    confidence: Option<f64>,
    volatility: Option<f64>,
    mode: Mode,
    adaptive: bool,
    source: &'static str,
    dt_ms: i64,
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec!["a", "b", "vip", "rogue"]),
        prop::sample::select(vec!["TRANSFER_FUNDS", "OPEN_POSITION", "read_file"]),
        prop::option::of(0i64..30_000),
        prop::option::of(0i64..24),
        prop::option::of(0i64..30_000),
        prop::option::of(0.0f64..=1.0),
        prop::option::of(0.0f64..=1.0),
        prop::option::of(0.0f64..=1.0),
        prop::sample::select(vec![
            Mode::Enforce,
            Mode::Enforce,
            Mode::Shadow,
            Mode::DryRun,
        ]),
        any::<bool>(),
        prop::sample::select(vec!["s1", "s2"]),
        0i64..4_000,
    )
        .prop_map(
            |(
                actor,
                action,
                amount,
                hour,
                limit,
                risk,
                confidence,
                volatility,
                mode,
                adaptive,
                source,
                dt_ms,
            )| Req {
                actor,
                action,
                amount,
                hour,
                limit,
                risk,
                confidence,
                volatility,
                mode,
                adaptive,
                source,
                dt_ms,
            },
        )
}

fn build(r: &Req) -> DecisionRequest {
    let mut action = json!({"type": r.action});
    if let Some(a) = r.amount {
        action["amount"] = json!(a);
    }
    let mut context = json!({});
    if let Some(h) = r.hour {
        context["hour"] = json!(h);
    }
    if let Some(l) = r.limit {
        context["limit"] = json!(l);
    }
    let mut request = DecisionRequest {
        tenant: "acme".into(),
        actor: json!({"id": r.actor}).as_object().unwrap().clone(),
        action: action.as_object().unwrap().clone(),
        context: context.as_object().unwrap().clone(),
        source: Some(r.source.into()),
        mode: r.mode,
        adaptive: r.adaptive,
        ..Default::default()
    };
    for (k, v) in [
        ("risk_score", r.risk),
        ("confidence", r.confidence),
        ("volatility", r.volatility),
    ] {
        if let Some(v) = v {
            request.signals.insert(k.into(), v);
        }
    }
    request
}

fn outcome_strategy() -> impl Strategy<Value = OutcomeRecord> {
    (-1.0f64..=1.0, 0.0f64..=1.0, 0i64..10_000_000, 0u64..5_000).prop_map(|(m, c, age, n)| {
        OutcomeRecord {
            magnitude: m,
            confidence: c,
            observed_at: UnixMillis(T0 - age),
            decisions_since: n,
        }
    })
}

fn overrides() -> Vec<Override> {
    vec![Override {
        id: "ovr_1".into(),
        scope: OverrideScope::Actor("rogue".into()),
        reason: "test".into(),
    }]
}

/// Runs a sequence of requests and returns every verdict serialised.
fn run(policies: &[PolicyBinding], reqs: &[Req], outcomes: &[OutcomeRecord]) -> Vec<Vec<u8>> {
    let mut buckets = MemoryBuckets::new();
    let ovr = overrides();
    let mut now = T0;
    let mut out = Vec::new();
    for r in reqs {
        now += r.dt_ms;
        let request = build(r);
        let input = DecideInput {
            request: &request,
            policies,
            now: UnixMillis(now),
            overrides: &ovr,
            outcomes,
            approval: None,
            tenant_shadow: false,
        };
        let bytes = match decide(&input, &mut buckets) {
            Ok(v) => serde_json::to_vec(&v).unwrap(),
            Err(e) => format!("invalid: {e}").into_bytes(),
        };
        out.push(bytes);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Same inputs, same verdict and trace, byte for byte — also across separately
    /// compiled copies of the same policies.
    #[test]
    fn determinism(
        set in 0usize..3,
        reqs in prop::collection::vec(req_strategy(), 1..12),
        outcomes in prop::collection::vec(outcome_strategy(), 0..5),
    ) {
        let a = policy_sets();
        let b = policy_sets();
        let first = run(&a[set], &reqs, &outcomes);
        let second = run(&a[set], &reqs, &outcomes);
        let third = run(&b[set], &reqs, &outcomes);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first, &third);
    }

    /// With `adaptive: false` the verdict and trace are what an engine with no bias
    /// state at all gives.
    #[test]
    fn adaptive_off_is_invisible(
        set in 0usize..3,
        reqs in prop::collection::vec(req_strategy(), 1..8),
        outcomes in prop::collection::vec(outcome_strategy(), 1..5),
    ) {
        let reqs: Vec<Req> = reqs.into_iter().map(|mut r| { r.adaptive = false; r }).collect();
        let sets = policy_sets();
        prop_assert_eq!(run(&sets[set], &reqs, &outcomes), run(&sets[set], &reqs, &[]));
    }

    /// The bias never turns a block into an allow: with the adaptive layer on, the
    /// status is at least as restrictive as with it off, and identical unless the
    /// policy says `may_tighten`.
    #[test]
    fn adaptive_never_loosens(
        set in 0usize..3,
        req in req_strategy(),
        outcomes in prop::collection::vec(outcome_strategy(), 0..6),
    ) {
        let sets = policy_sets();
        let policies = &sets[set];
        let mut on = req.clone();
        on.adaptive = true;
        on.mode = Mode::Enforce;
        let mut off = on.clone();
        off.adaptive = false;
        let status = |r: &Req| {
            let request = build(r);
            let input = DecideInput {
                request: &request, policies, now: UnixMillis(T0), overrides: &[],
                outcomes: &outcomes, approval: None, tenant_shadow: false,
            };
            decide(&input, &mut MemoryBuckets::new()).map(|v| v.status)
        };
        let (s_on, s_off) = (status(&on), status(&off));
        match (s_on, s_off) {
            (Ok(a), Ok(b)) => {
                prop_assert!(a.severity() >= b.severity(), "bias loosened {b:?} to {a:?}");
                if set == 0 {
                    // csc-default: may_tighten is false, so the bias never changes a verdict.
                    prop_assert_eq!(a, b);
                }
                if b == Status::Block {
                    prop_assert_eq!(a, Status::Block);
                }
            }
            (Err(_), Err(_)) => {}
            other => prop_assert!(false, "validation differs: {other:?}"),
        }
    }

    /// The bias is always finite and within ±cap, and the survival comparison never
    /// passes what fails without it.
    #[test]
    fn bias_is_capped_and_safe(
        lr in 0.0f64..=1.0,
        cap in 0.0f64..=0.5,
        half_life_ms in 1i64..100_000_000,
        hld in 1u32..10_000,
        may_tighten in any::<bool>(),
        outcomes in prop::collection::vec(outcome_strategy(), 0..50),
        score in -1.0f64..2.0,
        threshold in 0.0f64..=1.0,
    ) {
        let settings = AdaptiveSettings { learning_rate: lr, cap, half_life_ms, half_life_decisions: hld, may_tighten };
        let b = bias(&settings, &outcomes, UnixMillis(T0));
        prop_assert!(b.is_finite() && b.abs() <= cap, "bias {b} outside ±{cap}");
        let passes = survival_passes(score, b, threshold, may_tighten);
        if score < threshold {
            prop_assert!(!passes);
        }
        if !may_tighten {
            prop_assert_eq!(passes, score >= threshold);
        }
    }

    /// GCRA from full: exactly `capacity` back to back, then one per interval, and a
    /// refused request's `retry_after_ms` is exact.
    #[test]
    fn gcra_from_full(capacity in 1u32..64, interval_ms in 1i64..120_000, start in 0i64..1_000_000) {
        let g = Gcra { capacity, interval_ms };
        let mut tat = None;
        let now = UnixMillis(T0 + start);
        for i in 0..capacity {
            let c = g.check(tat, now);
            prop_assert!(c.allowed, "permit {i} of {capacity} refused");
            prop_assert_eq!(c.available, capacity - i);
            tat = Some(c.new_tat);
        }
        let refused = g.check(tat, now);
        prop_assert!(!refused.allowed);
        prop_assert_eq!(refused.retry_after_ms, interval_ms as u64);
        for k in 1..=3i64 {
            let at = UnixMillis(now.0 + k * interval_ms);
            if interval_ms > 1 {
                let early = g.check(tat, UnixMillis(at.0 - 1));
                prop_assert!(!early.allowed);
                prop_assert_eq!(early.retry_after_ms, 1);
            }
            let c = g.check(tat, at);
            prop_assert!(c.allowed, "refill {k} refused");
            tat = Some(c.new_tat);
            let again = g.check(tat, at);
            prop_assert!(!again.allowed);
            prop_assert_eq!(again.retry_after_ms, interval_ms as u64);
        }
    }

    /// GCRA agrees with a plain token bucket (level in token-milliseconds, refilled
    /// continuously, capped at capacity) on every arrival sequence.
    #[test]
    fn gcra_matches_token_bucket_model(
        capacity in 1u32..10,
        interval_ms in 1i64..10_000,
        gaps in prop::collection::vec(0i64..20_000, 1..60),
    ) {
        let g = Gcra { capacity, interval_ms };
        let full = i64::from(capacity) * interval_ms;
        let (mut level, mut last) = (full, T0);
        let mut tat = None;
        let mut now = T0;
        for gap in gaps {
            now += gap;
            level = (level + (now - last)).min(full);
            last = now;
            let model_allowed = level >= interval_ms;
            let c = g.check(tat, UnixMillis(now));
            prop_assert_eq!(c.allowed, model_allowed);
            if model_allowed {
                level -= interval_ms;
                tat = Some(c.new_tat);
                prop_assert_eq!(i64::from(c.available), level / interval_ms + 1);
            } else {
                prop_assert_eq!(c.retry_after_ms as i64, interval_ms - level);
            }
        }
    }
}
