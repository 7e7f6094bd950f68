//! The security-critical read side of the ledger, written once for every backend:
//! verification, inclusion and consistency proofs, and checkpoint listing.
//!
//! A backend implements [`LedgerRead`] — four plain reads of what it stores — and
//! its `LedgerStore` methods call the functions here. Nothing in this module trusts
//! the stored columns: entries are re-hashed from the stored canonical bytes by
//! `tollgate_ledger::Verifier`, and the `seq`, `kind` and `time` columns are checked
//! against the hashed bytes.
//!
//! Where the backend stores tlog tiles covering the tree asked about, proofs read
//! O(log n) tiles instead of every entry hash up to the tree size.
//!
//! INVARIANT: the proofs and `verify` hold O(log n) memory however long the ledger
//! is: entry hashes and rows are consumed one at a time from the backend's stream
//! (`merkle::RangeRoots` keeps one hash per level; the verifier a compact range).

use tollgate_ledger::merkle;
use tollgate_ledger::tiles::{self, TileError, TileSource};
use tollgate_ledger::{
    Hash, NoteVerifier, Problem, SignedCheckpoint, Verified, Verifier, VerifyFailure,
};

use crate::{LedgerHead, StoreError, StoredRow};

/// The reads a backend provides for [`verify`], the proofs and [`checkpoints`].
pub trait LedgerRead {
    /// The tenant's head, `None` if it has no entry.
    fn read_head(&self, tenant: &str) -> Result<Option<LedgerHead>, StoreError>;

    /// The tenant's stored checkpoints as `(size column, note text)`, by size, then
    /// in the order they were stored.
    fn checkpoint_rows(&self, tenant: &str) -> Result<Vec<(i64, String)>, StoreError>;

    /// Calls `visit` with every stored row of the tenant (`seq >= 0`) in seq order,
    /// read in one snapshot; stops at the first error `visit` returns and returns it.
    fn read_rows(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// How many leaves the stored tiles cover; 0 (the default) for a backend without
    /// tiles, whose proofs then read the entry hashes.
    fn read_tiled_size(&self, tenant: &str) -> Result<u64, StoreError> {
        let _ = tenant;
        Ok(0)
    }

    /// The stored data of tile `(level, index)`, `None` if there is none.
    fn read_tile(
        &self,
        tenant: &str,
        level: u8,
        index: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (tenant, level, index);
        Ok(None)
    }

    /// Calls `visit` with the stored `entry_hash` of every entry with
    /// `0 <= seq < size`, in seq order; stops at the first error `visit` returns.
    fn read_entry_hashes(
        &self,
        tenant: &str,
        size: u64,
        visit: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// All checkpoints of the tenant, smallest first.
pub fn checkpoints<R: LedgerRead + ?Sized>(
    store: &R,
    tenant: &str,
) -> Result<Vec<SignedCheckpoint>, StoreError> {
    store
        .checkpoint_rows(tenant)?
        .into_iter()
        .map(|(_, n)| Ok(SignedCheckpoint::parse(&n)?))
        .collect()
}

/// Inclusion proof of entry `seq` in the tree of the tenant's first `size` entries.
pub fn inclusion_proof<R: LedgerRead + ?Sized>(
    store: &R,
    tenant: &str,
    seq: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    if size <= store.read_tiled_size(tenant)? {
        return tiles::inclusion_proof(&TilesOf { store, tenant }, seq, size).map_err(tile_error);
    }
    let ranges =
        merkle::inclusion_ranges(seq, size).map_err(|e| StoreError::OutOfRange(e.to_string()))?;
    range_roots(store, tenant, size, ranges)
}

/// Consistency proof from the tree of `from` entries to the tree of `to` entries.
pub fn consistency_proof<R: LedgerRead + ?Sized>(
    store: &R,
    tenant: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, StoreError> {
    if to <= store.read_tiled_size(tenant)? {
        return tiles::consistency_proof(&TilesOf { store, tenant }, from, to).map_err(tile_error);
    }
    let ranges =
        merkle::consistency_ranges(from, to).map_err(|e| StoreError::OutOfRange(e.to_string()))?;
    range_roots(store, tenant, to, ranges)
}

/// A backend's tiles of one tenant, as `tiles::TileSource`.
struct TilesOf<'a, R: ?Sized> {
    store: &'a R,
    tenant: &'a str,
}

impl<R: LedgerRead + ?Sized> TileSource for TilesOf<'_, R> {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        self.store
            .read_tile(self.tenant, level, index)
            .map_err(|e| e.to_string())
    }
}

fn tile_error(e: TileError) -> StoreError {
    match e {
        TileError::OutOfRange(m) => StoreError::OutOfRange(m),
        TileError::Source(m) => StoreError::Backend(m),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// The roots of `ranges` (see `merkle::inclusion_ranges`) over the tenant's first
/// `size` entries, read in one pass: O(log n) memory however long the ledger is.
/// `OutOfRange` if it holds fewer than `size` entries.
fn range_roots<R: LedgerRead + ?Sized>(
    store: &R,
    tenant: &str,
    size: u64,
    ranges: Vec<std::ops::Range<u64>>,
) -> Result<Vec<Hash>, StoreError> {
    let mut roots = merkle::RangeRoots::new(ranges);
    let mut read = 0u64;
    store.read_entry_hashes(tenant, size, &mut |bytes| {
        let hash = Hash::from_slice(bytes)
            .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?;
        roots.push_entry_hash(&hash);
        read += 1;
        Ok(())
    })?;
    if read != size {
        return Err(StoreError::short_ledger(tenant, size));
    }
    roots
        .finish()
        .ok_or_else(|| StoreError::short_ledger(tenant, size))
}

/// Verifies the tenant's stored ledger with `keys` as the trusted checkpoint keys:
/// every row re-hashed from its stored bytes and chained, its columns checked against
/// them, every checkpoint's signature, size and root checked, and the head's size
/// matched. The outer error is a failure to read; the inner one the first bad
/// sequence number and what is wrong there.
pub fn verify<R: LedgerRead + ?Sized>(
    store: &R,
    tenant: &str,
    keys: &[NoteVerifier],
) -> Result<Result<Verified, VerifyFailure>, StoreError> {
    let head = store.read_head(tenant)?;
    // Checkpoint rows that cannot be checked against the chain: each is a failure at
    // the entry before its size; the earliest failure of all is reported.
    let mut candidates: Vec<VerifyFailure> = Vec::new();
    let mut checkpoints = Vec::new();
    for (size, note) in store.checkpoint_rows(tenant)? {
        let size = u64::try_from(size).unwrap_or(0);
        match SignedCheckpoint::parse(&note) {
            Ok(cp) if cp.checkpoint.size == size => checkpoints.push(cp),
            Ok(_) => candidates.push(VerifyFailure {
                seq: size.saturating_sub(1),
                problem: Problem::BadCheckpointSignature {
                    size,
                    reason: "the stored size column disagrees with the note".into(),
                },
            }),
            Err(e) => candidates.push(VerifyFailure {
                seq: size.saturating_sub(1),
                problem: Problem::BadCheckpointSignature {
                    size,
                    reason: e.to_string(),
                },
            }),
        }
    }
    let mut v = Verifier::new(Some(tenant.to_owned()), &checkpoints, keys);
    let mut failure: Option<VerifyFailure> = None;
    let read = store.read_rows(tenant, &mut |row| {
        let found = check_row(&mut v, &row);
        if found.is_some() {
            failure = found;
            // Stops the read; told apart from a read error by `failure` being set.
            return Err(StoreError::Closed);
        }
        Ok(())
    });
    match read {
        Ok(()) => {}
        Err(StoreError::Closed) if failure.is_some() => {}
        Err(e) => return Err(e),
    }
    let main = match failure {
        Some(f) => Err(f),
        None => v.finish(head.map(|h| h.size)),
    };
    let earliest = candidates.into_iter().min_by_key(|f| f.seq);
    Ok(match (main, earliest) {
        (Err(f), Some(c)) if c.seq < f.seq => Err(c),
        (Err(f), _) => Err(f),
        (Ok(_), Some(c)) => Err(c),
        (Ok(ok), None) => Ok(ok),
    })
}

/// Feeds one stored row to the verifier; the failure it shows, if any.
fn check_row(v: &mut Verifier, row: &StoredRow) -> Option<VerifyFailure> {
    let Some(hash) = Hash::from_slice(&row.entry_hash) else {
        return Some(v.malformed("the stored entry_hash is not 32 bytes"));
    };
    match v.push_canonical(&row.canonical, hash) {
        Ok(entry) => {
            let columns_agree = row.seq == i64::try_from(entry.seq).unwrap_or(-1)
                && row.kind == entry.kind.as_str()
                && row.time == entry.time;
            (!columns_agree).then(|| VerifyFailure {
                seq: entry.seq,
                problem: Problem::Malformed {
                    reason: "the stored seq, kind or time column disagrees with the hashed entry"
                        .into(),
                },
            })
        }
        Err(f) => Some(f),
    }
}
