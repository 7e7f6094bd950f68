//! Read-through caches of the few records every decision reads: the tenant record,
//! the environment's default policy, the policy activations and the approved reviews.
//!
//! Without them each decision ran three or four SQLite read transactions, and since the
//! ledger writer commits all the time, each of them found the database changed and
//! started from a cold page cache: about a quarter of the server's CPU under load.
//!
//! INVARIANT: one process writes a SQLite data directory (the ledger writer's chain
//! state already requires it; `SqliteStore::open` enforces it with the data
//! directory's lock, see `sqlite/connection.rs`), and every write to a cached table
//! goes through the `SqliteStore` method that invalidates the cache after the write.
//! A read-only store, which reads beside another process's writes, keeps no cache. A load that raced
//! with a write is not kept: each write bumps a generation, and a value read under an
//! older generation is returned to its caller but never stored.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use crate::{PolicyActivation, ReviewRecord, TenantRecord};

/// Entries a map holds before it is emptied (a bound on what ids a caller can make the
/// cache remember, e.g. lookups of tenants that do not exist).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Maps {
    generation: u64,
    pub(crate) tenants: HashMap<String, Option<TenantRecord>>,
    /// (tenant, environment) → the default policy and its active version.
    pub(crate) active: HashMap<(String, String), Option<(String, u64)>>,
    /// (tenant, environment) → every activation.
    pub(crate) activations: HashMap<(String, String), Vec<PolicyActivation>>,
    /// tenant → reviews with status `approved`.
    pub(crate) approved: HashMap<String, Vec<ReviewRecord>>,
}

#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    maps: Mutex<Maps>,
    /// Set in a cache that keeps nothing: every read loads (a read-only store, whose
    /// database another process writes).
    off: bool,
}

impl ReadCache {
    /// A cache that keeps nothing.
    pub(crate) fn disabled() -> ReadCache {
        ReadCache {
            maps: Mutex::default(),
            off: true,
        }
    }

    /// The cached value of `key` in the map `pick` selects, or `load()`'s (kept unless a
    /// write happened while it loaded).
    pub(crate) fn get_or_load<K, V, E>(
        &self,
        pick: impl Fn(&mut Maps) -> &mut HashMap<K, V>,
        key: K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Eq + Hash,
        V: Clone,
    {
        if self.off {
            return load();
        }
        let generation = {
            let mut maps = self.maps.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = pick(&mut maps).get(&key) {
                return Ok(v.clone());
            }
            maps.generation
        };
        let value = load()?;
        let mut maps = self.maps.lock().unwrap_or_else(PoisonError::into_inner);
        if maps.generation == generation {
            let map = pick(&mut maps);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Forgets what `forget` removes and invalidates every load in flight. Call after
    /// the write, whether it succeeded or not.
    pub(crate) fn invalidate(&self, forget: impl FnOnce(&mut Maps)) {
        let mut maps = self.maps.lock().unwrap_or_else(PoisonError::into_inner);
        maps.generation = maps.generation.wrapping_add(1);
        forget(&mut maps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_raced_with_a_write_is_not_kept() {
        let cache = ReadCache::default();
        let stale: Result<Option<(String, u64)>, ()> = cache.get_or_load(
            |m| &mut m.active,
            ("t".to_owned(), "live".to_owned()),
            || {
                // A write lands while the old value is being read.
                cache.invalidate(|m| m.active.clear());
                Ok(Some(("old".to_owned(), 1)))
            },
        );
        assert_eq!(stale, Ok(Some(("old".to_owned(), 1))));
        let fresh: Result<Option<(String, u64)>, ()> = cache.get_or_load(
            |m| &mut m.active,
            ("t".to_owned(), "live".to_owned()),
            || Ok(Some(("new".to_owned(), 2))),
        );
        assert_eq!(fresh, Ok(Some(("new".to_owned(), 2))));
    }

    #[test]
    fn a_loaded_value_is_served_until_invalidated() {
        let cache = ReadCache::default();
        let mut loads = 0;
        for _ in 0..3 {
            let v: Result<Option<(String, u64)>, ()> = cache.get_or_load(
                |m| &mut m.active,
                ("t".into(), "live".into()),
                || {
                    loads += 1;
                    Ok(None)
                },
            );
            assert_eq!(v, Ok(None));
        }
        assert_eq!(loads, 1);
        cache.invalidate(|m| m.active.clear());
        let _: Result<Option<(String, u64)>, ()> = cache.get_or_load(
            |m| &mut m.active,
            ("t".into(), "live".into()),
            || {
                loads += 1;
                Ok(None)
            },
        );
        assert_eq!(loads, 2);
    }

    #[test]
    fn a_map_is_bounded() {
        let cache = ReadCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            let _: Result<Option<TenantRecord>, ()> =
                cache.get_or_load(|m| &mut m.tenants, format!("t{i}"), || Ok(None));
        }
        let maps = cache.maps.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(maps.tenants.len() <= MAX_ENTRIES);
    }
}
