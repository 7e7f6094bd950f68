//! Usage counters (monthly quota, per-source decision counts) kept in memory and
//! flushed to the store in the background, so metering costs no write per decision.
//!
//! A crash loses at most one flush interval of counts; quotas are a business limit,
//! not a safety one, and the ledger holds every decision anyway.
//!
//! With a shared store (several nodes) the monthly quota cannot be reserved in one
//! node's memory: each reservation is then one atomic conditional add in the store
//! (`QuotaStore::reserve_usage`), and reads add this node's unflushed counts to the
//! stored value instead of caching it.

use std::collections::HashMap;
use std::sync::Mutex;

use tollgate_store::Store;

use crate::service::Error;
use crate::service::lock_error;

type Key = (String, String, String);

#[derive(Debug, Default)]
struct Counter {
    stored: u64,
    pending: u64,
}

/// In-memory counters over the store's quota counters.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    counters: Mutex<HashMap<Key, Counter>>,
    /// Other nodes share the store: reserve there, never trust a cached value.
    shared: bool,
}

impl Meter {
    /// Counters for one node (`shared = false`) or for one of several nodes.
    pub(crate) fn new(shared: bool) -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// The counter's value (stored + not yet flushed).
    pub(crate) fn get(
        &self,
        store: &dyn Store,
        tenant: &str,
        period: &str,
        metric: &str,
    ) -> Result<u64, Error> {
        let key = (tenant.to_owned(), period.to_owned(), metric.to_owned());
        if self.shared {
            let stored = store.usage(tenant, period, metric)?;
            let pending = self
                .counters
                .lock()
                .map_err(lock_error)?
                .get(&key)
                .map_or(0, |c| c.pending);
            return Ok(stored + pending);
        }
        if let Some(c) = self.counters.lock().map_err(lock_error)?.get(&key) {
            return Ok(c.stored + c.pending);
        }
        let stored = store.usage(tenant, period, metric)?;
        let mut counters = self.counters.lock().map_err(lock_error)?;
        let c = counters
            .entry(key)
            .or_insert(Counter { stored, pending: 0 });
        Ok(c.stored + c.pending)
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(
        &self,
        store: &dyn Store,
        tenant: &str,
        period: &str,
        metric: &str,
        n: u64,
    ) -> Result<(), Error> {
        let key = (tenant.to_owned(), period.to_owned(), metric.to_owned());
        if self.shared {
            // Counted here, added to the store by the next flush.
            let mut counters = self.counters.lock().map_err(lock_error)?;
            counters.entry(key).or_default().pending += n;
            return Ok(());
        }
        self.get(store, tenant, period, metric)?;
        let mut counters = self.counters.lock().map_err(lock_error)?;
        if let Some(c) = counters.get_mut(&key) {
            c.pending += n;
        }
        Ok(())
    }

    /// Adds one to a counter only if it stays within `limit`; `false` if it would not.
    pub(crate) fn reserve(
        &self,
        store: &dyn Store,
        tenant: &str,
        period: &str,
        metric: &str,
        limit: u64,
    ) -> Result<bool, Error> {
        if self.shared {
            // One atomic conditional add in the store, shared by every node.
            return Ok(store.reserve_usage(tenant, period, metric, 1, limit)?);
        }
        self.get(store, tenant, period, metric)?;
        let key = (tenant.to_owned(), period.to_owned(), metric.to_owned());
        let mut counters = self.counters.lock().map_err(lock_error)?;
        match counters.get_mut(&key) {
            Some(c) if c.stored + c.pending < limit => {
                c.pending += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Gives back a reservation whose decision was not recorded.
    pub(crate) fn refund(
        &self,
        store: &dyn Store,
        tenant: &str,
        period: &str,
        metric: &str,
    ) -> Result<(), Error> {
        if self.shared {
            store.release_usage(tenant, period, metric, 1)?;
            return Ok(());
        }
        let key = (tenant.to_owned(), period.to_owned(), metric.to_owned());
        let mut counters = self.counters.lock().map_err(lock_error)?;
        if let Some(c) = counters.get_mut(&key) {
            c.pending = c.pending.saturating_sub(1);
        }
        Ok(())
    }

    /// Writes pending counts to the store.
    pub(crate) fn flush(&self, store: &dyn Store) -> Result<(), Error> {
        let pending: Vec<(Key, u64)> = {
            let mut counters = self.counters.lock().map_err(lock_error)?;
            counters
                .iter_mut()
                .filter(|(_, c)| c.pending > 0)
                .map(|(k, c)| {
                    let n = c.pending;
                    c.stored += n;
                    c.pending = 0;
                    (k.clone(), n)
                })
                .collect()
        };
        for (key, n) in pending {
            let (tenant, period, metric): &Key = &key;
            store.add_usage(tenant, period, metric, n)?;
        }
        Ok(())
    }
}
