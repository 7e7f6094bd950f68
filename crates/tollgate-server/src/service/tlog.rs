//! The tenant's log as C2SP `tlog-tiles` for mirrors and auditors: the latest signed
//! checkpoint, hash tiles and entry bundles, all within the latest checkpoint's tree
//! (the tiles are grown in each checkpoint's transaction, so they always cover it).

use tollgate_ledger::tiles::{HASH_BYTES, TileId, TilePath, WIDTH, width_at};

use crate::service::{Caller, DecisionService, Error};

/// How the caller may read a tenant's log; decides how responses may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlogAccess {
    /// The tenant opted in (`[tlog] public_tenants`): anyone, shared caches too.
    Public,
    /// A key of the tenant with the `read` or `admin` scope: private caches only.
    Private,
}

/// A tile or entry bundle, with whether it is full (and so never changes).
#[derive(Clone, Debug)]
pub struct TlogTile {
    /// The bytes to serve.
    pub data: Vec<u8>,
    /// A full tile (256 hashes or entries): immutable.
    pub full: bool,
}

impl DecisionService {
    /// Who may read `tenant`'s log: the tenant's `read`/`admin` keys, or anyone when the
    /// tenant is public. Another tenant's key is answered as if the log did not exist.
    pub fn tlog_access(&self, caller: Option<&Caller>, tenant: &str) -> Result<TlogAccess, Error> {
        let public = self
            .config()
            .tlog
            .public_tenants
            .iter()
            .any(|t| t == tenant);
        match caller {
            Some(c) if c.tenant() == tenant => match c.require_view("admin") {
                Ok(()) => Ok(TlogAccess::Private),
                Err(_) if public => Ok(TlogAccess::Public),
                Err(e) => Err(e),
            },
            _ if public => Ok(TlogAccess::Public),
            Some(_) => Err(Error::NotFound),
            None => Err(Error::Unauthorized),
        }
    }

    /// The latest signed checkpoint of the tenant's log (the note text); one is issued
    /// now when the ledger has entries but no checkpoint yet. 404 for an empty ledger.
    pub async fn tlog_checkpoint(&self, tenant: &str) -> Result<String, Error> {
        let cp = match self.store().latest_checkpoint(tenant)? {
            Some(c) => c,
            None if self.ledger_size(tenant)? > 0 => self.checkpoint_now(tenant).await?,
            None => return Err(Error::NotFound),
        };
        cp.to_text().map_err(Error::internal)
    }

    /// A hash tile or entry bundle by its C2SP path (`tile/…`): 400 for a path that is
    /// not one, 404 for a tile beyond the latest checkpoint's tree.
    pub fn tlog_tile(&self, tenant: &str, path: &str) -> Result<TlogTile, Error> {
        let parsed = TileId::parse(path).map_err(|e| Error::BadRequest(e.to_string()))?;
        let size = self.store().tiled_size(tenant)?;
        let (id, entries) = match parsed {
            TilePath::Hashes(id) => (id, false),
            TilePath::Entries(id) => (id, true),
        };
        let available = width_at(id.level, id.index, size);
        if available < id.width {
            return Err(Error::NotFound);
        }
        let full = id.is_full();
        if entries {
            let from = id.index * WIDTH;
            let to = from + u64::from(id.width);
            let rows = self.store().range(tenant, from, to)?;
            if rows.len() as u64 != to - from {
                return Err(Error::internal(format!(
                    "entries {from}..{to} of `{tenant}` are not all stored"
                )));
            }
            let mut data = Vec::with_capacity(rows.len() * (2 + HASH_BYTES));
            for e in rows {
                data.extend_from_slice(&(HASH_BYTES as u16).to_be_bytes());
                data.extend_from_slice(&e.entry_hash.0);
            }
            return Ok(TlogTile { data, full });
        }
        let mut data = self
            .store()
            .tile(tenant, id.level, id.index)?
            .ok_or_else(|| {
                Error::internal(format!(
                    "tile {}/{} of `{tenant}` is missing below the tiled size {size}",
                    id.level, id.index
                ))
            })?;
        let need = id.width as usize * HASH_BYTES;
        if data.len() < need {
            return Err(Error::internal(format!(
                "tile {}/{} of `{tenant}` holds {} bytes, {need} needed",
                id.level,
                id.index,
                data.len()
            )));
        }
        data.truncate(need);
        Ok(TlogTile { data, full })
    }
}
