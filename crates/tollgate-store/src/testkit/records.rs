//! The record-store suite: round trips, quota reservations, idempotency claims and
//! the records model.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::missing_panics_doc
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::{Backend, TENANTS, runner, signer};
use crate::{
    IdempotencyClaim, IdempotencyStore as _, OverrideStore as _, QuotaStore as _, Record,
    ReviewRecord, ReviewStatus, ReviewStore as _, SourceStore as _,
};

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

/// 16 threads each add one vote to one review by conditional replacement (read,
/// add, replace; again if another vote landed first): every vote is there once, and
/// a replacement of a version that is no longer stored changes nothing.
pub fn review_replacement_loses_no_vote<B: Backend>() {
    let backend = B::create();
    let s = Arc::new(backend.open(Some(signer())));
    let pending = ReviewRecord {
        tenant: "a".into(),
        id: "rev-1".into(),
        status: ReviewStatus::Pending,
        body: json!({"approvals": [], "min_approvals": 16}),
    };
    s.put_review(&pending).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut lost = 0;
                loop {
                    let current = s.review("a", "rev-1").unwrap().unwrap();
                    let mut next = current.clone();
                    let mut votes = next.body["approvals"].as_array().unwrap().clone();
                    votes.push(json!(i));
                    if votes.len() == 16 {
                        next.status = ReviewStatus::Approved;
                    }
                    next.body["approvals"] = serde_json::Value::Array(votes);
                    if s.replace_review(&current, &next).unwrap() {
                        return lost;
                    }
                    lost += 1;
                }
            })
        })
        .collect();
    let retries: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let done = s.review("a", "rev-1").unwrap().unwrap();
    let mut votes: Vec<u64> = done.body["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    votes.sort_unstable();
    assert_eq!(votes, (0..16).collect::<Vec<u64>>(), "{retries} retries");
    assert_eq!(done.status, ReviewStatus::Approved);
    assert_eq!(
        s.reviews("a", Some(ReviewStatus::Approved)).unwrap(),
        vec![done.clone()]
    );
    // The pending version is gone: replacing it again changes nothing.
    let mut stale = pending.clone();
    stale.status = ReviewStatus::Rejected;
    assert!(!s.replace_review(&pending, &stale).unwrap());
    assert_eq!(s.review("a", "rev-1").unwrap().unwrap(), done);
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

/// Sinks, cursors and delivery rows: round trips, the cursor only moves forward and
/// drops `delivered` rows below it, removing a sink removes its cursor and rows, and
/// a row for a removed sink is not written.
pub fn notify_records_round_trip<B: Backend>() {
    use crate::{
        DeliveryRecord, DeliveryState, NotifyStore as _, SinkCursor, SinkKind, SinkRecord,
        SinkSecret,
    };
    let backend = B::create();
    let s = backend.open(Some(signer()));
    let sink = |tenant: &str, id: &str, kind| SinkRecord {
        tenant: tenant.into(),
        id: id.into(),
        kind,
        name: "ops".into(),
        url: "https://hooks.example/services/T/B/x".into(),
        secret: Some(SinkSecret::new("whsec_AAAA")),
        events: vec!["review_opened".into()],
        created_ms: 5,
    };
    let a1 = sink("a", "snk_1", SinkKind::Webhook);
    let a2 = sink("a", "snk_2", SinkKind::Cloudevents);
    let b1 = sink("b", "snk_1", SinkKind::SplunkHec);
    s.put_sink(&a1, 7).unwrap();
    s.put_sink(&a2, 0).unwrap();
    s.put_sink(&b1, 3).unwrap();
    assert_eq!(s.sink("a", "snk_1").unwrap(), Some(a1.clone()));
    assert_eq!(s.sink("b", "snk_2").unwrap(), None);
    assert_eq!(s.sinks(Some("a")).unwrap(), vec![a1.clone(), a2.clone()]);
    assert_eq!(
        s.sinks(None).unwrap(),
        vec![a1.clone(), a2.clone(), b1.clone()]
    );
    let cursor = s.sink_cursor("a", "snk_1").unwrap().unwrap();
    assert_eq!((cursor.next_seq, cursor.updated_ms), (7, 5));

    let row = |seq: u64, state| DeliveryRecord {
        tenant: "a".into(),
        sink_id: "snk_1".into(),
        seq,
        entry_hash: format!("{seq:064x}"),
        kind: "review_opened".into(),
        state,
        attempts: 2,
        first_attempt_ms: 10,
        next_attempt_ms: 20,
        last_error: Some("HTTP 503".into()),
        updated_ms: 11,
    };
    s.put_delivery(&row(7, DeliveryState::Pending)).unwrap();
    s.put_delivery(&row(8, DeliveryState::Delivered)).unwrap();
    s.put_delivery(&row(9, DeliveryState::Dead)).unwrap();
    s.put_delivery(&row(12, DeliveryState::Delivered)).unwrap();
    assert_eq!(
        s.delivery("a", "snk_1", 9).unwrap(),
        Some(row(9, DeliveryState::Dead))
    );
    assert_eq!(
        s.deliveries("a", None, Some(DeliveryState::Dead)).unwrap(),
        vec![row(9, DeliveryState::Dead)]
    );
    // Replacing a row changes its state.
    let mut done = row(7, DeliveryState::Delivered);
    done.attempts = 3;
    s.put_delivery(&done).unwrap();
    assert_eq!(s.delivery("a", "snk_1", 7).unwrap(), Some(done));

    s.advance_sink_cursor(&SinkCursor {
        tenant: "a".into(),
        sink_id: "snk_1".into(),
        next_seq: 10,
        updated_ms: 30,
    })
    .unwrap();
    let left: Vec<(u64, DeliveryState)> = s
        .deliveries("a", Some("snk_1"), None)
        .unwrap()
        .into_iter()
        .map(|d| (d.seq, d.state))
        .collect();
    // Delivered rows below the cursor are gone; the dead one and a delivered one past
    // the cursor stay.
    assert_eq!(
        left,
        vec![(9, DeliveryState::Dead), (12, DeliveryState::Delivered)]
    );
    // A round's rows: pending ones anywhere (a redelivery behind the cursor) and every
    // row from the cursor on; dead and delivered rows behind it are not read.
    s.put_deliveries(&[
        row(3, DeliveryState::Pending),
        row(4, DeliveryState::Dead),
        row(11, DeliveryState::Dead),
    ])
    .unwrap();
    let open: Vec<(u64, DeliveryState)> = s
        .open_deliveries("a", "snk_1", 10)
        .unwrap()
        .into_iter()
        .map(|d| (d.seq, d.state))
        .collect();
    assert_eq!(
        open,
        vec![
            (3, DeliveryState::Pending),
            (11, DeliveryState::Dead),
            (12, DeliveryState::Delivered)
        ]
    );
    assert!(s.open_deliveries("a", "snk_2", 0).unwrap().is_empty());
    // A batch for a sink that is gone writes nothing.
    s.put_deliveries(&[DeliveryRecord {
        sink_id: "snk_gone".into(),
        ..row(5, DeliveryState::Pending)
    }])
    .unwrap();
    assert!(
        s.deliveries("a", Some("snk_gone"), None)
            .unwrap()
            .is_empty()
    );
    // Backwards is ignored.
    s.advance_sink_cursor(&SinkCursor {
        tenant: "a".into(),
        sink_id: "snk_1".into(),
        next_seq: 4,
        updated_ms: 40,
    })
    .unwrap();
    assert_eq!(s.sink_cursor("a", "snk_1").unwrap().unwrap().next_seq, 10);

    assert!(s.delete_sink("a", "snk_1").unwrap());
    assert!(!s.delete_sink("a", "snk_1").unwrap());
    assert_eq!(s.sink("a", "snk_1").unwrap(), None);
    assert_eq!(s.sink_cursor("a", "snk_1").unwrap(), None);
    assert!(s.deliveries("a", Some("snk_1"), None).unwrap().is_empty());
    s.put_delivery(&row(13, DeliveryState::Pending)).unwrap();
    assert!(s.deliveries("a", Some("snk_1"), None).unwrap().is_empty());
    // Other sinks are untouched.
    assert_eq!(s.sinks(None).unwrap(), vec![a2, b1]);
}
