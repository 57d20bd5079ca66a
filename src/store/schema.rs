//! Schema migrations, versioned by `PRAGMA user_version`. A migration is append-only:
//! never edit one that has shipped, add the next.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Each entry upgrades the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE nodes (
    mac          TEXT PRIMARY KEY NOT NULL,
    hostname     TEXT,
    grp          TEXT,
    profile      TEXT,
    ip           TEXT,
    uuid         TEXT,
    provider_id  TEXT,
    health_url   TEXT,
    console_url  TEXT,
    boot         TEXT NOT NULL DEFAULT 'profile',
    next_boot    TEXT,
    vars         TEXT NOT NULL DEFAULT '{}',
    origin       TEXT NOT NULL,
    phase        TEXT NOT NULL,
    progress     INTEGER NOT NULL DEFAULT 0,
    message      TEXT NOT NULL DEFAULT '',
    token_gen    INTEGER NOT NULL DEFAULT 0,
    token_hash   TEXT,
    seq          INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    phase_since  TEXT NOT NULL
);
CREATE TABLE deployment_history (
    id          INTEGER PRIMARY KEY,
    node        TEXT NOT NULL REFERENCES nodes(mac) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    from_phase  TEXT NOT NULL,
    to_phase    TEXT NOT NULL,
    progress    INTEGER NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL
);
CREATE INDEX deployment_history_node ON deployment_history(node, id);
CREATE TABLE hardware (
    id          INTEGER PRIMARY KEY,
    node        TEXT NOT NULL REFERENCES nodes(mac) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    inventory   TEXT NOT NULL,
    changed     INTEGER NOT NULL DEFAULT 0,
    source_ip   TEXT
);
CREATE INDEX hardware_node ON hardware(node, id);
CREATE TABLE leases (
    mac         TEXT PRIMARY KEY NOT NULL,
    ip          TEXT NOT NULL,
    expires     INTEGER NOT NULL,
    hostname    TEXT,
    state       TEXT NOT NULL
);
CREATE INDEX leases_ip ON leases(ip);
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    upstream      TEXT NOT NULL,
    node          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    state         TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX outbox_pending ON outbox(state, upstream, node, seq);
"#,
    // 2: what changed between two hardware reports, in words.
    r#"
ALTER TABLE hardware ADD COLUMN changes TEXT NOT NULL DEFAULT '[]';
"#,
    // 3: API tokens (hashes only) and the audit log.
    r#"
CREATE TABLE api_tokens (
    name        TEXT PRIMARY KEY NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  INTEGER,
    revoked_at  TEXT
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    at_unix     INTEGER NOT NULL,
    who         TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before      TEXT NOT NULL DEFAULT '',
    after       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at_unix);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Refuses a damaged file before anything writes to it.
pub(super) fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let result: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| super::classify(path, e))?;
    if result == "ok" {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: result,
        })
    }
}

/// Brings the schema up to `SCHEMA_VERSION` in one transaction per step.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < 0 {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("negative schema version {found}"),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let next = index as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
        tracing::info!(version = next, "store schema migrated");
    }
    Ok(())
}
