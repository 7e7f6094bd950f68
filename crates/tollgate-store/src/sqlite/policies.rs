//! The policy store of SQLite: versions, activations, candidates and each
//! environment's default policy. The default policy and the activations are read on
//! every decision, so they are kept in the read cache; every write here invalidates
//! the tenant's cached policy reads (`PoliciesChanged`).

use rusqlite::{OptionalExtension as _, params};

use super::records::json;
use super::{SqliteStore, to_i64, to_u64};
use crate::read_cache::ReadCache;
use crate::{PolicyActivation, PolicyRecord, PolicyStore, StoreError};

impl PolicyStore for SqliteStore {
    fn put_policy_version(&self, p: &PolicyRecord) -> Result<(), StoreError> {
        // Plain INSERT: a stored version is immutable.
        self.write(
            "INSERT INTO policies (tenant, policy_id, version, body) VALUES (?1, ?2, ?3, ?4)",
            params![p.tenant, p.policy_id, to_i64(p.version)?, json(p)?],
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
            "SELECT body FROM policies WHERE tenant = ?1 AND policy_id = ?2 AND version = ?3",
            params![tenant, policy_id, to_i64(version)?],
        )
    }
    fn policy_versions(
        &self,
        tenant: &str,
        policy_id: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        self.bodies(
            "SELECT body FROM policies WHERE tenant = ?1 AND policy_id = ?2 ORDER BY version",
            params![tenant, policy_id],
        )
    }
    fn policy_ids(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT policy_id FROM policies WHERE tenant = ?1 ORDER BY policy_id",
            )?;
            let rows = st.query_map([tenant], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
    fn activate_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let version = to_i64(version)?;
        let _invalidate = self.policies_changed(tenant);
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO policy_activations (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, environment, policy_id) DO UPDATE SET version = excluded.version,
                   candidate = CASE WHEN candidate = excluded.version THEN NULL ELSE candidate END,
                   candidate_since_ms = CASE WHEN candidate = excluded.version THEN NULL ELSE candidate_since_ms END",
                params![tenant, environment, policy_id, version],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO active_policies (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, 0)",
                params![tenant, environment, policy_id],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
    fn active_policy(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        // Asked on every decision: kept in the read cache.
        self.cache.get_or_load(
            |m| &mut m.active,
            (tenant.to_owned(), environment.to_owned()),
            || {
                let row: Option<(String, i64)> = self.with_conn(|c| {
                    Ok(c.prepare_cached(
                        "SELECT a.policy_id, p.version FROM active_policies a
                         JOIN policy_activations p ON p.tenant = a.tenant AND p.environment = a.environment AND p.policy_id = a.policy_id
                         WHERE a.tenant = ?1 AND a.environment = ?2",
                    )?
                    .query_row(params![tenant, environment], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?)
                })?;
                row.map(|(id, v)| Ok((id, to_u64(v)?))).transpose()
            },
        )
    }
    fn set_default_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
    ) -> Result<bool, StoreError> {
        let _invalidate = self.policies_changed(tenant);
        self.with_conn(|c| {
            let tx = c.unchecked_transaction()?;
            let active: Option<i64> = tx
                .query_row(
                    "SELECT version FROM policy_activations WHERE tenant = ?1 AND environment = ?2 AND policy_id = ?3",
                    params![tenant, environment, policy_id],
                    |r| r.get(0),
                )
                .optional()?;
            if active.is_none() {
                return Ok(false);
            }
            tx.execute(
                "INSERT OR REPLACE INTO active_policies (tenant, environment, policy_id, version) VALUES (?1, ?2, ?3, 0)",
                params![tenant, environment, policy_id],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
    fn policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        self.cache.get_or_load(
            |m| &mut m.activations,
            (tenant.to_owned(), environment.to_owned()),
            || self.load_policy_activations(tenant, environment),
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
        let _invalidate = self.policies_changed(tenant);
        let changed = self.write(
            "UPDATE policy_activations SET candidate = ?4, candidate_since_ms = ?5
             WHERE tenant = ?1 AND environment = ?2 AND policy_id = ?3",
            params![tenant, environment, policy_id, version, since],
        )?;
        Ok(changed > 0)
    }
}

/// Drops the cached policy reads of a tenant when dropped.
struct PoliciesChanged<'a>(&'a ReadCache, &'a str);

impl Drop for PoliciesChanged<'_> {
    fn drop(&mut self) {
        let tenant = self.1;
        self.0.invalidate(|m| {
            m.active.retain(|(t, _), _| t != tenant);
            m.activations.retain(|(t, _), _| t != tenant);
        });
    }
}

impl SqliteStore {
    fn load_policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, Option<i64>)> = self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT policy_id, version, candidate, candidate_since_ms FROM policy_activations
                 WHERE tenant = ?1 AND environment = ?2 ORDER BY policy_id",
            )?;
            let rows = st.query_map(params![tenant, environment], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(policy_id, v, cand, since)| {
                Ok(PolicyActivation {
                    policy_id,
                    version: to_u64(v)?,
                    candidate: cand.map(to_u64).transpose()?,
                    candidate_since_ms: since,
                })
            })
            .collect()
    }

    /// Invalidates the tenant's cached policy reads when dropped (after the write,
    /// whether it succeeded or not).
    fn policies_changed<'a>(&'a self, tenant: &'a str) -> PoliciesChanged<'a> {
        PoliciesChanged(&self.cache, tenant)
    }
}
