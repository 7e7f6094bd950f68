//! Batch signatures: one Ed25519 signature over the RFC 6962 Merkle root of many
//! messages, each message carrying its own audit path, so that any holder of the
//! public key checks one message alone (docs/protocol.md, "Batch signatures").
//!
//! The leaf of a message is `SHA-256(0x00 || message)` (RFC 6962 leaf hash); the tree
//! is RFC 6962's (left-balanced, interior nodes `SHA-256(0x01 || left || right)`); the
//! signed bytes are [`batch_message`]: the text
//!
//! ```text
//! tollgate verdict batch v1
//! <size>
//! <root, lowercase hex>
//! ```
//!
//! with a newline after each line. The first line separates these signatures from
//! every other thing the same key signs: a response body's canonical JSON starts with
//! `{`, and a checkpoint note's first line is an origin without spaces.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::Hash;
use crate::merkle::{self, ProofError};

/// The `signature.algorithm` of a batch-signed response.
pub const BATCH_ALGORITHM: &str = "Ed25519-Merkle-batch";

/// The first line of the signed text.
const DOMAIN: &str = "tollgate verdict batch v1";

/// The bytes the key signs for a batch of `size` messages with Merkle root `root`.
pub fn batch_message(size: u64, root: &Hash) -> Vec<u8> {
    format!("{DOMAIN}\n{size}\n{}\n", root.to_hex()).into_bytes()
}

/// The RFC 6962 Merkle tree over one batch's leaves, every level kept, so that each
/// leaf's audit path is read off in O(log n) and the whole tree costs n - 1 hashes.
///
/// Built bottom-up: each level pairs nodes left to right and carries a last unpaired
/// node up unchanged; that is the same tree as RFC 6962's recursive definition
/// (largest power of two on the left).
#[derive(Clone, Debug)]
pub struct BatchTree {
    levels: Vec<Vec<Hash>>,
}

impl BatchTree {
    /// The tree over `leaves` (leaf hashes; see [`merkle::leaf_hash`]). An empty batch
    /// has the empty root and no paths.
    pub fn new(leaves: Vec<Hash>) -> BatchTree {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => merkle::node_hash(left, right),
                    [one] => *one,
                    _ => merkle::empty_root(),
                })
                .collect();
            levels.push(above);
        }
        BatchTree { levels }
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The Merkle tree hash of the batch.
    pub fn root(&self) -> Hash {
        match self.levels.last().map(Vec::as_slice) {
            Some([root]) => *root,
            _ => merkle::empty_root(),
        }
    }

    /// The audit path of leaf `index`, from its sibling up (RFC 6962 `PATH`).
    pub fn path(&self, index: u64) -> Result<Vec<Hash>, ProofError> {
        let size = self.size();
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::new();
        let mut i = index as usize;
        for level in self.levels.iter().take(self.levels.len().saturating_sub(1)) {
            // A node without a right sibling is carried up: it has no path element here.
            if let Some(sibling) = level.get(i ^ 1) {
                out.push(*sibling);
            }
            i >>= 1;
        }
        Ok(out)
    }
}

/// Signs the batch of `tree`: one signature for every message in it.
pub fn sign_batch(key: &SigningKey, tree: &BatchTree) -> Signature {
    key.sign(&batch_message(tree.size(), &tree.root()))
}

/// Why a batch-signed message does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The audit path does not fit the index and size.
    #[error("the batch audit path does not fit: {0}")]
    Path(#[from] ProofError),
    /// The signature is not the key's over the recomputed root.
    #[error("the batch signature does not match")]
    Signature,
}

/// Checks that `message` is leaf `index` of a batch of `size` whose root `key` signed
/// with `signature`, given the leaf's audit path.
pub fn verify_batch(
    message: &[u8],
    index: u64,
    size: u64,
    path: &[Hash],
    signature: &Signature,
    key: &VerifyingKey,
) -> Result<(), BatchError> {
    let root = merkle::root_from_inclusion(&merkle::leaf_hash(message), index, size, path)?;
    key.verify_strict(&batch_message(size, &root), signature)
        .map_err(|_| BatchError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"n\":{i}}}").into_bytes())
            .collect()
    }

    #[test]
    fn paths_are_rfc6962_paths_and_roots() {
        for n in 1..=70usize {
            let msgs = leaves(n);
            let hashes: Vec<Hash> = msgs.iter().map(|m| merkle::leaf_hash(m)).collect();
            let tree = BatchTree::new(hashes.clone());
            assert_eq!(tree.root(), merkle::root_of_leaf_hashes(&hashes), "n={n}");
            for i in 0..n as u64 {
                assert_eq!(
                    tree.path(i).unwrap(),
                    merkle::inclusion_proof(&hashes, i).unwrap(),
                    "n={n} i={i}"
                );
            }
            assert!(tree.path(n as u64).is_err());
        }
    }

    #[test]
    fn every_message_verifies_alone_and_nothing_else_does() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        for n in [1usize, 2, 3, 5, 8, 13] {
            let msgs = leaves(n);
            let tree = BatchTree::new(msgs.iter().map(|m| merkle::leaf_hash(m)).collect());
            let sig = sign_batch(&key, &tree);
            for (i, m) in msgs.iter().enumerate() {
                let i = i as u64;
                let path = tree.path(i).unwrap();
                let vk = key.verifying_key();
                assert_eq!(verify_batch(m, i, n as u64, &path, &sig, &vk), Ok(()));
                // Another message, another index, another size, another key: refused.
                assert!(verify_batch(b"{\"n\":99}", i, n as u64, &path, &sig, &vk).is_err());
                if n > 1 {
                    assert!(
                        verify_batch(m, (i + 1) % n as u64, n as u64, &path, &sig, &vk).is_err()
                    );
                }
                assert!(verify_batch(m, i, n as u64 + 1, &path, &sig, &vk).is_err());
                let vk2 = other.verifying_key();
                assert_eq!(
                    verify_batch(m, i, n as u64, &path, &sig, &vk2),
                    Err(BatchError::Signature)
                );
            }
        }
    }

    #[test]
    fn the_signed_text_is_fixed() {
        let root = Hash([0xab; 32]);
        assert_eq!(
            String::from_utf8(batch_message(3, &root)).unwrap(),
            format!("tollgate verdict batch v1\n3\n{}\n", "ab".repeat(32))
        );
    }
}
