//! Every client method and every gate against a real Tollgate on a real socket.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, in_band};
use serde_json::json;
use tollgate_client::admin::{NewKey, NewSource, ReviewStatus};
use tollgate_client::verify::{self, VerifyError};
use tollgate_client::{
    Decision, DecisionPoint, DecisionRequest, Error, Failure, Gate, Mode, OutcomeReport,
    RetryPolicy, SigningKey, Status,
};

/// Counts the decisions a real client asks for.
struct Counting<D> {
    inner: D,
    calls: AtomicUsize,
}

impl<D: DecisionPoint> DecisionPoint for Counting<D> {
    fn decide(
        &self,
        request: &DecisionRequest,
    ) -> impl Future<Output = Result<Decision, Error>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.decide(request)
    }
}

#[tokio::test]
async fn permit_is_signed_recorded_and_provable() {
    let server = Server::start().await;
    let client = server.client();
    let d = client.decide(&in_band("OPEN_POSITION")).await.unwrap();
    assert_eq!((d.status, d.gate), (Status::Allow, Gate::Permit));
    assert!(d.decision_id.starts_with("dec_"), "{}", d.decision_id);
    assert_eq!(d.environment.as_deref(), Some("test"));
    assert_eq!(d.policy.as_ref().unwrap().id, "csc-default");
    assert!(!d.is_fail_open());
    assert_eq!(
        d.dossier_url.as_deref(),
        Some(format!("{}/v1/dossiers/{}", server.url, d.decision_id).as_str())
    );
    // Offline checks from the JWKS.
    let jwks = client.jwks().await.unwrap();
    verify::decision_signature(&d, &jwks).unwrap();
    let dossier = client.dossier(&d.decision_id).await.unwrap();
    let verified = verify::dossier_of(&d, &dossier, &jwks).unwrap();
    assert_eq!(verified.tenant, "default");
    client.verify(&d).await.unwrap();
    // The recorded decision reads back, signed.
    let again = client.get_decision(&d.decision_id).await.unwrap();
    assert_eq!(again.decision_id, d.decision_id);
    assert_eq!(again.status, Status::Allow);
    verify::decision_signature(&again, &jwks).unwrap();
    assert!(client.health().await.unwrap()["status"] == "ok");
}

#[tokio::test]
async fn tampering_is_detected_offline() {
    let server = Server::start().await;
    let client = server.client();
    let d = client.decide(&in_band("OPEN_POSITION")).await.unwrap();
    let jwks = client.jwks().await.unwrap();
    // A changed verdict no longer matches its signature.
    let mut forged = d.clone();
    forged.raw["status"] = json!("ALLOW");
    forged.raw["explanation"] = json!("trust me");
    assert_eq!(
        verify::decision_signature(&forged, &jwks),
        Err(VerifyError::Mismatch)
    );
    // Another server's keys are not trusted.
    let other = Server::start().await;
    let other_jwks = other.client().jwks().await.unwrap();
    assert!(matches!(
        verify::decision_signature(&d, &other_jwks),
        Err(VerifyError::UnknownKey(_))
    ));
    let dossier = client.dossier(&d.decision_id).await.unwrap();
    assert_eq!(
        verify::dossier(&dossier, &other_jwks),
        Err(VerifyError::UntrustedCheckpoint)
    );
    // A changed entry no longer hashes to its entry_hash.
    let mut bad = dossier.clone();
    bad.proof.entry.body["verdict"]["status"] = json!("BLOCK");
    assert!(matches!(
        verify::dossier(&bad, &jwks),
        Err(VerifyError::Dossier(_))
    ));
    // Another decision's dossier is not this decision's record.
    let d2 = client.decide(&in_band("OPEN_POSITION")).await.unwrap();
    assert!(matches!(
        verify::dossier_of(&d2, &dossier, &jwks),
        Err(VerifyError::NotThisDecision(_))
    ));
}

#[tokio::test]
async fn reality_gate_blocks_and_enforce_carries_everything() {
    let server = Server::start().await;
    let client = server.client();
    let req = in_band("OPEN_POSITION").signal("volatility", 0.4);
    let d = client.decide(&req).await.unwrap();
    assert_eq!((d.status, d.gate), (Status::Block, Gate::Reality));
    let err = client.enforce(&req).await.unwrap_err();
    let b = err.blocked().expect("a block");
    assert_eq!(b.gate, Gate::Reality);
    assert_eq!(b.status, Status::Block);
    assert!(!b.reason_codes.is_empty());
    assert!(!b.explanation.is_empty());
    assert!(
        b.dossier_url
            .as_deref()
            .unwrap()
            .contains("/v1/dossiers/dec_")
    );
    assert!(b.decision_id.as_deref().unwrap().starts_with("dec_"));
    assert!(!b.is_fail_closed());
    assert!(b.decision.is_some());
}

#[tokio::test]
async fn policy_gate_blocks_on_survival_score_and_unknown_policy() {
    let server = Server::start().await;
    let client = server.client();
    // (1 - 0.9) * 0.95 < 0.5
    let risky = in_band("OPEN_POSITION").signal("risk_score", 0.9);
    let d = client.decide(&risky).await.unwrap();
    assert_eq!((d.status, d.gate), (Status::Block, Gate::Policy));
    let unknown = in_band("OPEN_POSITION").policy("no-such-policy");
    let err = client.enforce(&unknown).await.unwrap_err();
    let b = err.blocked().unwrap();
    assert_eq!(b.gate, Gate::Policy);
    assert!(
        b.reason_codes.iter().any(|c| c == "POLICY_NOT_FOUND"),
        "{:?}",
        b.reason_codes
    );
}

#[tokio::test]
async fn throttle_blocks_after_the_bucket_and_retry_honours_retry_after() {
    let server = Server::start().await;
    let client = server.client();
    for i in 0..4 {
        let d = client.decide(&in_band("OPEN_POSITION")).await.unwrap();
        assert_eq!(d.status, Status::Allow, "token {i}");
    }
    let d = client.decide(&in_band("OPEN_POSITION")).await.unwrap();
    assert!(d.is_throttled(), "{d:?}");
    assert!(d.retry_after_ms.unwrap() > 0);
    let err = client.enforce(&in_band("OPEN_POSITION")).await.unwrap_err();
    assert!(err.is_throttled());
    assert!(err.blocked().unwrap().retry_after.is_some());
    // The retry waits what the server says and then gets a token.
    let counting = Counting {
        inner: client.clone(),
        calls: AtomicUsize::new(0),
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(1),
        max_wait: Duration::from_secs(10),
    };
    let d = counting
        .decide_with_retry(&in_band("OPEN_POSITION").idempotency_key("order-1"), retry)
        .await
        .unwrap();
    assert_eq!(d.status, Status::Allow, "{d:?}");
    assert!(counting.calls.load(Ordering::SeqCst) >= 2);
    // Non-throttle blocks are not retried.
    let before = counting.calls.load(Ordering::SeqCst);
    let d = counting
        .decide_with_retry(&in_band("OPEN_POSITION").signal("volatility", 0.5), retry)
        .await
        .unwrap();
    assert_eq!(d.gate, Gate::Reality);
    assert_eq!(counting.calls.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn override_gate_via_the_admin_api() {
    let server = Server::start().await;
    let client = server.client();
    assert!(client.enforce(&in_band("WIRE_TRANSFER")).await.is_ok());
    let id = server.kill_switch("WIRE_TRANSFER", "treasury frozen").await;
    let err = client.enforce(&in_band("WIRE_TRANSFER")).await.unwrap_err();
    assert_eq!(err.blocked().unwrap().gate, Gate::Override);
    // Other actions are not covered.
    assert!(client.enforce(&in_band("OPEN_POSITION")).await.is_ok());
    server.admin_client().clear_override(&id).await.unwrap();
    assert!(client.enforce(&in_band("WIRE_TRANSFER")).await.is_ok());
}

#[tokio::test]
async fn shadow_mode_allows_and_reports_the_would_be_verdict() {
    let server = Server::start().await;
    let client = server.client();
    let req = in_band("OPEN_POSITION")
        .signal("volatility", 0.5)
        .mode(Mode::Shadow);
    let d = client.enforce(&req).await.unwrap();
    let shadow = d.shadow.expect("shadow");
    assert_eq!(
        (shadow.would_be, shadow.gate),
        (Status::Block, Gate::Reality)
    );
}

#[tokio::test]
async fn gate_runs_the_action_only_when_allowed() {
    let server = Server::start().await;
    let client = server.client();
    let ran = AtomicBool::new(false);
    let out = client
        .gate(&in_band("SEND_EMAIL"), async {
            ran.store(true, Ordering::SeqCst);
            42
        })
        .await
        .unwrap();
    assert_eq!(out, 42);
    assert!(ran.load(Ordering::SeqCst));
    let ran = AtomicBool::new(false);
    let err = client
        .gate(&in_band("SEND_EMAIL").signal("volatility", 0.9), async {
            ran.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap_err();
    assert_eq!(err.blocked().unwrap().gate, Gate::Reality);
    assert!(!ran.load(Ordering::SeqCst), "the action must not run");
}

#[tokio::test]
async fn idempotency_key_replays_the_same_decision() {
    let server = Server::start().await;
    let client = server.client();
    let req = in_band("OPEN_POSITION").idempotency_key("order-7");
    let a = client.decide(&req).await.unwrap();
    let b = client.decide(&req).await.unwrap();
    assert_eq!(a.decision_id, b.decision_id);
    assert!(!a.idempotency_replayed);
    assert!(b.idempotency_replayed);
}

#[tokio::test]
async fn caller_errors_are_errors_not_verdicts() {
    let server = Server::start().await;
    let bad_key = server.builder().api_key("tg_nope").build().unwrap();
    assert!(matches!(
        bad_key.decide(&in_band("X")).await,
        Err(Error::Unauthorized { .. })
    ));
    let wrong_tenant = server.builder().tenant("someone-else").build().unwrap();
    assert!(matches!(
        wrong_tenant.decide(&in_band("X")).await,
        Err(Error::Invalid { .. })
    ));
    let client = server.client();
    let shown = format!("{client:?} {:?}", server.builder());
    assert!(!shown.contains(&server.test_key), "the key leaks: {shown}");
    assert!(shown.contains("<redacted>"));
    let mut no_type = in_band("X");
    no_type.action.remove("type");
    match client.decide(&no_type).await {
        Err(Error::Invalid { detail, .. }) => assert!(detail.is_array(), "{detail}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(matches!(
        client.get_decision("dec_missing").await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        client.get_decision("../admin").await,
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn signed_outcomes_are_accepted() {
    let server = Server::start().await;
    let client = server.client();
    let source_key = SigningKey::from_bytes(&[7; 32]);
    let public = base64_key(&source_key);
    server
        .admin_client()
        .add_source(&NewSource {
            id: "agent-1".into(),
            public_key: public,
        })
        .await
        .unwrap();
    let d = client.enforce(&in_band("OPEN_POSITION")).await.unwrap();
    let report = OutcomeReport::new(
        &d.decision_id,
        "agent-1",
        "OPEN_POSITION",
        0.7,
        0.95,
        d.decided_at.clone().unwrap(),
    );
    let signed = report.clone().sign(&source_key).unwrap();
    let receipt = client.report_outcome(&signed).await.unwrap();
    assert!(receipt.accepted);
    assert!(receipt.outcome_id.starts_with("out_"));
    // A report signed by another key is refused.
    let mut forged = report.sign(&SigningKey::from_bytes(&[8; 32])).unwrap();
    forged.public_key = None;
    assert!(matches!(
        client.report_outcome(&forged).await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_pinned_jwks_refuses_verdicts_signed_by_another_key() {
    let server = Server::start().await;
    let other = Server::start().await;
    let pinned = other.client().jwks().await.unwrap();
    let client = server.builder().trust_jwks(pinned).build().unwrap();
    let err = client.decide(&in_band("OPEN_POSITION")).await.unwrap_err();
    let b = err.blocked().unwrap();
    assert!(b.is_fail_closed());
    assert!(matches!(b.failure, Some(Failure::BadSignature(_))));
    // Even a client that fails open refuses a verdict it cannot verify.
    let pinned = other.client().jwks().await.unwrap();
    let open = server
        .builder()
        .trust_jwks(pinned)
        .fail_mode(tollgate_client::FailMode::Open)
        .build()
        .unwrap();
    let err = open.enforce(&in_band("OPEN_POSITION")).await.unwrap_err();
    assert!(matches!(
        err.blocked().unwrap().failure,
        Some(Failure::BadSignature(_))
    ));
    // With the right keys pinned, verdicts pass.
    let right = server.client().jwks().await.unwrap();
    let client = server.builder().trust_jwks(right).build().unwrap();
    assert!(client.enforce(&in_band("OPEN_POSITION")).await.is_ok());
}

fn base64_key(key: &SigningKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
}

#[tokio::test]
async fn execution_grants_verify_offline_bind_the_action_and_work_once() {
    let server = Server::start().await;
    let client = server.client();
    let jwks = client.jwks().await.unwrap();
    let request = in_band("TRANSFER_FUNDS").action_field("amount", 25_000);
    // Without asking: an ALLOW with no grant.
    let plain = client.enforce(&request).await.unwrap();
    assert!(plain.grant.is_none(), "grants only when asked for");
    let request = request.with_grant();
    let d = client.enforce(&request).await.unwrap();
    let token = d
        .grant
        .clone()
        .expect("an ALLOW in enforce mode carries a grant");
    let now = verify::now_s();
    let claims = verify::grant_for(&token, &jwks, &request, now).unwrap();
    assert_eq!(claims.decision_id, d.decision_id);
    assert_eq!(claims.sub, "default");
    assert_eq!(
        claims.action_digest,
        verify::action_digest(&request).unwrap()
    );
    // Another action, a later time, a forged token, another server's keys.
    let bigger = in_band("TRANSFER_FUNDS").action_field("amount", 250_000);
    assert_eq!(
        verify::grant_for(&token, &jwks, &bigger, now),
        Err(VerifyError::ActionMismatch)
    );
    assert!(matches!(
        verify::grant(&token, &jwks, claims.exp),
        Err(VerifyError::GrantExpired { .. })
    ));
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["action_digest"] = json!(verify::action_digest(&bigger).unwrap());
        let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    assert_eq!(
        verify::grant(&forged, &jwks, now),
        Err(VerifyError::Mismatch)
    );
    assert!(verify::grant("a.b", &jwks, now).is_err());
    let other = Server::start().await;
    let other_jwks = other.client().jwks().await.unwrap();
    assert!(matches!(
        verify::grant(&token, &other_jwks, now),
        Err(VerifyError::UnknownKey(_))
    ));
    // The server agrees: another action is refused, the right one works once.
    assert!(matches!(
        client.consume_grant(&token, Some(&bigger)).await,
        Err(Error::Invalid { .. })
    ));
    let used = client.consume_grant(&token, Some(&request)).await.unwrap();
    assert_eq!(used["valid"], true);
    assert!(matches!(
        client.consume_grant(&token, None).await,
        Err(Error::Conflict { .. })
    ));
    // Blocks and shadow verdicts carry no grant.
    let blocked = client
        .decide(&in_band("TRANSFER_FUNDS").signal("volatility", 0.5))
        .await
        .unwrap();
    assert!(blocked.grant.is_none());
}

const TREASURY: &str = r#"id: treasury
rules:
  - name: large-transfer
    when: 'action.type == "TRANSFER_FUNDS" && action.amount > 10000'
    effect: review
    reason_code: AMOUNT_OVER_LIMIT
    review: {approvers: [treasury], expires_in: 1h}
"#;

#[tokio::test]
async fn review_required_carries_the_review_and_an_approval_allows_once() {
    let server = Server::start().await;
    server.put_policy("treasury", 1, TREASURY);
    let mut key = NewKey::new("live", ["review"]);
    key.groups = vec!["treasury".into()];
    let reviewer = server.admin_client().create_key(&key).await.unwrap().secret;
    let client = server.client();
    let transfer = DecisionRequest::new("TRANSFER_FUNDS")
        .actor_id("treasury-bot", "AI_AGENT")
        .action_field("amount", 25_000)
        .context_field("workflow", "payables")
        .policy("treasury@1");
    let err = client.enforce(&transfer).await.unwrap_err();
    let b = err.blocked().unwrap().clone();
    assert_eq!(b.status, Status::ReviewRequired);
    assert_eq!(b.reason_codes, ["AMOUNT_OVER_LIMIT"]);
    let review_id = b.review_id.clone().expect("the review id");
    let decision_id = b.decision_id.clone().unwrap();
    // Pending: the long poll ends at its timeout, unresolved.
    let state = client
        .wait_for_review(&decision_id, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!state.resolved);
    assert_eq!(state.review_status.as_deref(), Some("pending"));
    assert_eq!(state.review_id.as_deref(), Some(review_id.as_str()));
    // A reviewer approves while the agent waits.
    let waiting = {
        let client = client.clone();
        let decision_id = decision_id.clone();
        tokio::spawn(async move {
            client
                .wait_for_review(&decision_id, Duration::from_secs(30))
                .await
        })
    };
    let review = server
        .builder()
        .api_key(&reviewer)
        .build()
        .unwrap()
        .approve_review(&review_id, Some("ok"))
        .await
        .unwrap();
    assert_eq!(review.status, ReviewStatus::Approved);
    let state = waiting.await.unwrap().unwrap();
    assert!(state.resolved && state.is_approved(), "{:?}", state.raw);
    // The approved action is allowed once, with a grant.
    let d = client
        .enforce(&transfer.clone().with_grant())
        .await
        .unwrap();
    assert!(d.grant.is_some());
    assert_eq!(
        client
            .enforce(&transfer)
            .await
            .unwrap_err()
            .blocked()
            .unwrap()
            .status,
        Status::ReviewRequired
    );
}
