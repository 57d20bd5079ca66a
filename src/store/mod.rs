//! The embedded state store: one SQLite file in WAL mode, written by a single writer
//! thread that commits concurrent writes together (group commit). Only this module writes SQL.

mod auth;
mod hardware;
mod leases;
mod nodes;
mod outbox;
mod schema;
mod writer;

pub use auth::{live_api_token_in, ApiTokenRow, AuditRow};
pub use hardware::{HardwareRow, HardwareSeen};
pub use leases::LeaseRow;
pub use nodes::{HistoryRow, NodeRow, Pending, TransitionRow};
pub use outbox::{OutboxCounts, OutboxFilter, OutboxRow};
pub use schema::SCHEMA_VERSION;

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use writer::Writer;

/// The database file name inside `server.state_dir`.
pub const DB_FILE: &str = "bootd.db";

/// How long a locked database is retried before giving up.
pub const LOCK_RETRY: Duration = Duration::from_secs(10);

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable bootd database ({detail}); refusing to touch it — move it aside or restore a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} has schema version {found}, newer than this bootd understands ({supported}); refusing to downgrade it")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} stayed locked by another process for {waited:?}")]
    Locked { path: PathBuf, waited: Duration },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the store is closed")]
    Closed,
    #[error("{0}")]
    Invalid(String),
}

/// The store: a writer thread for every change, one connection for reads.
pub struct Store {
    path: PathBuf,
    reader: Mutex<Connection>,
    writer: Writer,
}

impl Store {
    /// Opens (creating if needed) `state_dir/bootd.db`, migrating an older schema and
    /// refusing a corrupt or newer one.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(DB_FILE);
        let started = Instant::now();
        loop {
            match Self::try_open(&path) {
                Err(StoreError::Sql(e)) if is_busy(&e) => {
                    if started.elapsed() > LOCK_RETRY {
                        return Err(StoreError::Locked {
                            path,
                            waited: started.elapsed(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn try_open(path: &Path) -> Result<Store, StoreError> {
        let conn = connect(path)?;
        schema::check_integrity(&conn, path)?;
        schema::migrate(&conn, path)?;
        let reader = connect(path)?;
        let writer = Writer::start(conn)?;
        Ok(Store {
            path: path.to_path_buf(),
            reader: Mutex::new(reader),
            writer,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read-only query on the reader connection (blocking; call from a blocking context
    /// or keep it short).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.reader.lock().map_err(|_| StoreError::Closed)?;
        Ok(f(&conn)?)
    }

    /// `PRAGMA integrity_check` on the live database: `Ok(())` or the problems found.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let rows = self.read(|c| {
            let mut st = c.prepare("PRAGMA integrity_check")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: rows.join("; "),
            })
        }
    }

    /// A cheap round trip through both connections, for the watchdog.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))?;
        self.writer.submit(|_| Ok(())).await
    }

    /// Flushes pending writes and stops the writer; later writes fail with `Closed`.
    pub async fn close(&self) {
        self.writer.close().await;
        if let Ok(conn) = self.reader.lock() {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        }
    }
}

/// What a read-only look at an existing database found (for `bootd preflight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    /// The database file.
    pub path: PathBuf,
    /// Its schema version (`PRAGMA user_version`).
    pub version: i64,
}

/// Checks `state_dir/bootd.db` without changing it: `Ok(None)` when there is none yet,
/// its schema version when it is intact and not newer than this build, else the refusal
/// `Store::open` would give.
pub fn inspect(state_dir: &Path) -> Result<Option<DbStatus>, StoreError> {
    let path = state_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(&path, e))?;
    conn.busy_timeout(LOCK_RETRY)?;
    // The full check, not quick_check: preflight runs once per start on a small file.
    let rows: Vec<String> = {
        let mut st = conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| classify(&path, e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| classify(&path, e))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| classify(&path, e))?
    };
    if rows.len() != 1 || rows.first().map(String::as_str) != Some("ok") {
        return Err(StoreError::Corrupt {
            path,
            detail: rows.join("; "),
        });
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 0 {
        return Err(StoreError::Corrupt {
            path,
            detail: format!("negative schema version {version}"),
        });
    }
    Ok(Some(DbStatus { path, version }))
}

/// Opens one connection with the settings every bootd connection uses.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(LOCK_RETRY)?;
    // A file that is not SQLite fails here, on the first read of its header.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("cannot switch to WAL (journal mode {mode})"),
        });
    }
    // FULL: every commit acknowledged to a caller is on disk before the caller hears of it.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(|e| classify(path, e))?;
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Maps "not a database" and corruption codes to a refusal that names the file.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => StoreError::Sql(e),
    }
}

/// Current UTC time as RFC 3339 with seconds, the format of every stored timestamp.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage_file_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        let garbage = b"this is not sqlite at all, just some text that is long enough".repeat(100);
        std::fs::write(&path, &garbage).expect("write");
        let err = Store::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), garbage);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let c = Connection::open(dir.path().join(DB_FILE)).expect("open");
            c.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 5))
                .expect("set");
        }
        let err = Store::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    }

    #[tokio::test]
    async fn opens_twice_and_migrates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("open");
        s.ping().await.expect("ping");
        s.integrity_check().expect("ok");
        s.close().await;
        drop(s);
        let s = Store::open(dir.path()).expect("reopen");
        let v: i64 = s
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
    }
}
