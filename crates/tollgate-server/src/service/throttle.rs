//! Where decision throttle buckets live: in this process (the embedded default) or in
//! Redis (`throttle = "redis"`), where one atomic script per decision lets every node
//! of a cluster take tokens from the same bucket. Either way the engine's GCRA decides
//! (`Evaluation::finish` / `finish_with_checks`); a Redis that cannot answer fails the
//! decision closed: 503, no verdict, no permit.

use std::sync::{Arc, Mutex};

use tollgate_core::{
    CompiledPolicy, Decision, Evaluation, MemoryBuckets, TatUpdate, UnixMillis, Verdict,
};
use tollgate_throttle_redis::{RedisThrottle, RedisThrottleConfig};

use crate::config::{Config, ThrottleKind};
use crate::service::Error;
use crate::service::lock_error;

/// The throttle backend of a server.
#[derive(Debug)]
pub(crate) enum Throttle {
    /// Buckets in memory, read and written under one lock.
    Memory(Mutex<MemoryBuckets>),
    /// Buckets in Redis.
    Redis(Box<RedisThrottle>),
    /// A configuration that cannot work (reported when the server opened): every
    /// decision that needs a bucket fails closed.
    Unusable(String),
}

impl Throttle {
    /// The backend `config` asks for, or why it cannot be had.
    pub(crate) fn from_config(config: &Config) -> Result<Self, String> {
        match config.throttle {
            ThrottleKind::Memory => Ok(Throttle::Memory(Mutex::new(MemoryBuckets::new()))),
            ThrottleKind::Redis => {
                let url = config.redis_url.as_deref().filter(|u| !u.is_empty()).ok_or(
                    "throttle = \"redis\" needs redis_url (TOLLGATE_REDIS_URL), e.g. redis://127.0.0.1:6379/",
                )?;
                let mut redis = RedisThrottleConfig::new(url);
                redis.prefix = format!("{}throttle:", config.redis_key_prefix);
                let throttle = RedisThrottle::new(redis).map_err(|e| e.to_string())?;
                Ok(Throttle::Redis(Box::new(throttle)))
            }
        }
    }

    /// Finishes the pipeline: checks the buckets the evaluation demands at `now` (the
    /// evaluation's time) and takes their tokens when it consumes and all allow.
    /// Candidate evaluations (policy versions run beside the active ones) only look at
    /// the buckets, before the active evaluation takes its tokens.
    pub(crate) async fn finish(
        &self,
        evaluation: Evaluation,
        candidates: Vec<(Arc<CompiledPolicy>, Evaluation)>,
        now: UnixMillis,
    ) -> Result<(Decision, Vec<(Arc<CompiledPolicy>, Verdict)>), Error> {
        match self {
            Throttle::Memory(buckets) => {
                // INVARIANT: reading the buckets, deciding and storing the new TATs
                // happen under one lock, so two requests cannot take the same token.
                let mut buckets = buckets.lock().map_err(lock_error)?;
                let mut verdicts = Vec::new();
                for (p, ev) in candidates {
                    let tats = buckets.read(ev.demands());
                    verdicts.push((p, ev.finish(&tats).verdict));
                }
                let tats = buckets.read(evaluation.demands());
                let decision = evaluation.finish(&tats);
                buckets.apply(&decision.bucket_updates);
                Ok((decision, verdicts))
            }
            Throttle::Redis(redis) => {
                // INVARIANT: the script checks and updates every bucket atomically in
                // Redis; an error is a 503, never a permit.
                let unavailable = |e: tollgate_throttle_redis::ThrottleError| {
                    tracing::error!(error = %e, "throttle check failed; answering 503");
                    Error::ThrottleUnavailable
                };
                let mut verdicts = Vec::new();
                for (p, ev) in candidates {
                    let looked = redis
                        .check(ev.demands(), now, false)
                        .await
                        .map_err(unavailable)?;
                    // The updates the candidate would have made (never stored), as the
                    // memory throttle reports them.
                    let updates = if ev.consumes() && looked.checks.iter().all(|c| c.allowed) {
                        ev.demands()
                            .iter()
                            .zip(&looked.checks)
                            .map(|(d, c)| TatUpdate {
                                key: Arc::clone(&d.key),
                                tat: c.new_tat,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    verdicts.push((p, ev.finish_with_checks(&looked.checks, updates).verdict));
                }
                let checked = redis
                    .check(evaluation.demands(), now, evaluation.consumes())
                    .await
                    .map_err(unavailable)?;
                let decision = evaluation.finish_with_checks(&checked.checks, checked.updates);
                Ok((decision, verdicts))
            }
            Throttle::Unusable(why) => {
                let needs = !evaluation.demands().is_empty()
                    || candidates.iter().any(|(_, ev)| !ev.demands().is_empty());
                if needs {
                    tracing::error!(error = %why, "throttle unusable; answering 503");
                    return Err(Error::ThrottleUnavailable);
                }
                let verdicts = candidates
                    .into_iter()
                    .map(|(p, ev)| (p, ev.finish(&[]).verdict))
                    .collect();
                Ok((evaluation.finish(&[]), verdicts))
            }
        }
    }
}

/// Where the per-key request-rate buckets live: in this process, or — when the
/// decision throttle is in Redis (cluster mode) — in Redis too, behind their own
/// prefix (`<redis_key_prefix>keyrate:`), one atomic GCRA script per request, so a key
/// has one bucket across every node. The per-key rate protects the server, it is not
/// a business limit: while Redis cannot answer, each node falls back to its own
/// buckets (a warning is logged), so reads, reviews and administration keep working;
/// decisions still fail closed on the throttle.
#[derive(Debug)]
pub(crate) enum KeyRate {
    /// One bucket per key in this process.
    Memory(Mutex<MemoryBuckets>),
    /// One bucket per key in Redis, and this process's buckets while it is away.
    Redis {
        redis: Box<RedisThrottle>,
        fallback: Mutex<MemoryBuckets>,
    },
}

impl KeyRate {
    /// The backend `config` asks for: Redis exactly when the throttle is.
    pub(crate) fn from_config(config: &Config) -> KeyRate {
        let memory = || Mutex::new(MemoryBuckets::new());
        if config.throttle != ThrottleKind::Redis {
            return KeyRate::Memory(memory());
        }
        let Some(url) = config.redis_url.as_deref().filter(|u| !u.is_empty()) else {
            // Refused when the server opened (`check_throttle_config`).
            return KeyRate::Memory(memory());
        };
        let mut redis = RedisThrottleConfig::new(url);
        redis.prefix = format!("{}keyrate:", config.redis_key_prefix);
        match RedisThrottle::new(redis) {
            Ok(t) => KeyRate::Redis {
                redis: Box::new(t),
                fallback: memory(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "per-key rate limit: Redis unusable, buckets per node");
                KeyRate::Memory(memory())
            }
        }
    }

    /// Takes one request from the bucket `demand` names at `now`: the engine's GCRA
    /// check, in Redis's script or in memory.
    pub(crate) async fn take(
        &self,
        demand: &[tollgate_core::BucketDemand],
        now: UnixMillis,
    ) -> Result<Vec<tollgate_core::GcraCheck>, Error> {
        let in_memory = |buckets: &Mutex<MemoryBuckets>| {
            let mut buckets = buckets.lock().map_err(lock_error)?;
            let (checks, updates) =
                tollgate_core::throttle::check_all(demand, &buckets.read(demand), now, true);
            buckets.apply(&updates);
            Ok(checks)
        };
        match self {
            KeyRate::Memory(buckets) => in_memory(buckets),
            KeyRate::Redis { redis, fallback } => match redis.check(demand, now, true).await {
                Ok(checked) => Ok(checked.checks),
                Err(e) => {
                    tracing::warn!(error = %e, "per-key rate check in Redis failed; this node's bucket decides");
                    in_memory(fallback)
                }
            },
        }
    }
}
