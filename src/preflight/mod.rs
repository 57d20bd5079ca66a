//! `bootd preflight`: start-up checks, each with a stable id, a verdict, a message and a
//! hint to fix it; printed as a table (colour only on a terminal) or as JSON.

mod files;
mod network;
mod owner;
mod probe;
mod state;
mod system;
mod templates;

pub use files::{classify_bios_nbp, parse_pe, BiosNbp, PeError, PeInfo, PeMachine};
pub use probe::{build_discover, parse_offer, Offer};

use crate::boot::{template_exists, Templates};
use crate::config::Config;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome. `id` names the kind of check (stable, for scripts and tests);
/// `subject` says what it looked at (a file, a port, an interface), possibly empty.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub subject: String,
    pub verdict: Verdict,
    pub message: String,
    pub hint: String,
}

impl Check {
    /// A passing check.
    pub fn ok(id: &'static str, subject: impl Into<String>, message: impl Into<String>) -> Check {
        Check::new(id, subject, Verdict::Ok, message, "")
    }

    /// A check with any verdict.
    pub fn new(
        id: &'static str,
        subject: impl Into<String>,
        verdict: Verdict,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            id,
            subject: subject.into(),
            verdict,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// What to run besides the local checks.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Send a DHCP DISCOVER on the served interfaces to find other DHCP servers.
    pub dhcp_probe: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { dhcp_probe: true }
    }
}

/// Loads the config (file or embedded defaults) without compiling templates, so a
/// template error is reported by its own check.
fn load(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p, &template_exists).map_err(|e| e.to_string()),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| format!("cannot read the working directory: {e}"))?;
            Ok(Config::embedded(&cwd))
        }
    }
}

/// Runs every check, in the order an operator fixes things.
pub fn checks(path: Option<&Path>, opts: Options) -> Vec<Check> {
    let mut out = Vec::new();
    let source = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "embedded defaults".into());
    let cfg = match load(path) {
        Ok(c) => {
            out.push(Check::ok("config", &source, "configuration is valid"));
            c
        }
        Err(e) => {
            out.push(Check::new(
                "config",
                source,
                Verdict::Fail,
                e,
                "fix the errors listed (bootd check-config --config FILE)",
            ));
            return out;
        }
    };
    out.extend(state::check(&cfg));
    out.extend(files::check(&cfg));
    match Templates::load(&cfg) {
        Ok(t) => out.extend(templates::check(&cfg, &t)),
        Err(errs) => out.extend(errs.iter().map(|e| {
            Check::new(
                "templates",
                e.place.clone(),
                Verdict::Fail,
                e.detail.clone(),
                "fix the template (minijinja syntax; iPXE's own ${...} passes through)",
            )
        })),
    }
    out.extend(network::check_ports(&cfg));
    out.push(network::check_public_url(&cfg));
    out.push(state::api_tokens(&cfg));
    let served = network::check_interfaces(&cfg, &mut out);
    out.extend(system::check_capabilities(&cfg));
    out.extend(system::check_neighbour_table(&cfg));
    if opts.dhcp_probe {
        out.extend(probe::check(&cfg, &served));
    }
    out.extend(system::check_upstreams(&cfg));
    out
}

/// Whether the report lets bootd start: no check failed.
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.verdict != Verdict::Fail)
}

/// The JSON document: `ok` is false when any check failed.
#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

/// `bootd preflight`: prints the checks; exit 0 on ok/warn, 1 on any fail.
pub fn run(path: Option<&Path>, json: bool) -> ExitCode {
    let checks = checks(path, Options::default());
    let ok = passed(&checks);
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        let doc = Report {
            ok,
            checks: &checks,
        };
        match serde_json::to_string(&doc) {
            Ok(text) => writeln!(stdout, "{text}"),
            Err(e) => {
                let doc = serde_json::json!({ "ok": false, "error": e.to_string() });
                writeln!(stdout, "{doc}")
            }
        }
    } else {
        stdout.write_all(table(&checks, use_colour()).as_bytes())
    };
    // A closed stdout (preflight | head) must not turn a pass into a failure message.
    drop(written);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
fn use_colour() -> bool {
    // SAFETY: isatty only inspects the descriptor number; it has no memory preconditions.
    let tty = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    tty && std::env::var_os("NO_COLOR").is_none()
}

/// The human-readable report: one line per check, a hint line under each problem,
/// and a summary line.
pub fn table(checks: &[Check], colour: bool) -> String {
    let id_width = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let subject_width = checks
        .iter()
        .map(|c| c.subject.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_SUBJECT_COLUMN);
    let mut s = String::new();
    for c in checks {
        let (word, code) = match c.verdict {
            Verdict::Ok => ("ok  ", "32"),
            Verdict::Warn => ("warn", "33"),
            Verdict::Fail => ("FAIL", "1;31"),
        };
        let word = if colour {
            format!("\x1b[{code}m{word}\x1b[0m")
        } else {
            word.to_string()
        };
        s.push_str(&format!(
            "{word}  {:<id_width$}  {:<subject_width$}  {}\n",
            c.id, c.subject, c.message
        ));
        if c.verdict != Verdict::Ok && !c.hint.is_empty() {
            s.push_str(&format!(
                "      {:<id_width$}  {:<subject_width$}  hint: {}\n",
                "", "", c.hint
            ));
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    s.push_str(&format!(
        "{} checks: {} ok, {} warnings, {} failed\n",
        checks.len(),
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    s
}

/// Subjects longer than this stretch their own line instead of the whole column.
const MAX_SUBJECT_COLUMN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_hints_only_for_problems_and_colour_only_when_asked() {
        let checks = vec![
            Check::ok("config", "a.toml", "configuration is valid"),
            Check::new(
                "http_port",
                "0.0.0.0:80",
                Verdict::Fail,
                "in use",
                "stop it",
            ),
        ];
        let plain = table(&checks, false);
        assert!(plain.contains("FAIL  http_port"), "{plain}");
        assert_eq!(plain.matches("hint:").count(), 1, "{plain}");
        assert!(!plain.contains('\x1b'));
        assert!(
            plain.ends_with("2 checks: 1 ok, 0 warnings, 1 failed\n"),
            "{plain}"
        );
        assert!(table(&checks, true).contains("\x1b[1;31mFAIL"));
        assert!(!passed(&checks));
        assert!(passed(&checks[..1]));
    }

    #[test]
    fn embedded_defaults_pass_without_probe_in_a_fresh_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("bootd.toml");
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nstate_dir = \"state\"\nhttp_listen = \"{http}\"\n\
                 [dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
                 [boot]\nbios_file = \"b.kpxe\"\n"
            ),
        )
        .expect("write");
        let checks = checks(Some(&cfg), Options { dhcp_probe: false });
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.id)
            .collect();
        // Only the boot files are missing in an empty assets dir.
        assert_eq!(failed, vec!["boot_file", "boot_file"], "{checks:#?}");
    }
}
