//! Acceptance 2: SIGKILL under concurrent append load loses nothing acknowledged.
//!
//! The test binary is its own child: with `TOLLGATE_CRASH_CHILD=<dir>` it appends
//! from 16 threads to two tenants (and issues checkpoints) forever, printing
//! `<tenant> <seq> <entry_hash>` after each acknowledgement. The parent kills it
//! with SIGKILL after a random delay, 24 times over the same database, and after
//! each kill reopens the store and checks that every acknowledged append is there
//! with the acknowledged hash (no loss, no fork) and that every chain verifies
//! (no gap).
//!
//! Appends are durable once their batch's frame is synced in the segment file; the
//! database is written after the ack, by the indexer. In every other run the child's
//! indexer waits 30 ms before each commit, so that kills land while acknowledged
//! entries are in the segment only; the parent checks that reopening indexed some
//! (`recovered_entries`), so the test exercises that recovery. The segment is small
//! (256 KiB), so the writer also wraps around it many times a run and waits for the
//! database to be synced before it overwrites a frame.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use serde_json::json;
use tollgate_ledger::{EntryDraft, EntryKind, Hash, NoteSigner, SigningKey};
use tollgate_store::{LedgerStore, SqliteConfig, SqliteStore};

const RUNS: usize = 24;
const TENANTS: [&str; 2] = ["acme", "globex"];

fn config(dir: &str) -> SqliteConfig {
    let mut cfg = SqliteConfig::in_dir(std::path::Path::new(dir));
    cfg.signer = Some(signer());
    // Checkpoint the WAL into the database often, so that kills also land during
    // checkpoints.
    cfg.wal_checkpoint_bytes = 64 << 10;
    cfg.segment_bytes = 256 << 10;
    cfg
}

fn signer() -> NoteSigner {
    NoteSigner::new("crash.test", SigningKey::from_bytes(&[5; 32])).expect("key name")
}

fn child(dir: &str) -> anyhow::Result<()> {
    let mut cfg = config(dir);
    if std::env::var("TOLLGATE_CRASH_SLOW_INDEX").is_ok() {
        cfg.index_delay = Some(Duration::from_millis(30));
    }
    let store = Arc::new(SqliteStore::open(cfg)?);
    let mut threads = Vec::new();
    for t in 0..16u64 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let tenant = TENANTS[(t % 2) as usize];
            for i in 0.. {
                let draft = EntryDraft {
                    tenant: tenant.into(),
                    time: "2026-11-21T12:00:00Z".into(),
                    kind: EntryKind::Decision,
                    body: json!({ "thread": t, "i": i, "verdict": "ALLOW" }),
                };
                // Paced so that the ledger stays small enough to verify after
                // every one of the runs in a debug build; 16 appenders still
                // share group commits.
                std::thread::sleep(Duration::from_millis(2));
                let a = store.append(draft)?;
                let mut out = std::io::stdout().lock();
                let (Some(seq), Some(hash)) = (a.seq, a.entry_hash) else {
                    bail!("SQLite acknowledged an append without its seq and hash");
                };
                writeln!(out, "{} {} {}", a.tenant, seq, hash)?;
                out.flush()?;
            }
            Ok(())
        }));
    }
    loop {
        std::thread::sleep(Duration::from_millis(150));
        for t in TENANTS {
            store.issue_checkpoint(t, "2026-11-21T12:00:01Z").wait()?;
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn parent() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let dir_s = dir.path().to_str().context("utf-8 temp dir")?.to_owned();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let exe = std::env::current_exe()?;
    // Every acknowledged (tenant, seq) -> hash, across all runs.
    let mut acked: HashMap<(String, u64), Hash> = HashMap::new();
    let mut per_run = Vec::new();
    let mut recovered = 0;
    for run in 0..RUNS {
        let mut command = Command::new(&exe);
        if run % 2 == 1 {
            command.env("TOLLGATE_CRASH_SLOW_INDEX", "1");
        }
        let mut child = command
            .env("TOLLGATE_CRASH_CHILD", &dir_s)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdout = child.stdout.take().context("child stdout")?;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let delay = 30 + rng.next() % 300;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        let out = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))?;
        let text = String::from_utf8_lossy(&out);
        // The last segment may be a line cut by the kill; only whole lines count.
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop();
        let mut this_run = 0;
        for line in lines {
            let mut parts = line.split(' ');
            let (Some(t), Some(seq), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!("run {run}: malformed ack line {line:?}");
            };
            let hash = Hash::from_hex(hash).context("ack hash")?;
            if let Some(old) = acked.insert((t.to_owned(), seq.parse()?), hash) {
                ensure!(
                    old == hash,
                    "run {run}: {t} seq {seq} acknowledged twice with different hashes (fork)"
                );
            }
            this_run += 1;
        }
        per_run.push(this_run);

        let store = SqliteStore::open(config(&dir_s))?;
        recovered += store.recovered_entries();
        for t in TENANTS {
            let ok = store
                .verify(t, &[signer().verifier()])?
                .map_err(|f| anyhow::anyhow!("run {run} (seed {seed}): tenant {t}: {f}"))?;
            let _ = ok;
        }
        let mut stored: HashMap<(String, u64), Hash> = HashMap::new();
        for t in TENANTS {
            let size = store.head(t)?.map_or(0, |h| h.size);
            for e in store.range(t, 0, size)? {
                stored.insert((t.to_owned(), e.seq), e.entry_hash);
            }
        }
        for ((t, seq), hash) in &acked {
            let found = stored.get(&(t.clone(), *seq)).with_context(|| {
                format!("run {run} (seed {seed}): acknowledged {t} seq {seq} is lost")
            })?;
            ensure!(
                found == hash,
                "run {run}: {t} seq {seq} has another hash than acknowledged (fork)"
            );
        }
    }
    let total: usize = per_run.iter().sum();
    ensure!(
        total > 0,
        "no append was acknowledged in any run; the test proved nothing"
    );
    ensure!(
        per_run.iter().filter(|n| **n > 0).count() >= RUNS / 2,
        "too few runs were killed under load: {per_run:?}"
    );
    ensure!(
        recovered > 0,
        "no reopen indexed an entry from the segment: the kills never landed between a frame's sync and its index commit"
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "crash: {RUNS} SIGKILL runs (seed {seed}), {total} acknowledged appends ({recovered} indexed from the segment on reopen), all present, chains verify; acks per run {per_run:?}; {:.1} s",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "1 passed, 0 failed")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match std::env::var("TOLLGATE_CRASH_CHILD") {
        Ok(dir) => child(&dir),
        Err(_) => parent(),
    }
}
