//! The delivery records on PostgreSQL: sinks, cursors, delivery rows. Any node may
//! manage sinks; the delivering node (the sequencer) moves cursors and writes rows.

use tollgate_store::{
    DeliveryRecord, DeliveryState, NotifyStore, SinkCursor, SinkRecord, StoreError, check_tenant,
};

use crate::records::{Param, params, refs, to_i64, to_u64};
use crate::{PgStore, db};

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

impl PgStore {
    /// Runs the statements in one transaction.
    fn in_transaction(
        &self,
        statements: Vec<(&'static str, Vec<Param>)>,
    ) -> Result<Vec<u64>, StoreError> {
        let pool = self.pool.clone();
        self.run(async move {
            let mut c = pool.get().await.map_err(db)?;
            let tx = c.transaction().await.map_err(db)?;
            let mut counts = Vec::with_capacity(statements.len());
            for (sql, p) in &statements {
                counts.push(tx.execute(*sql, &refs(p)).await.map_err(db)?);
            }
            tx.commit().await.map_err(db)?;
            Ok(counts)
        })
    }

    fn texts(&self, sql: &'static str, p: Vec<Param>) -> Result<Vec<String>, StoreError> {
        self.rows(sql, p, |r| r.try_get::<_, String>(0).map_err(db))
    }
}

impl NotifyStore for PgStore {
    fn put_sink(&self, sink: &SinkRecord, start_seq: u64) -> Result<(), StoreError> {
        check_tenant(&sink.tenant)?;
        self.in_transaction(vec![
            (
                "INSERT INTO notify_sinks (tenant, id, body) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, id) DO UPDATE SET body = excluded.body",
                params![sink.tenant.clone(), sink.id.clone(), json(sink)?],
            ),
            (
                "INSERT INTO notify_cursors (tenant, sink_id, next_seq, updated_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, sink_id) DO UPDATE SET next_seq = excluded.next_seq, updated_ms = excluded.updated_ms",
                params![sink.tenant.clone(), sink.id.clone(), to_i64(start_seq)?, sink.created_ms],
            ),
        ])?;
        Ok(())
    }

    fn sink(&self, tenant: &str, id: &str) -> Result<Option<SinkRecord>, StoreError> {
        self.texts(
            "SELECT body FROM notify_sinks WHERE tenant = $1 AND id = $2",
            params![tenant.to_owned(), id.to_owned()],
        )?
        .first()
        .map(|t| parse(t))
        .transpose()
    }

    fn sinks(&self, tenant: Option<&str>) -> Result<Vec<SinkRecord>, StoreError> {
        self.texts(
            "SELECT body FROM notify_sinks WHERE $1::TEXT IS NULL OR tenant = $1 ORDER BY tenant, id",
            params![tenant.map(str::to_owned)],
        )?
        .iter()
        .map(|t| parse(t))
        .collect()
    }

    fn delete_sink(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let counts = self.in_transaction(vec![
            (
                "DELETE FROM notify_sinks WHERE tenant = $1 AND id = $2",
                params![tenant.to_owned(), id.to_owned()],
            ),
            (
                "DELETE FROM notify_cursors WHERE tenant = $1 AND sink_id = $2",
                params![tenant.to_owned(), id.to_owned()],
            ),
            (
                "DELETE FROM notify_deliveries WHERE tenant = $1 AND sink_id = $2",
                params![tenant.to_owned(), id.to_owned()],
            ),
        ])?;
        Ok(counts.first().copied().unwrap_or(0) > 0)
    }

    fn sink_cursor(&self, tenant: &str, sink_id: &str) -> Result<Option<SinkCursor>, StoreError> {
        let rows = self.rows(
            "SELECT next_seq, updated_ms FROM notify_cursors WHERE tenant = $1 AND sink_id = $2",
            params![tenant.to_owned(), sink_id.to_owned()],
            |r| {
                Ok((
                    r.try_get::<_, i64>(0).map_err(db)?,
                    r.try_get::<_, i64>(1).map_err(db)?,
                ))
            },
        )?;
        rows.first()
            .map(|&(next, updated_ms)| {
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
        self.in_transaction(vec![
            (
                "UPDATE notify_cursors SET next_seq = $3, updated_ms = $4
                 WHERE tenant = $1 AND sink_id = $2 AND next_seq < $3",
                params![
                    cursor.tenant.clone(),
                    cursor.sink_id.clone(),
                    next,
                    cursor.updated_ms
                ],
            ),
            (
                "DELETE FROM notify_deliveries
                 WHERE tenant = $1 AND sink_id = $2 AND state = 'delivered' AND seq < $3",
                params![cursor.tenant.clone(), cursor.sink_id.clone(), next],
            ),
        ])?;
        Ok(())
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<(), StoreError> {
        self.put_deliveries(std::slice::from_ref(d))
    }

    fn put_deliveries(&self, rows: &[DeliveryRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let statements = rows
            .iter()
            .map(|d| {
                Ok((
                    "INSERT INTO notify_deliveries (tenant, sink_id, seq, state, body)
                     SELECT $1, $2, $3, $4, $5
                     WHERE EXISTS (SELECT 1 FROM notify_sinks WHERE tenant = $1 AND id = $2)
                     ON CONFLICT (tenant, sink_id, seq) DO UPDATE SET state = excluded.state, body = excluded.body",
                    params![
                        d.tenant.clone(),
                        d.sink_id.clone(),
                        to_i64(d.seq)?,
                        d.state.as_str().to_owned(),
                        json(d)?
                    ],
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.in_transaction(statements)?;
        Ok(())
    }

    fn open_deliveries(
        &self,
        tenant: &str,
        sink_id: &str,
        from_seq: u64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.texts(
            "SELECT body FROM (
                 SELECT seq, body FROM notify_deliveries
                 WHERE tenant = $1 AND sink_id = $2 AND seq >= $3
                 UNION ALL
                 SELECT seq, body FROM notify_deliveries
                 WHERE tenant = $1 AND state = 'pending' AND sink_id = $2 AND seq < $3
             ) AS open ORDER BY seq",
            params![tenant.to_owned(), sink_id.to_owned(), to_i64(from_seq)?],
        )?
        .iter()
        .map(|t| parse(t))
        .collect()
    }

    fn delivery(
        &self,
        tenant: &str,
        sink_id: &str,
        seq: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.texts(
            "SELECT body FROM notify_deliveries WHERE tenant = $1 AND sink_id = $2 AND seq = $3",
            params![tenant.to_owned(), sink_id.to_owned(), to_i64(seq)?],
        )?
        .first()
        .map(|t| parse(t))
        .transpose()
    }

    fn deliveries(
        &self,
        tenant: &str,
        sink_id: Option<&str>,
        state: Option<DeliveryState>,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.texts(
            "SELECT body FROM notify_deliveries
             WHERE tenant = $1 AND ($2::TEXT IS NULL OR sink_id = $2) AND ($3::TEXT IS NULL OR state = $3)
             ORDER BY sink_id, seq",
            params![
                tenant.to_owned(),
                sink_id.map(str::to_owned),
                state.map(|s| s.as_str().to_owned())
            ],
        )?
        .iter()
        .map(|t| parse(t))
        .collect()
    }
}
