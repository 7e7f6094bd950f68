//! Offline verification of a tenant's ledger against its checkpoints.

use std::fmt;

use serde::Serialize;

use crate::merkle::CompactRange;
use crate::{Entry, EntryHeader, Hash, NoteVerifier, SignedCheckpoint};

/// A ledger that verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The tenant (empty for an empty ledger with no tenant given).
    pub tenant: String,
    /// Number of entries.
    pub entries: u64,
    /// Merkle root over all entries.
    pub root: Hash,
    /// Number of checkpoints checked.
    pub checkpoints: usize,
}

/// The first problem found: the lowest sequence number at which the ledger is not
/// what its hashes, chain and checkpoints say it must be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("bad entry at seq {seq}: {problem}")]
pub struct VerifyFailure {
    /// The first bad sequence number.
    pub seq: u64,
    /// What is wrong there.
    pub problem: Problem,
}

/// What is wrong at the first bad sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The entry could not be read or decoded.
    Malformed {
        /// Why.
        reason: String,
    },
    /// The entry belongs to another tenant.
    WrongTenant {
        /// The tenant of the ledger.
        expected: String,
        /// The entry's tenant.
        found: String,
    },
    /// The entry at this position carries another sequence number (a gap, a
    /// duplicate or a reordering).
    WrongSeq {
        /// The sequence number found instead.
        found: u64,
    },
    /// `prev_hash` is not the previous entry's `entry_hash`.
    BrokenChain {
        /// What `prev_hash` should be.
        expected: Hash,
        /// What it is.
        found: Hash,
    },
    /// `entry_hash` is not the SHA-256 of the entry's canonical bytes.
    HashMismatch {
        /// The recomputed hash.
        computed: Hash,
        /// The stored hash.
        stored: Hash,
    },
    /// A checkpoint of this size does not carry a valid trusted signature.
    BadCheckpointSignature {
        /// The checkpoint's tree size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// A checkpoint of this size names another Merkle root than the entries give.
    CheckpointRootMismatch {
        /// The checkpoint's tree size.
        size: u64,
        /// The root in the checkpoint.
        signed: Hash,
        /// The root of the entries.
        computed: Hash,
    },
    /// The ledger ends before this sequence number, but a checkpoint (or the store's
    /// head record) says it has at least `expected_size` entries.
    Missing {
        /// The size claimed.
        expected_size: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed { reason } => write!(f, "malformed entry: {reason}"),
            Problem::WrongTenant { expected, found } => {
                write!(f, "entry of tenant `{found}` in the ledger of `{expected}`")
            }
            Problem::WrongSeq { found } => {
                write!(f, "found seq {found} instead (gap, duplicate or reorder)")
            }
            Problem::BrokenChain { expected, found } => {
                write!(
                    f,
                    "prev_hash is {found}, the previous entry's hash is {expected}"
                )
            }
            Problem::HashMismatch { computed, stored } => {
                write!(f, "entry_hash is {stored}, the entry hashes to {computed}")
            }
            Problem::BadCheckpointSignature { size, reason } => {
                write!(
                    f,
                    "checkpoint of size {size} is not validly signed: {reason}"
                )
            }
            Problem::CheckpointRootMismatch {
                size,
                signed,
                computed,
            } => write!(
                f,
                "checkpoint of size {size} signs root {signed}, the entries give {computed}"
            ),
            Problem::Missing { expected_size } => {
                write!(
                    f,
                    "entry missing: the ledger ends here but {expected_size} entries were recorded"
                )
            }
        }
    }
}

/// Streaming verifier: push entries in order, then [`Verifier::finish`].
///
/// Memory is O(log n) plus the checkpoints; entries are not kept.
#[derive(Debug)]
pub struct Verifier {
    tenant: Option<String>,
    next_seq: u64,
    prev: Hash,
    range: CompactRange,
    // INVARIANT: sorted by size; `next_checkpoint` indexes the first one whose size
    // has not yet been reached.
    checkpoints: Vec<SignedCheckpoint>,
    next_checkpoint: usize,
    keys: Vec<NoteVerifier>,
}

impl Verifier {
    /// A verifier for the ledger of `tenant` (or of the first entry's tenant).
    pub fn new(
        tenant: Option<String>,
        checkpoints: &[SignedCheckpoint],
        keys: &[NoteVerifier],
    ) -> Verifier {
        let mut checkpoints = checkpoints.to_vec();
        checkpoints.sort_by_key(|c| c.checkpoint.size);
        Verifier {
            tenant,
            next_seq: 0,
            prev: Hash::ZERO,
            range: CompactRange::new(),
            checkpoints,
            next_checkpoint: 0,
            keys: keys.to_vec(),
        }
    }

    /// Number of entries accepted so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether no entry was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// A failure at the next expected sequence number (for an entry that could not
    /// even be decoded).
    pub fn malformed(&self, reason: impl Into<String>) -> VerifyFailure {
        self.fail(Problem::Malformed {
            reason: reason.into(),
        })
    }

    fn fail(&self, problem: Problem) -> VerifyFailure {
        VerifyFailure {
            seq: self.next_seq,
            problem,
        }
    }

    /// Checks the next entry, recomputing its canonical bytes (for exports).
    pub fn push(&mut self, entry: &Entry) -> Result<(), VerifyFailure> {
        let computed = entry.compute_hash().map_err(|e| {
            self.fail(Problem::Malformed {
                reason: e.to_string(),
            })
        })?;
        self.check(
            &entry.tenant,
            entry.seq,
            entry.prev_hash,
            entry.entry_hash,
            computed,
        )
    }

    /// Checks the next line of a JSON Lines export.
    ///
    /// Fast path: Tollgate writes each line as the canonical form of the whole entry,
    /// so the line without its `entry_hash` member is exactly the bytes that were
    /// hashed; if they hash to that `entry_hash`, only the header is parsed. Any other
    /// layout (a reformatted export) takes the full path: parse and re-canonicalise.
    pub fn push_line(&mut self, line: &str) -> Result<(), VerifyFailure> {
        if let Some((bytes, stored)) = strip_hash_member(line) {
            let computed = Hash::digest(&bytes);
            if computed == stored {
                let header = EntryHeader::from_canonical(&bytes).map_err(|e| {
                    self.fail(Problem::Malformed {
                        reason: e.to_string(),
                    })
                })?;
                return self.check(
                    &header.tenant,
                    header.seq,
                    header.prev_hash,
                    stored,
                    computed,
                );
            }
        }
        let entry = Entry::from_json_line(line).map_err(|e| {
            self.fail(Problem::Malformed {
                reason: e.to_string(),
            })
        })?;
        self.push(&entry)
    }

    /// Checks the next entry given as the canonical bytes it was hashed from (as the
    /// store keeps it) and the stored hash: hashes the bytes as they are.
    pub fn push_canonical(
        &mut self,
        bytes: &[u8],
        stored_hash: Hash,
    ) -> Result<EntryHeader, VerifyFailure> {
        let header = EntryHeader::from_canonical(bytes).map_err(|e| {
            self.fail(Problem::Malformed {
                reason: e.to_string(),
            })
        })?;
        self.check(
            &header.tenant,
            header.seq,
            header.prev_hash,
            stored_hash,
            Hash::digest(bytes),
        )?;
        Ok(header)
    }

    fn check(
        &mut self,
        tenant: &str,
        seq: u64,
        prev_hash: Hash,
        stored: Hash,
        computed: Hash,
    ) -> Result<(), VerifyFailure> {
        if self.next_seq == 0 {
            // Checkpoints of the empty tree.
            self.check_checkpoints()?;
        }
        match &self.tenant {
            Some(t) if t != tenant => {
                return Err(self.fail(Problem::WrongTenant {
                    expected: t.clone(),
                    found: tenant.to_owned(),
                }));
            }
            Some(_) => {}
            None => self.tenant = Some(tenant.to_owned()),
        }
        if seq != self.next_seq {
            return Err(self.fail(Problem::WrongSeq { found: seq }));
        }
        if prev_hash != self.prev {
            return Err(self.fail(Problem::BrokenChain {
                expected: self.prev,
                found: prev_hash,
            }));
        }
        if computed != stored {
            return Err(self.fail(Problem::HashMismatch { computed, stored }));
        }
        self.range.push_entry_hash(&computed);
        self.prev = computed;
        self.next_seq += 1;
        self.check_checkpoints()
    }

    /// Checks every checkpoint whose size has been reached.
    fn check_checkpoints(&mut self) -> Result<(), VerifyFailure> {
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            let size = cp.checkpoint.size;
            if size > self.next_seq {
                break;
            }
            // A bad checkpoint is reported at the last entry it claims to cover.
            let at = size.saturating_sub(1);
            if let Err(e) = cp.verify(&self.keys) {
                return Err(VerifyFailure {
                    seq: at,
                    problem: Problem::BadCheckpointSignature {
                        size,
                        reason: e.to_string(),
                    },
                });
            }
            let computed = self.range.root();
            if cp.checkpoint.root != computed {
                return Err(VerifyFailure {
                    seq: at,
                    problem: Problem::CheckpointRootMismatch {
                        size,
                        signed: cp.checkpoint.root,
                        computed,
                    },
                });
            }
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    /// Ends the ledger. `expected_size` is a size recorded elsewhere (the store's
    /// head) that the ledger must reach; checkpoints beyond the end are reported too.
    pub fn finish(mut self, expected_size: Option<u64>) -> Result<Verified, VerifyFailure> {
        self.check_checkpoints()?;
        let claimed = self
            .checkpoints
            .last()
            .map(|c| c.checkpoint.size)
            .into_iter()
            .chain(expected_size)
            .max()
            .unwrap_or(0);
        if claimed > self.next_seq {
            return Err(self.fail(Problem::Missing {
                expected_size: claimed,
            }));
        }
        Ok(Verified {
            tenant: self.tenant.unwrap_or_default(),
            entries: self.next_seq,
            root: self.range.root(),
            checkpoints: self.checkpoints.len(),
        })
    }
}

/// The line without its top-level `entry_hash` member, and that hash. The member is
/// the last occurrence of its text: the members after it (kind, prev_hash, seq,
/// tenant, time) cannot contain an unescaped quote.
fn strip_hash_member(line: &str) -> Option<(Vec<u8>, Hash)> {
    let at = line.rfind(crate::entry::HASH_MEMBER)?;
    let hex_start = at + crate::entry::HASH_MEMBER.len();
    let hex = line.get(hex_start..hex_start + 64)?;
    let rest = line.get(hex_start + 64..)?.strip_prefix('"')?;
    let hash = Hash::from_hex(hex)?;
    let mut bytes = Vec::with_capacity(line.len());
    bytes.extend_from_slice(line.get(..at)?.as_bytes());
    bytes.extend_from_slice(rest.as_bytes());
    Some((bytes, hash))
}

/// Verifies a whole ledger: every entry's hash, the chain, every checkpoint's
/// signature (by one of `keys`) and root. Items that failed to decode are reported
/// as malformed at their position.
pub fn verify<I, E>(
    entries: I,
    checkpoints: &[SignedCheckpoint],
    keys: &[NoteVerifier],
) -> Result<Verified, VerifyFailure>
where
    I: IntoIterator<Item = Result<Entry, E>>,
    E: fmt::Display,
{
    let mut v = Verifier::new(None, checkpoints, keys);
    for item in entries {
        match item {
            Ok(entry) => v.push(&entry)?,
            Err(e) => return Err(v.malformed(e.to_string())),
        }
    }
    v.finish(None)
}
