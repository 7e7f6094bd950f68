//! The indexer thread: writes the frames the writer made durable in the segment into
//! the database (rows, decision ids, checkpoints with their tiles, heads, and how far
//! the database has got in the segment), each run of frames in one transaction with
//! `synchronous=NORMAL`: no fsync of its own, the segment already holds the data. It
//! also runs the WAL RESTART the checkpointer asks for, so that no appender ever waits
//! for one. And `recover`, at open: the same writes for the frames the database lacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tollgate_ledger::{EntryHeader, Hash};

use super::segment::{self, Record};
use super::writer::{IndexBatch, IndexOp, TenantState, load_state};
use super::{Shared, to_i64, to_u64};
use crate::StoreError;

/// Frames the indexer writes in one transaction at most.
const MAX_FRAMES_PER_COMMIT: usize = 4096;

/// The indexer commits at most this often: the frames of the interval share one
/// transaction, so a B-tree page many of their rows touch (the decision-id index takes
/// ids from many appenders at once) is written to the WAL once, not once a frame.
/// Ledger reads wait for at most about this long (plus the commit).
const INDEX_INTERVAL: Duration = Duration::from_millis(5);

/// Writes `batches` (in generation order) in `tx`.
fn apply(tx: &Connection, batches: &[IndexBatch]) -> Result<(), StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO ledger (tenant, seq, kind, time, canonical, entry_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut index = tx.prepare_cached(
        "INSERT OR IGNORE INTO decision_index (tenant, decision_id, seq) VALUES (?1, ?2, ?3)",
    )?;
    let mut head = tx.prepare_cached(
        "INSERT INTO ledger_heads (tenant, size, last_hash, peaks, tiled_size) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, last_hash = excluded.last_hash, peaks = excluded.peaks, tiled_size = excluded.tiled_size",
    )?;
    for batch in batches {
        for op in &batch.ops {
            match op {
                IndexOp::Entry {
                    tenant,
                    seq,
                    kind,
                    time,
                    canonical,
                    entry_hash,
                    decision_id,
                } => {
                    let seq = to_i64(*seq)?;
                    if let Some(id) = decision_id {
                        index.execute(params![tenant, id, seq])?;
                    }
                    insert.execute(params![
                        tenant,
                        seq,
                        kind,
                        time,
                        canonical,
                        entry_hash.0.as_slice()
                    ])?;
                }
                IndexOp::Checkpoint {
                    tenant,
                    size,
                    issued,
                    note,
                    grow,
                } => {
                    if let Some((from, to)) = grow {
                        super::tiles::grow(tx, tenant, *from, *to)?;
                    }
                    tx.execute(
                        "INSERT INTO checkpoints (tenant, size, issued, note) VALUES (?1, ?2, ?3, ?4)",
                        params![tenant, to_i64(*size)?, issued, note],
                    )?;
                }
            }
        }
        for (tenant, st) in &batch.heads {
            let peaks: Vec<u8> = st.range.peaks().iter().flat_map(|h| h.0).collect();
            head.execute(params![
                tenant,
                to_i64(st.size)?,
                st.last_hash.0.as_slice(),
                peaks,
                to_i64(st.tiled)?
            ])?;
        }
    }
    if let Some(last) = batches.last() {
        set_position(tx, last.generation, last.end)?;
    }
    Ok(())
}

/// The last segment frame the database holds: (generation, where it ends).
pub(super) fn position(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let row: Option<(i64, i64)> = conn
        .query_row(
            "SELECT generation, next_pos FROM ledger_segment WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((g, p)) => Ok((to_u64(g)?, to_u64(p)?)),
        None => Ok((0, 0)),
    }
}

fn set_position(tx: &Connection, generation: u64, end: u64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO ledger_segment (id, generation, next_pos) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, next_pos = excluded.next_pos",
    )?
    .execute(params![to_i64(generation)?, to_i64(end)?])?;
    Ok(())
}

/// Runs the indexer until the writer is gone and every frame it sent is written.
pub(super) fn run_indexer(
    mut conn: Connection,
    rx: &mpsc::Receiver<IndexBatch>,
    shared: &Shared,
    signal: &mpsc::Sender<()>,
    restart_wanted: &AtomicBool,
    checkpoint_every: usize,
    delay: Option<Duration>,
) {
    let mut bytes_since_signal = 0usize;
    let mut last_commit = std::time::Instant::now();
    loop {
        let Ok(first) = rx.recv() else { return };
        // Gather the interval's frames (not when the writer has closed: drain).
        let wait = INDEX_INTERVAL.saturating_sub(last_commit.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut batches = vec![first];
        while batches.len() < MAX_FRAMES_PER_COMMIT {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        // A failed transaction is retried until it succeeds: the frames are durable in
        // the segment and acknowledged, so the database must get them. Meanwhile
        // readers wait for them and, once the segment is full, new appends fail.
        let mut backoff = Duration::from_millis(10);
        loop {
            let written = (|| -> Result<(), StoreError> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                apply(&tx, &batches)?;
                tx.commit()?;
                Ok(())
            })();
            if written.is_ok() {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        last_commit = std::time::Instant::now();
        if let Some(last) = batches.last() {
            shared.indexed_to(last.generation);
        }
        bytes_since_signal += batches.iter().map(|b| b.bytes).sum::<usize>();
        if bytes_since_signal >= checkpoint_every {
            bytes_since_signal = 0;
            // A send fails only if the checkpointer thread is gone; then the WAL
            // grows until the store is closed, which checkpoints it.
            let _ = signal.send(());
        }
        if restart_wanted.swap(false, Ordering::Relaxed) {
            // Busy (a reader on an old snapshot): the checkpointer asks again. Readers
            // may wait for this (they see what is indexed); appenders do not.
            let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
        }
    }
}

/// At open, before the writer starts: indexes the frames of the segment that the
/// database does not hold (a crash between a frame's sync and its index commit),
/// checking every entry's hash and its place in its chain. Returns the last frame's
/// generation and end, and how many entries were indexed.
pub(super) fn recover(
    conn: &mut Connection,
    segment_path: &std::path::Path,
    grow_tiles: bool,
) -> Result<(u64, u64, u64), StoreError> {
    let (generation, pos) = position(conn)?;
    let frames = segment::scan(segment_path, generation, pos)?;
    let Some(&(last_gen, last_end, _)) = frames.last() else {
        return Ok((generation, pos, 0));
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut states: HashMap<String, TenantState> = HashMap::new();
    let mut batches = Vec::new();
    let mut entries = 0u64;
    for (g, end, records) in frames {
        let bad = |what: String| StoreError::Corrupt(format!("ledger segment frame {g}: {what}"));
        let mut ops = Vec::new();
        let mut dirty = Vec::new();
        for rec in records {
            let tenant = match &rec {
                Record::Entry { tenant, .. } | Record::Checkpoint { tenant, .. } => tenant.clone(),
            };
            if !states.contains_key(&tenant) {
                let st = load_state(&tx, &tenant)?;
                states.insert(tenant.clone(), st);
            }
            let Some(st) = states.get_mut(&tenant) else {
                return Err(bad(format!("no head for `{tenant}`")));
            };
            if !dirty.contains(&tenant) {
                dirty.push(tenant.clone());
            }
            match rec {
                Record::Entry {
                    tenant,
                    decision_id,
                    entry_hash,
                    canonical,
                } => {
                    if Hash::digest(&canonical) != entry_hash {
                        return Err(bad(format!(
                            "an entry of `{tenant}` does not match its hash"
                        )));
                    }
                    let h = EntryHeader::from_canonical(&canonical)?;
                    if h.tenant != tenant || h.seq != st.size || h.prev_hash != st.last_hash {
                        return Err(bad(format!(
                            "entry `{}` seq {} does not continue the chain of `{tenant}` at {}",
                            h.tenant, h.seq, st.size
                        )));
                    }
                    ops.push(IndexOp::Entry {
                        tenant,
                        seq: h.seq,
                        kind: h.kind.as_str(),
                        time: h.time,
                        canonical,
                        entry_hash,
                        decision_id,
                    });
                    st.size += 1;
                    st.last_hash = entry_hash;
                    st.range.push_entry_hash(&entry_hash);
                    entries += 1;
                }
                Record::Checkpoint {
                    tenant,
                    size,
                    issued,
                    note,
                } => {
                    if size != st.size {
                        return Err(bad(format!(
                            "a checkpoint of `{tenant}` at {size} where the chain is at {}",
                            st.size
                        )));
                    }
                    let grow = grow_tiles.then_some((st.tiled, size));
                    if grow_tiles {
                        st.tiled = size;
                    }
                    ops.push(IndexOp::Checkpoint {
                        tenant,
                        size,
                        issued,
                        note,
                        grow,
                    });
                }
            }
        }
        let heads = dirty
            .into_iter()
            .filter_map(|t| states.get(&t).map(|st| (t, st.clone())))
            .collect();
        batches.push(IndexBatch {
            generation: g,
            end,
            ops,
            heads,
            bytes: 0,
        });
    }
    apply(&tx, &batches)?;
    // This connection is still `synchronous=FULL`: the commit is durable.
    tx.commit()?;
    Ok((last_gen, last_end, entries))
}
