//! Velocity history exact across nodes: one decision's read-decide-record runs in one
//! transaction that first takes transaction-level advisory locks on the scopes it
//! touches (`HistoryScope`), reads the events, and — after the caller has decided —
//! inserts the permitted action's event and commits, which releases the locks.
//!
//! Locks, always taken in this order (so two guards never wait on each other in a
//! cycle):
//!
//! 1. the tenant's lock: exclusive when the decision reads the whole tenant, shared
//!    otherwise (a whole-tenant reader excludes every other decision of the tenant,
//!    decisions of different actors and sources run side by side);
//! 2. exclusive locks on `actor:<id>` and `source:<id>` (the event the decision may
//!    record carries both), in ascending order of their 64-bit key.
//!
//! A key is FNV-1a 64 of `tollgate-history`, the tenant, the kind and the id, each
//! followed by a zero byte: the same on every node and every build. Two keys that
//! collide only serialise more than needed. `lock_timeout` bounds the wait (an error,
//! answered 503 by the server, never a decision without the lock).

use std::future::Future;

use deadpool_postgres::{Object, Pool};
use tollgate_store::{HistoryGuard, HistoryRecord, HistoryScope, StoreError, check_tenant};

use crate::db;
use crate::records::{history_row, to_u64};

/// How long a decision waits for its history locks before failing (closed).
const LOCK_TIMEOUT_MS: u32 = 5_000;

/// FNV-1a 64 of the parts, each followed by a zero byte, as a PostgreSQL `bigint`.
pub(crate) fn lock_key(parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// The statements that open a guard's transaction and take its locks, in order.
pub(crate) fn lock_sql(tenant: &str, scope: &HistoryScope) -> String {
    let tenant_key = lock_key(&["tollgate-history", tenant, "tenant", ""]);
    let mut sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}; SELECT {}({tenant_key});",
        if scope.whole_tenant {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        }
    );
    if !scope.whole_tenant {
        let mut keys: Vec<i64> = [("actor", &scope.actor), ("source", &scope.source)]
            .into_iter()
            .filter_map(|(kind, id)| {
                id.as_deref()
                    .map(|id| lock_key(&["tollgate-history", tenant, kind, id]))
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            sql.push_str(&format!(" SELECT pg_advisory_xact_lock({k});"));
        }
    }
    sql
}

/// One decision's history transaction on a connection taken from the pool.
#[derive(Debug)]
pub(crate) struct PgHistoryGuard {
    handle: tokio::runtime::Handle,
    tenant: String,
    // INVARIANT: `Some` while the transaction is open; an error inside it closes the
    // connection (`Object::take`), which ends the transaction and its locks.
    conn: Option<Object>,
}

impl PgHistoryGuard {
    /// Opens the transaction and waits for the scope's locks.
    pub(crate) fn begin(
        handle: tokio::runtime::Handle,
        pool: Pool,
        tenant: &str,
        scope: &HistoryScope,
    ) -> Result<PgHistoryGuard, StoreError> {
        check_tenant(tenant)?;
        let sql = lock_sql(tenant, scope);
        let conn = crate::run_on(&handle, async move {
            let c = pool.get().await.map_err(db)?;
            match c.batch_execute(&sql).await {
                Ok(()) => Ok(c),
                Err(e) => {
                    drop(Object::take(c));
                    Err(db(e))
                }
            }
        })?;
        Ok(PgHistoryGuard {
            handle,
            tenant: tenant.to_owned(),
            conn: Some(conn),
        })
    }

    /// Runs `f` on the transaction's connection; an error closes the connection.
    fn on_conn<T, F, Fut>(&mut self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut,
        Fut: Future<Output = (Object, Result<T, StoreError>)> + Send + 'static,
    {
        let c = self.conn.take().ok_or(StoreError::Closed)?;
        let fut = f(c);
        let (c, out) = crate::run_on(&self.handle, async move { Ok(fut.await) })?;
        match out {
            Ok(v) => {
                self.conn = Some(c);
                Ok(v)
            }
            Err(e) => {
                drop(Object::take(c));
                Err(e)
            }
        }
    }
}

impl HistoryGuard for PgHistoryGuard {
    fn history(
        &mut self,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let all = actor.is_none() && source.is_none();
        let (tenant, actor, source) = (
            self.tenant.clone(),
            actor.map(str::to_owned),
            source.map(str::to_owned),
        );
        self.on_conn(move |c| async move {
            let out = async {
                let st = c
                    .prepare_cached(crate::records::HISTORY_SQL)
                    .await
                    .map_err(db)?;
                let rows = c
                    .query(&st, &[&tenant, &since_ms, &all, &actor, &source])
                    .await
                    .map_err(db)?;
                rows.iter().map(history_row).collect()
            }
            .await;
            (c, out)
        })
    }

    fn add_history(&mut self, r: &HistoryRecord) -> Result<u64, StoreError> {
        if r.tenant != self.tenant {
            return Err(StoreError::Corrupt(
                "a history event of another tenant".into(),
            ));
        }
        let r = r.clone();
        let values = serde_json::to_string(&r.values)?;
        self.on_conn(move |c| async move {
            let out = async {
                let st = c
                    .prepare_cached(crate::records::ADD_HISTORY_SQL)
                    .await
                    .map_err(db)?;
                let row = c
                    .query_one(&st, &[&r.tenant, &r.at_ms, &r.actor, &r.source, &values])
                    .await
                    .map_err(db)?;
                to_u64(row.try_get(0).map_err(db)?)
            }
            .await;
            (c, out)
        })
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.on_conn(|c| async move {
            let out = c.batch_execute("COMMIT").await.map_err(db);
            (c, out)
        })?;
        // Committed: the connection goes back to the pool as it is (no rollback).
        drop(self.conn.take());
        Ok(())
    }
}

impl Drop for PgHistoryGuard {
    fn drop(&mut self) {
        // Not committed: roll back (nothing added is kept, the locks are released)
        // before the connection goes back to the pool; if that fails, close it.
        if let Some(c) = self.conn.take() {
            self.handle.spawn(async move {
                if c.batch_execute("ROLLBACK").await.is_err() {
                    drop(Object::take(c));
                }
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fnv1a_of_the_parts_and_locks_are_ordered() {
        // FNV-1a 64 of the empty input is the offset basis; of "a" a published value.
        assert_eq!(lock_key(&[]) as u64, 0xcbf2_9ce4_8422_2325);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"a\0" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(lock_key(&["a"]) as u64, h);
        assert_ne!(lock_key(&["ab", "c"]), lock_key(&["a", "bc"]));
        let whole = lock_sql(
            "t",
            &HistoryScope {
                whole_tenant: true,
                actor: Some("a".into()),
                source: None,
            },
        );
        assert!(whole.contains("SELECT pg_advisory_xact_lock("));
        assert_eq!(whole.matches("pg_advisory_xact_lock").count(), 1);
        let scoped = lock_sql(
            "t",
            &HistoryScope {
                whole_tenant: false,
                actor: Some("a".into()),
                source: Some("s".into()),
            },
        );
        assert!(scoped.contains("pg_advisory_xact_lock_shared("));
        let a = lock_key(&["tollgate-history", "t", "actor", "a"]);
        let s = lock_key(&["tollgate-history", "t", "source", "s"]);
        let (lo, hi) = (a.min(s), a.max(s));
        let lo_at = scoped.find(&format!("({lo})")).unwrap();
        let hi_at = scoped.find(&format!("({hi})")).unwrap();
        assert!(lo_at < hi_at, "{scoped}");
    }
}
