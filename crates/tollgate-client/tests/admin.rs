//! The operator API (`tollgate_client::admin`) against a real Tollgate: every call,
//! its typed answer, and ids refused before anything is sent.

mod common;

use common::Server;
use tollgate_client::admin::{
    NewKey, NewOverride, NewSource, NewTenant, PublishPolicy, ReplayPolicy, ReviewStatus,
};
use tollgate_client::{DecisionPoint, DecisionRequest, Error, SigningKey, Status};

const POLICY_V1: &str = r#"id: desk
rules:
  - name: big-order
    when: 'action.type == "PLACE_ORDER" && action.notional > 1000'
    effect: block
    reason_code: TOO_BIG
  - name: wire
    when: 'action.type == "WIRE"'
    effect: review
    reason_code: WIRE_NEEDS_REVIEW
    review: {approvers: [ops], expires_in: 1h}
"#;

#[tokio::test]
async fn every_operator_call_answers_its_type() {
    let server = Server::start().await;
    let admin = server.admin_client();

    // Tenants and keys.
    let acme = admin
        .put_tenant(&NewTenant {
            id: "acme".into(),
            monthly_quota: Some(500),
            ..NewTenant::default()
        })
        .await
        .unwrap();
    assert_eq!((acme.id.as_str(), acme.monthly_quota), ("acme", Some(500)));
    let tenants = admin.tenants().await.unwrap();
    assert!(tenants.iter().any(|t| t.id == "acme"), "{tenants:?}");
    let mut key = NewKey::new("live", ["review"]);
    key.groups = vec!["ops".into()];
    key.name = Some("olga".into());
    let reviewer = admin.create_key(&key).await.unwrap();
    assert_eq!(reviewer.key.groups, ["ops"]);
    assert!(!reviewer.secret.is_empty());
    let bot = admin
        .create_key(&NewKey::new("live", ["decide"]))
        .await
        .unwrap();
    let mut other = NewKey::new("test", ["decide"]);
    other.tenant = Some("acme".into());
    let other = admin.create_key(&other).await.unwrap();
    let acme_keys = admin.keys(Some("acme")).await.unwrap();
    assert_eq!(acme_keys.len(), 1, "{acme_keys:?}");
    let revoked = admin.revoke_key(&other.key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());

    // Sources and kill switches.
    let public = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
    let public = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, public);
    let source = admin
        .add_source(&NewSource {
            id: "desk-1".into(),
            public_key: public.clone(),
        })
        .await
        .unwrap();
    assert_eq!(source.public_key, public);
    assert_eq!(admin.sources().await.unwrap()[0].outcomes, Some(0));
    let o = admin
        .set_override(&NewOverride {
            scope: "actor".into(),
            value: Some("rogue".into()),
            reason: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(o.scope.value.as_deref(), Some("rogue"));
    assert_eq!(admin.overrides().await.unwrap().len(), 1);
    assert!(admin.clear_override(&o.id).await.unwrap().cleared);
    assert!(admin.overrides().await.unwrap().is_empty());

    // The policy lifecycle.
    let v1 = admin
        .publish_policy(&PublishPolicy {
            text: POLICY_V1.into(),
            activate: true,
            ..PublishPolicy::default()
        })
        .await
        .unwrap();
    assert!(v1.published && v1.activated && v1.version == 1, "{v1:?}");
    let v2 = admin
        .publish_policy(&PublishPolicy {
            text: POLICY_V1.replace("> 1000", "> 5000"),
            ..PublishPolicy::default()
        })
        .await
        .unwrap();
    assert!(v2.published && !v2.activated && v2.version == 2, "{v2:?}");
    let list = admin.policies().await.unwrap();
    let desk = list
        .policies
        .iter()
        .find(|p| p.policy_id == "desk")
        .unwrap();
    assert_eq!((desk.versions, desk.active.live), (2, Some(1)));
    let detail = admin.policy("desk").await.unwrap();
    assert_eq!(detail.versions.len(), 2);
    assert_eq!(
        admin.policy_version("desk", 1).await.unwrap().text,
        POLICY_V1
    );
    let diff = admin.policy_diff("desk", 1, 2).await.unwrap();
    assert_eq!(diff.rules.changed, ["big-order"]);
    admin.set_default_policy("desk", "live").await.unwrap();
    let started = admin.start_candidate("desk", 2, "live").await.unwrap();
    assert_eq!(started.candidate, 2);
    let decide = server.builder().api_key(&bot.secret).build().unwrap();
    let order = DecisionRequest::new("PLACE_ORDER")
        .action_field("notional", 3000)
        .policy("desk");
    let d = decide.decide(&order).await.unwrap();
    assert_eq!(d.status, Status::Block);
    let report = admin.candidate_report("desk", "live").await.unwrap();
    assert_eq!((report.evaluated, report.changed), (1, 1), "{report:?}");
    assert_eq!(report.decisions[0].candidate.status, Status::Allow);
    admin.stop_candidate("desk", "live").await.unwrap();
    assert!(matches!(
        admin.stop_candidate("desk", "live").await,
        Err(Error::NotFound)
    ));
    let replay = admin
        .replay_policy(
            "desk",
            &ReplayPolicy {
                version: 2,
                ..ReplayPolicy::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((replay.replayed, replay.flipped), (1, 1), "{replay:?}");
    let activated = admin.activate_policy("desk", 2, "live").await.unwrap();
    assert!(activated.changed);
    admin.set_tenant_shadow(false).await.unwrap();

    // Reviews: only a key in group `ops` may vote.
    let wire = DecisionRequest::new("WIRE").policy("desk");
    let d = decide.decide(&wire).await.unwrap();
    let review_id = d.review_id.clone().unwrap();
    let olga = server.builder().api_key(&reviewer.secret).build().unwrap();
    let pending = olga.reviews(Some(ReviewStatus::Pending)).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].approver_groups.as_deref(),
        Some(&["ops".to_owned()][..])
    );
    assert_eq!(
        olga.review(&review_id).await.unwrap().status,
        ReviewStatus::Pending
    );
    let r = olga.reject_review(&review_id, Some("no")).await.unwrap();
    assert_eq!(r.status, ReviewStatus::Rejected);
    assert_eq!(r.rejection.unwrap().comment.as_deref(), Some("no"));

    // Audit: the server's check, the export as text, a checkpoint, a proof.
    let check = admin.audit_verify().await.unwrap();
    assert!(check.ok, "{check:?}");
    let entries = check.entries.unwrap();
    let export = admin.audit_export().await.unwrap();
    assert_eq!(export.lines().count() as u64, entries);
    for line in export.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let cp = admin.audit_checkpoint().await.unwrap();
    assert!(cp.starts_with("tollgate/default\n"), "{cp}");
    let proof = admin.audit_consistency(1, entries).await.unwrap();
    assert!(!proof.proof.is_empty());
}

#[tokio::test]
async fn ids_that_would_change_the_path_are_refused_before_sending() {
    // Nothing listens there: a refused id must not even try.
    let client = tollgate_client::Client::builder()
        .base_url(common::refused_url().await)
        .api_key("k")
        .max_retries(0)
        .build()
        .unwrap();
    for id in ["../keys", "a/b", "x?tenant=other", ""] {
        assert!(
            matches!(client.policy(id).await, Err(Error::Config(_))),
            "{id:?}"
        );
        assert!(matches!(client.revoke_key(id).await, Err(Error::Config(_))));
        assert!(matches!(client.keys(Some(id)).await, Err(Error::Config(_))));
    }
    assert!(matches!(
        client.activate_policy("desk", 1, "prod").await,
        Err(Error::Config(_))
    ));
    // A valid id does try (and finds nothing listening).
    assert!(matches!(
        client.policy("desk").await,
        Err(Error::Unavailable(_))
    ));
}
