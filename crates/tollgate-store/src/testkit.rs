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
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::missing_panics_doc
)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tollgate_ledger::merkle;
use tollgate_ledger::{
    Checkpoint, Entry, EntryDraft, EntryKind, Hash, NoteSigner, NoteVerifier, Problem, SigningKey,
};

use crate::{
    Appended, IdempotencyClaim, IdempotencyStore as _, LedgerStore as _, OverrideStore as _,
    QuotaStore as _, Record, SourceStore as _, Store, StoreError,
};

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

#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip bits `mask` of byte `at` (modulo length) of `column` in the row of seq `row`.
    Byte {
        row: u64,
        column: usize,
        at: usize,
        mask: u8,
    },
    Delete {
        row: u64,
    },
    Swap {
        a: u64,
        b: u64,
    },
    CutTail {
        from: u64,
    },
    /// Flip a byte of the text of checkpoint number `index` (of the three of `a`).
    CheckpointByte {
        index: usize,
        at: usize,
        mask: u8,
    },
    /// Add a checkpoint signed by another key over a different root.
    ForeignCheckpoint {
        size: u64,
    },
}

fn mutation(n: u64) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..n, 0..6usize, any::<usize>(), 1..=255u8).prop_map(|(row, column, at, mask)| {
            Mutation::Byte {
                row,
                column,
                at,
                mask,
            }
        }),
        (0..n).prop_map(|row| Mutation::Delete { row }),
        (0..n, 0..n)
            .prop_filter("distinct", |(a, b)| a != b)
            .prop_map(|(a, b)| Mutation::Swap {
                a: a.min(b),
                b: a.max(b)
            }),
        (1..n).prop_map(|from| Mutation::CutTail { from }),
        (0..3usize, any::<usize>(), 1..=255u8)
            .prop_map(|(index, at, mask)| Mutation::CheckpointByte { index, at, mask }),
        (1..=n).prop_map(|size| Mutation::ForeignCheckpoint { size }),
    ]
}

/// The XOR a text byte gets: low five bits only, never zero, so an ASCII byte stays
/// printable ASCII; a tenant id never turns into `b`, the other tenant.
pub fn text_mask(mask: u8, column: Column) -> u8 {
    let m = (mask & 0x1f) | 0x01;
    if column == Column::Tenant && m == 0x03 {
        0x05
    } else {
        m
    }
}

/// Applies the mutation through the backend's hooks; returns the expected first bad seq.
fn apply<B: Backend>(backend: &B, store: &B::Store, m: &Mutation) -> u64 {
    match *m {
        Mutation::Byte {
            row,
            column,
            at,
            mask,
        } => {
            let column = Column::ALL[column];
            let mask = match column {
                // One bit at or above bit 7: the value stays outside the ledger's
                // range (a collision would violate UNIQUE).
                Column::Seq => 1i64 << (7 + (at % 56)),
                c if c.is_text() => i64::from(text_mask(mask, c)),
                _ => i64::from(mask),
            };
            backend.flip(store, "a", row, column, at, mask);
            row
        }
        Mutation::Delete { row } => {
            backend.delete(store, "a", row);
            row
        }
        Mutation::Swap { a, b } => {
            backend.swap(store, "a", a, b);
            a
        }
        Mutation::CutTail { from } => {
            backend.cut_tail(store, "a", from);
            from
        }
        Mutation::CheckpointByte { index, at, mask } => {
            let size = backend.flip_checkpoint(store, "a", index, at, mask);
            size - 1
        }
        Mutation::ForeignCheckpoint { size } => {
            let attacker =
                NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[66; 32])).unwrap();
            let cp = Checkpoint {
                origin: "tollgate/a".into(),
                size,
                root: Hash::digest(b"forged"),
                extensions: vec![],
            }
            .sign(&attacker)
            .unwrap();
            backend.insert_checkpoint(store, "a", size, &cp.to_text().unwrap());
            size - 1
        }
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Every direct mutation of the stored ledger is detected, at the right first bad
/// sequence number; the other tenant's ledger still verifies.
pub fn tampering_is_detected_at_the_first_bad_seq<B: Backend>(cases: u32) {
    let result = runner(cases).run(&mutation(30), |m| {
        let backend = B::create();
        let store = build(&backend, 30);
        let ok = store.verify("a", &keys()).unwrap().unwrap();
        prop_assert_eq!(ok.entries, 30);
        let expected = apply(&backend, &store, &m);
        let got = store.verify("a", &keys()).unwrap();
        let failure = match got {
            Ok(v) => return Err(TestCaseError::fail(format!("{m:?} not detected: {v:?}"))),
            Err(f) => f,
        };
        prop_assert_eq!(failure.seq, expected, "{:?} -> {}", m, failure);
        prop_assert!(store.verify("b", &keys()).unwrap().is_ok());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

pub fn a_checkpoint_by_an_untrusted_key_is_not_enough<B: Backend>() {
    let backend = B::create();
    let store = build(&backend, 10);
    let other = NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[4; 32])).unwrap();
    let f = store.verify("a", &[other.verifier()]).unwrap().unwrap_err();
    assert_eq!(f.seq, 2); // the first checkpoint covers 3 entries
    assert!(matches!(
        f.problem,
        Problem::BadCheckpointSignature { size: 3, .. }
    ));
}

#[derive(Clone, Debug)]
enum Op {
    Append { tenant: usize, n: u64 },
    Checkpoint { tenant: usize },
    Read { tenant: usize, seq: u64 },
    Range { tenant: usize, from: u64, len: u64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 1..12u64).prop_map(|(tenant, n)| Op::Append { tenant, n }),
        1 => (0..3usize).prop_map(|tenant| Op::Checkpoint { tenant }),
        2 => (0..3usize, 0..40u64).prop_map(|(tenant, seq)| Op::Read { tenant, seq }),
        1 => (0..3usize, 0..40u64, 0..10u64).prop_map(|(tenant, from, len)| Op::Range { tenant, from, len }),
        1 => Just(Op::Reopen),
    ]
}

pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// Checks an ack against the entry the model expects: where the backend gave a seq
/// and hashes they must be the expected ones.
fn check_ack(got: &Appended, expected: &Entry) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.tenant, &expected.tenant);
    if let Some(seq) = got.seq {
        prop_assert_eq!(seq, expected.seq);
        prop_assert_eq!(got.entry_hash, Some(expected.entry_hash));
        prop_assert_eq!(got.prev_hash, Some(expected.prev_hash));
    } else {
        prop_assert_eq!(got.entry_hash, None);
        prop_assert_eq!(got.prev_hash, None);
    }
    Ok(())
}

/// The store behaves like a map of tenant -> Vec<Entry> sealed in memory.
pub fn store_matches_in_memory_model<B: Backend>(cases: u32) {
    let strategy = prop::collection::vec(op(), 1..25);
    let result = runner(cases).run(&strategy, |ops| {
        let backend = B::create();
        let mut store = Some(backend.open(Some(signer())));
        let mut model: HashMap<&str, Vec<Entry>> = HashMap::new();
        let mut counter = 0u64;
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                Op::Append { tenant, n } => {
                    let t = TENANTS[tenant];
                    // Submitted together: they share group commits.
                    let drafts: Vec<EntryDraft> = (0..n)
                        .map(|_| {
                            counter += 1;
                            draft(t, counter)
                        })
                        .collect();
                    let acks: Vec<_> = drafts.iter().map(|d| s.submit(d.clone())).collect();
                    let log = model.entry(t).or_default();
                    let first = log.len() as u64;
                    for (d, a) in drafts.iter().zip(acks) {
                        let got = a.wait().unwrap();
                        let prev = log.last().map_or(Hash::ZERO, |e| e.entry_hash);
                        let expected = Entry::seal(d, log.len() as u64, prev).unwrap();
                        check_ack(&got, &expected)?;
                        log.push(expected);
                    }
                    // Once sequenced, the store holds exactly the model's entries.
                    settle(s);
                    for e in &log[first as usize..] {
                        prop_assert_eq!(s.entry(t, e.seq).unwrap(), Some(e.clone()));
                    }
                }
                Op::Checkpoint { tenant } => {
                    let t = TENANTS[tenant];
                    let cp = s
                        .issue_checkpoint(t, "2026-11-21T13:00:00Z")
                        .wait()
                        .unwrap();
                    let log = model.get(t).map(Vec::as_slice).unwrap_or(&[]);
                    let hashes: Vec<Hash> = log.iter().map(|e| e.entry_hash).collect();
                    prop_assert_eq!(cp.checkpoint.size, log.len() as u64);
                    prop_assert_eq!(
                        cp.checkpoint.root,
                        merkle::root_of_leaf_hashes(&merkle::leaf_hashes(&hashes))
                    );
                    prop_assert_eq!(s.latest_checkpoint(t).unwrap(), Some(cp));
                }
                Op::Read { tenant, seq } => {
                    let t = TENANTS[tenant];
                    let expected = model.get(t).and_then(|l| l.get(seq as usize)).cloned();
                    prop_assert_eq!(s.entry(t, seq).unwrap(), expected);
                }
                Op::Range { tenant, from, len } => {
                    let t = TENANTS[tenant];
                    let log = model.get(t).map(Vec::as_slice).unwrap_or(&[]);
                    let lo = (from as usize).min(log.len());
                    let hi = ((from + len) as usize).min(log.len());
                    prop_assert_eq!(s.range(t, from, from + len).unwrap(), log[lo..hi].to_vec());
                }
                Op::Reopen => {
                    drop(store.take());
                    store = Some(backend.open(Some(signer())));
                }
            }
        }
        let s = store.as_ref().unwrap();
        let mut tenants: Vec<String> = model
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(t, _)| t.to_string())
            .collect();
        tenants.sort();
        prop_assert_eq!(s.ledger_tenants().unwrap(), tenants);
        for (t, log) in &model {
            let head = s.head(t).unwrap();
            prop_assert_eq!(head.as_ref().map(|h| h.size).unwrap_or(0), log.len() as u64);
            if let Some(last) = log.last() {
                prop_assert_eq!(head.unwrap().last_hash, last.entry_hash);
            }
            let ok = s.verify(t, &keys()).unwrap().unwrap();
            prop_assert_eq!(ok.entries, log.len() as u64);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

pub fn proofs_from_the_store_verify_against_its_checkpoints<B: Backend>() {
    let backend = B::create();
    let store = build(&backend, 37);
    let cps = store.checkpoints("a").unwrap();
    assert_eq!(cps.len(), 3);
    let last = cps.last().unwrap();
    last.verify(&keys()).unwrap();
    for seq in 0..37 {
        let e = store.entry("a", seq).unwrap().unwrap();
        let proof = store.inclusion_proof("a", seq, 37).unwrap();
        merkle::verify_inclusion(
            &merkle::leaf_hash(&e.entry_hash.0),
            seq,
            37,
            &proof,
            &last.checkpoint.root,
        )
        .unwrap();
    }
    let first = &cps[0];
    let proof = store
        .consistency_proof("a", first.checkpoint.size, 37)
        .unwrap();
    merkle::verify_consistency(
        first.checkpoint.size,
        37,
        &first.checkpoint.root,
        &last.checkpoint.root,
        &proof,
    )
    .unwrap();
    assert!(store.inclusion_proof("a", 0, 38).is_err());
}

pub fn reopen_continues_the_chain<B: Backend>() {
    let backend = B::create();
    {
        let s = backend.open(Some(signer()));
        for i in 0..5 {
            s.append(draft("a", i)).unwrap();
        }
        settle(&s);
    }
    let s = backend.open(Some(signer()));
    s.append(draft("a", 5)).unwrap();
    settle(&s);
    let e5 = s.entry("a", 5).unwrap().unwrap();
    assert_eq!(e5.prev_hash, s.entry("a", 4).unwrap().unwrap().entry_hash);
    assert_eq!(e5.body["i"], 5);
    assert!(s.verify("a", &keys()).unwrap().is_ok());
}

pub fn invalid_tenants_and_missing_signer_are_errors<B: Backend>() {
    let backend = B::create();
    let s = backend.open(None);
    assert!(s.append(draft("bad tenant", 0)).is_err());
    assert!(s.append(draft("a\nb", 0)).is_err());
    s.append(draft("a", 0)).unwrap();
    assert!(matches!(
        s.issue_checkpoint("a", "t").wait(),
        Err(StoreError::NoSigner)
    ));
}

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

pub fn acks_can_be_awaited<B: Backend>() {
    let backend = B::create();
    let s: Arc<dyn Store> = Arc::new(backend.open(Some(signer())));
    let acks: Vec<_> = (0..50).map(|i| s.submit(draft("a", i))).collect();
    for (i, a) in acks.into_iter().enumerate() {
        let got = block_on(a).unwrap();
        if let Some(seq) = got.seq {
            assert_eq!(seq, i as u64);
        }
    }
    settle(s.as_ref());
    for i in 0..50u64 {
        assert_eq!(s.entry("a", i).unwrap().unwrap().body["i"], i);
    }
}

pub fn concurrent_appenders_get_a_gapless_chain<B: Backend>() {
    let backend = B::create();
    let s = Arc::new(backend.open(Some(signer())));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| s.append(draft("a", t * 1000 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<Option<u64>> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(acked.len(), 800);
    let mut given: Vec<u64> = acked.iter().flatten().copied().collect();
    given.sort();
    if !given.is_empty() {
        assert_eq!(given, (0..800).collect::<Vec<_>>());
    }
    settle(s.as_ref());
    s.issue_checkpoint("a", "t").wait().unwrap();
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().entries, 800);
    // Every acknowledged body is in the chain once.
    let mut bodies: Vec<u64> = s
        .range("a", 0, 800)
        .unwrap()
        .iter()
        .map(|e| e.body["i"].as_u64().unwrap())
        .collect();
    bodies.sort();
    let mut expected: Vec<u64> = (0..8)
        .flat_map(|t| (0..100).map(move |i| t * 1000 + i))
        .collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

pub fn records_round_trip<B: Backend>() {
    let backend = B::create();
    let s = backend.open(Some(signer()));
    let r = Record {
        tenant: "a".into(),
        id: "src-1".into(),
        body: json!({"kind": "feed"}),
    };
    s.put_source(&r).unwrap();
    assert_eq!(s.source("a", "src-1").unwrap(), Some(r.clone()));
    assert_eq!(s.sources("a").unwrap(), vec![r]);
    assert_eq!(s.add_usage("a", "2026-11", "decisions", 3).unwrap(), 3);
    assert_eq!(s.add_usage("a", "2026-11", "decisions", 4).unwrap(), 7);
    assert_eq!(s.usage("a", "2026-11", "decisions").unwrap(), 7);
    assert_eq!(s.usage("a", "2026-12", "decisions").unwrap(), 0);
}

/// 200 reservations from 8 threads against a limit of 50: exactly 50 succeed, and a
/// release makes room for exactly one more.
pub fn quota_reservations_never_overshoot<B: Backend>() {
    let backend = B::create();
    let s = Arc::new(backend.open(Some(signer())));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                (0..25)
                    .filter(|_| s.reserve_usage("a", "2026-11", "decisions", 1, 50).unwrap())
                    .count()
            })
        })
        .collect();
    let won: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(won, 50);
    assert_eq!(s.usage("a", "2026-11", "decisions").unwrap(), 50);
    assert!(!s.reserve_usage("a", "2026-11", "decisions", 1, 50).unwrap());
    s.release_usage("a", "2026-11", "decisions", 1).unwrap();
    assert_eq!(s.usage("a", "2026-11", "decisions").unwrap(), 49);
    assert!(s.reserve_usage("a", "2026-11", "decisions", 1, 50).unwrap());
    assert!(!s.reserve_usage("a", "2026-11", "decisions", 1, 50).unwrap());
    // A first reservation creates the counter; one past the limit does not.
    assert!(!s.reserve_usage("b", "2026-11", "decisions", 3, 2).unwrap());
    assert_eq!(s.usage("b", "2026-11", "decisions").unwrap(), 0);
    assert!(s.reserve_usage("b", "2026-11", "decisions", 2, 2).unwrap());
    assert_eq!(s.usage("b", "2026-11", "decisions").unwrap(), 2);
    // Releases stop at zero; a limit past i64 is no limit, not an error.
    s.release_usage("b", "2026-11", "decisions", 5).unwrap();
    assert_eq!(s.usage("b", "2026-11", "decisions").unwrap(), 0);
    assert!(
        s.reserve_usage("b", "2026-11", "decisions", 1, u64::MAX)
            .unwrap()
    );
}

/// 100 concurrent claims of one idempotency key: exactly one wins.
pub fn idempotency_claim_has_one_winner<B: Backend>() {
    let backend = B::create();
    let s = Arc::new(backend.open(Some(signer())));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.claim("a", "k1", "h", 1).unwrap())
        })
        .collect();
    let claims: Vec<IdempotencyClaim> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        claims
            .iter()
            .filter(|c| **c == IdempotencyClaim::New)
            .count(),
        1
    );
    s.complete("a", "k1", &json!({"verdict": "ALLOW"})).unwrap();
    assert_eq!(
        s.claim("a", "k1", "h", 2).unwrap(),
        IdempotencyClaim::Done(json!({"verdict": "ALLOW"}))
    );
    assert_eq!(
        s.claim("a", "k1", "other", 2).unwrap(),
        IdempotencyClaim::Mismatch
    );
    assert_eq!(s.purge_idempotency(2).unwrap(), 1);
}

#[derive(Clone, Debug)]
enum RecordOp {
    PutOverride {
        tenant: usize,
        id: u8,
        v: u8,
    },
    ClearOverride {
        tenant: usize,
        id: u8,
    },
    AddUsage {
        tenant: usize,
        metric: u8,
        amount: u64,
    },
    Claim {
        tenant: usize,
        key: u8,
        request: u8,
    },
    Complete {
        tenant: usize,
        key: u8,
        v: u8,
    },
    Reopen,
}

fn record_op() -> impl Strategy<Value = RecordOp> {
    prop_oneof![
        (0..3usize, 0..4u8, any::<u8>()).prop_map(|(tenant, id, v)| RecordOp::PutOverride {
            tenant,
            id,
            v
        }),
        (0..3usize, 0..4u8).prop_map(|(tenant, id)| RecordOp::ClearOverride { tenant, id }),
        (0..3usize, 0..3u8, 0..1000u64).prop_map(|(tenant, metric, amount)| RecordOp::AddUsage {
            tenant,
            metric,
            amount
        }),
        (0..3usize, 0..4u8, 0..2u8).prop_map(|(tenant, key, request)| RecordOp::Claim {
            tenant,
            key,
            request
        }),
        (0..3usize, 0..4u8, any::<u8>()).prop_map(|(tenant, key, v)| RecordOp::Complete {
            tenant,
            key,
            v
        }),
        Just(RecordOp::Reopen),
    ]
}

/// Overrides, quota counters and idempotency records against in-memory maps.
pub fn records_match_in_memory_model<B: Backend>(cases: u32) {
    let strategy = prop::collection::vec(record_op(), 1..40);
    let result = runner(cases).run(&strategy, |ops| {
        let backend = B::create();
        let mut store = Some(backend.open(Some(signer())));
        let mut overrides: BTreeMap<(usize, String), serde_json::Value> = BTreeMap::new();
        let mut usage: HashMap<(usize, u8), u64> = HashMap::new();
        // key -> (request, response)
        let mut idem: HashMap<(usize, u8), (u8, Option<serde_json::Value>)> = HashMap::new();
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                RecordOp::PutOverride { tenant, id, v } => {
                    let r = Record {
                        tenant: TENANTS[tenant].into(),
                        id: format!("o{id}"),
                        body: json!({ "v": v }),
                    };
                    s.put_override(&r).unwrap();
                    overrides.insert((tenant, r.id.clone()), r.body);
                }
                RecordOp::ClearOverride { tenant, id } => {
                    let had = overrides.remove(&(tenant, format!("o{id}"))).is_some();
                    prop_assert_eq!(
                        s.clear_override(TENANTS[tenant], &format!("o{id}"))
                            .unwrap(),
                        had
                    );
                }
                RecordOp::AddUsage {
                    tenant,
                    metric,
                    amount,
                } => {
                    let total = usage.entry((tenant, metric)).or_default();
                    *total += amount;
                    prop_assert_eq!(
                        s.add_usage(TENANTS[tenant], "2026-11", &format!("m{metric}"), amount)
                            .unwrap(),
                        *total
                    );
                }
                RecordOp::Claim {
                    tenant,
                    key,
                    request,
                } => {
                    let got = s
                        .claim(
                            TENANTS[tenant],
                            &format!("k{key}"),
                            &format!("r{request}"),
                            0,
                        )
                        .unwrap();
                    let expected = match idem.get(&(tenant, key)) {
                        None => {
                            idem.insert((tenant, key), (request, None));
                            IdempotencyClaim::New
                        }
                        Some((r, _)) if *r != request => IdempotencyClaim::Mismatch,
                        Some((_, None)) => IdempotencyClaim::InProgress,
                        Some((_, Some(v))) => IdempotencyClaim::Done(v.clone()),
                    };
                    prop_assert_eq!(got, expected);
                }
                RecordOp::Complete { tenant, key, v } => {
                    s.complete(TENANTS[tenant], &format!("k{key}"), &json!({ "v": v }))
                        .unwrap();
                    if let Some(entry) = idem.get_mut(&(tenant, key)) {
                        entry.1 = Some(json!({ "v": v }));
                    }
                }
                RecordOp::Reopen => {
                    drop(store.take());
                    store = Some(backend.open(Some(signer())));
                }
            }
        }
        let s = store.as_ref().unwrap();
        for (t, name) in TENANTS.iter().enumerate() {
            let expected: Vec<Record> = overrides
                .iter()
                .filter(|((tenant, _), _)| *tenant == t)
                .map(|((_, id), body)| Record {
                    tenant: (*name).into(),
                    id: id.clone(),
                    body: body.clone(),
                })
                .collect();
            prop_assert_eq!(s.overrides(name).unwrap(), expected);
            for m in 0..3u8 {
                prop_assert_eq!(
                    s.usage(name, "2026-11", &format!("m{m}")).unwrap(),
                    usage.get(&(t, m)).copied().unwrap_or(0)
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A duplicate decision id fails only its own append, even inside a shared batch;
/// the chain stays gapless and the index points at the first entry.
pub fn duplicate_decision_id_fails_alone<B: Backend>() {
    let backend = B::create();
    let s = backend.open(Some(signer()));
    let decision = |id: &str| EntryDraft {
        tenant: "a".into(),
        time: "2026-11-21T12:00:00Z".into(),
        kind: EntryKind::Decision,
        body: json!({ "decision_id": id }),
    };
    // Submitted together, so they share a batch.
    let acks: Vec<_> = ["d1", "d2", "d1", "d3"]
        .iter()
        .map(|id| s.submit(decision(id)))
        .collect();
    let results: Vec<_> = acks.into_iter().map(|a| a.wait()).collect();
    assert!(results[0].is_ok());
    assert!(results[1].is_ok());
    assert!(matches!(results[2], Err(StoreError::DuplicateDecision(_))));
    assert!(results[3].is_ok());
    assert!(matches!(
        s.append(decision("d2")),
        Err(StoreError::DuplicateDecision(_))
    ));
    settle(&s);
    for (i, (r, id)) in [
        (&results[0], "d1"),
        (&results[1], "d2"),
        (&results[3], "d3"),
    ]
    .into_iter()
    .enumerate()
    {
        let seq = s.decision_seq("a", id).unwrap();
        assert_eq!(seq, Some(i as u64), "{id}");
        if let Ok(Appended {
            seq: Some(acked), ..
        }) = r
        {
            assert_eq!(Some(*acked), seq);
        }
        assert!(!s.decision_pending("a", id).unwrap());
    }
    assert_eq!(s.decision_seq("a", "nope").unwrap(), None);
    assert!(!s.decision_pending("a", "nope").unwrap());
    s.issue_checkpoint("a", "t").wait().unwrap();
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().entries, 3);
}

/// With automatic checkpoints, a tenant that received entries gets a signed
/// checkpoint within the interval, and an idle ledger gets no new ones.
pub fn automatic_checkpoints_follow_traffic<B: Backend>() {
    let backend = B::create();
    let s = backend.open_auto_checkpoint(signer(), Duration::from_millis(50));
    for i in 0..10 {
        s.append(draft("a", i)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.latest_checkpoint("a").unwrap().map(|c| c.checkpoint.size) != Some(10) {
        assert!(
            Instant::now() < deadline,
            "no automatic checkpoint of size 10"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let count = s.checkpoints("a").unwrap().len();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.checkpoints("a").unwrap().len(),
        count,
        "checkpoints while idle"
    );
    assert!(s.checkpoints("b").unwrap().is_empty());
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().checkpoints, count);
}

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
        fn quota_reservations_never_overshoot() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::quota_reservations_never_overshoot::<$b>();
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
        fn automatic_checkpoints_follow_traffic() {
            if !<$b as $crate::testkit::Backend>::available() {
                return;
            }
            $crate::testkit::automatic_checkpoints_follow_traffic::<$b>();
        }
    };
}
