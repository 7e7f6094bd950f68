//! The tamper property: every direct change of the stored ledger is detected at the
//! first bad sequence number.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::missing_panics_doc
)]

use proptest::prelude::*;
use tollgate_ledger::{Checkpoint, Hash, NoteSigner, Problem, SigningKey};

use super::{Backend, Column, build, keys, runner};
use crate::LedgerStore as _;

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
