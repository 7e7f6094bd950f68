//! The schema: migrations, applied in order when a store opens for writing.

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};

use crate::StoreError;

/// Schema migrations; `schema_version` holds how many have been applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    canonical BLOB NOT NULL,
    entry_hash BLOB NOT NULL,
    UNIQUE (tenant, seq)
);
CREATE TABLE ledger_heads (
    tenant TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    peaks BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    size INTEGER NOT NULL,
    issued TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX checkpoints_by_tenant ON checkpoints (tenant, size);
CREATE TABLE tenants (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant);
CREATE TABLE signing_keys (
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, public_key)
);
CREATE TABLE policies (
    tenant TEXT NOT NULL, policy_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (tenant, policy_id, version)
);
CREATE TABLE active_policies (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (tenant, environment)
);
CREATE TABLE sources (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE overrides (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE idempotency (
    tenant TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, created_ms INTEGER NOT NULL,
    response TEXT,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_by_time ON idempotency (created_ms);
CREATE TABLE reviews (tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE quota (
    tenant TEXT NOT NULL, period TEXT NOT NULL, metric TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (tenant, period, metric)
);
"#,
    r#"
CREATE TABLE decision_index (
    tenant TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tenant, decision_id)
) WITHOUT ROWID;
"#,
    // v3: one active version per policy (and a candidate); `active_policies` keeps only
    // the environment's default policy id. Velocity history.
    r#"
CREATE TABLE policy_activations (
    tenant TEXT NOT NULL, environment TEXT NOT NULL, policy_id TEXT NOT NULL,
    version INTEGER NOT NULL, candidate INTEGER, candidate_since_ms INTEGER,
    PRIMARY KEY (tenant, environment, policy_id)
);
INSERT INTO policy_activations (tenant, environment, policy_id, version)
    SELECT tenant, environment, policy_id, version FROM active_policies;
CREATE TABLE history (
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, at_ms INTEGER NOT NULL,
    actor TEXT, source TEXT, body TEXT NOT NULL
);
CREATE INDEX history_by_time ON history (tenant, at_ms);
CREATE INDEX history_by_actor ON history (tenant, actor, at_ms);
CREATE INDEX history_by_source ON history (tenant, source, at_ms);
"#,
    // v4: the Merkle tree as C2SP tlog-tiles (one row per tile; a partial tile is
    // widened in place), written with each checkpoint up to `tiled_size`.
    r#"
CREATE TABLE ledger_tiles (
    tenant TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (tenant, level, idx)
) WITHOUT ROWID;
ALTER TABLE ledger_heads ADD COLUMN tiled_size INTEGER NOT NULL DEFAULT 0;
"#,
    // v5: notification and SIEM delivery (docs/notifications.md): sinks, a cursor per
    // sink over its tenant's ledger, and the rows of entries in retry or dead.
    r#"
CREATE TABLE notify_sinks (tenant TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE notify_cursors (
    tenant TEXT NOT NULL, sink_id TEXT NOT NULL, next_seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, sink_id)
);
CREATE TABLE notify_deliveries (
    tenant TEXT NOT NULL, sink_id TEXT NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, sink_id, seq)
);
CREATE INDEX notify_deliveries_by_state ON notify_deliveries (tenant, state);
"#,
    // v6: the ledger segment (`segment.rs`): the last frame the database holds.
    r#"
CREATE TABLE ledger_segment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    next_pos INTEGER NOT NULL
);
"#,
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    let current = current.unwrap_or(0);
    let applied =
        usize::try_from(current).map_err(|_| StoreError::Corrupt("schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for m in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(m)?;
    }
    tx.execute("DELETE FROM schema_version", [])?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [MIGRATIONS.len() as i64],
    )?;
    tx.commit()?;
    Ok(())
}

/// Checks, for a read-only store, that the database has this build's schema (it cannot
/// migrate it).
pub(super) fn check_current(conn: &Connection) -> Result<(), StoreError> {
    let current: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    let current = current.unwrap_or(0);
    if usize::try_from(current).ok() != Some(MIGRATIONS.len()) {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, this build reads version {}; open it for writing (for example with `tollgate serve`) to migrate it",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}
