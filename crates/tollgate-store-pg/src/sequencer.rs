//! The sequencer: one node, elected by a session-level advisory lock, integrates the
//! pending rows into each tenant's chain in batches (gapless `seq`, linked
//! `prev_hash`, Merkle heads), and signs automatic checkpoints.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::NoTls;
use tollgate_ledger::merkle::CompactRange;
use tollgate_ledger::{
    Checkpoint, EntryDraft, EntryKind, Hash, NoteSigner, PreparedDraft, SignedCheckpoint,
};
use tollgate_store::StoreError;

use crate::db;
use crate::records::{to_i64, to_u64};

/// The advisory lock key that elects the sequencer ("tollgate" + 2).
pub(crate) const SEQUENCER_LOCK: i64 = 0x746f_6c6c_6761_7402;

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
pub(crate) struct TenantState {
    pub(crate) size: u64,
    pub(crate) last_hash: Hash,
    pub(crate) range: CompactRange,
}

impl TenantState {
    pub(crate) fn empty() -> TenantState {
        TenantState {
            size: 0,
            last_hash: Hash::ZERO,
            range: CompactRange::new(),
        }
    }
}

/// A head from `(tenant, size, last_hash, peaks)` columns.
pub(crate) fn state_from_row(r: &tokio_postgres::Row) -> Result<TenantState, StoreError> {
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
pub(crate) async fn sign_checkpoint(
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
    // The tiles cover the tree this checkpoint signs, in the same transaction.
    crate::tiles::grow(tx, tenant, st.size).await?;
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
