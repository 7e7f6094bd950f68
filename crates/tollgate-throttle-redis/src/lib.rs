//! `tollgate-throttle-redis`: the engine's throttle buckets in Redis, so that every
//! node of a cluster takes tokens from one shared bucket.
//!
//! One decision is one atomic Lua script ([`SCRIPT`], sent with `EVALSHA`, loaded once
//! and loaded again when Redis answers `NOSCRIPT`): it reads the TAT of every bucket the
//! decision needs, checks them all with the GCRA of [`tollgate_core::throttle`] and,
//! only when every bucket allows and a token is to be taken, stores every new TAT —
//! all or nothing. The time is the caller's `now` (the engine's clock), never Redis's
//! `TIME`, so the script gives exactly the engine's results for the same times; the
//! shared test vector `tollgate-core/tests/gcra_vector.json` holds both to that.
//!
//! Integers are exact for every non-negative `i64` (the script does not use Lua's
//! doubles for them). Keys are the engine's bucket keys behind a configurable prefix.
//! A stored TAT expires once its bucket would be full again, plus a margin for clock
//! differences between nodes; a missing key is a full bucket, as in the engine.
//!
//! Errors (Redis unreachable, slow, or answering something unexpected) are errors:
//! the caller must fail closed and give no permit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tollgate_throttle_redis::ThrottleError> {
//! use std::sync::Arc;
//! use tollgate_core::throttle::{BucketDemand, Gcra};
//! use tollgate_core::time::UnixMillis;
//! use tollgate_throttle_redis::{RedisThrottle, RedisThrottleConfig};
//!
//! let throttle = RedisThrottle::new(RedisThrottleConfig::new("redis://127.0.0.1:6379/"))?;
//! let demand = BucketDemand { key: Arc::from("[\"default\",\"csc-default\",0]"),
//!                             gcra: Gcra { capacity: 4, interval_ms: 5000 } };
//! let checked = throttle.check(&[demand], UnixMillis(1_773_144_000_000), true).await?;
//! assert!(checked.checks[0].allowed);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use tollgate_core::throttle::{BucketDemand, GcraCheck, TatUpdate};
use tollgate_core::time::UnixMillis;

/// The Lua source of the per-decision script.
pub const SCRIPT: &str = include_str!("gcra.lua");

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "tollgate:throttle:";

/// How to reach Redis and name the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisThrottleConfig {
    /// `redis://[user:password@]host:port/db` (or `rediss://`, `unix://`).
    pub url: String,
    /// Prepended to every bucket key, so several deployments (or test runs) can share
    /// one Redis.
    pub prefix: String,
    /// Longest wait for a connection and for one script's answer; past it the check
    /// fails (and the decision fails closed).
    pub timeout: Duration,
    /// Added to each stored TAT's lifetime: covers clock differences between nodes.
    pub expiry_margin: Duration,
}

impl RedisThrottleConfig {
    /// The defaults for `url`: prefix [`DEFAULT_PREFIX`], 1 s timeout, 60 s margin.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: Duration::from_secs(1),
            expiry_margin: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for RedisThrottleConfig {
    // The URL may carry a password: only its scheme and host are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisThrottleConfig")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("expiry_margin", &self.expiry_margin)
            .finish()
    }
}

/// `scheme://host…` without user information.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Why a check could not be made. Every variant means: no permit.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A bucket or time the script cannot check (negative time, zero capacity or
    /// interval).
    #[error("invalid throttle input: {0}")]
    Input(String),
    /// The script's answer is not what it sends.
    #[error("unexpected answer from the throttle script: {0}")]
    Reply(String),
}

/// The result of one decision's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Per demand, in order: as [`tollgate_core::throttle::Gcra::check`] computes it.
    pub checks: Vec<GcraCheck>,
    /// The TATs stored (empty unless every bucket allowed and a token was taken), for
    /// [`tollgate_core::Evaluation::finish_with_checks`].
    pub updates: Vec<TatUpdate>,
}

/// Throttle buckets in Redis. Cheap to share behind an `Arc`; connects on first use
/// and reconnects by itself.
pub struct RedisThrottle {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    config: RedisThrottleConfig,
}

impl fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("config", &self.config)
            .field("connected", &self.connection.initialized())
            .finish()
    }
}

impl RedisThrottle {
    /// Checks the URL; connects on the first [`RedisThrottle::check`].
    pub fn new(config: RedisThrottleConfig) -> Result<Self, ThrottleError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| ThrottleError::Url(format!("{}: {e}", redacted(&config.url))))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            script: redis::Script::new(SCRIPT),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisThrottleConfig {
        &self.config
    }

    /// The Redis key of a bucket.
    pub fn redis_key(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.config.prefix)
    }

    /// A connection (shared, multiplexed), made on first use. A failed attempt is
    /// tried again on the next call.
    pub async fn connection(&self) -> Result<ConnectionManager, ThrottleError> {
        let timeout = self.config.timeout;
        let manager = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                match tokio::time::timeout(
                    timeout,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                {
                    Ok(Ok(m)) => Ok(m),
                    Ok(Err(e)) => Err(ThrottleError::Redis(e)),
                    Err(_) => Err(ThrottleError::Timeout(timeout)),
                }
            })
            .await?;
        Ok(manager.clone())
    }

    /// Checks every demand at `now` and, when all allow and `consume` is set, takes a
    /// token from each — atomically, in one script. Same results as
    /// [`tollgate_core::throttle::check_all`] on the same TATs.
    pub async fn check(
        &self,
        demands: &[BucketDemand],
        now: UnixMillis,
        consume: bool,
    ) -> Result<Checked, ThrottleError> {
        if demands.is_empty() {
            return Ok(Checked {
                checks: Vec::new(),
                updates: Vec::new(),
            });
        }
        let now_ms = now.as_millis();
        if now_ms < 0 {
            return Err(ThrottleError::Input(format!(
                "time {now_ms} is before the epoch"
            )));
        }
        let margin = i64::try_from(self.config.expiry_margin.as_millis()).unwrap_or(i64::MAX);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(now_ms.to_string())
            .arg(if consume { "1" } else { "0" })
            .arg(margin.to_string());
        for d in demands {
            if d.gcra.capacity < 1 || d.gcra.interval_ms < 1 {
                return Err(ThrottleError::Input(format!(
                    "bucket {} has capacity {} and interval {} ms; both must be at least 1",
                    d.key, d.gcra.capacity, d.gcra.interval_ms
                )));
            }
            invocation
                .key(self.redis_key(&d.key))
                .arg(d.gcra.capacity.to_string())
                .arg(d.gcra.interval_ms.to_string());
        }
        let mut connection = self.connection().await?;
        let reply: Vec<String> = tokio::time::timeout(
            self.config.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        .map_err(|_| ThrottleError::Timeout(self.config.timeout))??;
        parse_reply(demands, &reply, consume)
    }
}

fn parse_reply(
    demands: &[BucketDemand],
    reply: &[String],
    consume: bool,
) -> Result<Checked, ThrottleError> {
    fn bad(what: &str, value: &str) -> ThrottleError {
        ThrottleError::Reply(format!("{what} `{value}`"))
    }
    fn flag(value: &str) -> Result<bool, ThrottleError> {
        match value {
            "1" => Ok(true),
            "0" => Ok(false),
            other => Err(bad("flag", other)),
        }
    }
    let Some((taken, rest)) = reply.split_first() else {
        return Err(ThrottleError::Reply("an empty answer".into()));
    };
    if rest.len() != demands.len() * 4 {
        return Err(ThrottleError::Reply(format!(
            "{} values for {} buckets",
            reply.len(),
            demands.len()
        )));
    }
    let taken = flag(taken)?;
    let mut checks = Vec::with_capacity(demands.len());
    for chunk in rest.chunks_exact(4) {
        let [allowed, available, new_tat, retry] = chunk else {
            return Err(ThrottleError::Reply("a short bucket answer".into()));
        };
        checks.push(GcraCheck {
            allowed: flag(allowed)?,
            available: available.parse().map_err(|_| bad("available", available))?,
            new_tat: new_tat.parse().map_err(|_| bad("new_tat", new_tat))?,
            retry_after_ms: retry.parse().map_err(|_| bad("retry_after_ms", retry))?,
        });
    }
    let all = checks.iter().all(|c| c.allowed);
    if taken != (all && consume) {
        return Err(ThrottleError::Reply(format!(
            "taken = {taken} with every bucket allowing = {all} and consume = {consume}"
        )));
    }
    let updates = if taken {
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
    Ok(Checked { checks, updates })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_passwords_are_not_shown() {
        let config = RedisThrottleConfig::new("redis://user:s3cret@redis.internal:6379/2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis.internal:6379/2"), "{shown}");
    }

    #[test]
    fn a_bad_url_is_refused_at_construction() {
        let err = RedisThrottle::new(RedisThrottleConfig::new("http://nope")).unwrap_err();
        assert!(matches!(err, ThrottleError::Url(_)), "{err}");
    }

    #[test]
    fn replies_that_do_not_match_the_demands_are_errors() {
        let demands = [BucketDemand {
            key: Arc::from("k"),
            gcra: tollgate_core::throttle::Gcra {
                capacity: 2,
                interval_ms: 10,
            },
        }];
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(parse_reply(&demands, &s(&["1", "1", "2", "20"]), true).is_err());
        assert!(parse_reply(&demands, &s(&["2", "1", "2", "20", "0"]), true).is_err());
        assert!(parse_reply(&demands, &s(&["1", "0", "0", "20", "5"]), true).is_err());
        assert!(parse_reply(&demands, &s(&["1", "1", "2", "20", "0"]), false).is_err());
        assert!(parse_reply(&demands, &s(&["0", "1", "x", "20", "0"]), true).is_err());
        let ok = parse_reply(&demands, &s(&["1", "1", "2", "20", "0"]), true).unwrap();
        assert_eq!(ok.updates.len(), 1);
        assert_eq!(ok.updates[0].tat, 20);
    }
}
