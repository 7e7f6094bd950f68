//! Format tests: canonical bytes, Merkle proofs against an independent RFC 6962
//! implementation (`ct-merkle`), signed notes against the Go reference vector,
//! checkpoint parsing, keys, and the verifier's first-bad-seq reports.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate_ledger::merkle::{self, CompactRange};
use tollgate_ledger::{
    Checkpoint, Dossier, Entry, EntryDraft, EntryKind, Hash, Jwk, NoteSigner, NoteVerifier,
    Problem, SignedCheckpoint, SigningKey, public_key_from_pem, public_key_pem, verify,
    verify_dossier,
};

fn signer() -> NoteSigner {
    NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[42; 32])).unwrap()
}

fn chain(n: u64) -> Vec<Entry> {
    let mut prev = Hash::ZERO;
    (0..n)
        .map(|i| {
            let draft = EntryDraft {
                tenant: "acme".into(),
                time: format!("2026-11-21T12:00:{:02}Z", i % 60),
                kind: EntryKind::ALL[(i % 11) as usize],
                body: json!({ "i": i, "verdict": "ALLOW", "note": "é\u{1F600}" }),
            };
            let e = Entry::seal(&draft, i, prev).unwrap();
            prev = e.entry_hash;
            e
        })
        .collect()
}

fn checkpoint_over(entries: &[Entry], size: usize) -> SignedCheckpoint {
    let hashes: Vec<Hash> = entries[..size].iter().map(|e| e.entry_hash).collect();
    Checkpoint {
        origin: "tollgate.test/acme".into(),
        size: size as u64,
        root: merkle::root_of_leaf_hashes(&merkle::leaf_hashes(&hashes)),
        extensions: vec!["time 2026-11-21T12:01:00Z".into()],
    }
    .sign(&signer())
    .unwrap()
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The hand-assembled top level equals RFC 8785 over the whole entry.
    #[test]
    fn canonical_bytes_are_jcs(
        body in arb_json(),
        tenant in "\\PC{1,10}",
        time in "\\PC{0,30}",
        seq in 0u64..=tollgate_ledger::MAX_SEQ,
        prev in any::<[u8; 32]>(),
        kind in 0usize..11,
    ) {
        let draft = EntryDraft { tenant, time, kind: EntryKind::ALL[kind], body };
        let e = Entry::seal(&draft, seq, Hash(prev)).unwrap();
        let mut v = serde_json::to_value(&e).unwrap();
        v.as_object_mut().unwrap().remove("entry_hash");
        let reference = serde_json_canonicalizer::to_vec(&v).unwrap();
        prop_assert_eq!(e.canonical_bytes().unwrap(), reference.clone());
        prop_assert_eq!(e.entry_hash, Hash::digest(&reference));
        // Round trips through the export line and the stored canonical form.
        let back = Entry::from_json_line(&e.to_json_line().unwrap()).unwrap();
        prop_assert_eq!(back.compute_hash().unwrap(), e.entry_hash);
        let stored = Entry::from_canonical(&reference, e.entry_hash).unwrap();
        prop_assert_eq!(stored.compute_hash().unwrap(), e.entry_hash);
    }
}

#[test]
fn seq_beyond_2_pow_53_is_refused() {
    let draft = EntryDraft {
        tenant: "t".into(),
        time: "x".into(),
        kind: EntryKind::Decision,
        body: json!(null),
    };
    assert!(Entry::seal(&draft, tollgate_ledger::MAX_SEQ + 1, Hash::ZERO).is_err());
}

fn ct_tree(entry_hashes: &[Hash]) -> MemoryBackedTree<Sha256, [u8; 32]> {
    let mut t = MemoryBackedTree::new();
    for h in entry_hashes {
        t.push(h.0);
    }
    t
}

fn random_hashes(n: usize, seed: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| Hash::digest(&[seed, (i & 0xff) as u8, (i >> 8) as u8]))
        .collect()
}

/// Roots and inclusion proofs agree with ct-merkle in both directions.
#[test]
fn inclusion_proofs_match_ct_merkle() {
    for n in 1..=70usize {
        let entries = random_hashes(n, n as u8);
        let leaves = merkle::leaf_hashes(&entries);
        let ours = merkle::root_of_leaf_hashes(&leaves);
        let tree = ct_tree(&entries);
        let theirs = tree.root();
        assert_eq!(
            theirs.as_bytes().as_slice(),
            ours.0.as_slice(),
            "root n={n}"
        );
        let mut cr = CompactRange::new();
        for e in &entries {
            cr.push_entry_hash(e);
        }
        assert_eq!(cr.root(), ours, "compact root n={n}");
        for i in 0..n {
            let proof = merkle::inclusion_proof(&leaves, i as u64).unwrap();
            // Ours, checked by ct-merkle.
            let ct_proof =
                InclusionProof::<Sha256>::from_bytes(proof.iter().flat_map(|h| h.0).collect());
            theirs
                .verify_inclusion(&entries[i].0, i as u64, &ct_proof)
                .unwrap_or_else(|e| panic!("ct-merkle rejects our proof n={n} i={i}: {e}"));
            // ct-merkle's, checked by ours.
            let their_proof = tree.prove_inclusion(i);
            assert_eq!(
                their_proof.as_bytes(),
                ct_proof.as_bytes(),
                "proof bytes n={n} i={i}"
            );
            merkle::verify_inclusion(&leaves[i], i as u64, n as u64, &proof, &ours).unwrap();
            // A wrong leaf or index fails.
            assert!(
                merkle::verify_inclusion(&leaves[(i + 1) % n], i as u64, n as u64, &proof, &ours)
                    .is_err()
                    || n == 1
            );
        }
    }
}

#[test]
fn consistency_proofs_match_ct_merkle() {
    for n in 1..=48usize {
        let entries = random_hashes(n, 200);
        let leaves = merkle::leaf_hashes(&entries);
        let tree = ct_tree(&entries);
        let new_root = merkle::root_of_leaf_hashes(&leaves);
        for m in 1..n {
            let old_root = merkle::root_of_leaf_hashes(&leaves[..m]);
            let proof = merkle::consistency_proof(&leaves, m as u64).unwrap();
            let theirs = tree.prove_consistency(n - m);
            assert_eq!(
                theirs.as_bytes(),
                proof
                    .iter()
                    .flat_map(|h| h.0)
                    .collect::<Vec<u8>>()
                    .as_slice(),
                "consistency bytes m={m} n={n}"
            );
            let ct_new = RootHash::<Sha256>::new(new_root.0.into(), n as u64);
            let ct_old = RootHash::<Sha256>::new(old_root.0.into(), m as u64);
            let ct_proof = ConsistencyProof::<Sha256>::try_from_bytes(
                proof.iter().flat_map(|h| h.0).collect(),
            )
            .unwrap();
            ct_new.verify_consistency(&ct_old, &ct_proof).unwrap();
            merkle::verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).unwrap();
            let wrong = Hash::digest(b"wrong");
            assert!(
                merkle::verify_consistency(m as u64, n as u64, &wrong, &new_root, &proof).is_err()
            );
            assert!(
                merkle::verify_consistency(m as u64, n as u64, &old_root, &wrong, &proof).is_err()
            );
        }
    }
}

/// Proofs built in one streaming pass over the leaves (`inclusion_ranges` /
/// `consistency_ranges` + `RangeRoots`, what the stores serve) are byte for byte the
/// proofs of the whole-tree functions above, which match ct-merkle; pushing leaves
/// past the last range changes nothing, and one leaf fewer than needed gives no proof.
fn streamed(
    ranges: Vec<std::ops::Range<u64>>,
    entries: &[Hash],
    extra: isize,
) -> Option<Vec<Hash>> {
    let mut roots = merkle::RangeRoots::new(ranges);
    let needed = isize::try_from(roots.leaves_needed()).unwrap();
    for e in entries
        .iter()
        .take(usize::try_from(needed + extra).unwrap())
    {
        roots.push_entry_hash(e);
    }
    roots.finish()
}

#[test]
fn streamed_proofs_equal_whole_tree_proofs() {
    for n in 1..=70usize {
        let entries = random_hashes(n + 5, n as u8);
        let leaves = merkle::leaf_hashes(&entries[..n]);
        for i in 0..n {
            let whole = merkle::inclusion_proof(&leaves, i as u64).unwrap();
            let ranges = merkle::inclusion_ranges(i as u64, n as u64).unwrap();
            assert_eq!(
                streamed(ranges.clone(), &entries, 0),
                Some(whole.clone()),
                "n={n} i={i}"
            );
            assert_eq!(
                streamed(ranges.clone(), &entries, 5).as_ref(),
                Some(&whole),
                "n={n} i={i} +5"
            );
            if n > 1 {
                assert_eq!(
                    streamed(ranges, &entries, -1),
                    None,
                    "n={n} i={i}: one leaf short"
                );
            }
        }
        for m in 1..=n {
            let whole = merkle::consistency_proof(&leaves, m as u64).unwrap();
            let ranges = merkle::consistency_ranges(m as u64, n as u64).unwrap();
            assert_eq!(streamed(ranges, &entries, 3), Some(whole), "m={m} n={n}");
        }
    }
    assert!(merkle::inclusion_ranges(5, 5).is_err());
    assert!(merkle::consistency_ranges(0, 5).is_err());
    assert!(merkle::consistency_ranges(6, 5).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The same at sizes where the tree is deeper and unbalanced.
    #[test]
    fn streamed_proofs_equal_whole_tree_proofs_at_random_sizes(
        n in 2u64..3000, at in any::<u64>(), old in any::<u64>()
    ) {
        let entries = random_hashes(n as usize, (n % 251) as u8);
        let leaves = merkle::leaf_hashes(&entries);
        let i = at % n;
        let whole = merkle::inclusion_proof(&leaves, i).unwrap();
        let ranges = merkle::inclusion_ranges(i, n).unwrap();
        prop_assert!(ranges.len() <= 64);
        prop_assert_eq!(streamed(ranges, &entries, 0), Some(whole));
        let m = 1 + old % n;
        let whole = merkle::consistency_proof(&leaves, m).unwrap();
        prop_assert_eq!(streamed(merkle::consistency_ranges(m, n).unwrap(), &entries, 0), Some(whole));
    }
}

/// The Go `golang.org/x/mod/sumdb/note` reference vector (PeterNeumann).
#[test]
fn signed_note_matches_go_reference_vector() {
    let skey = STANDARD
        .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .unwrap();
    assert_eq!(skey[0], 1);
    let seed: [u8; 32] = skey[1..].try_into().unwrap();
    let signer = NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap();
    assert_eq!(
        signer.verifier().to_vkey(),
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    );
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    assert_eq!(
        signer.sign_note(text).unwrap(),
        format!(
            "{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        )
    );
    let v = NoteVerifier::from_vkey(
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    )
    .unwrap();
    assert_eq!(v, signer.verifier());
}

/// A checkpoint is a C2SP tlog-checkpoint: exact line structure, and it parses back.
#[test]
fn checkpoint_text_is_c2sp() {
    let entries = chain(5);
    let cp = checkpoint_over(&entries, 5);
    let text = cp.to_text().unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[0], "tollgate.test/acme");
    assert_eq!(lines[1], "5");
    assert_eq!(STANDARD.decode(lines[2]).unwrap(), cp.checkpoint.root.0);
    assert_eq!(lines[3], "time 2026-11-21T12:01:00Z");
    assert_eq!(lines[4], "");
    assert!(lines[5].starts_with("\u{2014} tollgate.test "));
    let blob = STANDARD
        .decode(lines[5].rsplit(' ').next().unwrap())
        .unwrap();
    assert_eq!(blob.len(), 4 + 64);
    assert_eq!(blob[..4], signer().key_id());
    assert_eq!(lines[6], "");
    let parsed = SignedCheckpoint::parse(&text).unwrap();
    assert_eq!(parsed, cp);
    parsed.verify(&[signer().verifier()]).unwrap();
    assert_eq!(parsed.checkpoint.time(), Some("2026-11-21T12:01:00Z"));
    // Tampering with the text breaks the signature.
    let forged = SignedCheckpoint::parse(&text.replacen("\n5\n", "\n4\n", 1)).unwrap();
    assert!(forged.verify(&[signer().verifier()]).is_err());
    // Malformed notes are refused.
    for bad in [
        "",
        "a\n1\n",
        "a\n01\nAAAA\n\n— k AAAAAAAA\n",
        "a\n1\n!!\n\n— k AAAAAAAA\n",
    ] {
        assert!(SignedCheckpoint::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn keys_render_as_jwk_and_pem() {
    let key = signer().verifier().key;
    let jwk = Jwk::from_key(&key);
    assert_eq!(jwk.to_key().unwrap(), key);
    assert_eq!(jwk.kty, "OKP");
    assert_eq!(jwk.crv, "Ed25519");
    let pem = public_key_pem(&key);
    // The hand-written SPKI matches the pkcs8 crate's encoding.
    let reference = key.to_public_key_pem(Default::default()).unwrap();
    assert_eq!(pem.trim(), reference.trim());
    assert_eq!(public_key_from_pem(&pem).unwrap(), key);
    // RFC 8037 appendix A.3 thumbprint of its example key.
    let rfc_x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let rfc_key = tollgate_ledger::VerifyingKey::from_bytes(&rfc_x.try_into().unwrap()).unwrap();
    assert_eq!(
        tollgate_ledger::thumbprint(&rfc_key),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn verify_reports_ok_and_first_bad_seq() {
    let entries = chain(40);
    let cps = [checkpoint_over(&entries, 17), checkpoint_over(&entries, 40)];
    let keys = [signer().verifier()];
    let ok = verify(entries.iter().cloned().map(Ok::<_, String>), &cps, &keys).unwrap();
    assert_eq!(ok.entries, 40);
    assert_eq!(ok.checkpoints, 2);
    assert_eq!(ok.root, cps[1].checkpoint.root);

    let run =
        |es: Vec<Entry>| verify(es.into_iter().map(Ok::<_, String>), &cps, &keys).unwrap_err();

    let mut body = entries.clone();
    body[7].body = json!({"i": 8});
    let f = run(body);
    assert_eq!(f.seq, 7);
    assert!(matches!(f.problem, Problem::HashMismatch { .. }));

    let mut gap = entries.clone();
    gap.remove(12);
    let f = run(gap);
    assert_eq!(
        (f.seq, f.problem.clone()),
        (12, Problem::WrongSeq { found: 13 })
    );

    let mut swapped = entries.clone();
    swapped.swap(3, 9);
    assert_eq!(run(swapped).seq, 3);

    let cut = entries[..30].to_vec();
    let f = run(cut);
    assert_eq!(
        (f.seq, f.problem),
        (30, Problem::Missing { expected_size: 40 })
    );

    // A checkpoint signed by an untrusted key is reported at its last entry.
    let other = NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[1; 32])).unwrap();
    let mut forged = cps[0].clone();
    forged.signatures = vec![other.sign_text(&forged.checkpoint.body_text().unwrap())];
    let f = verify(
        entries.iter().cloned().map(Ok::<_, String>),
        &[forged],
        &keys,
    )
    .unwrap_err();
    assert_eq!(f.seq, 16);
    assert!(matches!(
        f.problem,
        Problem::BadCheckpointSignature { size: 17, .. }
    ));

    // Undecodable line.
    let items: Vec<Result<Entry, String>> = vec![Ok(entries[0].clone()), Err("bad json".into())];
    assert_eq!(verify(items, &[], &keys).unwrap_err().seq, 1);
}

#[test]
fn dossier_verifies_offline() {
    let entries = chain(23);
    let cp = checkpoint_over(&entries, 23);
    let leaves = merkle::leaf_hashes(&entries.iter().map(|e| e.entry_hash).collect::<Vec<_>>());
    let dossier = Dossier {
        entry: entries[11].clone(),
        inclusion_proof: merkle::inclusion_proof(&leaves, 11).unwrap(),
        checkpoint: cp.to_text().unwrap(),
        verifier_keys: vec![signer().verifier().to_vkey()],
        jwks: None,
    };
    let json = serde_json::to_string(&dossier).unwrap();
    let back: Dossier = serde_json::from_str(&json).unwrap();
    verify_dossier(&back, None).unwrap();
    verify_dossier(&back, Some(&[signer().verifier()])).unwrap();
    let mut tampered = back.clone();
    tampered.entry.body = json!({"i": 12});
    assert!(verify_dossier(&tampered, None).is_err());
    let mut wrong_proof = back.clone();
    wrong_proof.inclusion_proof.swap(0, 1);
    assert!(verify_dossier(&wrong_proof, None).is_err());
    let other = NoteSigner::new("tollgate.test", SigningKey::from_bytes(&[9; 32])).unwrap();
    assert!(verify_dossier(&back, Some(&[other.verifier()])).is_err());
}

/// The hand-walked canonical JSON agrees with `serde_json_canonicalizer` where UTF-8
/// and UTF-16 orders differ and on ECMAScript number edge cases.
#[test]
fn canonical_json_edge_cases() {
    let cases = [
        json!({"\u{E000}": 1, "\u{10000}": 2, "a": 3, "\u{FFFF}": 4}),
        json!([
            1e21,
            1e-7,
            -0.0,
            5e-324,
            9007199254740993u64,
            -9007199254740993i64,
            0.1,
            123456789.125
        ]),
        json!({"s": "\u{0}\u{1f}\u{7f}\"\\/\u{2028}é\u{1F600}\n\t\r\u{8}\u{c}"}),
        json!({"b": {"z": [], "y": {}}, "a": null, "c": [true, false]}),
    ];
    for v in cases {
        assert_eq!(
            String::from_utf8(tollgate_ledger::canonical_json(&v).unwrap()).unwrap(),
            serde_json_canonicalizer::to_string(&v).unwrap(),
            "{v}"
        );
    }
}

proptest! {
    #[test]
    fn canonical_json_matches_the_crate(v in arb_json()) {
        prop_assert_eq!(
            tollgate_ledger::canonical_json(&v).unwrap(),
            serde_json_canonicalizer::to_vec(&v).unwrap()
        );
    }
}

/// Export lines are the canonical form of the whole entry; `push_line` verifies
/// them by hashing the line without its hash (fast path), and still verifies a
/// reformatted export by re-canonicalising.
#[test]
fn export_lines_fast_and_slow_paths() {
    let mut prev = Hash::ZERO;
    let mut entries = Vec::new();
    for i in 0..20u64 {
        let draft = EntryDraft {
            tenant: "acme".into(),
            time: "2026-11-21T12:00:00Z".into(),
            kind: EntryKind::Decision,
            // Nested members named like the top-level ones must not confuse the line surgery.
            body: json!({ "i": i, "x": { "kind": "k", "entry_hash": "e", "a": ",\"kind\":\"" } }),
        };
        let e = Entry::seal(&draft, i, prev).unwrap();
        prev = e.entry_hash;
        entries.push(e);
    }
    let keys = [signer().verifier()];
    for e in &entries {
        let line = e.to_json_line().unwrap();
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(line, serde_json_canonicalizer::to_string(&v).unwrap());
        assert_eq!(Entry::from_json_line(&line).unwrap(), *e);
    }
    let canonical: Vec<String> = entries.iter().map(|e| e.to_json_line().unwrap()).collect();
    let reformatted: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string_pretty(e).unwrap().replace('\n', ""))
        .collect();
    for lines in [&canonical, &reformatted] {
        let mut v = tollgate_ledger::Verifier::new(None, &[], &keys);
        for l in lines.iter() {
            v.push_line(l).unwrap();
        }
        assert_eq!(v.finish(None).unwrap().entries, 20);
    }
    let mut tampered = canonical.clone();
    tampered[13] = tampered[13].replace("\"i\":13", "\"i\":14");
    let mut v = tollgate_ledger::Verifier::new(None, &[], &keys);
    let failure = tampered.iter().find_map(|l| v.push_line(l).err()).unwrap();
    assert_eq!(failure.seq, 13);
    assert!(matches!(failure.problem, Problem::HashMismatch { .. }));
}
