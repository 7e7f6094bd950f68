//! Checkpoint (C2SP signed note) and verifier key parsing: parse, re-serialise,
//! parse again, and verify against the keys the input names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_ledger::{NoteVerifier, SignedCheckpoint};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A verifier key on the first line, the note after it (either may be junk).
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let keys: Vec<NoteVerifier> = NoteVerifier::from_vkey(first).into_iter().collect();
    for note in [text, rest] {
        if let Ok(cp) = SignedCheckpoint::parse(note) {
            let _ = cp.verify(&keys);
            if let Ok(again) = cp.to_text() {
                // What we print must parse back to the same checkpoint.
                match SignedCheckpoint::parse(&again) {
                    Ok(back) => assert_eq!(back.checkpoint, cp.checkpoint),
                    Err(e) => panic!("re-serialised checkpoint does not parse: {e}"),
                }
            }
        }
    }
});
