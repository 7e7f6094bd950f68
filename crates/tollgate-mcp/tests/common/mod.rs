//! Shared pieces of the gateway's integration tests: the pinned external tools, the
//! real `tollgate` binary, processes that are killed when dropped, HTTP helpers.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses part of this module"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

/// The external tools the tests drive (installed by `scripts/mcp-test-deps.sh`).
#[derive(Debug)]
pub struct Deps {
    /// Python with the `mcp` client package (1.x).
    pub client_python: PathBuf,
    /// Python with mcp-server-time and mcp-server-git.
    pub servers_python: PathBuf,
    /// `@modelcontextprotocol/server-filesystem`'s entry point.
    pub fs_server: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Finds the tools, or fails saying what is missing and how to install it. Outside
/// CI, `TOLLGATE_SKIP_MCP_TESTS=1` skips the test explicitly (returns `None`).
pub fn deps() -> anyhow::Result<Option<Deps>> {
    let dir = std::env::var_os("TOLLGATE_MCP_DEPS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tollgate-mcp-deps"))
        })
        .context("neither TOLLGATE_MCP_DEPS nor HOME is set")?;
    let d = Deps {
        client_python: dir.join("client/bin/python"),
        servers_python: dir.join("servers/bin/python"),
        fs_server: dir
            .join("npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"),
    };
    let missing: Vec<String> = [&d.client_python, &d.servers_python, &d.fs_server]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if missing.is_empty() && node {
        return Ok(Some(d));
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !ci && std::env::var("TOLLGATE_SKIP_MCP_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (TOLLGATE_SKIP_MCP_TESTS=1): missing {missing:?}, node: {node}");
        return Ok(None);
    }
    bail!(
        "the MCP test tools are missing: {missing:?}{}; install them with `bash scripts/mcp-test-deps.sh` \
         (TOLLGATE_MCP_DEPS={}), or set TOLLGATE_SKIP_MCP_TESTS=1 outside CI to skip explicitly",
        if node {
            ""
        } else {
            ", and `node` is not on PATH"
        },
        dir.display()
    )
}

/// The real `tollgate` binary (built here when this test run did not build it).
pub fn tollgate_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/tollgate
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test binary location")?;
    let bin = profile_dir.join("tollgate");
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    // Always ask cargo: a stale binary would test old code. A no-op when fresh.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "tollgate", "--bin", "tollgate"])
        .current_dir(repo_root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().context("running cargo build -p tollgate")?;
    ensure!(
        out.status.success(),
        "cargo build -p tollgate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(bin.exists(), "{} was not built", bin.display());
    Ok(bin)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Starts `cmd` with stderr going to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
        let file = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        Ok(Proc(child))
    }

    /// Sends SIGTERM and waits for the exit (at most `wait`).
    pub fn terminate(&mut self, wait: Duration) -> anyhow::Result<()> {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.0.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("process {pid} did not stop within {wait:?}")
    }
}

/// An HTTP client for Tollgate's API.
pub fn http() -> reqwest::blocking::Client {
    // reqwest is built with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// Calls Tollgate's API; returns (status, JSON body).
pub fn api(
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let c = http();
    let url = format!("{base}{path}");
    let req = match method {
        "GET" => c.get(&url),
        "POST" => c.post(&url),
        "DELETE" => c.delete(&url),
        _ => bail!("method {method}"),
    };
    let req = req.bearer_auth(key);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    let v = serde_json::from_str(&text).unwrap_or(json!({ "text": text }));
    Ok((status, v))
}

/// Waits until `GET {base}/v1/health` answers 200.
pub fn wait_healthy(base: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http().get(format!("{base}/v1/health")).send()
            && r.status().is_success()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{base} did not become healthy; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

/// The bootstrap admin key of a data directory.
pub fn admin_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("bootstrap-keys.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    Ok(v["admin_key"]["secret"]
        .as_str()
        .context("no admin key")?
        .to_owned())
}

/// Publishes and activates a policy.
pub fn publish_policy(base: &str, admin: &str, text: &str) -> anyhow::Result<()> {
    let (s, v) = api(
        base,
        admin,
        "POST",
        "/v1/admin/policies",
        Some(json!({"text": text, "activate": true})),
    )?;
    ensure!(s == 200 || s == 201, "publishing the policy: {s} {v}");
    Ok(())
}

/// The test policy: writes only under `<workspace>/allowed/`, new directories need a
/// review, moves are blocked outright.
pub fn policy(workspace: &Path) -> String {
    format!(
        r#"id: agent-tools
default_effect: allow
rules:
  - name: writes-stay-in-allowed
    when: 'action.tool == "fs.write_file" && !action.arguments.path.startsWith("{w}/allowed/")'
    effect: block
    reason_code: WRITE_OUTSIDE_WORKSPACE
    on_error: block
  - name: new-directories-need-review
    when: 'action.tool == "fs.create_directory"'
    effect: review
    reason_code: NEEDS_REVIEW
    review: {{expires_in: 1h}}
  - name: no-moves
    when: 'action.tool == "fs.move_file"'
    effect: block
    reason_code: NO_MOVES
"#,
        w = workspace.display()
    )
}

/// Runs the Python agent; returns its `results`.
pub fn agent(
    deps: &Deps,
    args: &[String],
    steps: &Value,
    dir: &Path,
) -> anyhow::Result<Vec<Value>> {
    let steps_file = dir.join(format!("steps-{}.json", free_port()));
    std::fs::write(&steps_file, serde_json::to_vec(steps)?)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/agent.py");
    let mut cmd = Command::new(&deps.client_python);
    cmd.arg(&script)
        .arg(&args[0])
        .arg(&steps_file)
        .args(&args[1..]);
    let out = cmd.output().context("running the Python agent")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "the agent failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let v: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("agent output is not JSON:\n{stdout}\nstderr:\n{stderr}"))?;
    Ok(v["results"].as_array().cloned().unwrap_or_default())
}

/// Runs `tollgate audit verify` on a data directory; returns its output.
pub fn audit_verify(bin: &Path, data_dir: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.starts_with("OK:"),
        "audit verify failed: {text}"
    );
    Ok(text)
}

/// The `TOOL_CALL` decisions of a data directory's ledger (tenant `default`), in order.
pub fn tool_decisions(bin: &Path, data_dir: &Path) -> anyhow::Result<Vec<Value>> {
    let out = Command::new(bin)
        .args(["audit", "export", "--tenant", "default", "--data-dir"])
        .arg(data_dir)
        .output()?;
    ensure!(
        out.status.success(),
        "audit export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let e: Value = serde_json::from_str(line)?;
        if e["kind"] == "decision" && e["body"]["request"]["action"]["type"] == "TOOL_CALL" {
            found.push(e["body"].clone());
        }
    }
    Ok(found)
}

/// Waits until `path` exists.
pub fn wait_file(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        ensure!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Child processes of `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// A process's command line, spaces between arguments.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The result of step `i` (a call): `(is_error, text)`; a JSON-RPC error fails.
pub fn call_result(results: &[Value], i: usize) -> (bool, String) {
    let r = &results[i];
    (
        r["is_error"].as_bool().unwrap_or(true),
        r["text"]
            .as_str()
            .map_or_else(|| r.to_string(), str::to_owned),
    )
}
