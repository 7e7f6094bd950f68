//! The embedded SQLite backend.
//!
//! One writer thread owns the only write connection and is the ledger's sequencer:
//! appenders hand it prepared drafts over a channel; it takes everything waiting
//! (up to [`MAX_BATCH`]), assigns each tenant's next sequence numbers and chain
//! hashes, inserts the whole batch in one transaction, commits (one WAL fsync with
//! `synchronous=FULL`), and only then acknowledges each appender. Readers use their
//! own connections and see committed data only.
//!
//! The files: `connection.rs` (connection setup, the busy handler, the data-directory
//! lock), `schema.rs` (migrations), `writer.rs` (the writer thread: group commit and
//! sequencing), `checkpointer.rs` (the WAL checkpointer thread), `ledger.rs` (the
//! `LedgerStore` and `LedgerRead` impls), `records.rs` and `policies.rs` (the record
//! stores).

mod checkpointer;
mod connection;
mod ledger;
mod notify;
mod policies;
mod records;
mod schema;
mod tiles;
mod trace;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

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
    /// Entry bytes appended between two WAL checkpoints (default 32 MiB).
    pub wal_checkpoint_bytes: usize,
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
    // Stops by itself once the writer (which holds its signal sender) is gone.
    checkpointer: Option<JoinHandle<()>>,
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
        let (tx, rx) = mpsc::channel();
        let checkpoint_conn = connection::open_connection(&config.path)?;
        let (signal_tx, signal_rx) = mpsc::channel();
        let restart_wanted = Arc::new(AtomicBool::new(false));
        let wanted = Arc::clone(&restart_wanted);
        let checkpointer = std::thread::Builder::new()
            .name("tollgate-wal-checkpointer".into())
            .spawn(move || checkpointer::run_checkpointer(&checkpoint_conn, &signal_rx, &wanted))?;
        let path = config.path.clone();
        let writer = Writer::new(conn, config, signal_tx, restart_wanted);
        let handle = std::thread::Builder::new()
            .name("tollgate-ledger-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(SqliteStore {
            path,
            jobs: Some(tx),
            writer: Some(handle),
            checkpointer: Some(checkpointer),
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
            checkpointer: None,
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

    /// Runs raw SQL on a fresh connection (for tests and tools that must tamper with
    /// or inspect the database directly).
    pub fn raw_connection(&self) -> Result<Connection, StoreError> {
        connection::open_connection(&self.path)
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
        if !self.read_only {
            trace::dump();
        }
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{v} is too large")))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}
