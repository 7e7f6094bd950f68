//! The embedded SQLite backend.
//!
//! One writer thread is the ledger's sequencer: appenders hand it prepared drafts over
//! a channel; it takes everything waiting (up to [`MAX_BATCH`]), assigns each tenant's
//! next sequence numbers and chain hashes, writes the whole batch as one frame of the
//! segment file and `fdatasync`s it (group commit), and only then acknowledges each
//! appender. The indexer thread then writes the batch into the database, without an
//! fsync of its own; the checkpointer syncs and checkpoints the database in the
//! background. Readers use their own connections and see indexed data only, and wait
//! for the indexer to reach everything acknowledged before they read the ledger.
//!
//! The files: `connection.rs` (connection setup, the busy handler, the data-directory
//! lock), `schema.rs` (migrations), `segment.rs` (the segment file), `writer.rs` (the
//! writer thread: group commit and sequencing), `indexer.rs` (the indexer thread and
//! recovery at open), `checkpointer.rs` (the database sync and WAL checkpointer
//! thread), `ledger.rs` (the `LedgerStore` and `LedgerRead` impls), `records.rs` and
//! `policies.rs` (the record stores).

mod checkpointer;
mod connection;
mod indexer;
mod ledger;
mod notify;
mod policies;
mod records;
mod schema;
mod segment;
mod tiles;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tollgate_ledger::NoteSigner;

use crate::StoreError;
use crate::read_cache::ReadCache;
use checkpointer::CHECKPOINT_EVERY_BYTES;
use writer::{Job, Writer};

/// Pooled reader connections kept open between uses; each holds a page cache of up to
/// `READER_CACHE_KIB`.
const MAX_IDLE_READERS: usize = 4;

/// Page cache of a reader connection (point lookups and scans; scans read through the
/// OS page cache).
const READER_CACHE_KIB: i64 = 2048;

/// The most entries one group commit takes.
pub(crate) const MAX_BATCH: usize = 8192;

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file (created with its parent directory if missing).
    pub path: PathBuf,
    /// Log name; a tenant's checkpoint origin is `<log_name>/<tenant>`.
    pub log_name: String,
    /// The checkpoint signing key, if this process issues checkpoints.
    pub signer: Option<NoteSigner>,
    /// Entry bytes indexed between two WAL syncs and checkpoints (default 1 MiB).
    pub wal_checkpoint_bytes: usize,
    /// Size of the segment file, the ring of batches that makes appends durable
    /// (`<path>.segment`, default 64 MiB). A batch takes at most half of a quarter of
    /// it; an entry larger than that fails.
    pub segment_bytes: usize,
    /// Tests only: the indexer sleeps this long before each commit, widening the
    /// window in which acknowledged entries are in the segment only.
    #[doc(hidden)]
    pub index_delay: Option<Duration>,
    /// If set, the writer signs a checkpoint of every tenant that received entries,
    /// at most this often while there is traffic (the spec asks for every second).
    pub auto_checkpoint: Option<std::time::Duration>,
    /// Whether checkpoints grow the tlog tiles (default `true`). Benchmarks only:
    /// `false` measures the append rate without tile growth, and breaks the invariant
    /// that a stored checkpoint has its tiles (proofs then fall back to reading every
    /// entry hash). Never set by the server.
    #[doc(hidden)]
    pub grow_tiles: bool,
}

impl SqliteConfig {
    /// The database `tollgate.db` in `dir`, log name `tollgate`, no signer.
    pub fn in_dir(dir: &Path) -> SqliteConfig {
        SqliteConfig {
            path: dir.join("tollgate.db"),
            log_name: "tollgate".into(),
            signer: None,
            wal_checkpoint_bytes: CHECKPOINT_EVERY_BYTES,
            segment_bytes: segment::SEGMENT_BYTES,
            index_delay: None,
            auto_checkpoint: None,
            grow_tiles: true,
        }
    }
}

/// The SQLite store: every store trait, over one database file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    // INVARIANT: `Some` until drop; dropping it stops the writer after it drains.
    // `None` from the start in a read-only store (appends fail with `Closed`).
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    // Stops by itself once the writer (which holds its sender) is gone.
    indexer: Option<JoinHandle<()>>,
    // Stops by itself once the indexer and writer (which hold its signal senders) are
    // gone.
    checkpointer: Option<JoinHandle<()>>,
    /// What the writer acknowledged and the indexer wrote (`None` if read-only).
    shared: Option<Arc<Shared>>,
    /// Entries indexed from the segment when the store opened.
    recovered: u64,
    /// Read-only: the database position (generation) at which a catch-up wait last
    /// timed out; while the database stays there, reads do not wait again.
    stuck_at: Mutex<Option<u64>>,
    readers: Mutex<Vec<Connection>>,
    /// Whether `readers` are read-only connections (see [`SqliteStore::open_read_only`]).
    read_only: bool,
    /// Records every decision reads (see `read_cache.rs` for the invariant); off in a
    /// read-only store, whose data another process may be writing.
    cache: ReadCache,
    /// The data directory's lock, held while the store lives (`None` if read-only).
    /// A field, so it is released only after `drop` has stopped the writer.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database for writing and starts the writer
    /// thread. Takes the data directory's exclusive lock first (see
    /// `connection::lock_data_dir`): `StoreError::InUse` if another store, in this
    /// process or another, has the database open for writing.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = config.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let lock = connection::lock_data_dir(&config.path)?;
        let mut conn = connection::open_connection(&config.path)?;
        schema::migrate(&mut conn)?;
        let seg_path = segment::segment_path(&config.path);
        let seg_bytes = config.segment_bytes as u64;
        let (generation, pos, recovered) =
            indexer::recover(&mut conn, &seg_path, config.grow_tiles)?;
        // A crashed process may have left indexed frames in the OS's cache only: sync
        // them now, so that "the database holds frame `generation`" is true on disk before the
        // segment space is reused.
        sync_database_files(&config.path)?;
        let segment = segment::SegmentWriter::open(&seg_path, seg_bytes, generation, pos)?;
        let shared = Arc::new(Shared::new(generation));
        // INVARIANT: the indexer's commits need no fsync: the segment holds their frames
        // until the checkpointer has synced the database past them.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (tx, rx) = mpsc::channel();
        let (index_tx, index_rx) = mpsc::channel();
        let checkpoint_conn = connection::open_connection(&config.path)?;
        let (signal_tx, signal_rx) = mpsc::channel();
        let restart_wanted = Arc::new(AtomicBool::new(false));
        let checkpointer = {
            let wanted = Arc::clone(&restart_wanted);
            let shared = Arc::clone(&shared);
            let wal = wal_path(&config.path);
            std::thread::Builder::new()
                .name("tollgate-wal-checkpointer".into())
                .spawn(move || {
                    checkpointer::run_checkpointer(
                        &checkpoint_conn,
                        &signal_rx,
                        &wanted,
                        &shared,
                        &wal,
                    );
                })?
        };
        let indexer = {
            let shared = Arc::clone(&shared);
            let signal = signal_tx.clone();
            let every = config.wal_checkpoint_bytes.max(1);
            let delay = config.index_delay;
            std::thread::Builder::new()
                .name("tollgate-ledger-indexer".into())
                .spawn(move || {
                    indexer::run_indexer(
                        conn,
                        &index_rx,
                        &shared,
                        &signal,
                        &restart_wanted,
                        every,
                        delay,
                    );
                })?
        };
        let path = config.path.clone();
        let reader = connection::open_reader(&config.path)?;
        let writer = Writer::new(
            reader,
            segment,
            config,
            index_tx,
            Arc::clone(&shared),
            signal_tx,
        );
        let handle = std::thread::Builder::new()
            .name("tollgate-ledger-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(SqliteStore {
            path,
            jobs: Some(tx),
            writer: Some(handle),
            indexer: Some(indexer),
            checkpointer: Some(checkpointer),
            shared: Some(shared),
            recovered,
            stuck_at: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            read_only: false,
            cache: ReadCache::default(),
            _lock: Some(lock),
        })
    }

    /// Opens an existing database read-only, beside the process that writes it (a
    /// running server): no lock, no migration, no writer. Every read works; appends
    /// and checkpoints fail with `StoreError::Closed` and other writes with a database
    /// error. The schema must be this build's (`StoreError::Corrupt` otherwise). Only
    /// `path` of the config is used.
    pub fn open_read_only(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        let conn = connection::open_read_only(&config.path)?;
        schema::check_current(&conn)?;
        Ok(SqliteStore {
            path: config.path,
            jobs: None,
            writer: None,
            indexer: None,
            checkpointer: None,
            shared: None,
            recovered: 0,
            stuck_at: Mutex::new(None),
            readers: Mutex::new(vec![conn]),
            read_only: true,
            cache: ReadCache::disabled(),
            _lock: None,
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
            None if self.read_only => connection::open_read_only(&self.path)?,
            None => connection::open_reader(&self.path)?,
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

    /// [`SqliteStore::with_conn`] for a ledger read: first waits until the indexer has
    /// written everything acknowledged so far, so a reader sees every entry whose
    /// append returned before the read began.
    fn with_ledger_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(shared) = &self.shared {
            shared.wait_indexed()?;
        } else if self.read_only {
            self.catch_up_read_only()?;
        }
        self.with_conn(f)
    }

    /// A read-only store beside a live writer: waits (a little) until the writer's
    /// indexer has written the frames its segment held when this read began, so the
    /// read sees every append acknowledged before it. Frames that stay unindexed (a
    /// writer that crashed; the next writable open indexes them) are not waited for
    /// past `READ_ONLY_CATCH_UP`.
    fn catch_up_read_only(&self) -> Result<(), StoreError> {
        let seg = segment::segment_path(&self.path);
        let (generation, pos) = self.with_conn(indexer::position)?;
        let stuck = || self.stuck_at.lock().unwrap_or_else(PoisonError::into_inner);
        if *stuck() == Some(generation) {
            return Ok(());
        }
        let Some(&(target, _, _)) = segment::scan(&seg, generation, pos)?.last() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + READ_ONLY_CATCH_UP;
        while std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
            if self.with_conn(indexer::position)?.0 >= target {
                return Ok(());
            }
        }
        *stuck() = Some(generation);
        Ok(())
    }

    /// How many entries the last open indexed from the segment (acknowledged before a
    /// crash, not yet in the database). For tests.
    #[doc(hidden)]
    pub fn recovered_entries(&self) -> u64 {
        self.recovered
    }

    /// Runs raw SQL on a fresh connection (for tests and tools that must tamper with
    /// or inspect the database directly).
    /// It first waits until the indexer has written everything acknowledged.
    pub fn raw_connection(&self) -> Result<Connection, StoreError> {
        if let Some(shared) = &self.shared {
            shared.wait_indexed()?;
        }
        connection::open_connection(&self.path)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        if let Some(h) = self.indexer.take() {
            let _ = h.join();
        }
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
    }
}

/// What the writer has acknowledged and the indexer has written, by segment frame
/// generation, and what the database holds durably.
#[derive(Debug)]
struct Shared {
    /// The newest frame whose appends were (or are being) acknowledged.
    acked: AtomicU64,
    /// The newest frame the indexer has committed.
    indexed: AtomicU64,
    lock: Mutex<()>,
    cond: Condvar,
    /// The newest frame the database holds on disk.
    durable: segment::Durable,
}

/// How long a read-only store's ledger read waits for a live writer's indexer.
const READ_ONLY_CATCH_UP: Duration = Duration::from_secs(2);

/// How long a ledger read waits for the indexer before it fails.
const INDEX_WAIT: Duration = Duration::from_secs(30);

impl Shared {
    fn new(generation: u64) -> Shared {
        Shared {
            acked: AtomicU64::new(generation),
            indexed: AtomicU64::new(generation),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            durable: segment::Durable::new(generation),
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Called before the acks of frame `generation` are sent.
    fn acknowledged(&self, generation: u64) {
        self.acked.fetch_max(generation, Ordering::AcqRel);
    }

    fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }

    fn indexed_to(&self, generation: u64) {
        let _g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.indexed.fetch_max(generation, Ordering::AcqRel);
        self.cond.notify_all();
    }

    fn wait_indexed(&self) -> Result<(), StoreError> {
        let target = self.acked();
        if self.indexed() >= target {
            return Ok(());
        }
        let g = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _g = self
            .cond
            .wait_timeout_while(g, INDEX_WAIT, |_| self.indexed() < target)
            .unwrap_or_else(PoisonError::into_inner);
        if self.indexed() >= target {
            Ok(())
        } else {
            Err(StoreError::Backend(
                "the ledger index is behind the acknowledged entries".into(),
            ))
        }
    }
}

/// The WAL of the database at `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-wal");
    db.with_file_name(name)
}

/// `fsync`s the database file and its WAL (if there is one).
fn sync_database_files(db: &Path) -> Result<(), StoreError> {
    for p in [db.to_path_buf(), wal_path(db)] {
        match File::open(&p) {
            Ok(f) => f.sync_all()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{v} is too large")))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}
