//! The store suite (`tollgate_store::testkit`: tampering with the stored ledger
//! directly, a model-based test against an in-memory model, proofs, concurrency,
//! records) against the SQLite backend. The same suite runs against PostgreSQL in
//! `crates/tollgate-store-pg/tests/suite.rs`.

use rusqlite::params;
use tollgate_ledger::NoteSigner;
use tollgate_store::testkit::{Backend, Column};
use tollgate_store::{SqliteConfig, SqliteStore};

/// A temporary directory per test case.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn row_id(c: &rusqlite::Connection, tenant: &str, seq: u64) -> i64 {
        c.query_row(
            "SELECT id FROM ledger WHERE tenant = ?1 AND seq = ?2",
            params![tenant, seq as i64],
            |r| r.get(0),
        )
        .unwrap()
    }
}

impl Backend for Sqlite {
    type Store = SqliteStore;

    fn create() -> Self {
        Sqlite(tempfile::tempdir().unwrap())
    }

    fn open(&self, signer: Option<NoteSigner>) -> SqliteStore {
        let mut cfg = SqliteConfig::in_dir(self.0.path());
        cfg.signer = signer;
        SqliteStore::open(cfg).unwrap()
    }

    fn open_auto_checkpoint(&self, signer: NoteSigner, every: std::time::Duration) -> SqliteStore {
        let mut cfg = SqliteConfig::in_dir(self.0.path());
        cfg.signer = Some(signer);
        cfg.auto_checkpoint = Some(every);
        SqliteStore::open(cfg).unwrap()
    }

    fn flip(
        &self,
        store: &SqliteStore,
        tenant: &str,
        seq: u64,
        column: Column,
        at: usize,
        mask: i64,
    ) {
        let c = store.raw_connection().unwrap();
        let id = Self::row_id(&c, tenant, seq);
        if column == Column::Seq {
            c.execute(
                "UPDATE ledger SET seq = (seq | ?2) - (seq & ?2) WHERE id = ?1",
                params![id, mask],
            )
            .unwrap();
            return;
        }
        let col = column.name();
        let mut bytes: Vec<u8> = c
            .query_row(
                &format!("SELECT CAST({col} AS BLOB) FROM ledger WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .unwrap();
        let len = bytes.len();
        bytes[at % len] ^= mask as u8;
        if column.is_text() {
            let text = String::from_utf8(bytes).unwrap();
            c.execute(
                &format!("UPDATE ledger SET {col} = ?2 WHERE id = ?1"),
                params![id, text],
            )
            .unwrap();
        } else {
            c.execute(
                &format!("UPDATE ledger SET {col} = ?2 WHERE id = ?1"),
                params![id, bytes],
            )
            .unwrap();
        }
    }

    fn delete(&self, store: &SqliteStore, tenant: &str, seq: u64) {
        let c = store.raw_connection().unwrap();
        let id = Self::row_id(&c, tenant, seq);
        c.execute("DELETE FROM ledger WHERE id = ?1", [id]).unwrap();
    }

    fn swap(&self, store: &SqliteStore, tenant: &str, a: u64, b: u64) {
        let c = store.raw_connection().unwrap();
        let (ia, ib) = (Self::row_id(&c, tenant, a), Self::row_id(&c, tenant, b));
        c.execute_batch("BEGIN").unwrap();
        c.execute(
            "CREATE TEMP TABLE t AS SELECT id, kind, time, canonical, entry_hash FROM ledger WHERE id IN (?1, ?2)",
            params![ia, ib],
        )
        .unwrap();
        c.execute(
            "UPDATE ledger SET (kind, time, canonical, entry_hash) =
               (SELECT kind, time, canonical, entry_hash FROM t WHERE t.id = CASE ledger.id WHEN ?1 THEN ?2 ELSE ?1 END)
             WHERE id IN (?1, ?2)",
            params![ia, ib],
        )
        .unwrap();
        c.execute_batch("DROP TABLE t; COMMIT").unwrap();
    }

    fn cut_tail(&self, store: &SqliteStore, tenant: &str, from: u64) {
        let c = store.raw_connection().unwrap();
        c.execute(
            "DELETE FROM ledger WHERE tenant = ?1 AND seq >= ?2",
            params![tenant, from as i64],
        )
        .unwrap();
    }

    fn flip_checkpoint(
        &self,
        store: &SqliteStore,
        tenant: &str,
        index: usize,
        at: usize,
        mask: u8,
    ) -> u64 {
        let c = store.raw_connection().unwrap();
        let (id, size, note): (i64, i64, String) = c
            .query_row(
                "SELECT id, size, note FROM checkpoints WHERE tenant = ?1 ORDER BY size LIMIT 1 OFFSET ?2",
                params![tenant, index as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let mut bytes = note.into_bytes();
        let len = bytes.len();
        bytes[at % len] ^= mask;
        c.execute(
            "UPDATE checkpoints SET note = CAST(?2 AS TEXT) WHERE id = ?1",
            params![id, bytes],
        )
        .unwrap();
        size as u64
    }

    fn insert_checkpoint(&self, store: &SqliteStore, tenant: &str, size: u64, note: &str) {
        let c = store.raw_connection().unwrap();
        c.execute(
            "INSERT INTO checkpoints (tenant, size, issued, note) VALUES (?1, ?2, 'x', ?3)",
            params![tenant, size as i64, note],
        )
        .unwrap();
    }
}

tollgate_store::store_suite!(Sqlite, 96);
