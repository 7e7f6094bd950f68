//! `tollgate policy …` as a user runs it: the example policies' tests pass (CI runs
//! them here), a failing case exits non-zero with expected vs actual, and `policy
//! apply` is idempotent against a real server process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_example_policies_pass_their_tests() {
    let dir = examples();
    let out = tollgate(&["policy", "test", dir.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for file in ["treasury", "trading", "agent-tools"] {
        assert!(
            t.contains(&format!("{file}.test.yaml")),
            "{file} not run: {t}"
        );
    }
    assert!(t.contains(" 0 failed"), "{t}");
    assert!(!t.contains("FAIL"), "{t}");
    let out = tollgate(&[
        "policy",
        "validate",
        dir.join("treasury.yaml").to_str().unwrap(),
        dir.join("trading.yaml").to_str().unwrap(),
        dir.join("agent-tools.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_failing_case_exits_non_zero_and_shows_expected_and_actual() {
    // The treasury policy with its daily limit loosened to 60,000: the velocity case fails.
    let tmp = tempfile::tempdir().unwrap();
    let policy = std::fs::read_to_string(examples().join("treasury.yaml"))
        .unwrap()
        .replace("> 50000", "> 60000");
    std::fs::write(tmp.path().join("treasury.yaml"), policy).unwrap();
    std::fs::copy(
        examples().join("treasury.test.yaml"),
        tmp.path().join("treasury.test.yaml"),
    )
    .unwrap();
    let out = tollgate(&[
        "policy",
        "test",
        tmp.path().join("treasury.test.yaml").to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAIL  the 24-hour limit of 50,000 per actor holds exactly"),
        "{t}"
    );
    assert!(
        t.contains(r#"expected BLOCK gate=policy reason_codes=["DAILY_LIMIT_EXCEEDED"]"#),
        "{t}"
    );
    assert!(t.contains("actual ALLOW gate=permit"), "{t}");
    assert!(t.contains("5 passed, 1 failed"), "{t}");

    // An invalid policy is a failure too, with the path of the problem.
    std::fs::write(
        tmp.path().join("treasury.yaml"),
        "id: t\nrules:\n  - name: r\n    when: 'acton.type == 1'\n    effect: block\n    reason_code: R\n",
    )
    .unwrap();
    let out = tollgate(&[
        "policy",
        "validate",
        tmp.path().join("treasury.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rules[0].when"), "{}", text(&out));
}

struct Server {
    child: Child,
    url: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let boot = dir.path().join("data/bootstrap-keys.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = loop {
        if let Ok(text) = std::fs::read_to_string(&boot)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break v["admin_key"]["secret"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    Server {
        child,
        url,
        admin,
        _dir: dir,
    }
}

fn remote(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env("TOLLGATE_URL", &server.url)
        .env("TOLLGATE_API_KEY", &server.admin)
        .output()
        .unwrap()
}

fn get(server: &Server, path: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(&server.admin)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn published_entries(server: &Server) -> usize {
    get(server, "/v1/audit/export")
        .lines()
        .filter(|l| l.contains("\"kind\":\"policy_published\""))
        .count()
}

#[test]
fn policy_apply_twice_publishes_nothing_the_second_time() {
    let server = start();
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "treasury.yaml",
        "trading.yaml",
        "agent-tools.yaml",
        "treasury.test.yaml",
    ] {
        std::fs::copy(examples().join(f), tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().to_str().unwrap();

    let first = remote(&server, &["policy", "apply", dir]);
    let t = text(&first);
    assert_eq!(first.status.code(), Some(0), "{t}");
    assert!(t.contains("3 changed, 0 unchanged"), "{t}");
    assert!(
        t.contains("treasury: published and activated version 1"),
        "{t}"
    );
    assert_eq!(published_entries(&server), 3);

    let second = remote(&server, &["policy", "apply", dir]);
    let t = text(&second);
    assert_eq!(second.status.code(), Some(0), "{t}");
    assert!(t.contains("0 changed, 3 unchanged"), "{t}");
    assert_eq!(published_entries(&server), 3, "the second apply published");

    // A dry run after an edit names the change and changes nothing.
    let edited = std::fs::read_to_string(tmp.path().join("trading.yaml"))
        .unwrap()
        .replace("notional > 250000", "notional > 200000");
    std::fs::write(tmp.path().join("trading.yaml"), edited).unwrap();
    let plan = remote(&server, &["policy", "apply", dir, "--dry-run"]);
    let t = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{t}");
    assert!(t.contains("trading: would publish a new version"), "{t}");
    assert!(t.contains("treasury: unchanged"), "{t}");
    assert_eq!(published_entries(&server), 3);

    // Applying it publishes exactly the changed file as version 2.
    let third = remote(&server, &["policy", "apply", dir]);
    let t = text(&third);
    assert!(
        t.contains("trading: published and activated version 2"),
        "{t}"
    );
    assert!(t.contains("1 changed, 2 unchanged"), "{t}");
    assert_eq!(published_entries(&server), 4);

    // An invalid file publishes nothing and exits 1.
    std::fs::write(tmp.path().join("broken.yaml"), "id: broken\nrules: 7\n").unwrap();
    let bad = remote(&server, &["policy", "apply", dir]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert_eq!(published_entries(&server), 4);

    // The ledger verifies.
    let v: Value = serde_json::from_str(&get(&server, "/v1/audit/verify")).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}
