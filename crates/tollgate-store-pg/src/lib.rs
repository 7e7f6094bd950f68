#![doc = include_str!("../README.md")]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod committer;
mod history;
mod ledger;
mod notify;
mod records;
mod schema;
mod sequencer;
mod tiles;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tollgate_ledger::NoteSigner;
use tollgate_store::StoreError;

pub use sequencer::SequencerStatus;

/// How to open a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// A libpq connection string or URL (`postgres://user@host:5432/db`).
    pub url: String,
    /// Log name; a tenant's checkpoint origin is `<log_name>/<tenant>`.
    pub log_name: String,
    /// This node's checkpoint signing key (every node's public key is recorded in the
    /// store, so checkpoints from any node verify).
    pub signer: Option<NoteSigner>,
    /// Whether this node takes part in the sequencer election.
    pub sequencer: bool,
    /// While this node is the sequencer: sign a checkpoint of every tenant that got
    /// entries, at most this often.
    pub auto_checkpoint: Option<Duration>,
    /// Connections in the pool (reads, small writes, commits of pending rows).
    pub pool_size: usize,
    /// Most pending rows one sequencer transaction integrates.
    pub sequencer_batch: usize,
    /// How often a node that is not the sequencer tries to become it.
    pub election_interval: Duration,
}

impl PgConfig {
    /// Defaults for `url`: log `tollgate`, no signer, sequencer candidate, pool of 16.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            log_name: "tollgate".into(),
            signer: None,
            sequencer: true,
            auto_checkpoint: None,
            pool_size: 16,
            sequencer_batch: 4096,
            election_interval: Duration::from_millis(200),
        }
    }
}

/// The PostgreSQL store: every store trait, shared by any number of nodes.
///
/// The traits are synchronous and are called from async handlers, so the store owns a
/// small tokio runtime of its own: each method hands its future to that runtime and
/// waits on a std channel; it never `block_on`s inside the caller's runtime.
#[derive(Debug)]
pub struct PgStore {
    // INVARIANT: `Some` until drop.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    log_name: String,
    signer: Option<Arc<NoteSigner>>,
    // INVARIANT: `Some` until drop; dropping it stops the committer after it drains.
    commits: Option<tokio::sync::mpsc::UnboundedSender<committer::Submit>>,
    stop: Arc<AtomicBool>,
    sequencer: Arc<sequencer::SequencerShared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub(crate) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl PgStore {
    /// Connects, runs migrations (under an advisory lock, so nodes starting together
    /// migrate once), and starts the committer and (if configured) the sequencer.
    pub fn open(config: PgConfig) -> Result<PgStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tollgate-pg")
            .enable_all()
            .build()?;
        let pg: tokio_postgres::Config = config.url.parse().map_err(db)?;
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(db)?;
        let migrate_pool = pool.clone();
        run_on(runtime.handle(), async move {
            schema::migrate(&migrate_pool).await
        })?;
        let signer = config.signer.map(Arc::new);
        let stop = Arc::new(AtomicBool::new(false));
        let sequencer = Arc::new(sequencer::SequencerShared::default());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = vec![runtime.spawn(committer::run_committer(pool.clone(), rx))];
        if config.sequencer {
            tasks.push(
                runtime.spawn(sequencer::run_sequencer(sequencer::Sequencer {
                    pg,
                    log_name: config.log_name.clone(),
                    signer: signer.clone(),
                    auto_checkpoint: config.auto_checkpoint,
                    batch: config.sequencer_batch.max(1),
                    election_interval: config.election_interval,
                    stop: stop.clone(),
                    shared: sequencer.clone(),
                })),
            );
        }
        Ok(PgStore {
            runtime: Some(runtime),
            pool,
            log_name: config.log_name,
            signer,
            commits: Some(tx),
            stop,
            sequencer,
            tasks,
        })
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.runtime {
            Some(rt) => run_on(rt.handle(), fut),
            None => Err(StoreError::Closed),
        }
    }

    /// The store runtime's handle.
    fn handle(&self) -> Result<tokio::runtime::Handle, StoreError> {
        match &self.runtime {
            Some(rt) => Ok(rt.handle().clone()),
            None => Err(StoreError::Closed),
        }
    }

    /// A pool handle (for tests and tools that inspect or tamper with the database).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs raw SQL (for tests and tools that must tamper with or inspect the
    /// database directly), on the store's runtime.
    pub fn raw_execute(
        &self,
        sql: &str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        let sql = sql.to_owned();
        self.run(async move {
            let c = pool.get().await.map_err(db)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            c.execute(sql.as_str(), &refs).await.map_err(db)
        })
    }

    /// Whether this node is the sequencer right now, and how many batches it ran.
    pub fn sequencer_status(&self) -> SequencerStatus {
        self.sequencer.status()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The committer drains what was submitted, then ends.
        drop(self.commits.take());
        self.stop.store(true, Ordering::SeqCst);
        if let Some(rt) = self.runtime.take() {
            // Give the committer and the sequencer's current batch time to finish.
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let tasks = std::mem::take(&mut self.tasks);
            rt.spawn(async move {
                for t in tasks {
                    let _ = t.await;
                }
                let _ = done_tx.send(());
            });
            let _ = done_rx.recv_timeout(Duration::from_secs(5));
            // Not `shutdown_timeout`: the store may be dropped inside the caller's
            // async context, where blocking shutdown panics. Its tasks are done.
            rt.shutdown_background();
        }
    }
}

fn run_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| StoreError::Closed)?
}
