//! The `LedgerStore` impl of PostgreSQL: submits go to the committer
//! (`committer.rs`), the sequencer (`sequencer.rs`) integrates them; reads use the
//! pool. Verification, proofs and checkpoint listing are the shared code of
//! `tollgate_store::ledger_read`, over this file's `LedgerRead` impl, whose row and
//! hash reads stream through a portal in one snapshot.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tollgate_ledger::{
    Entry, EntryDraft, EntryKind, Hash, NoteVerifier, PreparedDraft, SignedCheckpoint, Verified,
    VerifyFailure,
};
use tollgate_store::ledger_read::{self, LedgerRead};
use tollgate_store::{
    Ack, Appended, LedgerHead, LedgerStore, StoreError, StoredRow, ack_channel, check_tenant,
};

use crate::committer::Submit;
use crate::records::{Param, params, refs, to_i64, to_u64};
use crate::sequencer::{sign_checkpoint, state_from_row};
use crate::{PgStore, db};

/// Rows one fetch of a streamed read takes.
const STREAM_CHUNK: i32 = 1024;

/// Fetched chunks a streamed read lets wait for its caller, at most.
const STREAM_AHEAD: usize = 2;

fn read_row(r: &tokio_postgres::Row) -> Result<StoredRow, StoreError> {
    Ok(StoredRow {
        seq: r.try_get(0).map_err(db)?,
        kind: r.try_get(1).map_err(db)?,
        time: r.try_get(2).map_err(db)?,
        canonical: r.try_get(3).map_err(db)?,
        entry_hash: r.try_get(4).map_err(db)?,
    })
}

/// What the fetching task of a streamed read sends its caller.
enum Streamed<T> {
    Rows(Vec<T>),
    Done,
    Failed(StoreError),
}

/// Closes the credits of a streamed read when its caller stops, so the fetching task
/// (waiting for a credit) ends and its transaction rolls back.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl PgStore {
    /// Calls `visit` with every row of `sql`, mapped by `map`, in order, read in one
    /// read-only repeatable-read snapshot through a portal, [`STREAM_CHUNK`] rows a
    /// fetch: at most `STREAM_AHEAD + 2` chunks are in memory however many rows there
    /// are. Stops at the first error of the read or of `visit` and returns it.
    fn stream<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        map: fn(&tokio_postgres::Row) -> Result<T, StoreError>,
        visit: &mut dyn FnMut(T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(rt) = &self.runtime else {
            return Err(StoreError::Closed);
        };
        let (tx, rx) = std::sync::mpsc::channel::<Streamed<T>>();
        let credits = Arc::new(Semaphore::new(STREAM_AHEAD));
        let _close = CloseOnDrop(Arc::clone(&credits));
        let pool = self.pool.clone();
        let task_credits = Arc::clone(&credits);
        rt.spawn(async move {
            let fetched = async {
                let mut c = pool.get().await.map_err(db)?;
                let t = c
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(db)?;
                let st = t.prepare_cached(sql).await.map_err(db)?;
                let portal = t.bind(&st, &refs(&params)).await.map_err(db)?;
                loop {
                    let rows = t.query_portal(&portal, STREAM_CHUNK).await.map_err(db)?;
                    if rows.is_empty() {
                        break;
                    }
                    let chunk = rows.iter().map(map).collect::<Result<Vec<T>, _>>()?;
                    // No credit: the caller stopped (the semaphore is closed).
                    let Ok(credit) = task_credits.acquire().await else {
                        return Ok(());
                    };
                    credit.forget();
                    if tx.send(Streamed::Rows(chunk)).is_err() {
                        return Ok(());
                    }
                }
                t.commit().await.map_err(db)?;
                let _ = tx.send(Streamed::Done);
                Ok::<(), StoreError>(())
            }
            .await;
            if let Err(e) = fetched {
                let _ = tx.send(Streamed::Failed(e));
            }
        });
        loop {
            // A task that ends without `Done` (its runtime shut down) is a failed read,
            // never the end of the rows.
            match rx.recv().map_err(|_| StoreError::Closed)? {
                Streamed::Rows(chunk) => {
                    credits.add_permits(1);
                    for item in chunk {
                        visit(item)?;
                    }
                }
                Streamed::Done => return Ok(()),
                Streamed::Failed(e) => return Err(e),
            }
        }
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
        rows.first().map(StoredRow::to_entry).transpose()
    }

    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let rows = self.rows(
            "SELECT seq, kind, time, canonical, entry_hash FROM ledger
             WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            params![tenant.to_owned(), to_i64(from)?, to_i64(to)?],
            read_row,
        )?;
        rows.iter().map(StoredRow::to_entry).collect()
    }

    fn scan(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read_rows(tenant, visit)
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
        ledger_read::checkpoints(self, tenant)
    }

    fn inclusion_proof(&self, tenant: &str, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        ledger_read::inclusion_proof(self, tenant, seq, size)
    }

    fn consistency_proof(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
        ledger_read::consistency_proof(self, tenant, from, to)
    }

    fn verify(
        &self,
        tenant: &str,
        keys: &[NoteVerifier],
    ) -> Result<Result<Verified, VerifyFailure>, StoreError> {
        ledger_read::verify(self, tenant, keys)
    }

    fn tiled_size(&self, tenant: &str) -> Result<u64, StoreError> {
        self.read_tiled_size(tenant)
    }

    fn tile(&self, tenant: &str, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_tile(tenant, level, index)
    }
}

impl LedgerRead for PgStore {
    fn read_head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        self.head(tenant)
    }

    fn checkpoint_rows(&self, tenant: &str) -> Result<Vec<(i64, String)>, StoreError> {
        self.rows(
            "SELECT size, note FROM checkpoints WHERE tenant = $1 ORDER BY size, id",
            params![tenant.to_owned()],
            |r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)),
        )
    }

    fn read_rows(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.stream(
            "SELECT seq, kind, time, canonical, entry_hash FROM ledger
             WHERE tenant = $1 AND seq >= 0 ORDER BY seq",
            params![tenant.to_owned()],
            read_row,
            visit,
        )
    }

    fn read_tiled_size(&self, tenant: &str) -> Result<u64, StoreError> {
        let sizes = self.rows(
            "SELECT size FROM ledger_tile_heads WHERE tenant = $1",
            params![tenant.to_owned()],
            |r| r.try_get::<_, i64>(0).map_err(db),
        )?;
        to_u64(sizes.first().copied().unwrap_or(0))
    }

    fn read_tile(
        &self,
        tenant: &str,
        level: u8,
        index: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let data = self.rows(
            "SELECT data FROM ledger_tiles WHERE tenant = $1 AND level = $2 AND idx = $3",
            params![tenant.to_owned(), i16::from(level), to_i64(index)?],
            |r| r.try_get::<_, Vec<u8>>(0).map_err(db),
        )?;
        Ok(data.into_iter().next())
    }

    fn read_entry_hashes(
        &self,
        tenant: &str,
        size: u64,
        visit: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.stream(
            "SELECT entry_hash FROM ledger WHERE tenant = $1 AND seq >= 0 AND seq < $2 ORDER BY seq",
            params![tenant.to_owned(), to_i64(size)?],
            |r| r.try_get::<_, Vec<u8>>(0).map_err(db),
            &mut |hash: Vec<u8>| visit(&hash),
        )
    }
}
