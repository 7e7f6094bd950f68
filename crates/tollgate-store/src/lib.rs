#![doc = include_str!("../README.md")]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod ack;
pub mod keyfile;
pub mod ledger_read;
mod notify;
mod read_cache;
mod records;
mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt::Debug;

pub use ack::{Ack, AckSender, ack_channel};
pub use ledger_read::LedgerRead;
pub use notify::*;
pub use records::*;
pub use sqlite::{SqliteConfig, SqliteStore};

/// The most appends one group commit takes.
pub const MAX_BATCH: usize = sqlite::MAX_BATCH;
pub use tollgate_ledger as ledger;
use tollgate_ledger::{
    CanonicalDraft, Entry, EntryDraft, Hash, NoteVerifier, SignedCheckpoint, Verified,
    VerifyFailure,
};

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption, constraint).
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A database server failed or could not be reached (a networked backend).
    #[error("database: {0}")]
    Backend(String),
    /// A ledger format error.
    #[error("ledger: {0}")]
    Ledger(#[from] tollgate_ledger::LedgerError),
    /// A file could not be read or written.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The writer thread is gone (the store is shutting down or crashed).
    #[error("the ledger writer is not running")]
    Closed,
    /// A tenant id that cannot name a ledger.
    #[error("invalid tenant id `{0}`")]
    InvalidTenant(String),
    /// No checkpoint signing key is configured.
    #[error("no checkpoint signing key is configured")]
    NoSigner,
    /// The stored data is not what the store wrote.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A requested proof or range is outside the ledger.
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// A stored JSON body could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A decision entry whose body's `decision_id` the tenant's ledger already holds.
    #[error("decision `{0}` is already in the ledger")]
    DuplicateDecision(String),
    /// An append failed earlier in its batch; the whole batch was rolled back.
    #[error("the append batch failed: {0}")]
    BatchFailed(String),
    /// This backend does not provide the feature.
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// Another process holds the data directory's write lock.
    #[error(
        "the data directory `{}` is in use by another Tollgate process (it holds `{}`); stop that process or use another data directory",
        dir.display(),
        lock.display()
    )]
    InUse {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Its lock file.
        lock: std::path::PathBuf,
    },
}

impl StoreError {
    /// A tenant's ledger holds fewer than `size` entries (a proof or range past its
    /// head).
    pub fn short_ledger(tenant: &str, size: u64) -> StoreError {
        StoreError::OutOfRange(format!(
            "the ledger of `{tenant}` has fewer than {size} entries"
        ))
    }
}

/// A tenant id names a ledger and a checkpoint origin: 1–128 characters from
/// `[A-Za-z0-9._:-]`.
pub fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 128
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidTenant(tenant.to_owned()))
    }
}

/// A ledger row exactly as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRow {
    /// The `seq` column.
    pub seq: i64,
    /// The `kind` column.
    pub kind: String,
    /// The `time` column.
    pub time: String,
    /// The canonical bytes the hash was computed over.
    pub canonical: Vec<u8>,
    /// The `entry_hash` column.
    pub entry_hash: Vec<u8>,
}

impl StoredRow {
    /// The entry the stored bytes hold (parsed, not verified: see
    /// [`ledger_read::verify`]).
    pub fn to_entry(&self) -> Result<Entry, StoreError> {
        let hash = Hash::from_slice(&self.entry_hash)
            .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?;
        Ok(Entry::from_canonical(&self.canonical, hash)?)
    }
}

/// What an append was given once durable.
///
/// A backend with one writer (SQLite) sequences an entry in the transaction that makes
/// it durable, so all three are `Some`. In a cluster (PostgreSQL) the entry is durable
/// once its *pending* row commits, and the elected sequencer gives it its sequence
/// number and hashes later (normally well under a second): then all three are `None`
/// and the entry is "pending integration" until [`LedgerStore::decision_seq`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Tenant.
    pub tenant: String,
    /// Sequence number assigned, `None` while pending.
    pub seq: Option<u64>,
    /// The entry's hash, `None` while pending.
    pub entry_hash: Option<Hash>,
    /// The previous entry's hash, `None` while pending.
    pub prev_hash: Option<Hash>,
}

impl Appended {
    /// Whether the entry already has its place in the chain.
    pub fn is_sequenced(&self) -> bool {
        self.seq.is_some()
    }
}

/// A tenant's ledger head: its size and last hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerHead {
    /// Number of entries.
    pub size: u64,
    /// `entry_hash` of the last entry (zero when empty).
    pub last_hash: Hash,
    /// Merkle root over all entries.
    pub root: Hash,
}

/// The audit ledger: append (durable, group-committed), read, checkpoints, proofs.
pub trait LedgerStore: Send + Sync + Debug {
    /// Hands a draft to the sequencer. The ack resolves once the entry is durable
    /// (committed and flushed) with its sequence number and hash, or with an error;
    /// a caller must not answer a verdict before it resolves `Ok`.
    fn submit(&self, draft: EntryDraft) -> Ack<Appended>;

    /// [`LedgerStore::submit`] for a draft whose body is RFC 8785 bytes already (the
    /// decision path writes them from typed records). Same durability contract. The
    /// default parses the body back and submits it; the SQLite store takes the bytes
    /// as they are.
    fn submit_canonical(&self, draft: CanonicalDraft) -> Ack<Appended> {
        match draft.to_draft() {
            Ok(d) => self.submit(d),
            Err(e) => Ack::ready(Err(e.into())),
        }
    }

    /// [`LedgerStore::submit`] and wait.
    fn append(&self, draft: EntryDraft) -> Result<Appended, StoreError> {
        self.submit(draft).wait()
    }

    /// The tenants that have a ledger.
    fn ledger_tenants(&self) -> Result<Vec<String>, StoreError>;

    /// The tenant's head, `None` if it has no entry.
    fn head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError>;

    /// The sequence number of the decision entry whose body's `decision_id` is this
    /// (indexed by the sequencer in the entry's own transaction).
    fn decision_seq(&self, tenant: &str, decision_id: &str) -> Result<Option<u64>, StoreError>;

    /// Committed entries, over all tenants, that are not sequenced yet (always 0 for a
    /// backend that sequences in the committing transaction).
    fn pending_entries(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Whether this process sequences entries now (a single-writer backend always
    /// does; in a cluster, only the elected sequencer).
    fn is_sequencer(&self) -> bool {
        true
    }

    /// Whether the decision entry with this `decision_id` is committed (durable) but
    /// not yet sequenced: "pending integration".
    fn decision_pending(&self, tenant: &str, decision_id: &str) -> Result<bool, StoreError> {
        let _ = (tenant, decision_id);
        Ok(false)
    }

    /// One entry.
    fn entry(&self, tenant: &str, seq: u64) -> Result<Option<Entry>, StoreError>;

    /// Entries with `from <= seq < to`, in order.
    fn range(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Entry>, StoreError>;

    /// Calls `visit` with every stored entry of the tenant in seq order, as stored.
    fn scan(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Signs the tenant's current tree head and stores the checkpoint.
    fn issue_checkpoint(&self, tenant: &str, time: &str) -> Ack<SignedCheckpoint>;

    /// The most recent checkpoint.
    fn latest_checkpoint(&self, tenant: &str) -> Result<Option<SignedCheckpoint>, StoreError>;

    /// All checkpoints, smallest first.
    fn checkpoints(&self, tenant: &str) -> Result<Vec<SignedCheckpoint>, StoreError>;

    /// Inclusion proof of entry `seq` in the tree of the first `size` entries.
    fn inclusion_proof(&self, tenant: &str, seq: u64, size: u64) -> Result<Vec<Hash>, StoreError>;

    /// Consistency proof from the tree of `from` entries to the tree of `to` entries.
    fn consistency_proof(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError>;

    /// How many leaves the tenant's stored tlog-tiles cover (the size of the last
    /// checkpoint whose tiles were written). `Unsupported` where a backend keeps none.
    fn tiled_size(&self, tenant: &str) -> Result<u64, StoreError> {
        let _ = tenant;
        Err(StoreError::Unsupported("tlog tiles"))
    }

    /// The stored data of tlog tile `(level, index)`, at the widest width it has grown
    /// to (a narrower partial tile is its prefix). `Unsupported` where a backend keeps
    /// none.
    fn tile(&self, tenant: &str, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (tenant, level, index);
        Err(StoreError::Unsupported("tlog tiles"))
    }

    /// Verifies the tenant's stored ledger with `keys` as the trusted checkpoint keys.
    /// The outer error is a failure to read; the inner one a ledger that does not verify.
    fn verify(
        &self,
        tenant: &str,
        keys: &[NoteVerifier],
    ) -> Result<Result<Verified, VerifyFailure>, StoreError>;
}

/// Tenants.
pub trait TenantStore: Send + Sync + Debug {
    /// Creates or replaces a tenant.
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    /// One tenant.
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError>;
    /// All tenants.
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
}

/// API keys (stored hashed) and the server's signing keys (public halves).
pub trait KeyStore: Send + Sync + Debug {
    /// Creates or replaces an API key record.
    fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The key whose hash is `hash`.
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// A tenant's keys.
    fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Records a signing key's public half (kept after rotation).
    fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Every signing key ever used, oldest first.
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
}

/// Policy documents and which version is active.
pub trait PolicyStore: Send + Sync + Debug {
    /// Stores a policy version (immutable once stored).
    fn put_policy_version(&self, policy: &PolicyRecord) -> Result<(), StoreError>;
    /// One version.
    fn policy_version(
        &self,
        tenant: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<Option<PolicyRecord>, StoreError>;
    /// All versions of a policy, oldest first.
    fn policy_versions(
        &self,
        tenant: &str,
        policy_id: &str,
    ) -> Result<Vec<PolicyRecord>, StoreError>;
    /// The ids of a tenant's policies (those with at least one version), sorted.
    fn policy_ids(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Makes `version` the active version of `policy_id` in an environment (a
    /// candidate equal to it is cleared). The first policy activated in an
    /// environment also becomes its default (what requests without `policy_refs` use).
    fn activate_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        version: u64,
    ) -> Result<(), StoreError>;
    /// The environment's default policy and its active version.
    fn active_policy(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Option<(String, u64)>, StoreError>;
    /// Makes an activated policy the environment's default; `false` if it has no
    /// active version there.
    fn set_default_policy(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
    ) -> Result<bool, StoreError>;
    /// Every policy with an active version in the environment, by id.
    fn policy_activations(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<PolicyActivation>, StoreError>;
    /// Sets (`Some((version, since_ms))`) or clears the candidate of an active policy;
    /// `false` if the policy has no active version in the environment.
    fn set_policy_candidate(
        &self,
        tenant: &str,
        environment: &str,
        policy_id: &str,
        candidate: Option<(u64, i64)>,
    ) -> Result<bool, StoreError>;
}

/// What one decision's velocity-history read and record touch, so a store can make
/// the read-decide-record atomic for exactly the decisions it could conflict with.
///
/// A decision reads the events of its actor, its source, or the whole tenant, and
/// records one event carrying its actor and source. So it conflicts with every
/// decision of the same actor or the same source, and with every decision that reads
/// the whole tenant; decisions of other actors and sources that read only their own
/// scopes do not conflict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryScope {
    /// The decision reads the whole tenant's history.
    pub whole_tenant: bool,
    /// The request's `actor.id`, if it has one.
    pub actor: Option<String>,
    /// The request's `source`, if it has one.
    pub source: Option<String>,
}

/// A read-decide-record of the velocity history held exclusive for one
/// [`HistoryScope`] (see [`HistoryStore::lock_history`]). Dropped without
/// [`HistoryGuard::commit`], what it added is not kept.
pub trait HistoryGuard: Send {
    /// As [`HistoryStore::history`], inside the guard.
    fn history(
        &mut self,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError>;
    /// As [`HistoryStore::add_history`], inside the guard: visible to others once
    /// committed.
    fn add_history(&mut self, record: &HistoryRecord) -> Result<u64, StoreError>;
    /// Makes what was added durable and visible, and releases the guard.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The [`HistoryGuard`] of a store that one process writes (SQLite): no lock of its
/// own, reads and writes go straight to the store. The server serialises a tenant's
/// history in-process (its history lock), which is exact when it is the only writer.
#[derive(Debug)]
pub struct UnlockedHistory<'a> {
    store: &'a dyn HistoryStore,
    tenant: String,
}

impl<'a> UnlockedHistory<'a> {
    /// The guard over the tenant's history in `store`.
    pub fn new(store: &'a dyn HistoryStore, tenant: &str) -> Self {
        UnlockedHistory {
            store,
            tenant: tenant.to_owned(),
        }
    }
}

impl HistoryGuard for UnlockedHistory<'_> {
    fn history(
        &mut self,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        self.store.history(&self.tenant, since_ms, actor, source)
    }
    fn add_history(&mut self, record: &HistoryRecord) -> Result<u64, StoreError> {
        self.store.add_history(record)
    }
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The history velocity conditions read: permitted enforce-mode actions.
pub trait HistoryStore: Send + Sync + Debug {
    /// Records an action; returns its row id. (A decision records through its
    /// [`HistoryGuard`]; this is for tools and tests.)
    fn add_history(&self, record: &HistoryRecord) -> Result<u64, StoreError>;
    /// Removes an action recorded by a decision that was then not recorded.
    fn remove_history(&self, tenant: &str, id: u64) -> Result<(), StoreError>;
    /// The tenant's actions at or after `since_ms`, oldest first: all of them when
    /// `actor` and `source` are both `None`, else those of that actor or that source.
    fn history(
        &self,
        tenant: &str,
        since_ms: i64,
        actor: Option<&str>,
        source: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError>;
    /// Forgets actions before `before_ms` (older than any window); returns how many.
    fn purge_history(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Begins one decision's read-decide-record of the tenant's history over `scope`:
    /// until the guard is committed or dropped, no other guard over a conflicting
    /// scope (see [`HistoryScope`]) of this tenant is granted — on every node sharing
    /// the store. A single-process store may return [`UnlockedHistory`] and leave the
    /// serialisation to its one process.
    fn lock_history<'a>(
        &'a self,
        tenant: &str,
        scope: &HistoryScope,
    ) -> Result<Box<dyn HistoryGuard + 'a>, StoreError>;
}

/// Signal sources.
pub trait SourceStore: Send + Sync + Debug {
    /// Creates or replaces a source.
    fn put_source(&self, source: &Record) -> Result<(), StoreError>;
    /// One source.
    fn source(&self, tenant: &str, id: &str) -> Result<Option<Record>, StoreError>;
    /// A tenant's sources.
    fn sources(&self, tenant: &str) -> Result<Vec<Record>, StoreError>;
}

/// Manual overrides.
pub trait OverrideStore: Send + Sync + Debug {
    /// Sets an override.
    fn put_override(&self, record: &Record) -> Result<(), StoreError>;
    /// Clears an override; `true` if there was one.
    fn clear_override(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
    /// A tenant's overrides.
    fn overrides(&self, tenant: &str) -> Result<Vec<Record>, StoreError>;
}

/// Idempotency records.
pub trait IdempotencyStore: Send + Sync + Debug {
    /// Claims `key` for a request with fingerprint `request_hash`, at `now_ms`.
    fn claim(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &str,
        now_ms: i64,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Stores the response of a claimed key.
    fn complete(
        &self,
        tenant: &str,
        key: &str,
        response: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Frees a claimed key whose request produced no response (it failed before
    /// anything was recorded), so a retry can run.
    fn release(&self, tenant: &str, key: &str) -> Result<(), StoreError>;
    /// Forgets records created before `before_ms`; returns how many.
    fn purge_idempotency(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// Human reviews.
pub trait ReviewStore: Send + Sync + Debug {
    /// Creates or replaces a review.
    fn put_review(&self, review: &ReviewRecord) -> Result<(), StoreError>;
    /// Replaces the stored review `current` by `next` (same tenant and id) only if it
    /// is still exactly `current`, as read; `true` if it did. Atomic for every user of
    /// the store at once — every node of a cluster: of concurrent replacements of one
    /// version, exactly one succeeds, and the others read again and retry (a vote, the
    /// approval's use and an expiry are never lost or applied twice).
    fn replace_review(
        &self,
        current: &ReviewRecord,
        next: &ReviewRecord,
    ) -> Result<bool, StoreError>;
    /// One review.
    fn review(&self, tenant: &str, id: &str) -> Result<Option<ReviewRecord>, StoreError>;
    /// A tenant's reviews, optionally only those with `status`.
    fn reviews(
        &self,
        tenant: &str,
        status: Option<ReviewStatus>,
    ) -> Result<Vec<ReviewRecord>, StoreError>;
}

/// Metering / quota counters.
pub trait QuotaStore: Send + Sync + Debug {
    /// Adds `amount` to a counter and returns its new value.
    fn add_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<u64, StoreError>;
    /// A counter's value.
    fn usage(&self, tenant: &str, period: &str, metric: &str) -> Result<u64, StoreError>;
    /// Adds `amount` to a counter only if its new value is at most `limit`; `true` if
    /// it did. Atomic for every user of the store at once — every node of a cluster:
    /// of concurrent reservations, exactly those that fit succeed, so a shared quota
    /// is never overshot (one conditional upsert in SQLite; a backend must not read
    /// then write in two steps outside a transaction or lock).
    fn reserve_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError>;
    /// Gives back `amount` of a counter (not below zero): a reservation whose decision
    /// was not recorded. Atomic like [`QuotaStore::reserve_usage`].
    fn release_usage(
        &self,
        tenant: &str,
        period: &str,
        metric: &str,
        amount: u64,
    ) -> Result<(), StoreError>;
}

/// Everything the server persists, for one `Arc<dyn Store>`.
pub trait Store:
    LedgerStore
    + TenantStore
    + KeyStore
    + PolicyStore
    + SourceStore
    + OverrideStore
    + IdempotencyStore
    + ReviewStore
    + QuotaStore
    + HistoryStore
    + NotifyStore
{
}

impl<T> Store for T where
    T: LedgerStore
        + TenantStore
        + KeyStore
        + PolicyStore
        + SourceStore
        + OverrideStore
        + IdempotencyStore
        + ReviewStore
        + QuotaStore
        + HistoryStore
        + NotifyStore
{
}
