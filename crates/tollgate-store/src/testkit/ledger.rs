//! The ledger suite: the in-memory model, proofs, reopening, acks, concurrency,
//! duplicate decision ids, automatic checkpoints and long ledgers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::missing_panics_doc
)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use tollgate_ledger::merkle;
use tollgate_ledger::{Entry, EntryDraft, EntryKind, Hash};

use super::{Backend, TENANTS, build, checkpoint_now, draft, keys, runner, settle, signer};
use crate::{Appended, LedgerStore as _, Store, StoreError};

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

/// A ledger longer than a backend's read chunks (PostgreSQL streams 1024 rows a
/// fetch and lets two wait): `verify`, the proofs and `scan` read all of it in order;
/// a scan whose visitor stops gets the visitor's error back, and stopping early many
/// times in a row (more often than the pool has connections) leaves the store
/// usable, so no stopped read keeps a connection.
pub fn long_ledgers_stream_and_stopped_reads_end<B: Backend>() {
    const N: u64 = 5200;
    let backend = B::create();
    let s = Arc::new(backend.open(Some(signer())));
    let drafts: Vec<EntryDraft> = (0..N).map(|i| draft("a", i)).collect();
    let acks: Vec<_> = drafts.iter().map(|d| s.submit(d.clone())).collect();
    for a in acks {
        a.wait().unwrap();
    }
    checkpoint_now(&*s, "a", "2026-11-21T12:00:00Z");
    let cp = s.latest_checkpoint("a").unwrap().unwrap();
    assert_eq!(cp.checkpoint.size, N);

    let verified = s.verify("a", &keys()).unwrap().unwrap();
    assert_eq!(verified.entries, N);
    assert_eq!(verified.root, cp.checkpoint.root);

    let mut prev = Hash::ZERO;
    let mut next = 0i64;
    s.scan("a", &mut |row| {
        assert_eq!(row.seq, next);
        let e = row.to_entry()?;
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.body["i"], next);
        prev = e.entry_hash;
        next += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(next, N as i64);

    for seq in [0, 1023, 1024, 2047, 2048, N - 1] {
        let e = s.entry("a", seq).unwrap().unwrap();
        let proof = s.inclusion_proof("a", seq, N).unwrap();
        merkle::verify_inclusion(
            &merkle::leaf_hash(&e.entry_hash.0),
            seq,
            N,
            &proof,
            &cp.checkpoint.root,
        )
        .unwrap();
    }
    // A consistency proof from a tree inside the second chunk to the whole ledger;
    // the old tree's root is the model's.
    let mut prev = Hash::ZERO;
    let mut first = Vec::new();
    for (i, d) in drafts.iter().take(1500).enumerate() {
        let e = Entry::seal(d, i as u64, prev).unwrap();
        prev = e.entry_hash;
        first.push(e.entry_hash);
    }
    let old_root = merkle::root_of_leaf_hashes(&merkle::leaf_hashes(&first));
    let proof = s.consistency_proof("a", 1500, N).unwrap();
    merkle::verify_consistency(1500, N, &old_root, &cp.checkpoint.root, &proof).unwrap();

    // In a thread: a read left holding its connection would make a later one wait
    // for the pool forever; the test fails after a minute instead.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let store = Arc::clone(&s);
    std::thread::spawn(move || {
        for stop_at in [1u64, 1500, 4500].repeat(8) {
            let mut seen = 0u64;
            let result = store.scan("a", &mut |_| {
                seen += 1;
                if seen == stop_at {
                    // A slow caller: a streaming backend has fetched ahead by now and
                    // waits for it, and must still end when it stops.
                    std::thread::sleep(Duration::from_millis(20));
                    return Err(StoreError::OutOfRange("stop here".into()));
                }
                Ok(())
            });
            assert!(
                matches!(&result, Err(StoreError::OutOfRange(m)) if m == "stop here"),
                "{result:?}"
            );
            assert_eq!(seen, stop_at);
        }
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "24 stopped scans did not end within a minute: a stopped read kept its connection"
            )
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the scanning thread failed (its panic is above)")
        }
    }
    assert_eq!(s.verify("a", &keys()).unwrap().unwrap().entries, N);
}

/// The tlog tiles: written with each checkpoint up to its size (in the checkpoint's
/// transaction, so a stored checkpoint always has its tiles), kept across reopen, and
/// proofs from them equal proofs computed from every entry hash, inside and beyond
/// the tiled size.
pub fn tiles_cover_each_checkpoint<B: Backend>() {
    use tollgate_ledger::tiles;
    const N: u64 = 700;
    let backend = B::create();
    let leaves: Vec<Hash>;
    {
        let s = backend.open(Some(signer()));
        assert_eq!(s.tiled_size("a").unwrap(), 0);
        let mut acks = Vec::new();
        for i in 0..N {
            acks.push(s.submit(draft("a", i)));
            if i == 0 || i == 299 {
                for a in acks.drain(..) {
                    a.wait().unwrap();
                }
                checkpoint_now(&s, "a", "2026-11-21T12:01:00Z");
                assert_eq!(s.tiled_size("a").unwrap(), i + 1);
            }
        }
        for a in acks {
            a.wait().unwrap();
        }
        settle(&s);
        // Beyond the last checkpoint: no tiles yet, proofs still answer (by scan).
        assert_eq!(s.tiled_size("a").unwrap(), 300);
        leaves = s
            .range("a", 0, N)
            .unwrap()
            .iter()
            .map(|e| e.entry_hash)
            .collect();
        let lh = merkle::leaf_hashes(&leaves);
        assert_eq!(
            s.inclusion_proof("a", 5, N).unwrap(),
            merkle::inclusion_proof(&lh, 5).unwrap()
        );
        checkpoint_now(&s, "a", "2026-11-21T12:02:00Z");
        assert_eq!(s.tiled_size("a").unwrap(), N);
    }
    let s = backend.open(Some(signer()));
    assert_eq!(s.tiled_size("a").unwrap(), N, "tiles survive a reopen");
    let lh = merkle::leaf_hashes(&leaves);
    // Level 0 holds the leaf hashes; the partial level 1 tile the roots of full tiles.
    let t0 = s.tile("a", 0, 1).unwrap().unwrap();
    assert_eq!(t0.len(), 256 * 32);
    assert_eq!(&t0[..32], &lh[256].0);
    let t1 = s.tile("a", 1, 0).unwrap().unwrap();
    assert_eq!(t1.len(), 2 * 32, "700 leaves: two full level-0 tiles");
    assert_eq!(&t1[32..], &merkle::root_of_leaf_hashes(&lh[256..512]).0[..]);
    let t0_last = s.tile("a", 0, 2).unwrap().unwrap();
    assert_eq!(t0_last.len(), (N as usize - 512) * 32);
    assert!(s.tile("a", 0, 3).unwrap().is_none());
    assert!(s.tile("b", 0, 0).unwrap().is_none());
    for (seq, size) in [
        (0, 1),
        (0, 300),
        (299, 300),
        (17, 512),
        (600, N),
        (N - 1, N),
    ] {
        let th = &lh[..size as usize];
        assert_eq!(
            s.inclusion_proof("a", seq, size).unwrap(),
            merkle::inclusion_proof(th, seq).unwrap(),
            "inclusion {seq} in {size}"
        );
    }
    for (old, new) in [(1, 300), (300, N), (256, 512), (1, N)] {
        assert_eq!(
            s.consistency_proof("a", old, new).unwrap(),
            merkle::consistency_proof(&lh[..new as usize], old).unwrap(),
            "consistency {old} to {new}"
        );
    }
    assert_eq!(
        tiles::root(&TilesOfStore(&s), N).unwrap(),
        s.latest_checkpoint("a").unwrap().unwrap().checkpoint.root
    );
    assert!(s.inclusion_proof("a", N, N).is_err());
}

struct TilesOfStore<'a, S>(&'a S);

impl<S: Store> tollgate_ledger::tiles::TileSource for TilesOfStore<'_, S> {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        self.0.tile("a", level, index).map_err(|e| e.to_string())
    }
}
