//! The `LedgerStore` impl of SQLite: appends and checkpoints go to the writer thread;
//! reads use pooled connections. Verification, proofs and checkpoint listing are the
//! shared code of `crate::ledger_read`, over this file's `LedgerRead` impl.

use rusqlite::{OptionalExtension as _, params};
use tollgate_ledger::{
    CanonicalDraft, Entry, EntryDraft, Hash, NoteVerifier, PreparedDraft, SignedCheckpoint,
    Verified, VerifyFailure,
};

use super::writer::{Job, head_from_state, load_state};
use super::{SqliteStore, to_i64};
use crate::ack::{self, Ack};
use crate::ledger_read::{self, LedgerRead};
use crate::{Appended, LedgerHead, LedgerStore, StoreError, StoredRow, check_tenant};

/// Reads a ledger row without trusting its column types: text read as bytes (lossily
/// decoded), so that a tampered row is reported by the verifier rather than failing
/// the read.
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    let bytes = |i: usize| -> rusqlite::Result<Vec<u8>> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.to_vec(),
            rusqlite::types::ValueRef::Integer(n) => n.to_string().into_bytes(),
            rusqlite::types::ValueRef::Real(f) => f.to_string().into_bytes(),
            rusqlite::types::ValueRef::Null => Vec::new(),
        })
    };
    let text = |i: usize| -> rusqlite::Result<String> {
        Ok(String::from_utf8_lossy(&bytes(i)?).into_owned())
    };
    Ok(StoredRow {
        seq: r.get::<_, i64>(0)?,
        kind: text(1)?,
        time: text(2)?,
        canonical: bytes(3)?,
        entry_hash: bytes(4)?,
    })
}

const ROW_COLUMNS: &str = "seq, kind, time, canonical, entry_hash";

impl LedgerStore for SqliteStore {
    fn submit(&self, draft: EntryDraft) -> Ack<Appended> {
        if let Err(e) = check_tenant(&draft.tenant) {
            return Ack::ready(Err(e));
        }
        // Canonicalising the body is the costly part; it runs on the caller's thread.
        let prepared = match PreparedDraft::new(&draft) {
            Ok(p) => p,
            Err(e) => return Ack::ready(Err(e.into())),
        };
        let decision_id = match draft.kind {
            tollgate_ledger::EntryKind::Decision => draft
                .body
                .get("decision_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        self.send_append(draft.tenant, draft.time, prepared, decision_id)
    }

    fn submit_canonical(&self, draft: CanonicalDraft) -> Ack<Appended> {
        if let Err(e) = check_tenant(&draft.tenant) {
            return Ack::ready(Err(e));
        }
        let tenant = draft.tenant.clone();
        let time = draft.time.clone();
        let decision_id = match draft.kind {
            tollgate_ledger::EntryKind::Decision => draft.decision_id.clone(),
            _ => None,
        };
        match PreparedDraft::from_canonical(draft) {
            Ok(prepared) => self.send_append(tenant, time, prepared, decision_id),
            Err(e) => Ack::ready(Err(e.into())),
        }
    }

    fn ledger_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.with_ledger_conn(|c| {
            let mut st =
                c.prepare_cached("SELECT tenant FROM ledger_heads WHERE size > 0 ORDER BY tenant")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        self.with_ledger_conn(|c| {
            let st = load_state(c, tenant)?;
            Ok((st.size > 0).then(|| head_from_state(&st)))
        })
    }

    fn decision_seq(&self, tenant: &str, decision_id: &str) -> Result<Option<u64>, StoreError> {
        self.with_ledger_conn(|c| {
            let seq: Option<i64> = c
                .query_row(
                    "SELECT seq FROM decision_index WHERE tenant = ?1 AND decision_id = ?2",
                    params![tenant, decision_id],
                    |r| r.get(0),
                )
                .optional()?;
            seq.map(|s| u64::try_from(s).map_err(|_| StoreError::Corrupt("negative seq".into())))
                .transpose()
        })
    }

    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Entry>, StoreError> {
        let row = self.with_ledger_conn(|c| {
            Ok(c.query_row(
                &format!("SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq = ?2"),
                params![tenant, to_i64(seq)?],
                read_row,
            )
            .optional()?)
        })?;
        row.as_ref().map(StoredRow::to_entry).transpose()
    }

    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        let rows = self.with_ledger_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq"
            ))?;
            let rows = st.query_map(params![tenant, to_i64(from)?, to_i64(to)?], read_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
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
        let (tx, rx) = ack::channel();
        self.send(Job::Checkpoint {
            tenant: tenant.to_owned(),
            time: time.to_owned(),
            ack: tx,
        });
        rx
    }

    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<SignedCheckpoint>, StoreError> {
        let note: Option<String> = self.with_ledger_conn(|c| {
            Ok(c.query_row(
                "SELECT note FROM checkpoints WHERE tenant = ?1 ORDER BY size DESC, id DESC LIMIT 1",
                [tenant],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        Ok(note.map(|n| SignedCheckpoint::parse(&n)).transpose()?)
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

impl LedgerRead for SqliteStore {
    fn read_head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        self.head(tenant)
    }

    fn checkpoint_rows(&self, tenant: &str) -> Result<Vec<(i64, String)>, StoreError> {
        self.with_ledger_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT size, note FROM checkpoints WHERE tenant = ?1 ORDER BY size, id",
            )?;
            let rows = st.query_map([tenant], |r| {
                let note = match r.get_ref(1)? {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    _ => String::new(),
                };
                Ok((r.get(0)?, note))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn read_rows(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_ledger_conn(|c| {
            // A read transaction gives one consistent snapshot for the whole scan.
            c.execute_batch("BEGIN")?;
            let result = (|| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {ROW_COLUMNS} FROM ledger WHERE tenant = ?1 AND seq >= 0 ORDER BY seq"
                ))?;
                let mut rows = st.query([tenant])?;
                while let Some(r) = rows.next()? {
                    visit(read_row(r)?)?;
                }
                Ok(())
            })();
            c.execute_batch("COMMIT")?;
            result
        })
    }

    fn read_tiled_size(&self, tenant: &str) -> Result<u64, StoreError> {
        self.with_ledger_conn(|c| super::tiles::tiled_size(c, tenant))
    }

    fn read_tile(
        &self,
        tenant: &str,
        level: u8,
        index: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_ledger_conn(|c| super::tiles::read_tile(c, tenant, level, index))
    }

    fn read_entry_hashes(
        &self,
        tenant: &str,
        size: u64,
        visit: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_ledger_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT entry_hash FROM ledger WHERE tenant = ?1 AND seq >= 0 AND seq < ?2 ORDER BY seq",
            )?;
            let mut rows = st.query(params![tenant, to_i64(size)?])?;
            while let Some(r) = rows.next()? {
                let bytes = r
                    .get_ref(0)?
                    .as_blob()
                    .map_err(|e| StoreError::Corrupt(format!("entry hash: {e}")))?;
                visit(bytes)?;
            }
            Ok(())
        })
    }
}

impl SqliteStore {
    /// Queues a prepared draft for the writer.
    fn send_append(
        &self,
        tenant: String,
        time: String,
        prepared: PreparedDraft,
        decision_id: Option<String>,
    ) -> Ack<Appended> {
        // The canonical bytes at seq 0 are within 16 bytes of the sealed entry's.
        let approx_bytes =
            prepared.approx_len() + tenant.len() + decision_id.as_ref().map_or(0, String::len) + 64;
        let (tx, rx) = ack::channel();
        self.send(Job::Append {
            tenant,
            time,
            prepared,
            decision_id,
            approx_bytes,
            ack: tx,
        });
        rx
    }
}
