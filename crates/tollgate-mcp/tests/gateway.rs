//! The MCP gateway with real parts (issue 19): the real `tollgate` binary, the real
//! Python `mcp` client (`ClientSession` over stdio and streamable HTTP) as the agent,
//! the real `@modelcontextprotocol/server-filesystem` (npm) and `mcp-server-time`
//! (PyPI) as upstreams. Tools: `scripts/mcp-test-deps.sh`.

#![allow(clippy::print_stderr, reason = "tests show what they skip")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "agent-a-token-0123456789abcdef";

fn gateway_config(deps: &Deps, workspace: &Path, data: &str, extra: &str, hide: bool) -> String {
    format!(
        r#"{data}
policy = "agent-tools"
review_wait = "30s"
hide_blocked_tools = {hide}
max_argument_bytes = 4096
policy_poll = "200ms"
{extra}

[[clients]]
token_env = "AGENT_A_TOKEN"
actor = {{ id = "agent-a", type = "AI_AGENT" }}

[[upstreams]]
name = "fs"
command = ["node", "{fs}", "{w}"]
redact = ["content"]

[[upstreams]]
name = "time"
command = ["{py}", "-m", "mcp_server_time", "--local-timezone", "UTC"]
"#,
        fs = deps.fs_server.display(),
        w = workspace.display(),
        py = deps.servers_python.display(),
    )
}

fn setup(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let w = dir.join("work");
    std::fs::create_dir_all(w.join("allowed"))?;
    std::fs::write(w.join("hello.txt"), "hello from the workspace")?;
    // The filesystem server resolves symlinks; give it the canonical path.
    Ok(std::fs::canonicalize(&w)?)
}

/// Streamable HTTP, embedded decisions: allow, block, wrong-typed and oversized
/// arguments, review approved and rejected (with progress), the kill switch, 401
/// without a token, hidden tools and list_changed, metrics, the ledger.
#[test]
fn http_embedded() -> anyhow::Result<()> {
    let Some(deps) = deps()? else { return Ok(()) };
    let bin = tollgate_bin()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let w = setup(dir)?;
    let data = dir.join("data");
    let (api_port, mcp_port) = (free_port(), free_port());
    let config = gateway_config(
        &deps,
        &w,
        &format!("data_dir = \"{}\"", data.display()),
        &format!("api_listen = \"127.0.0.1:{api_port}\"\nlisten = \"127.0.0.1:{mcp_port}\""),
        true,
    );
    let config_file = dir.join("gateway.toml");
    std::fs::write(&config_file, config)?;
    let log = dir.join("gateway.log");
    let mut gw = Proc::spawn(
        Command::new(&bin)
            .args(["gateway", "--config"])
            .arg(&config_file)
            .env("AGENT_A_TOKEN", TOKEN),
        &log,
    )?;
    let base = format!("http://127.0.0.1:{api_port}");
    wait_healthy(&base, &log)?;
    let admin = admin_key(&data)?;
    publish_policy(&base, &admin, &policy(&w))?;
    let mcp = format!("http://127.0.0.1:{mcp_port}/mcp");

    // No token, a wrong token: 401, before any MCP.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}});
    let c = http();
    let r = c
        .post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()?;
    ensure!(r.status().as_u16() == 401, "no token: {}", r.status());
    let r = c
        .post(&mcp)
        .bearer_auth("not-the-token-at-all-000000")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()?;
    ensure!(r.status().as_u16() == 401, "wrong token: {}", r.status());

    // Reviewers: approve the first review that opens, reject the second.
    let reviewer = {
        let base = base.clone();
        let admin = admin.clone();
        std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
            let mut done = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while done.len() < 2 && Instant::now() < deadline {
                let (_, v) = api(&base, &admin, "GET", "/v1/reviews?status=pending", None)?;
                for r in v["reviews"].as_array().into_iter().flatten() {
                    let id = r["review_id"].as_str().unwrap_or_default().to_owned();
                    if done.contains(&id) {
                        continue;
                    }
                    let verb = if done.is_empty() { "approve" } else { "reject" };
                    let (s, v) = api(
                        &base,
                        &admin,
                        "POST",
                        &format!("/v1/reviews/{id}/{verb}"),
                        Some(json!({"comment": "test"})),
                    )?;
                    ensure!(s == 200, "{verb} {id}: {s} {v}");
                    done.push(id);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(done)
        })
    };

    let p = |name: &str| w.join(name).display().to_string();
    let ready = dir.join("ready-kill");
    let killed = dir.join("killed");
    let steps = json!([
        {"list": true},                                                                   // 0
        {"call": "fs.read_text_file", "args": {"path": p("hello.txt")}},                  // 1
        {"call": "fs.write_file", "args": {"path": p("evil.txt"), "content": "x"}},       // 2
        {"call": "fs.write_file", "args": {"path": p("allowed/ok.txt"), "content": "ok"}}, // 3
        {"call": "fs.read_text_file", "args": {"path": 12345}},                           // 4
        {"call": "fs.write_file", "args": {"path": p("allowed/big.txt"), "content": "x".repeat(10_000)}}, // 5
        {"call": "time.get_current_time", "args": {"timezone": "UTC"}},                   // 6
        {"call": "fs.create_directory", "args": {"path": p("allowed/approved")}, "progress": true}, // 7
        {"call": "fs.create_directory", "args": {"path": p("allowed/rejected")}, "progress": true}, // 8
        {"touch": ready.display().to_string()},
        {"wait_file": killed.display().to_string(), "timeout": 60},
        {"call": "time.get_current_time", "args": {"timezone": "UTC"}},                   // 9
        {"call": "fs.read_text_file", "args": {"path": p("hello.txt")}},                  // 10
    ]);
    // The kill switch, engaged while the agent waits.
    let switch = {
        let base = base.clone();
        let admin = admin.clone();
        let ready = ready.clone();
        let killed = killed.clone();
        std::thread::spawn(move || -> anyhow::Result<()> {
            wait_file(&ready, Duration::from_secs(180))?;
            let (s, v) = api(
                &base,
                &admin,
                "POST",
                "/v1/admin/overrides",
                Some(json!({"scope": "actor", "value": "agent-a", "reason": "test kill switch"})),
            )?;
            ensure!(s == 201, "override: {s} {v}");
            std::fs::write(&killed, "")?;
            Ok(())
        })
    };
    let results = agent(
        &deps,
        &["http".into(), mcp.clone(), TOKEN.into()],
        &steps,
        dir,
    )?;
    let reviewed = reviewer
        .join()
        .map_err(|_| anyhow::anyhow!("reviewer panicked"))??;
    switch
        .join()
        .map_err(|_| anyhow::anyhow!("switch panicked"))??;
    let show = serde_json::to_string_pretty(&results)?;

    // Tools: prefixed, the outright-blocked move hidden.
    let tools: Vec<&str> = results[0]["tools"]
        .as_array()
        .context("no tools")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        tools.contains(&"fs.read_text_file") && tools.contains(&"time.get_current_time"),
        "{tools:?}"
    );
    ensure!(
        tools.contains(&"fs.write_file"),
        "write_file is blocked only outside allowed/: {tools:?}"
    );
    ensure!(
        !tools.contains(&"fs.move_file"),
        "move_file is blocked outright, so hidden: {tools:?}"
    );
    // Allowed: the real result.
    let (err, text) = call_result(&results, 1);
    ensure!(
        !err && text.contains("hello from the workspace"),
        "read: {show}"
    );
    // Blocked: isError naming gate, reason, decision; the file does not exist.
    let (err, text) = call_result(&results, 2);
    ensure!(
        err && text.contains("WRITE_OUTSIDE_WORKSPACE")
            && text.contains("gate policy")
            && text.contains("dec_"),
        "blocked write: {text}"
    );
    ensure!(
        !w.join("evil.txt").exists(),
        "the blocked write reached the filesystem"
    );
    let (err, _) = call_result(&results, 3);
    ensure!(!err, "allowed write: {show}");
    ensure!(std::fs::read_to_string(w.join("allowed/ok.txt"))? == "ok");
    // Wrong-typed argument: an error result, and the gateway keeps serving.
    ensure!(
        results[4]["is_error"] == true || results[4].get("error").is_some(),
        "wrong type: {show}"
    );
    let (err, text) = call_result(&results, 5);
    ensure!(
        err && text.contains("max_argument_bytes"),
        "oversized: {text}"
    );
    ensure!(!w.join("allowed/big.txt").exists());
    let (err, text) = call_result(&results, 6);
    ensure!(!err && text.contains("UTC"), "time after bad calls: {text}");
    // Review approved → completes; rejected → never reaches the upstream.
    ensure!(reviewed.len() == 2, "reviews seen: {reviewed:?}");
    let (err, text) = call_result(&results, 7);
    ensure!(!err, "approved call: {text}");
    ensure!(
        w.join("allowed/approved").is_dir(),
        "approved directory missing"
    );
    ensure!(
        results[7]["progress"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "no progress while waiting: {show}"
    );
    let (err, text) = call_result(&results, 8);
    ensure!(
        err && text.contains("rejected") && text.contains(&reviewed[1]),
        "rejected call: {text}"
    );
    ensure!(
        !w.join("allowed/rejected").exists(),
        "a rejected call reached the upstream"
    );
    // Kill switch on the actor: every tool blocked.
    for i in [9, 10] {
        let (err, text) = call_result(&results, i);
        ensure!(
            err && text.contains("gate override"),
            "kill switch, step {i}: {text}"
        );
    }

    // Metrics on the gateway's listener.
    let m = c
        .get(format!("http://127.0.0.1:{mcp_port}/metrics"))
        .send()?
        .text()?;
    ensure!(
        m.contains(
            r#"tollgate_mcp_tool_calls_total{upstream="fs",tool="write_file",verdict="BLOCK"} 1"#
        ),
        "metrics:\n{m}"
    );
    ensure!(
        m.contains("tollgate_mcp_added_latency_seconds_count"),
        "metrics:\n{m}"
    );

    // (tools/list_changed on a policy change: the stdio test.) Stop, then the ledger.
    gw.terminate(Duration::from_secs(20))?;
    let decisions = tool_decisions(&bin, &data)?;
    // 1 read, 2 writes, 1 wrong-typed read, 1 time, 2 reviews × (decision + re-decision
    // for the approved one) = 3, 2 kill-switched → 10 (the oversized call is refused
    // before any decision).
    let statuses: Vec<String> = decisions
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["request"]["action"]["tool"].as_str().unwrap_or("?"),
                d["verdict"]["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    ensure!(
        decisions.len() == 10,
        "decisions in the ledger: {statuses:#?}"
    );
    ensure!(
        decisions
            .iter()
            .all(|d| d["request"]["actor"]["id"] == "agent-a"
                && d["request"]["source"] == d["request"]["action"]["server"]),
        "{statuses:#?}"
    );
    // `redact`: the decision and the ledger saw the SHA-256 of the content, the
    // filesystem server the content itself (ok.txt holds "ok", asserted above).
    let write = decisions
        .iter()
        .find(|d| {
            d["request"]["action"]["arguments"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("allowed/ok.txt"))
        })
        .context("the allowed write is not in the ledger")?;
    let ok_digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"ok"));
    ensure!(
        write["request"]["action"]["arguments"]["content"] == ok_digest.as_str(),
        "not redacted: {write}"
    );
    let out = audit_verify(&bin, &data)?;
    eprintln!("{out}");
    Ok(())
}

/// stdio, embedded decisions: allowed and blocked calls, an upstream killed
/// mid-session is restarted, a policy change sends tools/list_changed; the ledger
/// verifies.
#[test]
fn stdio_embedded_restart() -> anyhow::Result<()> {
    let Some(deps) = deps()? else { return Ok(()) };
    let bin = tollgate_bin()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let w = setup(dir)?;
    let data = dir.join("data");
    let api_port = free_port();
    let config = gateway_config(
        &deps,
        &w,
        &format!("data_dir = \"{}\"", data.display()),
        &format!(
            "api_listen = \"127.0.0.1:{api_port}\"\nactor = {{ id = \"desktop\", type = \"AI_AGENT\" }}"
        ),
        false,
    );
    let config_file = dir.join("gateway.toml");
    std::fs::write(&config_file, config)?;
    let base = format!("http://127.0.0.1:{api_port}");
    let p = |name: &str| w.join(name).display().to_string();
    let (initialized, policy_ready, before_kill, restarted) = (
        dir.join("initialized"),
        dir.join("policy-ready"),
        dir.join("before-kill"),
        dir.join("restarted"),
    );
    let steps = json!([
        {"touch": initialized.display().to_string()},
        {"wait_file": policy_ready.display().to_string(), "timeout": 120},
        {"wait_list_changed": 20},                                                        // 0
        {"call": "fs.read_text_file", "args": {"path": p("hello.txt")}},                  // 1
        {"call": "fs.write_file", "args": {"path": p("evil.txt"), "content": "x"}},       // 2
        {"call": "time.get_current_time", "args": {"timezone": "UTC"}},                   // 3
        {"touch": before_kill.display().to_string()},
        {"wait_file": restarted.display().to_string(), "timeout": 120},
        {"call": "time.get_current_time", "args": {"timezone": "Europe/Paris"}},          // 4
        {"call": "fs.read_text_file", "args": {"path": p("hello.txt")}},                  // 5
        {"list_prompts": true},                                                           // 6
    ]);
    let helper = {
        let base = base.clone();
        let data = data.clone();
        let w = w.clone();
        std::thread::spawn(move || -> anyhow::Result<(u32, u32)> {
            let log = Path::new("/dev/null");
            wait_healthy(&base, log)?;
            // Publish once the agent's session is up: the change must reach it as
            // notifications/tools/list_changed.
            wait_file(&initialized, Duration::from_secs(120))?;
            publish_policy(&base, &admin_key(&data)?, &policy(&w))?;
            std::fs::write(&policy_ready, "")?;
            wait_file(&before_kill, Duration::from_secs(120))?;
            // Our process → python agent → tollgate gateway → mcp_server_time.
            let find = |pattern: &str| -> Option<u32> {
                let me = std::process::id();
                let mut stack = children(me);
                while let Some(pid) = stack.pop() {
                    if cmdline(pid).contains(pattern) {
                        return Some(pid);
                    }
                    stack.extend(children(pid));
                }
                None
            };
            let old = find("mcp_server_time").context("the time server is not running")?;
            ensure!(
                Command::new("kill")
                    .args(["-KILL", &old.to_string()])
                    .status()?
                    .success()
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            let new = loop {
                if let Some(pid) = find("mcp_server_time").filter(|p| *p != old) {
                    break pid;
                }
                ensure!(
                    Instant::now() < deadline,
                    "the time server was not restarted"
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            // Let the restarted child finish its handshake.
            std::thread::sleep(Duration::from_millis(500));
            std::fs::write(&restarted, "")?;
            Ok((old, new))
        })
    };
    let cmd = json!([
        bin.display().to_string(),
        "gateway",
        "--config",
        config_file.display().to_string(),
        "--stdio"
    ]);
    let results = agent(&deps, &["stdio".into(), cmd.to_string()], &steps, dir)?;
    let (old, new) = helper
        .join()
        .map_err(|_| anyhow::anyhow!("helper panicked"))??;
    let show = serde_json::to_string_pretty(&results)?;
    ensure!(
        results[0]["list_changed"].as_u64().is_some_and(|n| n >= 1),
        "no tools/list_changed after the policy was activated: {show}"
    );
    let (err, text) = call_result(&results, 1);
    ensure!(!err && text.contains("hello from the workspace"), "{show}");
    let (err, text) = call_result(&results, 2);
    ensure!(err && text.contains("WRITE_OUTSIDE_WORKSPACE"), "{text}");
    ensure!(!w.join("evil.txt").exists());
    let (err, _) = call_result(&results, 3);
    ensure!(!err, "{show}");
    let (err, text) = call_result(&results, 4);
    ensure!(
        !err && text.contains("Europe/Paris"),
        "after restart ({old} → {new}): {show}"
    );
    let (err, _) = call_result(&results, 5);
    ensure!(!err, "{show}");
    // Prompts and resources pass through (merged; these two servers list none).
    ensure!(
        results[6]["prompts"].is_array() && results[6]["resources"].is_array(),
        "{show}"
    );
    // The agent closed stdin: the gateway has exited and released the data dir.
    let decisions = tool_decisions(&bin, &data)?;
    ensure!(decisions.len() == 5, "{} decisions", decisions.len());
    ensure!(
        decisions
            .iter()
            .all(|d| d["request"]["actor"]["id"] == "desktop")
    );
    audit_verify(&bin, &data)?;
    Ok(())
}

/// Remote mode against a running `tollgate serve`: allowed while it runs; once it is
/// stopped every call is blocked (TOLLGATE_UNAVAILABLE) and nothing is forwarded.
#[test]
fn remote_fails_closed() -> anyhow::Result<()> {
    let Some(deps) = deps()? else { return Ok(()) };
    let bin = tollgate_bin()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let w = setup(dir)?;
    let data = dir.join("server-data");
    let (srv_port, mcp_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{srv_port}");
    let srv_log = dir.join("serve.log");
    let mut server = Proc::spawn(
        Command::new(&bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{srv_port}"),
                "--data-dir",
            ])
            .arg(&data),
        &srv_log,
    )?;
    wait_healthy(&base, &srv_log)?;
    let admin = admin_key(&data)?;
    publish_policy(&base, &admin, &policy(&w))?;
    let config = gateway_config(
        &deps,
        &w,
        &format!("tollgate_url = \"{base}\"\ntollgate_timeout = \"2s\""),
        &format!("listen = \"127.0.0.1:{mcp_port}\""),
        false,
    );
    let config_file = dir.join("gateway.toml");
    std::fs::write(&config_file, config)?;
    let log = dir.join("gateway.log");
    let _gw = Proc::spawn(
        Command::new(&bin)
            .args(["gateway", "--config"])
            .arg(&config_file)
            .env("AGENT_A_TOKEN", TOKEN)
            .env("TOLLGATE_API_KEY", &admin),
        &log,
    )?;
    let mcp = format!("http://127.0.0.1:{mcp_port}/mcp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", mcp_port)).is_err() {
        ensure!(
            Instant::now() < deadline,
            "gateway did not start: {}",
            std::fs::read_to_string(&log)?
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = |name: &str| w.join(name).display().to_string();
    let (ready, stopped) = (dir.join("ready-stop"), dir.join("stopped"));
    let steps = json!([
        {"call": "fs.read_text_file", "args": {"path": p("hello.txt")}},                  // 0
        {"call": "fs.write_file", "args": {"path": p("allowed/before.txt"), "content": "1"}}, // 1
        {"touch": ready.display().to_string()},
        {"wait_file": stopped.display().to_string(), "timeout": 60},
        {"call": "fs.write_file", "args": {"path": p("allowed/after.txt"), "content": "2"}}, // 2
        {"call": "time.get_current_time", "args": {"timezone": "UTC"}},                   // 3
    ]);
    let stopper = std::thread::spawn(move || -> anyhow::Result<()> {
        wait_file(&ready, Duration::from_secs(120))?;
        server.terminate(Duration::from_secs(20))?;
        std::fs::write(&stopped, "")?;
        Ok(())
    });
    let results = agent(&deps, &["http".into(), mcp, TOKEN.into()], &steps, dir)?;
    stopper
        .join()
        .map_err(|_| anyhow::anyhow!("stopper panicked"))??;
    let show = serde_json::to_string_pretty(&results)?;
    let (err, text) = call_result(&results, 0);
    ensure!(!err && text.contains("hello from the workspace"), "{show}");
    let (err, _) = call_result(&results, 1);
    ensure!(!err && w.join("allowed/before.txt").exists(), "{show}");
    for i in [2, 3] {
        let (err, text) = call_result(&results, i);
        ensure!(
            err && text.contains("TOLLGATE_UNAVAILABLE"),
            "step {i} with Tollgate stopped: {text}"
        );
    }
    ensure!(
        !w.join("allowed/after.txt").exists(),
        "a call was forwarded without a decision"
    );
    let decisions = tool_decisions(&bin, &data)?;
    ensure!(decisions.len() == 2, "{} decisions", decisions.len());
    audit_verify(&bin, &data)?;
    Ok(())
}

/// The shipped example: its config is valid and its policy passes its tests.
#[test]
fn example_config_and_policy() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mcp");
    let config = tollgate_mcp::GatewayConfig::load(&dir.join("gateway.toml"))?;
    ensure!(config.upstreams.len() == 2 && config.policy.as_deref() == Some("mcp-tools"));
    ensure!(
        config.policy_files == vec![dir.join("policy.yaml")],
        "{:?}",
        config.policy_files
    );
    let out = Command::new(tollgate_bin()?)
        .args(["policy", "test"])
        .arg(&dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("0 failed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A streamable HTTP upstream with a header from the environment: a second gateway
/// whose upstream is the first gateway's `/mcp` (bearer token from `headers_env`).
/// Both decide: the outer one on `up.fs.…`, the inner one with its policy.
#[test]
fn http_upstream_chain() -> anyhow::Result<()> {
    let Some(deps) = deps()? else { return Ok(()) };
    let bin = tollgate_bin()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let w = setup(dir)?;
    let inner_data = dir.join("inner-data");
    let (inner_api, inner_mcp) = (free_port(), free_port());
    let inner = gateway_config(
        &deps,
        &w,
        &format!("data_dir = \"{}\"", inner_data.display()),
        &format!("api_listen = \"127.0.0.1:{inner_api}\"\nlisten = \"127.0.0.1:{inner_mcp}\""),
        false,
    );
    std::fs::write(dir.join("inner.toml"), inner)?;
    let inner_log = dir.join("inner.log");
    let _inner = Proc::spawn(
        Command::new(&bin)
            .args(["gateway", "--config"])
            .arg(dir.join("inner.toml"))
            .env("AGENT_A_TOKEN", TOKEN),
        &inner_log,
    )?;
    let inner_base = format!("http://127.0.0.1:{inner_api}");
    wait_healthy(&inner_base, &inner_log)?;
    publish_policy(&inner_base, &admin_key(&inner_data)?, &policy(&w))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", inner_mcp)).is_err() {
        ensure!(Instant::now() < deadline, "inner gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let outer_data = dir.join("outer-data");
    let (outer_api, outer_mcp) = (free_port(), free_port());
    let outer = format!(
        r#"data_dir = "{}"
api_listen = "127.0.0.1:{outer_api}"
listen = "127.0.0.1:{outer_mcp}"
policy = "chain"
policy_files = ["chain.yaml"]

[[clients]]
token_env = "OUTER_TOKEN"
actor = {{ id = "outer-agent", type = "AI_AGENT" }}

[[upstreams]]
name = "up"
url = "http://127.0.0.1:{inner_mcp}/mcp"
headers_env = {{ Authorization = "INNER_AUTH" }}
"#,
        outer_data.display()
    );
    std::fs::write(dir.join("outer.toml"), outer)?;
    std::fs::write(
        dir.join("chain.yaml"),
        "id: chain\ndefault_effect: allow\nrules:\n  - name: no-time\n    when: 'action.tool.startsWith(\"up.time.\")'\n    effect: block\n    reason_code: NO_TIME\n",
    )?;
    let outer_log = dir.join("outer.log");
    let outer_token = "outer-token-0123456789abcdef";
    let _outer = Proc::spawn(
        Command::new(&bin)
            .args(["gateway", "--config"])
            .arg(dir.join("outer.toml"))
            .env("OUTER_TOKEN", outer_token)
            .env("INNER_AUTH", format!("Bearer {TOKEN}")),
        &outer_log,
    )?;
    wait_healthy(&format!("http://127.0.0.1:{outer_api}"), &outer_log)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", outer_mcp)).is_err() {
        ensure!(Instant::now() < deadline, "outer gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = |name: &str| w.join(name).display().to_string();
    let steps = json!([
        {"list": true},                                                                     // 0
        {"call": "up.fs.read_text_file", "args": {"path": p("hello.txt")}},                 // 1
        {"call": "up.fs.write_file", "args": {"path": p("evil.txt"), "content": "x"}},      // 2
        {"call": "up.time.get_current_time", "args": {"timezone": "UTC"}},                  // 3
    ]);
    let results = agent(
        &deps,
        &[
            "http".into(),
            format!("http://127.0.0.1:{outer_mcp}/mcp"),
            outer_token.into(),
        ],
        &steps,
        dir,
    )?;
    let show = serde_json::to_string_pretty(&results)?;
    ensure!(
        results[0]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "up.fs.read_text_file")),
        "{show}\nouter log:\n{}",
        std::fs::read_to_string(&outer_log)?
    );
    let (err, text) = call_result(&results, 1);
    ensure!(!err && text.contains("hello from the workspace"), "{show}");
    // Allowed by the outer policy, blocked by the inner one.
    let (err, text) = call_result(&results, 2);
    ensure!(err && text.contains("WRITE_OUTSIDE_WORKSPACE"), "{text}");
    ensure!(!w.join("evil.txt").exists());
    // Blocked by the outer policy: the inner gateway never sees it.
    let (err, text) = call_result(&results, 3);
    ensure!(err && text.contains("NO_TIME"), "{text}");
    Ok(())
}
