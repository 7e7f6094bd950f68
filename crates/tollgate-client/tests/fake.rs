//! `FakeClient` with the semantics of the Python SDK's `FakeCSC`: always permits by
//! default, replays canned verdicts in order and repeats the last, records every
//! call, and behaves like the real client for enforce, retry and gate.

use std::time::Duration;

use tollgate_client::testing::{FakeClient, blocked, escalated, permitted, throttled};
use tollgate_client::{Decision, DecisionPoint, DecisionRequest, Error, Gate, RetryPolicy, Status};

fn trade(symbol: &str) -> DecisionRequest {
    DecisionRequest::new("OPEN_POSITION")
        .context_field("feed", "trading")
        .action_field("symbol", symbol)
        .signal("volatility", 0.05)
        .signal("confidence", 0.95)
        .source("agent-1")
}

/// Agent code generic over the decision point: places the orders it may.
async fn place_orders(point: &impl DecisionPoint, symbols: &[&str]) -> Vec<String> {
    let mut placed = Vec::new();
    for s in symbols {
        if let Ok(order) = point.gate(&trade(s), async { format!("order:{s}") }).await {
            placed.push(order);
        }
    }
    placed
}

#[tokio::test]
async fn with_no_verdicts_it_always_permits() {
    let fake = FakeClient::new();
    for i in 0..5 {
        let d = fake.decide(&trade("BTC")).await.unwrap();
        assert_eq!(
            (d.status, d.gate),
            (Status::Allow, Gate::Permit),
            "call {i}"
        );
        assert_eq!(d.decision_id, format!("dec_fake_{}", i + 1));
    }
    assert_eq!(fake.call_count(), 5);
    assert!(
        FakeClient::with_verdicts([])
            .enforce(&trade("X"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn replays_in_order_then_repeats_the_last() {
    let fake = FakeClient::with_verdicts([
        permitted("first-call"),
        blocked(Gate::Reality, "volatility above 0.15"),
        blocked(Gate::Throttle, "no tokens"),
    ]);
    let gates: Vec<Gate> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(fake.decide(&trade("BTC")).await.unwrap().gate);
        }
        out
    };
    assert_eq!(
        gates,
        [
            Gate::Permit,
            Gate::Reality,
            Gate::Throttle,
            Gate::Throttle,
            Gate::Throttle
        ]
    );
    let first = fake.calls();
    assert_eq!(first.len(), 5);
}

#[tokio::test]
async fn records_every_call() {
    let fake = FakeClient::new();
    place_orders(&fake, &["BTC", "ETH"]).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].context["feed"], "trading");
    assert_eq!(calls[0].action["symbol"], "BTC");
    assert_eq!(calls[1].action["symbol"], "ETH");
    assert_eq!(calls[1].source.as_deref(), Some("agent-1"));
    // Clones share the record (hand one to the agent, inspect the other).
    let shared = fake.clone();
    shared.decide(&trade("SOL")).await.unwrap();
    assert_eq!(fake.call_count(), 3);
}

#[tokio::test]
async fn enforce_raises_blocked_with_the_gate_and_throttled_is_distinguished() {
    let fake = FakeClient::with_verdicts([
        blocked(Gate::Policy, "survival score below threshold"),
        throttled(4_200),
        escalated("rev_1", "needs a treasurer"),
    ]);
    let e = fake.enforce(&trade("BTC")).await.unwrap_err();
    let b = e.blocked().unwrap();
    assert_eq!(b.gate, Gate::Policy);
    assert_eq!(b.explanation, "survival score below threshold");
    assert!(!e.is_throttled());
    let e = fake.enforce(&trade("BTC")).await.unwrap_err();
    assert!(e.is_throttled(), "ThrottledError is a BlockedError");
    assert_eq!(
        e.blocked().unwrap().retry_after,
        Some(Duration::from_millis(4_200))
    );
    let e = fake.enforce(&trade("BTC")).await.unwrap_err();
    let b = e.blocked().unwrap();
    assert_eq!(b.status, Status::Escalate);
    assert_eq!(b.review_id.as_deref(), Some("rev_1"));
}

#[tokio::test]
async fn check_with_retry_retries_only_throttle() {
    let retry = RetryPolicy {
        max_attempts: 4,
        base_backoff: Duration::from_secs(5),
        max_wait: Duration::from_secs(30),
    };
    // Throttle, throttle, permit: three calls, waits as the server said.
    let fake = FakeClient::with_verdicts([throttled(1_000), throttled(2_500), permitted("ok")]);
    let d = fake.decide_with_retry(&trade("BTC"), retry).await.unwrap();
    assert!(d.is_allowed());
    assert_eq!(fake.call_count(), 3);
    assert_eq!(
        fake.pauses(),
        [Duration::from_millis(1_000), Duration::from_millis(2_500)]
    );
    // Policy / reality blocks return at once.
    let fake = FakeClient::with_verdicts([blocked(Gate::Reality, "volatility")]);
    let d = fake.decide_with_retry(&trade("BTC"), retry).await.unwrap();
    assert_eq!(d.gate, Gate::Reality);
    assert_eq!(fake.call_count(), 1);
    assert!(fake.pauses().is_empty());
    // Without retry_after_ms the backoff is linear: base * attempt.
    let fake = FakeClient::with_verdicts([blocked(Gate::Throttle, "no tokens")]);
    let d = fake.decide_with_retry(&trade("BTC"), retry).await.unwrap();
    assert!(d.is_throttled(), "the last verdict is returned");
    assert_eq!(fake.call_count(), 4);
    assert_eq!(
        fake.pauses(),
        [
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(15)
        ]
    );
}

#[tokio::test]
async fn retries_are_new_decisions_under_a_derived_idempotency_key() {
    let fake = FakeClient::with_verdicts([throttled(1), permitted("ok")]);
    let req = trade("BTC").idempotency_key("order-9");
    fake.decide_with_retry(&req, RetryPolicy::attempts(3))
        .await
        .unwrap();
    let keys: Vec<_> = fake
        .calls()
        .into_iter()
        .map(|c| c.idempotency_key.unwrap())
        .collect();
    assert_eq!(keys, ["order-9", "order-9-retry-1"]);
}

#[tokio::test]
async fn gate_runs_only_when_permitted() {
    let fake = FakeClient::with_verdicts([
        permitted("a"),
        blocked(Gate::Override, "kill switch"),
        permitted("c"),
    ]);
    let placed = place_orders(&fake, &["A", "B", "C"]).await;
    assert_eq!(placed, ["order:A", "order:C"]);
}

#[tokio::test]
async fn unreachable_fails_closed_like_the_real_client() {
    let fake = FakeClient::unreachable();
    let e = fake.enforce(&trade("BTC")).await.unwrap_err();
    let b = e.blocked().unwrap();
    assert!(b.is_fail_closed());
    assert_eq!(b.gate, Gate::Unavailable);
    assert!(place_orders(&fake, &["A"]).await.is_empty());
    assert!(matches!(e, Error::Blocked(_)));
}

#[tokio::test]
async fn verdicts_keep_their_ids() {
    let fake =
        FakeClient::with_verdicts([Decision::new(Status::Allow, Gate::Permit).with_id("dec_x")]);
    assert_eq!(fake.decide(&trade("A")).await.unwrap().decision_id, "dec_x");
}
