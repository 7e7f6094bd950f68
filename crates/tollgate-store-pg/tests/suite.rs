//! The store suite of `tollgate_store::testkit` — the same test code as SQLite's
//! `tests/store.rs` — against PostgreSQL. Each test case creates its own database
//! (unique name) on the server of `TOLLGATE_TEST_POSTGRES_URL` and drops it after.
//! Without that variable the tests print that they are skipped, except under
//! `CI=true`, where they fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::NoTls;
use tollgate_ledger::NoteSigner;
use tollgate_store::testkit::{Backend, Column};
use tollgate_store_pg::{PgConfig, PgStore};

/// The test server's URL, or `None` (skip) outside CI.
fn base_url() -> Option<String> {
    match std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but TOLLGATE_TEST_POSTGRES_URL is not set: the PostgreSQL suite must run in CI"
            )
        }
        _ => {
            eprintln!("skipped: TOLLGATE_TEST_POSTGRES_URL is not set (PostgreSQL store suite)");
            None
        }
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = main.find("://").map_or(0, |i| i + 3);
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    format!("{base}/{db}{query}")
}

/// A database per test case.
struct Pg {
    rt: tokio::runtime::Runtime,
    admin_url: String,
    url: String,
    name: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Pg {
    fn sql(&self, url: &str, sql: &str) {
        let url = url.to_owned();
        let sql = sql.to_owned();
        self.rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            let handle = tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
            drop(client);
            let _ = handle.await;
        });
    }

    fn query<T: Send + 'static>(
        &self,
        sql: &str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
        f: fn(&tokio_postgres::Row) -> T,
    ) -> Vec<T> {
        let url = self.url.clone();
        let sql = sql.to_owned();
        self.rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            let handle = tokio::spawn(conn);
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let rows = client.query(&sql, &refs).await.unwrap();
            drop(client);
            let _ = handle.await;
            rows.iter().map(f).collect()
        })
    }

    fn execute(
        &self,
        sql: &str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> u64 {
        let url = self.url.clone();
        let sql = sql.to_owned();
        self.rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            let handle = tokio::spawn(conn);
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let n = client.execute(&sql, &refs).await.unwrap();
            drop(client);
            let _ = handle.await;
            n
        })
    }

    fn config(&self, signer: Option<NoteSigner>) -> PgConfig {
        let mut cfg = PgConfig::new(self.url.clone());
        cfg.signer = signer;
        cfg.pool_size = 4;
        cfg.election_interval = Duration::from_millis(20);
        cfg
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.sql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

impl Backend for Pg {
    type Store = PgStore;

    fn available() -> bool {
        base_url().is_some()
    }

    fn create() -> Self {
        let admin_url = base_url().unwrap();
        let name = format!(
            "tollgate_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pg = Pg {
            rt,
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        };
        pg.sql(&pg.admin_url, &format!("CREATE DATABASE {}", pg.name));
        pg
    }

    fn open(&self, signer: Option<NoteSigner>) -> PgStore {
        PgStore::open(self.config(signer)).unwrap()
    }

    fn open_auto_checkpoint(&self, signer: NoteSigner, every: Duration) -> PgStore {
        let mut cfg = self.config(Some(signer));
        cfg.auto_checkpoint = Some(every);
        PgStore::open(cfg).unwrap()
    }

    fn flip(&self, _: &PgStore, tenant: &str, seq: u64, column: Column, at: usize, mask: i64) {
        let col = column.name();
        let sql = match column {
            Column::Seq => "UPDATE ledger SET seq = seq # $3 WHERE tenant = $1 AND seq = $2".to_owned(),
            c if c.is_text() => format!(
                "UPDATE ledger SET {col} = convert_from(set_byte(convert_to({col}, 'UTF8'),
                   ($3::bigint % length(convert_to({col}, 'UTF8')))::int,
                   get_byte(convert_to({col}, 'UTF8'), ($3::bigint % length(convert_to({col}, 'UTF8')))::int) # $4::int), 'UTF8')
                 WHERE tenant = $1 AND seq = $2"
            ),
            _ => format!(
                "UPDATE ledger SET {col} = set_byte({col}, ($3::bigint % length({col}))::int,
                   get_byte({col}, ($3::bigint % length({col}))::int) # $4::int)
                 WHERE tenant = $1 AND seq = $2"
            ),
        };
        let n = if column == Column::Seq {
            self.execute(
                &sql,
                vec![
                    Box::new(tenant.to_owned()),
                    Box::new(seq as i64),
                    Box::new(mask),
                ],
            )
        } else {
            let at = (at % (i64::MAX as usize)) as i64;
            self.execute(
                &sql,
                vec![
                    Box::new(tenant.to_owned()),
                    Box::new(seq as i64),
                    Box::new(at),
                    Box::new(mask as i32),
                ],
            )
        };
        assert_eq!(n, 1);
    }

    fn delete(&self, _: &PgStore, tenant: &str, seq: u64) {
        let n = self.execute(
            "DELETE FROM ledger WHERE tenant = $1 AND seq = $2",
            vec![Box::new(tenant.to_owned()), Box::new(seq as i64)],
        );
        assert_eq!(n, 1);
    }

    fn swap(&self, _: &PgStore, tenant: &str, a: u64, b: u64) {
        // UPDATE … FROM reads the other row as it was before the statement: a swap.
        let n = self.execute(
            "UPDATE ledger l SET kind = o.kind, time = o.time, canonical = o.canonical, entry_hash = o.entry_hash
             FROM ledger o
             WHERE l.tenant = $1 AND o.tenant = $1
               AND ((l.seq = $2 AND o.seq = $3) OR (l.seq = $3 AND o.seq = $2))",
            vec![Box::new(tenant.to_owned()), Box::new(a as i64), Box::new(b as i64)],
        );
        assert_eq!(n, 2);
    }

    fn cut_tail(&self, _: &PgStore, tenant: &str, from: u64) {
        self.execute(
            "DELETE FROM ledger WHERE tenant = $1 AND seq >= $2",
            vec![Box::new(tenant.to_owned()), Box::new(from as i64)],
        );
    }

    fn flip_checkpoint(&self, _: &PgStore, tenant: &str, index: usize, at: usize, mask: u8) -> u64 {
        let rows = self.query(
            "SELECT id, size, note FROM checkpoints WHERE tenant = $1 ORDER BY size, id LIMIT 1 OFFSET $2",
            vec![Box::new(tenant.to_owned()), Box::new(index as i64)],
            |r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, String>(2)),
        );
        let (id, size, note) = rows.into_iter().next().unwrap();
        let mut bytes = note.into_bytes();
        let len = bytes.len();
        // Low bits only, bit 0 always: the note stays ASCII without NUL (PostgreSQL
        // text must be valid UTF-8), and the byte always changes.
        bytes[at % len] ^= (mask & 0x1f) | 0x01;
        let note = String::from_utf8(bytes).unwrap();
        self.execute(
            "UPDATE checkpoints SET note = $2 WHERE id = $1",
            vec![Box::new(id), Box::new(note)],
        );
        size as u64
    }

    fn insert_checkpoint(&self, _: &PgStore, tenant: &str, size: u64, note: &str) {
        self.execute(
            "INSERT INTO checkpoints (tenant, size, issued, note) VALUES ($1, $2, 'x', $3)",
            vec![
                Box::new(tenant.to_owned()),
                Box::new(size as i64),
                Box::new(note.to_owned()),
            ],
        );
    }
}

// Fewer cases than SQLite's 96: every case creates and drops a database.
tollgate_store::store_suite!(Pg, 24);

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://root@127.0.0.1:5432/test", "x"),
        "postgres://root@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://root@127.0.0.1/test?sslmode=disable", "x"),
        "postgres://root@127.0.0.1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// Two stores on one database (two nodes), 6 threads each, every thread reading an
/// actor's history under its guard and adding an event while fewer than 100 are
/// there: exactly 100 are added, never more. A whole-tenant guard and the actor's
/// guard exclude each other; a guard dropped without commit keeps nothing and
/// releases its locks.
#[test]
fn history_guards_spend_a_limit_exactly_across_nodes() {
    use std::sync::{Arc, Barrier};
    use tollgate_store::{HistoryRecord, HistoryScope, HistoryStore as _};
    if !Pg::available() {
        return;
    }
    let pg = Pg::create();
    let nodes = [Arc::new(pg.open(None)), Arc::new(pg.open(None))];
    let scope = HistoryScope {
        whole_tenant: false,
        actor: Some("bot".into()),
        source: Some("feed".into()),
    };
    let event = |at_ms| HistoryRecord {
        id: 0,
        tenant: "t".into(),
        at_ms,
        actor: Some("bot".into()),
        source: Some("feed".into()),
        values: [("action.amount".to_owned(), 1.0)].into_iter().collect(),
    };
    let barrier = Arc::new(Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let store = Arc::clone(&nodes[t % 2]);
            let (barrier, scope) = (Arc::clone(&barrier), scope.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut added = 0;
                for i in 0..30 {
                    let mut g = store.lock_history("t", &scope).unwrap();
                    let seen = g.history(0, Some("bot"), None).unwrap();
                    let sum: f64 = seen.iter().map(|e| e.values["action.amount"]).sum();
                    if sum + 1.0 <= 100.0 {
                        g.add_history(&event(1 + i)).unwrap();
                        added += 1;
                    }
                    g.commit().unwrap();
                }
                added
            })
        })
        .collect();
    let added: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(added, 100);
    assert_eq!(
        nodes[1].history("t", 0, Some("bot"), None).unwrap().len(),
        100
    );

    // Dropped without commit: nothing kept, and the locks are free again at once.
    let mut g = nodes[0].lock_history("t", &scope).unwrap();
    g.add_history(&event(99)).unwrap();
    drop(g);
    let started = std::time::Instant::now();
    let g = nodes[1].lock_history("t", &scope).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    g.commit().unwrap();
    assert_eq!(
        nodes[0].history("t", 0, Some("bot"), None).unwrap().len(),
        100
    );

    // A whole-tenant reader waits for the actor's open guard on another node.
    let held = nodes[0].lock_history("t", &scope).unwrap();
    let other = Arc::clone(&nodes[1]);
    let waiter = std::thread::spawn(move || {
        let whole = HistoryScope {
            whole_tenant: true,
            actor: None,
            source: None,
        };
        let g = other.lock_history("t", &whole).unwrap();
        let acquired = std::time::Instant::now();
        g.commit().unwrap();
        acquired
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let released = std::time::Instant::now();
    held.commit().unwrap();
    let acquired = waiter.join().unwrap();
    assert!(
        acquired >= released,
        "the whole-tenant guard was granted while the actor's guard was held"
    );
}
