//! Notifications and the SIEM stream against real receivers: a local HTTP server
//! records what `tollgate serve` delivers, and the reference libraries from PyPI
//! (`standardwebhooks`, `cloudevents`; installed by scripts/integration-test-deps.sh)
//! check it. Fault tests: the sink down for a minute with a restart of Tollgate inside it (nothing lost,
//! duplicates only with the same id), and a sink failing forever (dead-lettered,
//! visible in the API and the CLI, decisions answered all along).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, text};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------- the receiver

#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP receiver on a fixed port that records every request and answers with the
/// status in `status`; it stops listening when dropped.
struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone, Default)]
struct Log {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
}

impl Log {
    fn new(status: u16) -> Log {
        let log = Log::default();
        log.status.store(status, Ordering::SeqCst);
        log
    }
    fn under(&self, prefix: &str) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Receiver {
    fn start(port: u16, log: Log) -> Receiver {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |uri: axum::http::Uri,
                          headers: axum::http::HeaderMap,
                          body: axum::body::Bytes| {
                        let log = log.clone();
                        async move {
                            let headers = headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            log.requests.lock().unwrap().push(Recorded {
                                path: uri.path().to_owned(),
                                headers,
                                body: body.to_vec(),
                            });
                            axum::http::StatusCode::from_u16(log.status.load(Ordering::SeqCst))
                                .unwrap()
                        }
                    },
                );
                let listener =
                    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
                        .await
                        .unwrap();
                ready_tx.send(()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------- the server

/// `tollgate serve` on a data directory that outlives it, with stderr in a file.
struct Node {
    child: Option<Child>,
    url: String,
    data: PathBuf,
    log: PathBuf,
    admin: String,
}

const FAST_RETRIES: &[(&str, &str)] = &[
    ("TOLLGATE_NOTIFY_POLL_MS", "100"),
    ("TOLLGATE_NOTIFY_BACKOFF_BASE_MS", "100"),
    ("TOLLGATE_NOTIFY_BACKOFF_MAX_MS", "400"),
    ("TOLLGATE_NOTIFY_TIMEOUT_MS", "2000"),
    ("TOLLGATE_NOTIFY_BATCH", "7"),
];

impl Node {
    fn start(dir: &Path, run: usize, env: &[(&str, &str)]) -> Node {
        let data = dir.join("data");
        let log = dir.join(format!("server-{run}.log"));
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", &data)
            .env("TOLLGATE_LOG", "debug")
            .env("TOLLGATE_PUBLIC_URL", "https://tollgate.example")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let boot = data.join("bootstrap-keys.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let keys = loop {
            if let Ok(text) = std::fs::read_to_string(&boot)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break v;
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Node {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            data,
            log,
            admin: keys["admin_key"]["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// The CLI against this server with `key`; `--json` is added.
    fn cli(&self, key: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .arg("--json")
            .env("TOLLGATE_URL", &self.url)
            .env("TOLLGATE_API_KEY", key)
            .env_remove("TOLLGATE_DATA_DIR")
            .output()
            .unwrap()
    }

    /// The CLI's JSON answer; the exit code must be one of `codes`.
    fn json(&self, key: &str, args: &[&str], codes: &[i32]) -> Value {
        let o = self.cli(key, args);
        assert!(
            codes.contains(&o.status.code().unwrap_or(-1)),
            "{args:?}: {}",
            text(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
    }

    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tenant's ledger as `tollgate audit export` writes it (read-only beside the
/// running server): `(seq, kind, entry_hash)`.
fn ledger(data: &Path) -> Vec<(u64, String, String)> {
    let o = common::tollgate(&[
        "audit",
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--tenant",
        "default",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (
                e["seq"].as_u64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
                e["entry_hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The nice value of the thread of process `pid` named `name` (/proc), once it runs.
#[cfg(target_os = "linux")]
fn thread_nice(pid: u32, name: &str) -> Option<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command name (which ends with the last `)`): state is
            // field 3 of stat(5), nice is field 19.
            let rest = &stat[stat.rfind(')')? + 2..];
            let nice = rest.split(' ').nth(19 - 3)?.parse().ok()?;
            if nice != 0 || Instant::now() > deadline {
                return Some(nice);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn webhook_id(sink: &str, hash: &str) -> String {
    let d = Sha256::digest(format!("{sink}:{hash}").as_bytes());
    format!("msg_{}", hex::encode(&d[..16]))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- the PyPI side

fn python() -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_INTEGRATION_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/tollgate-integration-deps")
        });
    let py = dir.join("venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/integration-test-deps.sh (it installs the pinned standardwebhooks and cloudevents)",
        py.display()
    );
    py
}

/// Runs `script` with the venv's Python on `input` (JSON on stdin); its stdout is JSON.
fn run_python(script: &str, input: &Value) -> Value {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "python failed: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// Verifies every webhook delivery with `standardwebhooks.Webhook(secret).verify`,
/// and that the same call rejects each with one byte of the body changed.
const VERIFY_WEBHOOKS: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
inp = json.load(sys.stdin)
wh = Webhook(inp["secret"])
out = []
for d in inp["deliveries"]:
    body = d["body"]
    payload = wh.verify(body, d["headers"])
    tampered = body.replace('"seq":', '"seq": ', 1) if '"seq":' in body else body + " "
    try:
        wh.verify(tampered, d["headers"])
        rejected = False
    except WebhookVerificationError:
        rejected = True
    out.append({"id": d["headers"]["webhook-id"], "type": payload["type"], "tampered_rejected": rejected})
print(json.dumps(out))
"#;

/// Parses every event of every CloudEvents batch with the SDK's JSON format reader
/// (`cloudevents.core`) and its v1 HTTP API (`cloudevents.v1.http.from_json`).
const PARSE_CLOUDEVENTS: &str = r#"
import json, sys
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.http import from_json
inp = json.load(sys.stdin)
fmt = JSONFormat()
out = []
for text in inp["events"]:
    ev = fmt.read(None, text)
    legacy = from_json(text)
    attrs = ev.get_attributes()
    assert legacy["id"] == attrs["id"] and legacy["type"] == attrs["type"]
    assert legacy["tollgateseq"] == attrs["tollgateseq"]
    out.append({
        "id": attrs["id"], "type": attrs["type"], "source": attrs["source"],
        "specversion": attrs["specversion"], "seq": attrs["tollgateseq"],
        "tenant": attrs["tollgatetenant"], "has_time": attrs.get("time") is not None,
        "data_is_object": isinstance(ev.get_data(), dict),
    })
print(json.dumps(out))
"#;

// ---------------------------------------------------------------- the tests

const POLICY: &str = r#"
id: notify-test
description: Deploys need a human; reviews expire fast so the sweep is seen.
default_effect: allow
rules:
  - name: deploy-review
    when: 'action.type == "DEPLOY"'
    effect: review
    reason_code: DEPLOY_NEEDS_REVIEW
    explanation: Deploys need a human.
    review: {min_approvals: 1, expires_in: 1500ms}
"#;

fn decide(node: &Node, key: &str, action: &str, actor: &str) -> Value {
    node.json(
        key,
        &[
            "decide",
            "--action-type",
            action,
            "--actor",
            actor,
            "--policy",
            "notify-test",
        ],
        &[0, 1],
    )
}

#[test]
fn deliveries_verify_with_the_reference_libraries_and_survive_an_outage_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let sink_port = free_port();
    let base = format!("http://127.0.0.1:{sink_port}");
    let mut env = FAST_RETRIES.to_vec();
    env.push(("TOLLGATE_NOTIFY_MAX_ATTEMPTS", "1000"));
    let mut node = Node::start(tmp.path(), 1, &env);
    let admin = node.admin.clone();
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    node.json(
        &admin,
        &["policy", "publish", policy.to_str().unwrap(), "--activate"],
        &[0],
    );
    let bot = node.json(
        &admin,
        &["keys", "create", "--env", "live", "--scope", "decide"],
        &[0],
    )["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // The sinks, while nothing listens on the receiver's port: the outage starts now
    // and lasts a minute (below), with a restart of Tollgate inside it.
    let outage_started = Instant::now();
    let hook = node.json(
        &admin,
        &["notify", "add", "webhook", &format!("{base}/hook")],
        &[0],
    );
    let hook_id = hook["sink"]["id"].as_str().unwrap().to_owned();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_cursor = hook["cursor"].as_u64().unwrap();
    let slack_secret_path = "T0000/B0000/SLACKPATHSECRET";
    let slack = node.json(
        &admin,
        &[
            "notify",
            "add",
            "slack",
            &format!("{base}/slack/services/{slack_secret_path}"),
        ],
        &[0],
    );
    assert!(slack.get("secret").is_none(), "{slack}");
    assert!(
        !slack.to_string().contains("SLACKPATHSECRET"),
        "the Slack URL's path is a credential: {slack}"
    );
    let ce = node.json(
        &admin,
        &[
            "notify",
            "add",
            "cloudevents",
            &format!("{base}/ce"),
            "--from",
            "start",
        ],
        &[0],
    );
    let ce_id = ce["sink"]["id"].as_str().unwrap().to_owned();
    let hec_token = "hec-token-7f3a9c";
    node.json(
        &admin,
        &[
            "notify",
            "add",
            "splunk_hec",
            &format!("{base}/hec/services/collector/event"),
            "--token",
            hec_token,
            "--from",
            "start",
        ],
        &[0],
    );
    let listed = node.json(&admin, &["notify", "list"], &[0]);
    assert_eq!(listed["sinks"].as_array().unwrap().len(), 4, "{listed}");
    assert!(!listed.to_string().contains(&secret) && !listed.to_string().contains(hec_token));

    // Events while the sink is down: a review approved, one rejected, an override
    // set and cleared; decisions keep being answered.
    let d1 = decide(&node, &bot, "DEPLOY", "deploy-bot");
    assert_eq!(d1["status"], "REVIEW_REQUIRED", "{d1}");
    let d2 = decide(&node, &bot, "DEPLOY", "rogue-<@U123>-bot");
    assert_eq!(d2["status"], "REVIEW_REQUIRED", "{d2}");
    for i in 0..5 {
        let d = decide(&node, &bot, "READ_DOCS", &format!("reader-{i}"));
        assert_eq!(
            d["status"], "ALLOW",
            "decisions answered while the sink is down: {d}"
        );
    }
    node.json(
        &admin,
        &[
            "review",
            "approve",
            d1["review_id"].as_str().unwrap(),
            "--comment",
            "ok",
        ],
        &[0],
    );
    node.json(
        &admin,
        &[
            "review",
            "reject",
            d2["review_id"].as_str().unwrap(),
            "--comment",
            "<!channel> no",
        ],
        &[0],
    );
    let o = node.json(
        &admin,
        &[
            "override",
            "set",
            "--scope",
            "actor",
            "--value",
            "rogue",
            "--reason",
            "incident 42",
        ],
        &[0],
    );
    node.json(
        &admin,
        &["override", "clear", o["id"].as_str().unwrap()],
        &[0],
    );
    // Let the worker fail a few rounds, then restart Tollgate while the sink is down.
    std::thread::sleep(Duration::from_millis(800));
    let before = node.json(&admin, &["notify", "list"], &[0]);
    assert!(
        before["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"].as_u64() > Some(0)),
        "nothing can have been delivered yet: {before}"
    );
    node.stop();
    let mut node = Node::start(tmp.path(), 2, &env);
    // After the restart: a review that nobody resolves expires (the sweep records it).
    let d3 = decide(&node, &bot, "DEPLOY", "night-bot");
    assert_eq!(d3["status"], "REVIEW_REQUIRED", "{d3}");
    std::thread::sleep(Duration::from_millis(2500));
    let d = decide(&node, &bot, "READ_DOCS", "reader-late");
    assert_eq!(d["status"], "ALLOW", "{d}");

    // The sink comes back after a minute down (retries kept failing all along).
    let outage = Duration::from_secs(60);
    if let Some(rest) = outage.checked_sub(outage_started.elapsed()) {
        std::thread::sleep(rest);
    }
    let during = node.json(&admin, &["notify", "list"], &[0]);
    assert!(
        during["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"].as_u64() > Some(0) && s["dead"].as_u64() == Some(0)),
        "after a minute down: nothing delivered, nothing dead-lettered: {during}"
    );
    let log = Log::new(200);
    let _receiver = Receiver::start(sink_port, log.clone());
    let entries = ledger(&node.data);
    // Approved, rejected, and two expired: the unresolved one and the approval nobody
    // used (an approved review expires too).
    assert_eq!(
        entries
            .iter()
            .filter(|(_, k, _)| k == "review_resolved")
            .count(),
        4,
        "{entries:?}"
    );
    let notification_kinds = [
        "review_opened",
        "review_resolved",
        "override_set",
        "override_cleared",
    ];
    let expected_hooks: BTreeSet<String> = entries
        .iter()
        .filter(|(seq, k, _)| *seq >= hook_cursor && notification_kinds.contains(&k.as_str()))
        .map(|(_, _, h)| webhook_id(&hook_id, h))
        .collect();
    assert_eq!(
        expected_hooks.len(),
        9,
        "3 reviews opened, 4 resolutions, an override set and cleared: {entries:?}"
    );
    let all_hashes: BTreeSet<String> = entries.iter().map(|(_, _, h)| h.clone()).collect();
    let ce_ids = |log: &Log| -> BTreeSet<String> {
        log.under("/ce")
            .iter()
            .flat_map(|r| {
                serde_json::from_slice::<Vec<Value>>(&r.body)
                    .unwrap()
                    .into_iter()
                    .map(|e| e["id"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    wait_until(
        "every delivery after the sink's recovery",
        Duration::from_secs(60),
        || {
            let hooks: BTreeSet<String> = log
                .under("/hook")
                .iter()
                .map(|r| r.headers["webhook-id"].clone())
                .collect();
            hooks == expected_hooks
                && ce_ids(&log) == all_hashes
                && log.under("/slack").len() >= expected_hooks.len()
                && log.under("/hec").len() >= 2
        },
    );
    std::thread::sleep(Duration::from_millis(500));

    // Webhooks: exactly the expected ids (none lost, none unexpected); a repeated id
    // carries the same body; every delivery verifies with the reference library and a
    // tampered body does not.
    let hooks = log.under("/hook");
    let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for r in &hooks {
        let id = r.headers["webhook-id"].clone();
        if let Some(prev) = bodies.get(&id) {
            assert_eq!(prev, &r.body, "a duplicate delivery carries the same body");
        }
        bodies.insert(id, r.body.clone());
        assert_eq!(r.headers["content-type"], "application/json");
    }
    assert_eq!(
        bodies.keys().cloned().collect::<BTreeSet<_>>(),
        expected_hooks
    );
    let verified = run_python(
        VERIFY_WEBHOOKS,
        &json!({
            "secret": secret,
            "deliveries": hooks.iter().map(|r| json!({
                "headers": r.headers,
                "body": String::from_utf8(r.body.clone()).unwrap(),
            })).collect::<Vec<_>>(),
        }),
    );
    let verified = verified.as_array().unwrap();
    assert_eq!(verified.len(), hooks.len());
    assert!(
        verified.iter().all(|v| v["tampered_rejected"] == true),
        "{verified:?}"
    );
    let types: BTreeSet<&str> = verified
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        notification_kinds.into_iter().collect::<BTreeSet<_>>()
    );
    let statuses: BTreeSet<String> = hooks
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["type"] == "review_resolved")
        .map(|b| {
            b["data"]["body"]["review"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        ["approved", "expired", "rejected"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );

    // CloudEvents: every ledger entry, parsed by the SDK, with the entry hash as id,
    // dev.tollgate.<kind> as type and the ledger position in `tollgateseq`.
    let ce_log = log.under("/ce");
    for r in &ce_log {
        assert_eq!(
            r.headers["content-type"],
            "application/cloudevents-batch+json"
        );
        assert!(
            serde_json::from_slice::<Vec<Value>>(&r.body).unwrap().len() <= 7,
            "batches of at most TOLLGATE_NOTIFY_BATCH"
        );
    }
    assert!(ce_log.len() >= entries.len().div_ceil(7), "batched");
    assert!(
        ce_log.len() < entries.len(),
        "batched: {} requests for {} entries",
        ce_log.len(),
        entries.len()
    );
    let events: Vec<String> = ce_log
        .iter()
        .flat_map(|r| {
            serde_json::from_slice::<Vec<Value>>(&r.body)
                .unwrap()
                .into_iter()
                .map(|e| e.to_string())
        })
        .collect();
    let parsed = run_python(PARSE_CLOUDEVENTS, &json!({"events": events}));
    let by_id: BTreeMap<String, Value> = parsed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    for (seq, kind, hash) in &entries {
        let e = &by_id[hash];
        assert_eq!(e["type"], format!("dev.tollgate.{kind}"), "{e}");
        assert_eq!(e["seq"].as_u64(), Some(*seq), "{e}");
        assert_eq!(e["tenant"], "default");
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["source"], "https://tollgate.example/tenants/default");
        assert!(e["has_time"] == true && e["data_is_object"] == true, "{e}");
    }
    // Duplicates (a round repeated after the restart) only with the same id.
    assert_eq!(by_id.keys().cloned().collect::<BTreeSet<_>>(), all_hashes);

    // Splunk HEC: the token in `Authorization: Splunk …`, every entry as an event.
    let mut hec_ids = BTreeSet::new();
    for r in log.under("/hec") {
        assert_eq!(r.headers["authorization"], format!("Splunk {hec_token}"));
        for line in String::from_utf8(r.body).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v["time"].as_f64().unwrap() > 1.6e9, "{v}");
            assert_eq!(v["sourcetype"], "tollgate:ledger");
            hec_ids.insert(v["event"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(hec_ids, all_hashes);

    // Slack: Block Kit, request text as plain_text (a mention stays text), a button
    // to the console's review queue.
    let slack_msgs: Vec<Value> = log
        .under("/slack")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let opened = slack_msgs
        .iter()
        .find(|m| m["text"].as_str().unwrap().contains("rogue-<@U123>-bot"))
        .expect("the review of rogue-<@U123>-bot was announced");
    let blocks = opened["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let texts: Vec<&Value> = blocks
        .iter()
        .flat_map(|b| {
            b["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(b.get("text"))
        })
        .collect();
    assert!(texts.iter().all(|t| t["type"] == "plain_text"), "{opened}");
    assert!(
        opened.to_string().contains("DEPLOY_NEEDS_REVIEW"),
        "{opened}"
    );
    let button = &blocks.last().unwrap()["elements"][0];
    assert_eq!(button["url"], "https://tollgate.example/console/reviews");

    // Nothing is left in retry and the cursors reached the head.
    let after = node.json(&admin, &["notify", "list"], &[0]);
    for s in after["sinks"].as_array().unwrap() {
        assert_eq!(
            (s["pending"].as_u64(), s["dead"].as_u64()),
            (Some(0), Some(0)),
            "{after}"
        );
    }
    let ce_sink = after["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ce_id.as_str())
        .unwrap();
    assert!(
        ce_sink["cursor"].as_u64().unwrap() >= entries.len() as u64,
        "{after}"
    );

    // `audit export --format cloudevents`: the same events, parsed by the SDK.
    node.stop();
    let o = common::tollgate(&[
        "audit",
        "export",
        "--data-dir",
        node.data.to_str().unwrap(),
        "--tenant",
        "default",
        "--format",
        "cloudevents",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let exported = run_python(PARSE_CLOUDEVENTS, &json!({"events": lines}));
    let exported_ids: Vec<&str> = exported
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let ledger_now = ledger(&node.data);
    let ledger_ids: Vec<&str> = ledger_now.iter().map(|(_, _, h)| h.as_str()).collect();
    assert_eq!(exported_ids, ledger_ids);

    // No secret in any log line of either run.
    for run in [1, 2] {
        let log_text =
            std::fs::read_to_string(tmp.path().join(format!("server-{run}.log"))).unwrap();
        assert!(
            log_text.contains("notify"),
            "the worker logs (debug) are captured"
        );
        for s in [
            secret.as_str(),
            &secret["whsec_".len()..],
            hec_token,
            "SLACKPATHSECRET",
        ] {
            assert!(
                !log_text.contains(s),
                "a sink secret is in the log of run {run}"
            );
        }
    }
    assert!(node.log.ends_with("server-2.log"));
}

#[test]
fn a_sink_failing_forever_is_dead_lettered_visible_and_redeliverable() {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let sink_port = free_port();
    let log = Log::new(500);
    let _receiver = Receiver::start(sink_port, log.clone());
    let mut env = FAST_RETRIES.to_vec();
    env.push(("TOLLGATE_NOTIFY_MAX_ATTEMPTS", "3"));
    let node = Node::start(tmp.path(), 1, &env);
    // Delivery is background work: its thread runs at nice 19 (Linux), so a sink
    // failing forever does not take the cores from the decision path.
    #[cfg(target_os = "linux")]
    assert_eq!(
        thread_nice(node.child.as_ref().unwrap().id(), "tollgate-notify"),
        Some(19)
    );
    let admin = node.admin.clone();
    let hook = node.json(
        &admin,
        &[
            "notify",
            "add",
            "webhook",
            &format!("http://127.0.0.1:{sink_port}/hook"),
        ],
        &[0],
    );
    let sink = hook["sink"]["id"].as_str().unwrap().to_owned();
    // The test delivery reports the sink's failure (exit 1).
    let t = node.json(&admin, &["notify", "test", &sink], &[1]);
    assert_eq!(
        (&t["delivered"], &t["error"]),
        (&json!(false), &json!("HTTP 500")),
        "{t}"
    );

    let o = node.json(
        &admin,
        &[
            "override", "set", "--scope", "actor", "--value", "x", "--reason", "r",
        ],
        &[0],
    );
    node.json(
        &admin,
        &["override", "clear", o["id"].as_str().unwrap()],
        &[0],
    );
    // Decisions are answered while the sink fails (the test key: environment test).
    let test_key = serde_json::from_str::<Value>(
        &std::fs::read_to_string(node.data.join("bootstrap-keys.json")).unwrap(),
    )
    .unwrap()["test_key"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::blocking::Client::new();
    let mut dead = Value::Null;
    wait_until(
        "two dead-lettered deliveries",
        Duration::from_secs(30),
        || {
            let r = client
                .post(format!("{}/v1/decisions", node.url))
                .bearer_auth(&test_key)
                .json(&json!({"action": {"type": "READ"}, "actor": {"id": "a"}}))
                .send()
                .unwrap();
            assert_eq!(
                r.status().as_u16(),
                200,
                "decisions go on while the sink fails"
            );
            dead = client
                .get(format!(
                    "{}/v1/admin/notify/deliveries?state=dead",
                    node.url
                ))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .json()
                .unwrap();
            dead["deliveries"].as_array().unwrap().len() == 2
        },
    );
    let deliveries = dead["deliveries"].as_array().unwrap();
    for d in deliveries {
        assert_eq!(d["attempts"], 3, "the retry budget: {d}");
        assert_eq!(d["last_error"], "HTTP 500");
        assert_eq!(d["sink_id"], sink.as_str());
    }
    // 1 test delivery + 3 attempts for each of the two entries.
    assert_eq!(log.under("/hook").len(), 7);
    let ids: BTreeSet<String> = log
        .under("/hook")
        .iter()
        .skip(1)
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "each retry carries its entry's id");
    // The CLI shows them, and the metrics count them.
    let cli = node.json(&admin, &["notify", "dead"], &[0]);
    assert_eq!(cli["deliveries"], dead["deliveries"]);
    let listed = node.json(&admin, &["notify", "list"], &[0]);
    assert_eq!(listed["sinks"][0]["dead"], 2, "{listed}");
    let metrics = client
        .get(format!("{}/metrics", node.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tollgate_notify_dead_total{") && l.contains(&sink))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_notify_failed_attempts_total{")
                && l.contains(&sink)
                && l.ends_with(" 6")),
        "{metrics}"
    );

    // The sink recovers; one dead delivery is sent again by hand, with the same id.
    log.status.store(204, Ordering::SeqCst);
    let seq = deliveries[0]["seq"].as_u64().unwrap();
    let id = deliveries[0]["webhook_id"].as_str().unwrap().to_owned();
    let r = node.json(
        &admin,
        &[
            "notify",
            "dead",
            "--sink",
            &sink,
            "--redeliver",
            &seq.to_string(),
        ],
        &[0],
    );
    assert_eq!(r["delivery"]["state"], "pending", "{r}");
    wait_until("the redelivery", Duration::from_secs(20), || {
        log.under("/hook").len() == 8
    });
    assert_eq!(log.under("/hook")[7].headers["webhook-id"], id);
    wait_until("the dead list to shrink", Duration::from_secs(10), || {
        node.json(&admin, &["notify", "dead"], &[0])["deliveries"]
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let t = node.json(&admin, &["notify", "test", &sink], &[0]);
    assert_eq!(
        (&t["delivered"], &t["status"]),
        (&json!(true), &json!(204)),
        "{t}"
    );
}
