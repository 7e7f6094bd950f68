//! Several nodes on one shared store (cluster mode's contract, checked with SQLite):
//! two `AppState`s on one store object model two nodes — each has its own caches,
//! meter, review lock and throttle, and they share only the store (and Redis).
//!
//! With `Config::shared_state()` a key revoked on one node is refused on the other on
//! the next request, overrides apply everywhere at once, the monthly quota is reserved
//! atomically in the store, and an approval is used once. Each test that can also
//! show the per-node behaviour the switch replaces (`assume_shared_store = false`)
//! does, so it is seen to matter.
//!
//! The Redis throttle tests need `TOLLGATE_TEST_REDIS_URL`; unset, they print that they
//! are skipped (and fail under `CI=true`).

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{Harness, in_band};
use serde_json::{Value, json};
use tollgate_server::Config;
use tollgate_server::config::{StoreKind, ThrottleKind};
use tollgate_store::PolicyRecord;

fn two_nodes(edit: impl Fn(&mut Config)) -> (Arc<Harness>, Arc<Harness>) {
    let a = Harness::with_config(&edit);
    let b = a.node(a.state.config(), &edit);
    (Arc::new(a), Arc::new(b))
}

fn shared(c: &mut Config) {
    c.assume_shared_store = true;
}

/// The id of the key whose secret is `secret`, from the tenant's key list.
async fn key_id(h: &Harness, admin: &str, secret: &str) -> String {
    let hash = tollgate_server::auth::hash_secret(secret);
    let record = h.state.store().api_key_by_hash(&hash).unwrap().unwrap();
    let listed = h.get("/v1/admin/keys", admin).await;
    assert!(listed.body["keys"].to_string().contains(&record.id));
    record.id
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_on_the_other_on_the_next_request() {
    for is_shared in [true, false] {
        let (a, b) = two_nodes(|c| c.assume_shared_store = is_shared);
        let (admin, live, _) = a.tenant("acme").await;
        // Node B has used the key (and, per node, would have cached it).
        assert_eq!(b.decide(&live, in_band()).await.status, StatusCode::OK);
        let id = key_id(&a, &admin, &live).await;
        let r = a
            .post(&format!("/v1/admin/keys/{id}/revoke"), &admin, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            a.decide(&live, in_band()).await.status,
            StatusCode::UNAUTHORIZED
        );
        let on_b = b.decide(&live, in_band()).await.status;
        if is_shared {
            assert_eq!(on_b, StatusCode::UNAUTHORIZED, "the other node refuses it");
        } else {
            // What the shared mode exists for: a node's own cache kept the key.
            assert_eq!(on_b, StatusCode::OK, "a per-node cache is stale");
        }
    }
}

#[tokio::test]
async fn overrides_set_and_cleared_on_one_node_apply_on_the_other() {
    for is_shared in [true, false] {
        let (a, b) = two_nodes(|c| c.assume_shared_store = is_shared);
        let (admin, live, _) = a.tenant("acme").await;
        let r = b.decide(&live, in_band()).await;
        assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
        let set = a
            .post(
                "/v1/admin/overrides",
                &admin,
                json!({"scope": "actor", "value": "agent-1", "reason": "incident 42"}),
            )
            .await;
        assert_eq!(set.status, StatusCode::CREATED, "{}", set.text);
        let id = set.body["id"].as_str().unwrap().to_owned();
        a.clock.advance(5000); // a fresh token, so only the override can block
        let r = b.decide(&live, in_band()).await;
        if !is_shared {
            assert_eq!(r.body["status"], "ALLOW", "a per-node cache is stale");
            continue;
        }
        assert_eq!(
            (r.body["status"].clone(), r.body["gate"].clone()),
            (json!("BLOCK"), json!("override")),
            "{}",
            r.text
        );
        let cleared = a
            .call(
                axum::http::Method::DELETE,
                &format!("/v1/admin/overrides/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
        a.clock.advance(5000);
        let r = b.decide(&live, in_band()).await;
        assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_monthly_quota_is_one_limit_for_all_nodes() {
    for is_shared in [true, false] {
        let (a, b) = two_nodes(|c| c.assume_shared_store = is_shared);
        let (_, live, _) = a.tenant("quota").await;
        let r = a
            .post(
                "/v1/admin/tenants",
                &a.admin,
                json!({"id": "quota", "monthly_quota": 7}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let mut req = in_band();
        req["signals"]["volatility"] = json!(0.9); // blocked by reality: still metered
        let mut tasks = Vec::new();
        for i in 0..40 {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let (live, req) = (live.clone(), req.clone());
            tasks.push(tokio::spawn(
                async move { node.decide(&live, req).await.status },
            ));
        }
        let mut decided = 0;
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::OK => decided += 1,
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("unexpected {other}"),
            }
        }
        if is_shared {
            assert_eq!((decided, refused), (7, 33));
            // Every node reads the shared counter.
            let period = "2026-03";
            let store = a.state.store();
            assert_eq!(store.usage("quota", period, "decisions").unwrap(), 7);
        } else {
            // Per node, each node allowed the whole quota.
            assert_eq!((decided, refused), (14, 26));
        }
    }
}

#[tokio::test]
async fn a_failed_decision_gives_its_quota_unit_back_in_the_store() {
    // Redis that is not there: the decision fails closed (503), and the unit the
    // shared store reserved for it is released.
    let (a, _) = two_nodes(|c| {
        c.assume_shared_store = true;
        c.throttle = ThrottleKind::Redis;
        c.redis_url = Some("redis://127.0.0.1:1/".into());
    });
    let (_, live, _) = a.tenant("acme").await;
    let before = a.state.store().head("acme").unwrap().map_or(0, |h| h.size);
    let r = a.decide(&live, in_band()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["error"], "throttle_unavailable");
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    assert!(r.body.get("status").is_none(), "no verdict: {}", r.text);
    assert_eq!(
        a.state.store().head("acme").unwrap().map_or(0, |h| h.size),
        before,
        "nothing recorded"
    );
    assert_eq!(
        a.state
            .store()
            .usage("acme", "2026-03", "decisions")
            .unwrap(),
        0
    );
}

const TREASURY: &str = r#"id: treasury
rules:
  - name: large-transfer
    when: 'action.type == "TRANSFER_FUNDS" && action.amount > 10000'
    effect: review
    reason_code: AMOUNT_OVER_LIMIT
    review: {approvers: [treasury], expires_in: 1h}
"#;

fn transfer(amount: u64) -> Value {
    json!({
        "actor": {"id": "treasury-bot"},
        "action": {"type": "TRANSFER_FUNDS", "amount": amount, "to": "ACME-123"},
        "policy_refs": ["treasury@1"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_is_used_once_across_nodes() {
    let (a, b) = two_nodes(shared);
    let (admin, agent, _) = a.tenant("bank").await;
    a.state
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
    let r = a
        .post(
            "/v1/admin/keys",
            &admin,
            json!({"environment": "live", "scopes": ["review"], "groups": ["treasury"]}),
        )
        .await;
    let reviewer = r.body["secret"].as_str().unwrap().to_owned();
    for round in 0..10 {
        let amount = 20_000 + round;
        let r = a.decide(&agent, transfer(amount)).await;
        assert_eq!(r.body["status"], "REVIEW_REQUIRED", "{}", r.text);
        let review = r.body["review_id"].as_str().unwrap().to_owned();
        let r = b
            .post(
                &format!("/v1/reviews/{review}/approve"),
                &reviewer,
                json!({}),
            )
            .await;
        assert_eq!(r.body["status"], "approved", "{}", r.text);
        // Twelve identical requests at once, half on each node: one ALLOW at gate
        // review; the others are reviews of their own.
        let mut tasks = Vec::new();
        for i in 0..12 {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let agent = agent.clone();
            tasks.push(tokio::spawn(async move {
                node.decide(&agent, transfer(amount)).await
            }));
        }
        let mut allowed = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            match (r.body["status"].as_str(), r.body["gate"].as_str()) {
                (Some("ALLOW"), Some("review")) => allowed += 1,
                (Some("REVIEW_REQUIRED"), _) => {}
                other => panic!("unexpected {other:?}: {}", r.text),
            }
        }
        assert_eq!(allowed, 1, "round {round}");
        let r = b.get(&format!("/v1/reviews/{review}"), &reviewer).await;
        assert_eq!(r.body["status"], "consumed", "{}", r.text);
        assert!(r.body["consumed_by"].is_string(), "{}", r.text);
    }
}

#[tokio::test]
async fn configuration_of_store_and_throttle() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(
        (c.store, c.throttle),
        (StoreKind::Sqlite, ThrottleKind::Memory)
    );
    assert!(!c.shared_state(), "the embedded default shares nothing");
    let c = Config::load(
        None,
        env(&[
            ("TOLLGATE_STORE", "postgres"),
            ("TOLLGATE_THROTTLE", "redis"),
            ("TOLLGATE_REDIS_URL", "redis://127.0.0.1:6379/"),
            ("TOLLGATE_REDIS_KEY_PREFIX", "tg-prod:"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (c.store, c.throttle),
        (StoreKind::Postgres, ThrottleKind::Redis)
    );
    assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379/"));
    assert_eq!(c.redis_key_prefix, "tg-prod:");
    assert!(c.shared_state());
    assert!(Config::load(None, env(&[("TOLLGATE_THROTTLE", "memcached")])).is_err());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(
        &file,
        "throttle = \"redis\"\nredis_url = \"redis://10.0.0.5:6379/\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&file), env(&[])).unwrap();
    assert_eq!(c.throttle, ThrottleKind::Redis);
    std::fs::write(&file, "assume_shared_store = true\n").unwrap();
    assert!(
        Config::load(Some(&file), env(&[])).is_err(),
        "not a file key"
    );
    // A throttle that cannot work stops the server from opening.
    let open = |edit: &dyn Fn(&mut Config)| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        edit(&mut config);
        tollgate_server::App::open(config)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = open(&|c| c.throttle = ThrottleKind::Redis);
    assert!(e.contains("redis_url"), "{e}");
    let e = open(&|c| {
        c.throttle = ThrottleKind::Redis;
        c.redis_url = Some("http://not-redis".into());
    });
    assert!(e.contains("Redis URL"), "{e}");
}

fn redis_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "TOLLGATE_TEST_REDIS_URL is not set under CI=true: the Redis throttle tests must run in CI"
            );
            eprintln!("skipped: TOLLGATE_TEST_REDIS_URL is not set (no Redis to test against)");
            None
        }
    }
}

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tollgate-test:{}:{nanos}:", std::process::id())
}

/// Counts (ALLOW, BLOCK at throttle) over `n` concurrent in-band decisions spread
/// over both nodes at one instant.
async fn burst(a: &Arc<Harness>, b: &Arc<Harness>, key: &str, n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let node = Arc::clone(if i % 2 == 0 { a } else { b });
        let key = key.to_owned();
        tasks.push(tokio::spawn(
            async move { node.decide(&key, in_band()).await },
        ));
    }
    let (mut allowed, mut throttled) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        match (r.body["status"].as_str(), r.body["gate"].as_str()) {
            (Some("ALLOW"), _) => allowed += 1,
            (Some("BLOCK"), Some("throttle")) => {
                assert!(r.body["retry_after_ms"].as_u64().unwrap() > 0, "{}", r.text);
                throttled += 1;
            }
            other => panic!("unexpected {other:?}: {}", r.text),
        }
    }
    (allowed, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_redis_throttle_two_nodes_share_one_bucket() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let (a, b) = two_nodes(|c| {
        c.assume_shared_store = true;
        c.throttle = ThrottleKind::Redis;
        c.redis_url = Some(url.clone());
        c.redis_key_prefix = prefix.clone();
    });
    let (_, live, _) = a.tenant("acme").await;
    // csc-default: 4 back to back, then one every 5 s — for the tenant, not per node.
    assert_eq!(burst(&a, &b, &live, 20).await, (4, 16));
    a.clock.advance(4999);
    assert_eq!(burst(&a, &b, &live, 6).await, (0, 6));
    a.clock.advance(1);
    assert_eq!(burst(&a, &b, &live, 6).await, (1, 5));
    a.clock.advance(10_000);
    assert_eq!(burst(&a, &b, &live, 6).await, (2, 4));
    // Shadow and dry-run decisions take no token, in Redis as in memory.
    a.clock.advance(20_000);
    let mut shadow = in_band();
    shadow["mode"] = json!("shadow");
    for _ in 0..6 {
        let r = b.decide(&live, shadow.clone()).await;
        assert_eq!(r.body["status"], "ALLOW", "{}", r.text);
    }
    assert_eq!(burst(&a, &b, &live, 8).await, (4, 4));
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_memory_throttles_each_node_has_its_own_bucket() {
    // The control for the test above: what the Redis throttle is for.
    let (a, b) = two_nodes(shared);
    let (_, live, _) = a.tenant("acme").await;
    assert_eq!(burst(&a, &b, &live, 20).await, (8, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_throttle_and_the_memory_throttle_give_the_same_verdicts() {
    // One node with each backend, the same requests at the same times: the same
    // verdicts and the same throttle traces, step by step.
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let memory = Harness::new();
    let redis = Harness::with_config(|c| {
        c.throttle = ThrottleKind::Redis;
        c.redis_url = Some(url.clone());
        c.redis_key_prefix = prefix.clone();
    });
    let steps: [i64; 12] = [0, 0, 0, 0, 0, 1200, 3800, 5000, 5000, 9999, 10_001, 31_000];
    for dt in steps {
        memory.clock.advance(dt);
        redis.clock.advance(dt);
        let m = memory.decide(&memory.test_key, in_band()).await;
        let r = redis.decide(&redis.test_key, in_band()).await;
        assert_eq!(m.status, StatusCode::OK);
        assert_eq!(r.status, StatusCode::OK);
        for field in ["status", "gate", "reason_codes", "retry_after_ms"] {
            assert_eq!(m.body[field], r.body[field], "{field} after +{dt} ms");
        }
        let dm = memory
            .get(
                &format!("/v1/dossiers/{}", m.body["decision_id"].as_str().unwrap()),
                &memory.test_key,
            )
            .await;
        let dr = redis
            .get(
                &format!("/v1/dossiers/{}", r.body["decision_id"].as_str().unwrap()),
                &redis.test_key,
            )
            .await;
        let throttle = |d: &Value| {
            d["trace"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["gate"] == "throttle")
                .cloned()
                .unwrap()
        };
        assert_eq!(throttle(&dm.body), throttle(&dr.body), "after +{dt} ms");
    }
    cleanup(&url, &prefix).await;
}

async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the throttle wrote under its prefix");
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut con)
        .await
        .unwrap();
}
