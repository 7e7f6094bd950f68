//! `tollgate-bench tlog`: the dossier's store path at ledger sizes of 10^4 … 10^7, and
//! the ledger append rate with tile growth on and off. `bench/tlog.sh` runs it.
//!
//! Ledgers are built by appending through the SQLite store directly (the writer's
//! group commit, 8192 appends in flight, a checkpoint every second as the server
//! issues them), in a directory on disk. A dossier fetch is what
//! `DecisionService::decision_dossier` asks the store for: the decision's seq by its
//! id, the entry, the latest checkpoint, the inclusion proof against it, and the
//! checkpoint's text; random decisions, one at a time. JSON encoding and HTTP are not
//! included. Append rate: fresh ledgers, tile growth on and off (`SqliteConfig::
//! grow_tiles`, a benchmark-only switch) in alternating rounds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tollgate_ledger::{EntryDraft, EntryKind, NoteSigner, SigningKey};
use tollgate_store::{LedgerStore as _, SqliteConfig, SqliteStore};

const TENANT: &str = "bench";
const IN_FLIGHT: usize = 8192;

struct Options {
    sizes: Vec<u64>,
    fetches: usize,
    dir: PathBuf,
    append: u64,
    rounds: usize,
    keep: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut o = Options {
        sizes: vec![10_000, 1_000_000, 10_000_000],
        fetches: 2000,
        dir: std::env::temp_dir(),
        append: 200_000,
        rounds: 3,
        keep: false,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                o.sizes = args
                    .next()
                    .context("--sizes 10000,1000000")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--fetches" => o.fetches = args.next().context("--fetches N")?.parse()?,
            "--dir" => o.dir = PathBuf::from(args.next().context("--dir DIR")?),
            "--append" => o.append = args.next().context("--append N")?.parse()?,
            "--rounds" => o.rounds = args.next().context("--rounds N")?.parse()?,
            "--keep" => o.keep = true,
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(o)
}

fn open(dir: &Path, grow_tiles: bool) -> anyhow::Result<SqliteStore> {
    let mut cfg = SqliteConfig::in_dir(dir);
    cfg.signer = Some(NoteSigner::new(
        "tollgate",
        SigningKey::from_bytes(&[9; 32]),
    )?);
    cfg.auto_checkpoint = Some(Duration::from_secs(1));
    cfg.grow_tiles = grow_tiles;
    Ok(SqliteStore::open(cfg)?)
}

fn decision_id(seq: u64) -> String {
    format!("dec_{seq:032x}")
}

/// A decision-shaped body of about 600 bytes.
fn draft(seq: u64) -> EntryDraft {
    EntryDraft {
        tenant: TENANT.to_owned(),
        time: "2026-12-05T00:00:00.000Z".to_owned(),
        kind: EntryKind::Decision,
        body: json!({
            "decision_id": decision_id(seq),
            "family": "native",
            "request": {"tenant": TENANT, "actor": {"id": format!("agent-{}", seq % 97), "type": "AI_AGENT"},
                        "action": {"type": "OPEN_POSITION", "amount": seq % 10_000, "currency": "EUR"},
                        "context": {}, "signals": {"volatility": 0.05, "confidence": 0.95},
                        "mode": "enforce", "adaptive": true},
            "verdict": {"status": "ALLOW", "gate": "permit", "reason_codes": ["PERMIT"],
                        "explanation": "all gates passed", "mode": "enforce",
                        "policies": [{"id": "csc-default", "version": 1, "text_sha256": "0".repeat(64)}]},
            "environment": "test", "api_key_id": "key_0123456789abcdef0123456789abcdef",
            "request_digest": "1".repeat(64), "action_digest": "2".repeat(64),
        }),
    }
}

/// Appends entries `from..to`, `IN_FLIGHT` at a time.
fn append(store: &SqliteStore, from: u64, to: u64) -> anyhow::Result<()> {
    let mut seq = from;
    while seq < to {
        let end = (seq + IN_FLIGHT as u64).min(to);
        let acks: Vec<_> = (seq..end).map(|s| store.submit(draft(s))).collect();
        for a in acks {
            a.wait()?;
        }
        seq = end;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn run(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let o = parse(args)?;
    std::fs::create_dir_all(&o.dir)?;
    println!(
        "dossier fetch (store path, one at a time, {} random decisions)",
        o.fetches
    );
    println!(
        "{:>12} {:>10} {:>12} {:>11} {:>11} {:>11} {:>9}",
        "entries", "build s", "build e/s", "median ms", "p99 ms", "max ms", "db MiB"
    );
    for &size in &o.sizes {
        let dir = o
            .dir
            .join(format!("tlog-bench-{size}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let store = open(&dir, true)?;
        let started = Instant::now();
        append(&store, 0, size)?;
        let cp = store
            .issue_checkpoint(TENANT, "2026-12-05T00:00:01.000Z")
            .wait()?;
        let build = started.elapsed();
        if cp.checkpoint.size != size {
            bail!("checkpoint covers {} of {size}", cp.checkpoint.size);
        }
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ size;
        let mut times = Vec::with_capacity(o.fetches);
        for _ in 0..o.fetches {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let want = rng % size;
            let t = Instant::now();
            let seq = store
                .decision_seq(TENANT, &decision_id(want))?
                .context("decision not indexed")?;
            let entry = store.entry(TENANT, seq)?.context("entry missing")?;
            let latest = store.latest_checkpoint(TENANT)?.context("no checkpoint")?;
            let proof = store.inclusion_proof(TENANT, entry.seq, latest.checkpoint.size)?;
            let text = latest.to_text()?;
            times.push(t.elapsed());
            std::hint::black_box((proof, text));
        }
        times.sort();
        let db_bytes: u64 = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "{:>12} {:>10.1} {:>12.0} {:>11.3} {:>11.3} {:>11.3} {:>9.0}",
            size,
            build.as_secs_f64(),
            size as f64 / build.as_secs_f64(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&times, 1.0)),
            db_bytes as f64 / (1024.0 * 1024.0)
        );
        drop(store);
        if !o.keep {
            std::fs::remove_dir_all(&dir)?;
        }
    }

    println!();
    println!(
        "append rate, {} entries per round into a fresh ledger, checkpoint every 1 s",
        o.append
    );
    println!("{:>6} {:>8} {:>12}", "round", "tiles", "entries/s");
    let mut on = Vec::new();
    let mut off = Vec::new();
    for round in 0..o.rounds {
        // Alternate which goes first, so drift favours neither.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for tiles in order {
            let dir = o.dir.join(format!(
                "tlog-append-{}-{round}-{tiles}",
                std::process::id()
            ));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            let store = open(&dir, tiles)?;
            let t = Instant::now();
            append(&store, 0, o.append)?;
            store
                .issue_checkpoint(TENANT, "2026-12-05T00:00:01.000Z")
                .wait()?;
            let rate = o.append as f64 / t.elapsed().as_secs_f64();
            println!(
                "{:>6} {:>8} {:>12.0}",
                round,
                if tiles { "on" } else { "off" },
                rate
            );
            if tiles {
                on.push(rate)
            } else {
                off.push(rate)
            }
            drop(store);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (m_on, m_off) = (median(&mut on), median(&mut off));
    println!(
        "median: tiles on {m_on:.0}/s, off {m_off:.0}/s, on/off = {:.3}",
        if m_off > 0.0 { m_on / m_off } else { 0.0 }
    );
    Ok(())
}
