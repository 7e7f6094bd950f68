//! The committer task: every node commits submitted drafts as *pending* rows,
//! everything waiting in one transaction (group commit), and acknowledges them once
//! that transaction is durable.

use deadpool_postgres::Pool;
use tollgate_ledger::EntryKind;
use tollgate_store::{AckSender, Appended, StoreError};

use crate::db;

/// Most submits one commit of pending rows takes.
const MAX_COMMIT: usize = 4096;

/// A draft on its way to a pending row.
#[derive(Debug)]
pub(crate) struct Submit {
    pub(crate) tenant: String,
    pub(crate) time: String,
    pub(crate) kind: EntryKind,
    /// The body as JSON (the sequencer canonicalises it again; `serde_json` round-trips
    /// its own output exactly).
    pub(crate) body: Vec<u8>,
    pub(crate) decision_id: Option<String>,
    pub(crate) ack: AckSender<Appended>,
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
