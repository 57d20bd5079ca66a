//! Start-up checks with an id, a verdict, a message and a hint, as a table or JSON.

use crate::app::load_config;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub verdict: Verdict,
    pub message: String,
    pub hint: String,
}

fn check(
    id: &'static str,
    verdict: Verdict,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> Check {
    Check {
        id,
        verdict,
        message: message.into(),
        hint: hint.into(),
    }
}

/// Runs every check.
pub fn checks(path: Option<&Path>) -> Vec<Check> {
    let mut out = Vec::new();
    let cfg = match load_config(path) {
        Ok((c, _)) => {
            out.push(check(
                "config",
                Verdict::Ok,
                "configuration and templates are valid",
                "",
            ));
            c
        }
        Err(e) => {
            out.push(check(
                "config",
                Verdict::Fail,
                e,
                "fix the errors listed (bootd check-config)",
            ));
            return out;
        }
    };
    let state = &cfg.server.state_dir;
    match std::fs::create_dir_all(state).and_then(|_| {
        let probe = state.join(".preflight-write");
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(&probe)
    }) {
        Ok(()) => out.push(check(
            "state_dir",
            Verdict::Ok,
            format!("{} is writable", state.display()),
            "",
        )),
        Err(e) => out.push(check(
            "state_dir",
            Verdict::Fail,
            format!("{} is not writable: {e}", state.display()),
            "create it and give bootd's user write access (StateDirectory= in the unit does this)",
        )),
    }
    let db = state.join(crate::store::DB_FILE);
    if db.exists() {
        match crate::store::Store::open(state).and_then(|s| s.integrity_check()) {
            Ok(()) => out.push(check(
                "database",
                Verdict::Ok,
                format!("{} is intact", db.display()),
                "",
            )),
            Err(e) => out.push(check(
                "database",
                Verdict::Fail,
                e.to_string(),
                "restore a backup or move the file aside",
            )),
        }
    } else {
        out.push(check(
            "database",
            Verdict::Ok,
            format!("{} will be created", db.display()),
            "",
        ));
    }
    match std::net::TcpListener::bind(cfg.server.http_listen) {
        Ok(_) => out.push(check(
            "http_port",
            Verdict::Ok,
            format!("{} is free", cfg.server.http_listen),
            "",
        )),
        Err(e) => out.push(check(
            "http_port",
            Verdict::Fail,
            format!("cannot bind {}: {e}", cfg.server.http_listen),
            "stop whatever holds the port (ss -ltnp) or change server.http_listen",
        )),
    }
    if cfg.tftp.enabled {
        match std::net::UdpSocket::bind(cfg.tftp.listen) {
            Ok(_) => out.push(check(
                "tftp_port",
                Verdict::Ok,
                format!("{} is free", cfg.tftp.listen),
                "",
            )),
            Err(e) => out.push(check(
                "tftp_port",
                Verdict::Fail,
                format!("cannot bind {}: {e}", cfg.tftp.listen),
                "stop the other TFTP server (ss -lunp) or change tftp.listen",
            )),
        }
    }
    out
}

/// `bootd preflight`: prints the checks; exit 0 on ok/warn, 1 on any fail.
pub fn run(path: Option<&Path>, json: bool) -> ExitCode {
    let checks = checks(path);
    if json {
        println!("{}", serde_json::json!({ "checks": checks }));
    } else {
        for c in &checks {
            let v = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            println!("{v}  {:<12} {}", c.id, c.message);
            if c.verdict != Verdict::Ok && !c.hint.is_empty() {
                println!("      {:<12} hint: {}", "", c.hint);
            }
        }
    }
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
