//! Configuration: one TOML file, every key overridable by a `TOLLGATE_*` environment
//! variable, everything with a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The server's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`TOLLGATE_LISTEN`).
    pub listen: SocketAddr,
    /// Data directory: SQLite database, signing key, bootstrap keys (`TOLLGATE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Base URL used in dossier links (`TOLLGATE_PUBLIC_URL`); defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest request body in bytes (`TOLLGATE_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted (`TOLLGATE_MAX_JSON_DEPTH`).
    pub max_json_depth: usize,
    /// Requests processed at once; past it, a request waits up to
    /// `admission_wait_ms` for a slot, then gets 503 with `Retry-After`
    /// (`TOLLGATE_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// How long a request that finds every processing slot taken waits for one, in ms,
    /// before it is answered 503; 0 refuses it at once; at most 10 s. At most
    /// `max_connections` requests wait; past that a request is refused at once
    /// (`TOLLGATE_ADMISSION_WAIT_MS`).
    pub admission_wait_ms: u64,
    /// Open connections at once; past it, a new connection gets one 503 with
    /// `Retry-After` and is closed, so memory stays bounded however many clients
    /// connect (`TOLLGATE_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Time a client has to send a request's headers, in ms, from when the connection
    /// opens or, on a kept-alive connection, from the end of the previous answer; then
    /// the connection is closed, so this is also how long an idle kept-alive
    /// connection stays open; at most a day (`TOLLGATE_HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout_ms: u64,
    /// An open connection on which nothing is read or written for this long, in ms, is
    /// closed; longer than the longest wait a request may ask for (60 s), at most a
    /// day (`TOLLGATE_IDLE_TIMEOUT_MS`).
    pub idle_timeout_ms: u64,
    /// Per-key request rate: burst (`TOLLGATE_KEY_RATE_BURST`).
    pub key_rate_burst: u32,
    /// Per-key request rate: sustained requests per second (`TOLLGATE_KEY_RATE_PER_SECOND`).
    pub key_rate_per_second: u32,
    /// Decisions per calendar month (UTC) for live keys, per tenant, unless the tenant
    /// sets its own (`TOLLGATE_MONTHLY_QUOTA`).
    pub monthly_quota: u64,
    /// Whether `/metrics` needs no key (`TOLLGATE_METRICS_PUBLIC`).
    pub metrics_public: bool,
    /// Interval between checkpoints while there is traffic, in ms (`TOLLGATE_CHECKPOINT_INTERVAL_MS`).
    pub checkpoint_interval_ms: u64,
    /// Longest time to wait for the ledger before answering 503, in ms (`TOLLGATE_LEDGER_TIMEOUT_MS`).
    pub ledger_timeout_ms: u64,
    /// Lifetime of idempotency records, in ms (`TOLLGATE_IDEMPOTENCY_TTL_MS`).
    pub idempotency_ttl_ms: i64,
    /// Log format: `json` or `text` (`TOLLGATE_LOG_FORMAT`).
    pub log_format: String,
    /// Who may call the DeAlgo direct-runtime endpoint `POST /csc/live-stimulus`, which
    /// carries no API key: `loopback` (callers on 127.0.0.1 / ::1 only), `off`, or
    /// `open` (anyone who can reach the port) (`TOLLGATE_DIRECT_RUNTIME`).
    pub direct_runtime: DirectRuntime,
    /// The tenant the direct-runtime endpoint decides for (`TOLLGATE_DIRECT_RUNTIME_TENANT`).
    pub direct_runtime_tenant: String,
    /// The environment (`live` or `test`) recorded and metered for direct-runtime
    /// decisions (`TOLLGATE_DIRECT_RUNTIME_ENVIRONMENT`).
    pub direct_runtime_environment: String,
    /// Where state lives: `sqlite` (embedded, in `data_dir`) or `postgres` (shared by
    /// every node of a cluster) (`TOLLGATE_STORE`).
    pub store: StoreKind,
    /// Where throttle buckets live: `memory` (this process) or `redis` (shared by
    /// every node) (`TOLLGATE_THROTTLE`).
    pub throttle: ThrottleKind,
    /// Redis URL for `throttle = "redis"`, e.g. `redis://127.0.0.1:6379/`
    /// (`TOLLGATE_REDIS_URL`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key Tollgate writes (`TOLLGATE_REDIS_KEY_PREFIX`).
    pub redis_key_prefix: String,
    /// Treat the store as shared with other nodes even when it is SQLite: no cached
    /// keys or overrides, quota reserved in the store. Set by embedders and tests
    /// that run several nodes on one store object; not a file or environment key.
    #[serde(skip)]
    pub assume_shared_store: bool,
    /// The PostgreSQL connection URL for `store = "postgres"`
    /// (`TOLLGATE_DATABASE_URL`), e.g. `postgres://tollgate@db:5432/tollgate`.
    pub database_url: Option<String>,
    /// The Ed25519 signing key file (PKCS#8 PEM); default `<data_dir>/signing-key.pem`,
    /// created on first start. Cluster nodes each have their own key by default (every
    /// node's public key is recorded in the store and published in the JWKS), or
    /// share one through this setting (`TOLLGATE_SIGNING_KEY_FILE`).
    pub signing_key_file: Option<PathBuf>,
    /// A console session ends after this long without a request (seconds).
    pub console_session_idle_s: u64,
    /// A console session ends this long after sign-in, however busy (seconds).
    pub console_session_max_s: u64,
    /// Delivery of notifications and the SIEM stream (`[notify]`, `TOLLGATE_NOTIFY_*`;
    /// docs/notifications.md).
    pub notify: crate::notify::NotifyConfig,
    /// OpenTelemetry traces and metrics (`[otel]`, `TOLLGATE_OTEL_*`, or the standard
    /// `OTEL_EXPORTER_OTLP_*` variables; off unless configured).
    pub otel: crate::otel::OtelConfig,
    /// The tlog-tiles HTTP endpoints (`[tlog]`, `TOLLGATE_TLOG_*`; docs/ledger.md).
    pub tlog: TlogConfig,
}

/// `[tlog]`: who may read a tenant's log over `/tlog/{tenant}/…` without a key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlogConfig {
    /// Tenants whose checkpoint, tiles and entry bundles anyone may read (opt-in;
    /// `TOLLGATE_TLOG_PUBLIC_TENANTS`, comma-separated). Other tenants' logs need a key
    /// of the tenant with the `read` or `admin` scope.
    pub public_tenants: Vec<String>,
}

/// Where state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// SQLite in the data directory: one node.
    #[default]
    Sqlite,
    /// PostgreSQL: shared by every node of a cluster.
    Postgres,
}

impl std::str::FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" => Ok(Self::Postgres),
            _ => Err(format!("`{s}` is not one of sqlite, postgres")),
        }
    }
}

/// Where throttle buckets live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleKind {
    /// In this process (a restart refills every bucket).
    #[default]
    Memory,
    /// In Redis, one atomic script per decision: every node shares each bucket.
    Redis,
}

impl std::str::FromStr for ThrottleKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            _ => Err(format!("`{s}` is not one of memory, redis")),
        }
    }
}

/// Who may use the key-less direct-runtime endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectRuntime {
    /// Nobody: the endpoint answers 403.
    Off,
    /// Only callers connecting from a loopback address.
    #[default]
    Loopback,
    /// Anyone who can reach the port.
    Open,
}

impl std::str::FromStr for DirectRuntime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "loopback" => Ok(Self::Loopback),
            "open" => Ok(Self::Open),
            _ => Err(format!("`{s}` is not one of off, loopback, open")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8765)),
            data_dir: PathBuf::from("tollgate-data"),
            public_url: None,
            max_body_bytes: 256 * 1024,
            max_json_depth: 32,
            max_concurrency: 512,
            admission_wait_ms: 100,
            max_connections: 1024,
            header_read_timeout_ms: 30_000,
            idle_timeout_ms: 90_000,
            key_rate_burst: 2000,
            key_rate_per_second: 1000,
            monthly_quota: 1_000_000,
            metrics_public: true,
            checkpoint_interval_ms: 1000,
            ledger_timeout_ms: 5000,
            idempotency_ttl_ms: 24 * 3600 * 1000,
            log_format: "json".to_owned(),
            direct_runtime: DirectRuntime::Loopback,
            direct_runtime_tenant: "default".to_owned(),
            direct_runtime_environment: "test".to_owned(),
            store: StoreKind::Sqlite,
            database_url: None,
            signing_key_file: None,
            throttle: ThrottleKind::Memory,
            redis_url: None,
            redis_key_prefix: "tollgate:".to_owned(),
            assume_shared_store: false,
            console_session_idle_s: 8 * 3600,
            console_session_max_s: 12 * 3600,
            notify: crate::notify::NotifyConfig::default(),
            otel: crate::otel::OtelConfig::default(),
            tlog: TlogConfig::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An environment variable is not valid.
    #[error("invalid value for `{name}`: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Loads `path` (if given) and applies `TOLLGATE_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?
            }
            None => Config::default(),
        };
        for (name, value) in env {
            config.apply_env(&name, &value)?;
        }
        Ok(config)
    }

    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.to_owned(),
                message: e.to_string(),
            })
        }
        match name {
            "TOLLGATE_LISTEN" => self.listen = parse(name, value)?,
            "TOLLGATE_DATA_DIR" => self.data_dir = PathBuf::from(value),
            "TOLLGATE_PUBLIC_URL" => self.public_url = Some(value.to_owned()),
            "TOLLGATE_MAX_BODY_BYTES" => self.max_body_bytes = parse(name, value)?,
            "TOLLGATE_MAX_JSON_DEPTH" => self.max_json_depth = parse(name, value)?,
            "TOLLGATE_MAX_CONCURRENCY" => self.max_concurrency = parse(name, value)?,
            "TOLLGATE_ADMISSION_WAIT_MS" => self.admission_wait_ms = parse(name, value)?,
            "TOLLGATE_MAX_CONNECTIONS" => self.max_connections = parse(name, value)?,
            "TOLLGATE_HEADER_READ_TIMEOUT_MS" => {
                self.header_read_timeout_ms = parse(name, value)?;
            }
            "TOLLGATE_IDLE_TIMEOUT_MS" => self.idle_timeout_ms = parse(name, value)?,
            "TOLLGATE_KEY_RATE_BURST" => self.key_rate_burst = parse(name, value)?,
            "TOLLGATE_KEY_RATE_PER_SECOND" => self.key_rate_per_second = parse(name, value)?,
            "TOLLGATE_MONTHLY_QUOTA" => self.monthly_quota = parse(name, value)?,
            "TOLLGATE_METRICS_PUBLIC" => self.metrics_public = parse(name, value)?,
            "TOLLGATE_CHECKPOINT_INTERVAL_MS" => self.checkpoint_interval_ms = parse(name, value)?,
            "TOLLGATE_LEDGER_TIMEOUT_MS" => self.ledger_timeout_ms = parse(name, value)?,
            "TOLLGATE_IDEMPOTENCY_TTL_MS" => self.idempotency_ttl_ms = parse(name, value)?,
            "TOLLGATE_LOG_FORMAT" => self.log_format = value.to_owned(),
            "TOLLGATE_DIRECT_RUNTIME" => self.direct_runtime = parse(name, value)?,
            "TOLLGATE_DIRECT_RUNTIME_TENANT" => self.direct_runtime_tenant = value.to_owned(),
            "TOLLGATE_DIRECT_RUNTIME_ENVIRONMENT" => {
                self.direct_runtime_environment = value.to_owned();
            }
            "TOLLGATE_STORE" => self.store = parse(name, value)?,
            "TOLLGATE_DATABASE_URL" => self.database_url = Some(value.to_owned()),
            "TOLLGATE_SIGNING_KEY_FILE" => self.signing_key_file = Some(PathBuf::from(value)),
            "TOLLGATE_THROTTLE" => self.throttle = parse(name, value)?,
            "TOLLGATE_REDIS_URL" => self.redis_url = Some(value.to_owned()),
            "TOLLGATE_REDIS_KEY_PREFIX" => self.redis_key_prefix = value.to_owned(),
            "TOLLGATE_CONSOLE_SESSION_IDLE_S" => self.console_session_idle_s = parse(name, value)?,
            "TOLLGATE_CONSOLE_SESSION_MAX_S" => self.console_session_max_s = parse(name, value)?,
            "TOLLGATE_TLOG_PUBLIC_TENANTS" => {
                self.tlog.public_tenants = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            n if n.starts_with("TOLLGATE_OTEL_") => {
                self.otel
                    .apply_env(n, value)
                    .map_err(|message| ConfigError::Env {
                        name: n.to_owned(),
                        message,
                    })?;
            }
            n if n.starts_with("TOLLGATE_NOTIFY_") => {
                self.notify
                    .apply_env(n, value)
                    .map_err(|message| ConfigError::Env {
                        name: n.to_owned(),
                        message,
                    })?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether other nodes may share this node's store (`store = "postgres"`, or
    /// [`Config::assume_shared_store`]). Then nothing another node can change is
    /// cached: API keys and overrides are read from the store on every request, the
    /// monthly quota is reserved in the store, and review approvals are claimed there.
    pub fn shared_state(&self) -> bool {
        self.store != StoreKind::Sqlite || self.assume_shared_store
    }

    /// The base URL for links in responses.
    pub fn base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}
