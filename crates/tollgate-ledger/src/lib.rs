#![doc = include_str!("../README.md")]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod batch;
mod checkpoint;
mod dossier;
mod entry;
mod hash;
mod keys;
pub mod merkle;
pub mod tiles;
mod verify;

pub use checkpoint::{
    Checkpoint, NoteSignature, NoteSigner, NoteVerifier, SignedCheckpoint, key_id,
};
pub use dossier::{Dossier, DossierFailure, verify_dossier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use entry::{
    CanonicalDraft, Entry, EntryDraft, EntryHeader, EntryKind, MAX_SEQ, PreparedDraft,
    canonical_json, line_from_canonical,
};
pub use hash::Hash;
pub use keys::{Jwk, Jwks, public_key_from_pem, public_key_pem, thumbprint};
pub use verify::{Problem, Verified, Verifier, VerifyFailure, verify};

/// Errors of the ledger format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// A kind name that is not one of the ledger's kinds.
    #[error("unknown entry kind `{0}`")]
    UnknownKind(String),
    /// JSON could not be decoded.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// JSON could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A sequence number beyond 2^53 - 1.
    #[error("sequence number {0} is too large")]
    SeqTooLarge(u64),
    /// A malformed or unverifiable checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A malformed key.
    #[error("key: {0}")]
    Key(String),
}
