//! The ledger format holds: a ledger written by Tollgate before the service was
//! restructured (`tests/golden/ledger-v1.jsonl`, exported with `tollgate audit export`
//! from a run of decisions, a review approved and used, a kill switch, a candidate,
//! and the DeAlgo family) still verifies, and every decision body in it reads back
//! through `DecisionEntryBody` and writes out again to exactly the same JSON, so the
//! same canonical bytes and entry hash.

use serde_json::Value;
use tollgate_ledger::{Entry, EntryKind, NoteVerifier, SignedCheckpoint, Verifier};
use tollgate_server::service::records::DecisionEntryBody;

const LEDGER: &str = include_str!("golden/ledger-v1.jsonl");
const META: &str = include_str!("golden/ledger-v1.jsonl.meta.json");

fn meta() -> (Vec<SignedCheckpoint>, Vec<NoteVerifier>, u64) {
    let meta: Value = serde_json::from_str(META).expect("meta is JSON");
    let checkpoints = meta["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .map(|c| SignedCheckpoint::parse(c.as_str().expect("text")).expect("checkpoint"))
        .collect();
    let keys = meta["verifier_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| NoteVerifier::from_vkey(k.as_str().expect("vkey")).expect("vkey"))
        .collect();
    (
        checkpoints,
        keys,
        meta["entries"].as_u64().expect("entries"),
    )
}

#[test]
fn a_ledger_written_before_the_change_verifies() {
    let (checkpoints, keys, entries) = meta();
    assert_eq!(checkpoints.len(), 2, "the fixture has two checkpoints");
    let mut v = Verifier::new(Some("default".into()), &checkpoints, &keys);
    for line in LEDGER.lines() {
        v.push_line(line).expect("every entry verifies");
    }
    let verified = v.finish(Some(entries)).expect("the whole ledger verifies");
    assert_eq!(verified.entries, 17);
    assert_eq!(verified.checkpoints, 2);
}

#[test]
fn a_tampered_golden_ledger_does_not_verify() {
    // The check above can fail: one changed byte in a decision body is caught.
    let (checkpoints, keys, _) = meta();
    let tampered = LEDGER.replacen("\"DESTRUCTIVE_TOOL\"", "\"DESTRUCTIVE_T00L\"", 1);
    assert_ne!(tampered, LEDGER);
    let mut v = Verifier::new(Some("default".into()), &checkpoints, &keys);
    let failed = tampered.lines().any(|line| v.push_line(line).is_err());
    assert!(failed, "a changed body must fail verification");
}

#[test]
fn every_decision_body_reads_back_through_its_type_byte_for_byte() {
    let mut decisions = 0;
    let mut with = std::collections::BTreeSet::new();
    for line in LEDGER.lines() {
        let entry: Entry = serde_json::from_str(line).expect("an entry");
        if entry.kind != EntryKind::Decision {
            continue;
        }
        decisions += 1;
        let body = DecisionEntryBody::from_value(&entry.body).expect("reads back");
        for (field, present) in [
            ("review_id", body.review_id.is_some()),
            ("grant_id", body.grant_id.is_some()),
            ("candidates", !body.candidates.is_empty()),
            ("idempotency_key", body.idempotency_key.is_some()),
            ("correlation_id", body.correlation_id.is_some()),
        ] {
            if present {
                with.insert(field);
            }
        }
        // What the hash covers is the RFC 8785 bytes (a number read back as an
        // integer and written as a float, 0 and 0.0, has the same bytes), and the
        // entry hash recomputed over the re-written body is the recorded one.
        let again = body.to_value().expect("writes out");
        assert_eq!(
            String::from_utf8(tollgate_core::digest::canonical_bytes(&again).expect("canonical")),
            String::from_utf8(
                tollgate_core::digest::canonical_bytes(&entry.body).expect("canonical")
            ),
            "decision {} changed",
            body.decision_id
        );
        let mut rewritten = entry.clone();
        rewritten.body = again;
        assert_eq!(
            rewritten.compute_hash().expect("hash"),
            entry.entry_hash,
            "decision {}",
            body.decision_id
        );
    }
    assert_eq!(decisions, 9);
    // Every optional field occurs at least once in the fixture.
    assert_eq!(with.len(), 5, "optional fields seen: {with:?}");
}

#[test]
fn policy_lifecycle_bodies_read_back_through_their_types() {
    use tollgate_server::service::records::{PolicyActivatedBody, PolicyPublishedBody};
    let mut seen = Vec::new();
    for line in LEDGER.lines() {
        let entry: Entry = serde_json::from_str(line).expect("an entry");
        let again = match entry.kind {
            EntryKind::PolicyPublished => {
                let b: PolicyPublishedBody =
                    serde_json::from_value(entry.body.clone()).expect("published body");
                b.to_value().expect("writes out")
            }
            EntryKind::PolicyActivated => {
                let b: PolicyActivatedBody =
                    serde_json::from_value(entry.body.clone()).expect("activated body");
                b.to_value().expect("writes out")
            }
            _ => continue,
        };
        seen.push(
            entry.body["role"]
                .as_str()
                .unwrap_or("published")
                .to_owned(),
        );
        assert_eq!(
            tollgate_core::digest::canonical_bytes(&again).expect("canonical"),
            tollgate_core::digest::canonical_bytes(&entry.body).expect("canonical"),
            "entry {}",
            entry.seq
        );
    }
    assert_eq!(seen, ["published", "active", "candidate"]);
}
