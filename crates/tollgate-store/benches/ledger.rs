//! Ledger benchmarks, printed as tables:
//!
//! 1. durable appends per second (group commit into the segment file) with
//!    1, 16 and 64 concurrent writers, each waiting for its ack before the next;
//!    and the ack latency of a single append (p50, p99, p99.9, max) with 64 concurrent
//!    appenders;
//! 2. verification speed over a generated ledger of 1 M entries, from the store
//!    (what `tollgate audit verify --data-dir` does) and from a JSON Lines export
//!    (what `tollgate audit verify --file` does).
//!
//! `cargo bench -p tollgate-store --bench ledger`. Environment:
//! `TOLLGATE_BENCH_SECS` (per append row, default 4), `TOLLGATE_BENCH_LATENCY_SECS`
//! (the latency row, default 20: the slow commits come every few seconds;
//! `TOLLGATE_BENCH_ONLY=latency` runs that table alone, `TOLLGATE_BENCH_LATENCY_WRITERS`
//! sets its number of appenders),
//! `TOLLGATE_BENCH_ENTRIES`
//! (default 1000000), `TOLLGATE_BENCH_KEEP=1` keeps the generated data directory.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark prints its table"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_ledger::{Entry, EntryDraft, EntryKind, NoteSigner, SigningKey, Verifier};
use tollgate_store::{LedgerStore, SqliteConfig, SqliteStore};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A decision-sized body (about 600 bytes of canonical JSON).
fn draft(tenant: &str, i: u64) -> EntryDraft {
    EntryDraft {
        tenant: tenant.into(),
        time: "2026-11-21T12:00:00.123Z".into(),
        kind: EntryKind::Decision,
        body: json!({
            "decision_id": format!("dec_{i:016x}"),
            "request": {
                "agent_id": "trader-7",
                "action": { "type": "trade.submit", "symbol": "ACME", "qty": 100, "side": "buy" },
                "signals": { "volatility": 0.07, "confidence": 0.96 },
                "environment": "live"
            },
            "verdict": "ALLOW",
            "reason_codes": ["PERMIT_OK", "POLICY_OK", "REALITY_OK", "THROTTLE_OK"],
            "trace": [
                { "gate": "permit", "outcome": "pass", "micros": 1 },
                { "gate": "policy", "outcome": "pass", "rule": "allow-trades", "micros": 2 },
                { "gate": "reality", "outcome": "pass", "micros": 1 },
                { "gate": "throttle", "outcome": "pass", "tokens": 3.0, "micros": 1 }
            ],
            "policy": { "id": "csc-default", "version": 3 },
            "api_key_id": "key_live_4f2a"
        }),
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new("bench", SigningKey::from_bytes(&[8; 32])).unwrap()
}

fn open(dir: &std::path::Path) -> SqliteStore {
    let mut cfg = SqliteConfig::in_dir(dir);
    cfg.signer = Some(signer());
    SqliteStore::open(cfg).unwrap()
}

/// `in_flight` appends outstanding at all times from 2 threads, as 2 async runtime
/// workers serving `in_flight` concurrent requests would have them.
fn appends_in_flight(in_flight: usize, secs: u64) -> (u64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(open(dir.path()));
    store.append(draft("acme", u64::MAX)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..2u64)
        .map(|w| {
            let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut i = w << 40;
                let mut pending = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    while pending.len() < in_flight / 2 {
                        pending.push_back(store.submit(draft("acme", i)));
                        i += 1;
                    }
                    pending.pop_front().unwrap().wait().unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
                for a in pending {
                    a.wait().unwrap();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    (n, n as f64 / elapsed)
}

fn appends(writers: u64, secs: u64) -> (u64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(open(dir.path()));
    // Warm up: create the file and the tenant's head (an id no writer uses).
    store.append(draft("acme", u64::MAX)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut i = w << 40;
                while !stop.load(Ordering::Relaxed) {
                    store.append(draft("acme", i)).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    (n, n as f64 / elapsed)
}

/// `writers` OS threads appending and waiting, each timing every append from submit
/// to ack: (appends/s, sorted latencies in µs).
fn append_latencies(writers: u64, secs: u64) -> (f64, Vec<u32>) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(open(dir.path()));
    store.append(draft("acme", u64::MAX)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = w << 40;
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let d = draft("acme", i);
                    let t = Instant::now();
                    store.append(d).unwrap();
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    i += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / elapsed, all)
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn latency_table(secs: u64) {
    let writers = env_u64("TOLLGATE_BENCH_LATENCY_WRITERS", 64);
    println!(
        "## Ack latency of one append, {writers} concurrent appenders (one OS thread each), {secs} s"
    );
    println!();
    println!("| concurrent appends | appends/s | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let (rate, lat) = append_latencies(writers, secs);
    println!(
        "| {writers} threads | {rate:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        percentile_ms(&lat, 0.5),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 0.999),
        percentile_ms(&lat, 1.0)
    );
    println!();
}

fn main() {
    let secs = env_u64("TOLLGATE_BENCH_SECS", 4);
    let lat_secs = env_u64("TOLLGATE_BENCH_LATENCY_SECS", 20);
    if std::env::var("TOLLGATE_BENCH_ONLY").as_deref() == Ok("latency") {
        latency_table(lat_secs);
        return;
    }
    let entries = env_u64("TOLLGATE_BENCH_ENTRIES", 1_000_000);
    println!("## CPU cost per entry, single thread");
    println!();
    println!("| step | µs/entry |");
    println!("|---|---:|");
    let n = 50_000u64;
    let time = |label: &str, f: &mut dyn FnMut(u64)| {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        println!(
            "| {label} | {:.2} |",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    };
    let d = draft("acme", 1);
    let p = tollgate_ledger::PreparedDraft::new(&d).unwrap();
    let (bytes, hash) = p.seal(1, tollgate_ledger::Hash::ZERO).unwrap();
    println!("| (canonical entry size: {} bytes) | |", bytes.len());
    time("build the body (`json!`, bench only)", &mut |i| {
        std::hint::black_box(draft("acme", i));
    });
    time(
        "canonicalise the draft (RFC 8785, appender thread)",
        &mut |_| {
            std::hint::black_box(tollgate_ledger::PreparedDraft::new(&d).unwrap());
        },
    );
    time("seal: assemble + SHA-256 (writer thread)", &mut |i| {
        std::hint::black_box(p.seal(i, hash).unwrap());
    });
    time(
        "parse stored canonical bytes, body skipped (store verify)",
        &mut |_| {
            std::hint::black_box(tollgate_ledger::EntryHeader::from_canonical(&bytes).unwrap());
        },
    );
    time(
        "SHA-256 of the canonical bytes + Merkle leaf (store verify)",
        &mut |_| {
            let h = tollgate_ledger::Hash::digest(&bytes);
            std::hint::black_box(tollgate_ledger::merkle::leaf_hash(&h.0));
        },
    );
    time(
        "parse a reformatted export line with its body (slow path)",
        &mut |_| {
            std::hint::black_box(Entry::from_canonical(&bytes, hash).unwrap());
        },
    );
    println!();

    println!(
        "## Durable appends (group commit: one segment fdatasync a batch, SQLite indexed after the ack), {secs} s each"
    );
    println!();
    println!(
        "| concurrent appends | one OS thread each, blocking: appends/s | from 2 threads, as async tasks: appends/s |"
    );
    println!("|---:|---:|---:|");
    for writers in [1u64, 16, 64, 256] {
        let (_, blocking) = appends(writers, secs);
        let pipelined = if writers >= 2 {
            format!("{:.0}", appends_in_flight(writers as usize, secs).1)
        } else {
            "–".to_owned()
        };
        println!("| {writers} | {blocking:.0} | {pipelined} |");
    }
    println!();

    latency_table(lat_secs);

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path());
    let t0 = Instant::now();
    // Pipelined submits (8192 in flight) so that generation is quick; same writer.
    let mut pending = std::collections::VecDeque::new();
    for i in 0..entries {
        pending.push_back(store.submit(draft("acme", i)));
        if pending.len() >= 8192 {
            pending.pop_front().unwrap().wait().unwrap();
        }
    }
    for a in pending {
        a.wait().unwrap();
    }
    let gen_secs = t0.elapsed().as_secs_f64();
    store
        .issue_checkpoint("acme", "2026-11-21T12:00:01Z")
        .wait()
        .unwrap();
    let keys = [signer().verifier()];

    println!("## Verification of a generated ledger of {entries} entries");
    println!();
    println!("| what | entries | seconds | entries/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| generate (appends, 8192 in flight) | {entries} | {gen_secs:.2} | {:.0} |",
        entries as f64 / gen_secs
    );
    let t = Instant::now();
    let ok = store.verify("acme", &keys).unwrap().unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(ok.entries, entries);
    println!(
        "| verify from the store (`audit verify --data-dir`) | {entries} | {s:.2} | {:.0} |",
        entries as f64 / s
    );

    // Export to JSON Lines, then verify the file (re-canonicalising every entry).
    let file = dir.path().join("acme.jsonl");
    let t = Instant::now();
    {
        use std::io::Write as _;
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap());
        store
            .scan("acme", &mut |row| {
                let hash = tollgate_ledger::Hash::from_slice(&row.entry_hash).unwrap();
                writeln!(
                    out,
                    "{}",
                    tollgate_ledger::line_from_canonical(&row.canonical, &hash)?
                )?;
                Ok(())
            })
            .unwrap();
        out.flush().unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "| export to JSON Lines (`audit export`) | {entries} | {s:.2} | {:.0} |",
        entries as f64 / s
    );
    let cps = store.checkpoints("acme").unwrap();
    let t = Instant::now();
    {
        use std::io::BufRead as _;
        let reader =
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file).unwrap());
        let mut v = Verifier::new(Some("acme".into()), &cps, &keys);
        for line in reader.lines() {
            v.push_line(&line.unwrap()).unwrap();
        }
        assert_eq!(v.finish(None).unwrap().entries, entries);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "| verify a JSON Lines export (`audit verify --file`) | {entries} | {s:.2} | {:.0} |",
        entries as f64 / s
    );
    if std::env::var("TOLLGATE_BENCH_KEEP").is_ok() {
        let kept = dir.keep();
        println!();
        println!("kept data directory: {}", kept.display());
        println!("checkpoint key: {}", signer().verifier().to_vkey());
    }
}
