//! Connections: the writer's and readers' setup (WAL, `synchronous=FULL`, no
//! automatic checkpoints, the busy handler), read-only connections, and the data
//! directory's write lock.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::READER_CACHE_KIB;
use crate::StoreError;

pub(super) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
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
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
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

/// A read-only connection, for a store opened beside the process that writes the
/// database: it never writes, so it needs no lock (the WAL and its index already exist
/// while the writer runs, or are created on first open).
pub(super) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_handler(Some(busy_wait))?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(conn)
}

/// The lock file of the database at `db`: `<db file name>.lock` beside it, in the data
/// directory.
fn lock_path(db: &Path) -> (PathBuf, PathBuf) {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock = dir.join(name);
    (dir, lock)
}

/// Takes the exclusive OS lock (`flock`) on the data directory's lock file, or fails
/// with `StoreError::InUse` naming the directory.
///
/// INVARIANT: one process (one open store) writes a data directory: the writer's
/// cached chain heads and the read cache (`read_cache.rs`) both assume nobody else
/// writes the database. The lock is held as long as the returned file is open, and the
/// OS releases it when the process dies, so a crash never leaves a stale lock.
pub(super) fn lock_data_dir(db: &Path) -> Result<File, StoreError> {
    let (dir, lock) = lock_path(db);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse { dir, lock }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}
