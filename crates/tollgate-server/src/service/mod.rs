//! The decision service: everything Tollgate does, with no HTTP in it.
//!
//! [`DecisionService`] owns the store, the signing key, the clock, the meter, the
//! throttle and small caches invalidated on every write that concerns them (none with
//! a shared store, where another node may write: `Config::shared_state`). Its fields
//! are private; the HTTP routes (`crate::routes`) and the SDK adapters
//! (`crate::compat`) call its methods and translate wire shapes to and from them.
//! This module never imports axum.
//!
//! - `decide.rs`: one decision, reserve → decide → append → apply.
//! - `policies.rs`: which compiled policies a request runs against, and the policy
//!   lifecycle (publish, activate, candidates, replay).
//! - `reviews.rs`, `grants.rs`, `outcomes.rs`: the human review, the execution
//!   grant, and the signed outcome channel.
//! - `ledger.rs`: appending entries, reading decisions back, dossiers and proofs.
//! - `admin.rs`: tenants, keys, sources, overrides.
//! - `records.rs`: the typed ledger entry bodies and review records.

pub mod admin;
pub mod auth;
pub mod body;
pub mod console;
pub mod decide;
pub mod error;
pub mod grants;
pub mod idempotency;
pub mod ledger;
pub(crate) mod meter;
pub mod notify;
pub mod outcomes;
pub mod policies;
pub mod records;
pub mod reviews;
pub mod signing;
pub(crate) mod throttle;
pub mod tlog;

pub use auth::Caller;
pub use decide::{DecideCall, Decided};
pub use error::Error;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use tollgate_core::{Gcra, Override, UnixMillis};
use tollgate_ledger::{Jwk, Jwks, NoteVerifier, thumbprint};
use tollgate_store::{ApiKeyRecord, Store};

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;

/// The server's Ed25519 key: signs verdicts and checkpoints.
#[derive(Debug)]
pub struct ServerKey {
    key: SigningKey,
    /// JWKS key id (RFC 7638 thumbprint).
    pub kid: String,
}

impl ServerKey {
    /// Wraps a signing key.
    pub fn new(key: SigningKey) -> Self {
        let kid = thumbprint(&key.verifying_key());
        Self { key, kid }
    }

    /// Base64 Ed25519 signature of `bytes`.
    pub fn sign_b64(&self, bytes: &[u8]) -> String {
        B64.encode(self.key.sign(bytes).to_bytes())
    }

    /// The public key.
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// The private key (for signing grants; never serialised).
    fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// A per-idempotency-key async lock.
pub(crate) type InflightLock = Arc<tokio::sync::Mutex<()>>;

/// The decision service. Shared as `Arc<DecisionService>`; every field is private.
#[derive(Debug)]
pub struct DecisionService {
    config: Config,
    store: Arc<dyn Store>,
    key: ServerKey,
    /// Signs responses, alone or in batches (its own thread).
    signer: signing::Signer,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    meter: meter::Meter,
    /// Decision throttle buckets (keys include the tenant): memory or Redis.
    throttle: throttle::Throttle,
    /// Per-key request-rate buckets: memory, or Redis beside the throttle.
    rate: throttle::KeyRate,
    keys: RwLock<HashMap<String, ApiKeyRecord>>,
    overrides: RwLock<HashMap<String, Arc<Vec<Override>>>>,
    /// Idempotency keys being decided right now on this node.
    inflight: Mutex<HashMap<(String, String), InflightLock>>,
    /// Tenants with ledger entries since their last checkpoint.
    dirty: Mutex<HashSet<String>>,
    /// Verifier keys for checkpoints (signed-note form).
    note_verifier: NoteVerifier,
    /// Serialises review votes and approval use.
    reviews_lock: Mutex<()>,
    /// Per-tenant locks over reading and extending the velocity history.
    /// Async locks: a decision awaits the throttle (Redis) while holding one.
    history_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The HTTP client of notification and SIEM deliveries.
    deliverer: crate::notify::Deliverer,
}

impl DecisionService {
    /// Builds the service.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        key: SigningKey,
        note_verifier: NoteVerifier,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // `App::open` refuses a throttle configuration that cannot work; should one
        // reach here anyway, every throttled decision fails closed.
        let throttle =
            throttle::Throttle::from_config(&config).unwrap_or_else(throttle::Throttle::Unusable);
        let meter = meter::Meter::new(config.shared_state());
        let deliverer = crate::notify::Deliverer::new(&config.notify);
        let rate = throttle::KeyRate::from_config(&config);
        let key = ServerKey::new(key);
        let signer = signing::Signer::new(key.signing_key().clone(), key.kid.clone());
        DecisionService {
            deliverer,
            config,
            store,
            key,
            signer,
            clock,
            metrics: Metrics::new(),
            meter,
            throttle,
            rate,
            keys: RwLock::new(HashMap::new()),
            overrides: RwLock::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            note_verifier,
            reviews_lock: Mutex::new(()),
            history_locks: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The server key.
    pub fn server_key(&self) -> &ServerKey {
        &self.key
    }

    /// The response signer.
    pub(crate) fn signer(&self) -> &signing::Signer {
        &self.signer
    }

    /// This node's checkpoint verifier key (signed-note form).
    pub fn note_verifier(&self) -> &NoteVerifier {
        &self.note_verifier
    }

    /// The HTTP side of notification and SIEM deliveries.
    pub fn deliverer(&self) -> &crate::notify::Deliverer {
        &self.deliverer
    }

    /// The Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Now, as the engine takes it.
    pub fn now(&self) -> UnixMillis {
        UnixMillis(self.now_ms())
    }

    /// The key with this hash, from the cache or the store. With a shared store there
    /// is no cache: a key revoked on another node is refused on the next request.
    pub(crate) fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, Error> {
        if self.config.shared_state() {
            return Ok(self.store.api_key_by_hash(hash)?);
        }
        if let Some(k) = self.keys.read().map_err(poisoned)?.get(hash) {
            return Ok(Some(k.clone()));
        }
        let found = self.store.api_key_by_hash(hash)?;
        if let Some(k) = &found {
            self.keys
                .write()
                .map_err(poisoned)?
                .insert(hash.to_owned(), k.clone());
        }
        Ok(found)
    }

    /// Drops cached keys (after a key is created or revoked).
    pub(crate) fn forget_keys(&self) -> Result<(), Error> {
        self.keys.write().map_err(poisoned)?.clear();
        Ok(())
    }

    /// The tenant's engaged overrides. With a shared store they are read on every
    /// decision: one set or cleared on another node applies on the next request.
    pub(crate) fn overrides(&self, tenant: &str) -> Result<Arc<Vec<Override>>, Error> {
        let shared = self.config.shared_state();
        if !shared && let Some(o) = self.overrides.read().map_err(poisoned)?.get(tenant) {
            return Ok(Arc::clone(o));
        }
        let mut list = Vec::new();
        for r in self.store.overrides(tenant)? {
            let o: Override = serde_json::from_value(r.body).map_err(Error::internal)?;
            list.push(o);
        }
        list.sort_by(|a, b| a.id.cmp(&b.id));
        let list = Arc::new(list);
        if shared {
            return Ok(list);
        }
        self.overrides
            .write()
            .map_err(poisoned)?
            .insert(tenant.to_owned(), Arc::clone(&list));
        Ok(list)
    }

    /// Drops the tenant's cached overrides (after a set or clear).
    pub(crate) fn forget_overrides(&self, tenant: &str) -> Result<(), Error> {
        self.overrides.write().map_err(poisoned)?.remove(tenant);
        Ok(())
    }

    /// The per-key request rate limit: a GCRA bucket per key, in this process or (in
    /// cluster mode, with the throttle in Redis) shared by every node.
    pub(crate) async fn check_key_rate(&self, key_id: &str) -> Result<(), Error> {
        let config = &self.config;
        let per_second = i64::from(config.key_rate_per_second.max(1));
        let gcra = Gcra {
            capacity: config.key_rate_burst.max(1),
            interval_ms: (1000 / per_second).max(1),
        };
        let demand = [tollgate_core::BucketDemand {
            key: Arc::from(key_id),
            gcra,
        }];
        let checks = self.rate.take(&demand, self.now()).await?;
        match checks.first() {
            Some(c) if c.allowed => Ok(()),
            Some(c) => Err(Error::RateLimited {
                retry_after_s: c.retry_after_ms.div_ceil(1000).max(1),
            }),
            None => Err(Error::internal("rate check returned nothing")),
        }
    }

    /// The public keys as a JWKS: the current key first, then earlier ones.
    pub fn jwks(&self) -> Jwks {
        let current = self.key.verifying_key();
        let mut keys = vec![Jwk::from_key(&current)];
        if let Ok(stored) = self.store.signing_keys() {
            for k in stored {
                if k.public_key != current.to_bytes()
                    && let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key)
                {
                    keys.push(Jwk::from_key(&vk));
                }
            }
        }
        Jwks { keys }
    }

    /// The checkpoint verifier keys of every node (each node records its public key
    /// in the store), this node's first.
    pub fn note_verifiers(&self) -> Vec<NoteVerifier> {
        let mut out = vec![self.note_verifier.clone()];
        let own = self.key.verifying_key().to_bytes();
        if let Ok(stored) = self.store.signing_keys() {
            for k in stored {
                if k.public_key != own
                    && let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key)
                    && let Ok(v) = NoteVerifier::new(&k.name, vk)
                {
                    out.push(v);
                }
            }
        }
        out
    }

    /// The tenant's history lock (see `decide.rs`).
    pub(crate) fn history_lock(&self, tenant: &str) -> Result<Arc<tokio::sync::Mutex<()>>, Error> {
        let mut locks = self.history_locks.lock().map_err(poisoned)?;
        Ok(Arc::clone(locks.entry(tenant.to_owned()).or_default()))
    }

    /// Marks a tenant as having entries since its last checkpoint.
    pub(crate) fn mark_dirty(&self, tenant: &str) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(tenant.to_owned());
        }
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("a lock was poisoned")
}

/// Maps a poisoned lock to an internal error.
pub(crate) fn lock_error<T>(e: T) -> Error {
    poisoned(e)
}

/// Checks that a throttle configuration can work (`App::open` refuses one that
/// cannot, rather than failing every throttled decision).
pub fn check_throttle_config(config: &Config) -> Result<(), String> {
    throttle::Throttle::from_config(config).map(|_| ())
}

/// What a write did: made something new, or changed what was there. (The routes
/// answer 201 and 200.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Something new.
    Created,
    /// Something that existed.
    Changed,
}
