//! The ledger's Merkle tree as C2SP tlog-tiles in SQLite: grown by the writer with each
//! checkpoint (in the checkpoint's transaction), read for proofs and the `/tlog` API.

use rusqlite::{Connection, OptionalExtension as _, params};
use tollgate_ledger::Hash;
use tollgate_ledger::tiles::{self, TileErrorOr};

use super::{to_i64, to_u64};
use crate::StoreError;

/// Grows the tenant's tiles from covering `old` leaves to covering `new`, reading the
/// new leaves and the narrower stored tiles inside `conn`'s transaction.
pub(super) fn grow(conn: &Connection, tenant: &str, old: u64, new: u64) -> Result<(), StoreError> {
    let mut put = conn.prepare_cached(
        "INSERT INTO ledger_tiles (tenant, level, idx, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, level, idx) DO UPDATE SET data = excluded.data",
    )?;
    for id in tiles::new_tiles(old, new) {
        let prefix = read_tile(conn, tenant, id.level, id.index)?.unwrap_or_default();
        let data = tiles::extend_tile(
            id,
            prefix,
            &mut |from, to| leaves(conn, tenant, from, to),
            &mut |level, index| Ok(read_tile(conn, tenant, level, index)?.unwrap_or_default()),
        )
        .map_err(|e| match e {
            TileErrorOr::Tile(t) => StoreError::Corrupt(format!("tiles of `{tenant}`: {t}")),
            TileErrorOr::Source(s) => s,
        })?;
        put.execute(params![
            tenant,
            i64::from(id.level),
            to_i64(id.index)?,
            data
        ])?;
    }
    Ok(())
}

/// The stored data of tile `(level, index)`, of whatever width it has grown to.
pub(super) fn read_tile(
    conn: &Connection,
    tenant: &str,
    level: u8,
    index: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT data FROM ledger_tiles WHERE tenant = ?1 AND level = ?2 AND idx = ?3",
    )?;
    Ok(st
        .query_row(params![tenant, i64::from(level), to_i64(index)?], |r| {
            r.get(0)
        })
        .optional()?)
}

/// How many leaves the tenant's stored tiles cover.
pub(super) fn tiled_size(conn: &Connection, tenant: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .query_row(
            "SELECT tiled_size FROM ledger_heads WHERE tenant = ?1",
            [tenant],
            |r| r.get(0),
        )
        .optional()?;
    to_u64(n.unwrap_or(0))
}

fn leaves(conn: &Connection, tenant: &str, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT entry_hash FROM ledger WHERE tenant = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
    )?;
    let mut rows = st.query(params![tenant, to_i64(from)?, to_i64(to)?])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let bytes: Vec<u8> = r.get(0)?;
        out.push(
            Hash::from_slice(&bytes)
                .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?,
        );
    }
    Ok(out)
}
