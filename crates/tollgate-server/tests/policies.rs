//! The policy lifecycle end to end: publish, decide, candidate with its flip report,
//! replay with the same flips, activate, roll back — every step a verifiable ledger
//! entry — and velocity rules with the history kept in the store.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::{Value, json};

const V1: &str = r#"id: payouts
description: payouts up to 5,000 are allowed
rules:
  - name: huge
    when: 'action.type == "PAYOUT" && action.amount > 5000'
    effect: block
    reason_code: PAYOUT_TOO_LARGE
"#;

/// v2 is stricter: the limit drops to 1,000.
const V2: &str = r#"id: payouts
description: payouts up to 1,000 are allowed
rules:
  - name: huge
    when: 'action.type == "PAYOUT" && action.amount > 1000'
    effect: block
    reason_code: PAYOUT_TOO_LARGE
"#;

fn payout(amount: u64) -> Value {
    json!({
        "actor": {"id": "payout-bot"},
        "action": {"type": "PAYOUT", "amount": amount},
        "policy_refs": ["payouts"],
    })
}

async fn entries(h: &Harness, admin: &str) -> Vec<Value> {
    h.get("/v1/audit/export", admin)
        .await
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn verify(h: &Harness, admin: &str) {
    h.clock.advance(2_000);
    let r = h.get("/v1/audit/verify", admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ok"], true, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_candidate_replay_activate_rollback() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("pay").await;

    // Validate without publishing.
    let r = h
        .post("/v1/policies/validate", &live, json!({"text": V1}))
        .await;
    assert_eq!(r.body["valid"], true, "{}", r.text);
    let r = h
        .post(
            "/v1/policies/validate",
            &live,
            json!({"text": V1.replace("action.amount", "action.amout.x +")}),
        )
        .await;
    assert_eq!(r.body["valid"], false, "{}", r.text);
    assert_eq!(r.body["errors"][0]["path"], "rules[0].when", "{}", r.text);

    // Publish v1 and activate it; publishing the same text again is a no-op.
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": V1, "activate": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        (r.body["version"].clone(), r.body["activated"].clone()),
        (json!(1), json!(true))
    );
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": V1, "activate": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["published"], false);
    assert_eq!(r.body["activated"], false);

    // Decide under v1: 3,000 is allowed.
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    let r = h.decide(&live, payout(500)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);

    // Publish v2 (not active): live verdicts do not change.
    let r = h
        .post("/v1/admin/policies", &admin, json!({"text": V2}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);

    // The diff names the changed rule.
    let r = h
        .get("/v1/admin/policies/payouts/diff?from=1&to=2", &admin)
        .await;
    assert_eq!(r.body["rules"]["changed"], json!(["huge"]), "{}", r.text);
    assert!(
        r.body["text_diff"]
            .as_str()
            .unwrap()
            .contains("+    when: 'action.type == \"PAYOUT\" && action.amount > 1000'")
    );

    // v2 as a candidate: v1 is still enforced, v2's verdict is recorded beside it.
    h.clock.advance(1_000);
    let window_start = common::T0 + 1_000;
    let r = h
        .post(
            "/v1/admin/policies/payouts/candidate",
            &admin,
            json!({"version": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for amount in [3000, 500, 4000, 900] {
        let r = h.decide(&live, payout(amount)).await;
        assert_eq!(r.body["status"], "ALLOW", "v1 is enforced: {}", r.text);
    }
    let r = h
        .get("/v1/admin/policies/payouts/candidate/report", &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["evaluated"], 4, "{}", r.text);
    assert_eq!(r.body["changed"], 2, "{}", r.text);
    assert_eq!(r.body["changes"], json!({"ALLOW->BLOCK": 2}), "{}", r.text);
    let report_ids: Vec<Value> = r.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision_id"].clone())
        .collect();
    assert_eq!(
        r.body["decisions"][0]["candidate"]["reason_codes"],
        json!(["PAYOUT_TOO_LARGE"])
    );

    // Replay v2 over the candidate's window: the same two flips.
    let since = tollgate_server::clock::rfc3339(window_start);
    let r = h
        .post(
            "/v1/admin/policies/payouts/replay",
            &admin,
            json!({"version": 2, "since": since}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["replayed"], 4, "{}", r.text);
    assert_eq!(r.body["reproduced"], 4, "{}", r.text);
    assert_eq!(r.body["flipped"], 2, "{}", r.text);
    let replay_ids: Vec<Value> = r.body["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision_id"].clone())
        .collect();
    assert_eq!(
        replay_ids, report_ids,
        "replay and candidate report disagree"
    );
    assert_eq!(r.body["flips"][0]["after"]["status"], "BLOCK");
    assert_eq!(r.body["flips"][0]["before"]["status"], "ALLOW");
    // Over the whole ledger: seven decisions used `payouts`, each reproduced as
    // recorded; 3,000 three times and 4,000 once flip under v2.
    let r = h
        .post(
            "/v1/admin/policies/payouts/replay",
            &admin,
            json!({"version": 2}),
        )
        .await;
    assert_eq!(r.body["replayed"], 7, "{}", r.text);
    assert_eq!(r.body["reproduced"], 7, "{}", r.text);
    assert_eq!(r.body["flipped"], 4, "{}", r.text);

    // Replaying touches no live state: decisions are unchanged.
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);

    // Activate v2: now 3,000 is blocked. The candidate equal to it is gone.
    let r = h
        .post(
            "/v1/admin/policies/payouts/activate",
            &admin,
            json!({"version": 2}),
        )
        .await;
    assert_eq!(r.body["changed"], true, "{}", r.text);
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "BLOCK", "{}", r.text);
    assert_eq!(r.body["reason_codes"], json!(["PAYOUT_TOO_LARGE"]));
    let r = h.get("/v1/admin/policies/payouts", &admin).await;
    assert_eq!(r.body["active"]["live"], 2, "{}", r.text);
    assert_eq!(r.body["candidate"]["live"], Value::Null, "{}", r.text);

    // Pinned versions still resolve; unknown ones fail closed.
    let mut pinned = payout(3000);
    pinned["policy_refs"] = json!(["payouts@1"]);
    assert_eq!(h.decide(&live, pinned).await.body["status"], "ALLOW");
    let mut missing = payout(1);
    missing["policy_refs"] = json!(["payouts@9"]);
    let r = h.decide(&live, missing).await;
    assert_eq!(r.body["status"], "BLOCK", "{}", r.text);
    assert_eq!(r.body["reason_codes"], json!(["POLICY_NOT_FOUND"]));

    // Roll back to v1: allowed again.
    let r = h
        .post(
            "/v1/admin/policies/payouts/activate",
            &admin,
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.body["changed"], true, "{}", r.text);
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);

    // Every step is a ledger entry, and the ledger verifies.
    let all = entries(&h, &admin).await;
    let published: Vec<&Value> = all
        .iter()
        .filter(|e| e["kind"] == "policy_published")
        .collect();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0]["body"]["version"], 1);
    assert_eq!(published[1]["body"]["version"], 2);
    let sha = tollgate_ledger_sha(V1);
    assert_eq!(published[0]["body"]["text_sha256"], sha);
    let activated: Vec<(Value, Value, Value)> = all
        .iter()
        .filter(|e| e["kind"] == "policy_activated")
        .map(|e| {
            (
                e["body"]["role"].clone(),
                e["body"]["version"].clone(),
                e["body"]["rollback"].clone(),
            )
        })
        .collect();
    assert_eq!(
        activated,
        vec![
            (json!("active"), json!(1), json!(false)),
            (json!("candidate"), json!(2), Value::Null),
            (json!("active"), json!(2), json!(false)),
            (json!("active"), json!(1), json!(true)),
        ]
    );
    let with_candidate = all
        .iter()
        .filter(|e| e["body"].get("candidates").is_some())
        .count();
    // The four decisions of the window and the one after the replay.
    assert_eq!(with_candidate, 5);
    verify(&h, &admin).await;
}

fn tollgate_ledger_sha(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

const VELOCITY: &str = r#"id: treasury-velocity
rules:
  - name: daily-limit
    when: 'action.type == "TRANSFER_FUNDS" && history.sum("actor", "action.amount", duration("24h")) + action.amount > 50000'
    effect: block
    reason_code: DAILY_LIMIT_EXCEEDED
reality:
  - {signal: risk, lt: 0.9}
"#;

fn transfer(actor: &str, amount: u64) -> Value {
    json!({
        "actor": {"id": actor},
        "action": {"type": "TRANSFER_FUNDS", "amount": amount},
        "policy_refs": ["treasury-velocity"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn velocity_limit_holds_exactly_through_the_server() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("treasury").await;
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": VELOCITY, "activate": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let expect = |amount: u64, status: &str| (amount, status.to_owned());
    let plan = [
        expect(20_000, "ALLOW"),
        expect(20_000, "ALLOW"),
        expect(20_000, "BLOCK"), // 60,000 > 50,000
        expect(10_000, "ALLOW"), // exactly 50,000
        expect(1, "BLOCK"),
    ];
    for (i, (amount, status)) in plan.iter().enumerate() {
        h.clock.advance(1_000);
        let r = h.decide(&live, transfer("a", *amount)).await;
        assert_eq!(r.body["status"], *status, "step {i}: {}", r.text);
        if status == "BLOCK" {
            assert_eq!(r.body["reason_codes"], json!(["DAILY_LIMIT_EXCEEDED"]));
        }
        if i == 1 {
            // Blocked at another gate in between: does not count.
            let mut risky = transfer("a", 5_000);
            risky["signals"] = json!({"risk": 0.95});
            let r = h.decide(&live, risky).await;
            assert_eq!(r.body["status"], "BLOCK", "{}", r.text);
            assert_eq!(r.body["gate"], "reality", "{}", r.text);
            // A shadow decision does not count either.
            let mut shadow = transfer("a", 5_000);
            shadow["mode"] = json!("shadow");
            let r = h.decide(&live, shadow).await;
            assert_eq!(r.body["shadow"]["would_be"], "ALLOW", "{}", r.text);
        }
    }
    // The aggregate read is in the trace.
    let r = h.decide(&live, transfer("a", 1)).await;
    let id = r.body["decision_id"].clone();
    let all = entries(&h, &admin).await;
    let entry = all.iter().find(|e| e["body"]["decision_id"] == id).unwrap();
    let trace = entry["body"]["verdict"]["trace"].to_string();
    assert!(
        trace.contains("sum(actor, action.amount, 86400000ms)"),
        "{trace}"
    );
    assert!(trace.contains("50000"), "{trace}");
    // Another actor has its own allowance; a day later the window has moved on.
    assert_eq!(
        h.decide(&live, transfer("b", 50_000)).await.body["status"],
        "ALLOW"
    );
    h.clock.advance(86_400_000);
    assert_eq!(
        h.decide(&live, transfer("a", 50_000)).await.body["status"],
        "ALLOW"
    );
    verify(&h, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_cannot_overspend_the_velocity_limit() {
    let h = Arc::new(Harness::new());
    let (admin, live, _) = h.tenant("race").await;
    h.post(
        "/v1/admin/policies",
        &admin,
        json!({"text": VELOCITY, "activate": true}),
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let h = Arc::clone(&h);
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            h.decide(&live, transfer("racer", 5_000)).await.body["status"].clone()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == "ALLOW" {
            allowed += 1;
        }
    }
    // 10 × 5,000 = 50,000: exactly ten fit, whatever the interleaving.
    assert_eq!(allowed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_shadow_switch_is_recorded_and_stops_enforcement() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("rollout").await;
    h.post(
        "/v1/admin/policies",
        &admin,
        json!({"text": V2, "activate": true}),
    )
    .await;
    assert_eq!(h.decide(&live, payout(3000)).await.body["status"], "BLOCK");
    let r = h
        .post("/v1/admin/shadow", &admin, json!({"enabled": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h.decide(&live, payout(3000)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    assert_eq!(r.body["shadow"]["would_be"], "BLOCK", "{}", r.text);
    h.post("/v1/admin/shadow", &admin, json!({"enabled": false}))
        .await;
    assert_eq!(h.decide(&live, payout(3000)).await.body["status"], "BLOCK");
    let switches: Vec<Value> = entries(&h, &admin)
        .await
        .into_iter()
        .filter(|e| e["body"]["role"] == "tenant_shadow")
        .map(|e| e["body"]["enabled"].clone())
        .collect();
    assert_eq!(switches, vec![json!(true), json!(false)]);
    // A decide key cannot flip it.
    let r = h
        .call(
            Method::POST,
            "/v1/admin/shadow",
            Some(&live),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rejects_invalid_policies_with_paths() {
    let h = Harness::new();
    let (admin, _, _) = h.tenant("bad").await;
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": "id: x\nrules:\n  - name: r\n    when: 'acton.type == 1'\n    effect: block\n    reason_code: R\n"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("rules[0].when"), "{}", r.text);
    assert!(
        h.get("/v1/admin/policies", &admin).await.body["policies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Found by Schemathesis: version numbers beyond i64 were a 500; they name nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_numbers_beyond_the_store_are_not_found_not_500() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("huge").await;
    h.post(
        "/v1/admin/policies",
        &admin,
        json!({"text": V1, "activate": true}),
    )
    .await;
    let huge = "9223372036854775808";
    for path in [
        format!("/v1/admin/policies/payouts/versions/{huge}"),
        format!("/v1/admin/policies/payouts/diff?from={huge}&to=1"),
        format!("/v1/admin/policies/payouts/diff?from=1&to={huge}"),
    ] {
        let r = h.get(&path, &admin).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    for path in [
        "/v1/admin/policies/payouts/activate",
        "/v1/admin/policies/payouts/candidate",
        "/v1/admin/policies/payouts/replay",
    ] {
        let r = h
            .call_raw(
                Method::POST,
                path,
                Some(&admin),
                Some(format!("{{\"version\": {huge}}}")),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let mut pinned = payout(1);
    pinned["policy_refs"] = json!([format!("payouts@{huge}")]);
    let r = h.decide(&live, pinned).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["reason_codes"], json!(["POLICY_NOT_FOUND"]));
}

/// Grants only where they are used: an ALLOW carries one when the request asks for
/// it, or when the policy it ran against says `grants: true`.
#[tokio::test]
async fn a_policy_or_the_request_asks_for_grants() {
    let h = Harness::new();
    let (admin, live, _) = h.tenant("pay").await;
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": V1, "activate": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h.decide(&live, payout(10)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    assert!(r.body.get("grant").is_none(), "not asked: {}", r.text);
    let mut asked = payout(11);
    asked["grant"] = json!(true);
    let r = h.decide(&live, asked).await;
    assert!(r.body["grant"].is_string(), "asked: {}", r.text);

    let with_grants = format!("{V2}grants: true\n");
    let r = h
        .post(
            "/v1/admin/policies",
            &admin,
            json!({"text": with_grants, "activate": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h.decide(&live, payout(12)).await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    assert!(r.body["grant"].is_string(), "the policy asks: {}", r.text);
    // A block never carries one.
    let r = h.decide(&live, payout(9_000)).await;
    assert_eq!(r.body["status"], "BLOCK", "{}", r.text);
    assert!(r.body.get("grant").is_none(), "{}", r.text);
}
