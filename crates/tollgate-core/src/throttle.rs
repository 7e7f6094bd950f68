//! GCRA token buckets (the algorithm of the `governor` crate and of redis-cell).
//!
//! Per key the only state is the theoretical arrival time (TAT) of the next request.
//! With emission interval `T` and capacity `C`, a request at `now` is allowed iff
//! `max(TAT, now) - now <= (C - 1) * T`; an allowed request moves TAT to
//! `max(TAT, now) + T`. From a full bucket this allows exactly `C` requests back to
//! back, then one per `T`, and the wait of a refused request is exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// One bucket's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gcra {
    /// Burst capacity (tokens when full), at least 1.
    pub capacity: u32,
    /// Emission interval: one token is added every `interval_ms`, at least 1.
    pub interval_ms: i64,
}

/// The result of checking one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcraCheck {
    /// Whether a token is available now.
    pub allowed: bool,
    /// Whole tokens available before this request.
    pub available: u32,
    /// The TAT after taking a token (meaningful only when `allowed`).
    pub new_tat: i64,
    /// Milliseconds until a token is available (0 when `allowed`).
    pub retry_after_ms: u64,
}

impl Gcra {
    /// Delay tolerance `(C - 1) * T`.
    fn tau(self) -> i64 {
        i64::from(self.capacity.saturating_sub(1)).saturating_mul(self.interval_ms)
    }

    /// Checks a bucket whose TAT is `tat` (`None` = never used = full) at `now`.
    pub fn check(self, tat: Option<i64>, now: UnixMillis) -> GcraCheck {
        let now = now.as_millis();
        let interval = self.interval_ms.max(1);
        let tat = tat.map_or(now, |t| t.max(now));
        let backlog = tat - now; // >= 0
        let tau = self.tau();
        if backlog <= tau {
            // Tokens available: one for the request plus whole intervals of slack.
            let available = (tau - backlog) / interval + 1;
            GcraCheck {
                allowed: true,
                available: u32::try_from(available)
                    .unwrap_or(u32::MAX)
                    .min(self.capacity),
                new_tat: tat.saturating_add(interval),
                retry_after_ms: 0,
            }
        } else {
            GcraCheck {
                allowed: false,
                available: 0,
                new_tat: tat,
                retry_after_ms: u64::try_from(backlog - tau).unwrap_or(u64::MAX),
            }
        }
    }
}

/// A bucket the engine wants a token from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDemand {
    /// Unique key: the JSON array `[tenant, policy id, throttle index, key values...]`.
    pub key: Arc<str>,
    /// The bucket's parameters.
    pub gcra: Gcra,
}

/// A TAT to store, the state change the engine asks the caller to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TatUpdate {
    /// Bucket key.
    pub key: Arc<str>,
    /// The new TAT in milliseconds since the epoch.
    pub tat: i64,
}

/// Checks every demand against its current TAT. All or nothing: updates are returned
/// only when every bucket allows and `consume` is set.
pub fn check_all(
    demands: &[BucketDemand],
    tats: &[Option<i64>],
    now: UnixMillis,
    consume: bool,
) -> (Vec<GcraCheck>, Vec<TatUpdate>) {
    let checks: Vec<GcraCheck> = demands
        .iter()
        .enumerate()
        .map(|(i, d)| d.gcra.check(tats.get(i).copied().flatten(), now))
        .collect();
    let all = checks.iter().all(|c| c.allowed);
    let updates = if all && consume {
        demands
            .iter()
            .zip(&checks)
            .map(|(d, c)| TatUpdate {
                key: Arc::clone(&d.key),
                tat: c.new_tat,
            })
            .collect()
    } else {
        Vec::new()
    };
    (checks, updates)
}

/// Bucket state in memory: a plain map from key to TAT, for tests, the lab and any
/// caller that serialises access itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryBuckets {
    tats: BTreeMap<Arc<str>, i64>,
}

impl MemoryBuckets {
    /// An empty set of buckets (every bucket full).
    pub fn new() -> Self {
        Self::default()
    }

    /// The TAT of `key`, if the bucket was ever used.
    pub fn tat(&self, key: &str) -> Option<i64> {
        self.tats.get(key).copied()
    }

    /// Applies state changes returned by the engine.
    pub fn apply(&mut self, updates: &[TatUpdate]) {
        for u in updates {
            self.tats.insert(Arc::clone(&u.key), u.tat);
        }
    }

    /// Current TATs of `demands`, in order.
    pub fn read(&self, demands: &[BucketDemand]) -> Vec<Option<i64>> {
        demands.iter().map(|d| self.tat(&d.key)).collect()
    }
}
