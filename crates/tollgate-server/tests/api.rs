//! The HTTP API through the router (no socket): every endpoint and error path.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::{Harness, in_band};
use ed25519_dalek::{Signature, Verifier as _};
use serde_json::{Value, json};

/// Checks a native response signature against the JWKS key, as any client would:
/// Ed25519 over the canonical bytes, or a batch signature (the root of the leaf's
/// audit path signed). Any change to the body breaks it.
async fn assert_signed(h: &Harness, body: &Value) {
    let jwks = h
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .body;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
    let mut unsigned = body.clone();
    let sig = unsigned
        .as_object_mut()
        .unwrap()
        .remove("signature")
        .unwrap();
    assert_eq!(sig["key_id"], jwks["keys"][0]["kid"]);
    let value = base64::engine::general_purpose::STANDARD
        .decode(sig["value"].as_str().unwrap())
        .unwrap();
    let signature = Signature::from_bytes(&value.try_into().unwrap());
    let verifies = |unsigned: &Value| {
        let bytes = tollgate_core::digest::canonical_bytes(unsigned).unwrap();
        match sig["algorithm"].as_str().unwrap() {
            "Ed25519" => key.verify(&bytes, &signature).is_ok(),
            "Ed25519-Merkle-batch" => {
                let b = &sig["batch"];
                let path: Vec<tollgate_ledger::Hash> = b["path"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| tollgate_ledger::Hash::from_hex(h.as_str().unwrap()).unwrap())
                    .collect();
                tollgate_ledger::batch::verify_batch(
                    &bytes,
                    b["index"].as_u64().unwrap(),
                    b["size"].as_u64().unwrap(),
                    &path,
                    &signature,
                    &key,
                )
                .is_ok()
            }
            other => panic!("unknown algorithm {other}"),
        }
    };
    assert!(verifies(&unsigned), "the verdict signature verifies");
    let mut tampered = unsigned.clone();
    tampered["explanation"] = json!(format!("{}.", unsigned["explanation"].as_str().unwrap()));
    assert!(!verifies(&tampered));
}

#[tokio::test]
async fn decisions_are_batch_signed_unless_asked_otherwise() {
    let h = Harness::new();
    let decide = |mode: Option<&'static str>| {
        let h = &h;
        async move {
            let headers: Vec<(&str, &str)> = mode
                .map(|m| ("tollgate-signature-mode", m))
                .into_iter()
                .collect();
            h.call_raw(
                Method::POST,
                "/v1/decisions",
                Some(&h.test_key),
                Some(in_band().to_string()),
                &headers,
            )
            .await
        }
    };
    let r = decide(None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["signature"]["algorithm"], "Ed25519-Merkle-batch");
    assert!(r.body["signature"]["batch"]["size"].as_u64().unwrap() >= 1);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/json",
        "the signed bytes are sent as JSON"
    );
    assert_signed(&h, &r.body).await;
    let r = decide(Some("single")).await;
    assert_eq!(r.body["signature"]["algorithm"], "Ed25519");
    assert!(r.body["signature"].get("batch").is_none());
    assert_signed(&h, &r.body).await;
    let r = decide(Some("batch")).await;
    assert_eq!(r.body["signature"]["algorithm"], "Ed25519-Merkle-batch");
    assert_signed(&h, &r.body).await;
    let r = decide(Some("fast")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.body.get("status").is_none(),
        "no verdict for a bad header"
    );
}

#[tokio::test]
async fn concurrent_decisions_share_batches_and_each_verifies_alone() {
    let h = std::sync::Arc::new(Harness::new());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = in_band();
            req["action"]["type"] = json!(format!("T{i}"));
            h.decide(&h.test_key, req).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_signed(&h, &r.body).await;
        // Grants only where they are used: none was asked for.
        assert!(r.body.get("grant").is_none(), "{}", r.text);
    }
}

#[tokio::test]
async fn decide_allows_signs_and_throttles_exactly() {
    let h = Harness::new();
    for i in 0..4 {
        let r = h.decide(&h.test_key, in_band()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "ALLOW", "request {i}: {}", r.text);
        assert_eq!(r.body["gate"], "permit");
        assert_eq!(r.body["environment"], "test");
        assert!(r.body["ledger"]["seq"].as_u64().is_some());
        assert!(r.headers.get("x-request-id").is_some());
        assert_signed(&h, &r.body).await;
    }
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.body["status"], "BLOCK");
    assert_eq!(r.body["gate"], "throttle");
    assert_eq!(r.body["retry_after_ms"], 5000);
    assert_signed(&h, &r.body).await;
    h.clock.advance(5000);
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.body["status"], "ALLOW");
}

#[tokio::test]
async fn every_gate_is_reachable_over_http() {
    let h = Harness::new();
    let mut req = in_band();
    req["signals"]["volatility"] = json!(0.3);
    let r = h.decide(&h.test_key, req).await;
    assert_eq!(
        (r.body["status"].clone(), r.body["gate"].clone()),
        (json!("BLOCK"), json!("reality"))
    );
    let mut req = in_band();
    req["signals"]["risk_score"] = json!(0.9);
    let r = h.decide(&h.test_key, req).await;
    assert_eq!(
        (r.body["status"].clone(), r.body["gate"].clone()),
        (json!("BLOCK"), json!("policy"))
    );
    assert_eq!(r.body["reason_codes"], json!(["SURVIVAL_SCORE_LOW"]));
    let mut req = in_band();
    req["policy_refs"] = json!(["no-such-policy"]);
    let r = h.decide(&h.test_key, req).await;
    assert_eq!(r.body["reason_codes"], json!(["POLICY_NOT_FOUND"]));
    let mut req = in_band();
    req["mode"] = json!("shadow");
    req["signals"]["volatility"] = json!(0.9);
    let r = h.decide(&h.test_key, req).await;
    assert_eq!(r.body["status"], "ALLOW");
    assert_eq!(r.body["shadow"]["would_be"], "BLOCK");
    assert_eq!(r.body["shadow"]["gate"], "reality");
}

#[tokio::test]
async fn decisions_and_dossiers_are_readable_and_verify() {
    let h = Harness::new();
    let r = h.decide(&h.test_key, in_band()).await;
    let id = r.body["decision_id"].as_str().unwrap().to_owned();
    let got = h.get(&format!("/v1/decisions/{id}"), &h.test_key).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["status"], "ALLOW");
    assert_eq!(got.body["ledger"], r.body["ledger"]);
    assert_signed(&h, &got.body).await;
    let d = h.get(&format!("/v1/dossiers/{id}"), &h.test_key).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert_eq!(d.body["verdict"]["status"], "ALLOW");
    assert!(d.body["trace"].as_array().unwrap().len() >= 4);
    let dossier: tollgate_ledger::Dossier = serde_json::from_value(d.body.clone()).unwrap();
    let verified = tollgate_ledger::verify_dossier(&dossier, None).expect("the dossier verifies");
    assert!(verified.entries > 0);
    // A dossier with one changed byte in the recorded verdict does not.
    let mut bad = dossier.clone();
    bad.entry.body["verdict"]["status"] = json!("BLOCK");
    assert!(tollgate_ledger::verify_dossier(&bad, None).is_err());
}

#[tokio::test]
async fn unauthenticated_and_unscoped_calls_are_refused() {
    let h = Harness::new();
    let r = h
        .call(Method::POST, "/v1/decisions", None, Some(in_band()))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"], "unauthorized");
    assert!(r.body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let r = h
        .decide("tg_test_0000000000000000000000000000", in_band())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .call_raw(
            Method::POST,
            "/v1/decisions",
            None,
            Some(in_band().to_string()),
            &[("authorization", "Basic abc")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The test key has decide and outcomes, not admin.
    for (method, path) in [
        (Method::GET, "/v1/admin/keys"),
        (Method::GET, "/v1/admin/overrides"),
        (Method::GET, "/v1/admin/sources"),
        (Method::GET, "/v1/audit/verify"),
        (Method::GET, "/v1/audit/export"),
    ] {
        let r = h.call(method, path, Some(&h.test_key), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_eq!(r.body["error"], "forbidden");
    }
    // A key without `decide` cannot decide.
    let r = h
        .post(
            "/v1/admin/keys",
            &h.admin,
            json!({"environment": "test", "scopes": ["outcomes"]}),
        )
        .await;
    let outcomes_only = r.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        h.decide(&outcomes_only, in_band()).await.status,
        StatusCode::FORBIDDEN
    );
    // Unauthenticated surface: health, jwks, signing keys, metrics.
    for path in [
        "/v1/health",
        "/.well-known/jwks.json",
        "/v1/signing-keys",
        "/metrics",
    ] {
        let r = h.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn revoked_and_expired_keys_stop_working_at_once() {
    let h = Harness::new();
    let r = h
        .post(
            "/v1/admin/keys",
            &h.admin,
            json!({"environment": "test", "scopes": ["decide"], "expires_in_s": 60}),
        )
        .await;
    let (secret, id) = (
        r.body["secret"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(h.decide(&secret, in_band()).await.status, StatusCode::OK);
    h.clock.advance(61_000);
    assert_eq!(
        h.decide(&secret, in_band()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = h
        .post("/v1/admin/keys", &h.admin, json!({"environment": "test"}))
        .await;
    let (secret, id2) = (
        r.body["secret"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(h.decide(&secret, in_band()).await.status, StatusCode::OK);
    let r = h
        .post(&format!("/v1/admin/keys/{id2}/revoke"), &h.admin, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        h.decide(&secret, in_band()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _ = id;
    // Listing shows ids, never secrets or hashes.
    let r = h.get("/v1/admin/keys", &h.admin).await;
    assert!(!r.text.contains(&secret));
    assert!(!r.text.contains("hash"));
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_on_every_endpoint() {
    let h = Harness::new();
    let (a_admin, a_live, _) = h.tenant("alpha").await;
    let (b_admin, b_live, b_test) = h.tenant("beta").await;
    let a_decision = h.decide(&a_live, in_band()).await.body["decision_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_override = h
        .post(
            "/v1/admin/overrides",
            &a_admin,
            json!({"scope": "actor", "value": "x", "reason": "t"}),
        )
        .await;
    let a_override = a_override.body["id"].as_str().unwrap().to_owned();
    let a_key = h.get("/v1/admin/keys", &a_admin).await.body["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Tenant B's keys, on tenant A's ids: 404 and no data, exactly as for a made-up id.
    for key in [&b_admin, &b_live, &b_test] {
        for path in [
            format!("/v1/decisions/{a_decision}"),
            format!("/v1/dossiers/{a_decision}"),
        ] {
            let r = h.get(&path, key).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
            assert!(!r.text.contains("OPEN_POSITION"));
        }
    }
    let missing = h
        .get(
            "/v1/decisions/dec_00000000000000000000000000000000",
            &b_live,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let r = h
        .post(
            &format!("/v1/admin/keys/{a_key}/revoke"),
            &b_admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/admin/overrides/{a_override}"),
            Some(&b_admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.get("/v1/admin/keys?tenant=alpha", &b_admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .post("/v1/admin/keys", &b_admin, json!({"tenant": "alpha"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Outcomes for A's decision reported with B's key: rejected as unknown.
    let r = h.post("/v1/outcomes", &b_live, json!({
        "stimulus_id": a_decision, "magnitude": 0.5, "confidence": 0.9, "signature": "AAAA",
        "source": "s", "context_type": "OPEN_POSITION", "outcome_observed_at": "2026-03-10T12:00:01Z"
    })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.text.contains("OPEN_POSITION\""));
    // Lists only show the caller's own data.
    assert!(
        !h.get("/v1/admin/overrides", &b_admin)
            .await
            .text
            .contains(&a_override)
    );
    assert!(
        !h.get("/v1/admin/keys", &b_admin)
            .await
            .text
            .contains(&a_key)
    );
    let tenants = h.get("/v1/admin/tenants", &b_admin).await;
    assert_eq!(tenants.body["tenants"].as_array().unwrap().len(), 1);
    // Tenant B's audit export holds none of A's entries.
    let export = h.get("/v1/audit/export", &b_admin).await;
    assert!(!export.text.contains(&a_decision));
    // B's own decision is visible to B.
    let b_dec = h.decide(&b_live, in_band()).await.body["decision_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.get(&format!("/v1/decisions/{b_dec}"), &b_live)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.get(&format!("/v1/decisions/{b_dec}"), &a_live)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let h = Harness::with_config(|c| c.max_body_bytes = 4096);
    let big = json!({"action": {"type": "X", "blob": "x".repeat(10_000)}});
    let r = h.decide(&h.test_key, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["error"], "payload_too_large");
    let r = h.decide(&h.test_key, json!({"actor": {"id": "a"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "action"]));
    let r = h
        .decide(
            &h.test_key,
            json!({"action": {"type": "X"}, "signals": {"volatility": 1.5}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["signals", "volatility"]));
    let r = h
        .decide(
            &h.test_key,
            json!({"action": {"type": "X"}, "mode": "sometimes"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "mode"]));
    let r = h
        .call_raw(
            Method::POST,
            "/v1/decisions",
            Some(&h.test_key),
            Some("{not json".into()),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");
    let deep = format!(
        "{{\"action\": {{\"type\": \"X\", \"a\": {}1{}}}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let r = h
        .call_raw(
            Method::POST,
            "/v1/decisions",
            Some(&h.test_key),
            Some(deep),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"][0]["type"], "json_too_deep");
    let r = h
        .decide(
            &h.test_key,
            json!({"tenant_id": "someone-else", "action": {"type": "X"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // None of these was recorded: the ledger has no decision.
    let export = h.get("/v1/audit/export", &h.admin).await;
    assert!(!export.text.contains("\"decision\""), "{}", export.text);
    let r = h
        .call(Method::GET, "/v1/nothing-here", Some(&h.test_key), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .call(Method::PUT, "/v1/decisions", Some(&h.test_key), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["error"], "method_not_allowed");
}

#[tokio::test]
async fn monthly_quota_counts_live_keys_only() {
    let h = Harness::new();
    let (_, live, test) = h.tenant("quota").await;
    let r = h
        .post(
            "/v1/admin/tenants",
            &h.admin,
            json!({"id": "quota", "monthly_quota": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut req = in_band();
    req["signals"]["volatility"] = json!(0.9); // blocked by reality: still a metered decision
    assert_eq!(h.decide(&live, req.clone()).await.status, StatusCode::OK);
    assert_eq!(h.decide(&live, req.clone()).await.status, StatusCode::OK);
    let r = h.decide(&live, req.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"], "quota_exceeded");
    assert_eq!(r.body["resets_at"], "2026-04-01T00:00:00Z");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("2026-04-01T00:00:00Z")
    );
    // Test keys are not counted.
    assert_eq!(h.decide(&test, req.clone()).await.status, StatusCode::OK);
    // A new month resets it.
    h.clock.advance(25 * 24 * 3600 * 1000);
    assert_eq!(h.decide(&live, req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn per_key_rate_limit_answers_429_with_retry_after() {
    let h = Harness::with_config(|c| {
        c.key_rate_burst = 3;
        c.key_rate_per_second = 1;
    });
    for _ in 0..3 {
        assert_eq!(
            h.decide(&h.test_key, in_band()).await.status,
            StatusCode::OK
        );
    }
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"], "rate_limited");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    h.clock.advance(1000);
    assert_eq!(
        h.decide(&h.test_key, in_band()).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_entry_of_a_ledger_longer_than_a_page() {
    let h = Harness::new();
    let (admin, _, _) = h.tenant("long").await;
    let before = h.get("/v1/audit/export", &admin).await.text.lines().count();
    let acks: Vec<_> = (0..2_345)
        .map(|i| {
            h.state.store().submit(tollgate_ledger::EntryDraft {
                tenant: "long".into(),
                time: "2026-03-10T12:00:00.000Z".into(),
                kind: tollgate_ledger::EntryKind::OverrideSet,
                body: json!({"i": i}),
            })
        })
        .collect();
    for a in acks {
        a.await.unwrap();
    }
    let r = h.get("/v1/audit/export", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), before + 2_345);
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["seq"], json!(i), "entries in order, none missing");
    }
    assert_eq!(lines.last().unwrap()["body"]["i"], 2_344);
}
