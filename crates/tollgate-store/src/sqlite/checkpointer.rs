//! The WAL checkpointer thread: copies committed WAL frames into the database file
//! beside the writer, so the writer never does it after its own commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;

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
pub(super) const CHECKPOINT_EVERY_BYTES: usize = 8 << 20;

/// Copies committed WAL frames into the database when the writer signals that
/// another 8 MiB were appended, on its own connection and thread, so the writer
/// does not do it after its own commits (that was a third of its time). A PASSIVE
/// checkpoint never blocks the writer. When the WAL has grown past
/// `WAL_RESTART_FRAMES`, it asks the writer to restart it: the writer runs a RESTART
/// checkpoint between two batches, which has only the frames appended since this
/// checkpoint left to copy. (A RESTART run here instead blocked the writer for the
/// whole copy, through the busy handler: 100 ms stalls every few seconds.) Durability
/// does not depend on checkpoints: a commit is durable once its WAL frames are fsynced.
pub(super) fn run_checkpointer(
    conn: &Connection,
    signal: &mpsc::Receiver<()>,
    restart_wanted: &AtomicBool,
) {
    loop {
        let stopping = signal.recv().is_err();
        while signal.try_recv().is_ok() {}
        let passive = || -> rusqlite::Result<(i64, i64)> {
            let t = super::trace::now();
            let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            });
            if let Ok((f, c)) = &r {
                super::trace::event("passive", t, *f, *c);
            }
            r
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
