//! Native journald output: under systemd every log event becomes one datagram on the
//! journal socket with MESSAGE, PRIORITY and each event field as a journal field of its
//! own (MAC=, NODE=, PHASE=, …), so `journalctl MAC=52:54:00:12:34:56` finds a machine.
//!
//! Why not `tracing-journald` (0.3.2, checked against its source and a captured datagram):
//! it only upper-cases names (`to` stays TO, `hostname` HOSTNAME, so PHASE=/NODE= go),
//! its MESSAGE lacks the `key=value` text, INFO is PRIORITY=5 by default, the socket path
//! is fixed (no `BOOTD_JOURNAL_SOCKET` for tests), and a blocking send whose errors are
//! dropped could stall DHCP/TFTP on a full journal; this layer avoids all of that.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// journald's native protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides the socket path (tests, containers with a relocated journal).
pub const SOCKET_ENV: &str = "BOOTD_JOURNAL_SOCKET";
/// Journal field names are at most 64 bytes of `A-Z0-9_`.
const MAX_FIELD_NAME: usize = 64;
/// Identifier shown by `journalctl -t`.
const IDENTIFIER: &str = "bootd";

/// Whether stderr is the journal stream systemd connected us to: `$JOURNAL_STREAM` holds
/// the device and inode of that stream, and must match stderr (a child whose stderr was
/// redirected inherits the variable but not the stream).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// A `tracing` layer that writes each event to journald's native socket.
pub struct JournalLayer {
    socket: UnixDatagram,
    path: PathBuf,
}

impl JournalLayer {
    /// A layer for the socket at `$BOOTD_JOURNAL_SOCKET`, else the standard one; fails
    /// when nothing listens there, so the caller can fall back to plain lines.
    pub fn connect() -> io::Result<JournalLayer> {
        let path = std::env::var_os(SOCKET_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(JOURNAL_SOCKET));
        JournalLayer::connect_to(&path)
    }

    /// A layer for the socket at `path`.
    pub fn connect_to(path: &Path) -> io::Result<JournalLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        // A slow journal must never stall DHCP or TFTP: a full socket queue sends the
        // line to stderr (the journal stream) instead of blocking the caller.
        socket.set_nonblocking(true)?;
        Ok(JournalLayer {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry; an entry too large for a datagram loses its extra fields first.
    /// Whatever the socket refuses (full queue, journal restarting, still too large) is
    /// written to stderr as a plain line, so nothing vanishes silently.
    fn send(&self, entry: &Entry) {
        let full = entry.encode(true);
        let result = match self.socket.send(&full) {
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                self.socket.send(&entry.encode(false))
            }
            other => other,
        };
        if let Err(e) = result {
            eprintln!(
                "{}{} (journal {}: {e})",
                entry.message,
                entry.suffix,
                self.path.display()
            );
        }
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut entry = Entry {
            priority: priority(event.metadata().level()),
            ..Entry::default()
        };
        event.record(&mut entry);
        self.send(&entry);
    }
}

/// syslog priority of a tracing level.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// One event being turned into a journal entry.
#[derive(Default)]
struct Entry {
    priority: u8,
    /// The human line: the event's message followed by `key=value` for each field, as
    /// the plain-text log prints it.
    message: String,
    /// Text of the fields after the message (kept apart so the message comes first).
    suffix: String,
    fields: Vec<(String, String)>,
}

impl Entry {
    fn add(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
            return;
        }
        let _ = write!(self.suffix, " {}={}", field.name(), value);
        if let Some(name) = journal_name(field.name()) {
            self.fields.push((name, value));
        }
    }

    /// The datagram: `NAME=value\n` lines, or the length-prefixed form for values that
    /// contain a newline (journald's native protocol).
    fn encode(&self, with_fields: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let message = format!("{}{}", self.message, self.suffix);
        put(&mut out, "MESSAGE", &message);
        put(&mut out, "PRIORITY", &self.priority.to_string());
        put(&mut out, "SYSLOG_IDENTIFIER", IDENTIFIER);
        if with_fields {
            for (name, value) in &self.fields {
                put(&mut out, name, value);
            }
        }
        out
    }
}

impl Visit for Entry {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

/// The journal name of a tracing field: the phase a machine moves to is PHASE and its
/// hostname NODE whatever the call site named them; other names are upper-cased. Names
/// journald would reject (or reserves, leading `_`) are kept only in MESSAGE.
fn journal_name(field: &str) -> Option<String> {
    let name = match field {
        "to" | "phase" => "PHASE".to_string(),
        "hostname" | "node" => "NODE".to_string(),
        other => other.to_ascii_uppercase(),
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
    let reserved = matches!(name.as_str(), "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER");
    (valid && !reserved).then_some(name)
}

fn put(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_journald_rules() {
        assert_eq!(journal_name("mac").as_deref(), Some("MAC"));
        assert_eq!(journal_name("to").as_deref(), Some("PHASE"));
        assert_eq!(journal_name("hostname").as_deref(), Some("NODE"));
        assert_eq!(journal_name("error").as_deref(), Some("ERROR"));
        assert_eq!(journal_name("_pid"), None);
        assert_eq!(journal_name("message"), None);
        assert_eq!(journal_name("x-y"), None);
        assert_eq!(journal_name(&"a".repeat(65)), None);
    }

    #[test]
    fn multiline_values_use_the_length_prefixed_form() {
        let mut out = Vec::new();
        put(&mut out, "ERROR", "a\nb");
        let mut want = b"ERROR\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(out, want);
    }

    #[test]
    fn events_arrive_as_separate_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let layer = JournalLayer::connect_to(&path).expect("connect");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                mac = "52:54:00:12:34:56",
                to = "installing",
                hostname = "web-1",
                "phase"
            );
        });
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).expect("datagram");
        let text = String::from_utf8_lossy(&buf[..n]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"MAC=52:54:00:12:34:56"), "{text}");
        assert!(lines.contains(&"PHASE=installing"), "{text}");
        assert!(lines.contains(&"NODE=web-1"), "{text}");
        assert!(lines.contains(&"PRIORITY=6"), "{text}");
        assert!(lines.contains(&"SYSLOG_IDENTIFIER=bootd"), "{text}");
        assert!(
            lines.contains(&"MESSAGE=phase mac=52:54:00:12:34:56 to=installing hostname=web-1"),
            "{text}"
        );
    }
}
