//! Idempotency, outcomes and the adaptive bias, kill switches, ledger failure.

mod common;
#[path = "common/faulty_store.rs"]
mod faulty_store;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Harness, in_band};
use ed25519_dalek::{Signer as _, SigningKey};
use faulty_store::{FaultyStore, faulty_harness};
use serde_json::{Value, json};

async fn ledger_size(h: &Harness, admin: &str) -> usize {
    h.get("/v1/audit/export", admin).await.text.lines().count()
}

async fn decisions_in_ledger(h: &Harness, admin: &str) -> usize {
    h.get("/v1/audit/export", admin)
        .await
        .text
        .lines()
        .filter(|l| l.contains("\"kind\":\"decision\""))
        .count()
}

fn strip(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for k in ["signature", "idempotency_replayed"] {
        o.remove(k);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_duplicates_make_one_decision_one_token_one_quota_unit() {
    let h = Arc::new(Harness::new());
    let (admin, live, _) = h.tenant("idem").await;
    let before = decisions_in_ledger(&h, &admin).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let h = Arc::clone(&h);
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            h.call_raw(
                Method::POST,
                "/v1/decisions",
                Some(&live),
                Some(in_band().to_string()),
                &[("idempotency-key", "order-42")],
            )
            .await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        bodies.push(r.body);
    }
    let replayed = bodies
        .iter()
        .filter(|b| b["idempotency_replayed"] == json!(true))
        .count();
    assert_eq!(replayed, 99, "one original, 99 replays");
    let first = strip(bodies[0].clone());
    assert!(
        bodies.iter().all(|b| strip(b.clone()) == first),
        "100 identical answers"
    );
    assert_eq!(
        decisions_in_ledger(&h, &admin).await,
        before + 1,
        "exactly one decision recorded"
    );
    // One token: csc-default's bucket of 4 has 3 left.
    for i in 0..3 {
        let r = h.decide(&live, in_band()).await;
        assert_eq!(r.body["status"], "ALLOW", "token {i}");
    }
    assert_eq!(h.decide(&live, in_band()).await.body["gate"], "throttle");
    // One quota unit: 1 + 3 + 1 metered decisions.
    let t = h.get("/v1/admin/tenants", &admin).await;
    assert_eq!(t.body["tenants"][0]["usage_this_month"], 5, "{}", t.text);
    // The same key with a different body is refused and records nothing.
    let mut other = in_band();
    other["action"]["symbol"] = json!("ETH");
    let r = h
        .call_raw(
            Method::POST,
            "/v1/decisions",
            Some(&live),
            Some(other.to_string()),
            &[("idempotency-key", "order-42")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"], "idempotency_key_reuse");
    assert_eq!(decisions_in_ledger(&h, &admin).await, before + 5);
    // The body field works like the header.
    let mut with_field = in_band();
    with_field["idempotency_key"] = json!("order-43");
    let a = h.decide(&live, with_field.clone()).await;
    let b = h.decide(&live, with_field).await;
    assert_eq!(b.body["idempotency_replayed"], true);
    assert_eq!(a.body["decision_id"], b.body["decision_id"]);
}

struct Source {
    key: SigningKey,
}

impl Source {
    fn new(seed: u8) -> Self {
        Source {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }
    fn public_b64(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }
    /// Signs a report the way docs/engine.md defines it (RFC 8785 of the eight fields).
    fn sign(&self, mut report: Value) -> Value {
        let mut signed = serde_json::Map::new();
        for f in [
            "confidence",
            "context_type",
            "is_correction",
            "is_final",
            "magnitude",
            "outcome_observed_at",
            "source",
            "stimulus_id",
        ] {
            signed.insert(f.into(), report[f].clone());
        }
        let bytes = tollgate_core::digest::canonical_bytes(&Value::Object(signed)).unwrap();
        report["signature"] = json!(B64.encode(self.key.sign(&bytes).to_bytes()));
        report
    }
}

fn report(stimulus: &str, magnitude: f64, observed: &str) -> Value {
    json!({
        "stimulus_id": stimulus, "magnitude": magnitude, "confidence": 1.0,
        "source": "desk-1", "context_type": "OPEN_POSITION",
        "outcome_observed_at": observed, "is_final": true, "is_correction": false,
    })
}

#[tokio::test]
async fn outcomes_are_integrity_checked_and_move_the_bias_within_the_cap() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("out").await;
    let src = Source::new(7);
    let r = h
        .post(
            "/v1/admin/sources",
            &admin,
            json!({"id": "desk-1", "public_key": src.public_b64()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut req = in_band();
    req["source"] = json!("desk-1");
    req["adaptive"] = json!(true);
    let first = h.decide(&live, req.clone()).await;
    // The answer is sent as its RFC 8785 bytes, where 0.0 is written `0`.
    assert_eq!(
        first.body["adaptive_bias"].as_f64(),
        Some(0.0),
        "{}",
        first.text
    );
    let stim = first.body["decision_id"].as_str().unwrap().to_owned();
    h.clock.advance(1000);
    let observed = "2026-03-10T12:00:00.500Z";

    // Each integrity rule rejects with 422 and changes nothing.
    let size = ledger_size(&h, &admin).await;
    let other = Source::new(9);
    let cases: Vec<(&str, Value)> = vec![
        ("bad signature", other.sign(report(&stim, -1.0, observed))),
        ("unregistered source", {
            let mut r = report(&stim, -1.0, observed);
            r["source"] = json!("nobody");
            src.sign(r)
        }),
        (
            "unknown stimulus",
            src.sign(report(
                "dec_00000000000000000000000000000000",
                -1.0,
                observed,
            )),
        ),
        (
            "observed before the decision",
            src.sign(report(&stim, -1.0, "2026-03-10T11:59:59Z")),
        ),
        (
            "observed in the future",
            src.sign(report(&stim, -1.0, "2026-03-10T13:00:00Z")),
        ),
        ("context type mismatch", {
            let mut r = report(&stim, -1.0, observed);
            r["context_type"] = json!("CLOSE_POSITION");
            src.sign(r)
        }),
        ("wrong public key in the body", {
            let mut r = src.sign(report(&stim, -1.0, observed));
            r["public_key"] = json!(other.public_b64());
            r
        }),
        ("tampered after signing", {
            let mut r = src.sign(report(&stim, -1.0, observed));
            r["magnitude"] = json!(1.0);
            r
        }),
    ];
    for (what, body) in cases {
        let r = h.post("/v1/outcomes", &live, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            r.text
        );
        assert_eq!(r.body["error"], "outcome_rejected", "{what}");
    }
    assert_eq!(
        ledger_size(&h, &admin).await,
        size,
        "rejected outcomes change nothing"
    );
    let r = h.decide(&live, req.clone()).await;
    assert_eq!(
        r.body["adaptive_bias"].as_f64(),
        Some(0.0),
        "no accepted outcome yet"
    );

    // A valid report is accepted (201), recorded, and moves the next opted-in bias.
    let r = h
        .post(
            "/v1/outcomes",
            &live,
            src.sign(report(&stim, -1.0, observed)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["accepted"], true);
    assert_eq!(r.body["status"], "accepted");
    let after = h.get("/v1/audit/export", &admin).await.text;
    assert!(after.contains("\"kind\":\"outcome_accepted\""));
    h.clock.advance(5000);
    let r = h.decide(&live, req.clone()).await;
    let bias = r.body["adaptive_bias"].as_f64().unwrap();
    assert!(
        (-0.05..0.0).contains(&bias),
        "bias {bias} moved down within the cap"
    );
    // Without opting in, nothing about the bias appears.
    let mut plain = req.clone();
    plain["adaptive"] = json!(false);
    assert!(
        h.decide(&live, plain)
            .await
            .body
            .get("adaptive_bias")
            .is_none()
    );
    // A second final outcome is refused; a correction supersedes.
    let r = h
        .post(
            "/v1/outcomes",
            &live,
            src.sign(report(&stim, 1.0, observed)),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut correction = report(&stim, 1.0, observed);
    correction["is_correction"] = json!(true);
    let r = h.post("/v1/outcomes", &live, src.sign(correction)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    h.clock.advance(5000);
    let r = h.decide(&live, req.clone()).await;
    let bias = r.body["adaptive_bias"].as_f64().unwrap();
    assert!(
        bias > 0.0 && bias <= 0.05,
        "the correction replaced the harmful outcome: {bias}"
    );
    // Many harmful outcomes still stay within the cap.
    for i in 0..20 {
        h.clock.advance(5000);
        let d = h.decide(&live, req.clone()).await;
        let id = d.body["decision_id"].as_str().unwrap().to_owned();
        h.clock.advance(10);
        let obs = tollgate_server::clock::rfc3339(h.state.now_ms() - 5);
        let r = h
            .post("/v1/outcomes", &live, src.sign(report(&id, -1.0, &obs)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "outcome {i}: {}", r.text);
    }
    h.clock.advance(5000);
    let bias = h.decide(&live, req).await.body["adaptive_bias"]
        .as_f64()
        .unwrap();
    assert!((bias - -0.05).abs() < 1e-12, "clamped at -cap: {bias}");
    // The dossier lists the decision's outcomes.
    let d = h.get(&format!("/v1/dossiers/{stim}"), &live).await;
    assert_eq!(d.body["outcomes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn kill_switch_blocks_at_once_and_clearing_restores() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("kill").await;
    assert_eq!(h.decide(&live, in_band()).await.body["status"], "ALLOW");
    let r = h
        .post(
            "/v1/admin/overrides",
            &admin,
            json!({"scope": "actor", "value": "agent-1", "reason": "compromised"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = h.decide(&live, in_band()).await;
    assert_eq!(
        (r.body["status"].clone(), r.body["gate"].clone()),
        (json!("BLOCK"), json!("override"))
    );
    assert!(
        r.body["explanation"]
            .as_str()
            .unwrap()
            .contains("compromised")
    );
    let mut other = in_band();
    other["actor"]["id"] = json!("agent-2");
    assert_eq!(h.decide(&live, other).await.body["status"], "ALLOW");
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/admin/overrides/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(h.decide(&live, in_band()).await.body["status"], "ALLOW");
    // Tenant-wide switch.
    let r = h
        .post(
            "/v1/admin/overrides",
            &admin,
            json!({"scope": "tenant", "reason": "stop everything"}),
        )
        .await;
    let all = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.decide(&live, in_band()).await.body["gate"], "override");
    h.call(
        Method::DELETE,
        &format!("/v1/admin/overrides/{all}"),
        Some(&admin),
        None,
    )
    .await;
    let export = h.get("/v1/audit/export", &admin).await.text;
    assert_eq!(export.matches("\"kind\":\"override_set\"").count(), 2);
    assert_eq!(export.matches("\"kind\":\"override_cleared\"").count(), 2);
    let v = h.get("/v1/audit/verify", &admin).await;
    assert_eq!(v.body["ok"], true, "{}", v.text);
}

#[tokio::test]
async fn a_ledger_that_cannot_be_written_gets_503_and_no_verdict() {
    let (h, store) = faulty_harness(|c| c.ledger_timeout_ms = 300);
    assert_eq!(
        h.decide(&h.test_key, in_band()).await.status,
        StatusCode::OK
    );
    // The ledger cannot be written: appends are held back. (A lock on the SQLite
    // database no longer does that: an append is durable in the store's segment file
    // and the database is written after the ack.)
    store.stall_ledger();
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["error"], "ledger_unavailable");
    assert!(r.body.get("status").is_none(), "no verdict in a 503");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    store.release_ledger();
}

/// A server with one processing slot (configured further by `edit`), and a first
/// decision that holds it: its ledger append is held back (released with
/// `release_ledger` on the returned store).
async fn hold_the_only_slot(
    edit: impl FnOnce(&mut tollgate_server::Config),
) -> (
    Arc<Harness>,
    Arc<FaultyStore>,
    tokio::task::JoinHandle<common::Reply>,
) {
    let (h, store) = faulty_harness(|c| {
        c.max_concurrency = 1;
        edit(c);
    });
    let h = Arc::new(h);
    store.stall_ledger();
    let first = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.decide(&h.test_key, in_band()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    (h, store, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_bound_requests_get_503_after_the_admission_wait() {
    let (h, store, first) = hold_the_only_slot(|c| {
        c.admission_wait_ms = 100;
        c.ledger_timeout_ms = 1500;
    })
    .await;
    let t = std::time::Instant::now();
    let second = h.decide(&h.test_key, in_band()).await;
    let waited = t.elapsed();
    assert_eq!(
        second.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        second.text
    );
    assert_eq!(second.body["error"], "overloaded");
    assert_eq!(second.headers.get("retry-after").unwrap(), "1");
    // It waited for a slot (the 100 ms admission wait) before it was refused; the
    // first request still holds the slot for up to 1.5 s.
    assert!(
        waited >= std::time::Duration::from_millis(100),
        "refused after {waited:?}"
    );
    store.release_ledger();
    // The held request completes once the ledger is released (within its ledger timeout).
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["status"], "ALLOW");
    // Capacity is back.
    assert_eq!(
        h.decide(&h.test_key, in_band()).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_is_admitted_when_a_slot_frees_and_the_line_is_bounded() {
    let (h, store, first) = hold_the_only_slot(|c| {
        c.max_connections = 1;
        c.admission_wait_ms = 5_000;
        c.ledger_timeout_ms = 3_000;
    })
    .await;
    let second = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.decide(&h.test_key, in_band()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second request waits for the slot"
    );
    // The waiting line holds at most `max_connections` (one): a third request is
    // refused at once rather than after the 5 s wait.
    let t = std::time::Instant::now();
    let third = h.decide(&h.test_key, in_band()).await;
    assert_eq!(
        third.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        third.text
    );
    assert_eq!(third.body["error"], "overloaded");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "refused after {:?}, not at once",
        t.elapsed()
    );
    assert!(!second.is_finished(), "the second request still waits");
    // The stall ends: the first completes, then the waiting one is admitted.
    store.release_ledger();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = second.await.unwrap();
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(second.body["status"], "ALLOW");
}

/// A request that outlives the request timeout is told so (`timeout`), not that the
/// server is overloaded. (Simulated time: the 75 s pass at once while the ledger's
/// appends are held back.)
#[tokio::test]
async fn a_request_past_the_request_timeout_gets_503_timeout_not_overloaded() {
    let (h, store) = faulty_harness(|c| c.ledger_timeout_ms = 600_000);
    store.stall_ledger();
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["error"], "timeout", "{}", r.text);
    assert!(r.body.get("status").is_none(), "no verdict in a 503");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(tollgate_server::REQUEST_TIMEOUT_S)
    );
    store.release_ledger();
}
