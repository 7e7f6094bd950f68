//! Fault injection: a store that delegates every call to a real store and fails
//! exactly one chosen write.
//!
//! After [`FaultyStore::fail_at`]`(k)` the k-th write call (counted from the arming)
//! returns a `StoreError` without reaching the real store — for `submit` and
//! `issue_checkpoint`, an `Ack` that resolves to the error — and every other write
//! goes through. [`FaultyStore::record`] counts and names the writes without failing
//! any, so a test can learn how many writes one request makes.
//! [`FaultyStore::lose_ack_at`]`(k)` applies the k-th write and then reports it failed
//! (a lost acknowledgement: committed, but the caller is told it was not). Reads are
//! never counted and never fail. [`FaultyStore::stall_ledger`] holds every ledger
//! append back (its ack stays pending) until [`FaultyStore::release_ledger`]: a ledger
//! that cannot be written for now.

#![allow(dead_code)]

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use axum::http::StatusCode;
use serde_json::Value;
use tollgate_server::clock::ManualClock;
use tollgate_server::{App, BOOTSTRAP_FILE, Config, KEY_FILE, KEY_NAME};
use tollgate_store::ledger::{
    Entry, EntryDraft, NoteSigner, NoteVerifier, SignedCheckpoint, Verified, VerifyFailure,
};
use tollgate_store::{
    Ack, ApiKeyRecord, Appended, HistoryGuard, HistoryRecord, HistoryScope, HistoryStore,
    IdempotencyClaim, IdempotencyStore, KeyStore, LedgerHead, LedgerStore, OverrideStore,
    PolicyActivation, PolicyRecord, PolicyStore, QuotaStore, Record, ReviewRecord, ReviewStatus,
    ReviewStore, SigningKeyRecord, SourceStore, SqliteConfig, SqliteStore, Store, StoreError,
    StoredRow, TenantRecord, TenantStore, UnlockedHistory,
};

use crate::common::{Harness, T0};

#[derive(Debug, Default)]
struct Counting {
    /// Counting writes (armed or recording).
    on: bool,
    /// The write (1-based, counted from arming) that fails.
    fail_at: Option<usize>,
    /// Whether that write is applied before it reports its error (a lost
    /// acknowledgement) instead of not being applied at all.
    lose_ack: bool,
    /// Every write kind called since arming, in order.
    log: Vec<&'static str>,
    /// The kind of the write that was failed.
    failed: Option<&'static str>,
}

/// Whether ledger appends are held back, and the wait for their release.
#[derive(Debug, Default)]
struct Stall {
    on: Mutex<bool>,
    released: Condvar,
}

/// A store wrapper that fails one chosen write.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn Store>,
    state: Mutex<Counting>,
    stall: Arc<Stall>,
}

impl FaultyStore {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            state: Mutex::new(Counting::default()),
            stall: Arc::default(),
        }
    }

    /// Holds every ledger append from now on: it reaches the real store, and its ack
    /// resolves, only after [`FaultyStore::release_ledger`].
    pub(crate) fn stall_ledger(&self) {
        *self.stall.on.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Lets the held appends (and every later one) through.
    pub(crate) fn release_ledger(&self) {
        *self.stall.on.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.stall.released.notify_all();
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counting) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Counts and names writes from now on, failing none.
    pub(crate) fn record(&self) {
        self.with(|s| {
            *s = Counting {
                on: true,
                ..Counting::default()
            }
        });
    }

    /// Fails the `k`-th write from now on (1-based); every other write succeeds.
    pub(crate) fn fail_at(&self, k: usize) {
        assert!(k >= 1, "writes are counted from 1");
        self.with(|s| {
            *s = Counting {
                on: true,
                fail_at: Some(k),
                ..Counting::default()
            }
        });
    }

    /// Applies the `k`-th write from now on (1-based) but reports it failed, as when
    /// the acknowledgement of a committed write is lost (for `submit`: the error comes
    /// once the entry is durable); every other write succeeds.
    pub(crate) fn lose_ack_at(&self, k: usize) {
        assert!(k >= 1, "writes are counted from 1");
        self.with(|s| {
            *s = Counting {
                on: true,
                fail_at: Some(k),
                lose_ack: true,
                ..Counting::default()
            }
        });
    }

    /// Stops counting and failing; returns the write kinds called since arming and the
    /// kind of the one that was failed, if any.
    pub(crate) fn disarm(&self) -> (Vec<&'static str>, Option<&'static str>) {
        self.with(|s| {
            let out = (std::mem::take(&mut s.log), s.failed.take());
            *s = Counting::default();
            out
        })
    }

    /// Called at the start of every write: what to do with it.
    fn fate(&self, kind: &'static str) -> Fate {
        self.with(|s| {
            if !s.on {
                return Fate::Apply;
            }
            s.log.push(kind);
            let n = s.log.len();
            if s.fail_at != Some(n) {
                return Fate::Apply;
            }
            s.failed = Some(kind);
            let error = format!("injected fault: write #{n} ({kind})");
            if s.lose_ack {
                Fate::LoseAck(error)
            } else {
                Fate::Fail(error)
            }
        })
    }

    /// Runs a synchronous write according to its fate.
    fn write<T>(
        &self,
        kind: &'static str,
        apply: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.fate(kind) {
            Fate::Apply => apply(),
            Fate::Fail(e) => Err(StoreError::Backend(e)),
            Fate::LoseAck(e) => {
                apply()?;
                Err(StoreError::Backend(e))
            }
        }
    }

    /// Runs an acknowledged write (`submit`, `issue_checkpoint`) according to its fate.
    fn write_ack<T: Send + 'static>(
        &self,
        kind: &'static str,
        apply: impl FnOnce() -> Ack<T>,
    ) -> Ack<T> {
        match self.fate(kind) {
            Fate::Apply => apply(),
            Fate::Fail(e) => Ack::ready(Err(StoreError::Backend(e))),
            Fate::LoseAck(e) => {
                let ack = apply();
                let (tx, rx) = tollgate_store::ack_channel();
                // The error is reported once the write is done (durable).
                std::thread::spawn(move || {
                    let _ = ack.wait();
                    tx.send(Err(StoreError::Backend(e)));
                });
                rx
            }
        }
    }
}

/// What happens to one write.
enum Fate {
    Apply,
    Fail(String),
    LoseAck(String),
}

impl LedgerStore for FaultyStore {
    fn submit(&self, draft: EntryDraft) -> Ack<Appended> {
        self.write_ack("submit", || {
            if !*self.stall.on.lock().unwrap_or_else(PoisonError::into_inner) {
                return self.inner.submit(draft);
            }
            let (tx, rx) = tollgate_store::ack_channel();
            let (inner, stall) = (Arc::clone(&self.inner), Arc::clone(&self.stall));
            std::thread::spawn(move || {
                let on = stall.on.lock().unwrap_or_else(PoisonError::into_inner);
                let on = stall
                    .released
                    .wait_while(on, |on| *on)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(on);
                tx.send(inner.submit(draft).wait());
            });
            rx
        })
    }
    // `append` is the trait's default: `submit` (counted) and wait.
    fn ledger_tenants(&self) -> Result<Vec<String>, StoreError> {
        self.inner.ledger_tenants()
    }
    fn head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError> {
        self.inner.head(tenant)
    }
    fn decision_seq(&self, tenant: &str, decision_id: &str) -> Result<Option<u64>, StoreError> {
        self.inner.decision_seq(tenant, decision_id)
    }
    fn pending_entries(&self) -> Result<u64, StoreError> {
        self.inner.pending_entries()
    }
    fn is_sequencer(&self) -> bool {
        self.inner.is_sequencer()
    }
    fn decision_pending(&self, tenant: &str, decision_id: &str) -> Result<bool, StoreError> {
        self.inner.decision_pending(tenant, decision_id)
    }
    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.inner.entry(tenant, seq)
    }
    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError> {
        self.inner.range(tenant, from, to)
    }
    fn scan(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.scan(tenant, visit)
    }
    fn issue_checkpoint(&self, tenant: &str, time: &str) -> Ack<SignedCheckpoint> {
        self.write_ack("issue_checkpoint", || {
            self.inner.issue_checkpoint(tenant, time)
        })
    }
    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.inner.latest_checkpoint(tenant)
    }
    fn checkpoints(&self, tenant: &str) -> Result<Vec<SignedCheckpoint>, StoreError> {
        self.inner.checkpoints(tenant)
    }
    fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<Vec<tollgate_store::ledger::Hash>, StoreError> {
        self.inner.inclusion_proof(tenant, seq, size)
    }
    fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<tollgate_store::ledger::Hash>, StoreError> {
        self.inner.consistency_proof(tenant, from, to)
    }
    fn verify(
        &self,
        tenant: &str,
        keys: &[NoteVerifier],
    ) -> Result<Result<Verified, VerifyFailure>, StoreError> {
        self.inner.verify(tenant, keys)
    }
}

impl TenantStore for FaultyStore {
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.write("put_tenant", || self.inner.put_tenant(tenant))
    }
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.inner.tenant(id)
    }
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.inner.tenants()
    }
}

impl KeyStore for FaultyStore {
    fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write("put_api_key", || self.inner.put_api_key(key))
    }
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.inner.api_key_by_hash(hash)
    }
    fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.api_keys(tenant)
    }
    fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        self.write("put_signing_key", || self.inner.put_signing_key(key))
    }
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.inner.signing_keys()
    }
}

impl PolicyStore for FaultyStore {
    fn put_policy_version(&self, policy: &PolicyRecord) -> Result<(), StoreError> {
        self.write("put_policy_version", || {
            self.inner.put_policy_version(policy)
        })
    }
    fn policy_version(
        &self,
        tenant: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<Option<PolicyRecord>, StoreError> {
        self.inner.policy_version(tenant, policy_id, version)
    }
    fn policy_versions(
        &self,
        tenant: &str,
        policy_id: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        self.inner.policy_versions(tenant, policy_id)
    }
    fn policy_ids(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.inner.policy_ids(tenant)
    }
    fn activate_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        self.write("activate_policy", || {
            self.inner
                .activate_policy(tenant, environment, policy_id, version)
        })
    }
    fn active_policy(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        self.inner.active_policy(tenant, environment)
    }
    fn set_default_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
    ) -> Result<bool, StoreError> {
        self.write("set_default_policy", || {
            self.inner
                .set_default_policy(tenant, environment, policy_id)
        })
    }
    fn policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError> {
        self.inner.policy_activations(tenant, environment)
    }
    fn set_policy_candidate(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        candidate: Option<(u64, i64)>,
    ) -> Result<bool, StoreError> {
        self.write("set_policy_candidate", || {
            self.inner
                .set_policy_candidate(tenant, environment, policy_id, candidate)
        })
    }
}

impl HistoryStore for FaultyStore {
    fn add_history(&self, record: &HistoryRecord) -> Result<u64, StoreError> {
        self.write("add_history", || self.inner.add_history(record))
    }
    fn remove_history(&self, tenant: &str, id: u64) -> Result<(), StoreError> {
        self.write("remove_history", || self.inner.remove_history(tenant, id))
    }
    fn history(
        &self,
        tenant: &str,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        self.inner.history(tenant, since_ms, actor, source)
    }
    fn purge_history(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write("purge_history", || self.inner.purge_history(before_ms))
    }
    fn lock_history<'a>(
        &'a self,
        tenant: &str,
        _scope: &HistoryScope,
    ) -> Result<Box<dyn HistoryGuard + 'a>, StoreError> {
        // Through this store, so its faults apply to the decision's history writes.
        Ok(Box::new(UnlockedHistory::new(self, tenant)))
    }
}

impl SourceStore for FaultyStore {
    fn put_source(&self, source: &Record) -> Result<(), StoreError> {
        self.write("put_source", || self.inner.put_source(source))
    }
    fn source(&self, tenant: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.inner.source(tenant, id)
    }
    fn sources(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.sources(tenant)
    }
}

impl OverrideStore for FaultyStore {
    fn put_override(&self, record: &Record) -> Result<(), StoreError> {
        self.write("put_override", || self.inner.put_override(record))
    }
    fn clear_override(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.write("clear_override", || self.inner.clear_override(tenant, id))
    }
    fn overrides(&self, tenant: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.overrides(tenant)
    }
}

impl IdempotencyStore for FaultyStore {
    fn claim(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.write("claim", || {
            self.inner.claim(tenant, key, request_hash, now_ms)
        })
    }
    fn complete(&self, tenant: &str, key: &str, response: &Value) -> Result<(), StoreError> {
        self.write("complete", || self.inner.complete(tenant, key, response))
    }
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.write("release", || self.inner.release(tenant, key))
    }
    fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write("purge_idempotency", || {
            self.inner.purge_idempotency(before_ms)
        })
    }
}

impl ReviewStore for FaultyStore {
    fn put_review(&self, review: &ReviewRecord) -> Result<(), StoreError> {
        self.write("put_review", || self.inner.put_review(review))
    }
    fn replace_review(
        &self,
        current: &ReviewRecord,
        next: &ReviewRecord,
    ) -> Result<bool, StoreError> {
        self.write("replace_review", || {
            self.inner.replace_review(current, next)
        })
    }
    fn review(&self, tenant: &str, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
        self.inner.review(tenant, id)
    }
    fn reviews(
        &self,
        tenant: &str,
        status: Option<ReviewStatus>,
    ) -> Result<Vec<ReviewRecord>, StoreError> {
        self.inner.reviews(tenant, status)
    }
}

impl QuotaStore for FaultyStore {
    fn add_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<u64, StoreError> {
        self.write("add_usage", || {
            self.inner.add_usage(tenant, period, metric, amount)
        })
    }
    fn usage(&self, tenant: &str, period: &str, metric: &str) -> Result<u64, StoreError> {
        self.inner.usage(tenant, period, metric)
    }
    fn reserve_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        self.write("reserve_usage", || {
            self.inner
                .reserve_usage(tenant, period, metric, amount, limit)
        })
    }
    fn release_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<(), StoreError> {
        self.write("release_usage", || {
            self.inner.release_usage(tenant, period, metric, amount)
        })
    }
}

impl tollgate_store::NotifyStore for FaultyStore {
    fn put_sink(
        &self,
        sink: &tollgate_store::SinkRecord,
        start_seq: u64,
    ) -> Result<(), StoreError> {
        self.write("put_sink", || self.inner.put_sink(sink, start_seq))
    }
    fn sink(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<tollgate_store::SinkRecord>, StoreError> {
        self.inner.sink(tenant, id)
    }
    fn sinks(&self, tenant: Option<&str>) -> Result<Vec<tollgate_store::SinkRecord>, StoreError> {
        self.inner.sinks(tenant)
    }
    fn delete_sink(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.write("delete_sink", || self.inner.delete_sink(tenant, id))
    }
    fn sink_cursor(
        &self,
        tenant: &str,
        sink_id: &str,
    ) -> Result<Option<tollgate_store::SinkCursor>, StoreError> {
        self.inner.sink_cursor(tenant, sink_id)
    }
    fn advance_sink_cursor(&self, cursor: &tollgate_store::SinkCursor) -> Result<(), StoreError> {
        self.write("advance_sink_cursor", || {
            self.inner.advance_sink_cursor(cursor)
        })
    }
    fn put_delivery(&self, delivery: &tollgate_store::DeliveryRecord) -> Result<(), StoreError> {
        self.write("put_delivery", || self.inner.put_delivery(delivery))
    }
    fn put_deliveries(&self, rows: &[tollgate_store::DeliveryRecord]) -> Result<(), StoreError> {
        self.write("put_deliveries", || self.inner.put_deliveries(rows))
    }
    fn open_deliveries(
        &self,
        tenant: &str,
        sink_id: &str,
        from_seq: u64,
    ) -> Result<Vec<tollgate_store::DeliveryRecord>, StoreError> {
        self.inner.open_deliveries(tenant, sink_id, from_seq)
    }
    fn delivery(
        &self,
        tenant: &str,
        sink_id: &str,
        seq: u64,
    ) -> Result<Option<tollgate_store::DeliveryRecord>, StoreError> {
        self.inner.delivery(tenant, sink_id, seq)
    }
    fn deliveries(
        &self,
        tenant: &str,
        sink_id: Option<&str>,
        state: Option<tollgate_store::DeliveryState>,
    ) -> Result<Vec<tollgate_store::DeliveryRecord>, StoreError> {
        self.inner.deliveries(tenant, sink_id, state)
    }
}

/// A server on a fresh temporary data directory whose store is the real embedded
/// SQLite store behind a [`FaultyStore`], with the hand-moved clock at [`T0`]; built
/// through the public `App::on_store`. Returns the harness and the wrapper (to arm it
/// and to inspect the real state afterwards).
pub(crate) fn faulty_harness(edit: impl FnOnce(&mut Config)) -> (Harness, Arc<FaultyStore>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    edit(&mut config);
    let (key, created) =
        tollgate_store::keyfile::load_or_create(&dir.path().join(KEY_FILE)).unwrap();
    let mut sqlite = SqliteConfig::in_dir(dir.path());
    sqlite.signer = Some(NoteSigner::new(KEY_NAME, key.clone()).unwrap());
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(sqlite).unwrap());
    let faulty = Arc::new(FaultyStore::new(inner));
    let clock = Arc::new(ManualClock::new(T0));
    let store: Arc<dyn Store> = faulty.clone();
    let app = App::on_store(config, store, key, created, clock.clone()).unwrap();
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE)).unwrap())
            .unwrap();
    let router = tollgate_server::router(app.state.clone());
    let harness = Harness {
        admin: keys["admin_key"]["secret"].as_str().unwrap().to_owned(),
        test_key: keys["test_key"]["secret"].as_str().unwrap().to_owned(),
        dir,
        state: app.state,
        router,
        clock,
    };
    (harness, faulty)
}

/// Whether an HTTP status is an answered verdict.
pub(crate) fn is_verdict(status: StatusCode) -> bool {
    status.is_success()
}
