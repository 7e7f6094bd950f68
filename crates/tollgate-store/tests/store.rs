//! The store suite (`tollgate_store::testkit`: tampering with the stored ledger
//! directly, a model-based test against an in-memory model, proofs, concurrency,
//! records) against the SQLite backend. The same suite runs against PostgreSQL in
//! `crates/tollgate-store-pg/tests/suite.rs`.

use rusqlite::params;
use tollgate_ledger::NoteSigner;
use tollgate_store::testkit::{Backend, Column, draft, keys, signer};
use tollgate_store::{
    LedgerStore as _, SqliteConfig, SqliteStore, StoreError, TenantRecord, TenantStore as _,
};

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

/// A ledger written before tiles existed (schema v3: no tiles, `tiled_size` 0) gets
/// all its tiles at its next checkpoint, and its proofs do not change.
#[test]
fn a_ledger_without_tiles_gets_them_at_its_next_checkpoint() {
    let backend = Sqlite::create();
    let s = backend.open(Some(signer()));
    for i in 0..600 {
        s.append(draft("a", i)).unwrap();
    }
    s.issue_checkpoint("a", "2026-11-21T12:00:00Z")
        .wait()
        .unwrap();
    let before = s.inclusion_proof("a", 3, 600).unwrap();
    drop(s);
    {
        let c = rusqlite::Connection::open(backend.0.path().join("tollgate.db")).unwrap();
        c.execute_batch("DELETE FROM ledger_tiles; UPDATE ledger_heads SET tiled_size = 0")
            .unwrap();
    }
    let s = backend.open(Some(signer()));
    assert_eq!(s.tiled_size("a").unwrap(), 0);
    assert_eq!(s.inclusion_proof("a", 3, 600).unwrap(), before, "by scan");
    s.append(draft("a", 600)).unwrap();
    s.issue_checkpoint("a", "2026-11-21T12:01:00Z")
        .wait()
        .unwrap();
    assert_eq!(s.tiled_size("a").unwrap(), 601);
    assert_eq!(
        s.inclusion_proof("a", 3, 600).unwrap(),
        before,
        "from tiles"
    );
}

/// A data directory has one writer: a second writable open fails with `InUse`, naming
/// the directory, until the first store is dropped; read-only opens work beside the
/// writer, see what it commits (no stale cache) and cannot write.
#[test]
fn a_data_dir_has_one_writer_and_any_number_of_readers() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut cfg = SqliteConfig::in_dir(dir.path());
        cfg.signer = Some(signer());
        cfg
    };
    let writer = SqliteStore::open(config()).unwrap();
    for i in 0..10 {
        writer.append(draft("a", i)).unwrap();
    }

    let err = SqliteStore::open(config()).unwrap_err();
    match &err {
        StoreError::InUse { dir: d, lock } => {
            assert_eq!(d, dir.path());
            assert_eq!(lock, &dir.path().join("tollgate.db.lock"));
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string())
            && msg.contains("in use by another Tollgate process"),
        "{msg}"
    );

    let reader = SqliteStore::open_read_only(config()).unwrap();
    assert_eq!(reader.head("a").unwrap().unwrap().size, 10);
    // What the writer commits later is seen, records included (no cached copy).
    let tenant = |name: &str| TenantRecord {
        id: "a".into(),
        name: name.into(),
        created_ms: 1,
        body: serde_json::json!({}),
    };
    writer.put_tenant(&tenant("first")).unwrap();
    assert_eq!(reader.tenant("a").unwrap().unwrap().name, "first");
    writer.put_tenant(&tenant("second")).unwrap();
    assert_eq!(reader.tenant("a").unwrap().unwrap().name, "second");
    writer.append(draft("a", 10)).unwrap();
    writer
        .issue_checkpoint("a", "2026-11-21T12:00:00Z")
        .wait()
        .unwrap();
    let verified = reader.verify("a", &keys()).unwrap().unwrap();
    assert_eq!((verified.entries, verified.checkpoints), (11, 1));
    // It cannot write: not the ledger, not a record.
    assert!(matches!(
        reader.append(draft("a", 11)),
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        reader.issue_checkpoint("a", "2026-11-21T12:00:01Z").wait(),
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        reader.put_tenant(&tenant("third")),
        Err(StoreError::Database(_))
    ));
    assert_eq!(writer.tenant("a").unwrap().unwrap().name, "second");

    // A second reader, and the writer going away, leave readers working.
    let reader2 = SqliteStore::open_read_only(config()).unwrap();
    drop(writer);
    assert_eq!(reader2.head("a").unwrap().unwrap().size, 11);

    // Once the writer is gone (readers still open), a new writer opens and continues.
    let writer = SqliteStore::open(config()).unwrap();
    writer.append(draft("a", 11)).unwrap();
    assert_eq!(reader.head("a").unwrap().unwrap().size, 12);
    assert!(writer.verify("a", &keys()).unwrap().is_ok());
}

/// A read-only open needs an existing database of this build's schema; it creates
/// nothing.
#[test]
fn a_read_only_open_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-here");
    assert!(SqliteStore::open_read_only(SqliteConfig::in_dir(&missing)).is_err());
    assert!(!missing.exists());

    // A database older than this build's schema is refused, not half read.
    let db = dir.path().join("tollgate.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);",
        )
        .unwrap();
    }
    let err = SqliteStore::open_read_only(SqliteConfig::in_dir(dir.path())).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("schema version 1")),
        "{err:?}"
    );
}

/// A decision entry with a decision id, for the index checks below.
fn decision(tenant: &str, i: u64) -> tollgate_ledger::EntryDraft {
    tollgate_ledger::EntryDraft {
        tenant: tenant.into(),
        time: "2026-11-21T12:00:00.000Z".into(),
        kind: tollgate_ledger::EntryKind::Decision,
        body: serde_json::json!({ "decision_id": format!("dec_{i}"), "verdict": "ALLOW" }),
    }
}

/// The indexer commits without an fsync; the segment holds the batches until the
/// database is synced. So a power cut may cost the database its latest commits, and
/// then opening the store indexes them again from the segment, checking each entry's
/// hash and chain: every acknowledged entry is back with its acknowledged hash,
/// checkpoints and decision ids included, and the chain continues.
#[test]
fn a_database_that_lost_its_latest_commits_is_completed_from_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut cfg = SqliteConfig::in_dir(dir.path());
        cfg.signer = Some(signer());
        cfg
    };
    let db = dir.path().join("tollgate.db");
    let snapshot = dir.path().join("snapshot.db");
    {
        let store = SqliteStore::open(config()).unwrap();
        for i in 0..20 {
            store.append(decision("a", i)).unwrap();
        }
    }
    // Closed cleanly: the database file alone holds the 20 entries.
    std::fs::copy(&db, &snapshot).unwrap();
    let count = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&snapshot), 20);
    let mut acked = Vec::new();
    {
        let store = SqliteStore::open(config()).unwrap();
        for i in 20..50 {
            acked.push(store.append(decision("a", i)).unwrap());
            if i % 3 == 0 {
                acked.push(store.append(draft("b", i)).unwrap());
            }
        }
        store
            .issue_checkpoint("a", "2026-11-21T12:00:01Z")
            .wait()
            .unwrap();
    }
    // The database loses everything after the snapshot; the segment keeps its frames.
    std::fs::copy(&snapshot, &db).unwrap();
    for ext in ["tollgate.db-wal", "tollgate.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(ext));
    }
    let store = SqliteStore::open(config()).unwrap();
    assert_eq!(store.recovered_entries(), acked.len() as u64);
    let verified = store.verify("a", &keys()).unwrap().unwrap();
    assert_eq!((verified.entries, verified.checkpoints), (50, 1));
    assert!(store.verify("b", &keys()).unwrap().is_ok());
    for a in &acked {
        let e = store.entry(&a.tenant, a.seq.unwrap()).unwrap().unwrap();
        assert_eq!(Some(e.entry_hash), a.entry_hash);
    }
    assert_eq!(store.decision_seq("a", "dec_42").unwrap(), Some(42));
    assert!(matches!(
        store.append(decision("a", 42)),
        Err(StoreError::DuplicateDecision(_))
    ));
    let next = store.append(decision("a", 50)).unwrap();
    assert_eq!(next.seq, Some(50));
    assert!(store.verify("a", &keys()).unwrap().is_ok());
    // Reopening again indexes nothing twice.
    drop(store);
    let store = SqliteStore::open(config()).unwrap();
    assert_eq!(store.recovered_entries(), 0);
    assert_eq!(store.head("a").unwrap().unwrap().size, 51);
}
