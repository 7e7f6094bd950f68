//! The store test suite, one code for every backend (feature `testkit`).
//!
//! A backend's test file implements [`Backend`] — how to make a fresh place (a
//! directory, a database), open a store there, and tamper with its stored rows with
//! raw SQL — and calls the suite functions. The SQLite tests (`tests/store.rs`) and
//! the PostgreSQL tests (`tollgate-store-pg/tests/suite.rs`) run the same checks:
//! the model-based test, the tamper property, proofs, concurrency and records.
//!
//! A backend may acknowledge an append before it is sequenced (PostgreSQL's cluster
//! ledger): the suite then waits with [`settle`] and checks the entries the store
//! holds, and checks the acknowledged `seq` / hashes only where they are given.
//!
//! The files: this one (the harness, helpers and the `store_suite!` macro),
//! `tamper.rs` (tampering is detected at the first bad seq), `ledger.rs` (the ledger
//! model, proofs, reopening, concurrency, long ledgers) and `records.rs` (the record
//! stores).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::missing_panics_doc
)]

mod ledger;
mod records;
mod tamper;

pub use ledger::*;
pub use records::*;
pub use tamper::*;

use std::time::{Duration, Instant};

use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tollgate_ledger::{EntryDraft, EntryKind, NoteSigner, NoteVerifier, SigningKey};

use crate::{LedgerStore as _, Store};

/// A ledger column a tamper hook may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `tenant` (text).
    Tenant,
    /// `seq` (integer).
    Seq,
    /// `kind` (text).
    Kind,
    /// `time` (text).
    Time,
    /// `canonical` (bytes).
    Canonical,
    /// `entry_hash` (bytes).
    EntryHash,
}

impl Column {
    const ALL: [Column; 6] = [
        Column::Tenant,
        Column::Seq,
        Column::Kind,
        Column::Time,
        Column::Canonical,
        Column::EntryHash,
    ];

    /// The SQL column name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Tenant => "tenant",
            Column::Seq => "seq",
            Column::Kind => "kind",
            Column::Time => "time",
            Column::Canonical => "canonical",
            Column::EntryHash => "entry_hash",
        }
    }

    /// Whether the column holds text (a flip must keep it valid, non-NUL UTF-8).
    pub fn is_text(self) -> bool {
        matches!(self, Column::Tenant | Column::Kind | Column::Time)
    }
}

/// One backend under test.
pub trait Backend: Sized {
    /// The store type.
    type Store: Store + 'static;
    /// Whether the backend can run here (a database server is configured); a backend
    /// that cannot says why on stderr, and fails instead where it must run (CI).
    fn available() -> bool {
        true
    }
    /// A fresh, empty place for one test case (a temporary directory, a new database).
    fn create() -> Self;
    /// Opens the store in this place (again after the previous one was dropped).
    fn open(&self, signer: Option<NoteSigner>) -> Self::Store;
    /// Opens the store with automatic checkpoints every `every`.
    fn open_auto_checkpoint(&self, signer: NoteSigner, every: Duration) -> Self::Store;

    /// Tamper hook: XORs byte `at` (modulo the length) of `column` of the row at `seq`
    /// of `tenant` with `mask`; for [`Column::Seq`], XORs the integer with `mask`
    /// (as `i64`, one bit at or above bit 7).
    fn flip(
        &self,
        store: &Self::Store,
        tenant: &str,
        seq: u64,
        column: Column,
        at: usize,
        mask: i64,
    );
    /// Tamper hook: deletes the row at `seq`.
    fn delete(&self, store: &Self::Store, tenant: &str, seq: u64);
    /// Tamper hook: swaps the contents (kind, time, canonical, entry_hash) of the rows
    /// at `a` and `b`; their seq columns (the positions) stay.
    fn swap(&self, store: &Self::Store, tenant: &str, a: u64, b: u64);
    /// Tamper hook: deletes the rows at `from` and after.
    fn cut_tail(&self, store: &Self::Store, tenant: &str, from: u64);
    /// Tamper hook: XORs byte `at` (modulo the length) of the note text of the
    /// tenant's `index`-th checkpoint (by size) with `mask` (the result stays valid,
    /// non-NUL UTF-8); returns that checkpoint's size.
    fn flip_checkpoint(
        &self,
        store: &Self::Store,
        tenant: &str,
        index: usize,
        at: usize,
        mask: u8,
    ) -> u64;
    /// Tamper hook: stores a checkpoint row as given.
    fn insert_checkpoint(&self, store: &Self::Store, tenant: &str, size: u64, note: &str);
}

/// Waits until the store has no committed-but-unsequenced entry (10 s at most).
pub fn settle(store: &dyn Store) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = store.pending_entries().unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} entries still pending after 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn signer() -> NoteSigner {
    NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[3; 32])).unwrap()
}

pub fn keys() -> Vec<NoteVerifier> {
    vec![signer().verifier()]
}

pub fn draft(tenant: &str, i: u64) -> EntryDraft {
    EntryDraft {
        tenant: tenant.into(),
        time: format!("2026-11-21T12:00:{:02}.{:03}Z", i % 60, i % 1000),
        kind: EntryKind::ALL[(i % 11) as usize],
        body: json!({ "i": i, "verdict": if i.is_multiple_of(3) { "BLOCK" } else { "ALLOW" }, "trace": [{"gate": "permit", "ok": true}] }),
    }
}

fn checkpoint_now(store: &dyn Store, tenant: &str, time: &str) {
    settle(store);
    store.issue_checkpoint(tenant, time).wait().unwrap();
}

/// Builds tenant `a` with `n` entries (checkpoints at 1/3, 2/3 and the end) and
/// tenant `b` with a few entries interleaved.
pub fn build<B: Backend>(backend: &B, n: u64) -> B::Store {
    let store = backend.open(Some(signer()));
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(store.submit(draft("a", i)));
        if i.is_multiple_of(4) {
            acks.push(store.submit(draft("b", i)));
        }
        if i + 1 == n / 3 || i + 1 == 2 * n / 3 {
            for a in acks.drain(..) {
                a.wait().unwrap();
            }
            checkpoint_now(&store, "a", "2026-11-21T12:01:00Z");
        }
    }
    for a in acks {
        a.wait().unwrap();
    }
    checkpoint_now(&store, "a", "2026-11-21T12:02:00Z");
    checkpoint_now(&store, "b", "2026-11-21T12:02:00Z");
    store
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// Runs every suite function (`$cases`: proptest cases of the property tests) as a
/// `#[test]` of the calling crate, for backend `$b`.
#[macro_export]
macro_rules! store_suite {
    ($b:ty, $cases:expr) => {
        #[test]
        fn tampering_is_detected_at_the_first_bad_seq() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::tampering_is_detected_at_the_first_bad_seq::<$b>($cases);
        }
        #[test]
        fn a_checkpoint_by_an_untrusted_key_is_not_enough() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::a_checkpoint_by_an_untrusted_key_is_not_enough::<$b>();
        }
        #[test]
        fn store_matches_in_memory_model() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::store_matches_in_memory_model::<$b>($cases);
        }
        #[test]
        fn proofs_from_the_store_verify_against_its_checkpoints() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::proofs_from_the_store_verify_against_its_checkpoints::<$b>();
        }
        #[test]
        fn tiles_cover_each_checkpoint() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::tiles_cover_each_checkpoint::<$b>();
        }
        #[test]
        fn reopen_continues_the_chain() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::reopen_continues_the_chain::<$b>();
        }
        #[test]
        fn invalid_tenants_and_missing_signer_are_errors() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::invalid_tenants_and_missing_signer_are_errors::<$b>();
        }
        #[test]
        fn acks_can_be_awaited() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::acks_can_be_awaited::<$b>();
        }
        #[test]
        fn concurrent_appenders_get_a_gapless_chain() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::concurrent_appenders_get_a_gapless_chain::<$b>();
        }
        #[test]
        fn records_round_trip() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::records_round_trip::<$b>();
        }
        #[test]
        fn notify_records_round_trip() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::notify_records_round_trip::<$b>();
        }
        #[test]
        fn quota_reservations_never_overshoot() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::quota_reservations_never_overshoot::<$b>();
        }
        #[test]
        fn review_replacement_loses_no_vote() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::review_replacement_loses_no_vote::<$b>();
        }
        #[test]
        fn idempotency_claim_has_one_winner() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::idempotency_claim_has_one_winner::<$b>();
        }
        #[test]
        fn records_match_in_memory_model() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::records_match_in_memory_model::<$b>($cases);
        }
        #[test]
        fn duplicate_decision_id_fails_alone() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::duplicate_decision_id_fails_alone::<$b>();
        }
        #[test]
        fn long_ledgers_stream_and_stopped_reads_end() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::long_ledgers_stream_and_stopped_reads_end::<$b>();
        }
        #[test]
        fn automatic_checkpoints_follow_traffic() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::automatic_checkpoints_follow_traffic::<$b>();
        }
    };
}
