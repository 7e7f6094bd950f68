//! Graceful shutdown under load (docs/quality.md, Reliability): SIGTERM while decisions are
//! in flight → the process exits 0, every decision a client received a 2xx for is in
//! the ledger, and the ledger verifies.

#![cfg(unix)]

mod common;
use common::free_port;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[test]
fn sigterm_under_load_loses_no_acknowledged_decision_and_exits_0() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", &data)
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_KEY_RATE_PER_SECOND", "1000000")
        .env("TOLLGATE_KEY_RATE_BURST", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::blocking::get(format!("{url}/v1/health")).is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-keys.json")).unwrap())
            .unwrap();
    let key = boot["test_key"]["secret"].as_str().unwrap().to_owned();

    // Load: 16 clients sending decisions back to back until the server is gone.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let after_term = Arc::new(AtomicUsize::new(0));
    let term_sent = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let (url, key) = (url.clone(), key.clone());
            let (acknowledged, after_term, term_sent) = (
                Arc::clone(&acknowledged),
                Arc::clone(&after_term),
                Arc::clone(&term_sent),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut n = 0u64;
                loop {
                    n += 1;
                    let started_before_term = !term_sent.load(Ordering::SeqCst);
                    let body = json!({
                        "actor": {"id": format!("agent-{i}")},
                        "action": {"type": "OPEN_POSITION", "n": n},
                        "signals": {"volatility": 0.05, "confidence": 0.95},
                    });
                    let res = http
                        .post(format!("{url}/v1/decisions"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send();
                    let Ok(res) = res else {
                        // Refused or reset: the server is going or gone.
                        if term_sent.load(Ordering::SeqCst) {
                            return;
                        }
                        continue;
                    };
                    let status = res.status();
                    let Ok(text) = res.text() else { continue };
                    if status.is_success() {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        let id = v["decision_id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().push(id);
                        if started_before_term && term_sent.load(Ordering::SeqCst) {
                            after_term.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        // Only the designed refusals while stopping.
                        assert!(
                            status.as_u16() == 503 || status.as_u16() == 429,
                            "unexpected {status}: {text}"
                        );
                    }
                }
            })
        })
        .collect();

    // Let the load build up, then SIGTERM.
    let warm = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(Instant::now() < warm, "the load did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = acknowledged.lock().unwrap().len();
    term_sent.store(true, Ordering::SeqCst);
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    for c in clients {
        c.join().unwrap();
    }
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "{} decisions acknowledged ({before} before SIGTERM; {} were in flight at SIGTERM and completed after it)",
        acknowledged.len(),
        after_term.load(Ordering::SeqCst)
    );

    // Every acknowledged decision is in the ledger, and the ledger verifies.
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let verify = Command::new(bin)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let export = Command::new(bin)
        .args(["audit", "export", "--tenant", "default", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(export.status.success());
    let ledger = String::from_utf8(export.stdout).unwrap();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !ledger.contains(&format!("\"{id}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged decisions are not in the ledger, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
}
