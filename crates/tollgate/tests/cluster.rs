//! Cluster mode with the real binary: three `tollgate serve` processes on one
//! PostgreSQL database (`store = "postgres"`), one tenant, load on all three.
//!
//! Selected by `TOLLGATE_TEST_POSTGRES_URL` (a server URL; each test creates its own
//! database and drops it). Unset: the tests print that they are skipped — except
//! under `CI=true`, where a missing service fails them. `TOLLGATE_TEST_BIN` runs
//! another `tollgate` binary than the one cargo built (for a target directory shared
//! by several checkouts, where `target/debug/tollgate` is whichever was built last).

mod common;
use common::free_port;

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn pg_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but TOLLGATE_TEST_POSTGRES_URL is not set: the cluster tests must run in CI"
            )
        }
        _ => {
            eprintln!("skipped: TOLLGATE_TEST_POSTGRES_URL is not set (cluster tests)");
            None
        }
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    format!("{base}/{db}{query}")
}

fn admin_sql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let h = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = h.await;
    });
}

/// A database for one test, dropped at the end.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin_url: &str) -> Database {
        let name = format!(
            "tollgate_cluster_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        admin_sql(admin_url, &format!("CREATE DATABASE {name}"));
        Database {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        admin_sql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

struct Node {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn start_node(db: &Database, extra: &[(&str, String)]) -> Node {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let child = Command::new(
        std::env::var("TOLLGATE_TEST_BIN").unwrap_or(env!("CARGO_BIN_EXE_tollgate").to_owned()),
    )
    .arg("serve")
    .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
    .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
    .env("TOLLGATE_STORE", "postgres")
    .env("TOLLGATE_DATABASE_URL", &db.url)
    .env("TOLLGATE_CHECKPOINT_INTERVAL_MS", "200")
    .env("TOLLGATE_KEY_RATE_BURST", "100000")
    .env("TOLLGATE_KEY_RATE_PER_SECOND", "100000")
    .env("TOLLGATE_LOG", "info")
    .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http()
            .get(format!("{url}/v1/health"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Node { child, url, dir }
}

fn health(url: &str) -> Option<Value> {
    http()
        .get(format!("{url}/v1/health"))
        .send()
        .ok()?
        .json()
        .ok()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three nodes; node 0 starts first, bootstraps the tenant and becomes the
/// sequencer. Returns the nodes and the bootstrap (admin, test) secrets.
fn cluster(db: &Database, extra: &[(&str, String)]) -> (Vec<Node>, String, String) {
    let first = start_node(db, extra);
    wait_for("node 0 to become the sequencer", 20, || {
        health(&first.url).is_some_and(|h| h["sequencer"] == json!(true))
    });
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(first.dir.path().join("data/bootstrap-keys.json")).unwrap(),
    )
    .unwrap();
    let admin = boot["admin_key"]["secret"].as_str().unwrap().to_owned();
    let test = boot["test_key"]["secret"].as_str().unwrap().to_owned();
    let mut nodes = vec![first];
    nodes.push(start_node(db, extra));
    nodes.push(start_node(db, extra));
    for n in &nodes[1..] {
        assert!(
            !n.dir.path().join("data/bootstrap-keys.json").exists(),
            "only the first node bootstraps"
        );
        assert_eq!(health(&n.url).unwrap()["sequencer"], json!(false));
    }
    (nodes, admin, test)
}

fn decide(url: &str, key: &str, i: u64, idempotency: Option<&str>) -> Result<(u16, Value), String> {
    let mut req = http()
        .post(format!("{url}/v1/decisions"))
        .bearer_auth(key)
        .json(&json!({"action": {"type": "OPEN_POSITION", "n": i}, "signals": {"volatility": 0.05, "confidence": 0.95}}));
    if let Some(k) = idempotency {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().map_err(|e| e.to_string())?;
    let code = res.status().as_u16();
    let body: Value = res.json().map_err(|e| e.to_string())?;
    Ok((code, body))
}

fn get(url: &str, key: &str) -> (u16, Value) {
    let res = http().get(url).bearer_auth(key).send().unwrap();
    let code = res.status().as_u16();
    (code, res.json().unwrap_or(Value::Null))
}

/// Every acknowledged decision is sequenced (asked on `url`), each at its own seq.
fn check_all_sequenced(url: &str, admin: &str, acked: &[String]) -> BTreeSet<u64> {
    let mut seqs = BTreeSet::new();
    for id in acked {
        let (code, body) = get(&format!("{url}/v1/decisions/{id}"), admin);
        assert_eq!(code, 200, "{id}: {body}");
        assert_eq!(body["ledger"]["status"], "sequenced", "{body}");
        let seq = body["ledger"]["seq"].as_u64().unwrap();
        assert!(seqs.insert(seq), "two decisions at seq {seq}");
    }
    seqs
}

fn verify(url: &str, admin: &str) -> Value {
    let (code, body) = get(&format!("{url}/v1/audit/verify"), admin);
    assert_eq!(code, 200, "{body}");
    body
}

/// Load on all three nodes, 100 concurrent duplicates of one idempotency key spread
/// over the nodes, and the tenant's one chain verifies.
#[test]
fn three_nodes_share_one_chain_and_one_idempotency_record() {
    let Some(admin_url) = pg_url() else { return };
    let db = Database::create(&admin_url);
    let (nodes, admin, test) = cluster(&db, &[]);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();

    // Concurrent load: 6 threads per node, 30 decisions each.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let pending_answers = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..18u64)
        .map(|t| {
            let url = urls[(t % 3) as usize].clone();
            let key = test.clone();
            let acked = acked.clone();
            let pending_answers = pending_answers.clone();
            std::thread::spawn(move || {
                for i in 0..30 {
                    let (code, body) = decide(&url, &key, t * 1000 + i, None).unwrap();
                    assert_eq!(code, 200, "{body}");
                    if body["ledger"]["status"] == "pending" {
                        assert!(body["ledger"]["seq"].is_null());
                        *pending_answers.lock().unwrap() += 1;
                    }
                    acked
                        .lock()
                        .unwrap()
                        .push(body["decision_id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // 100 concurrent requests with one idempotency key, over the three nodes.
    let ids: Vec<String> = (0..100usize)
        .map(|t| {
            let url = urls[t % 3].clone();
            let key = test.clone();
            std::thread::spawn(move || {
                let (code, body) = decide(&url, &key, 424242, Some("dup-key-1")).unwrap();
                assert_eq!(code, 200, "{body}");
                body["decision_id"].as_str().unwrap().to_owned()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 1, "one decision for one idempotency key");

    let mut acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 540);
    acked.push(ids[0].clone());
    wait_for("the sequencer to integrate every entry", 30, || {
        health(&urls[0]).is_some_and(|h| h["pending_entries"] == json!(0))
    });
    // Asked on a node that is not the sequencer.
    let seqs = check_all_sequenced(&urls[1], &admin, &acked);
    assert_eq!(seqs.len(), 541);
    for url in &urls {
        let v = verify(url, &admin);
        assert_eq!(v["ok"], json!(true), "{v}");
        // The decisions and nothing else of this test are in the tenant's ledger.
        assert_eq!(v["entries"], json!(541), "{v}");
    }
    // The export holds the idempotent decision once.
    let res = http()
        .get(format!("{}/v1/audit/export", urls[2]))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    let export = res.text().unwrap();
    assert_eq!(export.matches(ids[0].as_str()).count(), 1);
    // A node of the cluster stops gracefully on SIGTERM (exit 0).
    #[cfg(unix)]
    {
        let mut nodes = nodes;
        let node = &mut nodes[2];
        let pid = node.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = node.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
    }
    eprintln!(
        "cluster: 541 decisions acknowledged ({} answered pending), all sequenced at distinct seqs, chain verifies on every node",
        pending_answers.lock().unwrap()
    );
}

/// SIGKILL the sequencer node under load: another node takes over, every
/// acknowledged verdict is sequenced, the chain verifies with no gap and no fork.
#[test]
fn killing_the_sequencer_loses_no_acknowledged_verdict() {
    let Some(admin_url) = pg_url() else { return };
    let db = Database::create(&admin_url);
    let (mut nodes, admin, test) = cluster(&db, &[]);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let failed = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..12u64)
        .map(|t| {
            let node = (t % 3) as usize;
            let url = urls[node].clone();
            let key = test.clone();
            let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    match decide(&url, &key, t * 100_000 + i, None) {
                        Ok((200, body)) => {
                            acked
                                .lock()
                                .unwrap()
                                .insert(body["decision_id"].as_str().unwrap().to_owned(), node);
                        }
                        // No answer, or no verdict (503): not acknowledged.
                        _ => {
                            *failed.lock().unwrap() += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = acked.lock().unwrap().len();
    assert!(before > 0);
    // SIGKILL (Child::kill) the sequencer, node 0, in the middle of the load.
    nodes[0].child.kill().unwrap();
    nodes[0].child.wait().unwrap();
    let killed_at = Instant::now();
    wait_for("another node to become the sequencer", 20, || {
        urls[1..]
            .iter()
            .any(|u| health(u).is_some_and(|h| h["sequencer"] == json!(true)))
    });
    let takeover = killed_at.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let acked: Vec<(String, usize)> = acked.lock().unwrap().clone().into_iter().collect();
    let after_kill = acked.len() - before;
    assert!(after_kill > 0, "the surviving nodes kept deciding");
    wait_for("every entry to be integrated", 30, || {
        health(&urls[1]).is_some_and(|h| h["pending_entries"] == json!(0))
    });
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    let seqs = check_all_sequenced(&urls[2], &admin, &ids);
    let v = verify(&urls[1], &admin);
    assert_eq!(v["ok"], json!(true), "{v}");
    // No gap, no fork: the chain verifies link by link from seq 0 to its head, and
    // every acknowledged verdict has its own seq inside it (entries beyond the
    // acknowledged ones are verdicts whose answer the kill cut off).
    let entries = v["entries"].as_u64().unwrap();
    assert_eq!(seqs.len(), acked.len());
    assert!(entries >= acked.len() as u64);
    assert!(seqs.iter().all(|s| *s < entries));
    eprintln!(
        "sequencer kill: {} acknowledged ({before} before the kill, {after_kill} after; {} from the killed node), {} unanswered, takeover in {} ms, {entries} entries verify",
        acked.len(),
        acked.iter().filter(|(_, n)| *n == 0).count(),
        failed.lock().unwrap(),
        takeover.as_millis()
    );
}

/// A key revoked on one node is refused on the others on their next request.
#[test]
fn a_key_revoked_on_one_node_is_refused_on_the_others() {
    let Some(admin_url) = pg_url() else { return };
    let db = Database::create(&admin_url);
    let (nodes, admin, _) = cluster(&db, &[]);
    let res = http()
        .post(format!("{}/v1/admin/keys", nodes[0].url))
        .bearer_auth(&admin)
        .json(&json!({"environment": "test", "scopes": ["decide"]}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let created: Value = res.json().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    for n in &nodes {
        assert_eq!(decide(&n.url, &secret, 1, None).unwrap().0, 200);
    }
    let res = http()
        .post(format!(
            "{}/v1/admin/keys/{}/revoke",
            nodes[0].url,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    for n in &nodes {
        assert_eq!(
            decide(&n.url, &secret, 2, None).unwrap().0,
            401,
            "{}",
            n.url
        );
    }
}

fn redis_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but TOLLGATE_TEST_REDIS_URL is not set: the cluster tests must run in CI"
            )
        }
        _ => {
            eprintln!("skipped: TOLLGATE_TEST_REDIS_URL is not set (shared bucket test)");
            None
        }
    }
}

/// With `throttle = "redis"`, concurrent load on all three nodes takes no more
/// permits than one shared bucket allows (csc-default: capacity 4 per tenant, one
/// token back every 5 s), where three in-memory buckets would allow 12.
#[test]
fn permits_never_exceed_one_shared_bucket() {
    let Some(admin_url) = pg_url() else { return };
    let Some(redis) = redis_url() else { return };
    let db = Database::create(&admin_url);
    let prefix = format!("tollgate-cluster-test:{}:", db.name);
    let extra = [
        ("TOLLGATE_THROTTLE", "redis".to_owned()),
        ("TOLLGATE_REDIS_URL", redis),
        ("TOLLGATE_REDIS_KEY_PREFIX", prefix),
    ];
    let (nodes, _admin, test) = cluster(&db, &extra);
    let started = Instant::now();
    let statuses: Vec<String> = (0..60usize)
        .map(|t| {
            let url = nodes[t % 3].url.clone();
            let key = test.clone();
            std::thread::spawn(move || {
                let (code, body) = decide(&url, &key, t as u64, None).unwrap();
                assert_eq!(code, 200, "{body}");
                format!(
                    "{}/{}",
                    body["status"].as_str().unwrap(),
                    body["gate"].as_str().unwrap()
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let permits = statuses.iter().filter(|s| *s == "ALLOW/permit").count() as u64;
    let throttled = statuses.iter().filter(|s| *s == "BLOCK/throttle").count() as u64;
    let allowed_at_most = 4 + elapsed.as_secs() / 5;
    assert!(permits >= 1, "{statuses:?}");
    assert!(
        permits <= allowed_at_most,
        "{permits} permits in {elapsed:?} over one bucket of 4 (+1 per 5 s): {statuses:?}"
    );
    assert_eq!(permits + throttled, 60, "{statuses:?}");
    eprintln!(
        "shared bucket: {permits} permits, {throttled} throttled of 60 over 3 nodes in {} ms",
        elapsed.as_millis()
    );
}

/// A policy with a 24-hour `history.sum` limit (transfers of actor `payer`: 1,000 in
/// all) and a `history.count` limit (pings of actor `pinger`: 25), a rule whose
/// review needs two approvals, and a bucket too large to refuse anything (so every
/// decision takes a Redis round trip between reading the history and recording its
/// event, as in production).
const EXACT: &str = r#"id: exact
rules:
  - name: daily-sum
    when: 'action.type == "TRANSFER_FUNDS" && history.sum("actor", "action.amount", duration("24h")) + action.amount > 1000'
    effect: block
    reason_code: DAILY_SUM_EXCEEDED
  - name: daily-count
    when: 'action.type == "PING" && history.count("actor", duration("24h")) >= 25'
    effect: block
    reason_code: DAILY_COUNT_EXCEEDED
  - name: big-wire
    when: 'action.type == "WIRE" && action.amount > 10000'
    effect: review
    reason_code: NEEDS_TWO
    review: {approvers: [treasury], expires_in: 1h, min_approvals: 2}
  - name: board-wire
    when: 'action.type == "BOARD_WIRE"'
    effect: review
    reason_code: NEEDS_SIX
    review: {approvers: [treasury], expires_in: 1h, min_approvals: 6}
throttle:
  - {key: [tenant], capacity: 1000000, refill_every: 1s}
"#;

fn post(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let res = http().post(url).bearer_auth(key).json(body).send().unwrap();
    let code = res.status().as_u16();
    (code, res.json().unwrap_or(Value::Null))
}

fn decide_body(url: &str, key: &str, body: &Value) -> (u16, Value) {
    post(&format!("{url}/v1/decisions"), key, body)
}

fn status_gate(body: &Value) -> String {
    format!(
        "{}/{}",
        body["status"].as_str().unwrap_or("?"),
        body["gate"].as_str().unwrap_or("?")
    )
}

/// Velocity limits and a two-approval review are exact across three nodes.
///
/// - 3 × 6 threads send 180 transfers of 10 (demand 1,800 against a 24-hour sum of
///   1,000) and 3 × 4 threads send 120 pings (demand 120 against a count of 25), all
///   at once: exactly 100 transfers and exactly 25 pings are allowed.
/// - A wire that needs two approvals gets them from two reviewers on two nodes at
///   the same instant (threads released by a barrier): the review is approved with
///   both votes. Then 30 identical requests on all three nodes at once: exactly one
///   is allowed by the approval (gate `review`). A review that needs six approvals
///   gets six at once over the three nodes: all six count.
#[test]
fn velocity_limits_and_reviews_are_exact_across_nodes() {
    let Some(admin_url) = pg_url() else { return };
    let Some(redis) = redis_url() else { return };
    let db = Database::create(&admin_url);
    let prefix = format!("tollgate-cluster-test:{}:", db.name);
    let extra = [
        ("TOLLGATE_THROTTLE", "redis".to_owned()),
        ("TOLLGATE_REDIS_URL", redis),
        ("TOLLGATE_REDIS_KEY_PREFIX", prefix),
    ];
    let (nodes, admin, test) = cluster(&db, &extra);
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let (code, body) = post(
        &format!("{}/v1/admin/policies", urls[0]),
        &admin,
        &json!({"text": EXACT, "activate": true, "environment": "test"}),
    );
    assert_eq!(code, 201, "{body}");

    // Velocity: all 30 threads start together.
    let barrier = Arc::new(std::sync::Barrier::new(30));
    let threads: Vec<_> = (0..30usize)
        .map(|t| {
            let url = urls[t % 3].clone();
            let key = test.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let (kind, n, body) = if t < 18 {
                    let b = json!({"actor": {"id": "payer"}, "action": {"type": "TRANSFER_FUNDS", "amount": 10}, "policy_refs": ["exact"]});
                    ("sum", 10, b)
                } else {
                    let b = json!({"actor": {"id": "pinger"}, "action": {"type": "PING"}, "policy_refs": ["exact"]});
                    ("count", 10, b)
                };
                barrier.wait();
                let mut out = Vec::new();
                for _ in 0..n {
                    let (code, body) = decide_body(&url, &key, &body);
                    assert_eq!(code, 200, "{body}");
                    out.push((kind, status_gate(&body)));
                }
                out
            })
        })
        .collect();
    let results: Vec<(&str, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let count = |kind: &str, sg: &str| {
        results
            .iter()
            .filter(|(k, s)| *k == kind && s == sg)
            .count()
    };
    let sums_allowed = count("sum", "ALLOW/permit");
    let pings_allowed = count("count", "ALLOW/permit");
    assert_eq!(
        sums_allowed + count("sum", "BLOCK/policy"),
        180,
        "{results:?}"
    );
    assert_eq!(
        pings_allowed + count("count", "BLOCK/policy"),
        120,
        "{results:?}"
    );
    // Exact: demand exceeds both limits, so the allowed totals equal them.
    assert_eq!(sums_allowed * 10, 1000, "transfers allowed: {sums_allowed}");
    assert_eq!(pings_allowed, 25, "pings allowed");

    // Reviews: six reviewer keys of group `treasury`.
    let reviewers: Vec<String> = (0..6)
        .map(|_| {
            let (code, body) = post(
                &format!("{}/v1/admin/keys", urls[0]),
                &admin,
                &json!({"environment": "test", "scopes": ["review"], "groups": ["treasury"], "name": "reviewer"}),
            );
            assert_eq!(code, 201, "{body}");
            body["secret"].as_str().unwrap().to_owned()
        })
        .collect();
    let wire = json!({"actor": {"id": "treasurer"}, "action": {"type": "WIRE", "amount": 50000, "to": "ACME"}, "policy_refs": ["exact"]});
    let (code, body) = decide_body(&urls[0], &test, &wire);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "REVIEW_REQUIRED", "{body}");
    let review = body["review_id"].as_str().unwrap().to_owned();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let votes: Vec<(u16, Value)> = reviewers[..2]
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let url = format!("{}/v1/reviews/{review}/approve", urls[1 + i]);
            let (key, barrier) = (key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&url, &key, &json!({"comment": format!("ok {i}")}))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for (code, body) in &votes {
        assert_eq!(*code, 200, "{body}");
    }
    let (code, r) = get(&format!("{}/v1/reviews/{review}", urls[0]), &admin);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["status"], "approved", "{r}");
    assert_eq!(r["approvals"].as_array().unwrap().len(), 2, "{r}");

    // 30 identical requests on the three nodes at once: one is allowed by the review.
    let barrier = Arc::new(std::sync::Barrier::new(30));
    let answers: Vec<Value> = (0..30usize)
        .map(|t| {
            let url = urls[t % 3].clone();
            let (key, wire, barrier) = (test.clone(), wire.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (code, body) = decide_body(&url, &key, &wire);
                assert_eq!(code, 200, "{body}");
                body
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let by_review: Vec<&Value> = answers
        .iter()
        .filter(|b| status_gate(b) == "ALLOW/review")
        .collect();
    assert_eq!(by_review.len(), 1, "{answers:?}");
    assert_eq!(
        answers
            .iter()
            .filter(|b| b["status"] == "REVIEW_REQUIRED")
            .count(),
        29,
        "{answers:?}"
    );
    let (_, r) = get(&format!("{}/v1/reviews/{review}", urls[2]), &admin);
    assert_eq!(r["status"], "consumed", "{r}");
    assert_eq!(r["consumed_by"], by_review[0]["decision_id"], "{r}");

    // Six votes at once over the three nodes on a review that needs six: none lost.
    let board = json!({"actor": {"id": "treasurer"}, "action": {"type": "BOARD_WIRE"}, "policy_refs": ["exact"]});
    let (code, body) = decide_body(&urls[0], &test, &board);
    assert_eq!(code, 200, "{body}");
    let review = body["review_id"].as_str().unwrap().to_owned();
    let barrier = Arc::new(std::sync::Barrier::new(6));
    let codes: Vec<u16> = reviewers
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let url = format!("{}/v1/reviews/{review}/approve", urls[i % 3]);
            let (key, barrier) = (key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                post(&url, &key, &json!({})).0
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(codes, vec![200; 6]);
    let (_, r) = get(&format!("{}/v1/reviews/{review}", urls[1]), &admin);
    assert_eq!(r["approvals"].as_array().unwrap().len(), 6, "{r}");
    assert_eq!(r["status"], "approved", "{r}");
    eprintln!(
        "exact across nodes: {sums_allowed} transfers of 10 (limit 1,000) and {pings_allowed} pings (limit 25) allowed; 2 simultaneous votes on 2 nodes → approved; 1 of 30 simultaneous requests allowed by the review; 6 simultaneous votes on 3 nodes all counted"
    );
}

/// With the throttle in Redis the per-key request rate is one bucket across the
/// nodes: 12 threads on three nodes for about two seconds get at most burst +
/// rate × elapsed answers that are not 429 (three per-node buckets would give
/// three times that).
#[test]
fn the_per_key_rate_is_one_bucket_across_nodes() {
    let Some(admin_url) = pg_url() else { return };
    let Some(redis) = redis_url() else { return };
    let db = Database::create(&admin_url);
    let prefix = format!("tollgate-cluster-test:{}:", db.name);
    let (burst, per_second) = (5u64, 1u64);
    let extra = [
        ("TOLLGATE_THROTTLE", "redis".to_owned()),
        ("TOLLGATE_REDIS_URL", redis),
        ("TOLLGATE_REDIS_KEY_PREFIX", prefix),
        ("TOLLGATE_KEY_RATE_BURST", burst.to_string()),
        ("TOLLGATE_KEY_RATE_PER_SECOND", per_second.to_string()),
    ];
    let (nodes, _admin, test) = cluster(&db, &extra);
    let barrier = Arc::new(std::sync::Barrier::new(12));
    let started = Arc::new(Mutex::new(None::<Instant>));
    let threads: Vec<_> = (0..12usize)
        .map(|t| {
            let url = nodes[t % 3].url.clone();
            let (key, barrier, started) = (test.clone(), barrier.clone(), started.clone());
            std::thread::spawn(move || {
                if barrier.wait().is_leader() {
                    *started.lock().unwrap() = Some(Instant::now());
                }
                let until = Instant::now() + Duration::from_millis(2000);
                let (mut ok, mut limited) = (0u64, 0u64);
                while Instant::now() < until {
                    let res = http()
                        .post(format!("{url}/v1/decisions"))
                        .bearer_auth(&key)
                        .json(&json!({"action": {"type": "OPEN_POSITION", "n": t}}))
                        .send()
                        .unwrap();
                    match res.status().as_u16() {
                        200 => ok += 1,
                        429 => limited += 1,
                        other => panic!("status {other}: {}", res.text().unwrap_or_default()),
                    }
                }
                (ok, limited)
            })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in threads {
        let (o, l) = t.join().unwrap();
        ok += o;
        limited += l;
    }
    let elapsed = started.lock().unwrap().unwrap().elapsed();
    // GCRA: `burst` at once, then one every 1/rate s; +1 for the instant at each end.
    let at_most = burst + (elapsed.as_secs_f64() * per_second as f64).floor() as u64 + 1;
    assert!(limited > 0, "the limit never applied: {ok} answered");
    assert!(ok >= burst, "{ok} answered, fewer than the burst {burst}");
    assert!(
        ok <= at_most,
        "{ok} answered over three nodes in {elapsed:?}, more than one bucket allows ({at_most})"
    );
    eprintln!(
        "per-key rate across nodes: {ok} answered, {limited} limited (429) in {} ms; one bucket allows {at_most}",
        elapsed.as_millis()
    );
}
