//! The record stores of SQLite: tenants, keys, history, sources, overrides,
//! idempotency records, reviews and quota counters (policies are in `policies.rs`).
//! Each write is one statement on a pooled connection; the writes to tables the read
//! cache holds invalidate it after the write.

use rusqlite::{OptionalExtension as _, params};

use super::{SqliteStore, to_i64, to_u64};
use crate::{
    ApiKeyRecord, HistoryGuard, HistoryRecord, HistoryScope, HistoryStore, IdempotencyClaim,
    IdempotencyStore, KeyStore, OverrideStore, QuotaStore, Record, ReviewRecord, ReviewStatus,
    ReviewStore, SigningKeyRecord, SourceStore, StoreError, TenantRecord, TenantStore,
    UnlockedHistory, check_tenant,
};

pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

impl SqliteStore {
    pub(super) fn write(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
        self.with_conn(|c| Ok(c.execute(sql, p)?))
    }

    pub(super) fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError> {
        let texts: Vec<String> = self.with_conn(|c| {
            let mut st = c.prepare_cached(sql)?;
            let rows = st.query_map(p, |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        texts.iter().map(|t| parse(t)).collect()
    }

    pub(super) fn body<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.bodies(sql, p)?.into_iter().next())
    }
}

impl TenantStore for SqliteStore {
    fn put_tenant(&self, t: &TenantRecord) -> Result<(), StoreError> {
        check_tenant(&t.id)?;
        let written = self.write(
            "INSERT OR REPLACE INTO tenants (id, body) VALUES (?1, ?2)",
            params![t.id, json(t)?],
        );
        self.cache.invalidate(|m| {
            m.tenants.remove(&t.id);
        });
        written?;
        Ok(())
    }
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.cache.get_or_load(
            |m| &mut m.tenants,
            id.to_owned(),
            || self.body("SELECT body FROM tenants WHERE id = ?1", [id]),
        )
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.bodies("SELECT body FROM tenants ORDER BY id", [])
    }
}

impl KeyStore for SqliteStore {
    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO api_keys (id, tenant, hash, body) VALUES (?1, ?2, ?3, ?4)",
            params![k.id, k.tenant, k.hash, json(k)?],
        )?;
        Ok(())
    }
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.body("SELECT body FROM api_keys WHERE hash = ?1", [hash])
    }
    fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM api_keys WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
    fn put_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO signing_keys (name, public_key, body) VALUES (?1, ?2, ?3)",
            params![k.name, k.public_key.as_slice(), json(k)?],
        )?;
        Ok(())
    }
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut keys: Vec<SigningKeyRecord> = self.bodies("SELECT body FROM signing_keys", [])?;
        keys.sort_by_key(|k| k.created_ms);
        Ok(keys)
    }
}

impl HistoryStore for SqliteStore {
    fn add_history(&self, r: &HistoryRecord) -> Result<u64, StoreError> {
        check_tenant(&r.tenant)?;
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO history (tenant, at_ms, actor, source, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.tenant, r.at_ms, r.actor, r.source, serde_json::to_string(&r.values)?],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        to_u64(id)
    }
    fn remove_history(&self, tenant: &str, id: u64) -> Result<(), StoreError> {
        self.write(
            "DELETE FROM history WHERE tenant = ?1 AND id = ?2",
            params![tenant, to_i64(id)?],
        )?;
        Ok(())
    }
    fn history(
        &self,
        tenant: &str,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        type Row = (i64, i64, Option<String>, Option<String>, String);
        let rows: Vec<Row> = self.with_conn(|c| {
            let all = actor.is_none() && source.is_none();
            let mut st = c.prepare_cached(
                "SELECT id, at_ms, actor, source, body FROM history
                 WHERE tenant = ?1 AND at_ms >= ?2
                   AND (?3 OR (?4 IS NOT NULL AND actor = ?4) OR (?5 IS NOT NULL AND source = ?5))
                 ORDER BY at_ms, id",
            )?;
            let rows = st.query_map(params![tenant, since_ms, all, actor, source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(id, at_ms, actor, source, body)| {
                Ok(HistoryRecord {
                    id: to_u64(id)?,
                    tenant: tenant.to_owned(),
                    at_ms,
                    actor,
                    source,
                    values: parse(&body)?,
                })
            })
            .collect()
    }
    fn purge_history(&self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self.write("DELETE FROM history WHERE at_ms < ?1", [before_ms])?;
        Ok(n as u64)
    }
    fn lock_history<'a>(
        &'a self,
        tenant: &str,
        _scope: &HistoryScope,
    ) -> Result<Box<dyn HistoryGuard + 'a>, StoreError> {
        // One process writes a SQLite store (the data-directory lock), and the server
        // serialises a tenant's history in that process.
        Ok(Box::new(UnlockedHistory::new(self, tenant)))
    }
}

impl SourceStore for SqliteStore {
    fn put_source(&self, r: &Record) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO sources (tenant, id, body) VALUES (?1, ?2, ?3)",
            params![r.tenant, r.id, json(r)?],
        )?;
        Ok(())
    }
    fn source(&self, tenant: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.body(
            "SELECT body FROM sources WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )
    }
    fn sources(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM sources WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
}

impl OverrideStore for SqliteStore {
    fn put_override(&self, r: &Record) -> Result<(), StoreError> {
        self.write(
            "INSERT OR REPLACE INTO overrides (tenant, id, body) VALUES (?1, ?2, ?3)",
            params![r.tenant, r.id, json(r)?],
        )?;
        Ok(())
    }
    fn clear_override(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.write(
            "DELETE FROM overrides WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )? > 0)
    }
    fn overrides(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM overrides WHERE tenant = ?1 ORDER BY id",
            [tenant],
        )
    }
}

impl IdempotencyStore for SqliteStore {
    fn claim(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.with_conn(|c| {
            // INSERT OR IGNORE is atomic: exactly one concurrent claimant inserts.
            let inserted = c.execute(
                "INSERT OR IGNORE INTO idempotency (tenant, key, request_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![tenant, key, request_hash, now_ms],
            )?;
            if inserted == 1 {
                return Ok(IdempotencyClaim::New);
            }
            let (hash, response): (String, Option<String>) = c.query_row(
                "SELECT request_hash, response FROM idempotency WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(if hash != request_hash {
                IdempotencyClaim::Mismatch
            } else {
                match response {
                    Some(r) => IdempotencyClaim::Done(parse(&r)?),
                    None => IdempotencyClaim::InProgress,
                }
            })
        })
    }
    fn complete(
        &self,
        tenant: &str,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE idempotency SET response = ?3 WHERE tenant = ?1 AND key = ?2",
            params![tenant, key, json(response)?],
        )?;
        Ok(())
    }
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.write(
            "DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2 AND response IS NULL",
            params![tenant, key],
        )?;
        Ok(())
    }
    fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(self.write("DELETE FROM idempotency WHERE created_ms < ?1", [before_ms])? as u64)
    }
}

impl ReviewStore for SqliteStore {
    fn put_review(&self, r: &ReviewRecord) -> Result<(), StoreError> {
        let written = self.write(
            "INSERT OR REPLACE INTO reviews (tenant, id, status, body) VALUES (?1, ?2, ?3, ?4)",
            params![r.tenant, r.id, r.status.as_str(), json(r)?],
        );
        self.cache.invalidate(|m| {
            m.approved.remove(&r.tenant);
        });
        written?;
        Ok(())
    }
    fn replace_review(
        &self,
        current: &ReviewRecord,
        next: &ReviewRecord,
    ) -> Result<bool, StoreError> {
        if (&current.tenant, &current.id) != (&next.tenant, &next.id) {
            return Err(StoreError::Corrupt(
                "replace_review: another review's record".into(),
            ));
        }
        // One conditional statement: the stored text is `json(current)` exactly when
        // nothing wrote the review since it was read (serde_json writes a value read
        // back from its own text byte for byte).
        let written = self.write(
            "UPDATE reviews SET status = ?3, body = ?4 WHERE tenant = ?1 AND id = ?2 AND body = ?5",
            params![
                next.tenant,
                next.id,
                next.status.as_str(),
                json(next)?,
                json(current)?
            ],
        );
        self.cache.invalidate(|m| {
            m.approved.remove(&next.tenant);
        });
        Ok(written? == 1)
    }
    fn review(&self, tenant: &str, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
        self.body(
            "SELECT body FROM reviews WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )
    }
    fn reviews(
        &self,
        tenant: &str,
        status: Option<ReviewStatus>,
    ) -> Result<Vec<ReviewRecord>, StoreError> {
        match status {
            // Asked on every enforce-mode decision: kept in the read cache.
            Some(ReviewStatus::Approved) => {
                self.cache
                    .get_or_load(|m| &mut m.approved, tenant.to_owned(), || {
                        self.bodies(
                            "SELECT body FROM reviews WHERE tenant = ?1 AND status = 'approved' ORDER BY id",
                            [tenant],
                        )
                    })
            }
            Some(s) => self.bodies(
                "SELECT body FROM reviews WHERE tenant = ?1 AND status = ?2 ORDER BY id",
                params![tenant, s.as_str()],
            ),
            None => self.bodies(
                "SELECT body FROM reviews WHERE tenant = ?1 ORDER BY id",
                [tenant],
            ),
        }
    }
}

impl QuotaStore for SqliteStore {
    fn add_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            let v: i64 = c.query_row(
                "INSERT INTO quota (tenant, period, metric, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, period, metric) DO UPDATE SET value = value + excluded.value
                 RETURNING value",
                params![tenant, period, metric, to_i64(amount)?],
                |r| r.get(0),
            )?;
            to_u64(v)
        })
    }
    fn usage(&self, tenant: &str, period: &str, metric: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT value FROM quota WHERE tenant = ?1 AND period = ?2 AND metric = ?3",
                params![tenant, period, metric],
                |r| r.get(0),
            )
            .optional()?)
        })?;
        v.map(to_u64).transpose().map(|v| v.unwrap_or(0))
    }
    fn reserve_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        if amount > limit {
            return Ok(false);
        }
        self.with_conn(|c| {
            // One statement, so one write lock: the check and the add cannot interleave
            // with another writer's. No row comes back when the update's WHERE fails.
            let v: Option<i64> = c
                .query_row(
                    "INSERT INTO quota (tenant, period, metric, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, period, metric) DO UPDATE SET value = value + excluded.value
                     WHERE value + excluded.value <= ?5
                     RETURNING value",
                    params![tenant, period, metric, to_i64(amount)?, i64::try_from(limit).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.is_some())
        })
    }
    fn release_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE quota SET value = max(value - ?4, 0) WHERE tenant = ?1 AND period = ?2 AND metric = ?3",
            params![tenant, period, metric, to_i64(amount)?],
        )?;
        Ok(())
    }
}
