//! The gateway's benchmark (`bench/mcp.sh`): the latency a tool call gains through
//! the gateway over calling a trivial upstream (`tollgate-mcp-echo`, stdio) directly,
//! median and p99, embedded and remote modes; and calls/s at 1 and 16 concurrent
//! sessions (streamable HTTP toward the gateway). Prints one table.
//!
//! tollgate-mcp-bench --tollgate target/release/tollgate --echo target/release/tollgate-mcp-echo

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its table"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};

const TOKEN: &str = "bench-token-0123456789abcdef";
const POLICY: &str = "id: bench\ndefault_effect: allow\nrules: []\n";
const SERVER_CONFIG: &str = "key_rate_burst = 1000000\nkey_rate_per_second = 1000000\nmonthly_quota = 100000000\nlog_format = \"json\"\n";

struct Args {
    tollgate: PathBuf,
    echo: PathBuf,
    calls: usize,
    seconds: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        tollgate: PathBuf::from("target/release/tollgate"),
        echo: PathBuf::from("target/release/tollgate-mcp-echo"),
        calls: 2000,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--tollgate" => a.tollgate = v.into(),
            "--echo" => a.echo = v.into(),
            "--calls" => a.calls = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            _ => bail!("unknown argument {k}"),
        }
    }
    Ok(a)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn echo_args() -> JsonObject {
    json!({"text": "hello", "n": 1})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// One call; fails on an error result (a blocked call would measure nothing).
async fn call(peer: &Peer<RoleClient>, tool: &str) -> anyhow::Result<()> {
    let r = peer
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(echo_args()))
        .await?;
    ensure!(
        r.is_error != Some(true),
        "the call answered an error: {r:?}"
    );
    Ok(())
}

/// Sequential latencies of `n` calls after a warm-up, sorted, in µs.
async fn latencies(peer: &Peer<RoleClient>, tool: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    for _ in 0..100 {
        call(peer, tool).await?;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call(peer, tool).await?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn stdio_client(
    cmd: Command,
) -> anyhow::Result<rmcp::service::RunningService<RoleClient, ()>> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stderr(Stdio::null());
    let (t, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(t).await?)
}

async fn http_client(url: &str) -> anyhow::Result<rmcp::service::RunningService<RoleClient, ()>> {
    let c = StreamableHttpClientTransportConfig::with_uri(url).auth_header(TOKEN);
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(c))
            .await?,
    )
}

/// Calls/s with `sessions` clients calling in a loop for `seconds`.
async fn throughput(peers: Vec<Peer<RoleClient>>, tool: &str, seconds: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for peer in peers {
        let done = done.clone();
        let tool = tool.to_owned();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                call(&peer, &tool).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn wait_healthy(base: &str) -> anyhow::Result<()> {
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(format!("{base}/v1/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{base} not healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(base: &str, data: &Path) -> anyhow::Result<String> {
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-keys.json"))?)?;
    let admin = keys["admin_key"]["secret"]
        .as_str()
        .context("admin key")?
        .to_owned();
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/admin/policies"))
        .bearer_auth(&admin)
        .json(&json!({"text": POLICY, "activate": true}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "publish: {}", r.status());
    Ok(admin)
}

struct Mode {
    name: &'static str,
    median_us: f64,
    p99_us: f64,
    rate1: f64,
    rate16: f64,
}

fn gateway_toml(dir: &Path, echo: &Path, head: &str, listen: u16) -> anyhow::Result<PathBuf> {
    let text = format!(
        "{head}\npolicy = \"bench\"\nlisten = \"127.0.0.1:{listen}\"\nactor = {{ id = \"bench-agent\", type = \"AI_AGENT\" }}\n\
         [[clients]]\ntoken_env = \"BENCH_TOKEN\"\nactor = {{ id = \"bench-agent\", type = \"AI_AGENT\" }}\n\
         [[upstreams]]\nname = \"echo\"\ncommand = [\"{}\"]\n",
        echo.display()
    );
    let path = dir.join(format!("gateway-{listen}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Latency with one agent over stdio, then calls/s over streamable HTTP; `envs` go
/// to each gateway process, `setup` runs once the first one is up.
async fn measure_gateway(
    a: &Args,
    name: &'static str,
    config: &Path,
    listen: u16,
    envs: &[(&str, &str)],
    setup: impl AsyncFnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Mode> {
    let mut cmd = Command::new(&a.tollgate);
    cmd.args(["gateway", "--stdio", "--config"])
        .arg(config)
        .env("TOLLGATE_LOG", "warn")
        .envs(envs.iter().copied());
    let client = stdio_client(cmd).await?;
    setup().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lat = latencies(client.peer(), "echo.echo", a.calls).await?;
    client.cancel().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Throughput: streamable HTTP sessions.
    let gw = Proc(
        Command::new(&a.tollgate)
            .args(["gateway", "--config"])
            .arg(config)
            .env("BENCH_TOKEN", TOKEN)
            .env("TOLLGATE_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let url = format!("http://127.0.0.1:{listen}/mcp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        ensure!(Instant::now() < deadline, "the HTTP gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rates = Vec::new();
    for sessions in [1usize, 16] {
        let mut clients = Vec::new();
        for _ in 0..sessions {
            clients.push(http_client(&url).await?);
        }
        for c in &clients {
            for _ in 0..20 {
                call(c.peer(), "echo.echo").await?;
            }
        }
        let peers = clients.iter().map(|c| c.peer().clone()).collect();
        rates.push(throughput(peers, "echo.echo", a.seconds).await?);
        for c in clients {
            let _ = c.cancel().await;
        }
    }
    drop(gw);
    Ok(Mode {
        name,
        median_us: pct(&lat, 0.5),
        p99_us: pct(&lat, 0.99),
        rate1: rates[0],
        rate16: rates[1],
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args()?;
    let tmp = std::env::temp_dir().join(format!("tollgate-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let server_config = tmp.join("server.toml");
    std::fs::write(&server_config, SERVER_CONFIG)?;

    // Direct: the agent talks to the echo server itself.
    let direct = {
        let client = stdio_client(Command::new(&a.echo)).await?;
        let lat = latencies(client.peer(), "echo", a.calls).await?;
        let rate1 = throughput(vec![client.peer().clone()], "echo", a.seconds).await?;
        client.cancel().await?;
        let mut clients = Vec::new();
        for _ in 0..16 {
            clients.push(stdio_client(Command::new(&a.echo)).await?);
        }
        let peers = clients.iter().map(|c| c.peer().clone()).collect();
        let rate16 = throughput(peers, "echo", a.seconds).await?;
        for c in clients {
            let _ = c.cancel().await;
        }
        Mode {
            name: "direct (echo, stdio)",
            median_us: pct(&lat, 0.5),
            p99_us: pct(&lat, 0.99),
            rate1,
            rate16,
        }
    };

    // Embedded: decisions in-process on a data directory; with and without the
    // outcome report that follows each forwarded call.
    let mut rows = Vec::new();
    for outcomes in [false, true] {
        let data = tmp.join(format!("embedded-data-{outcomes}"));
        let api = free_port()?;
        let listen = free_port()?;
        let head = format!(
            "data_dir = \"{}\"\nserver_config = \"{}\"\napi_listen = \"127.0.0.1:{api}\"\nreport_outcomes = {outcomes}",
            data.display(),
            server_config.display()
        );
        let config = gateway_toml(&tmp, &a.echo, &head, listen)?;
        let base = format!("http://127.0.0.1:{api}");
        let name = if outcomes {
            "gateway, embedded, outcomes reported"
        } else {
            "gateway, embedded, no outcome reports"
        };
        rows.push(
            measure_gateway(&a, name, &config, listen, &[], async || {
                wait_healthy(&base).await?;
                publish(&base, &data).await?;
                Ok(())
            })
            .await?,
        );
    }

    // Remote: decisions by a running `tollgate serve` on loopback; the same two ways
    // (the outcome source registered with a key file, as an operator would).
    {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let data = tmp.join("server-data");
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let _server = Proc(
            Command::new(&a.tollgate)
                .args(["serve", "--config"])
                .arg(&server_config)
                .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
                .arg(&data)
                .env("TOLLGATE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        wait_healthy(&base).await?;
        let admin = publish(&base, &data).await?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let key_file = tmp.join("outcome-key.pem");
        std::fs::write(&key_file, pem.as_bytes())?;
        let public = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            key.verifying_key().to_bytes(),
        );
        let r = reqwest::Client::new()
            .post(format!("{base}/v1/admin/sources"))
            .bearer_auth(&admin)
            .json(&json!({"id": "bench-gateway", "public_key": public}))
            .send()
            .await?;
        ensure!(r.status().is_success(), "source: {}", r.status());
        for outcomes in [false, true] {
            let listen = free_port()?;
            let mut head = format!(
                "tollgate_url = \"{base}\"\napi_key_env = \"BENCH_TOLLGATE_KEY\"\nreport_outcomes = {outcomes}"
            );
            if outcomes {
                head.push_str(&format!(
                    "\noutcome_source = \"bench-gateway\"\noutcome_key_file = \"{}\"",
                    key_file.display()
                ));
            }
            let config = gateway_toml(&tmp, &a.echo, &head, listen)?;
            let name = if outcomes {
                "gateway, remote, outcomes reported"
            } else {
                "gateway, remote, no outcome reports"
            };
            rows.push(
                measure_gateway(
                    &a,
                    name,
                    &config,
                    listen,
                    &[("BENCH_TOLLGATE_KEY", admin.as_str())],
                    async || Ok(()),
                )
                .await?,
            );
        }
    }

    let _ = std::fs::remove_dir_all(&tmp);
    println!();
    println!("MCP gateway: added latency per tools/call over calling the upstream directly");
    println!(
        "({} sequential calls after 100 warm-up, agent over stdio; calls/s over {} s, agents over streamable HTTP; the direct row uses stdio sessions)",
        a.calls, a.seconds
    );
    println!();
    println!(
        "| path | median | p99 | added median | added p99 | calls/s, 1 session | calls/s, 16 sessions |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0} µs | {:.0} µs | — | — | {:.0} | {:.0} |",
        direct.name, direct.median_us, direct.p99_us, direct.rate1, direct.rate16
    );
    for m in &rows {
        let (am, ap) = {
            (
                format!("{:.0} µs", m.median_us - direct.median_us),
                format!("{:.0} µs", m.p99_us - direct.p99_us),
            )
        };
        println!(
            "| {} | {:.0} µs | {:.0} µs | {am} | {ap} | {:.0} | {:.0} |",
            m.name, m.median_us, m.p99_us, m.rate1, m.rate16
        );
    }
    println!();
    for m in rows.iter().filter(|m| m.name.contains("embedded")) {
        let added = m.median_us - direct.median_us;
        println!(
            "goal: median added in embedded mode ≤ 1000 µs ({}): {} ({added:.0} µs)",
            m.name,
            if added <= 1000.0 { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
