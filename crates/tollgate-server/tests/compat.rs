//! The compatibility adapters' translation, through the router without a socket.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use common::{Harness, Reply};
use ed25519_dalek::{Signature, Verifier as _};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tollgate_core::Gate;
use tollgate_server::compat::dealgo::sdk_gate;
use tollgate_server::compat::pyjson::dumps_sorted;
use tollgate_server::config::DirectRuntime;
use tollgate_store::PolicyRecord;
use tower::ServiceExt as _;

const POLICY: &str = include_str!("../../../compat/python/conformance-policy.yaml");

/// Stores the conformance policy for tenant `default` (optionally as its default).
fn seed(h: &Harness, activate: bool) {
    let store = h.state.store();
    store
        .put_policy_version(&PolicyRecord {
            tenant: "default".into(),
            policy_id: "compat-conformance".into(),
            version: 1,
            text: POLICY.into(),
            text_hash: hex::encode(Sha256::digest(POLICY.as_bytes())),
            created_ms: h.state.now_ms(),
        })
        .unwrap();
    if activate {
        for env in ["live", "test"] {
            store
                .activate_policy("default", env, "compat-conformance", 1)
                .unwrap();
        }
    }
}

/// Checks a Decionis signature the way the SDK does.
fn decionis_signature_ok(h: &Harness, body: &Value) -> bool {
    let mut unsigned = body.clone();
    let sig = unsigned
        .as_object_mut()
        .unwrap()
        .remove("signature")
        .unwrap();
    assert_eq!(sig["algorithm"], "Ed25519");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig["value"].as_str().unwrap())
        .unwrap();
    let sig = Signature::from_bytes(&raw.try_into().unwrap());
    h.state
        .service()
        .server_key()
        .verifying_key()
        .verify(dumps_sorted(&unsigned).as_bytes(), &sig)
        .is_ok()
}

fn no_nulls(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => a.iter().all(no_nulls),
        Value::Object(m) => m.values().all(no_nulls),
        _ => true,
    }
}

fn evaluate_body(action: Value, context: Value) -> Value {
    json!({
        "tenant_id": "default",
        "actor": {"id": "agent-1", "type": "AI_AGENT"},
        "action": action,
        "context": context,
    })
}

#[tokio::test]
async fn decionis_evaluate_allows_signs_and_lifts_signals() {
    let h = Harness::new();
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            evaluate_body(
                json!({"type": "OPEN_POSITION", "volatility": 0.05}),
                json!({"confidence": 0.95, "risk_score": 1e-05, "note": "naïve ☃ 𝄞"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "ALLOW");
    assert_eq!(r.body["gate"], "permit");
    assert_eq!(
        r.body["signals"],
        json!({"confidence": 0.95, "risk_score": 1e-05, "volatility": 0.05})
    );
    assert_eq!(
        r.body["dossier_url"].as_str().unwrap(),
        format!(
            "{}/v1/dossiers/{}",
            h.state.config().base_url(),
            r.body["decision_id"].as_str().unwrap()
        )
    );
    assert!(no_nulls(&r.body));
    assert!(decionis_signature_ok(&h, &r.body));
    let mut changed = r.body.clone();
    changed["signals"]["confidence"] = json!(0.96);
    assert!(!decionis_signature_ok(&h, &changed));
}

#[tokio::test]
async fn decionis_camel_case_aliases_and_shadow_report_the_would_be_status() {
    let h = Harness::new();
    let body = json!({
        "tenantId": "default",
        "actor": {"id": "agent-1"},
        "action": {"type": "OPEN_POSITION"},
        "context": {"risk_score": 0.9},
        "policyRefs": ["csc-default"],
        "correlationId": "corr-7",
        "enforcementMode": "dry_run",
        "idempotencyKey": "idem-camel",
    });
    let r = h
        .post("/v1/decisions/evaluate", &h.test_key, body.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "BLOCK");
    assert_eq!(r.body["gate"], "policy");
    assert_eq!(r.body["reason_codes"], json!(["SURVIVAL_SCORE_LOW"]));
    assert_eq!(r.body["shadow"]["would_be"], "BLOCK");
    assert_eq!(r.body["shadow"]["enforced"], false);
    assert_eq!(r.body["mode"], "dry_run");
    assert!(decionis_signature_ok(&h, &r.body));
    // The body's idempotency key (camelCase) is honoured.
    let again = h.post("/v1/decisions/evaluate", &h.test_key, body).await;
    assert_eq!(again.body["decision_id"], r.body["decision_id"]);
    assert_eq!(again.body["idempotency_replayed"], true);
    assert!(decionis_signature_ok(&h, &again.body));
    // shadow_mode wins over enforcement_mode.
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            json!({"tenant_id": "default", "actor": {}, "action": {"type": "T"},
                   "context": {"volatility": 0.5}, "shadow_mode": true, "enforcement_mode": "enforce"}),
        )
        .await;
    assert_eq!(r.body["status"], "BLOCK");
    assert_eq!(r.body["gate"], "reality");
}

#[tokio::test]
async fn decionis_tenant_wide_shadow_answers_allow_with_shadow() {
    let h = Harness::new();
    let r = h
        .post(
            "/v1/admin/tenants",
            &h.admin,
            json!({"id": "default", "shadow": true}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            evaluate_body(json!({"type": "T"}), json!({"volatility": 0.5})),
        )
        .await;
    assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    assert_eq!(r.body["shadow"]["would_be"], "BLOCK");
    let r = h
        .post(
            "/v1/decide",
            &h.test_key,
            json!({"action_type": "T", "metadata": {"volatility": 0.5}}),
        )
        .await;
    assert_eq!(r.body["decision"], "APPROVE");
    assert_eq!(r.body["shadow"]["gate"], "reality");
}

#[tokio::test]
async fn decionis_rejects_another_tenant_and_missing_fields() {
    let h = Harness::new();
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            json!({"tenant_id": "other", "actor": {}, "action": {"type": "T"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "tenant_id"]));
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            json!({"tenant_id": "default", "action": {"type": "T"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "actor"]));
    let r = h
        .call(
            Method::POST,
            "/v1/decisions/evaluate",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["message"].is_string() && r.body["request_id"].is_string());
}

#[tokio::test]
async fn decionis_stored_policy_by_ref_reaches_escalate_and_review() {
    let h = Harness::new();
    // `id` in policy_refs names the active version: activate it.
    seed(&h, true);
    for (action, status, code) in [
        (
            json!({"type": "wire_transfer", "amount": 25000}),
            "ESCALATE",
            "AMOUNT_OVER_LIMIT",
        ),
        (
            json!({"type": "deploy_prod"}),
            "REVIEW_REQUIRED",
            "DEPLOY_NEEDS_REVIEW",
        ),
        (json!({"type": "drop_table"}), "BLOCK", "DESTRUCTIVE_ACTION"),
    ] {
        let mut body = evaluate_body(action, json!({}));
        body["policy_refs"] = json!(["compat-conformance"]);
        let r = h.post("/v1/decisions/evaluate", &h.test_key, body).await;
        assert_eq!(r.body["status"], status, "{}", r.text);
        assert_eq!(r.body["reason_codes"], json!([code]));
        assert_eq!(r.body["policy"]["id"], "compat-conformance");
        assert!(decionis_signature_ok(&h, &r.body));
    }
    // Without refs: the first policy activated in an environment is its default.
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.test_key,
            evaluate_body(json!({"type": "drop_table"}), json!({})),
        )
        .await;
    assert_eq!(r.body["status"], "BLOCK");
    assert_eq!(r.body["policy"]["id"], "compat-conformance");
    // A missing pinned version fails closed.
    let mut body = evaluate_body(json!({"type": "T"}), json!({}));
    body["policy_refs"] = json!(["compat-conformance@9"]);
    let r = h.post("/v1/decisions/evaluate", &h.test_key, body).await;
    assert_eq!(r.body["status"], "BLOCK");
    assert_eq!(r.body["reason_codes"], json!(["POLICY_NOT_FOUND"]));
}

#[tokio::test]
async fn policies_validate_detects_the_format() {
    let h = Harness::new();
    let yaml = h
        .call_raw(
            Method::POST,
            "/v1/policies/validate",
            Some(&h.test_key),
            Some(POLICY.to_owned()),
            &[],
        )
        .await;
    assert_eq!(yaml.status, StatusCode::OK, "{}", yaml.text);
    assert_eq!(yaml.body["valid"], true, "{}", yaml.text);
    assert_eq!(yaml.body["policy"]["id"], "compat-conformance");
    let wrapped = h
        .post(
            "/v1/policies/validate",
            &h.test_key,
            json!({"text": "id = \"t\"\ndefault_effect = \"block\"\n"}),
        )
        .await;
    assert_eq!(wrapped.body["valid"], true, "{}", wrapped.text);
    let bad = h
        .post(
            "/v1/policies/validate",
            &h.test_key,
            json!({"id": "p", "rules": [{"name": "r", "when": "acton.x > 1", "effect": "block", "reason_code": "X"}]}),
        )
        .await;
    assert_eq!(bad.body["valid"], false);
    assert!(
        bad.body["errors"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("rules[0]"),
        "{}",
        bad.text
    );
}

async fn portal(h: &Harness, body: Value) -> Reply {
    h.post("/v1/decide", &h.test_key, body).await
}

fn inferred(r: &Reply) -> Option<Gate> {
    sdk_gate(
        r.body["decision"].as_str().unwrap_or_default(),
        r.body["reason"].as_str().unwrap_or_default(),
        r.body["reason_raw"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn dealgo_portal_lands_every_gate() {
    let h = Harness::new();
    seed(&h, true);
    let ok = portal(
        &h,
        json!({"action_type": "send_email", "risk_score": 0.1, "confidence": 0.95,
               "metadata": {"symbol": "BTC", "volatility": 0.05}}),
    )
    .await;
    assert_eq!(ok.body["decision"], "APPROVE", "{}", ok.text);
    assert_eq!(inferred(&ok), Some(Gate::Permit));
    assert_eq!(ok.body["stimulus_id"], ok.body["decision_log_id"]);
    assert_eq!(ok.body["environment"], "test");
    let reality = portal(
        &h,
        json!({"action_type": "trade", "metadata": {"volatility": 0.5}}),
    )
    .await;
    assert_eq!(reality.body["decision"], "DENY");
    assert_eq!(inferred(&reality), Some(Gate::Reality));
    for body in [
        json!({"action_type": "trade", "risk_score": 0.9}),
        json!({"action_type": "drop_table"}),
        json!({"action_type": "deploy_prod"}),
    ] {
        let r = portal(&h, body).await;
        assert_eq!(r.body["decision"], "DENY", "{}", r.text);
        assert_eq!(inferred(&r), Some(Gate::Policy), "{}", r.text);
    }
    let review = portal(&h, json!({"action_type": "deploy_prod"})).await;
    assert_eq!(review.body["status"], "REVIEW_REQUIRED");
    assert_eq!(review.body["review"]["approvers"], json!(["sre"]));
    assert!(
        review.body["review_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("rev_")),
        "{}",
        review.text
    );
    assert_eq!(review.body["review"]["id"], review.body["review_id"]);
    let r = h
        .post(
            "/v1/admin/overrides",
            &h.admin,
            json!({"scope": "action_type", "value": "halted", "reason": "policy desk says stop"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let halted = portal(&h, json!({"action_type": "halted"})).await;
    assert_eq!(halted.body["decision"], "DENY");
    // The operator's reason mentions "policy": the reason text must still say override.
    assert_eq!(inferred(&halted), Some(Gate::Override), "{}", halted.text);
    for _ in 0..4 {
        let r = portal(&h, json!({"action_type": "burst"})).await;
        assert_eq!(r.body["decision"], "APPROVE");
    }
    let throttled = portal(&h, json!({"action_type": "burst"})).await;
    assert_eq!(throttled.body["decision"], "DELAY");
    assert_eq!(inferred(&throttled), Some(Gate::Throttle));
    assert!(throttled.body["retry_after_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn dealgo_portal_validation_agent_id_and_idempotency() {
    let h = Harness::new();
    let r = portal(&h, json!({"risk_score": 0.1})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "action_type"]));
    let r = portal(&h, json!({"action_type": "t", "risk_score": "high"})).await;
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "risk_score"]));
    let r = portal(&h, json!({"action_type": "t", "agent_id": "x".repeat(65)})).await;
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "agent_id"]));
    let r = portal(&h, json!({"action_type": "t", "agent_id": "bot_7-a"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.body["stimulus_id"].as_str().unwrap().to_owned();
    let stored = h.get(&format!("/v1/decisions/{id}"), &h.admin).await;
    assert_eq!(stored.body["request"]["actor"]["id"], "bot_7-a");
    let first = h
        .call_raw(
            Method::POST,
            "/v1/decide",
            Some(&h.test_key),
            Some(json!({"action_type": "idem"}).to_string()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    let again = h
        .call_raw(
            Method::POST,
            "/v1/decide",
            Some(&h.test_key),
            Some(json!({"action_type": "idem"}).to_string()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.body["idempotency_replayed"], false);
    assert_eq!(again.body["idempotency_replayed"], true);
    assert_eq!(again.body["stimulus_id"], first.body["stimulus_id"]);
}

#[tokio::test]
async fn dealgo_quota_exhaustion_is_the_nested_error_shape() {
    let h = Harness::with_config(|c| c.monthly_quota = 0);
    // The admin key is a live key: metered.
    let r = h
        .post("/v1/decide", &h.admin, json!({"action_type": "t"}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota"),
        "{}",
        r.text
    );
    // Decionis keeps the common shape (the SDK reads `message`).
    let r = h
        .post(
            "/v1/decisions/evaluate",
            &h.admin,
            evaluate_body(json!({"type": "t"}), json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body["message"].as_str().unwrap().contains("quota"));
}

#[tokio::test]
async fn mcp_check_takes_the_flat_body_and_answers_the_portal_shape() {
    let h = Harness::new();
    let r = h
        .post(
            "/api/csc/check",
            &h.test_key,
            json!({"feed": "agent_tool", "v2_aware": true, "risk": 0.5, "intent": "send_email",
                   "source": "tools", "symbol": "send_email"}),
        )
        .await;
    assert_eq!(r.body["decision"], "APPROVE", "{}", r.text);
    assert!(r.body["v2_bias"].is_number(), "{}", r.text);
    let r = h
        .post(
            "/api/csc/check",
            &h.test_key,
            json!({"feed": "agent_tool", "risk": 0.95}),
        )
        .await;
    assert_eq!(r.body["decision"], "DENY");
    assert_eq!(inferred(&r), Some(Gate::Policy));
    let r = h
        .post("/api/csc/check", &h.test_key, json!({"risk": 0.1}))
        .await;
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "feed"]));
    let r = h
        .call(
            Method::POST,
            "/api/csc/check",
            None,
            Some(json!({"feed": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn live_stimulus(h: &Harness, peer: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/csc/live-stimulus")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    if let Some(p) = peer {
        let addr: SocketAddr = p.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let res = h.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn live_stimulus_serves_loopback_callers_only_by_default() {
    let h = Harness::new();
    let body = json!({"feed": "trading", "risk": 0.1, "confidence": 0.95, "volatility": 0.05,
                      "symbol": "BTC", "source": "lab", "extra": {"k": 1}});
    let (status, r) = live_stimulus(&h, Some("127.0.0.1:50000"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["execution"], "permitted");
    assert_eq!(r["decision"]["environment"], "test");
    let id = r["stimulus"]["id"].as_str().unwrap().to_owned();
    let stored = h.get(&format!("/v1/decisions/{id}"), &h.admin).await;
    assert_eq!(stored.body["request"]["context"]["extra"], json!({"k": 1}));
    assert_eq!(stored.body["request"]["signals"]["risk_score"], json!(0.1));
    let (status, _) = live_stimulus(&h, Some("[::1]:50000"), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = live_stimulus(&h, Some("10.1.2.3:50000"), body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(r["error"]["message"].as_str().unwrap().contains("loopback"));
    // Served without connection info: not loopback.
    let (status, _) = live_stimulus(&h, None, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = live_stimulus(
        &h,
        Some("127.0.0.1:1"),
        json!({"feed": "trading", "volatility": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["execution"], "blocked_reality_mismatch");
    assert!(r["reality_reason"].as_str().unwrap().contains("volatility"));
}

#[tokio::test]
async fn live_stimulus_configuration_opens_closes_and_picks_the_tenant() {
    let open = Harness::with_config(|c| {
        c.direct_runtime = DirectRuntime::Open;
        c.direct_runtime_environment = "live".into();
    });
    let (status, r) = live_stimulus(&open, None, json!({"feed": "f"})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["decision"]["environment"], "live");
    let off = Harness::with_config(|c| c.direct_runtime = DirectRuntime::Off);
    let (status, _) = live_stimulus(&off, Some("127.0.0.1:1"), json!({"feed": "f"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let elsewhere = Harness::with_config(|c| c.direct_runtime_tenant = "nobody".into());
    let (status, r) = live_stimulus(&elsewhere, Some("127.0.0.1:1"), json!({"feed": "f"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(r["error"]["message"].as_str().unwrap().contains("nobody"));
}

#[test]
fn sdk_gate_inference_follows_the_sdk_keyword_order() {
    assert_eq!(sdk_gate("APPROVE", "", ""), Some(Gate::Permit));
    assert_eq!(sdk_gate("DELAY", "policy", ""), Some(Gate::Throttle));
    assert_eq!(
        sdk_gate("DENY", "policy says volatility", ""),
        Some(Gate::Reality)
    );
    assert_eq!(sdk_gate("DENY", "x", "SEGMENT"), Some(Gate::Policy));
    assert_eq!(
        sdk_gate("DENY", "operator override", ""),
        Some(Gate::Override)
    );
    assert_eq!(sdk_gate("DENY", "nope", ""), None);
}
