//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! The leaves of a tenant's tree are its entries' `entry_hash` values in sequence
//! order, so leaf `i` hashes to `SHA-256(0x00 || entry_hash_i)` and an interior node to
//! `SHA-256(0x01 || left || right)`. The tree of no leaves has root `SHA-256("")`.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::Hash;

/// Why a proof did not verify, or could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index is not below the tree size.
    #[error("index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new one, or zero.
    #[error("cannot prove consistency from size {old} to size {new}")]
    BadSizes {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// The proof has the wrong number of hashes.
    #[error("the proof has the wrong length")]
    WrongLength,
    /// Recomputing the root from the proof gives another root.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// The hash of a leaf whose data is `data` (for the ledger: an entry hash).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the tree with no leaves: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash::digest(b"")
}

/// Leaf hashes of a list of entry hashes.
pub fn leaf_hashes(entry_hashes: &[Hash]) -> Vec<Hash> {
    entry_hashes.iter().map(|h| leaf_hash(&h.0)).collect()
}

/// The largest power of two strictly smaller than `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// [`split_point`] of a slice's length.
fn split_index(len: usize) -> usize {
    split_point(len as u64) as usize
}

/// MTH over already-hashed leaves (RFC 6962 section 2.1).
pub fn root_of_leaf_hashes(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let (left, right) = leaves.split_at(split_index(leaves.len()));
            node_hash(&root_of_leaf_hashes(left), &root_of_leaf_hashes(right))
        }
    }
}

/// The audit path of leaf `index` (RFC 6962 section 2.1.1, `PATH(m, D[n])`), from the
/// leaf's sibling up to the root's child.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(leaves, index as usize, &mut out);
    Ok(out)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_index(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        path(left, m, out);
        out.push(root_of_leaf_hashes(right));
    } else {
        path(right, m - k, out);
        out.push(root_of_leaf_hashes(left));
    }
}

/// The consistency proof between the first `old_size` leaves and all of `leaves`
/// (RFC 6962 section 2.1.2, `PROOF(m, D[n])`). Empty when the sizes are equal.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new = leaves.len() as u64;
    if old_size == 0 || old_size > new {
        return Err(ProofError::BadSizes { old: old_size, new });
    }
    let mut out = Vec::new();
    if old_size < new {
        subproof(old_size as usize, leaves, true, &mut out);
    }
    Ok(out)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root_of_leaf_hashes(leaves));
        }
        return;
    }
    let k = split_index(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, complete, out);
        out.push(root_of_leaf_hashes(right));
    } else {
        subproof(m - k, right, false, out);
        out.push(root_of_leaf_hashes(left));
    }
}

/// The leaf ranges whose subtree roots (MTH) make up `PATH(index, D[size])`, in proof
/// order. Together with [`RangeRoots`] this builds an inclusion proof from the leaves
/// read once, in order, keeping O(log n) hashes instead of the whole tree.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The recursion of `path`, top down; the proof lists the deepest sibling first.
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, size, index);
    while hi - lo > 1 {
        out.push(step(&mut lo, &mut hi, &mut m, |m, k| m < k).0);
    }
    out.reverse();
    Ok(out)
}

/// The leaf ranges whose subtree roots make up `PROOF(old_size, D[new_size])`, in proof
/// order (empty when the sizes are equal). See [`inclusion_ranges`].
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut out = Vec::new();
    if old_size == new_size {
        return Ok(out);
    }
    // The recursion of `subproof`, top down.
    let (mut lo, mut hi, mut m, mut complete) = (0u64, new_size, old_size, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                out.push(lo..hi);
            }
            break;
        }
        let (aside, went_left) = step(&mut lo, &mut hi, &mut m, |m, k| m <= k);
        out.push(aside);
        complete &= went_left;
    }
    out.reverse();
    Ok(out)
}

/// One step down the recursion over leaves `lo..hi`, split at `k`, the largest power
/// of two below their count: into the left part when `left(m, k)`, else into the
/// right one (with `m` taken relative to it). Returns the part left aside, whose root
/// the proof carries, and whether the step went left.
fn step(lo: &mut u64, hi: &mut u64, m: &mut u64, left: fn(u64, u64) -> bool) -> (Range<u64>, bool) {
    let k = split_point(*hi - *lo);
    if left(*m, k) {
        let aside = *lo + k..*hi;
        *hi = *lo + k;
        (aside, true)
    } else {
        let aside = *lo..*lo + k;
        *lo += k;
        *m -= k;
        (aside, false)
    }
}

/// The roots (MTH) of disjoint leaf ranges, computed from the entry hashes of leaves
/// `0, 1, 2, …` pushed in order: each range keeps only its [`CompactRange`], so memory
/// is O(ranges × log n) however many leaves pass through.
#[derive(Debug)]
pub struct RangeRoots {
    ranges: Vec<Range<u64>>,
    roots: Vec<CompactRange>,
    // INVARIANT: indexes into `ranges`, sorted by start; `cursor` indexes the first
    // one not yet ended before `next`.
    by_start: Vec<usize>,
    cursor: usize,
    next: u64,
    needed: u64,
}

impl RangeRoots {
    /// Roots for `ranges` (disjoint, each non-empty), in their order.
    pub fn new(ranges: Vec<Range<u64>>) -> RangeRoots {
        let mut by_start: Vec<usize> = (0..ranges.len()).collect();
        by_start.sort_by_key(|&i| ranges.get(i).map_or(0, |r| r.start));
        let needed = ranges.iter().map(|r| r.end).max().unwrap_or(0);
        RangeRoots {
            roots: vec![CompactRange::new(); ranges.len()],
            ranges,
            by_start,
            cursor: 0,
            next: 0,
            needed,
        }
    }

    /// How many leaves (from leaf 0) must be pushed: the end of the last range.
    pub fn leaves_needed(&self) -> u64 {
        self.needed
    }

    /// Pushes the entry hash of the next leaf.
    pub fn push_entry_hash(&mut self, entry_hash: &Hash) {
        let leaf = self.next;
        self.next += 1;
        while let Some(&i) = self.by_start.get(self.cursor) {
            let Some(range) = self.ranges.get(i) else {
                break;
            };
            if leaf >= range.end {
                self.cursor += 1;
                continue;
            }
            if leaf >= range.start
                && let Some(root) = self.roots.get_mut(i)
            {
                root.push_entry_hash(entry_hash);
            }
            break;
        }
    }

    /// The roots in the ranges' order, once [`RangeRoots::leaves_needed`] leaves were
    /// pushed; `None` if fewer were.
    pub fn finish(self) -> Option<Vec<Hash>> {
        (self.next >= self.needed).then(|| self.roots.iter().map(CompactRange::root).collect())
    }
}

/// Checks that the leaf with hash `leaf` is at `index` in the tree of `size` leaves
/// whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(leaf, index, size, proof)? != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The root that the audit path `proof` leads to from the leaf with hash `leaf` at
/// `index` in a tree of `size` leaves (RFC 9162 section 2.1.3.2, without the final
/// comparison).
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the
/// tree of `new_size` leaves with root `new_root` (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        // The empty tree is a prefix of every tree; there is nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let mut f = old_size - 1;
    let mut s = new_size - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a Merkle tree: the roots of its perfect subtrees, largest first.
/// Appending a leaf and computing the root are O(log n); this is how the sequencer
/// and the verifier follow a tree of millions of leaves without keeping it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    // INVARIANT: `peaks.len() == size.count_ones()`, and peaks[i] is the root of the
    // perfect subtree for the i-th set bit of `size`, from the most significant.
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The range of the empty tree.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Rebuilds a range from its size and peaks (as stored by [`CompactRange::peaks`]).
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<CompactRange> {
        (peaks.len() == size.count_ones() as usize).then_some(CompactRange { size, peaks })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf given its entry hash.
    pub fn push_entry_hash(&mut self, entry_hash: &Hash) {
        self.push_leaf_hash(leaf_hash(&entry_hash.0));
    }

    /// Appends an already-hashed leaf.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a peak of equal height to merge.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            let Some(left) = self.peaks.pop() else { break };
            node = node_hash(&left, &node);
            merges -= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The Merkle root (MTH) of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}
