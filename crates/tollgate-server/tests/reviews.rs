//! Human review of escalations, and execution grants, end to end through the router.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use common::Harness;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde_json::{Value, json};
use tollgate_store::PolicyRecord;

const TREASURY: &str = r#"id: treasury
rules:
  - name: large-transfer
    when: 'action.type == "TRANSFER_FUNDS" && action.amount > 10000'
    effect: review
    reason_code: AMOUNT_OVER_LIMIT
    review: {approvers: [treasury], expires_in: 1h}
  - name: huge-transfer
    when: 'action.type == "TRANSFER_FUNDS" && action.amount > 1000000'
    effect: escalate
    reason_code: AMOUNT_HUGE
    review: {approvers: [treasury], expires_in: 1h, min_approvals: 2}
"#;

/// Stores the policy directly (publishing through the API is the policy-lifecycle
/// issue's) and returns (admin, agent key, reviewer key, second reviewer, outsider).
async fn setup(h: &Harness) -> (String, String, String, String, String) {
    let (admin, agent, _) = h.tenant("bank").await;
    h.state
        .store()
        .put_policy_version(&PolicyRecord {
            tenant: "bank".into(),
            policy_id: "treasury".into(),
            version: 1,
            text: TREASURY.into(),
            text_hash: tollgate_core::digest::sha256_hex(TREASURY.as_bytes()),
            created_ms: 0,
        })
        .unwrap();
    let mut keys = Vec::new();
    for groups in [
        json!(["treasury"]),
        json!(["treasury"]),
        json!(["marketing"]),
    ] {
        let r = h
            .post("/v1/admin/keys", &admin, json!({"environment": "live", "scopes": ["review"], "groups": groups, "name": "reviewer"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        keys.push(r.body["secret"].as_str().unwrap().to_owned());
    }
    (
        admin,
        agent,
        keys[0].clone(),
        keys[1].clone(),
        keys[2].clone(),
    )
}

fn transfer(amount: u64) -> Value {
    json!({
        "actor": {"id": "treasury-bot"},
        "action": {"type": "TRANSFER_FUNDS", "amount": amount, "to": "ACME-123"},
        "context": {"workflow": "payables"},
        "policy_refs": ["treasury@1"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_required_then_approved_allows_exactly_once() {
    let h = Arc::new(Harness::new());
    let (_admin, agent, reviewer, _second, outsider) = setup(&h).await;
    let r = h.decide(&agent, transfer(25_000)).await;
    assert_eq!(r.body["status"], "REVIEW_REQUIRED", "{}", r.text);
    assert_eq!(r.body["reason_codes"], json!(["AMOUNT_OVER_LIMIT"]));
    assert!(r.body.get("grant").is_none(), "no grant without an ALLOW");
    let decision = r.body["decision_id"].as_str().unwrap().to_owned();
    let review = r.body["review_id"].as_str().unwrap().to_owned();

    // The dossier shows the pending review.
    let d = h.get(&format!("/v1/dossiers/{decision}"), &agent).await;
    assert_eq!(d.body["reviews"][0]["review_id"], json!(review));
    assert_eq!(d.body["reviews"][0]["status"], "pending");

    // The agent waits; a reviewer in the right group approves meanwhile.
    let waiter = {
        let h = Arc::clone(&h);
        let (agent, decision) = (agent.clone(), decision.clone());
        tokio::spawn(async move {
            h.get(&format!("/v1/decisions/{decision}/wait?timeout=20"), &agent)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = h
        .post(
            &format!("/v1/reviews/{review}/approve"),
            &outsider,
            json!({"comment": "not mine"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an outsider group cannot approve"
    );
    let r = h
        .post(&format!("/v1/reviews/{review}/approve"), &agent, json!({}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the agent's key has no review scope"
    );
    let r = h
        .post(
            &format!("/v1/reviews/{review}/approve"),
            &reviewer,
            json!({"comment": "invoice checked"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    let waited = waiter.await.unwrap();
    assert_eq!(waited.body["resolved"], true, "{}", waited.text);
    assert_eq!(waited.body["review"]["status"], "approved");

    // Re-submitting the same request is allowed once, at gate review. Asking for a
    // grant does not change which request it is.
    let mut again = transfer(25_000);
    again["grant"] = json!(true);
    let r = h.decide(&agent, again).await;
    assert_eq!(
        (r.body["status"].clone(), r.body["gate"].clone()),
        (json!("ALLOW"), json!("review")),
        "{}",
        r.text
    );
    assert_eq!(r.body["reason_codes"], json!(["REVIEW_APPROVED"]));
    assert!(r.body["grant"].is_string());
    let allowed = r.body["decision_id"].as_str().unwrap().to_owned();
    let d = h.get(&format!("/v1/dossiers/{allowed}"), &agent).await;
    let trace = d.body["trace"].to_string();
    assert!(
        trace.contains(&review),
        "the ALLOW names the review: {trace}"
    );
    assert!(trace.contains("approvers"));
    // A second re-submit is not covered by the same approval.
    let r = h.decide(&agent, transfer(25_000)).await;
    assert_eq!(r.body["status"], "REVIEW_REQUIRED");
    // A different amount is not covered either.
    let r = h.decide(&agent, transfer(26_000)).await;
    assert_eq!(r.body["status"], "REVIEW_REQUIRED");
    // The review is now consumed and cannot be approved again.
    let r = h
        .post(
            &format!("/v1/reviews/{review}/approve"),
            &reviewer,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn expiry_rejection_and_distinct_approvers() {
    let h = Harness::new();
    let (admin, agent, reviewer, second, _) = setup(&h).await;
    // Expired approvals do not allow.
    let r = h.decide(&agent, transfer(30_000)).await;
    let review = r.body["review_id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.post(
            &format!("/v1/reviews/{review}/approve"),
            &reviewer,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
    h.clock.advance(3_600_001);
    let r = h.decide(&agent, transfer(30_000)).await;
    assert_eq!(
        r.body["status"], "REVIEW_REQUIRED",
        "an expired approval does not allow"
    );
    let r = h.get(&format!("/v1/reviews/{review}"), &reviewer).await;
    assert_eq!(r.body["status"], "expired");
    // Rejection is final.
    let r = h.decide(&agent, transfer(40_000)).await;
    let review = r.body["review_id"].as_str().unwrap().to_owned();
    let r = h
        .post(
            &format!("/v1/reviews/{review}/reject"),
            &reviewer,
            json!({"comment": "unknown payee"}),
        )
        .await;
    assert_eq!(r.body["status"], "rejected", "{}", r.text);
    assert_eq!(
        h.post(&format!("/v1/reviews/{review}/approve"), &second, json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        h.decide(&agent, transfer(40_000)).await.body["status"],
        "REVIEW_REQUIRED"
    );
    // Two distinct approvers are needed for an escalation; the same key twice is refused.
    let r = h.decide(&agent, transfer(2_000_000)).await;
    assert_eq!(r.body["status"], "ESCALATE", "{}", r.text);
    let review = r.body["review_id"].as_str().unwrap().to_owned();
    let r = h
        .post(
            &format!("/v1/reviews/{review}/approve"),
            &reviewer,
            json!({}),
        )
        .await;
    assert_eq!(r.body["status"], "pending");
    let r = h
        .post(
            &format!("/v1/reviews/{review}/approve"),
            &reviewer,
            json!({}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "the same reviewer cannot approve twice"
    );
    let r = h
        .post(&format!("/v1/reviews/{review}/approve"), &second, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["approvals"].as_array().unwrap().len(), 2);
    let r = h.decide(&agent, transfer(2_000_000)).await;
    assert_eq!(r.body["gate"], "review");
    // Every opening and resolution is in the tenant's ledger, and it verifies.
    let export = h.get("/v1/audit/export", &admin).await.text;
    assert_eq!(export.matches("\"kind\":\"review_opened\"").count(), 5);
    // approved (then expired), rejected, approved.
    assert_eq!(export.matches("\"kind\":\"review_resolved\"").count(), 4);
    let v = h.get("/v1/audit/verify", &admin).await;
    assert_eq!(v.body["ok"], true, "{}", v.text);
}

fn verify_jws_independently(token: &str, jwks: &Value) -> Value {
    // A second implementation: split, decode, check EdDSA with ed25519-dalek directly.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let x: [u8; 32] = B64URL
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&x).unwrap();
    let sig: [u8; 64] = B64URL.decode(parts[2]).unwrap().try_into().unwrap();
    key.verify(
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &Signature::from_bytes(&sig),
    )
    .expect("the grant verifies offline");
    serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn grants_verify_offline_and_work_once_for_the_authorised_action() {
    let h = Harness::new();
    let req = json!({"actor": {"id": "bot"}, "action": {"type": "OPEN_POSITION", "symbol": "BTC"}, "context": {"desk": "crypto"}, "signals": {"volatility": 0.05}, "grant": true});
    let r = h.decide(&h.test_key, req.clone()).await;
    assert_eq!(r.body["status"], "ALLOW");
    let grant = r.body["grant"].as_str().unwrap().to_owned();
    let jwks = h
        .call(
            axum::http::Method::GET,
            "/.well-known/jwks.json",
            None,
            None,
        )
        .await
        .body;
    let claims = verify_jws_independently(&grant, &jwks);
    assert_eq!(claims["decision_id"], r.body["decision_id"]);
    assert_eq!(claims["sub"], "default");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    // A changed action is refused.
    let mut other = req.clone();
    other["action"]["symbol"] = json!("ETH");
    let body = json!({"grant": grant, "actor": other["actor"], "action": other["action"], "context": other["context"]});
    let r = h.post("/v1/grants/consume", &h.test_key, body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"], "invalid_grant");
    // A tampered token is refused.
    let mut tampered = grant.clone();
    tampered.replace_range(tampered.len() - 5.., "AAAAA");
    let r = h
        .post(
            "/v1/grants/consume",
            &h.test_key,
            json!({"grant": tampered}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A client cannot pre-claim the grant's single use by sending `grant:<jti>` as its
    // own idempotency key: client keys live in their own namespace.
    let squat = h
        .call_raw(
            axum::http::Method::POST,
            "/v1/decisions",
            Some(&h.test_key),
            Some(req.to_string()),
            &[(
                "idempotency-key",
                &format!("grant:{}", claims["jti"].as_str().unwrap()),
            )],
        )
        .await;
    assert_eq!(squat.status, StatusCode::OK, "{}", squat.text);
    // The authorised action is accepted once.
    let body = json!({"grant": grant, "actor": req["actor"], "action": req["action"], "context": req["context"]});
    let r = h
        .post("/v1/grants/consume", &h.test_key, body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["valid"], true);
    let r = h.post("/v1/grants/consume", &h.test_key, body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "second consume");
    // After expiry a fresh grant is refused.
    let r = h.decide(&h.test_key, req.clone()).await;
    let grant = r.body["grant"].as_str().unwrap().to_owned();
    h.clock.advance(61_000);
    let r = h
        .post("/v1/grants/consume", &h.test_key, json!({"grant": grant}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["message"].as_str().unwrap().contains("expired"));
    // Shadow decisions carry no grant.
    let mut shadow = req;
    shadow["mode"] = json!("shadow");
    assert!(
        h.decide(&h.test_key, shadow)
            .await
            .body
            .get("grant")
            .is_none()
    );
}

/// A wait may ask for up to 60 s; the request timeout must not cut it off into a 503.
/// (Simulated time: the 45 s pass at once, as would a 30 s request timeout.)
#[tokio::test]
async fn a_long_wait_is_answered_at_its_timeout_not_cut_off() {
    let h = Harness::new();
    let (_admin, agent, _reviewer, _second, _outsider) = setup(&h).await;
    let r = h.decide(&agent, transfer(25_000)).await;
    assert_eq!(r.body["status"], "REVIEW_REQUIRED", "{}", r.text);
    let decision = r.body["decision_id"].as_str().unwrap().to_owned();
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let waited = h
        .get(&format!("/v1/decisions/{decision}/wait?timeout=45"), &agent)
        .await;
    assert_eq!(waited.status, StatusCode::OK, "{}", waited.text);
    assert_eq!(waited.body["resolved"], false, "{}", waited.text);
    assert_eq!(waited.body["review"]["status"], "pending");
    assert!(started.elapsed() >= std::time::Duration::from_secs(45));
}
