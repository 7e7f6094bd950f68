//! Tiles against the C2SP `tlog-tiles` text (paths, the tiles of a tree of a given
//! size) and against an independent RFC 6962 implementation (`ct-merkle`): a tile
//! hash at level L is the Merkle Tree Hash of its 256^L leaves, and proofs read from
//! tiles equal the proofs computed from all leaves.

use std::collections::HashMap;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tollgate_ledger::Hash;
use tollgate_ledger::merkle;
use tollgate_ledger::tiles::{self, TileId, TilePath, TileSource};

fn entry_hash(i: u64) -> Hash {
    Hash(Sha256::digest(format!("entry {i}").as_bytes()).into())
}

/// Tiles kept in memory the way a store keeps them: one row per (level, index).
#[derive(Default)]
struct MemTiles {
    rows: HashMap<(u8, u64), Vec<u8>>,
    reads: std::cell::Cell<usize>,
}

impl TileSource for MemTiles {
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.rows.get(&(level, index)).cloned())
    }
}

impl MemTiles {
    /// Grows the tiles from `old` to `new` leaves as the writer does.
    fn grow(&mut self, leaves: &[Hash], old: u64, new: u64) {
        for id in tiles::new_tiles(old, new) {
            let prefix = self
                .rows
                .get(&(id.level, id.index))
                .cloned()
                .unwrap_or_default();
            let rows = &self.rows;
            let data = tiles::extend_tile::<String>(
                id,
                prefix,
                &mut |from, to| Ok(leaves[from as usize..to as usize].to_vec()),
                &mut |level, index| Ok(rows.get(&(level, index)).cloned().unwrap_or_default()),
            )
            .unwrap_or_else(|_| panic!("extend {id:?}"));
            self.rows.insert((id.level, id.index), data);
        }
    }
}

#[test]
fn paths_follow_the_spec() {
    // "index 1234067 will be encoded as x001/x234/067"
    let t = TileId {
        level: 0,
        index: 1_234_067,
        width: 256,
    };
    assert_eq!(t.path(), "tile/0/x001/x234/067");
    assert_eq!(t.entries_path(), "tile/entries/x001/x234/067");
    let p = TileId {
        level: 1,
        index: 1_234_067,
        width: 8,
    };
    assert_eq!(p.path(), "tile/1/x001/x234/067.p/8");
    assert_eq!(p.entries_path(), "tile/entries/x001/x234/067.p/8");
    assert_eq!(TileId::full(0, 0).path(), "tile/0/000");
    assert_eq!(TileId::full(2, 1000).path(), "tile/2/x001/000");

    for path in [
        "tile/0/000",
        "tile/0/x001/x234/067",
        "tile/1/x001/x234/067.p/8",
        "tile/63/999.p/255",
    ] {
        match TileId::parse(path) {
            Ok(TilePath::Hashes(id)) => assert_eq!(id.path(), path),
            other => panic!("{path}: {other:?}"),
        }
    }
    match TileId::parse("tile/entries/x001/x234/067.p/8") {
        Ok(TilePath::Entries(id)) => assert_eq!((id.index, id.width), (1_234_067, 8)),
        other => panic!("entries: {other:?}"),
    }
    // Not canonical or not allowed: no leading zeroes in L, three digits per element,
    // `x` on all but the last, W in 1..=255.
    for bad in [
        "tile/0/1",
        "tile/00/000",
        "tile/0/0000",
        "tile/0/001/234",
        "tile/0/x001/x234",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/08",
        "tile/64/000",
        "tile/0/-01",
        "tile/data/000",
        "tile/8/0/000",
        "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        "checkpoint",
        "",
    ] {
        assert!(TileId::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn tiles_of_a_tree_of_70000_are_the_ones_the_spec_lists() {
    // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
    // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of
    // width 17, and one partial level 2 tile of width 1."
    let all = tiles::new_tiles(0, 70_000);
    let full0 = all.iter().filter(|t| t.level == 0 && t.is_full()).count();
    let partial: Vec<(u8, u32)> = all
        .iter()
        .filter(|t| !t.is_full())
        .map(|t| (t.level, t.width))
        .collect();
    let full1 = all.iter().filter(|t| t.level == 1 && t.is_full()).count();
    assert_eq!(full0, 273);
    assert_eq!(full1, 1);
    assert_eq!(partial, vec![(0, 112), (1, 17), (2, 1)]);
    assert_eq!(all.len(), 273 + 1 + 3);
    // "a tree of size 256 will be represented by a full level 0 tile and a partial
    // level 1 tile of width 1."
    assert_eq!(
        tiles::new_tiles(0, 256),
        vec![
            TileId::full(0, 0),
            TileId {
                level: 1,
                index: 0,
                width: 1
            }
        ]
    );
    assert!(tiles::new_tiles(10, 10).is_empty());
}

#[test]
fn tile_hashes_are_merkle_tree_hashes_of_their_range() {
    // 256 * 256 + 300 leaves: a full level 1 tile's hash is the MTH of 65,536 leaves.
    let n = 256 * 256 + 300;
    let leaves: Vec<Hash> = (0..n).map(entry_hash).collect();
    let mut mem = MemTiles::default();
    mem.grow(&leaves, 0, n);
    let leaf_hashes = merkle::leaf_hashes(&leaves);
    // Level 0: leaf hashes. Level 1 entry i: MTH(D[i*256 : (i+1)*256]).
    let t0 = &mem.rows[&(0, 3)];
    assert_eq!(&t0[..32], &merkle::leaf_hash(&leaves[768].0).0);
    let t1 = &mem.rows[&(1, 0)];
    assert_eq!(t1.len(), 256 * 32);
    for i in [0usize, 1, 77, 255] {
        let mth = merkle::root_of_leaf_hashes(&leaf_hashes[i * 256..(i + 1) * 256]);
        assert_eq!(&t1[i * 32..(i + 1) * 32], &mth.0, "level 1 entry {i}");
    }
    // Level 2 entry 0: MTH of the first 65,536 leaves, checked with ct-merkle.
    let mut ct = MemoryBackedTree::<Sha256, [u8; 32]>::new();
    for l in &leaves[..65_536] {
        ct.push(l.0);
    }
    let t2 = &mem.rows[&(2, 0)];
    assert_eq!(t2.len(), 32, "partial level 2 tile of width 1");
    assert_eq!(t2.as_slice(), ct.root().as_bytes().as_slice());
}

#[test]
fn growing_in_steps_gives_the_same_tiles_as_at_once() {
    let n = 3 * 256 * 256 / 2 + 17;
    let leaves: Vec<Hash> = (0..n).map(entry_hash).collect();
    let mut once = MemTiles::default();
    once.grow(&leaves, 0, n);
    let mut steps = MemTiles::default();
    let mut size = 0;
    for step in [1u64, 255, 1, 1000, 65_000, 300, 7, 40_000, 1] {
        let next = (size + step).min(n);
        steps.grow(&leaves, size, next);
        size = next;
    }
    steps.grow(&leaves, size, n);
    assert_eq!(once.rows, steps.rows);
}

#[test]
fn roots_and_proofs_from_tiles_read_o_log_n_tiles() {
    let n = 256 * 256 * 2 + 5;
    let leaves: Vec<Hash> = (0..n).map(entry_hash).collect();
    let leaf_hashes = merkle::leaf_hashes(&leaves);
    let mut mem = MemTiles::default();
    mem.grow(&leaves, 0, n);
    mem.reads.set(0);
    let proof = tiles::inclusion_proof(&mem, 12_345, n).unwrap_or_else(|e| panic!("{e}"));
    // Three levels of tiles: a proof touches a handful of tiles, not n entries.
    assert!(mem.reads.get() <= 8, "{} tile reads", mem.reads.get());
    assert_eq!(
        proof,
        merkle::inclusion_proof(&leaf_hashes, 12_345).unwrap()
    );
    assert_eq!(
        tiles::root(&mem, n).unwrap_or_else(|e| panic!("{e}")),
        merkle::root_of_leaf_hashes(&leaf_hashes)
    );
}

#[test]
fn a_missing_or_short_tile_is_an_error_not_a_wrong_proof() {
    let n = 1000;
    let leaves: Vec<Hash> = (0..n).map(entry_hash).collect();
    let mut mem = MemTiles::default();
    mem.grow(&leaves, 0, 600);
    // Tiles cover 600 leaves; a proof in the tree of 1000 needs more.
    assert!(matches!(
        tiles::inclusion_proof(&mem, 10, 1000),
        Err(tiles::TileError::Missing { .. })
    ));
    mem.rows.remove(&(0, 1));
    assert!(tiles::inclusion_proof(&mem, 300, 600).is_err());
    assert!(matches!(
        tiles::inclusion_proof(&mem, 600, 600),
        Err(tiles::TileError::OutOfRange(_))
    ));
    assert!(matches!(
        tiles::consistency_proof(&mem, 0, 10),
        Err(tiles::TileError::OutOfRange(_))
    ));
}

proptest! {
    /// A path comes from an HTTP request: parsing never panics, and whatever it
    /// accepts prints back to the same path.
    #[test]
    fn parsing_any_path_is_total(path in "tile/(entries|[0-9x.p/]{0,6})/[0-9x./p]{0,30}") {
        match TileId::parse(&path) {
            Ok(TilePath::Hashes(id)) => prop_assert_eq!(id.path(), path),
            Ok(TilePath::Entries(id)) => prop_assert_eq!(id.entries_path(), path),
            Err(_) => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any tree built in any steps: every inclusion and consistency proof and root
    /// read from the tiles equals the one computed from all leaves.
    #[test]
    fn proofs_from_tiles_equal_proofs_from_leaves(
        steps in proptest::collection::vec(1u64..700, 1..6),
        picks in proptest::collection::vec(any::<u64>(), 4),
    ) {
        let n: u64 = steps.iter().sum();
        let leaves: Vec<Hash> = (0..n).map(entry_hash).collect();
        let leaf_hashes = merkle::leaf_hashes(&leaves);
        let mut mem = MemTiles::default();
        let mut size = 0;
        for s in &steps {
            mem.grow(&leaves, size, size + s);
            size += s;
        }
        let t = 1 + picks[0] % n;
        let i = picks[1] % t;
        let old = 1 + picks[2] % t;
        let th = &leaf_hashes[..t as usize];
        prop_assert_eq!(tiles::root(&mem, t).unwrap(), merkle::root_of_leaf_hashes(th));
        prop_assert_eq!(
            tiles::inclusion_proof(&mem, i, t).unwrap(),
            merkle::inclusion_proof(th, i).unwrap()
        );
        prop_assert_eq!(
            tiles::consistency_proof(&mem, old, t).unwrap(),
            merkle::consistency_proof(th, old).unwrap()
        );
    }
}

#[test]
fn widths_of_tiles_in_a_tree_of_a_given_size() {
    use tiles::width_at;
    assert_eq!(width_at(0, 0, 0), 0);
    assert_eq!(width_at(0, 0, 1), 1);
    assert_eq!(width_at(0, 0, 256), 256);
    assert_eq!(width_at(0, 1, 256), 0);
    assert_eq!(width_at(0, 1, 300), 44);
    assert_eq!(width_at(1, 0, 300), 1);
    assert_eq!(width_at(1, 0, 255), 0);
    assert_eq!(width_at(2, 0, 65_536), 1);
    assert_eq!(width_at(7, 0, u64::MAX), 255);
    assert_eq!(width_at(8, 0, u64::MAX), 0);
    assert_eq!(width_at(63, 0, u64::MAX), 0);
    // Agrees with the tiles the spec's arithmetic lists for a tree of 70,000 leaves.
    for t in tiles::new_tiles(0, 70_000) {
        assert_eq!(width_at(t.level, t.index, 70_000), t.width, "{t:?}");
    }
}
