//! The non-ledger stores: tenants, keys, policies, sources, overrides, idempotency,
//! reviews and quota counters. Every write is one statement, so several nodes can
//! share them: an idempotency claim is a unique insert, a quota counter an atomic
//! `UPDATE … RETURNING`.

use tokio_postgres::types::ToSql;
use tollgate_store::{
    ApiKeyRecord, HistoryGuard, HistoryRecord, HistoryScope, HistoryStore, IdempotencyClaim,
    IdempotencyStore, KeyStore, OverrideStore, PolicyActivation, PolicyRecord, PolicyStore,
    QuotaStore, Record, ReviewRecord, ReviewStatus, ReviewStore, SigningKeyRecord, SourceStore,
    StoreError, TenantRecord, TenantStore, check_tenant,
};

use crate::{PgStore, db};

/// One owned statement parameter.
pub(crate) type Param = Box<dyn ToSql + Send + Sync>;

macro_rules! params {
    ($($e:expr),* $(,)?) => { vec![$(Box::new($e) as Param),*] };
}
pub(crate) use params;

pub(crate) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{v} is too large")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

impl PgStore {
    pub(crate) fn exec(&self, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(db)?;
            let st = c.prepare_cached(sql).await.map_err(db)?;
            c.execute(&st, &refs(&params)).await.map_err(db)
        })
    }

    /// Rows of `sql`, each mapped by `f` on the store's runtime.
    pub(crate) fn rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        f: fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let pool = self.pool.clone();
        self.run(async move {
            let c = pool.get().await.map_err(db)?;
            let st = c.prepare_cached(sql).await.map_err(db)?;
            let rows = c.query(&st, &refs(&params)).await.map_err(db)?;
            rows.iter().map(f).collect()
        })
    }

    fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<T>, StoreError> {
        let texts = self.rows(sql, params, |r| r.try_get::<_, String>(0).map_err(db))?;
        texts.iter().map(|t| parse(t)).collect()
    }

    fn body<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.bodies(sql, params)?.into_iter().next())
    }
}

impl TenantStore for PgStore {
    fn put_tenant(&self, t: &TenantRecord) -> Result<(), StoreError> {
        check_tenant(&t.id)?;
        self.exec(
            "INSERT INTO tenants (id, body) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            params![t.id.clone(), json(t)?],
        )?;
        Ok(())
    }
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.body(
            "SELECT body FROM tenants WHERE id = $1",
            params![id.to_owned()],
        )
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.bodies("SELECT body FROM tenants ORDER BY id", params![])
    }
}

impl KeyStore for PgStore {
    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO api_keys (id, tenant, hash, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, hash = excluded.hash, body = excluded.body",
            params![k.id.clone(), k.tenant.clone(), k.hash.clone(), json(k)?],
        )?;
        Ok(())
    }
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.body(
            "SELECT body FROM api_keys WHERE hash = $1",
            params![hash.to_owned()],
        )
    }
    fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM api_keys WHERE tenant = $1 ORDER BY id",
            params![tenant.to_owned()],
        )
    }
    fn put_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO signing_keys (name, public_key, body) VALUES ($1, $2, $3)
             ON CONFLICT (name, public_key) DO UPDATE SET body = excluded.body",
            params![k.name.clone(), k.public_key.to_vec(), json(k)?],
        )?;
        Ok(())
    }
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut keys: Vec<SigningKeyRecord> =
            self.bodies("SELECT body FROM signing_keys", params![])?;
        keys.sort_by_key(|k| k.created_ms);
        Ok(keys)
    }
}

impl PolicyStore for PgStore {
    fn put_policy_version(&self, p: &PolicyRecord) -> Result<(), StoreError> {
        // Plain INSERT: a stored version is immutable.
        self.exec(
            "INSERT INTO policies (tenant, policy_id, version, body) VALUES ($1, $2, $3, $4)",
            params![
                p.tenant.clone(),
                p.policy_id.clone(),
                to_i64(p.version)?,
                json(p)?
            ],
        )?;
        Ok(())
    }
    fn policy_version(
        &self,
        tenant: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<Option<PolicyRecord>, StoreError> {
        self.body(
            "SELECT body FROM policies WHERE tenant = $1 AND policy_id = $2 AND version = $3",
            params![tenant.to_owned(), policy_id.to_owned(), to_i64(version)?],
        )
    }
    fn policy_versions(
        &self,
        tenant: &str,
        policy_id: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM policies WHERE tenant = $1 AND policy_id = $2 ORDER BY version",
            params![tenant.to_owned(), policy_id.to_owned()],
        )
    }
    fn policy_ids(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT DISTINCT policy_id COLLATE \"C\" AS p FROM policies WHERE tenant = $1 ORDER BY p",
            params![tenant.to_owned()],
            |r| r.try_get(0).map_err(db),
        )
    }
    fn activate_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let (t, e, p, v) = (
            tenant.to_owned(),
            environment.to_owned(),
            policy_id.to_owned(),
            to_i64(version)?,
        );
        let pool = self.pool.clone();
        self.run(async move {
            let mut c = pool.get().await.map_err(db)?;
            let tx = c.transaction().await.map_err(db)?;
            tx.execute(
                "INSERT INTO policy_activations (tenant, environment, policy_id, version) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, environment, policy_id) DO UPDATE SET version = excluded.version,
                   candidate = CASE WHEN policy_activations.candidate = excluded.version THEN NULL ELSE policy_activations.candidate END,
                   candidate_since_ms = CASE WHEN policy_activations.candidate = excluded.version THEN NULL ELSE policy_activations.candidate_since_ms END",
                &[&t, &e, &p, &v],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "INSERT INTO active_policies (tenant, environment, policy_id, version) VALUES ($1, $2, $3, 0)
                 ON CONFLICT (tenant, environment) DO NOTHING",
                &[&t, &e, &p],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }
    fn active_policy(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let rows = self.rows(
            "SELECT a.policy_id, p.version FROM active_policies a
             JOIN policy_activations p ON p.tenant = a.tenant AND p.environment = a.environment AND p.policy_id = a.policy_id
             WHERE a.tenant = $1 AND a.environment = $2",
            params![tenant.to_owned(), environment.to_owned()],
            |r| {
                let id: String = r.try_get(0).map_err(db)?;
                let v: i64 = r.try_get(1).map_err(db)?;
                Ok((id, to_u64(v)?))
            },
        )?;
        Ok(rows.into_iter().next())
    }
    fn set_default_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
    ) -> Result<bool, StoreError> {
        // One statement: the default is set only while the policy is active there.
        let n = self.exec(
            "INSERT INTO active_policies (tenant, environment, policy_id, version)
             SELECT tenant, environment, policy_id, 0 FROM policy_activations
             WHERE tenant = $1 AND environment = $2 AND policy_id = $3
             ON CONFLICT (tenant, environment) DO UPDATE SET policy_id = excluded.policy_id, version = 0",
            params![
                tenant.to_owned(),
                environment.to_owned(),
                policy_id.to_owned()
            ],
        )?;
        Ok(n > 0)
    }
    fn policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        self.rows(
            "SELECT policy_id, version, candidate, candidate_since_ms FROM policy_activations
             WHERE tenant = $1 AND environment = $2 ORDER BY policy_id COLLATE \"C\"",
            params![tenant.to_owned(), environment.to_owned()],
            |r| {
                let cand: Option<i64> = r.try_get(2).map_err(db)?;
                Ok(PolicyActivation {
                    policy_id: r.try_get(0).map_err(db)?,
                    version: to_u64(r.try_get(1).map_err(db)?)?,
                    candidate: cand.map(to_u64).transpose()?,
                    candidate_since_ms: r.try_get(3).map_err(db)?,
                })
            },
        )
    }
    fn set_policy_candidate(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        candidate: Option<(u64, i64)>,
    ) -> Result<bool, StoreError> {
        let (version, since) = match candidate {
            Some((v, since)) => (Some(to_i64(v)?), Some(since)),
            None => (None, None),
        };
        let n = self.exec(
            "UPDATE policy_activations SET candidate = $4, candidate_since_ms = $5
             WHERE tenant = $1 AND environment = $2 AND policy_id = $3",
            params![
                tenant.to_owned(),
                environment.to_owned(),
                policy_id.to_owned(),
                version,
                since
            ],
        )?;
        Ok(n > 0)
    }
}

pub(crate) const ADD_HISTORY_SQL: &str = "INSERT INTO history (tenant, at_ms, actor, source, body) VALUES ($1, $2, $3, $4, $5) RETURNING id";

pub(crate) const HISTORY_SQL: &str = "SELECT id, tenant, at_ms, actor, source, body FROM history
     WHERE tenant = $1 AND at_ms >= $2
       AND ($3 OR ($4::text IS NOT NULL AND actor = $4) OR ($5::text IS NOT NULL AND source = $5))
     ORDER BY at_ms, id";

/// A row of [`HISTORY_SQL`].
pub(crate) fn history_row(r: &tokio_postgres::Row) -> Result<HistoryRecord, StoreError> {
    let body: String = r.try_get(5).map_err(db)?;
    Ok(HistoryRecord {
        id: to_u64(r.try_get(0).map_err(db)?)?,
        tenant: r.try_get(1).map_err(db)?,
        at_ms: r.try_get(2).map_err(db)?,
        actor: r.try_get(3).map_err(db)?,
        source: r.try_get(4).map_err(db)?,
        values: parse(&body)?,
    })
}

impl HistoryStore for PgStore {
    fn add_history(&self, r: &HistoryRecord) -> Result<u64, StoreError> {
        check_tenant(&r.tenant)?;
        let ids = self.rows(
            ADD_HISTORY_SQL,
            params![
                r.tenant.clone(),
                r.at_ms,
                r.actor.clone(),
                r.source.clone(),
                serde_json::to_string(&r.values)?
            ],
            |row| to_u64(row.try_get(0).map_err(db)?),
        )?;
        ids.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("the history insert returned no id".into()))
    }
    fn remove_history(&self, tenant: &str, id: u64) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM history WHERE tenant = $1 AND id = $2",
            params![tenant.to_owned(), to_i64(id)?],
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
        let all = actor.is_none() && source.is_none();
        self.rows(
            HISTORY_SQL,
            params![
                tenant.to_owned(),
                since_ms,
                all,
                actor.map(str::to_owned),
                source.map(str::to_owned)
            ],
            history_row,
        )
    }
    fn purge_history(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.exec("DELETE FROM history WHERE at_ms < $1", params![before_ms])
    }
    fn lock_history<'a>(
        &'a self,
        tenant: &str,
        scope: &HistoryScope,
    ) -> Result<Box<dyn HistoryGuard + 'a>, StoreError> {
        let guard = crate::history::PgHistoryGuard::begin(
            self.handle()?,
            self.pool.clone(),
            tenant,
            scope,
        )?;
        Ok(Box::new(guard))
    }
}

impl SourceStore for PgStore {
    fn put_source(&self, r: &Record) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sources (tenant, id, body) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, id) DO UPDATE SET body = excluded.body",
            params![r.tenant.clone(), r.id.clone(), json(r)?],
        )?;
        Ok(())
    }
    fn source(&self, tenant: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.body(
            "SELECT body FROM sources WHERE tenant = $1 AND id = $2",
            params![tenant.to_owned(), id.to_owned()],
        )
    }
    fn sources(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM sources WHERE tenant = $1 ORDER BY id",
            params![tenant.to_owned()],
        )
    }
}

impl OverrideStore for PgStore {
    fn put_override(&self, r: &Record) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO overrides (tenant, id, body) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, id) DO UPDATE SET body = excluded.body",
            params![r.tenant.clone(), r.id.clone(), json(r)?],
        )?;
        Ok(())
    }
    fn clear_override(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.exec(
            "DELETE FROM overrides WHERE tenant = $1 AND id = $2",
            params![tenant.to_owned(), id.to_owned()],
        )? > 0)
    }
    fn overrides(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT body FROM overrides WHERE tenant = $1 ORDER BY id COLLATE \"C\"",
            params![tenant.to_owned()],
        )
    }
}

impl IdempotencyStore for PgStore {
    fn claim(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        // A unique insert: exactly one claimant, on any node, inserts the row.
        let inserted = self.exec(
            "INSERT INTO idempotency (tenant, key, request_hash, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, key) DO NOTHING",
            params![
                tenant.to_owned(),
                key.to_owned(),
                request_hash.to_owned(),
                now_ms
            ],
        )?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let rows = self.rows(
            "SELECT request_hash, response FROM idempotency WHERE tenant = $1 AND key = $2",
            params![tenant.to_owned(), key.to_owned()],
            |r| {
                let hash: String = r.try_get(0).map_err(db)?;
                let response: Option<String> = r.try_get(1).map_err(db)?;
                Ok((hash, response))
            },
        )?;
        Ok(match rows.into_iter().next() {
            // Released (or purged) between our insert and this read: still busy for
            // this caller, who may retry.
            None => IdempotencyClaim::InProgress,
            Some((hash, _)) if hash != request_hash => IdempotencyClaim::Mismatch,
            Some((_, Some(r))) => IdempotencyClaim::Done(parse(&r)?),
            Some((_, None)) => IdempotencyClaim::InProgress,
        })
    }
    fn complete(
        &self,
        tenant: &str,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE idempotency SET response = $3 WHERE tenant = $1 AND key = $2",
            params![tenant.to_owned(), key.to_owned(), json(response)?],
        )?;
        Ok(())
    }
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM idempotency WHERE tenant = $1 AND key = $2 AND response IS NULL",
            params![tenant.to_owned(), key.to_owned()],
        )?;
        Ok(())
    }
    fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.exec(
            "DELETE FROM idempotency WHERE created_ms < $1",
            params![before_ms],
        )
    }
}

impl ReviewStore for PgStore {
    fn put_review(&self, r: &ReviewRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO reviews (tenant, id, status, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, id) DO UPDATE SET status = excluded.status, body = excluded.body",
            params![
                r.tenant.clone(),
                r.id.clone(),
                r.status.as_str().to_owned(),
                json(r)?
            ],
        )?;
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
        // One conditional statement, so of concurrent replacements of one version
        // exactly one matches (the row lock of the UPDATE orders them; the loser
        // re-evaluates its WHERE against the winner's row and matches nothing).
        let n = self.exec(
            "UPDATE reviews SET status = $3, body = $4
             WHERE tenant = $1 AND id = $2 AND body::jsonb = $5::text::jsonb",
            params![
                next.tenant.clone(),
                next.id.clone(),
                next.status.as_str().to_owned(),
                json(next)?,
                json(current)?
            ],
        )?;
        Ok(n == 1)
    }
    fn review(&self, tenant: &str, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
        self.body(
            "SELECT body FROM reviews WHERE tenant = $1 AND id = $2",
            params![tenant.to_owned(), id.to_owned()],
        )
    }
    fn reviews(
        &self,
        tenant: &str,
        status: Option<ReviewStatus>,
    ) -> Result<Vec<ReviewRecord>, StoreError> {
        match status {
            Some(s) => self.bodies(
                "SELECT body FROM reviews WHERE tenant = $1 AND status = $2 ORDER BY id COLLATE \"C\"",
                params![tenant.to_owned(), s.as_str().to_owned()],
            ),
            None => self.bodies(
                "SELECT body FROM reviews WHERE tenant = $1 ORDER BY id COLLATE \"C\"",
                params![tenant.to_owned()],
            ),
        }
    }
}

impl QuotaStore for PgStore {
    fn add_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<u64, StoreError> {
        let rows = self.rows(
            "INSERT INTO quota (tenant, period, metric, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, period, metric) DO UPDATE SET value = quota.value + excluded.value
             RETURNING value",
            params![
                tenant.to_owned(),
                period.to_owned(),
                metric.to_owned(),
                to_i64(amount)?
            ],
            |r| to_u64(r.try_get(0).map_err(db)?),
        )?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("the quota upsert returned no row".into()))
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
        // One statement: the row lock of the upsert serialises concurrent reservations
        // from every node; no row comes back when the update's WHERE fails.
        let rows = self.rows(
            "INSERT INTO quota (tenant, period, metric, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, period, metric) DO UPDATE SET value = quota.value + excluded.value
             WHERE quota.value + excluded.value <= $5
             RETURNING value",
            params![
                tenant.to_owned(),
                period.to_owned(),
                metric.to_owned(),
                to_i64(amount)?,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |_| Ok(()),
        )?;
        Ok(!rows.is_empty())
    }
    fn release_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE quota SET value = greatest(value - $4, 0) WHERE tenant = $1 AND period = $2 AND metric = $3",
            params![
                tenant.to_owned(),
                period.to_owned(),
                metric.to_owned(),
                to_i64(amount)?
            ],
        )?;
        Ok(())
    }
    fn usage(&self, tenant: &str, period: &str, metric: &str) -> Result<u64, StoreError> {
        let rows = self.rows(
            "SELECT value FROM quota WHERE tenant = $1 AND period = $2 AND metric = $3",
            params![tenant.to_owned(), period.to_owned(), metric.to_owned()],
            |r| to_u64(r.try_get(0).map_err(db)?),
        )?;
        Ok(rows.into_iter().next().unwrap_or(0))
    }
}
