//! Response signatures: one Ed25519 signature per response, or one per batch of
//! responses (`tollgate_ledger::batch`, docs/protocol.md "Batch signatures").
//!
//! The batch signer is a thread of its own. A handler hands it the leaf hash of its
//! response's canonical bytes and awaits the answer; the thread takes every leaf that
//! is waiting and whatever follows within 30 µs (at most 300 µs in all), builds the
//! batch's Merkle tree, signs its root once and answers each handler with the
//! signature and its audit path. It never waits for a batch to fill: a lone response
//! is a batch of one, signed after 30 µs. Under load the responses of one group
//! commit arrive microseconds apart and share one signature.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::Serialize;
use tollgate_ledger::Hash;
use tollgate_ledger::batch::{BATCH_ALGORITHM, BatchTree, sign_batch};
use tollgate_ledger::merkle::leaf_hash;

/// Most leaves in one batch (a path of at most 12 hashes).
const MAX_BATCH: usize = 4096;

/// How long the batch thread waits for one more leaf after the last. The answers of
/// one group commit reach it one by one as their handlers run, microseconds apart;
/// without a wait a batch was one or two answers (measured under 64 connections).
const GAP: Duration = Duration::from_micros(30);

/// The longest a batch gathers, from its first leaf.
const GATHER: Duration = Duration::from_micros(300);

/// How a response is signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureMode {
    /// One Ed25519 signature over the response's canonical bytes.
    Single,
    /// One Ed25519 signature over a batch's Merkle root, with the leaf's audit path.
    #[default]
    Batch,
}

impl SignatureMode {
    /// Parses the `Tollgate-Signature-Mode` header's value.
    pub fn parse(text: &str) -> Option<SignatureMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "single" => Some(SignatureMode::Single),
            "batch" => Some(SignatureMode::Batch),
            _ => None,
        }
    }
}

/// A response's `signature` object.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseSignature {
    /// `Ed25519` or `Ed25519-Merkle-batch`.
    pub algorithm: &'static str,
    /// The key's JWKS id.
    pub key_id: String,
    /// Base64 of the 64 signature bytes.
    pub value: String,
    /// Where the response sits in its batch (batch signatures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPosition>,
}

/// A batch-signed response's leaf index, the batch's size and the leaf's audit path.
#[derive(Clone, Debug, Serialize)]
pub struct BatchPosition {
    /// The leaf's index in the batch.
    pub index: u64,
    /// How many responses the batch signed.
    pub size: u64,
    /// The audit path, lowercase hex, from the leaf's sibling up.
    pub path: Vec<String>,
}

struct Job {
    leaf: Hash,
    reply: tokio::sync::oneshot::Sender<(Signature, BatchPosition)>,
}

/// Signs responses, alone or in batches.
#[derive(Debug)]
pub(crate) struct Signer {
    key: SigningKey,
    kid: String,
    batches: Option<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("leaf", &self.leaf).finish()
    }
}

impl Signer {
    /// A signer with its batch thread (`tollgate-signer`). If the thread cannot be
    /// started, every response is signed alone.
    pub(crate) fn new(key: SigningKey, kid: String) -> Signer {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread_key = key.clone();
        let batches = std::thread::Builder::new()
            .name("tollgate-signer".into())
            .spawn(move || run(&thread_key, &rx))
            .map_err(|e| tracing::error!(error = %e, "no batch signer: responses are signed alone"))
            .ok()
            .map(|_| tx);
        Signer { key, kid, batches }
    }

    /// The signature of a response whose canonical bytes are `bytes`. A batch that
    /// cannot be signed (the thread is gone) falls back to a signature of its own.
    pub(crate) async fn sign(&self, bytes: &[u8], mode: SignatureMode) -> ResponseSignature {
        if mode == SignatureMode::Batch
            && let Some(tx) = &self.batches
        {
            let (reply, answer) = tokio::sync::oneshot::channel();
            if tx
                .send(Job {
                    leaf: leaf_hash(bytes),
                    reply,
                })
                .is_ok()
                && let Ok((signature, position)) = answer.await
            {
                return ResponseSignature {
                    algorithm: BATCH_ALGORITHM,
                    key_id: self.kid.clone(),
                    value: B64.encode(signature.to_bytes()),
                    batch: Some(position),
                };
            }
        }
        self.sign_alone(bytes)
    }

    /// One Ed25519 signature over `bytes`.
    pub(crate) fn sign_alone(&self, bytes: &[u8]) -> ResponseSignature {
        ResponseSignature {
            algorithm: "Ed25519",
            key_id: self.kid.clone(),
            value: B64.encode(self.key.sign(bytes).to_bytes()),
            batch: None,
        }
    }
}

/// The batch thread: one batch per wake-up, until every sender is gone.
fn run(key: &SigningKey, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut jobs = vec![first];
        // Gather while leaves keep coming: each may be followed by another within
        // GAP, for at most GATHER in all. A lone answer waits GAP once.
        while jobs.len() < MAX_BATCH && started.elapsed() < GATHER {
            match rx.recv_timeout(GAP) {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let tree = BatchTree::new(jobs.iter().map(|j| j.leaf).collect());
        let signature = sign_batch(key, &tree);
        let size = tree.size();
        for (index, job) in (0u64..).zip(jobs) {
            // A path exists for every index below the size; a handler that went away
            // (its client disconnected) simply gets nothing.
            if let Ok(path) = tree.path(index) {
                let position = BatchPosition {
                    index,
                    size,
                    path: path.iter().map(Hash::to_hex).collect(),
                };
                let _ = job.reply.send((signature, position));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ledger::batch::verify_batch;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_responses_verify_alone() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let vk = key.verifying_key();
        let signer = std::sync::Arc::new(Signer::new(key, "kid".into()));
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let signer = signer.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("{{\"n\":{i}}}");
                let sig = signer.sign(body.as_bytes(), SignatureMode::Batch).await;
                (body, sig)
            }));
        }
        let mut largest = 0;
        for t in tasks {
            let (body, sig) = t.await.unwrap();
            assert_eq!(sig.algorithm, BATCH_ALGORITHM);
            let pos = sig.batch.unwrap();
            largest = largest.max(pos.size);
            let path: Vec<Hash> = pos
                .path
                .iter()
                .map(|h| Hash::from_hex(h).unwrap())
                .collect();
            let raw: [u8; 64] = B64.decode(&sig.value).unwrap().try_into().unwrap();
            let signature = Signature::from_bytes(&raw);
            verify_batch(body.as_bytes(), pos.index, pos.size, &path, &signature, &vk).unwrap();
            assert!(
                verify_batch(b"{\"n\":-1}", pos.index, pos.size, &path, &signature, &vk).is_err()
            );
        }
        assert!(largest >= 1);
        let alone = signer.sign(b"{}", SignatureMode::Single).await;
        assert_eq!(alone.algorithm, "Ed25519");
        assert!(alone.batch.is_none());
    }
}
