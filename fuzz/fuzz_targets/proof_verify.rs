//! Dossier (entry + inclusion proof + checkpoint) parsing and verification, and the
//! RFC 6962 inclusion and consistency proof verifiers on arbitrary sizes and paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_ledger::merkle::{verify_consistency, verify_inclusion};
use tollgate_ledger::{Dossier, Hash, verify_dossier};

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(dossier) = serde_json::from_slice::<Dossier>(data) {
        let _ = verify_dossier(&dossier, None);
    }
    // Raw proofs: three u64s (index/old size, size, a spare), then 32-byte hashes:
    // the first is the root (or old root), the second the leaf (or new root), the
    // rest the path.
    if data.len() < 24 {
        return;
    }
    let (a, b) = (u64_at(data, 0), u64_at(data, 8));
    let hashes: Vec<Hash> = data
        .get(24..)
        .unwrap_or_default()
        .chunks_exact(32)
        .filter_map(Hash::from_slice)
        .collect();
    let (Some(first), Some(second)) = (hashes.first(), hashes.get(1)) else {
        return;
    };
    let path = hashes.get(2..).unwrap_or_default();
    let _ = verify_inclusion(second, a, b, path, first);
    let _ = verify_consistency(a, b, first, second, path);
});
