//! `tollgate-bench integrations`: what the integrations cost the decision path. The
//! same load against three configurations of `tollgate serve`, alternated over
//! rounds so that drift of the machine falls on all three alike:
//!
//! - `baseline`: OpenTelemetry off, no notification sink;
//! - `otel on`: traces and metrics exported over OTLP/HTTP to a local receiver;
//! - `dead sinks`: a CloudEvents SIEM sink (every ledger entry) and a webhook sink
//!   whose endpoint answers 500 forever, with fast retries (every 100–400 ms), so
//!   deliveries fail and are dead-lettered all through the run.
//!
//! Each run: a closed loop (`--connections`, back to back) and an open loop at a fixed
//! rate (`--rate`, latency from the scheduled send time). Prints one row per run and a
//! summary of medians with the ratio to the baseline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{Guard, Run, drive, drive_rate, free_port, wait_ready};

struct Options {
    tollgate: PathBuf,
    seconds: u64,
    connections: usize,
    rate: f64,
    rounds: usize,
}

fn options(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut o = Options {
        tollgate: PathBuf::new(),
        seconds: 10,
        connections: 16,
        rate: 1000.0,
        rounds: 3,
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--tollgate" => o.tollgate = PathBuf::from(value()?),
            "--seconds" => o.seconds = value()?.parse()?,
            "--connections" => o.connections = value()?.parse()?,
            "--rate" => o.rate = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            other => bail!("unknown argument `{other}`"),
        }
    }
    if o.tollgate.as_os_str().is_empty() {
        bail!("--tollgate PATH (the release `tollgate` binary) is required");
    }
    Ok(o)
}

/// Requests the receiver got: OTLP exports (answered 200) and failed deliveries
/// (answered 500).
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// A receiver on `port`: `/ok/…` answers 200 with an empty protobuf body (an empty
/// OTLP export response), `/fail/…` answers 500.
fn receiver(port: u16, counts: Arc<Counts>) -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let counts = Arc::clone(&counts);
                async move {
                    if uri.path().starts_with("/fail/") {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Vec::new())
                    } else {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                        (axum::http::StatusCode::OK, Vec::new())
                    }
                }
            });
            match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
                Ok(listener) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = axum::serve(listener, app).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    match ready_rx.recv_timeout(Duration::from_secs(10))? {
        Ok(()) => Ok(()),
        Err(e) => bail!("receiver: {e}"),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Baseline,
    Otel,
    DeadSinks,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Baseline => "baseline",
            Setup::Otel => "otel on",
            Setup::DeadSinks => "dead sinks",
        }
    }
}

struct Measured {
    closed: Run,
    open: Run,
    /// Receiver requests during the run (OTLP exports, or failed deliveries).
    received: u64,
    /// Dead-lettered deliveries at the end of the run.
    dead: usize,
}

fn start(
    tollgate: &Path,
    dir: &Path,
    setup: Setup,
    receiver: u16,
) -> anyhow::Result<(Guard, String, Value)> {
    let port = free_port()?;
    let mut cmd = Command::new(tollgate);
    cmd.arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.join("data"))
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_KEY_RATE_PER_SECOND", "1000000")
        .env("TOLLGATE_KEY_RATE_BURST", "1000000")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match setup {
        Setup::Baseline => {}
        Setup::Otel => {
            cmd.env(
                "TOLLGATE_OTEL_ENDPOINT",
                format!("http://127.0.0.1:{receiver}/ok"),
            )
            .env("TOLLGATE_OTEL_METRICS_INTERVAL_MS", "1000");
        }
        Setup::DeadSinks => {
            cmd.env("TOLLGATE_NOTIFY_POLL_MS", "100")
                .env("TOLLGATE_NOTIFY_BACKOFF_BASE_MS", "100")
                .env("TOLLGATE_NOTIFY_BACKOFF_MAX_MS", "400")
                .env("TOLLGATE_NOTIFY_MAX_ATTEMPTS", "3");
        }
    }
    let started = Instant::now();
    let guard = Guard(
        cmd.spawn()
            .with_context(|| format!("starting {}", tollgate.display()))?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/v1/health"), started)?;
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("data/bootstrap-keys.json"),
    )?)?;
    Ok((guard, base, boot))
}

fn measure(o: &Options, setup: Setup, receiver: u16, counts: &Counts) -> anyhow::Result<Measured> {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-bench-integrations-{}-{}",
        std::process::id(),
        setup.name().replace(' ', "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (guard, base, boot) = start(&o.tollgate, &dir, setup, receiver)?;
    let key = boot["test_key"]["secret"].as_str().context("test key")?;
    let admin = boot["admin_key"]["secret"].as_str().context("admin key")?;
    let http = reqwest::blocking::Client::new();
    if setup == Setup::DeadSinks {
        // The SIEM sink takes every entry; the webhook is given decisions too, so
        // that each decision is one more failing delivery.
        for (kind, path, events) in [
            ("cloudevents", "siem", None),
            ("webhook", "hook", Some(json!(["decision"]))),
        ] {
            let mut sink =
                json!({"kind": kind, "url": format!("http://127.0.0.1:{receiver}/fail/{path}")});
            if let Some(e) = events {
                sink["events"] = e;
            }
            let r = http
                .post(format!("{base}/v1/admin/notify/sinks"))
                .bearer_auth(admin)
                .json(&sink)
                .send()?;
            if !r.status().is_success() {
                bail!("adding the {kind} sink: HTTP {}: {}", r.status(), r.text()?);
            }
        }
    }
    let body = json!({
        "actor": {"id": "bench-agent", "type": "AI_AGENT"},
        "action": {"type": "OPEN_POSITION", "symbol": "BTC", "qty": 1},
        "signals": {"volatility": 0.05, "confidence": 0.95},
        "source": "bench"
    });
    let url = format!("{base}/v1/decisions");
    let before = counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed);
    let closed = drive(&url, Some(key), &body, o.connections, o.seconds)?;
    let open = drive_rate(&url, Some(key), &body, o.connections, o.rate, o.seconds)?;
    let received =
        counts.ok.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) - before;
    let dead = if setup == Setup::DeadSinks {
        let v: Value = http
            .get(format!("{base}/v1/admin/notify/deliveries?state=dead"))
            .bearer_auth(admin)
            .send()?
            .json()?;
        v["deliveries"].as_array().map_or(0, Vec::len)
    } else {
        0
    };
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Measured {
        closed,
        open,
        received,
        dead,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `tollgate-bench integrations --tollgate PATH [--seconds N] [--connections C]
/// [--rate R] [--rounds K]`.
pub(crate) fn run(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let o = options(args)?;
    let port = free_port()?;
    let counts = Arc::new(Counts::default());
    receiver(port, Arc::clone(&counts))?;
    let setups = [Setup::Baseline, Setup::Otel, Setup::DeadSinks];
    println!(
        "closed loop: {} connections, {} s; open loop: {:.0} requests/s, {} s; {} rounds, setups alternated",
        o.connections, o.seconds, o.rate, o.seconds, o.rounds
    );
    println!();
    println!(
        "| round | setup | closed req/s | closed p50 ms | closed p99 ms | open p50 ms | open p99 ms | errors | receiver requests | dead-lettered |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all: Vec<(Setup, Measured)> = Vec::new();
    for round in 1..=o.rounds {
        for &setup in &setups {
            let m = measure(&o, setup, port, &counts)?;
            println!(
                "| {round} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
                setup.name(),
                m.closed.rps(),
                m.closed.pct(0.50),
                m.closed.pct(0.99),
                m.open.pct(0.50),
                m.open.pct(0.99),
                m.closed.errors + m.open.errors,
                m.received,
                m.dead
            );
            all.push((setup, m));
        }
    }
    println!();
    println!("Medians over the rounds, and the ratio to the baseline's median:");
    println!();
    println!(
        "| setup | closed req/s | closed p50 ms | closed p99 ms | open p50 ms | open p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let pick = |s: Setup, f: &dyn Fn(&Measured) -> f64| {
        median(
            all.iter()
                .filter(|(x, _)| *x == s)
                .map(|(_, m)| f(m))
                .collect(),
        )
    };
    let columns: [&dyn Fn(&Measured) -> f64; 5] = [
        &|m| m.closed.rps(),
        &|m| m.closed.pct(0.50),
        &|m| m.closed.pct(0.99),
        &|m| m.open.pct(0.50),
        &|m| m.open.pct(0.99),
    ];
    let base: Vec<f64> = columns.iter().map(|f| pick(Setup::Baseline, f)).collect();
    for &setup in &setups {
        let cells: Vec<String> = columns
            .iter()
            .zip(&base)
            .enumerate()
            .map(|(i, (f, b))| {
                let v = pick(setup, f);
                let digits = if i == 0 { 0 } else { 3 };
                if setup == Setup::Baseline {
                    format!("{v:.digits$}")
                } else {
                    format!("{v:.digits$} ({:.2}×)", v / b)
                }
            })
            .collect();
        println!("| {} | {} |", setup.name(), cells.join(" | "));
    }
    Ok(())
}
