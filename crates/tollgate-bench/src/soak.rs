//! `tollgate-bench soak`: mixed open-loop load over every endpoint and all three API
//! families (native, Decionis, DeAlgo) against a release server for M minutes.
//!
//! Prints the server's RSS every 30 s, the answers per endpoint and status, flags
//! every answer that is neither 2xx, nor the 4xx the request was built to get, nor a
//! designed 429/503; then stops the server with SIGTERM (exit code shown) and runs
//! `tollgate audit verify` on its data directory.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::load::{MAX_OUTSTANDING, Shot, client, open_loop, print_transport_errors, rss_kib};
use crate::{Guard, free_port, wait_ready};

/// One kind of request in the mix: how often, what, and which non-2xx statuses it is
/// built to get.
struct Kind {
    label: &'static str,
    weight: u32,
    method: Method,
    path: String,
    key: Option<String>,
    body: Option<Value>,
    expected_4xx: &'static [u16],
}

pub(crate) fn run(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut tollgate = None;
    let mut minutes = 10f64;
    let mut rate = 200f64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tollgate" => tollgate = args.next(),
            "--minutes" => minutes = args.next().context("--minutes N")?.parse()?,
            "--rate" => rate = args.next().context("--rate N")?.parse()?,
            other => bail!("unknown argument `{other}`"),
        }
    }
    let tollgate = tollgate.context("--tollgate PATH is required")?;
    let dir = std::env::temp_dir().join(format!("tollgate-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("data");
    let port = free_port()?;
    let mut server = Guard(
        Command::new(&tollgate)
            .arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", &data)
            .env("TOLLGATE_LOG", "warn")
            // The mix sends a few hundred requests a second with two keys.
            .env("TOLLGATE_KEY_RATE_PER_SECOND", "100000")
            .env("TOLLGATE_KEY_RATE_BURST", "100000")
            .env("TOLLGATE_CHECKPOINT_INTERVAL_MS", "1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {tollgate}"))?,
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/v1/health"), Instant::now())?;
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-keys.json"))?)?;
    let secret = |name: &str| -> anyhow::Result<String> {
        boot[name]["secret"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{name} in the bootstrap file"))
    };
    let (admin, test) = (secret("admin_key")?, secret("test_key")?);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // One decision whose id the read endpoints use throughout.
    let decision_id = rt.block_on(async {
        let r: Value = client()?
            .post(format!("{base}/v1/decisions"))
            .bearer_auth(&test)
            .json(&json!({"actor": {"id": "soak"}, "action": {"type": "SEED"}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        r["decision_id"]
            .as_str()
            .map(str::to_owned)
            .context("decision_id")
    })?;
    let kinds = mix(&admin, &test, &decision_id);
    // Weight 0 marks the ledger-wide reads (verify, export: linear in the ledger),
    // sent once every RARE requests instead.
    const RARE: u64 = 3000;
    let rare: Vec<usize> = (0..kinds.len())
        .filter(|i| kinds.get(*i).is_some_and(|k| k.weight == 0))
        .collect();
    let cycle: Vec<usize> = kinds
        .iter()
        .enumerate()
        .flat_map(|(i, k)| std::iter::repeat_n(i, k.weight as usize))
        .collect();
    let shots: Vec<Shot> = kinds
        .iter()
        .map(|k| Shot {
            label: k.label,
            method: k.method.clone(),
            url: format!("{base}{}", k.path),
            key: k.key.clone(),
            body: k.body.as_ref().map(Value::to_string),
        })
        .collect();

    println!(
        "soak: {minutes} min at {rate} requests/s over {} request kinds ({} cores shared by server and load generator)",
        kinds.len(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("RSS series (MiB, every 30 s):");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut series = Vec::new();
            let mut next = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if start.elapsed() >= next {
                    if let Ok(kib) = rss_kib(pid) {
                        let mib = kib as f64 / 1024.0;
                        println!("  t={:>4}s rss={mib:.1}", next.as_secs());
                        series.push(mib);
                    }
                    next += Duration::from_secs(30);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if let Ok(kib) = rss_kib(pid) {
                let mib = kib as f64 / 1024.0;
                println!("  t={:>4}s rss={mib:.1} (end)", start.elapsed().as_secs());
                series.push(mib);
            }
            series
        })
    };
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let (records, dropped) = rt.block_on(async {
        let http = client()?;
        open_loop(
            &http,
            Instant::now(),
            rate,
            duration,
            MAX_OUTSTANDING,
            |i| {
                let k = if i % RARE == RARE - 1 && !rare.is_empty() {
                    rare.get((i / RARE) as usize % rare.len())
                        .copied()
                        .unwrap_or(0)
                } else {
                    cycle.get(i as usize % cycle.len()).copied().unwrap_or(0)
                };
                shots.get(k).cloned().unwrap_or_else(|| shots[0].clone())
            },
        )
        .await
    })?;
    stop.store(true, Ordering::Relaxed);
    let series = sampler.join().unwrap_or_default();

    // Answers by endpoint and status.
    let mut table: BTreeMap<&str, BTreeMap<u16, usize>> = BTreeMap::new();
    for r in &records {
        *table
            .entry(r.label)
            .or_default()
            .entry(r.status)
            .or_default() += 1;
    }
    let expected: BTreeMap<&str, &[u16]> =
        kinds.iter().map(|k| (k.label, k.expected_4xx)).collect();
    println!();
    println!("| endpoint | answers by status | unexpected |");
    println!("|---|---|---:|");
    let mut unexpected_total = 0;
    for (label, statuses) in &table {
        let allowed = expected.get(label).copied().unwrap_or(&[]);
        let unexpected: usize = statuses
            .iter()
            .filter(|(s, _)| {
                !((200..300).contains(*s) || **s == 429 || **s == 503 || allowed.contains(s))
            })
            .map(|(_, n)| n)
            .sum();
        unexpected_total += unexpected;
        let shown: Vec<String> = statuses
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("transport error: {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        println!("| {label} | {} | {unexpected} |", shown.join(", "));
    }
    print_transport_errors(&records, 40);
    let mut totals: BTreeMap<u16, usize> = BTreeMap::new();
    for r in &records {
        *totals.entry(r.status).or_default() += 1;
    }
    println!();
    println!(
        "total answers {} ({dropped} shots not sent); by status: {totals:?}; unexpected: {unexpected_total}",
        records.len()
    );
    if let (Some(first), Some(max), Some(last)) = (
        series.get(1).or(series.first()),
        series.iter().copied().reduce(f64::max),
        series.last(),
    ) {
        println!(
            "RSS: at 30 s {first:.1} MiB, max {max:.1} MiB, at the end {last:.1} MiB (growth after warm-up {:+.1} MiB)",
            last - first
        );
    }

    // Graceful stop, then verify the ledger offline.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.0.wait()?;
    println!("server stopped by SIGTERM: {exit}");
    let verify = Command::new(&tollgate)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()?;
    println!(
        "tollgate audit verify --data-dir: {}\n{}{}",
        verify.status,
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    if unexpected_total > 0 || !verify.status.success() || !exit.success() {
        bail!(
            "soak failed: {unexpected_total} unexpected answers, verify {}, server exit {exit}",
            verify.status
        );
    }
    Ok(())
}

/// The request mix: every endpoint of the router, each family, a few requests built
/// to be refused (their 4xx is expected).
fn mix(admin: &str, test: &str, id: &str) -> Vec<Kind> {
    let a = Some(admin.to_owned());
    let t = Some(test.to_owned());
    let k = |label, weight, method, path: &str, key: &Option<String>, body, expected_4xx| Kind {
        label,
        weight,
        method,
        path: path.to_owned(),
        key: key.clone(),
        body,
        expected_4xx,
    };
    let native = json!({
        "actor": {"id": "soak-agent", "type": "AI_AGENT"},
        "action": {"type": "OPEN_POSITION", "symbol": "BTC", "qty": 1},
        "signals": {"volatility": 0.05, "confidence": 0.95},
        "source": "soak"
    });
    let mut shadow = native.clone();
    shadow["mode"] = json!("shadow");
    vec![
        k(
            "native decide",
            12,
            Method::POST,
            "/v1/decisions",
            &t,
            Some(native),
            &[],
        ),
        k(
            "native decide (shadow)",
            3,
            Method::POST,
            "/v1/decisions",
            &t,
            Some(shadow),
            &[],
        ),
        k(
            "native decide (invalid: no action)",
            1,
            Method::POST,
            "/v1/decisions",
            &t,
            Some(json!({"actor": {"id": "x"}})),
            &[422],
        ),
        k(
            "native decide (no key)",
            1,
            Method::POST,
            "/v1/decisions",
            &None,
            Some(json!({})),
            &[401],
        ),
        k(
            "get decision",
            3,
            Method::GET,
            &format!("/v1/decisions/{id}"),
            &t,
            None,
            &[],
        ),
        k(
            "get decision (unknown id)",
            1,
            Method::GET,
            "/v1/decisions/dec_nope",
            &t,
            None,
            &[404],
        ),
        k(
            "dossier",
            2,
            Method::GET,
            &format!("/v1/dossiers/{id}"),
            &t,
            None,
            &[],
        ),
        k(
            "wait",
            1,
            Method::GET,
            &format!("/v1/decisions/{id}/wait?timeout=0"),
            &t,
            None,
            &[],
        ),
        k("reviews list", 1, Method::GET, "/v1/reviews", &a, None, &[]),
        k(
            "review (unknown id)",
            1,
            Method::GET,
            "/v1/reviews/rev_nope",
            &a,
            None,
            &[404],
        ),
        k(
            "review approve (unknown id)",
            1,
            Method::POST,
            "/v1/reviews/rev_nope/approve",
            &a,
            Some(json!({})),
            &[404],
        ),
        k(
            "grant consume (bad grant)",
            1,
            Method::POST,
            "/v1/grants/consume",
            &t,
            Some(json!({"grant": "not-a-jws"})),
            &[400, 401, 403, 404, 409, 422],
        ),
        k(
            "outcome (unsigned)",
            1,
            Method::POST,
            "/v1/outcomes",
            &a,
            Some(json!({"decision_id": id, "source_id": "nope", "outcome": "profit"})),
            &[400, 401, 403, 404, 409, 422],
        ),
        k("health", 2, Method::GET, "/v1/health", &None, None, &[]),
        k(
            "jwks",
            1,
            Method::GET,
            "/.well-known/jwks.json",
            &None,
            None,
            &[],
        ),
        k(
            "signing keys",
            1,
            Method::GET,
            "/v1/signing-keys",
            &None,
            None,
            &[],
        ),
        k("metrics", 1, Method::GET, "/metrics", &None, None, &[]),
        k("openapi", 1, Method::GET, "/openapi.json", &None, None, &[]),
        k(
            "decionis evaluate",
            8,
            Method::POST,
            "/v1/decisions/evaluate",
            &t,
            Some(json!({
                "actor": {"id": "agent-7", "role": "trader"},
                "action": {"type": "transfer_funds", "amount": 50, "risk_score": 0.2},
                "context": {"confidence": 0.95, "volatility": 0.05},
                "enforcementMode": "enforce"
            })),
            &[],
        ),
        k(
            "decionis validate",
            1,
            Method::POST,
            "/v1/policies/validate",
            &t,
            Some(
                json!({"text": "id: p\nrules:\n  - {name: a, when: 'action.amount > 10', effect: block, reason_code: A}\n"}),
            ),
            &[],
        ),
        k(
            "dealgo /v1/decide",
            6,
            Method::POST,
            "/v1/decide",
            &t,
            Some(
                json!({"action_type": "OPEN_POSITION", "risk_score": 0.2, "confidence": 0.95, "agent_id": "soak_1", "metadata": {"volatility": 0.05, "symbol": "ETH"}}),
            ),
            &[],
        ),
        k(
            "dealgo /api/csc/check",
            4,
            Method::POST,
            "/api/csc/check",
            &t,
            Some(
                json!({"feed": "market", "risk": 0.1, "confidence": 0.96, "volatility": 0.03, "symbol": "SOL"}),
            ),
            &[],
        ),
        k(
            "dealgo /csc/live-stimulus (loopback)",
            4,
            Method::POST,
            "/csc/live-stimulus",
            &None,
            Some(
                json!({"feed": "market", "risk": 0.1, "confidence": 0.96, "volatility": 0.03, "source": "runtime"}),
            ),
            &[],
        ),
        k(
            "admin tenants",
            1,
            Method::GET,
            "/v1/admin/tenants",
            &a,
            None,
            &[],
        ),
        k(
            "admin keys",
            1,
            Method::GET,
            "/v1/admin/keys",
            &a,
            None,
            &[],
        ),
        k(
            "admin keys (decide key)",
            1,
            Method::GET,
            "/v1/admin/keys",
            &t,
            None,
            &[403],
        ),
        k(
            "admin revoke (unknown key)",
            1,
            Method::POST,
            "/v1/admin/keys/key_nope/revoke",
            &a,
            None,
            &[404],
        ),
        k(
            "admin sources",
            1,
            Method::GET,
            "/v1/admin/sources",
            &a,
            None,
            &[],
        ),
        k(
            "admin overrides",
            1,
            Method::GET,
            "/v1/admin/overrides",
            &a,
            None,
            &[],
        ),
        k(
            "admin clear override (unknown)",
            1,
            Method::DELETE,
            "/v1/admin/overrides/ovr_nope",
            &a,
            None,
            &[404],
        ),
        k(
            "audit checkpoint",
            1,
            Method::GET,
            "/v1/audit/checkpoint",
            &a,
            None,
            &[],
        ),
        k(
            "audit consistency",
            1,
            Method::GET,
            "/v1/audit/consistency?from=1&to=2",
            &a,
            None,
            &[],
        ),
        k(
            "audit verify",
            0,
            Method::GET,
            "/v1/audit/verify",
            &a,
            None,
            &[],
        ),
        k(
            "audit export",
            0,
            Method::GET,
            "/v1/audit/export",
            &a,
            None,
            &[],
        ),
        k("unknown path", 1, Method::GET, "/v1/nope", &a, None, &[404]),
    ]
}
