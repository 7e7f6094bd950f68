//! The operator console in a real browser: starts `tollgate serve` on a free port with
//! a fresh data directory and runs the Playwright scenarios of `tests/console/` against
//! it in Debian's Chromium (`scripts/console-test-deps.sh` installs both). Fails —
//! never skips — when Chromium or Playwright is missing. Screenshots of every page go
//! to `<target>/console-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;

/// Where the deps script put the Playwright venv.
fn deps_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_CONSOLE_DEPS").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/tollgate-console-deps")
        },
        PathBuf::from,
    )
}

/// `<target>/console-screenshots`: `CARGO_TARGET_DIR` when set, else the workspace's
/// `target/`.
fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("console-screenshots")
}

#[test]
fn console_scenarios_in_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: run scripts/console-test-deps.sh"
    );
    let python = deps_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/console-test-deps.sh",
        python.display()
    );
    let server = Server::start();
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let out = Command::new(&python)
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-v", "-x"])
        .arg(&tests)
        .current_dir(&tests)
        .env("TOLLGATE_CONSOLE_URL", &server.url)
        .env("TOLLGATE_CONSOLE_ADMIN_KEY", &server.admin)
        .env("TOLLGATE_CONSOLE_DECIDE_KEY", &server.test_key)
        .env("TOLLGATE_CONSOLE_SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the console's browser scenarios failed:\n{stdout}\n{stderr}"
    );
    // Every scenario ran: pytest reports them all passed and none skipped.
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "{summary}"
    );
    for page in [
        "login",
        "overview",
        "decisions",
        "decision",
        "reviews",
        "policies",
        "policy",
        "policy-confirm",
        "overrides",
        "keys",
        "ledger",
        "not-found",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
