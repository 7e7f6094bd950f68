//! The delivery records of SQLite: sinks, cursors, delivery rows.

use rusqlite::{OptionalExtension as _, params};

use super::records::{json, parse};
use super::{SqliteStore, to_i64, to_u64};
use crate::{
    DeliveryRecord, DeliveryState, NotifyStore, SinkCursor, SinkRecord, StoreError, check_tenant,
};

/// Creates or replaces a delivery row, unless its sink is gone.
const UPSERT_DELIVERY: &str =
    "INSERT OR REPLACE INTO notify_deliveries (tenant, sink_id, seq, state, body)
     SELECT ?1, ?2, ?3, ?4, ?5
     WHERE EXISTS (SELECT 1 FROM notify_sinks WHERE tenant = ?1 AND id = ?2)";

impl NotifyStore for SqliteStore {
    fn put_sink(&self, sink: &SinkRecord, start_seq: u64) -> Result<(), StoreError> {
        check_tenant(&sink.tenant)?;
        let start = to_i64(start_seq)?;
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO notify_sinks (tenant, id, body) VALUES (?1, ?2, ?3)",
                params![sink.tenant, sink.id, json(sink)?],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO notify_cursors (tenant, sink_id, next_seq, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![sink.tenant, sink.id, start, sink.created_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn sink(&self, tenant: &str, id: &str) -> Result<Option<SinkRecord>, StoreError> {
        self.body(
            "SELECT body FROM notify_sinks WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )
    }

    fn sinks(&self, tenant: Option<&str>) -> Result<Vec<SinkRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM notify_sinks WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, id",
            [tenant],
        )
    }

    fn delete_sink(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            let n = tx.execute(
                "DELETE FROM notify_sinks WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )?;
            tx.execute(
                "DELETE FROM notify_cursors WHERE tenant = ?1 AND sink_id = ?2",
                params![tenant, id],
            )?;
            tx.execute(
                "DELETE FROM notify_deliveries WHERE tenant = ?1 AND sink_id = ?2",
                params![tenant, id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn sink_cursor(&self, tenant: &str, sink_id: &str) -> Result<Option<SinkCursor>, StoreError> {
        let row: Option<(i64, i64)> = self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT next_seq, updated_ms FROM notify_cursors WHERE tenant = ?1 AND sink_id = ?2",
                params![tenant, sink_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        row.map(|(next, updated_ms)| {
            Ok(SinkCursor {
                tenant: tenant.to_owned(),
                sink_id: sink_id.to_owned(),
                next_seq: to_u64(next)?,
                updated_ms,
            })
        })
        .transpose()
    }

    fn advance_sink_cursor(&self, cursor: &SinkCursor) -> Result<(), StoreError> {
        let next = to_i64(cursor.next_seq)?;
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "UPDATE notify_cursors SET next_seq = ?3, updated_ms = ?4
                 WHERE tenant = ?1 AND sink_id = ?2 AND next_seq < ?3",
                params![cursor.tenant, cursor.sink_id, next, cursor.updated_ms],
            )?;
            tx.execute(
                "DELETE FROM notify_deliveries
                 WHERE tenant = ?1 AND sink_id = ?2 AND state = 'delivered' AND seq < ?3",
                params![cursor.tenant, cursor.sink_id, next],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<(), StoreError> {
        self.write(
            UPSERT_DELIVERY,
            params![
                d.tenant,
                d.sink_id,
                to_i64(d.seq)?,
                d.state.as_str(),
                json(d)?
            ],
        )?;
        Ok(())
    }

    fn put_deliveries(&self, rows: &[DeliveryRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = rows
            .iter()
            .map(|d| Ok((d, to_i64(d.seq)?, json(d)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.with_conn(|c| {
            // Retry state, not a record of what happened: committed without its own
            // fsync (the checkpointer's next sync of the WAL, within about a second,
            // covers these frames), so a
            // failing sink's bookkeeping does not hold the write lock through an fsync
            // while decisions wait. A power cut can lose the latest rows: the entries
            // are then tried again (at-least-once, same ids), never dropped.
            c.pragma_update(None, "synchronous", "NORMAL")?;
            let written = put_rows(c, &rows);
            c.pragma_update(None, "synchronous", "FULL")?;
            written
        })
    }

    fn open_deliveries(
        &self,
        tenant: &str,
        sink_id: &str,
        from_seq: u64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        // Two indexed reads: the key (tenant, sink_id, seq) from the cursor on, and the
        // (tenant, state) index for pending rows behind it.
        self.bodies(
            "SELECT body FROM (
                 SELECT seq, body FROM notify_deliveries
                 WHERE tenant = ?1 AND sink_id = ?2 AND seq >= ?3
                 UNION ALL
                 SELECT seq, body FROM notify_deliveries
                 WHERE tenant = ?1 AND state = 'pending' AND sink_id = ?2 AND seq < ?3
             ) ORDER BY seq",
            params![tenant, sink_id, to_i64(from_seq)?],
        )
    }

    fn delivery(
        &self,
        tenant: &str,
        sink_id: &str,
        seq: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.body(
            "SELECT body FROM notify_deliveries WHERE tenant = ?1 AND sink_id = ?2 AND seq = ?3",
            params![tenant, sink_id, to_i64(seq)?],
        )
    }

    fn deliveries(
        &self,
        tenant: &str,
        sink_id: Option<&str>,
        state: Option<DeliveryState>,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let texts: Vec<String> = self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT body FROM notify_deliveries
                 WHERE tenant = ?1 AND (?2 IS NULL OR sink_id = ?2) AND (?3 IS NULL OR state = ?3)
                 ORDER BY sink_id, seq",
            )?;
            let rows = st.query_map(
                params![tenant, sink_id, state.map(DeliveryState::as_str)],
                |r| r.get(0),
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        texts.iter().map(|t| parse(t)).collect()
    }
}

/// Writes delivery rows in one transaction (rows of a sink that is gone are skipped).
fn put_rows(
    c: &rusqlite::Connection,
    rows: &[(&DeliveryRecord, i64, String)],
) -> Result<(), StoreError> {
    let tx = c.unchecked_transaction()?;
    {
        let mut st = tx.prepare_cached(UPSERT_DELIVERY)?;
        for (d, seq, body) in rows {
            st.execute(params![d.tenant, d.sink_id, seq, d.state.as_str(), body])?;
        }
    }
    tx.commit()?;
    Ok(())
}
