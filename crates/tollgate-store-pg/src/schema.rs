//! Schema migrations, applied at start under a transaction-scoped advisory lock so
//! that nodes starting together migrate exactly once.

use deadpool_postgres::Pool;
use tollgate_store::StoreError;

use crate::db;

/// The advisory lock key of migrations ("tollgate" + 1).
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7401;

/// Schema migrations; `tollgate_schema_version` holds how many have been applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE ledger (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    canonical BYTEA NOT NULL,
    entry_hash BYTEA NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL,
    sequenced_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (tenant, seq)
);
CREATE TABLE pending (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    body BYTEA NOT NULL,
    decision_id TEXT,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE ledger_heads (
    tenant TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    last_hash BYTEA NOT NULL,
    peaks BYTEA NOT NULL
);
CREATE TABLE checkpoints (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    size BIGINT NOT NULL,
    issued TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX checkpoints_by_tenant ON checkpoints (tenant, size);
CREATE TABLE decision_index (
    tenant TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    seq BIGINT,
    PRIMARY KEY (tenant, decision_id)
);
CREATE TABLE tenants (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);
CREATE TABLE signing_keys (
    name TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, public_key)
);
CREATE TABLE policies (
    tenant TEXT NOT NULL, policy_id TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, policy_id, version)
);
CREATE TABLE active_policies (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL, version BIGINT NOT NULL,
    PRIMARY KEY (tenant, environment)
);
CREATE TABLE sources (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE overrides (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE idempotency (
    tenant TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, created_ms BIGINT NOT NULL,
    response TEXT,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_by_time ON idempotency (created_ms);
CREATE TABLE reviews (tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE quota (
    tenant TEXT NOT NULL, period TEXT NOT NULL, metric TEXT NOT NULL, value BIGINT NOT NULL,
    PRIMARY KEY (tenant, period, metric)
);
"#,
    // v2: one active version per policy (and a candidate); `active_policies` keeps only
    // the environment's default policy id. Velocity history.
    r#"
CREATE TABLE policy_activations (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL,
    version BIGINT NOT NULL, candidate BIGINT, candidate_since_ms BIGINT,
    PRIMARY KEY (tenant, environment, policy_id)
);
INSERT INTO policy_activations (tenant, environment, policy_id, version)
    SELECT tenant, environment, policy_id, version FROM active_policies;
CREATE TABLE history (
    id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, at_ms BIGINT NOT NULL,
    actor TEXT, source TEXT, body TEXT NOT NULL
);
CREATE INDEX history_by_time ON history (tenant, at_ms);
CREATE INDEX history_by_actor ON history (tenant, actor, at_ms);
CREATE INDEX history_by_source ON history (tenant, source, at_ms);
"#,
    // v4: the Merkle tree as C2SP tlog-tiles (one row per tile; a partial tile is
    // widened in place), grown with each checkpoint; `ledger_tile_heads.size` is how
    // many leaves they cover.
    r#"
CREATE TABLE ledger_tiles (
    tenant TEXT NOT NULL, level SMALLINT NOT NULL, idx BIGINT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (tenant, level, idx)
);
CREATE TABLE ledger_tile_heads (tenant TEXT PRIMARY KEY, size BIGINT NOT NULL);
"#,
    // Next: notification and SIEM delivery (docs/notifications.md): sinks, a cursor per
    // sink over its tenant's ledger, and the rows of entries in retry or dead.
    r#"
CREATE TABLE notify_sinks (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE notify_cursors (
    tenant TEXT NOT NULL, sink_id TEXT NOT NULL, next_seq BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, sink_id)
);
CREATE TABLE notify_deliveries (
    tenant TEXT NOT NULL, sink_id TEXT NOT NULL, seq BIGINT NOT NULL, state TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, sink_id, seq)
);
CREATE INDEX notify_deliveries_by_state ON notify_deliveries (tenant, state);
"#,
];

pub(crate) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    // Held until this transaction ends: a second node starting at the same time
    // waits here, then finds the schema current.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tollgate_schema_version (version BIGINT NOT NULL)",
    )
    .await
    .map_err(db)?;
    let current: Option<i64> = tx
        .query_opt("SELECT version FROM tollgate_schema_version", &[])
        .await
        .map_err(db)?
        .map(|r| r.get(0));
    let applied = usize::try_from(current.unwrap_or(0))
        .map_err(|_| StoreError::Corrupt("schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for m in MIGRATIONS.iter().skip(applied) {
        tx.batch_execute(m).await.map_err(db)?;
    }
    tx.execute("DELETE FROM tollgate_schema_version", &[])
        .await
        .map_err(db)?;
    let version = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO tollgate_schema_version (version) VALUES ($1)",
        &[&version],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}
