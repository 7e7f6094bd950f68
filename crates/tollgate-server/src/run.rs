//! Opening the data directory, first-start bootstrap, background work, serving and
//! graceful shutdown.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tollgate_ledger::NoteSigner;
use tollgate_store::{SigningKeyRecord, SqliteConfig, SqliteStore, Store, TenantRecord, keyfile};
use tollgate_store_pg::{PgConfig, PgStore};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreKind};
use crate::state::AppState;

/// The signing key file in the data directory.
pub const KEY_FILE: &str = "signing-key.pem";
/// The signed-note name of the server's key.
pub const KEY_NAME: &str = "tollgate";
/// The file (mode 0600) with the bootstrap admin key and test decide key.
pub const BOOTSTRAP_FILE: &str = "bootstrap-keys.json";

/// An opened server: state plus where the bootstrap keys went.
#[derive(Debug)]
pub struct App {
    /// The shared state.
    pub state: AppState,
    /// The bootstrap key file, when this start created it.
    pub bootstrap_file: Option<PathBuf>,
}

impl App {
    /// Opens (or initialises) the data directory with the system clock.
    pub fn open(config: Config) -> anyhow::Result<App> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// Opens (or initialises) the data directory with `clock`.
    pub fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating data directory `{}`", dir.display()))?;
        let key_file = config
            .signing_key_file
            .clone()
            .unwrap_or_else(|| dir.join(KEY_FILE));
        let (key, created) = keyfile::load_or_create(&key_file)
            .with_context(|| format!("loading the signing key `{}`", key_file.display()))?;
        let signer = NoteSigner::new(KEY_NAME, key.clone())?;
        let store: Arc<dyn Store> = match config.store {
            StoreKind::Sqlite => {
                let mut sqlite = SqliteConfig::in_dir(&dir);
                sqlite.signer = Some(signer);
                Arc::new(
                    SqliteStore::open(sqlite)
                        .with_context(|| format!("opening the store in `{}`", dir.display()))?,
                )
            }
            StoreKind::Postgres => {
                let Some(url) = config.database_url.clone() else {
                    anyhow::bail!(
                        "store = \"postgres\" needs database_url (or TOLLGATE_DATABASE_URL)"
                    );
                };
                let mut pg = PgConfig::new(url);
                pg.signer = Some(signer);
                // The elected sequencer signs a checkpoint of every tenant that got
                // entries, at most once per checkpoint interval.
                pg.auto_checkpoint =
                    Some(Duration::from_millis(config.checkpoint_interval_ms.max(50)));
                Arc::new(PgStore::open(pg).context("opening the PostgreSQL store")?)
            }
        };
        Self::on_store(config, store, key, created, clock)
    }

    /// Opens a node on `store` — a store other nodes may share (a test's second node
    /// on the first one's store, a cluster's PostgreSQL): records the signing key if
    /// the store does not know it, bootstraps the store if it is new, writing the
    /// bootstrap keys to `config.data_dir`.
    pub fn on_store(
        config: Config,
        store: Arc<dyn Store>,
        key: tollgate_ledger::SigningKey,
        created: bool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let dir = config.data_dir.clone();
        let verifier = NoteSigner::new(KEY_NAME, key.clone())?.verifier();
        // A throttle that cannot work stops the start, never a silent fallback.
        crate::service::check_throttle_config(&config).map_err(|e| anyhow::anyhow!(e))?;
        if config.shared_state() && config.throttle == crate::config::ThrottleKind::Memory {
            tracing::warn!(
                "the store is shared with other nodes but throttle = \"memory\": each node has its own buckets; use throttle = \"redis\""
            );
        }
        let now = clock.now_ms();
        let public = key.verifying_key().to_bytes();
        let known = store.signing_keys()?.iter().any(|k| k.public_key == public);
        // A new or replaced key file is recorded; earlier keys stay, so old
        // checkpoints, dossiers and verdicts stay verifiable after a rotation.
        if created || !known {
            store.put_signing_key(&SigningKeyRecord {
                name: KEY_NAME.into(),
                public_key: public,
                created_ms: now,
                retired_ms: None,
            })?;
        }
        let state = AppState::new(crate::service::DecisionService::new(
            config, store, key, verifier, clock,
        ));
        let bootstrap_file = bootstrap(&state, &dir)?;
        Ok(App {
            state,
            bootstrap_file,
        })
    }
}

/// On first start: tenant `default`, an admin key and a test decide key, written to
/// a 0600 file. Returns the file when it was written.
fn bootstrap(state: &AppState, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let store = state.store();
    if store
        .tenant(crate::service::admin::OPERATOR_TENANT)?
        .is_some()
    {
        return Ok(None);
    }
    let now = state.now_ms();
    store.put_tenant(&TenantRecord {
        id: crate::service::admin::OPERATOR_TENANT.into(),
        name: "Default tenant".into(),
        created_ms: now,
        body: json!({}),
    })?;
    let all = ["admin", "decide", "outcomes", "review"]
        .map(str::to_owned)
        .to_vec();
    let admin =
        crate::service::auth::generate("default", "live", all, "bootstrap admin", None, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let test = crate::service::auth::generate(
        "default",
        "test",
        vec!["decide".into(), "outcomes".into()],
        "bootstrap test decide key",
        None,
        now,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.put_api_key(&admin.record)?;
    store.put_api_key(&test.record)?;
    let path = dir.join(BOOTSTRAP_FILE);
    let text = serde_json::to_string_pretty(&json!({
        "tenant": "default",
        "admin_key": {"id": admin.record.id, "secret": admin.secret, "scopes": admin.record.scopes},
        "test_key": {"id": test.record.id, "secret": test.secret, "scopes": test.record.scopes},
        "note": "Shown once. Store these secrets elsewhere and delete this file.",
    }))?;
    write_private(&path, text.as_bytes())?;
    Ok(Some(path))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating `{}`", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Serves until SIGTERM: stops accepting, finishes in-flight requests, flushes
/// counters and checkpoints, returns.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let listen = config.listen;
    let app = App::open(config)?;
    let state = app.state.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(file) = &app.bootstrap_file {
        tracing::info!(
            file = %file.display(),
            "first start: tenant `default` created; the bootstrap admin key and test decide key are in this file (mode 0600)"
        );
    }
    let ticker = {
        let state = state.clone();
        let every = Duration::from_millis(state.config().checkpoint_interval_ms.max(50));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                state.service().tick().await;
            }
        })
    };
    // Notification and SIEM deliveries: off the decision path, from the ledger.
    let deliveries = if state.config().notify.enabled {
        Some(crate::notify::spawn(state.service_arc().clone())?)
    } else {
        None
    };
    tracing::info!(
        %addr,
        data_dir = %state.config().data_dir.display(),
        ready_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "tollgate ready"
    );
    // Connection info lets the key-less direct-runtime endpoint tell loopback callers.
    let config = state.config();
    let listener = crate::listener::BoundedListener::new(
        listener,
        config.max_connections,
        Duration::from_millis(config.idle_timeout_ms.max(1)),
    );
    crate::listener::serve(
        listener,
        crate::router(state.clone()),
        Duration::from_millis(config.header_read_timeout_ms.max(1)),
        shutdown_signal(),
    )
    .await;
    ticker.abort();
    if let Some(d) = deliveries {
        d.abort();
    }
    // In-flight requests are done: flush what the ticker would have.
    state.service().tick().await;
    tracing::info!("tollgate stopped");
    Ok(())
}
