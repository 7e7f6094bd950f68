//! Ledger export import and verification: every line of the input is pushed into
//! the offline `Verifier` like `tollgate audit verify --file` does, each line also
//! goes through the full entry decoder, and the verifier is finished.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_ledger::{Entry, Verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut verifier = Verifier::new(None, &[], &[]);
    let mut failed = false;
    for line in text.lines() {
        if let Ok(entry) = Entry::from_json_line(line) {
            let _ = entry.to_json_line();
        }
        if !failed && verifier.push_line(line).is_err() {
            failed = true;
        }
    }
    if !failed {
        let _ = verifier.finish(None);
    }
});
