//! State checks: the state dir is writable and has room, and the database in it is
//! intact and of a schema version this build can use (looked at read-only).

use super::{Check, Verdict};
use crate::config::Config;
use std::path::Path;

/// Free space under which the state dir is a warning (leases, history, outbox grow).
pub const DISK_WARN_BYTES: u64 = 1 << 30;
/// Free space under which the state dir is a failure (SQLite may fail mid-commit).
pub const DISK_FAIL_BYTES: u64 = 100 << 20;

/// The state-dir, disk-space and database checks.
pub fn check(cfg: &Config) -> Vec<Check> {
    let state = &cfg.server.state_dir;
    let subject = state.display().to_string();
    let mut out = Vec::new();
    let writable = std::fs::create_dir_all(state).and_then(|_| {
        let probe = state.join(".preflight-write");
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(&probe)
    });
    match writable {
        Ok(()) => out.push(Check::ok("state_dir", &subject, "writable")),
        Err(e) => out.push(Check::new(
            "state_dir",
            &subject,
            Verdict::Fail,
            format!("not writable: {e}"),
            "create it and give bootd's user write access (StateDirectory= in the unit does this)",
        )),
    }
    out.push(disk_space(state));
    out.push(database(state));
    out
}

fn disk_space(state: &Path) -> Check {
    let subject = state.display().to_string();
    let stat = match nix::sys::statvfs::statvfs(state) {
        Ok(s) => s,
        Err(e) => {
            return Check::new(
                "disk_space",
                subject,
                Verdict::Fail,
                format!("cannot read the file system's free space: {e}"),
                "make sure the state dir exists",
            )
        }
    };
    // f_bavail: what an unprivileged user (bootd) may still use, not the root reserve.
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    let text = format!("{} free", human_bytes(free));
    if free < DISK_FAIL_BYTES {
        Check::new(
            "disk_space",
            subject,
            Verdict::Fail,
            format!("{text}; at least {} needed", human_bytes(DISK_FAIL_BYTES)),
            "free space on that file system or move server.state_dir",
        )
    } else if free < DISK_WARN_BYTES {
        Check::new(
            "disk_space",
            subject,
            Verdict::Warn,
            format!("{text}; less than {}", human_bytes(DISK_WARN_BYTES)),
            "free space on that file system before leases and history fill it",
        )
    } else {
        Check::ok("disk_space", subject, text)
    }
}

/// Warns when the HTTP listener is reachable from the network and no API token exists:
/// nobody can read the API or `/metrics` over TCP until one is issued.
pub fn api_tokens(cfg: &Config) -> Check {
    let listen = cfg.server.http_listen;
    let subject = format!("server.http_listen = {listen}");
    if listen.ip().is_loopback() {
        return Check::ok("api_tokens", subject, "listener is loopback only");
    }
    let now = crate::http::auth::unix_now();
    match crate::store::live_api_token_in(&cfg.server.state_dir, now) {
        Ok(true) => Check::ok("api_tokens", subject, "an API token exists"),
        Ok(false) => Check::new(
            "api_tokens",
            subject,
            Verdict::Warn,
            "the listener is not loopback and no API token exists yet: the read API and \
             /metrics answer 401 to everyone",
            "issue one: bootctl token create NAME --role viewer (or operator)",
        ),
        Err(e) => Check::new(
            "api_tokens",
            subject,
            Verdict::Warn,
            format!("cannot read the API tokens: {e}"),
            "check the database (see the database check)",
        ),
    }
}

fn database(state: &Path) -> Check {
    let path = state.join(crate::store::DB_FILE);
    let subject = path.display().to_string();
    let supported = crate::store::SCHEMA_VERSION;
    match crate::store::inspect(state) {
        Ok(None) => Check::ok("database", subject, "none yet: it will be created"),
        Ok(Some(s)) if s.version < supported => Check::ok(
            "database",
            subject,
            format!(
                "intact, schema {} (will be migrated to {supported})",
                s.version
            ),
        ),
        Ok(Some(s)) => Check::ok("database", subject, format!("intact, schema {}", s.version)),
        Err(e @ crate::store::StoreError::TooNew { .. }) => Check::new(
            "database",
            subject,
            Verdict::Fail,
            e.to_string(),
            "install the bootd version that wrote it, or restore a backup made before the upgrade",
        ),
        Err(e) => Check::new(
            "database",
            subject,
            Verdict::Fail,
            e.to_string(),
            "stop bootd, move the file aside (bootd starts a new one) or restore a backup",
        ),
    }
}

/// `1.5 GiB`, `200 MiB`, `12 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(100 << 20), "100.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn database_verdicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(database(dir.path()).verdict, Verdict::Ok);
        std::fs::write(
            dir.path().join(crate::store::DB_FILE),
            b"garbage".repeat(200),
        )
        .expect("write");
        let c = database(dir.path());
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.message.contains("not a usable bootd database"), "{c:?}");
    }

    #[test]
    fn newer_schema_is_refused_and_older_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(crate::store::DB_FILE);
        let set = |v: i64| {
            let c = rusqlite::Connection::open(&db).expect("open");
            c.execute_batch(&format!("PRAGMA user_version = {v}"))
                .expect("set");
        };
        set(crate::store::SCHEMA_VERSION + 1);
        let c = database(dir.path());
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.message.contains("newer"), "{c:?}");
        set(0);
        let c = database(dir.path());
        assert_eq!(c.verdict, Verdict::Ok);
        assert!(c.message.contains("will be migrated"), "{c:?}");
    }
}
