//! The checkpointer thread: syncs the database's WAL (which lets the writer reuse
//! segment space) and copies committed WAL frames into the database file, beside the
//! indexer, so that neither the writer nor the indexer does it after their commits.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::Shared;

/// WAL frames (4 KiB pages) beyond which the WAL is restarted from its beginning, so
/// it stays bounded (about 64 MiB) even under sustained load. Under load a PASSIVE
/// checkpoint never catches up with the writer exactly, and SQLite restarts the WAL
/// only when every frame has been copied; so the indexer restarts it (below).
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Frames the checkpointer leaves for the indexer's RESTART to copy, at most (while it
/// keeps up): the indexer's stall is that copy and one fsync of the database.
const RESTART_LEFT_FRAMES: i64 = 256;

/// Default bytes of entries the indexer writes between two checkpoint signals. Small,
/// so that each WAL sync and checkpoint is a short burst of I/O: the segment's
/// `fdatasync` waits behind whatever the disk is writing (at 8 MiB, the bursts of 20–50
/// ms were the slowest appends; measured with the ledger bench's latency table).
pub(super) const CHECKPOINT_EVERY_BYTES: usize = 1 << 20;

/// How often the checkpointer syncs the database when no signal comes (so that what
/// the indexer wrote, and the record stores' unsynced writes, reach the disk within
/// about this long even without load).
const IDLE_SYNC: Duration = Duration::from_secs(1);

/// Makes the database durable and copies committed WAL frames into the database file,
/// on its own connection and thread, when the indexer signals that another MiB of entries
/// was indexed (or the writer finds the segment full, or a second passes).
///
/// First it `fdatasync`s the WAL: every frame the indexer had committed before is then
/// on disk, so the segment frames up to the generation read before the sync may be
/// overwritten (`Durable`). Then a PASSIVE checkpoint, which never blocks the indexer.
/// When the WAL has grown past `WAL_RESTART_FRAMES`, it asks the indexer to restart
/// it: the indexer runs a RESTART checkpoint between two commits, which has only the
/// frames appended since this checkpoint left to copy. Appenders never wait for any of
/// this: they wait only for the segment.
pub(super) fn run_checkpointer(
    conn: &Connection,
    signal: &mpsc::Receiver<()>,
    restart_wanted: &AtomicBool,
    shared: &Shared,
    wal: &Path,
) {
    let mut wal_file: Option<File> = None;
    loop {
        let stopping = matches!(
            signal.recv_timeout(IDLE_SYNC),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        while signal.try_recv().is_ok() {}
        let indexed = shared.indexed();
        if indexed > shared.durable.get() {
            if wal_file.is_none() {
                wal_file = File::open(wal).ok();
            }
            // No WAL file means the database file itself holds everything (the last
            // connection checkpointed and removed the WAL): nothing to sync here.
            let synced = match &wal_file {
                Some(f) => f.sync_data().is_ok(),
                None => false,
            };
            if synced {
                shared.durable.advance(indexed);
            }
        }
        let passive = || -> rusqlite::Result<(i64, i64)> {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
        };
        if let Ok((frames, _)) = passive()
            && frames > WAL_RESTART_FRAMES
        {
            // Catch up with the indexer first, so that its RESTART has little left to
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
