//! Store tests: tampering with the SQLite ledger directly, a model-based test of the
//! store against an in-memory model, proofs, and the non-ledger records.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;
use rusqlite::params;
use serde_json::json;
use tollgate_ledger::merkle;
use tollgate_ledger::{
    Checkpoint, Entry, EntryDraft, EntryKind, Hash, NoteSigner, NoteVerifier, Problem, SigningKey,
};
use tollgate_store::{
    IdempotencyClaim, IdempotencyStore, LedgerStore, QuotaStore, Record, SourceStore, SqliteConfig,
    SqliteStore, Store,
};

fn signer() -> NoteSigner {
    NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[3; 32])).unwrap()
}

fn keys() -> Vec<NoteVerifier> {
    vec![signer().verifier()]
}

fn open(dir: &std::path::Path) -> SqliteStore {
    let mut cfg = SqliteConfig::in_dir(dir);
    cfg.signer = Some(signer());
    SqliteStore::open(cfg).unwrap()
}

fn draft(tenant: &str, i: u64) -> EntryDraft {
    EntryDraft {
        tenant: tenant.into(),
        time: format!("2026-11-21T12:00:{:02}.{:03}Z", i % 60, i % 1000),
        kind: EntryKind::ALL[(i % 11) as usize],
        body: json!({ "i": i, "verdict": if i.is_multiple_of(3) { "BLOCK" } else { "ALLOW" }, "trace": [{"gate": "permit", "ok": true}] }),
    }
}

/// Builds tenant `a` with `n` entries (checkpoints at 1/3, 2/3 and the end) and
/// tenant `b` with a few entries interleaved.
fn build(dir: &std::path::Path, n: u64) -> SqliteStore {
    let store = open(dir);
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
            store
                .issue_checkpoint("a", "2026-11-21T12:01:00Z")
                .wait()
                .unwrap();
        }
    }
    for a in acks {
        a.wait().unwrap();
    }
    store
        .issue_checkpoint("a", "2026-11-21T12:02:00Z")
        .wait()
        .unwrap();
    store
        .issue_checkpoint("b", "2026-11-21T12:02:00Z")
        .wait()
        .unwrap();
    store
}

#[derive(Clone, Debug)]
enum Mutation {
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

const COLUMNS: [&str; 6] = ["tenant", "seq", "kind", "time", "canonical", "entry_hash"];

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

/// Applies the mutation with plain SQL and returns the expected first bad seq.
fn apply(store: &SqliteStore, m: &Mutation, n: u64) -> u64 {
    let c = store.raw_connection().unwrap();
    let row_id = |seq: u64| -> i64 {
        c.query_row(
            "SELECT id FROM ledger WHERE tenant = 'a' AND seq = ?1",
            [seq as i64],
            |r| r.get(0),
        )
        .unwrap()
    };
    match *m {
        Mutation::Byte {
            row,
            column,
            at,
            mask,
        } => {
            let id = row_id(row);
            let col = COLUMNS[column];
            if col == "seq" {
                // Flip one bit at or above bit 7 so the value stays an integer
                // outside the ledger's range (a collision would violate UNIQUE).
                let bit = 7 + (at % 56);
                c.execute(
                    "UPDATE ledger SET seq = seq # ?2 WHERE id = ?1"
                        .replace('#', "^")
                        .as_str(),
                    params![id, 1i64 << bit],
                )
                .or_else(|_| {
                    c.execute(
                        "UPDATE ledger SET seq = (seq | ?2) - (seq & ?2) WHERE id = ?1",
                        params![id, 1i64 << bit],
                    )
                })
                .unwrap();
            } else {
                let mut bytes: Vec<u8> = c
                    .query_row(
                        &format!("SELECT CAST({col} AS BLOB) FROM ledger WHERE id = ?1"),
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                let len = bytes.len();
                bytes[at % len] ^= mask;
                c.execute(
                    &format!("UPDATE ledger SET {col} = ?2 WHERE id = ?1"),
                    params![id, bytes],
                )
                .unwrap();
            }
            row
        }
        Mutation::Delete { row } => {
            c.execute("DELETE FROM ledger WHERE id = ?1", [row_id(row)])
                .unwrap();
            row
        }
        Mutation::Swap { a, b } => {
            let (ia, ib) = (row_id(a), row_id(b));
            // Swap the contents of the two positions; the seq column (the position)
            // stays, as a reordering of stored entries would leave it.
            c.execute_batch("BEGIN").unwrap();
            c.execute(
                "CREATE TEMP TABLE t AS SELECT id, kind, time, canonical, entry_hash FROM ledger WHERE id IN (?1, ?2)",
                params![ia, ib],
            )
            .unwrap();
            c.execute(
                "UPDATE ledger SET (kind, time, canonical, entry_hash) =
                   (SELECT kind, time, canonical, entry_hash FROM t WHERE t.id = CASE ledger.id WHEN ?1 THEN ?2 ELSE ?1 END)
                 WHERE id IN (?1, ?2)",
                params![ia, ib],
            )
            .unwrap();
            c.execute_batch("DROP TABLE t; COMMIT").unwrap();
            a
        }
        Mutation::CutTail { from } => {
            c.execute(
                "DELETE FROM ledger WHERE tenant = 'a' AND seq >= ?1",
                [from as i64],
            )
            .unwrap();
            from
        }
        Mutation::CheckpointByte { index, at, mask } => {
            let (id, size, note): (i64, i64, String) = c
                .query_row(
                    "SELECT id, size, note FROM checkpoints WHERE tenant = 'a' ORDER BY size LIMIT 1 OFFSET ?1",
                    [index as i64],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            let mut bytes = note.into_bytes();
            let len = bytes.len();
            bytes[at % len] ^= mask;
            c.execute(
                "UPDATE checkpoints SET note = CAST(?2 AS TEXT) WHERE id = ?1",
                params![id, bytes],
            )
            .unwrap();
            size as u64 - 1
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
            c.execute(
                "INSERT INTO checkpoints (tenant, size, issued, note) VALUES ('a', ?1, 'x', ?2)",
                params![size as i64, cp.to_text().unwrap()],
            )
            .unwrap();
            let _ = n;
            size - 1
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Acceptance 1: every direct mutation of the stored ledger is detected, at the
    /// right first bad sequence number.
    #[test]
    fn tampering_is_detected_at_the_first_bad_seq(m in mutation(30)) {
        let dir = tempfile::tempdir().unwrap();
        let store = build(dir.path(), 30);
        let ok = store.verify("a", &keys()).unwrap().unwrap();
        prop_assert_eq!(ok.entries, 30);
        let expected = apply(&store, &m, 30);
        let got = store.verify("a", &keys()).unwrap();
        let failure = match got {
            Ok(v) => return Err(TestCaseError::fail(format!("{m:?} not detected: {v:?}"))),
            Err(f) => f,
        };
        prop_assert_eq!(failure.seq, expected, "{:?} -> {}", m, failure);
        // The other tenant's ledger is untouched and still verifies.
        prop_assert!(store.verify("b", &keys()).unwrap().is_ok());
    }
}

#[test]
fn a_checkpoint_by_an_untrusted_key_is_not_enough() {
    let dir = tempfile::tempdir().unwrap();
    let store = build(dir.path(), 10);
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

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The store behaves like a map of tenant -> Vec<Entry> sealed in memory.
    #[test]
    fn store_matches_in_memory_model(ops in prop::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(open(dir.path()));
        let mut model: HashMap<&str, Vec<Entry>> = HashMap::new();
        let mut counter = 0u64;
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                Op::Append { tenant, n } => {
                    let t = TENANTS[tenant];
                    // Submitted together: they share group commits.
                    let drafts: Vec<EntryDraft> = (0..n).map(|_| { counter += 1; draft(t, counter) }).collect();
                    let acks: Vec<_> = drafts.iter().map(|d| s.submit(d.clone())).collect();
                    let log = model.entry(t).or_default();
                    for (d, a) in drafts.iter().zip(acks) {
                        let got = a.wait().unwrap();
                        let prev = log.last().map_or(Hash::ZERO, |e| e.entry_hash);
                        let expected = Entry::seal(d, log.len() as u64, prev).unwrap();
                        prop_assert_eq!(got.seq, expected.seq);
                        prop_assert_eq!(got.entry_hash, expected.entry_hash);
                        prop_assert_eq!(got.prev_hash, prev);
                        log.push(expected);
                    }
                }
                Op::Checkpoint { tenant } => {
                    let t = TENANTS[tenant];
                    let cp = s.issue_checkpoint(t, "2026-11-21T13:00:00Z").wait().unwrap();
                    let log = model.get(t).map(Vec::as_slice).unwrap_or(&[]);
                    let hashes: Vec<Hash> = log.iter().map(|e| e.entry_hash).collect();
                    prop_assert_eq!(cp.checkpoint.size, log.len() as u64);
                    prop_assert_eq!(cp.checkpoint.root, merkle::root_of_leaf_hashes(&merkle::leaf_hashes(&hashes)));
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
                    store = Some(open(dir.path()));
                }
            }
        }
        let s = store.as_ref().unwrap();
        let mut tenants: Vec<String> = model.iter().filter(|(_, l)| !l.is_empty()).map(|(t, _)| t.to_string()).collect();
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
    }
}

#[test]
fn proofs_from_the_store_verify_against_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = build(dir.path(), 37);
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

#[test]
fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..5 {
            s.append(draft("a", i)).unwrap();
        }
    }
    let s = open(dir.path());
    let a = s.append(draft("a", 5)).unwrap();
    assert_eq!(a.seq, 5);
    assert_eq!(a.prev_hash, s.entry("a", 4).unwrap().unwrap().entry_hash);
    assert!(s.verify("a", &keys()).unwrap().is_ok());
}

#[test]
fn invalid_tenants_and_missing_signer_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(SqliteConfig::in_dir(dir.path())).unwrap();
    assert!(s.append(draft("bad tenant", 0)).is_err());
    assert!(s.append(draft("a\nb", 0)).is_err());
    s.append(draft("a", 0)).unwrap();
    assert!(matches!(
        s.issue_checkpoint("a", "t").wait(),
        Err(tollgate_store::StoreError::NoSigner)
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

#[test]
fn acks_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Store> = Arc::new(open(dir.path()));
    let acks: Vec<_> = (0..50).map(|i| s.submit(draft("a", i))).collect();
    let seqs: Vec<u64> = acks.into_iter().map(|a| block_on(a).unwrap().seq).collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
}

#[test]
fn concurrent_appenders_get_a_gapless_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
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
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (0..800).collect::<Vec<_>>());
    s.issue_checkpoint("a", "t").wait().unwrap();
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().entries, 800);
}

#[test]
fn records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
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
#[test]
fn quota_reservations_never_overshoot() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
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
#[test]
fn idempotency_claim_has_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Overrides, quota counters and idempotency records against in-memory maps.
    #[test]
    fn records_match_in_memory_model(ops in prop::collection::vec(record_op(), 1..40)) {
        use tollgate_store::OverrideStore as _;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(open(dir.path()));
        let mut overrides: std::collections::BTreeMap<(usize, String), serde_json::Value> = Default::default();
        let mut usage: HashMap<(usize, u8), u64> = HashMap::new();
        // key -> (request, response)
        let mut idem: HashMap<(usize, u8), (u8, Option<serde_json::Value>)> = HashMap::new();
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                RecordOp::PutOverride { tenant, id, v } => {
                    let r = Record { tenant: TENANTS[tenant].into(), id: format!("o{id}"), body: json!({ "v": v }) };
                    s.put_override(&r).unwrap();
                    overrides.insert((tenant, r.id.clone()), r.body);
                }
                RecordOp::ClearOverride { tenant, id } => {
                    let had = overrides.remove(&(tenant, format!("o{id}"))).is_some();
                    prop_assert_eq!(s.clear_override(TENANTS[tenant], &format!("o{id}")).unwrap(), had);
                }
                RecordOp::AddUsage { tenant, metric, amount } => {
                    let total = usage.entry((tenant, metric)).or_default();
                    *total += amount;
                    prop_assert_eq!(s.add_usage(TENANTS[tenant], "2026-11", &format!("m{metric}"), amount).unwrap(), *total);
                }
                RecordOp::Claim { tenant, key, request } => {
                    let got = s.claim(TENANTS[tenant], &format!("k{key}"), &format!("r{request}"), 0).unwrap();
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
                    s.complete(TENANTS[tenant], &format!("k{key}"), &json!({ "v": v })).unwrap();
                    if let Some(entry) = idem.get_mut(&(tenant, key)) {
                        entry.1 = Some(json!({ "v": v }));
                    }
                }
                RecordOp::Reopen => {
                    drop(store.take());
                    store = Some(open(dir.path()));
                }
            }
        }
        let s = store.as_ref().unwrap();
        for (t, name) in TENANTS.iter().enumerate() {
            let expected: Vec<Record> = overrides
                .iter()
                .filter(|((tenant, _), _)| *tenant == t)
                .map(|((_, id), body)| Record { tenant: (*name).into(), id: id.clone(), body: body.clone() })
                .collect();
            prop_assert_eq!(s.overrides(name).unwrap(), expected);
            for m in 0..3u8 {
                prop_assert_eq!(s.usage(name, "2026-11", &format!("m{m}")).unwrap(), usage.get(&(t, m)).copied().unwrap_or(0));
            }
        }
    }
}

/// A duplicate decision id fails only its own append, even inside a shared batch;
/// the chain stays gapless and the index points at the first entry.
#[test]
fn duplicate_decision_id_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
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
    assert_eq!(results[0].as_ref().unwrap().seq, 0);
    assert_eq!(results[1].as_ref().unwrap().seq, 1);
    assert!(matches!(
        results[2],
        Err(tollgate_store::StoreError::DuplicateDecision(_))
    ));
    assert_eq!(results[3].as_ref().unwrap().seq, 2);
    assert!(matches!(
        s.append(decision("d2")),
        Err(tollgate_store::StoreError::DuplicateDecision(_))
    ));
    assert_eq!(s.decision_seq("a", "d3").unwrap(), Some(2));
    assert_eq!(s.decision_seq("a", "nope").unwrap(), None);
    s.issue_checkpoint("a", "t").wait().unwrap();
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().entries, 3);
}

/// With `auto_checkpoint`, a tenant that received entries gets a signed checkpoint
/// within the interval, and an idle ledger gets no new ones.
#[test]
fn automatic_checkpoints_follow_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SqliteConfig::in_dir(dir.path());
    cfg.signer = Some(signer());
    cfg.auto_checkpoint = Some(std::time::Duration::from_millis(50));
    let s = SqliteStore::open(cfg).unwrap();
    for i in 0..10 {
        s.append(draft("a", i)).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.latest_checkpoint("a").unwrap().map(|c| c.checkpoint.size) != Some(10) {
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic checkpoint of size 10"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let count = s.checkpoints("a").unwrap().len();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        s.checkpoints("a").unwrap().len(),
        count,
        "checkpoints while idle"
    );
    assert!(s.checkpoints("b").unwrap().is_empty());
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().checkpoints, count);
}
