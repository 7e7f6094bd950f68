//! The characterisation probes: black-box HTTP probes of the DeAlgo characterisation
//! table against a running Tollgate (docs/quality.md, "The lab").
//!
//! Only the public HTTP API is used: `POST /v1/decisions` with an API key, the policy
//! named by `policy_refs: ["csc-default"]`, and the verdict's `status`, `gate` and
//! `retry_after_ms`. Nothing here reads server state or links server code; the
//! reference the probes judge against is the *published* table (capacity 4, refill
//! 5 s, band `volatility < 0.15`, `confidence ≥ 0.90`). The method is in
//! `docs/lab.md`.

use std::fmt;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::LabError;

/// Published reference values (the DeAlgo characterisation table).
const PUBLISHED_CAPACITY: usize = 4;
const PUBLISHED_REFILL: Duration = Duration::from_secs(5);
const PUBLISHED_CEILING_PER_MIN: f64 = 12.0;
/// Published band: permitted iff volatility < 0.15 and confidence ≥ 0.90, in
/// hundredths (the sweeps step by 0.01).
const VOL_LIMIT_HUNDREDTHS: u32 = 15;
const CONF_FLOOR_HUNDREDTHS: u32 = 90;
/// In-band signals used when a probe needs a request the band lets through.
const CALM: (f64, f64) = (0.05, 0.95);

/// How to run the probes.
#[derive(Clone, Debug, Serialize)]
pub struct CharacterizeConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8765`.
    pub url: String,
    /// An API key with scope `decide` (its tenant's bucket is probed).
    #[serde(skip)]
    pub key: String,
    /// Quiet time before the capacity and multi-agent probes (the bucket must be full).
    pub quiet: Duration,
    /// Length of the steady-state probe.
    pub ceiling: Duration,
    /// The refill probe waits 1…`refill_max_s` seconds.
    pub refill_max_s: u32,
    /// Sweeps: when an in-band point is refused by the throttle, wait for the bucket
    /// (`retry_after_ms`) and ask again, so every point is decided with a token in the
    /// bucket. `false`: a throttle refusal counts as "passed the band" (the throttle
    /// runs after the band), no waiting.
    pub wait_for_tokens: bool,
    /// Seed of the chaos probe's random signals.
    pub seed: u64,
    /// Requests per connection count in the concurrency probe.
    pub throughput_requests: usize,
}

impl CharacterizeConfig {
    /// The defaults of the published method for `url` and `key`.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        CharacterizeConfig {
            url: url.into(),
            key: key.into(),
            quiet: Duration::from_secs(25),
            ceiling: Duration::from_secs(60),
            refill_max_s: 10,
            wait_for_tokens: true,
            seed: 1,
            throughput_requests: 256,
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The dimension, as the published table names it.
    pub dimension: String,
    /// The published value.
    pub published: String,
    /// Tollgate's measured value.
    pub measured: String,
    /// Whether the measured value equals the published one (`None`: not comparable,
    /// e.g. latency, where Tollgate is not meant to reproduce the figure).
    pub matches: Option<bool>,
}

/// False permits of one probe.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FalsePermits {
    /// Requests outside the published band (the denominator of the table).
    pub dangerous: usize,
    /// Of those, answered ALLOW.
    pub dangerous_allowed: usize,
    /// In-band requests sent by the probe.
    pub in_band: usize,
    /// Of those, answered ALLOW.
    pub in_band_allowed: usize,
}

/// Everything measured.
#[derive(Clone, Debug, Serialize)]
pub struct CharacterizeReport {
    /// The server probed.
    pub url: String,
    /// Volatility sweep: the points (hundredths) that passed the band.
    pub volatility_passed: Vec<u32>,
    /// Confidence sweep: the points (hundredths) that passed the band.
    pub confidence_passed: Vec<u32>,
    /// Permits among 10 back-to-back in-band requests after quiet.
    pub capacity: usize,
    /// (quiet seconds, permits in a burst of 10 after draining and that quiet).
    pub refill_curve: Vec<(u32, usize)>,
    /// The shortest quiet after which a drained bucket permitted again, seconds.
    pub refill_seconds: Option<u32>,
    /// Permits in the steady-state probe.
    pub ceiling_permits: usize,
    /// Length of the steady-state probe, seconds.
    pub ceiling_seconds: f64,
    /// The steady rate: permits after the first, per minute of the time from the
    /// first to the last (0 with fewer than two permits).
    pub ceiling_per_min: f64,
    /// Round-trip latency of every decision the probes made, ms: median.
    pub latency_median_ms: f64,
    /// p99, ms.
    pub latency_p99_ms: f64,
    /// Decisions timed.
    pub latency_samples: usize,
    /// Decisions per second, one connection, back to back.
    pub throughput_1: f64,
    /// Decisions per second, 64 connections.
    pub throughput_64: f64,
    /// Non-2xx answers in the concurrency probe.
    pub throughput_errors: usize,
    /// Chaos probe (uniform random signals).
    pub chaos: FalsePermits,
    /// Spike probe (adversarial spikes right after permitted requests).
    pub spike: FalsePermits,
    /// Multi-agent probe (dangerous and benign agents at the same instant).
    pub multi_agent: FalsePermits,
    /// ALLOWs outside the band in the sweeps.
    pub sweep_false_permits: usize,
    /// Permits beyond the published bucket (capacity 4, one token per 5 s) over the
    /// whole run, judged from client-side send/receive times (lenient by the latency).
    pub bucket_false_permits: usize,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// The table.
    pub rows: Vec<Row>,
}

impl CharacterizeReport {
    /// Every comparable row matches and there is no false permit anywhere.
    pub fn all_match(&self) -> bool {
        self.rows.iter().all(|r| r.matches != Some(false))
            && self.sweep_false_permits == 0
            && self.bucket_false_permits == 0
    }
}

/// One answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Allow,
    Throttled { retry_after_ms: u64 },
    Blocked,
}

#[derive(Clone, Copy, Debug)]
struct Permit {
    sent: Instant,
    received: Instant,
}

struct Prober {
    client: reqwest::blocking::Client,
    url: String,
    key: String,
    latencies_us: Mutex<Vec<u64>>,
    permits: Mutex<Vec<Permit>>,
}

fn in_band(vol: f64, conf: f64) -> bool {
    vol < 0.15 && conf >= 0.90
}

impl Prober {
    fn new(config: &CharacterizeConfig) -> Result<Self, LabError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| LabError::probe(format!("building the HTTP client: {e}")))?;
        Ok(Prober {
            client,
            url: format!("{}/v1/decisions", config.url.trim_end_matches('/')),
            key: config.key.clone(),
            latencies_us: Mutex::new(Vec::new()),
            permits: Mutex::new(Vec::new()),
        })
    }

    /// One decision with these signals; any answer but a 200 verdict is an error.
    fn decide(&self, agent: &str, vol: f64, conf: f64) -> Result<Answer, LabError> {
        self.decide_with(&self.client, agent, vol, conf)
    }

    fn decide_with(
        &self,
        client: &reqwest::blocking::Client,
        agent: &str,
        vol: f64,
        conf: f64,
    ) -> Result<Answer, LabError> {
        let body = json!({
            "actor": {"id": agent, "type": "AI_AGENT"},
            "action": {"type": "OPEN_POSITION", "symbol": "LAB", "qty": 1},
            "signals": {"volatility": vol, "confidence": conf},
            "source": agent,
            "policy_refs": ["csc-default"],
        });
        let sent = Instant::now();
        let res = client
            .post(&self.url)
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .map_err(|e| LabError::probe(format!("POST {}: {e}", self.url)))?;
        let status = res.status();
        let text = res
            .text()
            .map_err(|e| LabError::probe(format!("reading the answer: {e}")))?;
        let received = Instant::now();
        if !status.is_success() {
            return Err(LabError::probe(format!(
                "POST {} answered {status}: {text}",
                self.url
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| LabError::probe(format!("the answer is not JSON: {e}")))?;
        let micros = u64::try_from((received - sent).as_micros()).unwrap_or(u64::MAX);
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(micros);
        }
        let answer = match (
            v.get("status").and_then(Value::as_str),
            v.get("gate").and_then(Value::as_str),
        ) {
            (Some("ALLOW"), _) => {
                if let Ok(mut p) = self.permits.lock() {
                    p.push(Permit { sent, received });
                }
                Answer::Allow
            }
            (Some(_), Some("throttle")) => Answer::Throttled {
                retry_after_ms: v
                    .get("retry_after_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(1_000),
            },
            (Some(_), Some(_)) => Answer::Blocked,
            _ => {
                return Err(LabError::probe(format!(
                    "the answer has no status or gate: {text}"
                )));
            }
        };
        // An ALLOW must be the policy the probes name.
        if answer == Answer::Allow
            && v.pointer("/policy/id").and_then(Value::as_str) != Some("csc-default")
        {
            return Err(LabError::probe(format!(
                "the ALLOW does not name csc-default: {text}"
            )));
        }
        Ok(answer)
    }

    /// Asks until the answer is not a throttle refusal (waiting as told), at most 20 times.
    fn decide_with_token(&self, agent: &str, vol: f64, conf: f64) -> Result<Answer, LabError> {
        for _ in 0..20 {
            match self.decide(agent, vol, conf)? {
                Answer::Throttled { retry_after_ms } => {
                    std::thread::sleep(Duration::from_millis(retry_after_ms.min(30_000) + 50));
                }
                other => return Ok(other),
            }
        }
        Err(LabError::probe(
            "the throttle refused 20 times in a row".to_owned(),
        ))
    }

    /// Empties the bucket at a known moment: waits for a permit, then sends in-band
    /// requests back to back until the throttle refuses one. The bucket's next token
    /// is then one refill after the last permit, which was just now.
    fn drain(&self) -> Result<(), LabError> {
        if self.decide_with_token("lab-drain", CALM.0, CALM.1)? != Answer::Allow {
            return Err(LabError::probe(
                "an in-band request was refused by a gate other than the throttle".to_owned(),
            ));
        }
        for _ in 0..100 {
            if let Answer::Throttled { .. } = self.decide("lab-drain", CALM.0, CALM.1)? {
                return Ok(());
            }
        }
        Err(LabError::probe(
            "100 in-band requests were all permitted: the bucket does not empty".to_owned(),
        ))
    }

    /// `n` in-band requests back to back; the number permitted.
    fn burst(&self, agent: &str, n: usize) -> Result<usize, LabError> {
        let mut permits = 0;
        for _ in 0..n {
            if self.decide(agent, CALM.0, CALM.1)? == Answer::Allow {
                permits += 1;
            }
        }
        Ok(permits)
    }

    /// A sweep point passed the band.
    fn passes(&self, wait: bool, vol: f64, conf: f64) -> Result<(bool, bool), LabError> {
        let answer = if wait {
            self.decide_with_token("lab-sweep", vol, conf)?
        } else {
            self.decide("lab-sweep", vol, conf)?
        };
        let passed = matches!(answer, Answer::Allow | Answer::Throttled { .. });
        Ok((passed, answer == Answer::Allow))
    }
}

/// Runs every probe against the server and builds the table.
pub fn characterize(config: &CharacterizeConfig) -> Result<CharacterizeReport, LabError> {
    let started = Instant::now();
    let p = Prober::new(config)?;
    let mut sweep_false = 0;

    // Permit window, volatility: 0.00…0.30 at confidence 0.95.
    let mut volatility_passed = Vec::new();
    for i in 0..=30u32 {
        let vol = f64::from(i) / 100.0;
        let (passed, allowed) = p.passes(config.wait_for_tokens, vol, 0.95)?;
        if passed {
            volatility_passed.push(i);
        }
        if allowed && !in_band(vol, 0.95) {
            sweep_false += 1;
        }
    }
    // Permit window, confidence: 0.50…1.00 at volatility 0.05.
    let mut confidence_passed = Vec::new();
    for i in 50..=100u32 {
        let conf = f64::from(i) / 100.0;
        let (passed, allowed) = p.passes(config.wait_for_tokens, 0.05, conf)?;
        if passed {
            confidence_passed.push(i);
        }
        if allowed && !in_band(0.05, conf) {
            sweep_false += 1;
        }
    }

    // Chaos: 100 requests with uniform random volatility and confidence.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut chaos = FalsePermits::default();
    for _ in 0..100 {
        let vol = unit(&mut rng);
        let conf = unit(&mut rng);
        let allowed = p.decide("lab-chaos", vol, conf)? == Answer::Allow;
        tally(&mut chaos, in_band(vol, conf), allowed);
    }

    // Spike: six rounds; each sends a calm request (waiting for a token, so the
    // bucket holds tokens at that moment) and then three spikes right behind it.
    let spikes = spike_signals();
    let mut spike = FalsePermits::default();
    for round in spikes.chunks(3) {
        let calm = p.decide_with_token("lab-spike", CALM.0, CALM.1)? == Answer::Allow;
        tally(&mut spike, true, calm);
        for &(vol, conf) in round {
            let allowed = p.decide("lab-spike", vol, conf)? == Answer::Allow;
            tally(&mut spike, in_band(vol, conf), allowed);
        }
    }

    // Refill: drain, wait k s, burst of 10.
    let mut refill_curve = Vec::new();
    for k in 1..=config.refill_max_s {
        p.drain()?;
        std::thread::sleep(Duration::from_secs(u64::from(k)));
        refill_curve.push((k, p.burst("lab-refill", 10)?));
    }
    let refill_seconds = refill_curve.iter().find(|(_, n)| *n > 0).map(|(k, _)| *k);

    // Steady state: drain, then an in-band request every 100 ms for `ceiling`.
    p.drain()?;
    let t0 = Instant::now();
    let mut ceiling_at = Vec::new();
    while t0.elapsed() < config.ceiling {
        let next = Instant::now() + Duration::from_millis(100);
        if p.decide("lab-ceiling", CALM.0, CALM.1)? == Answer::Allow {
            ceiling_at.push(Instant::now());
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let ceiling_seconds = t0.elapsed().as_secs_f64();
    let ceiling_permits = ceiling_at.len();
    // The steady rate: permits after the first, over the time from the first to the last.
    let ceiling_per_min = match (ceiling_at.first(), ceiling_at.last()) {
        (Some(a), Some(b)) if ceiling_permits > 1 => {
            (ceiling_permits - 1) as f64 * 60.0 / (*b - *a).as_secs_f64()
        }
        _ => 0.0,
    };

    // Capacity: quiet, then 10 in-band requests back to back.
    std::thread::sleep(config.quiet);
    let capacity = p.burst("lab-capacity", 10)?;

    // Multi-agent: quiet, then 8 dangerous and 8 benign agents at one instant.
    std::thread::sleep(config.quiet);
    let multi_agent = multi_agent(&p)?;

    // Concurrency: the same number of out-of-band decisions over 1 and 64 connections.
    let (throughput_1, e1) = throughput(&p, 1, config.throughput_requests)?;
    let (throughput_64, e64) = throughput(&p, 64, config.throughput_requests)?;

    let bucket_false_permits = p
        .permits
        .lock()
        .map(|v| beyond_bucket(&v))
        .map_err(|_| LabError::probe("a probe thread panicked"))?;
    let mut latencies = p
        .latencies_us
        .lock()
        .map(|v| v.clone())
        .map_err(|_| LabError::probe("a probe thread panicked"))?;
    latencies.sort_unstable();

    let mut report = CharacterizeReport {
        url: config.url.clone(),
        volatility_passed,
        confidence_passed,
        capacity,
        refill_curve,
        refill_seconds,
        ceiling_permits,
        ceiling_seconds,
        ceiling_per_min,
        latency_median_ms: percentile_ms(&latencies, 0.50),
        latency_p99_ms: percentile_ms(&latencies, 0.99),
        latency_samples: latencies.len(),
        throughput_1,
        throughput_64,
        throughput_errors: e1 + e64,
        chaos,
        spike,
        multi_agent,
        sweep_false_permits: sweep_false,
        bucket_false_permits,
        seconds: 0.0,
        rows: Vec::new(),
    };
    report.seconds = started.elapsed().as_secs_f64();
    report.rows = rows(&report);
    Ok(report)
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    // 53 random bits in [0, 1).
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn tally(fp: &mut FalsePermits, in_band: bool, allowed: bool) {
    if in_band {
        fp.in_band += 1;
        fp.in_band_allowed += usize::from(allowed);
    } else {
        fp.dangerous += 1;
        fp.dangerous_allowed += usize::from(allowed);
    }
}

/// Eighteen adversarial (volatility, confidence) spikes: just over each edge of the
/// band, far outside it, and both at once.
fn spike_signals() -> [(f64, f64); 18] {
    [
        (0.15, 0.95),
        (0.1500001, 0.95),
        (0.2, 0.95),
        (0.5, 0.95),
        (0.9, 0.95),
        (1.0, 0.95),
        (0.05, 0.8999999),
        (0.05, 0.89),
        (0.05, 0.75),
        (0.05, 0.5),
        (0.05, 0.1),
        (0.05, 0.0),
        (0.15, 0.8999999),
        (0.16, 0.89),
        (0.3, 0.6),
        (0.5, 0.5),
        (0.99, 0.01),
        (1.0, 0.0),
    ]
}

/// Eight dangerous agents (out of band, each a different way) and eight benign ones
/// (in band), released together by a barrier, one request each, one connection each.
fn multi_agent(p: &Prober) -> Result<FalsePermits, LabError> {
    let dangerous = [
        (0.15, 0.95),
        (0.4, 0.99),
        (1.0, 1.0),
        (0.05, 0.89),
        (0.0, 0.3),
        (0.2, 0.8),
        (0.9, 0.1),
        (0.14, 0.0),
    ];
    let barrier = Arc::new(Barrier::new(dangerous.len() * 2));
    let results = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, &(vol, conf)) in dangerous.iter().enumerate() {
            for (kind, signals) in [("dangerous", (vol, conf)), ("benign", CALM)] {
                let barrier = Arc::clone(&barrier);
                handles.push(s.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    barrier.wait();
                    let agent = format!("lab-{kind}-{i}");
                    p.decide_with(&client, &agent, signals.0, signals.1)
                        .map(|a| (in_band(signals.0, signals.1), a == Answer::Allow))
                }));
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LabError::probe("an agent thread panicked")))
            })
            .collect::<Vec<_>>()
    });
    let mut fp = FalsePermits::default();
    for r in results {
        let (band, allowed) = r?;
        tally(&mut fp, band, allowed);
    }
    Ok(fp)
}

/// `total` out-of-band decisions spread over `connections` connections; decisions
/// per second and the number of failed requests.
fn throughput(p: &Prober, connections: usize, total: usize) -> Result<(f64, usize), LabError> {
    let per = total.div_ceil(connections).max(1);
    let barrier = Arc::new(Barrier::new(connections + 1));
    let (elapsed, errors) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    // Open the connection before the clock starts.
                    let _ = p.decide_with(&client, "lab-throughput", 0.5, 0.5);
                    barrier.wait();
                    let mut errors = 0;
                    for _ in 0..per {
                        if p.decide_with(&client, &format!("lab-throughput-{c}"), 0.5, 0.5)
                            .is_err()
                        {
                            errors += 1;
                        }
                    }
                    errors
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let errors: usize = handles.into_iter().map(|h| h.join().unwrap_or(per)).sum();
        (t.elapsed(), errors)
    });
    let done = per * connections;
    Ok((done as f64 / elapsed.as_secs_f64(), errors))
}

/// Permits beyond the published bucket: for permits sorted by send time, any run
/// `i..=j` must satisfy `j - i + 1 ≤ 4 + ⌊span / 5 s⌋`, where `span` runs from the
/// first one's send to the latest receipt in the run (the server decided each
/// somewhere between its send and its receipt, so this is lenient by the latency).
/// Returns the largest excess over any run.
fn beyond_bucket(permits: &[Permit]) -> usize {
    let mut sorted = permits.to_vec();
    sorted.sort_by_key(|p| p.sent);
    let mut worst = 0;
    for (i, first) in sorted.iter().enumerate() {
        let mut latest = first.received;
        for (n, p) in sorted.iter().skip(i).enumerate() {
            latest = latest.max(p.received);
            let span = latest.saturating_duration_since(first.sent);
            let allowed = PUBLISHED_CAPACITY
                + usize::try_from(span.as_millis() / PUBLISHED_REFILL.as_millis())
                    .unwrap_or(usize::MAX);
            worst = worst.max((n + 1).saturating_sub(allowed));
        }
    }
    worst
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us
        .get(i.min(sorted_us.len() - 1))
        .map_or(f64::NAN, |&us| us as f64 / 1000.0)
}

/// The points of a sweep form one interval `lo..=hi`.
fn interval(points: &[u32]) -> Option<(u32, u32)> {
    let (&lo, &hi) = (points.first()?, points.last()?);
    (points.len() == (hi - lo + 1) as usize).then_some((lo, hi))
}

fn hundredths(v: u32) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// A false-permit row: `dangerous allowed / denominator`, where the denominator is
/// what the published table counts (all requests for chaos, the dangerous ones for
/// spike and multi-agent).
fn fp_row(
    dimension: &str,
    published: &str,
    fp: &FalsePermits,
    denominator: usize,
    note: &str,
) -> Row {
    Row {
        dimension: dimension.into(),
        published: published.into(),
        measured: format!(
            "{} / {denominator} ({note}: {} of {} permitted)",
            fp.dangerous_allowed, fp.in_band_allowed, fp.in_band
        ),
        matches: Some(fp.dangerous_allowed == 0 && denominator == published_total(published)),
    }
}

fn published_total(published: &str) -> usize {
    published
        .rsplit('/')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn rows(r: &CharacterizeReport) -> Vec<Row> {
    let vol = interval(&r.volatility_passed);
    let conf = interval(&r.confidence_passed);
    let refill_curve = r
        .refill_curve
        .iter()
        .map(|(_, n)| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let per_min = r.ceiling_per_min;
    vec![
        Row {
            dimension: "permit window (volatility)".into(),
            published: "≤ 0.14".into(),
            measured: match vol {
                Some((0, hi)) => format!("≤ {} (31 points 0.00…0.30)", hundredths(hi)),
                _ => format!("passed at {:?} (hundredths)", r.volatility_passed),
            },
            matches: Some(vol == Some((0, VOL_LIMIT_HUNDREDTHS - 1))),
        },
        Row {
            dimension: "permit window (confidence)".into(),
            published: "≥ 0.90".into(),
            measured: match conf {
                Some((lo, 100)) => format!("≥ {} (51 points 0.50…1.00)", hundredths(lo)),
                _ => format!("passed at {:?} (hundredths)", r.confidence_passed),
            },
            matches: Some(conf == Some((CONF_FLOOR_HUNDREDTHS, 100))),
        },
        Row {
            dimension: "bucket capacity".into(),
            published: "4 permits, exact".into(),
            measured: format!("{} permits of 10 back to back", r.capacity),
            matches: Some(r.capacity == PUBLISHED_CAPACITY),
        },
        Row {
            dimension: "refill".into(),
            published: "~5 s".into(),
            measured: match r.refill_seconds {
                Some(s) => format!(
                    "{s} s a token (permits after 1…{} s of quiet: {refill_curve})",
                    r.refill_curve.len()
                ),
                None => format!("no permit after up to {} s", r.refill_curve.len()),
            },
            matches: Some(r.refill_seconds == Some(5)),
        },
        Row {
            dimension: "steady-state ceiling".into(),
            published: "~12 permits/min".into(),
            measured: format!(
                "{per_min:.1} permits/min ({} permits in {:.0} s of a request every 100 ms)",
                r.ceiling_permits, r.ceiling_seconds
            ),
            matches: Some((per_min - PUBLISHED_CEILING_PER_MIN).abs() < 1.0),
        },
        Row {
            dimension: "per-decision latency".into(),
            published: "2–3 s".into(),
            measured: format!(
                "median {:.2} ms, p99 {:.2} ms ({} decisions)",
                r.latency_median_ms, r.latency_p99_ms, r.latency_samples
            ),
            matches: None,
        },
        Row {
            dimension: "concurrent requests".into(),
            published: "serialised".into(),
            measured: format!(
                "not serialised: {:.0}/s at 1 connection, {:.0}/s at 64 ({:.1}×){}",
                r.throughput_1,
                r.throughput_64,
                r.throughput_64 / r.throughput_1,
                if r.throughput_errors > 0 {
                    format!(", {} failed requests", r.throughput_errors)
                } else {
                    String::new()
                }
            ),
            matches: None,
        },
        fp_row(
            "false permits under chaos",
            "0 / 100",
            &r.chaos,
            r.chaos.dangerous + r.chaos.in_band,
            "in band by chance",
        ),
        fp_row(
            "false permits under spike",
            "0 / 18",
            &r.spike,
            r.spike.dangerous,
            "calm requests, one before each 3 spikes",
        ),
        fp_row(
            "false permits under multi-agent",
            "0 / 8",
            &r.multi_agent,
            r.multi_agent.dangerous,
            "benign agents at the same instant",
        ),
    ]
}

impl fmt::Display for CharacterizeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Characterisation of {} (csc-default), {:.0} s of probes.",
            self.url, self.seconds
        )?;
        writeln!(f)?;
        writeln!(f, "| dimension | published | measured | equal |")?;
        writeln!(f, "|---|---|---|---|")?;
        for r in &self.rows {
            let eq = match r.matches {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            writeln!(
                f,
                "| {} | {} | {} | {eq} |",
                r.dimension, r.published, r.measured
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "False permits elsewhere: {} outside the band in the sweeps; {} beyond the \
             published bucket (capacity 4, a token per 5 s) over the whole run.",
            self.sweep_false_permits, self.bucket_false_permits
        )?;
        write!(
            f,
            "{}",
            if self.all_match() {
                "Every comparable value equals the published one."
            } else {
                "NOT every comparable value equals the published one."
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(base: Instant, sent_ms: u64, recv_ms: u64) -> Permit {
        Permit {
            sent: base + Duration::from_millis(sent_ms),
            received: base + Duration::from_millis(recv_ms),
        }
    }

    #[test]
    fn the_bucket_check_accepts_the_published_bucket_and_catches_a_fifth_token() {
        let t = Instant::now();
        // 4 at once, then one every 5 s: within the bucket.
        let ok: Vec<_> = [0, 1, 2, 3, 5_001, 10_002, 15_003]
            .iter()
            .map(|&ms| permit(t, ms, ms + 1))
            .collect();
        assert_eq!(beyond_bucket(&ok), 0);
        // A fifth at once is one too many.
        let five: Vec<_> = (0..5).map(|ms| permit(t, ms, ms + 1)).collect();
        assert_eq!(beyond_bucket(&five), 1);
        // A token after 4 s instead of 5 s is one too many.
        let fast: Vec<_> = [0, 1, 2, 3, 4_000]
            .iter()
            .map(|&ms| permit(t, ms, ms + 1))
            .collect();
        assert_eq!(beyond_bucket(&fast), 1);
    }

    #[test]
    fn windows_are_intervals_of_hundredths() {
        assert_eq!(interval(&(0..=14).collect::<Vec<_>>()), Some((0, 14)));
        assert_eq!(interval(&[0, 1, 3]), None);
        assert_eq!(interval(&[]), None);
        assert_eq!(hundredths(90), "0.90");
        assert_eq!(published_total("0 / 18"), 18);
    }

    #[test]
    fn spikes_are_all_outside_the_band() {
        assert!(spike_signals().iter().all(|&(v, c)| !in_band(v, c)));
        assert!(in_band(CALM.0, CALM.1));
    }
}
