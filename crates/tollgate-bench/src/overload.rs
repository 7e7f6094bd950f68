//! `tollgate-bench overload`: 4x saturation against a release server.
//!
//! 1. saturation: `C` keep-alive connections in a closed loop (C = the server's
//!    `max_concurrency`, so nothing is shed) measure the most decisions/s it admits;
//! 2. overload: an open loop offers 4x that rate; past `max_concurrency` the excess
//!    must get 503 with `Retry-After`;
//! 3. recovery: the offered rate drops to half of saturation; the time until every
//!    250 ms window is answered without 503 and at the offered rate is reported.
//!
//! Prints the share of 503 (and of those with `Retry-After`), peak RSS against the
//! 100 MiB bar, p50/p99 of admitted (2xx) requests in each phase, and recovery time.
//!
//! The open loop holds at most `--client-connections` requests in flight (8192 by
//! default), each on its own connection. Past the server's `max_connections` (1024)
//! and the refusals it answers at once (2048 in progress), a connection is closed
//! unanswered: with the default the run is also a connection flood, and those
//! refusals show as transport errors. With 1024 every request reaches the HTTP layer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::load::{
    MAX_OUTSTANDING, Record, Shot, client, open_loop, pct_ms, print_transport_errors,
};
use crate::{Guard, free_port, peak_rss_kib, wait_ready};

/// The memory bar of docs/quality.md.
const RSS_BAR_MIB: f64 = 100.0;

pub(crate) fn run(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut tollgate = None;
    let mut seconds = 10u64;
    let mut concurrency = 32usize;
    let mut outstanding = MAX_OUTSTANDING;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tollgate" => tollgate = args.next(),
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--max-concurrency" => {
                concurrency = args.next().context("--max-concurrency N")?.parse()?;
            }
            "--client-connections" => {
                outstanding = args.next().context("--client-connections N")?.parse()?;
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    let tollgate = tollgate.context("--tollgate PATH is required")?;
    let dir = std::env::temp_dir().join(format!("tollgate-overload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let server = Guard(
        Command::new(&tollgate)
            .arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", dir.join("data"))
            .env("TOLLGATE_LOG", "warn")
            .env("TOLLGATE_MAX_CONCURRENCY", concurrency.to_string())
            // Overload is about admission, not the per-key request-rate limit.
            .env("TOLLGATE_KEY_RATE_PER_SECOND", "100000000")
            .env("TOLLGATE_KEY_RATE_BURST", "100000000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {tollgate}"))?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/v1/health"), Instant::now())?;
    let boot: Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join("data/bootstrap-keys.json"),
    )?)?;
    let key = boot["test_key"]["secret"]
        .as_str()
        .context("test key")?
        .to_owned();
    let body = json!({
        "actor": {"id": "overload-agent", "type": "AI_AGENT"},
        "action": {"type": "OPEN_POSITION", "symbol": "BTC", "qty": 1},
        "signals": {"volatility": 0.05, "confidence": 0.95},
        "source": "overload"
    })
    .to_string();
    let url = format!("{base}/v1/decisions");
    let shot = |_: u64| Shot {
        label: "decide",
        method: Method::POST,
        url: url.clone(),
        key: Some(key.clone()),
        body: Some(body.clone()),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let duration = Duration::from_secs(seconds);
    let (saturated, over, recovery, dropped) = rt.block_on(async {
        let http = client()?;
        // 1. Saturation: closed loop at exactly max_concurrency connections.
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (http, shot) = (http.clone(), shot(0));
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                while start.elapsed() < duration {
                    out.push(crate::load::fire(&http, start, shot.clone()).await);
                }
                out
            }));
        }
        let mut saturated = Vec::new();
        for t in tasks {
            saturated.extend(t.await?);
        }
        let ok = saturated.iter().filter(|r| is_2xx(r)).count();
        let rate = ok as f64 / duration.as_secs_f64();
        if rate < 1.0 {
            bail!("the server admitted {ok} decisions in {seconds}s; cannot saturate it");
        }
        // 2. Overload at 4x; 3. recovery at half the saturation rate.
        let start = Instant::now();
        let (over, d1) = open_loop(&http, start, 4.0 * rate, duration, outstanding, shot).await?;
        let drop_at = start.elapsed();
        let (recovery, d2) =
            open_loop(&http, start, 0.5 * rate, duration, outstanding, shot).await?;
        anyhow::Ok((
            (saturated, rate),
            over,
            (recovery, drop_at, 0.5 * rate),
            d1 + d2,
        ))
    })?;
    let peak = peak_rss_kib(server.0.id()).map(|k| k as f64 / 1024.0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let (sat_records, sat_rate) = saturated;
    println!(
        "overload: max_concurrency {concurrency}, {seconds}s per phase, open loop with at most {outstanding} requests (and connections) outstanding, {} cores shared by server and load generator",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!();
    println!(
        "| phase | offered/s | answers | 2xx | 503 | 503 with Retry-After | other | transport errors | 2xx/s | p50 2xx ms | p99 2xx ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    row(
        "saturation (closed loop)",
        "-".into(),
        &sat_records,
        duration,
    );
    row(
        "overload 4x",
        format!("{:.0}", 4.0 * sat_rate),
        &over,
        duration,
    );
    let (rec, drop_at, rec_rate) = recovery;
    row("recovery 0.5x", format!("{rec_rate:.0}"), &rec, duration);
    println!();
    let shed = over.iter().filter(|r| r.status == 503).count();
    let shed_ra = over
        .iter()
        .filter(|r| r.status == 503 && r.retry_after)
        .count();
    println!(
        "overload: {:.1}% of answers were 503; {:.1}% of the 503s carried Retry-After; {dropped} shots not sent (client slots full)",
        100.0 * shed as f64 / over.len().max(1) as f64,
        100.0 * shed_ra as f64 / shed.max(1) as f64,
    );
    let other_5xx = over
        .iter()
        .chain(&rec)
        .filter(|r| r.status >= 500 && r.status != 503)
        .count();
    println!("5xx other than 503 in overload and recovery: {other_5xx}");
    let all: Vec<Record> = sat_records
        .iter()
        .chain(&over)
        .chain(&rec)
        .cloned()
        .collect();
    print_transport_errors(&all, 10);
    match peak {
        Some(mib) => println!(
            "peak RSS {mib:.1} MiB (bar {RSS_BAR_MIB} MiB): {}",
            if mib <= RSS_BAR_MIB { "within" } else { "OVER" }
        ),
        None => println!("peak RSS: unknown"),
    }
    // Where the recovery phase's 503s fell, by second after the drop (a burst at the
    // start is the backlog draining; isolated ones later are short stalls).
    let mut by_second = vec![0usize; usize::try_from(seconds).unwrap_or(0) + 1];
    for r in rec.iter().filter(|r| r.status == 503) {
        let s = r.sent.saturating_sub(drop_at).as_secs();
        if let Some(n) = usize::try_from(s).ok().and_then(|s| by_second.get_mut(s)) {
            *n += 1;
        }
    }
    println!("recovery 503s by second after the drop: {by_second:?}");
    match recovered_after(&rec, drop_at, rec_rate, true) {
        Some(t) => println!(
            "fully recovered {:.2} s after the load dropped (every later 250 ms window: no 503, >= 90% of offered answered 2xx)",
            t.as_secs_f64()
        ),
        None => println!(
            "NOT fully recovered (no 503 and >= 90% of offered answered 2xx in every later 250 ms window) within the {seconds}s recovery phase"
        ),
    }
    match recovered_after(&rec, drop_at, rec_rate, false) {
        Some(t) => println!(
            "throughput recovered {:.2} s after the load dropped (every later 250 ms window: >= 90% of offered answered 2xx; 503s allowed)",
            t.as_secs_f64()
        ),
        None => println!("throughput did NOT recover within the {seconds}s recovery phase"),
    }
    Ok(())
}

fn is_2xx(r: &Record) -> bool {
    (200..300).contains(&r.status)
}

fn row(name: &str, offered: String, records: &[Record], duration: Duration) {
    let ok: Vec<Duration> = {
        let mut v: Vec<_> = records
            .iter()
            .filter(|r| is_2xx(r))
            .map(|r| r.latency)
            .collect();
        v.sort_unstable();
        v
    };
    let shed = records.iter().filter(|r| r.status == 503).count();
    let shed_ra = records
        .iter()
        .filter(|r| r.status == 503 && r.retry_after)
        .count();
    let errors = records.iter().filter(|r| r.status == 0).count();
    let other = records.len() - ok.len() - shed - errors;
    println!(
        "| {name} | {offered} | {} | {} | {shed} | {shed_ra} | {other} | {errors} | {:.0} | {:.2} | {:.2} |",
        records.len(),
        ok.len(),
        ok.len() as f64 / duration.as_secs_f64(),
        pct_ms(&ok, 0.50),
        pct_ms(&ok, 0.99),
    );
}

/// The time after `drop_at` from which every 250 ms window (by send time) had at
/// least 90% of the offered rate answered 2xx, and, if `strict`, no 503.
fn recovered_after(
    records: &[Record],
    drop_at: Duration,
    rate: f64,
    strict: bool,
) -> Option<Duration> {
    let window = Duration::from_millis(250);
    let expected = rate * window.as_secs_f64();
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for r in records {
        let Some(offset) = r.sent.checked_sub(drop_at) else {
            continue;
        };
        let i = (offset.as_millis() / window.as_millis()) as usize;
        if windows.len() <= i {
            windows.resize(i + 1, (0, 0));
        }
        if let Some(w) = windows.get_mut(i) {
            if is_2xx(r) {
                w.0 += 1;
            } else {
                w.1 += 1;
            }
        }
    }
    // The last window is partial: judge the complete ones.
    windows.pop();
    let good = |w: &(usize, usize)| (!strict || w.1 == 0) && w.0 as f64 >= 0.9 * expected;
    let last_bad = windows.iter().rposition(|w| !good(w));
    let first_good = last_bad.map_or(0, |i| i + 1);
    (first_good < windows.len()).then(|| window * first_good as u32)
}
