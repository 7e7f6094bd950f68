//! `tollgate-bench`: drives Tollgate (`POST /v1/decisions`, durable ledger) and a bare
//! axum handler returning a fixed JSON body with the same load generator, in the same
//! run, at several connection counts, and prints one table: requests/s, p50/p99/p99.9,
//! the ratio to the bare server, Tollgate's peak RSS and start-up time.
//!
//! `bench/run.sh` builds the release binaries and runs this.
//!
//! Two more harnesses share its server handling: `tollgate-bench overload` (4x
//! saturation, `scripts/overload.sh`) and `tollgate-bench soak` (mixed load over every
//! endpoint, `scripts/soak.sh`); see `overload.rs` and `soak.rs`. `tollgate-bench tlog`
//! (`bench/tlog.sh`) measures dossier fetches from tiled ledgers and the append rate
//! with tiles on and off, on the store alone (`tlog.rs`).

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

mod integrations;
mod load;
mod overload;
mod soak;
mod tlog;

struct Options {
    tollgate: PathBuf,
    seconds: u64,
    connections: Vec<usize>,
    /// `None`: as many as the row that saturated.
    half_connections: Option<usize>,
}

fn parse_options() -> anyhow::Result<Option<Options>> {
    let mut args = std::env::args().skip(1);
    let mut tollgate = None;
    let mut seconds = 10;
    let mut connections = vec![1, 16, 64];
    let mut half_connections = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "bare" => {
                let port: u16 = args.next().context("bare PORT")?.parse()?;
                bare(port)?;
                return Ok(None);
            }
            "overload" => {
                overload::run(args)?;
                return Ok(None);
            }
            "soak" => {
                soak::run(args)?;
                return Ok(None);
            }
            "integrations" => {
                integrations::run(args)?;
                return Ok(None);
            }
            "tlog" => {
                tlog::run(args)?;
                return Ok(None);
            }
            "--tollgate" => tollgate = Some(PathBuf::from(args.next().context("--tollgate PATH")?)),
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => {
                connections = args
                    .next()
                    .context("--connections 1,16,64")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--half-connections" => {
                half_connections = Some(args.next().context("--half-connections N")?.parse()?);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    let tollgate =
        tollgate.context("--tollgate PATH (the release `tollgate` binary) is required")?;
    Ok(Some(Options {
        tollgate,
        seconds,
        connections,
        half_connections,
    }))
}

/// The bare server: one handler returning a fixed JSON body.
fn bare(port: u16) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let body = json!({"decision_id": "dec_0", "status": "ALLOW", "gate": "permit", "reason_codes": []});
        let app = axum::Router::new().route(
            "/v1/decisions",
            axum::routing::post(move || {
                let body = body.clone();
                async move { axum::Json(body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `url` answers; returns the time it took from `since`.
fn wait_ready(url: &str, since: Instant) -> anyhow::Result<Duration> {
    let client = reqwest::blocking::Client::new();
    while since.elapsed() < Duration::from_secs(30) {
        if client.get(url).send().is_ok() {
            return Ok(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("{url} did not come up")
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Debug, Default)]
struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }
}

/// `connections` keep-alive connections, each sending requests back to back for
/// `seconds` after a one-second warm-up.
fn drive(
    url: &str,
    key: Option<&str>,
    body: &Value,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<Run> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let measuring = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            // One client per connection: each keeps its own keep-alive connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let (url, key, body) = (url.to_owned(), key.map(str::to_owned), body.to_string());
            let (stop, measuring) = (Arc::clone(&stop), Arc::clone(&measuring));
            tasks.push(tokio::spawn(async move {
                let mut run = Run::default();
                while !stop.load(Ordering::Relaxed) {
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(k) = &key {
                        req = req.bearer_auth(k);
                    }
                    let t = Instant::now();
                    let ok = match req.send().await {
                        Ok(r) => {
                            let status = r.status();
                            r.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    if measuring.load(Ordering::Relaxed) {
                        run.requests += 1;
                        if !ok {
                            run.errors += 1;
                        }
                        run.latencies_us
                            .push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                }
                run
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut total = Run {
            seconds: elapsed,
            ..Run::default()
        };
        for t in tasks {
            let r = t.await?;
            total.requests += r.requests;
            total.errors += r.errors;
            total.latencies_us.extend(r.latencies_us);
        }
        total.latencies_us.sort_unstable();
        anyhow::Ok(total)
    })
}

/// An open-loop generator: `rate` requests/s in total, spread evenly over
/// `connections` keep-alive connections, each on its own fixed schedule. Latency is
/// measured from the *scheduled* send time, so a request that had to wait for its
/// connection counts that wait (no coordinated omission).
fn drive_rate(
    url: &str,
    key: Option<&str>,
    body: &Value,
    connections: usize,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Run> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let warmup = Duration::from_secs(1);
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let end = start + warmup + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for i in 0..connections {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let (url, key, body) = (url.to_owned(), key.map(str::to_owned), body.to_string());
            let offset = interval.mul_f64(i as f64 / connections as f64);
            tasks.push(tokio::spawn(async move {
                let mut run = Run::default();
                let mut next = start + offset;
                while next < end {
                    tokio::time::sleep_until(next).await;
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(k) = &key {
                        req = req.bearer_auth(k);
                    }
                    let ok = match req.send().await {
                        Ok(r) => {
                            let status = r.status();
                            r.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    if next >= start + warmup {
                        run.requests += 1;
                        if !ok {
                            run.errors += 1;
                        }
                        let waited = tokio::time::Instant::now() - next;
                        run.latencies_us
                            .push(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
                    }
                    next += interval;
                }
                run
            }));
        }
        let mut total = Run::default();
        for t in tasks {
            let r = t.await?;
            total.requests += r.requests;
            total.errors += r.errors;
            total.latencies_us.extend(r.latencies_us);
        }
        // Achieved rate over the measured part of the schedule (the last answers may
        // arrive after it ends; they are counted, and their lateness is in the latency).
        total.seconds = seconds as f64;
        total.latencies_us.sort_unstable();
        anyhow::Ok(total)
    })
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    // reqwest may be compiled with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(opts) = parse_options()? else {
        return Ok(());
    };
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let port = free_port()?;
    let started = Instant::now();
    let tollgate = Guard(
        Command::new(&opts.tollgate)
            .arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", dir.join("data"))
            .env("TOLLGATE_LOG", "warn")
            // The benchmark measures decisions, not the per-key request-rate limit.
            .env("TOLLGATE_KEY_RATE_PER_SECOND", "1000000")
            .env("TOLLGATE_KEY_RATE_BURST", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", opts.tollgate.display()))?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let startup = wait_ready(&format!("{base}/v1/health"), started)?;
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("data/bootstrap-keys.json"),
    )?)?;
    let key = boot["test_key"]["secret"]
        .as_str()
        .context("test key")?
        .to_owned();

    let bare_port = free_port()?;
    let me = std::env::current_exe()?;
    let _bare = Guard(
        Command::new(me)
            .args(["bare", &bare_port.to_string()])
            .spawn()?,
    );
    wait_ready(&format!("http://127.0.0.1:{bare_port}/"), Instant::now())?;

    let body = json!({
        "actor": {"id": "bench-agent", "type": "AI_AGENT"},
        "action": {"type": "OPEN_POSITION", "symbol": "BTC", "qty": 1},
        "signals": {"volatility": 0.05, "confidence": 0.95},
        "source": "bench"
    });
    println!(
        "| connections | server | requests/s | p50 ms | p99 ms | p99.9 ms | errors | ratio to bare |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &c in &opts.connections {
        let b = drive(
            &format!("http://127.0.0.1:{bare_port}/v1/decisions"),
            None,
            &body,
            c,
            opts.seconds,
        )?;
        let t = drive(
            &format!("{base}/v1/decisions"),
            Some(&key),
            &body,
            c,
            opts.seconds,
        )?;
        for (name, r) in [("bare axum", &b), ("tollgate", &t)] {
            let ratio = if name == "tollgate" {
                format!("{:.2}", t.rps() / b.rps())
            } else {
                "1.00".into()
            };
            println!(
                "| {c} | {name} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {ratio} |",
                r.rps(),
                r.pct(0.50),
                r.pct(0.99),
                r.pct(0.999),
                r.errors
            );
        }
        rows.push((c, b.rps(), t.rps()));
    }

    // Tail latency at half of saturation: saturation is the best Tollgate rate of the
    // table above (closed loop); then an open-loop generator offers half of it.
    // The open loop uses as many connections as the row that saturated: with fewer,
    // each connection's schedule (one request in flight per HTTP/1.1 connection)
    // queues behind its own slow answers, and the client, not the server, sets the
    // tail.
    let (saturation, saturating) = rows
        .iter()
        .map(|r| (r.2, r.0))
        .fold((0.0, 1), |best, r| if r.0 > best.0 { r } else { best });
    let half_connections = opts.half_connections.unwrap_or(saturating);
    let half = saturation / 2.0;
    let h = drive_rate(
        &format!("{base}/v1/decisions"),
        Some(&key),
        &body,
        half_connections,
        half,
        opts.seconds,
    )?;
    println!();
    println!(
        "| at 50% of saturation | offered requests/s | answered requests/s | p50 ms | p99 ms | p99.9 ms | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| tollgate, {} connections, open loop (saturation {saturation:.0}/s) | {half:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
        half_connections,
        h.rps(),
        h.pct(0.50),
        h.pct(0.99),
        h.pct(0.999),
        h.errors
    );

    let rss = peak_rss_kib(tollgate.0.id())
        .map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!();
    println!(
        "tollgate start-up (spawn to first /v1/health answer): {} ms",
        startup.as_millis()
    );
    println!("tollgate peak RSS: {rss}");

    // The goals of docs/quality.md beside the figures.
    let find = |c: usize| rows.iter().find(|r| r.0 == c);
    println!();
    println!("| goal (docs/quality.md) | bar | measured | met |");
    println!("|---|---|---|---|");
    if let Some(&(c, b, t)) = rows.iter().max_by_key(|r| r.0) {
        let ratio = t / b;
        println!(
            "| requests/s against the bare handler, {c} connections | ≥ 0.50 | {ratio:.2} ({t:.0} / {b:.0}) | {} |",
            yes(ratio >= 0.5)
        );
    }
    let p99 = h.pct(0.99);
    println!(
        "| p99 at 50% of saturation | ≤ 5 ms | {p99:.3} ms at {:.0}/s | {} |",
        h.rps(),
        yes(p99 <= 5.0)
    );
    if let (Some(one), Some(sixteen)) = (find(1), find(16)) {
        let x = sixteen.2 / one.2;
        println!(
            "| throughput 16 connections / 1 connection | ≥ 1.5× | {x:.1}× | {} |",
            yes(x >= 1.5)
        );
    }
    println!(
        "| peak RSS (bar: after 1 M decisions; here after this run) | ≤ 100 MiB | {rss} | {} |",
        peak_rss_kib(tollgate.0.id()).map_or("?", |k| yes(k <= 100 * 1024))
    );
    println!(
        "| start-up, empty data dir | ≤ 200 ms | {} ms | {} |",
        startup.as_millis(),
        yes(startup <= Duration::from_millis(200))
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
