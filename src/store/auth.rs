//! API tokens (hashes only) and the audit log of operator changes.

use super::{Store, StoreError};
use rusqlite::{params, OptionalExtension};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const LIVE_TOKENS: &str = "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL \
     AND (expires_at IS NULL OR expires_at > ?1)";

fn live_tokens(c: &rusqlite::Connection, now: i64) -> rusqlite::Result<bool> {
    let n: i64 = c.query_row(LIVE_TOKENS, params![now], |r| r.get(0))?;
    Ok(n > 0)
}

/// Whether the database in `state_dir` holds a live API token, read without opening
/// the store for writing (preflight runs beside a running bootd): false when there is
/// no database or no token table yet.
pub fn live_api_token_in(state_dir: &std::path::Path, now: i64) -> Result<bool, StoreError> {
    let path = state_dir.join(super::DB_FILE);
    if !path.exists() {
        return Ok(false);
    }
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let has_table: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'api_tokens'",
        [],
        |r| r.get(0),
    )?;
    if has_table == 0 {
        return Ok(false);
    }
    Ok(live_tokens(&conn, now)?)
}

/// An API token as stored: its SHA-256 hash, never the token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTokenRow {
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    pub hash: String,
    pub created_at: String,
    /// Seconds since the epoch; None never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<String>,
}

/// One audited change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub at: String,
    /// Seconds since the epoch (for `--since`).
    pub at_unix: i64,
    /// `operator:<uid>` or `token:<name>`.
    pub who: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        name: r.get(0)?,
        role: r.get(1)?,
        hash: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "name, role, hash, created_at, expires_at, revoked_at";

impl Store {
    /// Stores a new token; false when the name is taken by a token not revoked.
    pub async fn create_api_token(&self, row: ApiTokenRow) -> Result<bool, StoreError> {
        let created = Arc::new(AtomicUsize::new(0));
        let done = created.clone();
        self.writer
            .submit(move |c| {
                // A revoked name may be issued again.
                c.execute(
                    "DELETE FROM api_tokens WHERE name = ?1 AND revoked_at IS NOT NULL",
                    params![row.name],
                )?;
                let n = c.execute(
                    "INSERT OR IGNORE INTO api_tokens (name, role, hash, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![row.name, row.role, row.hash, row.created_at, row.expires_at],
                )?;
                done.store(n, Ordering::SeqCst);
                Ok(())
            })
            .await?;
        Ok(created.load(Ordering::SeqCst) == 1)
    }

    /// Every token, by name.
    pub fn list_api_tokens(&self) -> Result<Vec<ApiTokenRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
            ))?;
            let rows = st.query_map([], token_row)?;
            rows.collect()
        })
    }

    /// The token with this hash, if any (revoked and expired ones too: the caller decides).
    pub fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiTokenRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))?
            .query_row(params![hash], token_row)
            .optional()
        })
    }

    /// Whether any token that is neither revoked nor expired at `now` exists.
    pub fn has_live_api_token(&self, now: i64) -> Result<bool, StoreError> {
        self.read(|c| live_tokens(c, now))
    }

    /// Revokes a token by name; false when there is no such live token.
    pub async fn revoke_api_token(&self, name: String, at: String) -> Result<bool, StoreError> {
        let changed = Arc::new(AtomicUsize::new(0));
        let done = changed.clone();
        self.writer
            .submit(move |c| {
                let n = c.execute(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, at],
                )?;
                done.store(n, Ordering::SeqCst);
                Ok(())
            })
            .await?;
        Ok(changed.load(Ordering::SeqCst) == 1)
    }

    /// Appends one entry to the audit log; returns once it is durable.
    pub async fn audit(&self, row: AuditRow) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                c.execute(
                    "INSERT INTO audit (at, at_unix, who, action, target, before, after) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        row.at,
                        row.at_unix,
                        row.who,
                        row.action,
                        row.target,
                        row.before,
                        row.after
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// Audit entries at or after `since` (seconds since the epoch), oldest first.
    pub fn audit_since(&self, since: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT at, at_unix, who, action, target, before, after FROM audit \
                 WHERE at_unix >= ?1 ORDER BY id",
            )?;
            let rows = st.query_map(params![since], |r| {
                Ok(AuditRow {
                    at: r.get(0)?,
                    at_unix: r.get(1)?,
                    who: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    before: r.get(5)?,
                    after: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, hash: &str) -> ApiTokenRow {
        ApiTokenRow {
            name: name.into(),
            role: "viewer".into(),
            hash: hash.into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn tokens_create_find_revoke_and_audit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("open");
        assert!(!s.has_live_api_token(0).expect("live"));
        assert!(s.create_api_token(row("ci", "h1")).await.expect("create"));
        assert!(!s.create_api_token(row("ci", "h2")).await.expect("dup"));
        assert_eq!(
            s.api_token_by_hash("h1").expect("find").map(|r| r.name),
            Some("ci".into())
        );
        assert!(s.has_live_api_token(0).expect("live"));
        assert!(s
            .revoke_api_token("ci".into(), "now".into())
            .await
            .expect("revoke"));
        assert!(!s
            .revoke_api_token("ci".into(), "now".into())
            .await
            .expect("again"));
        assert!(!s.has_live_api_token(0).expect("live"));
        assert!(s.create_api_token(row("ci", "h3")).await.expect("reissue"));
        let a = AuditRow {
            at: "t".into(),
            at_unix: 100,
            who: "operator:0".into(),
            action: "token_create".into(),
            target: "ci".into(),
            before: String::new(),
            after: "viewer".into(),
        };
        s.audit(a.clone()).await.expect("audit");
        assert_eq!(s.audit_since(50).expect("since"), vec![a]);
        assert!(s.audit_since(101).expect("since").is_empty());
    }
}
