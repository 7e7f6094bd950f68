//! The Merkle tree as C2SP `tlog-tiles`: tiles of 256 hashes, paths, and proofs read
//! from tiles in O(log n) tile reads.
//!
//! A tile at level `L`, index `N` holds, for `i` in `0..W`, the root of the subtree
//! over leaves `[(N*256 + i) * 256^L, (N*256 + i + 1) * 256^L)`; level 0 holds the leaf
//! hashes themselves (`SHA-256(0x00 || entry_hash)`: the ledger's leaves are entry
//! hashes). A full tile has `W = 256` and never changes; the rightmost tile of a level is
//! partial (`1 ≤ W < 256`), and a partial tile of width `W` is the first `W` hashes of
//! any wider version of it, so a store keeps one row per `(L, N)` and serves prefixes.
//!
//! The tile arithmetic and the proof index sets come from the `tlog_tiles` crate (a
//! port of Go's `golang.org/x/mod/sumdb/tlog`, the reference for tiled logs); this
//! module adds the C2SP path form (`tile/L/N`, without Go's height element), the
//! writer's incremental tile building, and the glue to [`Hash`].

use std::cell::RefCell;
use std::collections::BTreeMap;

use tlog_tiles::{HashReader, Tile};

use crate::Hash;
use crate::merkle;

/// Hashes per full tile.
pub const WIDTH: u64 = 256;
/// Tree levels per tile (`2^HEIGHT = WIDTH`), fixed by C2SP `tlog-tiles`.
pub const HEIGHT: u8 = 8;
/// Bytes per hash in a tile.
pub const HASH_BYTES: usize = 32;

/// A tile coordinate: level, index within the level, and width (256 when full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// The level (0: leaf hashes).
    pub level: u8,
    /// The index of the tile within its level.
    pub index: u64,
    /// How many hashes it holds: 256 for a full tile, fewer for a partial one.
    pub width: u32,
}

/// What a tile path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// A hash tile, `tile/<L>/<N>[.p/<W>]`.
    Hashes(TileId),
    /// An entry bundle, `tile/entries/<N>[.p/<W>]` (level 0 coordinates).
    Entries(TileId),
}

/// A path that is not a C2SP tile path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a tile path: `{0}`")]
pub struct BadTilePath(pub String);

/// Why a tile could not be built or a proof could not be read from tiles.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// A tile the computation needs is not stored, or is narrower than needed.
    #[error("tile {level}/{index} of width {width} is not stored")]
    Missing {
        /// Level.
        level: u8,
        /// Index.
        index: u64,
        /// Width needed.
        width: u32,
    },
    /// Stored tile data whose length is not a multiple of 32 bytes.
    #[error("tile {level}/{index}: {len} bytes is not a whole number of hashes")]
    Malformed {
        /// Level.
        level: u8,
        /// Index.
        index: u64,
        /// Length found.
        len: usize,
    },
    /// A proof request outside the tree (index ≥ size, sizes out of order).
    #[error("{0}")]
    OutOfRange(String),
    /// The source of tiles failed (the store's error, as text).
    #[error("reading tiles: {0}")]
    Source(String),
}

impl TileId {
    /// A full tile.
    pub fn full(level: u8, index: u64) -> TileId {
        TileId {
            level,
            index,
            width: WIDTH as u32,
        }
    }

    /// Whether the tile holds all 256 hashes.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == WIDTH
    }

    /// The C2SP path of the hash tile: `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_and_width())
    }

    /// The C2SP path of the entry bundle with this tile's index and width:
    /// `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.index_and_width())
    }

    /// `<N>[.p/<W>]`, `N` in groups of three digits, all but the last prefixed `x`.
    fn index_and_width(&self) -> String {
        let mut n = self.index;
        let mut s = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            s = format!("x{:03}/{s}", n % 1000);
        }
        if !self.is_full() {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }

    /// Parses a C2SP tile path (hash tile or entry bundle). Only the canonical spelling
    /// is accepted: `L` in 0..=63 without leading zeroes, `N` in three-digit elements
    /// all but the last prefixed `x`, `W` in 1..=255 without leading zeroes.
    ///
    /// (Parsed here rather than by `tlog_tiles::Tile::from_path`, which panics on some
    /// malformed input; a path comes from an HTTP request.)
    pub fn parse(path: &str) -> Result<TilePath, BadTilePath> {
        let bad = || BadTilePath(path.to_owned());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let mut parts: Vec<&str> = rest.split('/').collect();
        let head = parts.first().copied().ok_or_else(bad)?;
        let level = if head == "entries" {
            None
        } else {
            Some(decimal(head, 63).ok_or_else(bad)?)
        };
        parts.remove(0);
        // `.p/<W>`: the element before the last ends in `.p`.
        let mut width = WIDTH as u32;
        if parts.len() >= 2 {
            let before_last = parts.len() - 2;
            if let Some(stripped) = parts.get(before_last).and_then(|p| p.strip_suffix(".p")) {
                let w = parts.last().and_then(|w| decimal(w, 255)).ok_or_else(bad)?;
                if w == 0 {
                    return Err(bad());
                }
                width = w as u32;
                parts.truncate(before_last);
                parts.push(stripped);
            }
        }
        if parts.is_empty() {
            return Err(bad());
        }
        let mut index: u64 = 0;
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let digits = if i < last {
                part.strip_prefix('x').ok_or_else(bad)?
            } else {
                part
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(d))
                .ok_or_else(bad)?;
        }
        let id = TileId {
            level: level.unwrap_or(0) as u8,
            index,
            width,
        };
        let (again, kind) = match level {
            None => (id.entries_path(), TilePath::Entries(id)),
            Some(_) => (id.path(), TilePath::Hashes(id)),
        };
        // Round trip: rejects what survived the checks but is not canonical.
        if again != path {
            return Err(bad());
        }
        Ok(kind)
    }
}

/// A decimal number `0..=max` with no leading zeroes.
fn decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok().filter(|v| *v <= max)
}

/// The width of tile `(level, index)` in the tree of `size` leaves: 256 for a full
/// tile, fewer for the rightmost partial one, 0 when the tree has no such tile.
pub fn width_at(level: u8, index: u64, size: u64) -> u32 {
    let shift = u32::from(HEIGHT) * u32::from(level);
    let hashes = size.checked_shr(shift).unwrap_or(0);
    let first = index.saturating_mul(WIDTH);
    if hashes <= first {
        0
    } else {
        (hashes - first).min(WIDTH) as u32
    }
}

/// The tiles that change when the tree grows from `old` to `new` leaves, lowest level
/// first (each tile's children come before it).
pub fn new_tiles(old: u64, new: u64) -> Vec<TileId> {
    if new <= old {
        return Vec::new();
    }
    Tile::new_tiles(HEIGHT, old, new)
        .into_iter()
        .map(|t| TileId {
            level: t.level(),
            index: t.level_index(),
            width: t.width(),
        })
        .collect()
}

/// The root of the hashes in a full tile (the hash its parent tile holds for it), or
/// of the first power-of-two hashes of any tile.
pub fn subtree_root(data: &[u8]) -> Hash {
    if data.is_empty() {
        return merkle::empty_root();
    }
    Hash(Tile::subtree_hash(data).0)
}

/// Extends the stored data of tile `id` (the `prefix`, possibly empty or narrower) to
/// its full width `id.width`. `leaves(from, to)` gives the entry hashes of leaves
/// `[from, to)` (level 0); `child(level, index)` gives the data of a full tile below
/// (levels above 0). Only the hashes missing from `prefix` are computed.
pub fn extend_tile<E>(
    id: TileId,
    mut prefix: Vec<u8>,
    leaves: &mut dyn FnMut(u64, u64) -> Result<Vec<Hash>, E>,
    child: &mut dyn FnMut(u8, u64) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, TileErrorOr<E>> {
    let have = (prefix.len() / HASH_BYTES) as u64;
    if !prefix.len().is_multiple_of(HASH_BYTES) {
        return Err(TileErrorOr::Tile(TileError::Malformed {
            level: id.level,
            index: id.index,
            len: prefix.len(),
        }));
    }
    let want = u64::from(id.width);
    if have >= want {
        prefix.truncate(want as usize * HASH_BYTES);
        return Ok(prefix);
    }
    let first = id.index * WIDTH;
    if id.level == 0 {
        let hashes = leaves(first + have, first + want).map_err(TileErrorOr::Source)?;
        if hashes.len() as u64 != want - have {
            return Err(TileErrorOr::Tile(TileError::Missing {
                level: 0,
                index: id.index,
                width: id.width,
            }));
        }
        for h in hashes {
            prefix.extend_from_slice(&merkle::leaf_hash(&h.0).0);
        }
    } else {
        for i in have..want {
            let data = child(id.level - 1, first + i).map_err(TileErrorOr::Source)?;
            if data.len() != WIDTH as usize * HASH_BYTES {
                return Err(TileErrorOr::Tile(TileError::Missing {
                    level: id.level - 1,
                    index: first + i,
                    width: WIDTH as u32,
                }));
            }
            prefix.extend_from_slice(&subtree_root(&data).0);
        }
    }
    Ok(prefix)
}

/// A tile error, or the error of the caller's source.
#[derive(Debug)]
pub enum TileErrorOr<E> {
    /// What the tile arithmetic found.
    Tile(TileError),
    /// What the source returned.
    Source(E),
}

/// Reads stored tiles: the data stored for `(level, index)`, of any width, or `None`.
pub trait TileSource {
    /// The stored data of tile `(level, index)` (a whole number of hashes).
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String>;
}

/// Inclusion proof (RFC 6962 audit path, leaf to root) of leaf `index` in the tree of
/// the first `size` leaves, from tiles covering at least `size` leaves.
pub fn inclusion_proof(
    tiles: &dyn TileSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TileError> {
    if index >= size {
        return Err(TileError::OutOfRange(format!(
            "index {index} is outside a tree of size {size}"
        )));
    }
    let reader = Reader::new(tiles);
    let proof = tlog_tiles::prove_record(size, index, &reader);
    reader.finish(proof).map(to_hashes)
}

/// Consistency proof from the tree of `old` leaves to the tree of `new` leaves, from
/// tiles covering at least `new` leaves.
pub fn consistency_proof(
    tiles: &dyn TileSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TileError> {
    if old == 0 || old > new {
        return Err(TileError::OutOfRange(format!(
            "cannot prove consistency from size {old} to size {new}"
        )));
    }
    let reader = Reader::new(tiles);
    let proof = tlog_tiles::prove_tree(new, old, &reader);
    reader.finish(proof).map(to_hashes)
}

/// The root of the tree of the first `size` leaves, from tiles.
pub fn root(tiles: &dyn TileSource, size: u64) -> Result<Hash, TileError> {
    let reader = Reader::new(tiles);
    let root = tlog_tiles::tree_hash(size, &reader);
    reader.finish(root).map(|h| Hash(h.0))
}

fn to_hashes(proof: Vec<tlog_tiles::Hash>) -> Vec<Hash> {
    proof.into_iter().map(|h| Hash(h.0)).collect()
}

/// `tlog_tiles::HashReader` over stored tiles: reads each tile a request touches
/// once, and keeps the first error so it is reported as ours, not as the crate's.
struct Reader<'a> {
    tiles: &'a dyn TileSource,
    error: RefCell<Option<TileError>>,
}

impl<'a> Reader<'a> {
    fn new(tiles: &'a dyn TileSource) -> Reader<'a> {
        Reader {
            tiles,
            error: RefCell::new(None),
        }
    }

    fn finish<T>(self, result: Result<T, tlog_tiles::Error>) -> Result<T, TileError> {
        match (result, self.error.into_inner()) {
            (_, Some(e)) => Err(e),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(TileError::OutOfRange(e.to_string())),
        }
    }

    fn read(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TileError> {
        let mut loaded: BTreeMap<(u8, u64), Vec<u8>> = BTreeMap::new();
        let mut out = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let tile = Tile::from_index(HEIGHT, index);
            let key = (tile.level(), tile.level_index());
            if let std::collections::btree_map::Entry::Vacant(slot) = loaded.entry(key) {
                let data = self
                    .tiles
                    .tile(key.0, key.1)
                    .map_err(TileError::Source)?
                    .unwrap_or_default();
                if !data.len().is_multiple_of(HASH_BYTES) {
                    return Err(TileError::Malformed {
                        level: key.0,
                        index: key.1,
                        len: data.len(),
                    });
                }
                slot.insert(data);
            }
            let data = loaded.get(&key).map(Vec::as_slice).unwrap_or_default();
            let missing = TileError::Missing {
                level: key.0,
                index: key.1,
                width: tile.width(),
            };
            let need = tile.width() as usize * HASH_BYTES;
            let prefix = data.get(..need).ok_or_else(|| missing.clone())?;
            out.push(tile.hash_at_index(prefix, index).map_err(|_| missing)?);
        }
        Ok(out)
    }
}

impl HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.read(indexes).map_err(|e| {
            *self.error.borrow_mut() = Some(e);
            tlog_tiles::Error::InvalidTile
        })
    }
}
