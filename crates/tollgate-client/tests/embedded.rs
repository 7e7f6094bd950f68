//! The engine and the SQLite ledger in-process, behind the same trait.
#![cfg(feature = "embedded")]

use tollgate_client::embedded::Embedded;
use tollgate_client::testing::FakeClient;
use tollgate_client::{DecisionPoint, DecisionRequest, Gate, Status, verify};

fn in_band(action: &str) -> DecisionRequest {
    DecisionRequest::new(action)
        .signal("volatility", 0.05)
        .signal("confidence", 0.95)
}

/// The same agent code runs on any decision point.
async fn allowed(point: &impl DecisionPoint, req: &DecisionRequest) -> bool {
    point.enforce(req).await.is_ok()
}

#[tokio::test]
async fn every_gate_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let tg = Embedded::open(dir.path()).unwrap();
    let d = tg.decide(&in_band("OPEN_POSITION")).await.unwrap();
    assert_eq!((d.status, d.gate), (Status::Allow, Gate::Permit));
    let d = tg
        .decide(&in_band("OPEN_POSITION").signal("volatility", 0.5))
        .await
        .unwrap();
    assert_eq!(d.gate, Gate::Reality);
    let d = tg
        .decide(&in_band("OPEN_POSITION").signal("risk_score", 0.9))
        .await
        .unwrap();
    assert_eq!(d.gate, Gate::Policy);
    let d = tg
        .decide(&in_band("OPEN_POSITION").policy("missing"))
        .await
        .unwrap();
    assert!(d.reason_codes.iter().any(|c| c == "POLICY_NOT_FOUND"));
    let id = tg.block_action_type("WIRE", "frozen").await.unwrap();
    let err = tg.enforce(&in_band("WIRE")).await.unwrap_err();
    assert_eq!(err.blocked().unwrap().gate, Gate::Override);
    tg.clear_override(&id).await.unwrap();
    // Three tokens are left of the bucket of four.
    for _ in 0..3 {
        assert!(allowed(&tg, &in_band("WIRE")).await);
    }
    let d = tg.decide(&in_band("WIRE")).await.unwrap();
    assert!(d.is_throttled());
    assert!(d.retry_after_ms.unwrap() > 0);
    assert!(allowed(&FakeClient::new(), &in_band("WIRE")).await);
}

#[tokio::test]
async fn verdicts_are_signed_recorded_and_provable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let tg = Embedded::open(dir.path()).unwrap();
        tg.enforce(&in_band("OPEN_POSITION")).await.unwrap()
    };
    let tg = Embedded::open(dir.path()).unwrap();
    let second = tg
        .enforce(&in_band("OPEN_POSITION").with_grant())
        .await
        .unwrap();
    assert_eq!(
        second.ledger.as_ref().unwrap().seq.unwrap(),
        first.ledger.as_ref().unwrap().seq.unwrap() + 1,
        "the chain continues"
    );
    let jwks = tg.jwks();
    for d in [&first, &second] {
        verify::decision_signature(d, &jwks).unwrap();
        let dossier = tg.dossier(&d.decision_id).await.unwrap();
        verify::dossier_of(d, &dossier, &jwks).unwrap();
    }
    let request = in_band("OPEN_POSITION");
    let grant = second.grant.as_deref().expect("an ALLOW carries a grant");
    let claims = verify::grant_for(grant, &jwks, &request, verify::now_s()).unwrap();
    assert_eq!(claims.decision_id, second.decision_id);
    assert_eq!(
        verify::grant_for(grant, &jwks, &in_band("WIRE"), verify::now_s()),
        Err(verify::VerifyError::ActionMismatch)
    );
    let verified = tg.verify_ledger().unwrap();
    assert_eq!(verified.tenant, "default");
    assert!(verified.entries >= 2);
    let mut forged = second.clone();
    forged.raw["gate"] = serde_json::json!("throttle");
    assert!(verify::decision_signature(&forged, &jwks).is_err());
}

#[tokio::test]
async fn invalid_requests_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tg = Embedded::open(dir.path()).unwrap();
    let mut req = in_band("X");
    req.action.remove("type");
    assert!(matches!(
        tg.decide(&req).await,
        Err(tollgate_client::Error::Invalid { .. })
    ));
}
