//! The ledger part of a decision dossier, checkable alone and offline.

use serde::{Deserialize, Serialize};

use crate::merkle::{ProofError, leaf_hash, verify_inclusion};
use crate::{Entry, Hash, NoteVerifier, SignedCheckpoint, Verified};

/// The proof material of a dossier (`GET /v1/dossiers/{id}` adds the decision's
/// request, verdict, trace, policy and review history around it; those are also in
/// `entry.body`, which the hash covers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dossier {
    /// The ledger entry with its hashes.
    pub entry: Entry,
    /// Audit path of the entry (leaf index `entry.seq`) in the checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
    /// The checkpoint the proof is against, as C2SP signed-note text.
    pub checkpoint: String,
    /// The log's verifier keys in signed-note form (`name+keyid+base64`), so the
    /// checkpoint can be checked without the server.
    pub verifier_keys: Vec<String>,
    /// The same public keys as a JWKS, for tools that speak JOSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<crate::Jwks>,
}

/// Why a dossier does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DossierFailure {
    /// A part could not be parsed.
    #[error("malformed dossier: {0}")]
    Malformed(String),
    /// The entry's hash is not the hash of its content.
    #[error("the entry at seq {seq} does not hash to its entry_hash")]
    EntryHash {
        /// The entry's seq.
        seq: u64,
    },
    /// The checkpoint is not signed by a trusted key.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The entry is not in the checkpoint's tree.
    #[error("inclusion proof for seq {seq}: {source}")]
    Inclusion {
        /// The entry's seq.
        seq: u64,
        /// Why.
        source: ProofError,
    },
}

/// Verifies a dossier: the entry hashes to its `entry_hash`, the checkpoint is
/// signed by one of `trusted` keys (or, if `None`, by one of the dossier's own
/// `verifier_keys`, which proves integrity but not origin), and the inclusion proof
/// leads from the entry to the checkpoint's root.
pub fn verify_dossier(
    dossier: &Dossier,
    trusted: Option<&[NoteVerifier]>,
) -> Result<Verified, DossierFailure> {
    let seq = dossier.entry.seq;
    let computed = dossier
        .entry
        .compute_hash()
        .map_err(|e| DossierFailure::Malformed(e.to_string()))?;
    if computed != dossier.entry.entry_hash {
        return Err(DossierFailure::EntryHash { seq });
    }
    let cp = SignedCheckpoint::parse(&dossier.checkpoint)
        .map_err(|e| DossierFailure::Malformed(e.to_string()))?;
    let own: Vec<NoteVerifier>;
    let keys = match trusted {
        Some(k) => k,
        None => {
            own = dossier
                .verifier_keys
                .iter()
                .map(|k| NoteVerifier::from_vkey(k))
                .collect::<Result<_, _>>()
                .map_err(|e| DossierFailure::Malformed(e.to_string()))?;
            &own
        }
    };
    cp.verify(keys)
        .map_err(|e| DossierFailure::Checkpoint(e.to_string()))?;
    verify_inclusion(
        &leaf_hash(&computed.0),
        seq,
        cp.checkpoint.size,
        &dossier.inclusion_proof,
        &cp.checkpoint.root,
    )
    .map_err(|source| DossierFailure::Inclusion { seq, source })?;
    Ok(Verified {
        tenant: dossier.entry.tenant.clone(),
        entries: cp.checkpoint.size,
        root: cp.checkpoint.root,
        checkpoints: 1,
    })
}
