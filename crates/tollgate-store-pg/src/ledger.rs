//! The cluster ledger: nodes commit *pending* rows (group commit); one elected
//! sequencer integrates them into each tenant's chain in batches.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;
use tollgate_ledger::merkle::{self, CompactRange};
use tollgate_ledger::{
    Checkpoint, Entry, EntryDraft, EntryKind, Hash, NoteSigner, NoteVerifier, PreparedDraft,
    Problem, SignedCheckpoint, Verified, Verifier, VerifyFailure,
};
use tollgate_store::{
    Ack, AckSender, Appended, LedgerHead, LedgerStore, StoreError, StoredRow, ack_channel,
    check_tenant,
};

use crate::records::{Param, params, to_i64, to_u64};
use crate::{PgStore, db};

/// The advisory lock key that elects the sequencer ("tollgate" + 2).
pub(crate) const SEQUENCER_LOCK: i64 = 0x746f_6c6c_6761_7402;

/// Most submits one commit of pending rows takes.
const MAX_COMMIT: usize = 4096;

/// A draft on its way to a pending row.
#[derive(Debug)]
pub(crate) struct Submit {
    tenant: String,
    time: String,
    kind: EntryKind,
    /// The body as JSON (the sequencer canonicalises it again; `serde_json` round-trips
    /// its own output exactly).
    body: Vec<u8>,
    decision_id: Option<String>,
    ack: AckSender<Appended>,
}

/// Commits submits as pending rows: everything waiting (up to [`MAX_COMMIT`]) in one
/// transaction, then acknowledges. One committer per node keeps this node's entries
/// in submit order.
pub(crate) async fn run_committer(
    pool: Pool,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Submit>,
) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, MAX_COMMIT).await > 0 {
        match commit_pending(&pool, &batch).await {
            Ok(fresh) => {
                for (s, fresh) in batch.drain(..).zip(fresh) {
                    let result = if fresh {
                        Ok(Appended {
                            tenant: s.tenant,
                            seq: None,
                            entry_hash: None,
                            prev_hash: None,
                        })
                    } else {
                        Err(StoreError::DuplicateDecision(
                            s.decision_id.unwrap_or_default(),
                        ))
                    };
                    s.ack.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "committing pending ledger rows failed");
                let msg = e.to_string();
                for s in batch.drain(..) {
                    s.ack.send(Err(StoreError::BatchFailed(msg.clone())));
                }
            }
        }
    }
}

/// One transaction: claims the decision ids (a duplicate fails only its own submit)
/// and inserts the pending rows. Returns, per submit, whether it was committed.
async fn commit_pending(pool: &Pool, batch: &[Submit]) -> Result<Vec<bool>, StoreError> {
    let mut client = pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    let (id_tenants, ids): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .filter_map(|s| s.decision_id.as_deref().map(|id| (s.tenant.as_str(), id)))
        .unzip();
    let mut claimed: std::collections::HashSet<(String, String)> = Default::default();
    if !ids.is_empty() {
        let rows = tx
            .query(
                "INSERT INTO decision_index (tenant, decision_id)
                 SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING RETURNING tenant, decision_id",
                &[&id_tenants, &ids],
            )
            .await
            .map_err(db)?;
        for r in rows {
            claimed.insert((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?));
        }
    }
    let mut fresh = Vec::with_capacity(batch.len());
    let (mut tenants, mut kinds, mut times, mut bodies, mut dids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in batch {
        let ok = match &s.decision_id {
            // The first submit of an id in this batch takes the claim; later ones
            // (and ids claimed before this batch) are duplicates.
            Some(id) => claimed.remove(&(s.tenant.clone(), id.clone())),
            None => true,
        };
        fresh.push(ok);
        if ok {
            tenants.push(s.tenant.as_str());
            kinds.push(s.kind.as_str());
            times.push(s.time.as_str());
            bodies.push(s.body.as_slice());
            dids.push(s.decision_id.as_deref());
        }
    }
    if !tenants.is_empty() {
        tx.execute(
            "INSERT INTO pending (tenant, kind, time, body, decision_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[])",
            &[&tenants, &kinds, &times, &bodies, &dids],
        )
        .await
        .map_err(db)?;
    }
    // With synchronous_commit on (the default), COMMIT returns once the WAL is flushed.
    tx.commit().await.map_err(db)?;
    Ok(fresh)
}

/// Counters of this node's sequencer.
#[derive(Debug, Default)]
pub(crate) struct SequencerShared {
    leader: AtomicBool,
    batches: AtomicU64,
    entries: AtomicU64,
}

/// Whether this node is the sequencer, and what it integrated so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencerStatus {
    /// This node holds the sequencer lock now.
    pub leader: bool,
    /// Batches it integrated.
    pub batches: u64,
    /// Entries it integrated.
    pub entries: u64,
}

impl SequencerShared {
    pub(crate) fn status(&self) -> SequencerStatus {
        SequencerStatus {
            leader: self.leader.load(Ordering::SeqCst),
            batches: self.batches.load(Ordering::SeqCst),
            entries: self.entries.load(Ordering::SeqCst),
        }
    }
}

/// A sequencer candidate.
#[derive(Debug)]
pub(crate) struct Sequencer {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) log_name: String,
    pub(crate) signer: Option<Arc<NoteSigner>>,
    pub(crate) auto_checkpoint: Option<Duration>,
    pub(crate) batch: usize,
    pub(crate) election_interval: Duration,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) shared: Arc<SequencerShared>,
}

/// Campaigns for the sequencer lock on a dedicated session and, once elected,
/// integrates pending rows until the session fails or the store closes. The lock is a
/// session-level advisory lock: when the holder's session dies (process killed,
/// connection lost), PostgreSQL releases it and another candidate takes over.
pub(crate) async fn run_sequencer(s: Sequencer) {
    while !s.stop.load(Ordering::SeqCst) {
        let mut client = match s.pg.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "sequencer session ended");
                    }
                });
                client
            }
            Err(e) => {
                tracing::warn!(error = %e, "sequencer cannot connect");
                tokio::time::sleep(s.election_interval).await;
                continue;
            }
        };
        let elected = loop {
            if s.stop.load(Ordering::SeqCst) {
                return;
            }
            match client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SEQUENCER_LOCK])
                .await
                .and_then(|r| r.try_get::<_, bool>(0))
            {
                Ok(true) => break true,
                Ok(false) => tokio::time::sleep(s.election_interval).await,
                Err(e) => {
                    tracing::warn!(error = %e, "sequencer election failed");
                    break false;
                }
            }
        };
        if !elected {
            tokio::time::sleep(s.election_interval).await;
            continue;
        }
        tracing::info!("this node is the ledger sequencer");
        s.shared.leader.store(true, Ordering::SeqCst);
        s.lead(&mut client).await;
        s.shared.leader.store(false, Ordering::SeqCst);
        // Dropping the client ends the session, which releases the lock.
    }
}

impl Sequencer {
    async fn lead(&self, client: &mut tokio_postgres::Client) {
        let mut uncheckpointed: BTreeSet<String> = BTreeSet::new();
        let mut last_auto = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            match self.integrate(client, &mut uncheckpointed).await {
                Ok(0) => tokio::time::sleep(Duration::from_millis(2)).await,
                Ok(n) => {
                    self.shared.batches.fetch_add(1, Ordering::SeqCst);
                    self.shared.entries.fetch_add(n, Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::error!(error = %e, "sequencer batch failed; retrying");
                    if client.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if let (Some(every), Some(signer)) = (self.auto_checkpoint, &self.signer)
                && last_auto.elapsed() >= every
                && !uncheckpointed.is_empty()
            {
                last_auto = Instant::now();
                let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
                for tenant in std::mem::take(&mut uncheckpointed) {
                    let result = async {
                        let tx = client.transaction().await.map_err(db)?;
                        let cp =
                            sign_checkpoint(&tx, &self.log_name, signer, &tenant, &time).await?;
                        tx.commit().await.map_err(db)?;
                        Ok::<_, StoreError>(cp)
                    }
                    .await;
                    if let Err(e) = result {
                        tracing::warn!(tenant, error = %e, "automatic checkpoint failed");
                        uncheckpointed.insert(tenant);
                    }
                }
            }
        }
    }

    /// One batch in one transaction: the oldest pending rows get gapless sequence
    /// numbers, chain and Merkle state per tenant; the entries, the decision index,
    /// the heads and the removal of the pending rows commit together.
    async fn integrate(
        &self,
        client: &mut tokio_postgres::Client,
        uncheckpointed: &mut BTreeSet<String>,
    ) -> Result<u64, StoreError> {
        let tx = client.transaction().await.map_err(db)?;
        let limit = i64::try_from(self.batch).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                "SELECT id, tenant, kind, time, body, decision_id, committed_at
                 FROM pending ORDER BY id LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tenants: Vec<String> = Vec::new();
        for r in &rows {
            let t: String = r.try_get(1).map_err(db)?;
            if !tenants.contains(&t) {
                tenants.push(t);
            }
        }
        // FOR UPDATE: even a second sequencer (which the lock rules out) could not
        // interleave with this one on a tenant's head.
        let heads = tx
            .query(
                "SELECT tenant, size, last_hash, peaks FROM ledger_heads
                 WHERE tenant = ANY($1) FOR UPDATE",
                &[&tenants],
            )
            .await
            .map_err(db)?;
        let mut states: HashMap<String, TenantState> = HashMap::new();
        for h in &heads {
            let tenant: String = h.try_get(0).map_err(db)?;
            let st = state_from_row(h)?;
            states.insert(tenant, st);
        }
        let n = rows.len();
        let mut ids: Vec<i64> = Vec::with_capacity(n);
        let (mut l_tenant, mut l_seq, mut l_kind, mut l_time, mut l_bytes, mut l_hash, mut l_at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::<SystemTime>::with_capacity(n),
        );
        let (mut d_tenant, mut d_id, mut d_seq) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let id: i64 = r.try_get(0).map_err(db)?;
            let tenant: String = r.try_get(1).map_err(db)?;
            let kind: String = r.try_get(2).map_err(db)?;
            let time: String = r.try_get(3).map_err(db)?;
            let body: Vec<u8> = r.try_get(4).map_err(db)?;
            let decision_id: Option<String> = r.try_get(5).map_err(db)?;
            let committed_at: SystemTime = r.try_get(6).map_err(db)?;
            let kind: EntryKind = kind.parse()?;
            let body: serde_json::Value = serde_json::from_slice(&body)?;
            let prepared = PreparedDraft::new(&EntryDraft {
                tenant: tenant.clone(),
                time: time.clone(),
                kind,
                body,
            })?;
            let st = states
                .entry(tenant.clone())
                .or_insert_with(TenantState::empty);
            // INVARIANT: one sequencer, and `st` is the committed head plus this
            // batch's earlier entries: seq is gapless and prev_hash links.
            let seq = st.size;
            let (bytes, entry_hash) = prepared.seal(seq, st.last_hash)?;
            st.size += 1;
            st.last_hash = entry_hash;
            st.range.push_entry_hash(&entry_hash);
            ids.push(id);
            if let Some(did) = decision_id {
                d_tenant.push(tenant.clone());
                d_id.push(did);
                d_seq.push(to_i64(seq)?);
            }
            l_tenant.push(tenant);
            l_seq.push(to_i64(seq)?);
            l_kind.push(kind.as_str());
            l_time.push(time);
            l_bytes.push(bytes);
            l_hash.push(entry_hash.0.to_vec());
            l_at.push(committed_at);
        }
        tx.execute(
            "INSERT INTO ledger (tenant, seq, kind, time, canonical, entry_hash, committed_at)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::timestamptz[])",
            &[&l_tenant, &l_seq, &l_kind, &l_time, &l_bytes, &l_hash, &l_at],
        )
        .await
        .map_err(db)?;
        if !d_id.is_empty() {
            tx.execute(
                "UPDATE decision_index d SET seq = u.seq
                 FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(tenant, decision_id, seq)
                 WHERE d.tenant = u.tenant AND d.decision_id = u.decision_id",
                &[&d_tenant, &d_id, &d_seq],
            )
            .await
            .map_err(db)?;
        }
        let deleted = tx
            .execute("DELETE FROM pending WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(db)?;
        if deleted != ids.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{} of {} pending rows were gone when integrated (two sequencers?)",
                ids.len() as u64 - deleted,
                ids.len()
            )));
        }
        let (mut h_tenant, mut h_size, mut h_last, mut h_peaks) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (tenant, st) in &states {
            if !tenants.contains(tenant) {
                continue;
            }
            h_tenant.push(tenant.as_str());
            h_size.push(to_i64(st.size)?);
            h_last.push(st.last_hash.0.to_vec());
            h_peaks.push(
                st.range
                    .peaks()
                    .iter()
                    .flat_map(|h| h.0)
                    .collect::<Vec<u8>>(),
            );
        }
        tx.execute(
            "INSERT INTO ledger_heads (tenant, size, last_hash, peaks)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::bytea[])
             ON CONFLICT (tenant) DO UPDATE SET size = excluded.size, last_hash = excluded.last_hash, peaks = excluded.peaks",
            &[&h_tenant, &h_size, &h_last, &h_peaks],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        uncheckpointed.extend(tenants);
        Ok(n as u64)
    }
}

#[derive(Clone, Debug)]
struct TenantState {
    size: u64,
    last_hash: Hash,
    range: CompactRange,
}

impl TenantState {
    fn empty() -> TenantState {
        TenantState {
            size: 0,
            last_hash: Hash::ZERO,
            range: CompactRange::new(),
        }
    }
}

/// A head from `(tenant, size, last_hash, peaks)` columns.
fn state_from_row(r: &tokio_postgres::Row) -> Result<TenantState, StoreError> {
    let size = to_u64(r.try_get(1).map_err(db)?)?;
    let last: Vec<u8> = r.try_get(2).map_err(db)?;
    let peaks: Vec<u8> = r.try_get(3).map_err(db)?;
    let last_hash =
        Hash::from_slice(&last).ok_or_else(|| StoreError::Corrupt("head hash".into()))?;
    let peaks: Vec<Hash> = peaks.chunks(32).filter_map(Hash::from_slice).collect();
    let range = CompactRange::from_parts(size, peaks)
        .ok_or_else(|| StoreError::Corrupt("a head's peaks do not match its size".into()))?;
    Ok(TenantState {
        size,
        last_hash,
        range,
    })
}

/// Signs the tenant's committed head (read under a share lock, so it is exactly what
/// the sequencer committed) and stores the checkpoint, in `tx`.
async fn sign_checkpoint(
    tx: &tokio_postgres::Transaction<'_>,
    log_name: &str,
    signer: &NoteSigner,
    tenant: &str,
    time: &str,
) -> Result<SignedCheckpoint, StoreError> {
    let head = tx
        .query_opt(
            "SELECT tenant, size, last_hash, peaks FROM ledger_heads WHERE tenant = $1 FOR SHARE",
            &[&tenant],
        )
        .await
        .map_err(db)?;
    let st = match head {
        Some(r) => state_from_row(&r)?,
        None => TenantState::empty(),
    };
    let cp = Checkpoint {
        origin: format!("{log_name}/{tenant}"),
        size: st.size,
        root: st.range.root(),
        extensions: vec![format!("time {time}")],
    }
    .sign(signer)?;
    tx.execute(
        "INSERT INTO checkpoints (tenant, size, issued, note) VALUES ($1, $2, $3, $4)",
        &[&tenant, &to_i64(st.size)?, &time, &cp.to_text()?],
    )
    .await
    .map_err(db)?;
    Ok(cp)
}

fn row_to_entry(row: &StoredRow) -> Result<Entry, StoreError> {
    let hash = Hash::from_slice(&row.entry_hash)
        .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?;
    Ok(Entry::from_canonical(&row.canonical, hash)?)
}

fn read_row(r: &tokio_postgres::Row) -> Result<StoredRow, StoreError> {
    Ok(StoredRow {
        seq: r.try_get(0).map_err(db)?,
        kind: r.try_get(1).map_err(db)?,
        time: r.try_get(2).map_err(db)?,
        canonical: r.try_get(3).map_err(db)?,
        entry_hash: r.try_get(4).map_err(db)?,
    })
}

impl PgStore {
    /// The roots of `ranges` (see `merkle::inclusion_ranges`) over the tenant's first
    /// `size` entries. (The hashes are fetched as one result set, 32 bytes an entry;
    /// the SQLite store streams them.)
    fn range_roots(
        &self,
        tenant: &str,
        size: u64,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Vec<Hash>, StoreError> {
        let hashes = self.rows(
            "SELECT entry_hash FROM ledger WHERE tenant = $1 AND seq >= 0 AND seq < $2 ORDER BY seq",
            params![tenant.to_owned(), to_i64(size)?],
            |r| {
                let b: Vec<u8> = r.try_get(0).map_err(db)?;
                Hash::from_slice(&b).ok_or_else(|| StoreError::Corrupt("entry hash length".into()))
            },
        )?;
        if hashes.len() as u64 != size {
            return Err(StoreError::short_ledger(tenant, size));
        }
        let mut roots = merkle::RangeRoots::new(ranges);
        for hash in &hashes {
            roots.push_entry_hash(hash);
        }
        roots
            .finish()
            .ok_or_else(|| StoreError::short_ledger(tenant, size))
    }

    fn checkpoint_rows(&self, tenant: &str) -> Result<Vec<(i64, String)>, StoreError> {
        self.rows(
            "SELECT size, note FROM checkpoints WHERE tenant = $1 ORDER BY size, id",
            params![tenant.to_owned()],
            |r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)),
        )
    }

    /// Every stored row of the tenant in seq order, read in one snapshot.
    fn stored_rows(&self, tenant: &str) -> Result<Vec<StoredRow>, StoreError> {
        let pool = self.pool.clone();
        let tenant = tenant.to_owned();
        self.run(async move {
            let mut c = pool.get().await.map_err(db)?;
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db)?;
            let rows = tx
                .query(
                    "SELECT seq, kind, time, canonical, entry_hash FROM ledger
                     WHERE tenant = $1 AND seq >= 0 ORDER BY seq",
                    &[&tenant],
                )
                .await
                .map_err(db)?;
            let out = rows.iter().map(read_row).collect::<Result<Vec<_>, _>>()?;
            tx.commit().await.map_err(db)?;
            Ok(out)
        })
    }
}

impl LedgerStore for PgStore {
    fn submit(&self, draft: EntryDraft) -> Ack<Appended> {
        if let Err(e) = check_tenant(&draft.tenant) {
            return Ack::ready(Err(e));
        }
        // Fail here, not in the sequencer, on a draft that cannot be canonicalised.
        if let Err(e) = PreparedDraft::new(&draft) {
            return Ack::ready(Err(e.into()));
        }
        let body = match serde_json::to_vec(&draft.body) {
            Ok(b) => b,
            Err(e) => return Ack::ready(Err(e.into())),
        };
        let decision_id = match draft.kind {
            EntryKind::Decision => draft
                .body
                .get("decision_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        let (tx, rx) = ack_channel();
        if let Some(commits) = &self.commits {
            // A failed send drops the sender, which resolves the ack with `Closed`.
            let _ = commits.send(Submit {
                tenant: draft.tenant,
                time: draft.time,
                kind: draft.kind,
                body,
                decision_id,
                ack: tx,
            });
        }
        rx
    }

    fn ledger_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT tenant FROM ledger_heads WHERE size > 0 ORDER BY tenant COLLATE \"C\"",
            params![],
            |r| r.try_get(0).map_err(db),
        )
    }

    fn head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        let heads = self.rows(
            "SELECT tenant, size, last_hash, peaks FROM ledger_heads WHERE tenant = $1",
            params![tenant.to_owned()],
            state_from_row,
        )?;
        Ok(heads
            .into_iter()
            .next()
            .filter(|st| st.size > 0)
            .map(|st| LedgerHead {
                size: st.size,
                last_hash: st.last_hash,
                root: st.range.root(),
            }))
    }

    fn decision_seq(&self, tenant: &str, decision_id: &str) -> Result<Option<u64>, StoreError> {
        let seqs = self.rows(
            "SELECT seq FROM decision_index WHERE tenant = $1 AND decision_id = $2 AND seq IS NOT NULL",
            params![tenant.to_owned(), decision_id.to_owned()],
            |r| to_u64(r.try_get(0).map_err(db)?),
        )?;
        Ok(seqs.into_iter().next())
    }

    fn pending_entries(&self) -> Result<u64, StoreError> {
        let n = self.rows("SELECT count(*) FROM pending", params![], |r| {
            to_u64(r.try_get(0).map_err(db)?)
        })?;
        Ok(n.into_iter().next().unwrap_or(0))
    }

    fn is_sequencer(&self) -> bool {
        self.sequencer.status().leader
    }

    fn decision_pending(&self, tenant: &str, decision_id: &str) -> Result<bool, StoreError> {
        let n = self.rows(
            "SELECT 1 FROM decision_index WHERE tenant = $1 AND decision_id = $2 AND seq IS NULL",
            params![tenant.to_owned(), decision_id.to_owned()],
            |_| Ok(()),
        )?;
        Ok(!n.is_empty())
    }

    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Entry>, StoreError> {
        let rows = self.rows(
            "SELECT seq, kind, time, canonical, entry_hash FROM ledger WHERE tenant = $1 AND seq = $2",
            params![tenant.to_owned(), to_i64(seq)?],
            read_row,
        )?;
        rows.first().map(row_to_entry).transpose()
    }

    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let rows = self.rows(
            "SELECT seq, kind, time, canonical, entry_hash FROM ledger
             WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            params![tenant.to_owned(), to_i64(from)?, to_i64(to)?],
            read_row,
        )?;
        rows.iter().map(row_to_entry).collect()
    }

    fn scan(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for row in self.stored_rows(tenant)? {
            visit(row)?;
        }
        Ok(())
    }

    fn issue_checkpoint(&self, tenant: &str, time: &str) -> Ack<SignedCheckpoint> {
        if let Err(e) = check_tenant(tenant) {
            return Ack::ready(Err(e));
        }
        let Some(signer) = self.signer.clone() else {
            return Ack::ready(Err(StoreError::NoSigner));
        };
        let Some(rt) = &self.runtime else {
            return Ack::ready(Err(StoreError::Closed));
        };
        let (ack_tx, ack) = ack_channel();
        let pool = self.pool.clone();
        let (log_name, tenant, time) = (self.log_name.clone(), tenant.to_owned(), time.to_owned());
        rt.spawn(async move {
            let result = async {
                let mut c = pool.get().await.map_err(db)?;
                let tx = c.transaction().await.map_err(db)?;
                let cp = sign_checkpoint(&tx, &log_name, &signer, &tenant, &time).await?;
                tx.commit().await.map_err(db)?;
                Ok(cp)
            }
            .await;
            ack_tx.send(result);
        });
        ack
    }

    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<SignedCheckpoint>, StoreError> {
        let notes = self.rows(
            "SELECT note FROM checkpoints WHERE tenant = $1 ORDER BY size DESC, id DESC LIMIT 1",
            params![tenant.to_owned()],
            |r| r.try_get::<_, String>(0).map_err(db),
        )?;
        Ok(notes
            .first()
            .map(|n| SignedCheckpoint::parse(n))
            .transpose()?)
    }

    fn checkpoints(&self, tenant: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        self.checkpoint_rows(tenant)?
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
        for (size, note) in self.checkpoint_rows(tenant)? {
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
        for row in self.stored_rows(tenant)? {
            let Some(hash) = Hash::from_slice(&row.entry_hash) else {
                failure = Some(v.malformed("the stored entry_hash is not 32 bytes"));
                break;
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
                        break;
                    }
                }
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
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
