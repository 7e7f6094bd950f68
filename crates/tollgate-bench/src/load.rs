//! Open-loop load shared by `overload` and `soak`: requests are sent at a fixed rate
//! whatever the server does (a closed loop would slow down with the server and never
//! overload it), and every answer is recorded with its status, `Retry-After`, latency
//! and send time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::Method;
use tokio::sync::{Semaphore, mpsc};

/// One request to send.
#[derive(Clone, Debug)]
pub(crate) struct Shot {
    pub(crate) label: &'static str,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) key: Option<String>,
    pub(crate) body: Option<String>,
}

/// One answer (or failure).
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) label: &'static str,
    /// Send time, from the start of the run.
    pub(crate) sent: Duration,
    /// HTTP status; 0 for a transport error or timeout.
    pub(crate) status: u16,
    pub(crate) retry_after: bool,
    pub(crate) latency: Duration,
    /// For a transport error: what failed, with its chain of causes.
    pub(crate) error: Option<String>,
}

/// Most requests outstanding at once on the client side by default; past it a shot
/// is counted as not sent rather than queued without bound. Each outstanding request
/// holds its own connection.
pub(crate) const MAX_OUTSTANDING: usize = 8192;

/// A client with an unbounded keep-alive pool whose idle connections are dropped
/// before the server's keep-alive close (30 s), as the Rust SDK does.
pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(20))
        .build()?)
}

/// Sends `next(i)` at `rate` per second for `duration`, starting at `start`, with at
/// most `outstanding` requests in flight; returns the records and the number of
/// shots not sent for want of a slot.
pub(crate) async fn open_loop(
    client: &reqwest::Client,
    start: Instant,
    rate: f64,
    duration: Duration,
    outstanding: usize,
    mut next: impl FnMut(u64) -> Shot,
) -> anyhow::Result<(Vec<Record>, u64)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let slots = Arc::new(Semaphore::new(outstanding.max(1)));
    let phase = Instant::now();
    let mut sent = 0u64;
    let mut dropped = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while phase.elapsed() < duration {
        tick.tick().await;
        let due = (phase.elapsed().as_secs_f64().min(duration.as_secs_f64()) * rate) as u64;
        while sent < due {
            let shot = next(sent);
            sent += 1;
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                dropped += 1;
                continue;
            };
            let (client, tx) = (client.clone(), tx.clone());
            tokio::spawn(async move {
                let record = fire(&client, start, shot).await;
                drop(permit);
                let _ = tx.send(record);
            });
        }
    }
    drop(tx);
    let mut records = Vec::with_capacity(sent as usize);
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    Ok((records, dropped))
}

/// Sends one shot and records the answer.
pub(crate) async fn fire(client: &reqwest::Client, start: Instant, shot: Shot) -> Record {
    let mut req = client.request(shot.method, &shot.url);
    if let Some(k) = &shot.key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = shot.body {
        req = req.header("content-type", "application/json").body(b);
    }
    let sent = start.elapsed();
    let t = Instant::now();
    let (status, retry_after, error) = match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            match r.bytes().await {
                Ok(_) => (status, retry_after, None),
                Err(e) => (0, false, Some(describe(&e))),
            }
        }
        Err(e) => (0, false, Some(describe(&e))),
    };
    Record {
        label: shot.label,
        sent,
        status,
        retry_after,
        latency: t.elapsed(),
        error,
    }
}

/// A reqwest error with its kind and its chain of causes, e.g. `request: error
/// sending request <- connection closed before message completed`.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "other"
    };
    let mut out = format!("{kind}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(&format!(" <- {c}"));
        cause = c.source();
    }
    out
}

/// Prints the first `limit` transport errors with their send time and latency, and
/// how many there were of each description.
pub(crate) fn print_transport_errors(records: &[Record], limit: usize) {
    let failed: Vec<&Record> = records.iter().filter(|r| r.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &failed {
        *by_kind.entry(r.error.as_deref().unwrap_or("")).or_default() += 1;
    }
    println!();
    println!("transport errors: {}", failed.len());
    for (what, n) in by_kind {
        println!("  {n} x {what}");
    }
    for r in failed.iter().take(limit) {
        println!(
            "  sent at {:.3} s, failed after {:.1} ms: {} ({})",
            r.sent.as_secs_f64(),
            r.latency.as_secs_f64() * 1000.0,
            r.label,
            r.error.as_deref().unwrap_or("")
        );
    }
}

/// The `p`-quantile of sorted latencies, in ms.
pub(crate) fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i.min(sorted.len() - 1))
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// Current RSS of `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}
