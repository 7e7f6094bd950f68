//! The embedded SQLite backend.
//!
//! One writer thread owns the only write connection and is the ledger's sequencer:
//! appenders hand it prepared drafts over a channel; it takes everything waiting
//! (up to [`MAX_BATCH`]), assigns each tenant's next sequence numbers and chain
//! hashes, inserts the whole batch in one transaction, commits (one WAL fsync with
//! `synchronous=FULL`), and only then acknowledges each appender. Readers use their
//! own connections and see committed data only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tollgate_ledger::merkle::{self, CompactRange};
use tollgate_ledger::{
    Checkpoint, Entry, EntryDraft, Hash, NoteSigner, NoteVerifier, PreparedDraft, Problem,
    SignedCheckpoint, Verified, Verifier, VerifyFailure,
};

use crate::ack::{self, Ack, AckSender};
use crate::read_cache::ReadCache;
use crate::{
    ApiKeyRecord, Appended, HistoryRecord, HistoryStore, IdempotencyClaim, IdempotencyStore,
    KeyStore, LedgerHead, LedgerStore, OverrideStore, PolicyActivation, PolicyRecord, PolicyStore,
    QuotaStore, Record, ReviewRecord, ReviewStore, SigningKeyRecord, SourceStore, StoreError,
    TenantRecord, TenantStore,
};

/// Pooled reader connections kept open between uses; each holds a page cache of up to
/// `READER_CACHE_KIB`.
const MAX_IDLE_READERS: usize = 4;

/// Page cache of a reader connection (point lookups and scans; scans read through the
/// OS page cache).
const READER_CACHE_KIB: i64 = 2048;

/// The most entries one group commit takes.
pub(crate) const MAX_BATCH: usize = 8192;

/// Schema migrations; `schema_version` holds how many have been applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    canonical BLOB NOT NULL,
    entry_hash BLOB NOT NULL,
    UNIQUE (tenant, seq)
);
CREATE TABLE ledger_heads (
    tenant TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    peaks BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    size INTEGER NOT NULL,
    issued TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX checkpoints_by_tenant ON checkpoints (tenant, size);
CREATE TABLE tenants (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);
CREATE TABLE signing_keys (
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, public_key)
);
CREATE TABLE policies (
    tenant TEXT NOT NULL, policy_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, policy_id, version)
);
CREATE TABLE active_policies (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (tenant, environment)
);
CREATE TABLE sources (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE overrides (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE idempotency (
    tenant TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, created_ms INTEGER NOT NULL,
    response TEXT,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_by_time ON idempotency (created_ms);
CREATE TABLE reviews (tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE quota (
    tenant TEXT NOT NULL, period TEXT NOT NULL, metric TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (tenant, period, metric)
);
"#,
    r#"
CREATE TABLE decision_index (
    tenant TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, decision_id)
) WITHOUT ROWID;
"#,
    // v3: one active version per policy (and a candidate); `active_policies` keeps only
    // the environment's default policy id. Velocity history.
    r#"
CREATE TABLE policy_activations (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL,
    version INTEGER NOT NULL, candidate INTEGER, candidate_since_ms INTEGER,
    PRIMARY KEY (tenant, environment, policy_id)
);
INSERT INTO policy_activations (tenant, environment, policy_id, version)
    SELECT tenant, environment, policy_id, version FROM active_policies;
CREATE TABLE history (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, at_ms INTEGER NOT NULL,
    actor TEXT, source TEXT, body TEXT NOT NULL
);
CREATE INDEX history_by_time ON history (tenant, at_ms);
CREATE INDEX history_by_actor ON history (tenant, actor, at_ms);
CREATE INDEX history_by_source ON history (tenant, source, at_ms);
"#,
];

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file (created with its parent directory if missing).
    pub path: PathBuf,
    /// Log name; a tenant's checkpoint origin is `<log_name>/<tenant>`.
    pub log_name: String,
    /// The checkpoint signing key, if this process issues checkpoints.
    pub signer: Option<NoteSigner>,
    /// Entry bytes appended between two WAL checkpoints (default 32 MiB).
    pub wal_checkpoint_bytes: usize,
    /// If set, the writer signs a checkpoint of every tenant that received entries,
    /// at most this often while there is traffic (the spec asks for every second).
    pub auto_checkpoint: Option<std::time::Duration>,
}

impl SqliteConfig {
    /// The database `tollgate.db` in `dir`, log name `tollgate`, no signer.
    pub fn in_dir(dir: &Path) -> SqliteConfig {
        SqliteConfig {
            path: dir.join("tollgate.db"),
            log_name: "tollgate".into(),
            signer: None,
            wal_checkpoint_bytes: CHECKPOINT_EVERY_BYTES,
            auto_checkpoint: None,
        }
    }
}

/// A ledger row exactly as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRow {
    /// The `seq` column.
    pub seq: i64,
    /// The `kind` column.
    pub kind: String,
    /// The `time` column.
    pub time: String,
    /// The canonical bytes the hash was computed over.
    pub canonical: Vec<u8>,
    /// The `entry_hash` column.
    pub entry_hash: Vec<u8>,
}

enum Job {
    Append {
        tenant: String,
        time: String,
        prepared: PreparedDraft,
        /// For a decision entry: its `decision_id`, indexed in the same transaction.
        decision_id: Option<String>,
        ack: AckSender<Appended>,
    },
    Checkpoint {
        tenant: String,
        time: String,
        ack: AckSender<SignedCheckpoint>,
    },
}

/// The SQLite store: every store trait, over one database file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    // INVARIANT: `Some` until drop; dropping it stops the writer after it drains.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    // Stops by itself once the writer (which holds its signal sender) is gone.
    checkpointer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    /// Records every decision reads (see `read_cache.rs` for the invariant).
    cache: ReadCache,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Append { tenant, .. } => write!(f, "Append({tenant})"),
            Job::Checkpoint { tenant, .. } => write!(f, "Checkpoint({tenant})"),
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_handler(Some(busy_wait))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // INVARIANT: FULL makes every commit fsync the WAL: an acknowledged append
    // survives a crash or power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // No connection checkpoints the WAL after its own commits: copying WAL frames
    // into the database was a third of the writer's time. The checkpointer thread
    // does it instead, beside the writer (see `run_checkpointer`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // 8 MiB of page cache per connection: the writer appends at the right edge of
    // its B-trees, so the pages it touches are few and stay cached; scans read
    // through the OS page cache. (64 MiB a connection made the server's RSS grow
    // with the ledger, to past the 100 MiB bar.)
    conn.pragma_update(None, "cache_size", -8192)?;
    Ok(conn)
}

/// A pooled reader (and small-writes) connection: `open_connection` with a smaller page
/// cache.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(conn)
}

/// Waits for a lock another connection holds: sleeps of 50 µs doubling to at most
/// 1 ms, for about 10 s in all, then gives up (SQLITE_BUSY). SQLite's own busy timeout
/// sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms, so a writer kept waiting once slept up to
/// 25 ms past the lock's release: that was the slowest 1% of decisions under load.
fn busy_wait(attempt: i32) -> bool {
    const MAX_SLEEP_US: u64 = 1_000;
    const GIVE_UP_AFTER: i32 = 10_000 + 5;
    if attempt >= GIVE_UP_AFTER {
        return false;
    }
    let us = 50u64 << u32::try_from(attempt.clamp(0, 5)).unwrap_or(5);
    std::thread::sleep(std::time::Duration::from_micros(us.min(MAX_SLEEP_US)));
    true
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    let current = current.unwrap_or(0);
    let applied =
        usize::try_from(current).map_err(|_| StoreError::Corrupt("schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for m in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(m)?;
    }
    tx.execute("DELETE FROM schema_version", [])?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [MIGRATIONS.len() as i64],
    )?;
    tx.commit()?;
    Ok(())
}

/// A tenant id names a ledger and a checkpoint origin: 1–128 characters from
/// `[A-Za-z0-9._:-]`.
pub fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 128
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidTenant(tenant.to_owned()))
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) the database and starts the writer thread.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = config.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = open_connection(&config.path)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel();
        let checkpoint_conn = open_connection(&config.path)?;
        let (signal_tx, signal_rx) = mpsc::channel();
        let restart_wanted = Arc::new(AtomicBool::new(false));
        let wanted = Arc::clone(&restart_wanted);
        let checkpointer = std::thread::Builder::new()
            .name("tollgate-wal-checkpointer".into())
            .spawn(move || run_checkpointer(&checkpoint_conn, &signal_rx, &wanted))?;
        let writer = Writer {
            conn,
            log_name: config.log_name,
            signer: config.signer,
            states: HashMap::new(),
            checkpoint_signal: signal_tx,
            restart_wanted,
            bytes_since_signal: 0,
            checkpoint_every: config.wal_checkpoint_bytes.max(1),
            auto_checkpoint: config.auto_checkpoint,
            uncheckpointed: std::collections::BTreeSet::new(),
        };
        let handle = std::thread::Builder::new()
            .name("tollgate-ledger-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(SqliteStore {
            path: config.path,
            jobs: Some(tx),
            writer: Some(handle),
            checkpointer: Some(checkpointer),
            readers: Mutex::new(Vec::new()),
            cache: ReadCache::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: Job) {
        // A failed send returns the job; dropping it drops the ack sender, which
        // resolves the ack with `Closed`.
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    /// Runs `f` on a pooled connection (reads, and the small non-ledger writes; the
    /// ledger is written only by the writer thread).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        // A burst of concurrent reads opens connections; only a few stay open, so the
        // page caches they hold stay bounded (the rest are closed here).
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    /// Runs raw SQL on a fresh connection (for tests and tools that must tamper with
    /// or inspect the database directly).
    pub fn raw_connection(&self) -> Result<Connection, StoreError> {
        open_connection(&self.path)
    }

    /// The roots of `ranges` (see `merkle::inclusion_ranges`) over the tenant's first
    /// `size` entries, read in one pass: O(log n) memory however long the ledger is.
    /// `OutOfRange` if it holds fewer than `size` entries.
    fn range_roots(
        &self,
        tenant: &str,
        size: u64,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Vec<Hash>, StoreError> {
        let mut roots = merkle::RangeRoots::new(ranges);
        let read = self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT entry_hash FROM ledger WHERE tenant = ?1 AND seq >= 0 AND seq < ?2 ORDER BY seq",
            )?;
            let mut rows = st.query(params![tenant, to_i64(size)?])?;
            let mut read = 0u64;
            while let Some(r) = rows.next()? {
                let bytes = r
                    .get_ref(0)?
                    .as_blob()
                    .map_err(|e| StoreError::Corrupt(format!("entry hash: {e}")))?;
                let hash = Hash::from_slice(bytes)
                    .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?;
                roots.push_entry_hash(&hash);
                read += 1;
            }
            Ok(read)
        })?;
        if read != size {
            return Err(StoreError::short_ledger(tenant, size));
        }
        roots
            .finish()
            .ok_or_else(|| StoreError::short_ledger(tenant, size))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
    }
}

/// WAL frames (4 KiB pages) beyond which the WAL is restarted from its beginning, so
/// it stays bounded (about 64 MiB) even under sustained load. Under load a PASSIVE
/// checkpoint never catches up with the writer exactly, and SQLite restarts the WAL
/// only when every frame has been copied; so the writer restarts it itself (below).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Frames the checkpointer leaves for the writer's RESTART to copy, at most (while it
/// keeps up): the writer's stall is that copy and one fsync of the database.
const RESTART_LEFT_FRAMES: i64 = 256;

/// Default bytes of entries the writer appends between two checkpoint signals (the
/// WAL grows about three times as fast: each entry also dirties index and interior
/// pages).
const CHECKPOINT_EVERY_BYTES: usize = 8 << 20;

/// Copies committed WAL frames into the database when the writer signals that
/// another 8 MiB were appended, on its own connection and thread, so the writer
/// does not do it after its own commits (that was a third of its time). A PASSIVE
/// checkpoint never blocks the writer. When the WAL has grown past
/// `WAL_RESTART_FRAMES`, it asks the writer to restart it: the writer runs a RESTART
/// checkpoint between two batches, which has only the frames appended since this
/// checkpoint left to copy. (A RESTART run here instead blocked the writer for the
/// whole copy, through the busy handler: 100 ms stalls every few seconds.) Durability
/// does not depend on checkpoints: a commit is durable once its WAL frames are fsynced.
fn run_checkpointer(conn: &Connection, signal: &mpsc::Receiver<()>, restart_wanted: &AtomicBool) {
    loop {
        let stopping = signal.recv().is_err();
        while signal.try_recv().is_ok() {}
        let passive = || -> rusqlite::Result<(i64, i64)> {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
        };
        if let Ok((frames, _)) = passive()
            && frames > WAL_RESTART_FRAMES
        {
            // Catch up with the writer first, so that its RESTART has little left to
            // copy (each pass copies what was appended during the one before).
            for _ in 0..8 {
                match passive() {
                    Ok((frames, copied)) if frames - copied > RESTART_LEFT_FRAMES => {}
                    _ => break,
                }
            }
            restart_wanted.store(true, Ordering::Relaxed);
        }
        if stopping {
            return;
        }
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{v} is too large")))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

#[derive(Clone, Debug)]
struct TenantState {
    size: u64,
    last_hash: Hash,
    range: CompactRange,
}

fn load_state(conn: &Connection, tenant: &str) -> Result<TenantState, StoreError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT size, last_hash, peaks FROM ledger_heads WHERE tenant = ?1",
            [tenant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((size, last, peaks)) = row else {
        return Ok(TenantState {
            size: 0,
            last_hash: Hash::ZERO,
            range: CompactRange::new(),
        });
    };
    let size = to_u64(size)?;
    let last_hash =
        Hash::from_slice(&last).ok_or_else(|| StoreError::Corrupt("head hash".into()))?;
    let peaks: Vec<Hash> = peaks.chunks(32).filter_map(Hash::from_slice).collect();
    let range = CompactRange::from_parts(size, peaks).ok_or_else(|| {
        StoreError::Corrupt(format!("head of `{tenant}`: peaks do not match size"))
    })?;
    Ok(TenantState {
        size,
        last_hash,
        range,
    })
}

fn head_from_state(st: &TenantState) -> LedgerHead {
    LedgerHead {
        size: st.size,
        last_hash: st.last_hash,
        root: st.range.root(),
    }
}

struct Writer {
    conn: Connection,
    log_name: String,
    signer: Option<NoteSigner>,
    states: HashMap<String, TenantState>,
    checkpoint_signal: mpsc::Sender<()>,
    /// Set by the checkpointer when the WAL should be restarted (see `run_checkpointer`).
    restart_wanted: Arc<AtomicBool>,
    bytes_since_signal: usize,
    checkpoint_every: usize,
    auto_checkpoint: Option<std::time::Duration>,
    /// Tenants with entries appended since their last automatic checkpoint.
    uncheckpointed: std::collections::BTreeSet<String>,
}

enum Outcome {
    Appended(Result<Appended, StoreError>),
    Checkpoint(Result<SignedCheckpoint, StoreError>),
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut last_auto = std::time::Instant::now();
        loop {
            let first = match self.auto_checkpoint {
                None => match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                },
                Some(every) => {
                    let wait = every.saturating_sub(last_auto.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(job) => Some(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            let mut batch: Vec<Job> = first.into_iter().collect();
            if let Some(every) = self.auto_checkpoint
                && last_auto.elapsed() >= every
            {
                last_auto = std::time::Instant::now();
                if self.signer.is_some() && !self.uncheckpointed.is_empty() {
                    let time =
                        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
                    for tenant in std::mem::take(&mut self.uncheckpointed) {
                        // Nobody awaits an automatic checkpoint: the receiver is dropped.
                        let (ack, _) = ack::channel();
                        batch.push(Job::Checkpoint {
                            tenant,
                            time: time.clone(),
                            ack,
                        });
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            match self.write_batch(&batch) {
                Ok(outcomes) => {
                    if self.auto_checkpoint.is_some() {
                        for (job, outcome) in batch.iter().zip(&outcomes) {
                            if let (Job::Append { tenant, .. }, Outcome::Appended(Ok(_))) =
                                (job, outcome)
                                && !self.uncheckpointed.contains(tenant)
                            {
                                self.uncheckpointed.insert(tenant.clone());
                            }
                        }
                    }
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        match (job, outcome) {
                            (Job::Append { ack, .. }, Outcome::Appended(a)) => ack.send(a),
                            (Job::Checkpoint { ack, .. }, Outcome::Checkpoint(c)) => ack.send(c),
                            // Outcomes are pushed in job order with the job's own variant.
                            _ => {}
                        }
                    }
                    // After the acks: nobody waits on this batch while the WAL restarts.
                    if self.restart_wanted.swap(false, Ordering::Relaxed) {
                        // Busy (a reader on an old snapshot): the checkpointer asks again.
                        let _ = self
                            .conn
                            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                                r.get::<_, i64>(0)
                            });
                    }
                }
                Err(e) => {
                    // The transaction rolled back; forget cached heads so they are
                    // reloaded from what is durably there.
                    self.states.clear();
                    let msg = e.to_string();
                    for job in batch {
                        match job {
                            Job::Append { ack, .. } => {
                                ack.send(Err(StoreError::BatchFailed(msg.clone())))
                            }
                            Job::Checkpoint { ack, .. } => {
                                ack.send(Err(StoreError::BatchFailed(msg.clone())))
                            }
                        }
                    }
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut dirty: HashMap<&str, TenantState> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO ledger (tenant, seq, kind, time, canonical, entry_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut index = tx.prepare_cached(
                "INSERT OR IGNORE INTO decision_index (tenant, decision_id, seq) VALUES (?1, ?2, ?3)",
            )?;
            for job in batch {
                let tenant = match job {
                    Job::Append { tenant, .. } | Job::Checkpoint { tenant, .. } => tenant.as_str(),
                };
                let st = match dirty.entry(tenant) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let loaded = match self.states.get(tenant) {
                            Some(s) => s.clone(),
                            None => load_state(&tx, tenant)?,
                        };
                        v.insert(loaded)
                    }
                };
                match job {
                    Job::Append {
                        tenant,
                        time,
                        prepared,
                        decision_id,
                        ..
                    } => {
                        // INVARIANT: the writer is the only sequencer, and `st` is
                        // the committed head plus this batch's earlier appends, so
                        // seq is gapless and prev_hash links to the last entry.
                        let seq = st.size;
                        let prev_hash = st.last_hash;
                        if let Some(id) = decision_id {
                            // Decision ids are unique per tenant. A duplicate fails
                            // only its own append (before it takes a seq), not the
                            // unrelated appends that share its batch.
                            let fresh = index.execute(params![tenant, id, to_i64(seq)?])?;
                            if fresh == 0 {
                                outcomes.push(Outcome::Appended(Err(
                                    StoreError::DuplicateDecision(id.clone()),
                                )));
                                continue;
                            }
                        }
                        let (bytes, entry_hash) = prepared.seal(seq, prev_hash)?;
                        self.bytes_since_signal += bytes.len();
                        insert.execute(params![
                            tenant,
                            to_i64(seq)?,
                            prepared.kind().as_str(),
                            time,
                            bytes,
                            entry_hash.0.as_slice()
                        ])?;
                        st.size += 1;
                        st.last_hash = entry_hash;
                        st.range.push_entry_hash(&entry_hash);
                        outcomes.push(Outcome::Appended(Ok(Appended {
                            tenant: tenant.clone(),
                            seq: Some(seq),
                            entry_hash: Some(entry_hash),
                            prev_hash: Some(prev_hash),
                        })));
                    }
                    Job::Checkpoint { tenant, time, .. } => {
                        let Some(signer) = &self.signer else {
                            outcomes.push(Outcome::Checkpoint(Err(StoreError::NoSigner)));
                            continue;
                        };
                        let cp = Checkpoint {
                            origin: format!("{}/{}", self.log_name, tenant),
                            size: st.size,
                            root: st.range.root(),
                            extensions: vec![format!("time {time}")],
                        }
                        .sign(signer)?;
                        tx.execute(
                            "INSERT INTO checkpoints (tenant, size, issued, note) VALUES (?1, ?2, ?3, ?4)",
                            params![tenant, to_i64(st.size)?, time, cp.to_text()?],
                        )?;
                        outcomes.push(Outcome::Checkpoint(Ok(cp)));
                    }
                }
            }
            let mut head = tx.prepare_cached(
                "INSERT INTO ledger_heads (tenant, size, last_hash, peaks) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, last_hash = excluded.last_hash, peaks = excluded.peaks",
            )?;
            for (tenant, st) in &dirty {
                let peaks: Vec<u8> = st.range.peaks().iter().flat_map(|h| h.0).collect();
                head.execute(params![
                    tenant,
                    to_i64(st.size)?,
                    st.last_hash.0.as_slice(),
                    peaks
                ])?;
            }
        }
        tx.commit()?;
        for (tenant, st) in dirty {
            self.states.insert(tenant.to_owned(), st);
        }
        if self.bytes_since_signal >= self.checkpoint_every {
            self.bytes_since_signal = 0;
            // A send fails only if the checkpointer thread is gone; then the WAL
            // grows until the store is closed, which checkpoints it.
            let _ = self.checkpoint_signal.send(());
        }
        Ok(outcomes)
    }
}

fn row_to_entry(row: &StoredRow) -> Result<Entry, StoreError> {
    let hash = Hash::from_slice(&row.entry_hash)
        .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?;
    Ok(Entry::from_canonical(&row.canonical, hash)?)
}

/// Reads a ledger row without trusting its column types: text read as bytes (lossily
/// decoded), so that a tampered row is reported by the verifier rather than failing
/// the read.
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    let bytes = |i: usize| -> rusqlite::Result<Vec<u8>> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.to_vec(),
            rusqlite::types::ValueRef::Integer(n) => n.to_string().into_bytes(),
            rusqlite::types::ValueRef::Real(f) => f.to_string().into_bytes(),
            rusqlite::types::ValueRef::Null => Vec::new(),
        })
    };
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(String::from_utf8_lossy(&bytes(i)?).into_owned())
    };
    Ok(StoredRow {
        seq: r.get::<_, i64>(0)?,
        kind: text(1)?,
        time: text(2)?,
        canonical: bytes(3)?,
        entry_hash: bytes(4)?,
    })
}

const ROW_COLUMNS: &str = "seq, kind, time, canonical, entry_hash";

impl LedgerStore for SqliteStore {
    fn submit(&self, draft: EntryDraft) -> Ack<Appended> {
        if let Err(e) = check_tenant(&draft.tenant) {
            return Ack::ready(Err(e));
        }
        // Canonicalising the body is the costly part; it runs on the caller's thread.
        let prepared = match PreparedDraft::new(&draft) {
            Ok(p) => p,
            Err(e) => return Ack::ready(Err(e.into())),
        };
        let decision_id = match draft.kind {
            tollgate_ledger::EntryKind::Decision => draft
                .body
                .get("decision_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let (tx, rx) = ack::channel();
        self.send(Job::Append {
            tenant: draft.tenant,
            time: draft.time,
            prepared,
            decision_id,
            ack: tx,
        });
        rx
    }

    fn ledger_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            let mut st =
                c.prepare_cached("SELECT tenant FROM ledger_heads WHERE size > 0 ORDER BY tenant")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        self.with_conn(|c| {
            let st = load_state(c, tenant)?;
            Ok((st.size > 0).then(|| head_from_state(&st)))
        })
    }

    fn decision_seq(&self, tenant: &str, decision_id: &str) -> Result<Option<u64>, StoreError> {
        self.with_conn(|c| {
            let seq: Option<i64> = c
                .query_row(
                    "SELECT seq FROM decision_index WHERE tenant = ?1 AND decision_id = ?2",
                    params![tenant, decision_id],
                    |r| r.get(0),
                )
                .optional()?;
            seq.map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt("negative seq".into())))
                .transpose()
        })
    }

    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Entry>, StoreError> {
        let row = self.with_conn(|c| {
            Ok(c.query_row(
                &format!("SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq = ?2"),
                params![tenant, to_i64(seq)?],
                read_row,
            )
            .optional()?)
        })?;
        row.as_ref().map(row_to_entry).transpose()
    }

    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let rows = self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq"
            ))?;
            let rows = st.query_map(params![tenant, to_i64(from)?, to_i64(to)?], read_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        rows.iter().map(row_to_entry).collect()
    }

    fn scan(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| {
            // A read transaction gives one consistent snapshot for the whole scan.
            c.execute_batch("BEGIN")?;
            let result = (|| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq >= 0 ORDER BY seq"
                ))?;
                let mut rows = st.query([tenant])?;
                while let Some(r) = rows.next()? {
                    visit(read_row(r)?)?;
                }
                Ok(())
            })();
            c.execute_batch("COMMIT")?;
            result
        })
    }

    fn issue_checkpoint(&self, tenant: &str, time: &str) -> Ack<SignedCheckpoint> {
        if let Err(e) = check_tenant(tenant) {
            return Ack::ready(Err(e));
        }
        let (tx, rx) = ack::channel();
        self.send(Job::Checkpoint {
            tenant: tenant.to_owned(),
            time: time.to_owned(),
            ack: tx,
        });
        rx
    }

    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<SignedCheckpoint>, StoreError> {
        let note: Option<String> = self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT note FROM checkpoints WHERE tenant = ?1 ORDER BY size DESC, id DESC LIMIT 1",
                [tenant],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        Ok(note.map(|n| SignedCheckpoint::parse(&n)).transpose()?)
    }

    fn checkpoints(&self, tenant: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        checkpoint_rows(self, tenant)?
            .into_iter()
            .map(|(_, n)| Ok(SignedCheckpoint::parse(&n)?))
            .collect()
    }

    fn inclusion_proof(&self, tenant: &str, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        let ranges = merkle::inclusion_ranges(seq, size)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        self.range_roots(tenant, size, ranges)
    }

    fn consistency_proof(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        let ranges = merkle::consistency_ranges(from, to)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        self.range_roots(tenant, to, ranges)
    }

    fn verify(
        &self,
        tenant: &str,
        keys: &[NoteVerifier],
    ) -> Result<Result<Verified, VerifyFailure>, StoreError> {
        let head = self.head(tenant)?;
        let mut candidates: Vec<VerifyFailure> = Vec::new();
        let mut checkpoints = Vec::new();
        for (size, note) in checkpoint_rows(self, tenant)? {
            let size = u64::try_from(size).unwrap_or(0);
            match SignedCheckpoint::parse(&note) {
                Ok(cp) if cp.checkpoint.size == size => checkpoints.push(cp),
                Ok(_) => candidates.push(VerifyFailure {
                    seq: size.saturating_sub(1),
                    problem: Problem::BadCheckpointSignature {
                        size,
                        reason: "the stored size column disagrees with the note".into(),
                    },
                }),
                Err(e) => candidates.push(VerifyFailure {
                    seq: size.saturating_sub(1),
                    problem: Problem::BadCheckpointSignature {
                        size,
                        reason: e.to_string(),
                    },
                }),
            }
        }
        let mut v = Verifier::new(Some(tenant.to_owned()), &checkpoints, keys);
        let mut failure: Option<VerifyFailure> = None;
        let scanned = self.scan(tenant, &mut |row| {
            if failure.is_some() {
                return Err(StoreError::Closed); // stop scanning; not reported
            }
            let Some(hash) = Hash::from_slice(&row.entry_hash) else {
                failure = Some(v.malformed("the stored entry_hash is not 32 bytes"));
                return Ok(());
            };
            match v.push_canonical(&row.canonical, hash) {
                Ok(entry) => {
                    let columns_agree = row.seq == i64::try_from(entry.seq).unwrap_or(-1)
                        && row.kind == entry.kind.as_str()
                        && row.time == entry.time;
                    if !columns_agree {
                        failure = Some(VerifyFailure {
                            seq: entry.seq,
                            problem: Problem::Malformed {
                                reason: "the stored seq, kind or time column disagrees with the hashed entry".into(),
                            },
                        });
                    }
                }
                Err(f) => failure = Some(f),
            }
            Ok(())
        });
        match scanned {
            Ok(()) | Err(StoreError::Closed) => {}
            Err(e) => return Err(e),
        }
        let main = match failure {
            Some(f) => Err(f),
            None => v.finish(head.map(|h| h.size)),
        };
        let earliest = candidates.into_iter().min_by_key(|f| f.seq);
        Ok(match (main, earliest) {
            (Err(f), Some(c)) if c.seq < f.seq => Err(c),
            (Err(f), _) => Err(f),
            (Ok(_), Some(c)) => Err(c),
            (Ok(ok), None) => Ok(ok),
        })
    }
}

fn checkpoint_rows(store: &SqliteStore, tenant: &str) -> Result<Vec<(i64, String)>, StoreError> {
    store.with_conn(|c| {
        let mut st = c.prepare_cached(
            "SELECT size, note FROM checkpoints WHERE tenant = ?1 ORDER BY size, id",
        )?;
        let rows = st.query_map([tenant], |r| {
            let note = match r.get_ref(1)? {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    String::from_utf8_lossy(t).into_owned()
                }
                _ => String::new(),
            };
            Ok((r.get(0)?, note))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

impl SqliteStore {
    fn write(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.with_conn(|c| Ok(c.execute(sql, p)?))
    }

    fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        let texts: Vec<String> = self.with_conn(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(p, |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        texts.iter().map(|t| parse(t)).collect()
    }

    fn body<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.bodies(sql, p)?.into_iter().next())
    }
}

impl TenantStore for SqliteStore {
    fn put_tenant(&self, t: &TenantRecord) -> Result<(), StoreError> {
        check_tenant(&t.id)?;
        let written = self.write(
            "INSERT OR REPLACE INTO tenants (id, body) VALUES (?1, ?2)",
            params![t.id, json(t)?],
        );
        self.cache.invalidate(|m| {
            m.tenants.remove(&t.id);
        });
        written?;
        Ok(())
    }
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.cache.get_or_load(
            |m| &mut m.tenants,
            id.to_owned(),
            || self.body("SELECT body FROM tenants WHERE id = ?1", [id]),
        )
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.bodies("SELECT body FROM tenants ORDER BY id", [])
    }
}

impl KeyStore for SqliteStore {
    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO api_keys (id, tenant, hash, body) VALUES (?1, ?2, ?3, ?4)",
            params![k.id, k.tenant, k.hash, json(k)?],
        )?;
        Ok(())
    }
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.body("SELECT body FROM api_keys WHERE hash = ?1", [hash])
    }
    fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM api_keys WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
    fn put_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO signing_keys (name, public_key, body) VALUES (?1, ?2, ?3)",
            params![k.name, k.public_key.as_slice(), json(k)?],
        )?;
        Ok(())
    }
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut keys: Vec<SigningKeyRecord> = self.bodies("SELECT body FROM signing_keys", [])?;
        keys.sort_by_key(|k| k.created_ms);
        Ok(keys)
    }
}

impl PolicyStore for SqliteStore {
    fn put_policy_version(&self, p: &PolicyRecord) -> Result<(), StoreError> {
        // Plain INSERT: a stored version is immutable.
        self.write(
            "INSERT INTO policies (tenant, policy_id, version, body) VALUES (?1, ?2, ?3, ?4)",
            params![p.tenant, p.policy_id, to_i64(p.version)?, json(p)?],
        )?;
        Ok(())
    }
    fn policy_version(
        &self,
        tenant: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<Option<PolicyRecord>, StoreError> {
        self.body(
            "SELECT body FROM policies WHERE tenant = ?1 AND policy_id = ?2 AND version = ?3",
            params![tenant, policy_id, to_i64(version)?],
        )
    }
    fn policy_versions(
        &self,
        tenant: &str,
        policy_id: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM policies WHERE tenant = ?1 AND policy_id = ?2 ORDER BY version",
            params![tenant, policy_id],
        )
    }
    fn policy_ids(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT policy_id FROM policies WHERE tenant = ?1 ORDER BY policy_id",
            )?;
            let rows = st.query_map([tenant], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
    fn activate_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let version = to_i64(version)?;
        let _invalidate = self.policies_changed(tenant);
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO policy_activations (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, environment, policy_id) DO UPDATE SET version = excluded.version,
                   candidate = CASE WHEN candidate = excluded.version THEN NULL ELSE candidate END,
                   candidate_since_ms = CASE WHEN candidate = excluded.version THEN NULL ELSE candidate_since_ms END",
                params![tenant, environment, policy_id, version],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO active_policies (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, 0)",
                params![tenant, environment, policy_id],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
    fn active_policy(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        // Asked on every decision: kept in the read cache.
        self.cache.get_or_load(
            |m| &mut m.active,
            (tenant.to_owned(), environment.to_owned()),
            || {
                let row: Option<(String, i64)> = self.with_conn(|c| {
                    Ok(c.prepare_cached(
                        "SELECT a.policy_id, p.version FROM active_policies a
                         JOIN policy_activations p ON p.tenant = a.tenant AND p.environment = a.environment AND p.policy_id = a.policy_id
                         WHERE a.tenant = ?1 AND a.environment = ?2",
                    )?
                    .query_row(params![tenant, environment], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?)
                })?;
                row.map(|(id, v)| Ok((id, to_u64(v)?))).transpose()
            },
        )
    }
    fn set_default_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
    ) -> Result<bool, StoreError> {
        let _invalidate = self.policies_changed(tenant);
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            let active: Option<i64> = tx
                .query_row(
                    "SELECT version FROM policy_activations WHERE tenant = ?1 AND environment = ?2 AND policy_id = ?3",
                    params![tenant, environment, policy_id],
                    |r| r.get(0),
                )
                .optional()?;
            if active.is_none() {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO active_policies (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, 0)",
                params![tenant, environment, policy_id],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
    fn policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        self.cache.get_or_load(
            |m| &mut m.activations,
            (tenant.to_owned(), environment.to_owned()),
            || self.load_policy_activations(tenant, environment),
        )
    }
    fn set_policy_candidate(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        candidate: Option<(u64, i64)>,
    ) -> Result<bool, StoreError> {
        let (version, since) = match candidate {
            Some((v, since)) => (Some(to_i64(v)?), Some(since)),
            None => (None, None),
        };
        let _invalidate = self.policies_changed(tenant);
        let changed = self.write(
            "UPDATE policy_activations SET candidate = ?4, candidate_since_ms = ?5
             WHERE tenant = ?1 AND environment = ?2 AND policy_id = ?3",
            params![tenant, environment, policy_id, version, since],
        )?;
        Ok(changed > 0)
    }
}

/// Drops the cached policy reads of a tenant when dropped.
struct PoliciesChanged<'a>(&'a ReadCache, &'a str);

impl Drop for PoliciesChanged<'_> {
    fn drop(&mut self) {
        let tenant = self.1;
        self.0.invalidate(|m| {
            m.active.retain(|(t, _), _| t != tenant);
            m.activations.retain(|(t, _), _| t != tenant);
        });
    }
}

impl SqliteStore {
    fn load_policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT policy_id, version, candidate, candidate_since_ms FROM policy_activations
                 WHERE tenant = ?1 AND environment = ?2 ORDER BY policy_id",
            )?;
            let rows = st.query_map(params![tenant, environment], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(policy_id, v, cand, since)| {
                Ok(PolicyActivation {
                    policy_id,
                    version: to_u64(v)?,
                    candidate: cand.map(to_u64).transpose()?,
                    candidate_since_ms: since,
                })
            })
            .collect()
    }

    /// Invalidates the tenant's cached policy reads when dropped (after the write,
    /// whether it succeeded or not).
    fn policies_changed<'a>(&'a self, tenant: &'a str) -> PoliciesChanged<'a> {
        PoliciesChanged(&self.cache, tenant)
    }
}

impl HistoryStore for SqliteStore {
    fn add_history(&self, r: &HistoryRecord) -> Result<u64, StoreError> {
        check_tenant(&r.tenant)?;
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO history (tenant, at_ms, actor, source, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.tenant, r.at_ms, r.actor, r.source, serde_json::to_string(&r.values)?],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        to_u64(id)
    }
    fn remove_history(&self, tenant: &str, id: u64) -> Result<(), StoreError> {
        self.write(
            "DELETE FROM history WHERE tenant = ?1 AND id = ?2",
            params![tenant, to_i64(id)?],
        )?;
        Ok(())
    }
    fn history(
        &self,
        tenant: &str,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        type Row = (i64, i64, Option<String>, Option<String>, String);
        let rows: Vec<Row> = self.with_conn(|c| {
            let all = actor.is_none() && source.is_none();
            let mut st = c.prepare_cached(
                "SELECT id, at_ms, actor, source, body FROM history
                 WHERE tenant = ?1 AND at_ms >= ?2
                   AND (?3 OR (?4 IS NOT NULL AND actor = ?4) OR (?5 IS NOT NULL AND source = ?5))
                 ORDER BY at_ms, id",
            )?;
            let rows = st.query_map(params![tenant, since_ms, all, actor, source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(id, at_ms, actor, source, body)| {
                Ok(HistoryRecord {
                    id: to_u64(id)?,
                    tenant: tenant.to_owned(),
                    at_ms,
                    actor,
                    source,
                    values: parse(&body)?,
                })
            })
            .collect()
    }
    fn purge_history(&self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self.write("DELETE FROM history WHERE at_ms < ?1", [before_ms])?;
        Ok(n as u64)
    }
}

impl SourceStore for SqliteStore {
    fn put_source(&self, r: &Record) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO sources (tenant, id, body) VALUES (?1, ?2, ?3)",
            params![r.tenant, r.id, json(r)?],
        )?;
        Ok(())
    }
    fn source(&self, tenant: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.body(
            "SELECT body FROM sources WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )
    }
    fn sources(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM sources WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
}

impl OverrideStore for SqliteStore {
    fn put_override(&self, r: &Record) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO overrides (tenant, id, body) VALUES (?1, ?2, ?3)",
            params![r.tenant, r.id, json(r)?],
        )?;
        Ok(())
    }
    fn clear_override(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.write(
            "DELETE FROM overrides WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )? > 0)
    }
    fn overrides(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM overrides WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
}

impl IdempotencyStore for SqliteStore {
    fn claim(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.with_conn(|c| {
            // INSERT OR IGNORE is atomic: exactly one concurrent claimant inserts.
            let inserted = c.execute(
                "INSERT OR IGNORE INTO idempotency (tenant, key, request_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![tenant, key, request_hash, now_ms],
            )?;
            if inserted == 1 {
                return Ok(IdempotencyClaim::New);
            }
            let (hash, response): (String, Option<String>) = c.query_row(
                "SELECT request_hash, response FROM idempotency WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(if hash != request_hash {
                IdempotencyClaim::Mismatch
            } else {
                match response {
                    Some(r) => IdempotencyClaim::Done(parse(&r)?),
                    None => IdempotencyClaim::InProgress,
                }
            })
        })
    }
    fn complete(
        &self,
        tenant: &str,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE idempotency SET response = ?3 WHERE tenant = ?1 AND key = ?2",
            params![tenant, key, json(response)?],
        )?;
        Ok(())
    }
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.write(
            "DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2 AND response IS NULL",
            params![tenant, key],
        )?;
        Ok(())
    }
    fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(self.write("DELETE FROM idempotency WHERE created_ms < ?1", [before_ms])? as u64)
    }
}

impl ReviewStore for SqliteStore {
    fn put_review(&self, r: &ReviewRecord) -> Result<(), StoreError> {
        let written = self.write(
            "INSERT OR REPLACE INTO reviews (tenant, id, status, body) VALUES (?1, ?2, ?3, ?4)",
            params![r.tenant, r.id, r.status, json(r)?],
        );
        self.cache.invalidate(|m| {
            m.approved.remove(&r.tenant);
        });
        written?;
        Ok(())
    }
    fn review(&self, tenant: &str, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
        self.body(
            "SELECT body FROM reviews WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )
    }
    fn reviews(&self, tenant: &str, status: Option<&str>) -> Result<Vec<ReviewRecord>, StoreError> {
        match status {
            // Asked on every enforce-mode decision: kept in the read cache.
            Some("approved") => {
                self.cache
                    .get_or_load(|m| &mut m.approved, tenant.to_owned(), || {
                        self.bodies(
                            "SELECT body FROM reviews WHERE tenant = ?1 AND status = 'approved' ORDER BY id",
                            [tenant],
                        )
                    })
            }
            Some(s) => self.bodies(
                "SELECT body FROM reviews WHERE tenant = ?1 AND status = ?2 ORDER BY id",
                params![tenant, s],
            ),
            None => self.bodies(
                "SELECT body FROM reviews WHERE tenant = ?1 ORDER BY id",
                [tenant],
            ),
        }
    }
}

impl QuotaStore for SqliteStore {
    fn add_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            let v: i64 = c.query_row(
                "INSERT INTO quota (tenant, period, metric, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, period, metric) DO UPDATE SET value = value + excluded.value
                 RETURNING value",
                params![tenant, period, metric, to_i64(amount)?],
                |r| r.get(0),
            )?;
            to_u64(v)
        })
    }
    fn usage(&self, tenant: &str, period: &str, metric: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT value FROM quota WHERE tenant = ?1 AND period = ?2 AND metric = ?3",
                params![tenant, period, metric],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        v.map(to_u64).transpose().map(|v| v.unwrap_or(0))
    }
    fn reserve_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        if amount > limit {
            return Ok(false);
        }
        self.with_conn(|c| {
            // One statement, so one write lock: the check and the add cannot interleave
            // with another writer's. No row comes back when the update's WHERE fails.
            let v: Option<i64> = c
                .query_row(
                    "INSERT INTO quota (tenant, period, metric, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, period, metric) DO UPDATE SET value = value + excluded.value
                     WHERE value + excluded.value <= ?5
                     RETURNING value",
                    params![tenant, period, metric, to_i64(amount)?, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.is_some())
        })
    }
    fn release_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE quota SET value = max(value - ?4, 0) WHERE tenant = ?1 AND period = ?2 AND metric = ?3",
            params![tenant, period, metric, to_i64(amount)?],
        )?;
        Ok(())
    }
}
