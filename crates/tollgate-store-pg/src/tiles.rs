//! The ledger's Merkle tree as C2SP tlog-tiles in PostgreSQL: grown with each
//! checkpoint in the checkpoint's transaction (`sequencer::sign_checkpoint`), read for
//! proofs and the `/tlog` API.
//!
//! INVARIANT: tile growth of a tenant is serialised by a row lock on its
//! `ledger_tile_heads` row (not on `ledger_heads`, so a checkpoint never holds up the
//! sequencer), and covers exactly the size of the checkpoint signed in the same
//! transaction.

use std::collections::HashMap;

use tollgate_ledger::Hash;
use tollgate_ledger::tiles::{self, TileErrorOr};
use tollgate_store::StoreError;

use crate::db;
use crate::records::{to_i64, to_u64};

/// Grows the tenant's tiles to cover `size` leaves (from what they cover now), in `tx`.
pub(crate) async fn grow(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    size: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO ledger_tile_heads (tenant, size) VALUES ($1, 0) ON CONFLICT (tenant) DO NOTHING",
        &[&tenant],
    )
    .await
    .map_err(db)?;
    let row = tx
        .query_one(
            "SELECT size FROM ledger_tile_heads WHERE tenant = $1 FOR UPDATE",
            &[&tenant],
        )
        .await
        .map_err(db)?;
    let old = to_u64(row.try_get(0).map_err(db)?)?;
    if size <= old {
        return Ok(());
    }
    for id in tiles::new_tiles(old, size) {
        let prefix = read_tile_in(tx, tenant, id.level, id.index)
            .await?
            .unwrap_or_default();
        let have = (prefix.len() / tiles::HASH_BYTES) as u64;
        let first = id.index * tiles::WIDTH;
        let want = u64::from(id.width);
        // What `extend_tile` will ask for, fetched first (its callbacks are sync).
        let mut leaves: Vec<Hash> = Vec::new();
        let mut children: HashMap<(u8, u64), Vec<u8>> = HashMap::new();
        if have < want {
            if id.level == 0 {
                let rows = tx
                    .query(
                        "SELECT entry_hash FROM ledger WHERE tenant = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                        &[&tenant, &to_i64(first + have)?, &to_i64(first + want)?],
                    )
                    .await
                    .map_err(db)?;
                for r in rows {
                    let bytes: Vec<u8> = r.try_get(0).map_err(db)?;
                    leaves.push(
                        Hash::from_slice(&bytes)
                            .ok_or_else(|| StoreError::Corrupt("entry hash length".into()))?,
                    );
                }
            } else {
                let rows = tx
                    .query(
                        "SELECT idx, data FROM ledger_tiles WHERE tenant = $1 AND level = $2 AND idx >= $3 AND idx < $4",
                        &[
                            &tenant,
                            &i16::from(id.level - 1),
                            &to_i64(first + have)?,
                            &to_i64(first + want)?,
                        ],
                    )
                    .await
                    .map_err(db)?;
                for r in rows {
                    let idx = to_u64(r.try_get(0).map_err(db)?)?;
                    children.insert((id.level - 1, idx), r.try_get(1).map_err(db)?);
                }
            }
        }
        let data = tiles::extend_tile::<StoreError>(
            id,
            prefix,
            &mut |_, _| Ok(std::mem::take(&mut leaves)),
            &mut |level, index| Ok(children.remove(&(level, index)).unwrap_or_default()),
        )
        .map_err(|e| match e {
            TileErrorOr::Tile(t) => StoreError::Corrupt(format!("tiles of `{tenant}`: {t}")),
            TileErrorOr::Source(s) => s,
        })?;
        tx.execute(
            "INSERT INTO ledger_tiles (tenant, level, idx, data) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, level, idx) DO UPDATE SET data = excluded.data",
            &[&tenant, &i16::from(id.level), &to_i64(id.index)?, &data],
        )
        .await
        .map_err(db)?;
    }
    tx.execute(
        "UPDATE ledger_tile_heads SET size = $2 WHERE tenant = $1",
        &[&tenant, &to_i64(size)?],
    )
    .await
    .map_err(db)?;
    Ok(())
}

async fn read_tile_in(
    tx: &tokio_postgres::Transaction<'_>,
    tenant: &str,
    level: u8,
    index: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT data FROM ledger_tiles WHERE tenant = $1 AND level = $2 AND idx = $3",
            &[&tenant, &i16::from(level), &to_i64(index)?],
        )
        .await
        .map_err(db)?;
    row.map(|r| r.try_get(0).map_err(db)).transpose()
}
