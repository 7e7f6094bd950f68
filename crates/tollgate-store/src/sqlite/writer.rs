//! The writer thread: the only write connection to the ledger and its only
//! sequencer. It takes every job waiting (appends and checkpoints, up to
//! [`MAX_BATCH`]), writes them in one transaction, commits, and only then
//! acknowledges each job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use tollgate_ledger::merkle::CompactRange;
use tollgate_ledger::{Checkpoint, Hash, NoteSigner, PreparedDraft, SignedCheckpoint};

use super::{MAX_BATCH, SqliteConfig, to_i64, to_u64};
use crate::ack::{self, AckSender};
use crate::{Appended, LedgerHead, StoreError};

/// A job for the writer.
pub(super) enum Job {
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

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Append { tenant, .. } => write!(f, "Append({tenant})"),
            Job::Checkpoint { tenant, .. } => write!(f, "Checkpoint({tenant})"),
        }
    }
}

/// A tenant's chain head as the writer keeps it.
#[derive(Clone, Debug)]
pub(super) struct TenantState {
    pub(super) size: u64,
    pub(super) last_hash: Hash,
    pub(super) range: CompactRange,
    /// How many leaves the stored tiles cover (grown to `size` at each checkpoint).
    pub(super) tiled: u64,
}

pub(super) fn load_state(conn: &Connection, tenant: &str) -> Result<TenantState, StoreError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>, i64)> = conn
        .query_row(
            "SELECT size, last_hash, peaks, tiled_size FROM ledger_heads WHERE tenant = ?1",
            [tenant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((size, last, peaks, tiled)) = row else {
        return Ok(TenantState {
            size: 0,
            last_hash: Hash::ZERO,
            range: CompactRange::new(),
            tiled: 0,
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
        tiled: to_u64(tiled)?,
    })
}

pub(super) fn head_from_state(st: &TenantState) -> LedgerHead {
    LedgerHead {
        size: st.size,
        last_hash: st.last_hash,
        root: st.range.root(),
    }
}

pub(super) struct Writer {
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
    grow_tiles: bool,
    /// Tenants with entries appended since their last automatic checkpoint.
    uncheckpointed: std::collections::BTreeSet<String>,
}

enum Outcome {
    Appended(Result<Appended, StoreError>),
    Checkpoint(Result<SignedCheckpoint, StoreError>),
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        config: SqliteConfig,
        checkpoint_signal: mpsc::Sender<()>,
        restart_wanted: Arc<AtomicBool>,
    ) -> Writer {
        Writer {
            conn,
            log_name: config.log_name,
            signer: config.signer,
            states: HashMap::new(),
            checkpoint_signal,
            restart_wanted,
            bytes_since_signal: 0,
            checkpoint_every: config.wal_checkpoint_bytes.max(1),
            auto_checkpoint: config.auto_checkpoint,
            grow_tiles: config.grow_tiles,
            uncheckpointed: std::collections::BTreeSet::new(),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
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
            let t_batch = super::trace::now();
            let n_batch = batch.len() as i64;
            let res = self.write_batch(&batch);
            match res {
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
                    super::trace::event("acked", t_batch, n_batch, 0);
                    // After the acks: nobody waits on this batch while the WAL restarts.
                    if self.restart_wanted.swap(false, Ordering::Relaxed) {
                        let t_r = super::trace::now();
                        // Busy (a reader on an old snapshot): the checkpointer asks again.
                        let _ = self
                            .conn
                            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                                r.get::<_, i64>(0)
                            });
                        super::trace::event("restart", t_r, 0, 0);
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
                        // The tiles cover the tree this checkpoint signs, in the
                        // same transaction: a served checkpoint always has its tiles.
                        if self.grow_tiles {
                            super::tiles::grow(&tx, tenant, st.tiled, st.size)?;
                            st.tiled = st.size;
                        }
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
                "INSERT INTO ledger_heads (tenant, size, last_hash, peaks, tiled_size) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, last_hash = excluded.last_hash, peaks = excluded.peaks, tiled_size = excluded.tiled_size",
            )?;
            for (tenant, st) in &dirty {
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
        let t_c = super::trace::now();
        tx.commit()?;
        super::trace::event("commit", t_c, batch.len() as i64, 0);
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
