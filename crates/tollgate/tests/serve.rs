//! The real binary over a real socket: first start, a full flow, graceful shutdown
//! on SIGTERM, and no secret anywhere in the logs, error bodies or the ledger.

mod common;
use common::free_port;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

fn start() -> Server {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
        .env("TOLLGATE_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if reqwest::blocking::get(format!("{url}/v1/health")).is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, url, dir }
}

fn call(method: reqwest::Method, url: &str, key: &str, body: Option<Value>) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new()
        .request(method, url)
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().unwrap();
    (res.status().as_u16(), res.text().unwrap())
}

#[test]
fn full_flow_over_a_socket_leaks_no_secret_and_stops_gracefully() {
    let mut server = start();
    let data = server.dir.path().join("data");
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-keys.json")).unwrap())
            .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("bootstrap-keys.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "bootstrap key file is private");
        let mode = std::fs::metadata(data.join("signing-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "signing key file is private");
    }
    let admin = boot["admin_key"]["secret"].as_str().unwrap().to_owned();
    let test = boot["test_key"]["secret"].as_str().unwrap().to_owned();
    let u = &server.url;
    let mut bodies = String::new();
    let in_band = json!({"action": {"type": "OPEN_POSITION"}, "signals": {"volatility": 0.05, "confidence": 0.95}});
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (code, text) = call(
            reqwest::Method::POST,
            &format!("{u}/v1/decisions"),
            &test,
            Some(in_band.clone()),
        );
        assert_eq!(code, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        statuses.push(format!(
            "{}/{}",
            v["status"].as_str().unwrap(),
            v["gate"].as_str().unwrap()
        ));
        bodies.push_str(&text);
    }
    assert_eq!(
        statuses,
        [
            "ALLOW/permit",
            "ALLOW/permit",
            "ALLOW/permit",
            "ALLOW/permit",
            "BLOCK/throttle"
        ]
    );
    // Errors of every kind, with secrets in the request.
    let (code, text) = call(
        reqwest::Method::POST,
        &format!("{u}/v1/decisions"),
        &format!("{test}x"),
        Some(in_band.clone()),
    );
    assert_eq!(code, 401);
    bodies.push_str(&text);
    let (code, text) = call(
        reqwest::Method::GET,
        &format!("{u}/v1/admin/keys"),
        &test,
        None,
    );
    assert_eq!(code, 403);
    bodies.push_str(&text);
    let (code, text) = call(
        reqwest::Method::POST,
        &format!("{u}/v1/admin/keys"),
        &admin,
        Some(json!({"environment": "live", "scopes": ["decide"]})),
    );
    assert_eq!(code, 201, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let new_secret = created["secret"].as_str().unwrap().to_owned();
    let (code, text) = call(
        reqwest::Method::POST,
        &format!("{u}/v1/decisions"),
        &new_secret,
        Some(json!({"action": {"type": "X"}, "signals": {"volatility": 7}})),
    );
    assert_eq!(code, 422);
    bodies.push_str(&text);
    let (code, _) = call(
        reqwest::Method::POST,
        &format!(
            "{u}/v1/admin/keys/{}/revoke",
            created["id"].as_str().unwrap()
        ),
        &admin,
        Some(json!({})),
    );
    assert_eq!(code, 200);
    let (code, text) = call(
        reqwest::Method::POST,
        &format!("{u}/v1/decisions"),
        &new_secret,
        Some(in_band.clone()),
    );
    assert_eq!(code, 401);
    bodies.push_str(&text);
    let (code, text) = call(
        reqwest::Method::POST,
        &format!("{u}/v1/admin/overrides"),
        &admin,
        Some(json!({"scope": "tenant", "reason": "drill"})),
    );
    assert_eq!(code, 201, "{text}");
    let (code, text) = call(
        reqwest::Method::GET,
        &format!("{u}/v1/audit/export"),
        &admin,
        None,
    );
    assert_eq!(code, 200);
    let ledger = text;

    // The key-less direct-runtime endpoint tells a loopback caller by the peer address
    // the accept loop attaches to each request: over a real socket from 127.0.0.1 it
    // answers (here: blocked by the tenant override set above, but answered).
    let res = reqwest::blocking::Client::new()
        .post(format!("{u}/csc/live-stimulus"))
        .json(&json!({"feed": "trading", "risk": 0.1, "confidence": 0.95,
                      "volatility": 0.05, "symbol": "BTC", "source": "serve-test"}))
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"execution\""), "{text}");

    // SIGTERM: stops, exit 0.
    #[cfg(unix)]
    {
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = server.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status}");
    }
    let mut logs = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("tollgate ready") && logs.contains("\"request\""),
        "logs were captured: {logs}"
    );
    assert!(logs.contains("tollgate stopped"));

    // The secrets: API keys, and the signing key in every encoding it exists in.
    let pem = std::fs::read_to_string(data.join("signing-key.pem")).unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = tollgate_store::keyfile::load(&data.join("signing-key.pem")).unwrap();
    let raw = key.to_bytes();
    let secrets = [
        admin.clone(),
        test.clone(),
        new_secret.clone(),
        pem_body,
        hex::encode(raw),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw),
    ];
    for (what, text) in [
        ("logs", &logs),
        ("response bodies", &bodies),
        ("ledger", &ledger),
    ] {
        assert!(!text.is_empty());
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret appears in the {what}");
        }
    }
    // The ledger still verifies after the shutdown.
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: "));
}
