//! Writes the seed corpus of the ledger targets into `fuzz/seeds/` from the real
//! ledger code: a valid export, a signed checkpoint with its verifier key, a dossier,
//! and raw inclusion/consistency proofs. `cargo run --example seeds` (from `fuzz/`).

use std::fs;
use std::path::Path;

use serde_json::json;
use tollgate_ledger::merkle::{consistency_proof, inclusion_proof, leaf_hashes, root_of_leaf_hashes};
use tollgate_ledger::{
    Checkpoint, Dossier, Entry, EntryDraft, EntryKind, Hash, NoteSigner, SigningKey,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let signer = NoteSigner::new("tollgate", SigningKey::from_bytes(&[7u8; 32]))?;
    let mut entries = Vec::new();
    let mut prev = Hash::ZERO;
    for seq in 0..6u64 {
        let draft = EntryDraft {
            tenant: "acme".into(),
            time: format!("2026-11-21T12:00:0{seq}Z"),
            kind: if seq == 0 { EntryKind::KeyCreated } else { EntryKind::Decision },
            body: json!({"decision_id": format!("dec_{seq}"), "verdict": {"status": "ALLOW"}, "n": seq}),
        };
        let entry = Entry::seal(&draft, seq, prev)?;
        prev = entry.entry_hash;
        entries.push(entry);
    }
    let export: Vec<String> = entries.iter().map(Entry::to_json_line).collect::<Result<_, _>>()?;
    write(&seeds, "ledger_verify", "export.jsonl", export.join("\n"))?;
    write(&seeds, "ledger_verify", "one.jsonl", export[0].clone())?;

    let hashes: Vec<Hash> = entries.iter().map(|e| e.entry_hash).collect();
    let leaves = leaf_hashes(&hashes);
    let root = root_of_leaf_hashes(&leaves);
    let checkpoint = Checkpoint {
        origin: "tollgate/acme".into(),
        size: leaves.len() as u64,
        root,
        extensions: vec!["time 2026-11-21T12:00:06Z".into()],
    }
    .sign(&signer)?;
    let text = checkpoint.to_text()?;
    let vkey = signer.verifier().to_vkey();
    write(&seeds, "checkpoint_parse", "checkpoint.txt", format!("{vkey}\n{text}"))?;

    let dossier = Dossier {
        entry: entries[3].clone(),
        inclusion_proof: inclusion_proof(&leaves, 3)?,
        checkpoint: text,
        verifier_keys: vec![vkey],
        jwks: None,
    };
    write(&seeds, "proof_verify", "dossier.json", serde_json::to_string_pretty(&dossier)?)?;
    // Raw inclusion proof: index, size, spare, root, leaf, path.
    let mut raw = Vec::new();
    raw.extend(3u64.to_le_bytes());
    raw.extend((leaves.len() as u64).to_le_bytes());
    raw.extend(0u64.to_le_bytes());
    raw.extend(root.0);
    raw.extend(leaves[3].0);
    for h in inclusion_proof(&leaves, 3)? {
        raw.extend(h.0);
    }
    write(&seeds, "proof_verify", "inclusion.bin", raw)?;
    // Raw consistency proof: old size, new size, spare, old root, new root, path.
    let old = root_of_leaf_hashes(&leaves[..2]);
    let mut raw = Vec::new();
    raw.extend(2u64.to_le_bytes());
    raw.extend((leaves.len() as u64).to_le_bytes());
    raw.extend(0u64.to_le_bytes());
    raw.extend(old.0);
    raw.extend(root.0);
    for h in consistency_proof(&leaves, 2)? {
        raw.extend(h.0);
    }
    write(&seeds, "proof_verify", "consistency.bin", raw)?;
    Ok(())
}

fn write(
    seeds: &Path,
    target: &str,
    name: &str,
    data: impl AsRef<[u8]>,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = seeds.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), data)?;
    Ok(())
}
