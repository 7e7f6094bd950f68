//! Where decision throttle buckets live: in this process (the embedded default) or in
//! Redis (`throttle = "redis"`), where one atomic script per decision lets every node
//! of a cluster take tokens from the same bucket. Either way the engine's GCRA decides
//! (`Evaluation::finish` / `finish_with_checks`); a Redis that cannot answer fails the
//! decision closed: 503, no verdict, no permit.

use std::sync::Mutex;

use tollgate_core::{Decision, Evaluation, MemoryBuckets, UnixMillis};
use tollgate_throttle_redis::{RedisThrottle, RedisThrottleConfig};

use crate::config::{Config, ThrottleKind};
use crate::error::ApiError;
use crate::state::lock_error;

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
    pub(crate) async fn finish(
        &self,
        evaluation: Evaluation,
        now: UnixMillis,
    ) -> Result<Decision, ApiError> {
        match self {
            Throttle::Memory(buckets) => {
                // INVARIANT: reading the buckets, deciding and storing the new TATs
                // happen under one lock, so two requests cannot take the same token.
                let mut buckets = buckets.lock().map_err(lock_error)?;
                let tats = buckets.read(evaluation.demands());
                let decision = evaluation.finish(&tats);
                buckets.apply(&decision.bucket_updates);
                Ok(decision)
            }
            Throttle::Redis(redis) => {
                // INVARIANT: the script checks and updates every bucket atomically in
                // Redis; an error is a 503, never a permit.
                let checked = redis
                    .check(evaluation.demands(), now, evaluation.consumes())
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "throttle check failed; answering 503");
                        ApiError::ThrottleUnavailable
                    })?;
                Ok(evaluation.finish_with_checks(&checked.checks, checked.updates))
            }
            Throttle::Unusable(why) if !evaluation.demands().is_empty() => {
                tracing::error!(error = %why, "throttle unusable; answering 503");
                Err(ApiError::ThrottleUnavailable)
            }
            Throttle::Unusable(_) => Ok(evaluation.finish(&[])),
        }
    }
}
