//! The writer thread: the ledger's only sequencer. It takes every job waiting
//! (appends and checkpoints, up to [`MAX_BATCH`] or a frame's worth of bytes), seals
//! each entry in order, writes the batch as one frame of the segment and syncs it
//! (`segment.rs`), and only then acknowledges each job and hands the batch to the
//! indexer (`indexer.rs`), which writes it into the database.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _, params};
use tollgate_ledger::merkle::CompactRange;
use tollgate_ledger::{Checkpoint, Hash, NoteSigner, PreparedDraft, SignedCheckpoint};

use super::segment::{self, SegmentWriter};
use super::{MAX_BATCH, Shared, SqliteConfig, to_u64};
use crate::ack::{self, AckSender};
use crate::{Appended, LedgerHead, StoreError};

/// How long a batch waits for the database to catch up before it may overwrite the
/// segment's oldest frames; past this its appends fail (the index is stuck).
const RING_PATIENCE: Duration = Duration::from_secs(10);

/// A job for the writer.
pub(super) enum Job {
    Append {
        tenant: String,
        time: String,
        prepared: PreparedDraft,
        /// For a decision entry: its `decision_id` (unique per tenant, indexed).
        decision_id: Option<String>,
        /// About how many bytes the entry takes in a segment frame.
        approx_bytes: usize,
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

/// One row the indexer writes.
#[derive(Debug)]
pub(super) enum IndexOp {
    Entry {
        tenant: String,
        seq: u64,
        kind: &'static str,
        time: String,
        canonical: Vec<u8>,
        entry_hash: Hash,
        decision_id: Option<String>,
    },
    Checkpoint {
        tenant: String,
        size: u64,
        issued: String,
        note: String,
        /// Tiles to grow in the same transaction: from covering `.0` leaves to `.1`.
        grow: Option<(u64, u64)>,
    },
}

/// One segment frame, as the database will hold it: its rows in order and the heads
/// of its tenants after it.
#[derive(Debug)]
pub(super) struct IndexBatch {
    /// The frame's generation and where it ends in the segment.
    pub(super) generation: u64,
    pub(super) end: u64,
    pub(super) ops: Vec<IndexOp>,
    pub(super) heads: Vec<(String, TenantState)>,
    /// Canonical bytes in the batch (for the checkpointer's pacing).
    pub(super) bytes: usize,
}

pub(super) struct Writer {
    /// A read connection: chain heads of tenants not cached yet, and decision ids.
    conn: Connection,
    segment: SegmentWriter,
    log_name: String,
    signer: Option<NoteSigner>,
    /// Chain heads as sequenced (ahead of the database by what the indexer has not
    /// written yet). INVARIANT: once cached, a tenant's head is never reloaded from the
    /// database, which may lag behind it.
    states: HashMap<String, TenantState>,
    index: mpsc::Sender<IndexBatch>,
    shared: Arc<Shared>,
    /// Asks the checkpointer to sync the database (when the segment is full).
    nudge: mpsc::Sender<()>,
    auto_checkpoint: Option<std::time::Duration>,
    grow_tiles: bool,
    /// Tenants with entries appended since their last automatic checkpoint.
    uncheckpointed: std::collections::BTreeSet<String>,
    /// Decision ids sequenced but perhaps not in the database yet, by tenant and id,
    /// with their frame's generation; dropped once the indexer has committed it.
    recent_ids: HashMap<(String, String), u64>,
    recent_order: VecDeque<(u64, Vec<(String, String)>)>,
    /// A job taken from the queue that did not fit in the last frame.
    carry: Option<Job>,
    payload: Vec<u8>,
}

enum Outcome {
    Appended(Result<Appended, StoreError>),
    Checkpoint(Result<SignedCheckpoint, StoreError>),
}

fn job_bytes(job: &Job) -> usize {
    match job {
        Job::Append { approx_bytes, .. } => *approx_bytes,
        Job::Checkpoint { .. } => 1024,
    }
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        segment: SegmentWriter,
        config: SqliteConfig,
        index: mpsc::Sender<IndexBatch>,
        shared: Arc<Shared>,
        nudge: mpsc::Sender<()>,
    ) -> Writer {
        Writer {
            conn,
            segment,
            log_name: config.log_name,
            signer: config.signer,
            states: HashMap::new(),
            index,
            shared,
            nudge,
            auto_checkpoint: config.auto_checkpoint,
            grow_tiles: config.grow_tiles,
            uncheckpointed: std::collections::BTreeSet::new(),
            recent_ids: HashMap::new(),
            recent_order: VecDeque::new(),
            carry: None,
            payload: Vec::new(),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut last_auto = std::time::Instant::now();
        let budget = self.segment.max_payload() / 2;
        loop {
            let first = if let Some(job) = self.carry.take() {
                Some(job)
            } else {
                match self.auto_checkpoint {
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
                }
            };
            let mut batch: Vec<Job> = Vec::new();
            let mut bytes = 0;
            if let Some(job) = first {
                if job_bytes(&job) > self.segment.max_payload() / 2 {
                    fail(
                        job,
                        StoreError::OutOfRange("the entry is larger than a ledger batch".into()),
                    );
                } else {
                    bytes += job_bytes(&job);
                    batch.push(job);
                }
            }
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
                        bytes += 1024;
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
                    Ok(job) if job_bytes(&job) > self.segment.max_payload() / 2 => fail(
                        job,
                        StoreError::OutOfRange("the entry is larger than a ledger batch".into()),
                    ),
                    Ok(job) if bytes + job_bytes(&job) > budget => {
                        self.carry = Some(job);
                        break;
                    }
                    Ok(job) => {
                        bytes += job_bytes(&job);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            match self.write_batch(&batch) {
                Ok((outcomes, generation)) => {
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
                    // Readers wait for the indexer to reach what was acknowledged.
                    self.shared.acknowledged(generation);
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        match (job, outcome) {
                            (Job::Append { ack, .. }, Outcome::Appended(a)) => ack.send(a),
                            (Job::Checkpoint { ack, .. }, Outcome::Checkpoint(c)) => ack.send(c),
                            // Outcomes are pushed in job order with the job's own variant.
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    // Nothing of the batch was acknowledged, and no cached head moved.
                    let msg = e.to_string();
                    for job in batch {
                        fail(job, StoreError::BatchFailed(msg.clone()));
                    }
                }
            }
        }
    }

    /// Which of `ids` (tenant, decision id) are already in the ledger: sequenced
    /// recently, or in the database.
    fn known_ids(&mut self, ids: &[(&str, &str)]) -> Result<HashSet<(String, String)>, StoreError> {
        // Forget the ids the database has by now; it is read after this, so an id is
        // always in one place or the other.
        let indexed = self.shared.indexed();
        while self
            .recent_order
            .front()
            .is_some_and(|(g, _)| *g <= indexed)
        {
            if let Some((_, keys)) = self.recent_order.pop_front() {
                for k in keys {
                    self.recent_ids.remove(&k);
                }
            }
        }
        let mut known = HashSet::new();
        let mut ask = Vec::new();
        for &(t, id) in ids {
            let key = (t.to_owned(), id.to_owned());
            if self.recent_ids.contains_key(&key) {
                known.insert(key);
            } else {
                ask.push(key);
            }
        }
        if !ask.is_empty() {
            self.conn.execute_batch("BEGIN")?;
            let looked = (|| -> Result<(), StoreError> {
                let mut st = self.conn.prepare_cached(
                    "SELECT 1 FROM decision_index WHERE tenant = ?1 AND decision_id = ?2",
                )?;
                for key in ask {
                    if st.exists(params![key.0, key.1])? {
                        known.insert(key);
                    }
                }
                Ok(())
            })();
            self.conn.execute_batch("COMMIT")?;
            looked?;
        }
        Ok(known)
    }

    fn write_batch(&mut self, batch: &[Job]) -> Result<(Vec<Outcome>, u64), StoreError> {
        let ids: Vec<(&str, &str)> = batch
            .iter()
            .filter_map(|j| match j {
                Job::Append {
                    tenant,
                    decision_id: Some(id),
                    ..
                } => Some((tenant.as_str(), id.as_str())),
                _ => None,
            })
            .collect();
        let mut known = if ids.is_empty() {
            HashSet::new()
        } else {
            self.known_ids(&ids)?
        };
        let mut fresh_ids: Vec<(String, String)> = Vec::new();
        let mut dirty: HashMap<&str, TenantState> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut ops = Vec::with_capacity(batch.len());
        let mut records = 0u32;
        let mut bytes = 0;
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        for job in batch {
            let tenant = match job {
                Job::Append { tenant, .. } | Job::Checkpoint { tenant, .. } => tenant.as_str(),
            };
            let st = match dirty.entry(tenant) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let loaded = match self.states.get(tenant) {
                        Some(s) => s.clone(),
                        // Not cached: nothing of this tenant was sequenced since the
                        // store opened (and recovered), so the database has its head.
                        None => load_state(&self.conn, tenant)?,
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
                    if let Some(id) = decision_id {
                        // Decision ids are unique per tenant. A duplicate fails only
                        // its own append (before it takes a seq), not the unrelated
                        // appends that share its batch.
                        let key = (tenant.clone(), id.clone());
                        if known.contains(&key) {
                            outcomes.push(Outcome::Appended(Err(StoreError::DuplicateDecision(
                                id.clone(),
                            ))));
                            continue;
                        }
                        known.insert(key.clone());
                        fresh_ids.push(key);
                    }
                    // INVARIANT: the writer is the only sequencer, and `st` is the
                    // sequenced head plus this batch's earlier appends, so seq is
                    // gapless and prev_hash links to the last entry.
                    let seq = st.size;
                    let prev_hash = st.last_hash;
                    let (canonical, entry_hash) = prepared.seal(seq, prev_hash)?;
                    bytes += canonical.len();
                    segment::encode_entry(
                        &mut payload,
                        tenant,
                        decision_id.as_deref(),
                        &entry_hash,
                        &canonical,
                    )?;
                    records += 1;
                    ops.push(IndexOp::Entry {
                        tenant: tenant.clone(),
                        seq,
                        kind: prepared.kind().as_str(),
                        time: time.clone(),
                        canonical,
                        entry_hash,
                        decision_id: decision_id.clone(),
                    });
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
                    // The tiles cover the tree this checkpoint signs, in the same
                    // transaction of the indexer: a stored checkpoint always has its
                    // tiles.
                    let grow = self.grow_tiles.then_some((st.tiled, st.size));
                    if self.grow_tiles {
                        st.tiled = st.size;
                    }
                    let cp = Checkpoint {
                        origin: format!("{}/{}", self.log_name, tenant),
                        size: st.size,
                        root: st.range.root(),
                        extensions: vec![format!("time {time}")],
                    }
                    .sign(signer)?;
                    let note = cp.to_text()?;
                    segment::encode_checkpoint(&mut payload, tenant, st.size, time, &note)?;
                    records += 1;
                    ops.push(IndexOp::Checkpoint {
                        tenant: tenant.clone(),
                        size: st.size,
                        issued: time.clone(),
                        note,
                        grow,
                    });
                    outcomes.push(Outcome::Checkpoint(Ok(cp)));
                }
            }
        }
        if ops.is_empty() {
            // Only failures (duplicates, no signer): nothing to write.
            self.payload = payload;
            return Ok((outcomes, self.shared.acked()));
        }
        let nudge = self.nudge.clone();
        let written = self.segment.append(
            &payload,
            records,
            &self.shared.durable,
            &move || {
                let _ = nudge.send(());
            },
            RING_PATIENCE,
        );
        self.payload = payload;
        let (generation, end) = written?;
        // Durable from here on: adopt the heads, remember the ids.
        let heads: Vec<(String, TenantState)> = dirty
            .into_iter()
            .map(|(t, st)| (t.to_owned(), st))
            .collect();
        for (t, st) in &heads {
            self.states.insert(t.clone(), st.clone());
        }
        for key in &fresh_ids {
            self.recent_ids.insert(key.clone(), generation);
        }
        if !fresh_ids.is_empty() {
            self.recent_order.push_back((generation, fresh_ids));
        }
        // A send fails only if the indexer is gone (the store is closing); the frame is
        // durable and the next open indexes it.
        let _ = self.index.send(IndexBatch {
            generation,
            end,
            ops,
            heads,
            bytes,
        });
        Ok((outcomes, generation))
    }
}

fn fail(job: Job, e: StoreError) {
    match job {
        Job::Append { ack, .. } => ack.send(Err(e)),
        Job::Checkpoint { ack, .. } => ack.send(Err(e)),
    }
}
