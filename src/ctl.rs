//! The client side of the control socket for `bootctl`: HTTP/1.1 over a Unix socket,
//! and the tables it prints.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The socket of a production install.
pub const DEFAULT_SOCKET: &str = crate::config::DEFAULT_CONTROL_SOCKET;
/// The socket of `bootd run` on embedded defaults in the working directory.
pub const LOCAL_SOCKET: &str = "bootd-state/control.sock";

/// What can go wrong talking to bootd.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("bootd is not running (nothing listens on {0}); start it or pass --socket")]
    Down(PathBuf),
    #[error("permission denied on {0}: run as root or as a member of bootd's control group")]
    Denied(PathBuf),
    #[error("cannot talk to bootd on {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("bootd answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
    /// `reprovision --wait`: some nodes did not get to running (the table was printed).
    #[error("{0}")]
    Unfinished(String),
}

/// The socket to use: the flag or env, else the production path, else the local one.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    let prod = PathBuf::from(DEFAULT_SOCKET);
    if !prod.exists() && Path::new(LOCAL_SOCKET).exists() {
        return PathBuf::from(LOCAL_SOCKET);
    }
    prod
}

/// A MAC as typed, made safe for a URL path (bootd parses any spelling).
pub fn path_mac(mac: &str) -> String {
    percent_encoding::utf8_percent_encode(mac, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A control-socket client.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client for the socket at `path`.
    pub fn new(path: PathBuf) -> Client {
        Client { path }
    }

    /// `GET path`, JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.send("GET", path, &Value::Null).await
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and returns the answer with its body unread (event streams).
    pub async fn open(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<hyper::Response<hyper::body::Incoming>, CtlError> {
        let io = |e: &dyn std::fmt::Display| CtlError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    CtlError::Down(self.path.clone())
                }
                std::io::ErrorKind::PermissionDenied => CtlError::Denied(self.path.clone()),
                _ => io(&e),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io(&e))?;
        tokio::spawn(conn);
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| io(&e))?;
        let payload = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(body).map_err(|e| io(&e))?)
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bootd")
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .map_err(|e| io(&e))?;
        sender.send_request(req).await.map_err(|e| io(&e))
    }

    /// Any method with an optional JSON body; a 4xx/5xx becomes `Refused`.
    pub async fn send(&self, method: &str, path: &str, body: &Value) -> Result<Value, CtlError> {
        let io = |e: &dyn std::fmt::Display| CtlError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let resp = self.open(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io(&e))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            Err(CtlError::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }
}

/// Recent deliveries `bootctl relay` prints (all are in `--json`).
const RECENT_ON_SCREEN: usize = 10;

/// How answers are printed.
pub struct Output {
    pub json: bool,
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Prints rows as aligned columns.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

impl Output {
    fn raw(&self, v: &Value) -> bool {
        if self.json {
            println!("{v}");
        }
        self.json
    }

    /// `bootctl status`.
    pub fn status(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        println!("bootd {} up {}s", s(v, "version"), s(v, "uptime_seconds"));
        for key in [
            "config",
            "state_dir",
            "database",
            "http_listen",
            "public_url",
            "tftp",
            "dhcp_mode",
            "control_socket",
        ] {
            println!("  {:<15} {}", format!("{key}:"), s(v, key));
        }
        println!("  {:<15} {}", "nodes:", s(v, "nodes"));
        if let Some(Value::Object(phases)) = v.get("phases") {
            for (p, n) in phases {
                println!("    {p:<20} {n}");
            }
        }
    }

    /// `bootctl nodes`.
    pub fn nodes(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows: Vec<Vec<String>> = v
            .get("nodes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|n| {
                        vec![
                            s(n, "mac"),
                            s(n, "hostname"),
                            s(n, "group"),
                            s(n, "profile"),
                            s(n, "ip"),
                            s(n, "phase"),
                            format!("{}%", s(n, "progress")),
                            s(n, "message"),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(
            &[
                "MAC", "HOSTNAME", "GROUP", "PROFILE", "IP", "PHASE", "PROGRESS", "MESSAGE",
            ],
            &rows,
        );
    }

    /// `bootctl node show`.
    pub fn node(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        for key in [
            "mac",
            "hostname",
            "group",
            "profile",
            "ip",
            "boot",
            "next_boot",
            "origin",
            "phase",
            "progress",
            "message",
            "phase_since",
            "updated_at",
        ] {
            println!("{:<12} {}", format!("{key}:"), s(v, key));
        }
        let history = v
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let visits = crate::watch::timeline(&history, std::time::SystemTime::now());
        let rows: Vec<Vec<String>> = visits
            .iter()
            .map(|t| {
                vec![
                    t.at.clone(),
                    t.phase.clone(),
                    t.progress.clone(),
                    crate::watch::spent_text(t),
                    t.source.clone(),
                    t.message.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!();
            println!("timeline:");
            table(
                &[
                    "SINCE",
                    "PHASE",
                    "PROGRESS",
                    "TIME IN PHASE",
                    "SOURCE",
                    "MESSAGE",
                ],
                &rows,
            );
        }
        if let Some((start, end, took)) = crate::watch::last_deployment(&visits) {
            println!();
            println!(
                "last deployment: {} ({} at {} to {} at {})",
                crate::lifecycle::deadline::human(took),
                start.phase,
                start.at,
                end.phase,
                end.at
            );
        }
    }

    /// `bootctl groups`.
    pub fn groups(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows: Vec<Vec<String>> = v
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|g| {
                        let nodes = g
                            .get("nodes")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let live = nodes
                            .iter()
                            .filter(|n| {
                                matches!(
                                    n.get("phase").and_then(Value::as_str),
                                    Some("running" | "clustered")
                                )
                            })
                            .count();
                        vec![
                            s(g, "name"),
                            s(g, "profile"),
                            s(g, "state"),
                            format!("{live}/{}", nodes.len()),
                            s(g, "reason"),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(&["GROUP", "PROFILE", "STATE", "RUNNING", "REASON"], &rows);
    }

    /// Answers of node add/set/rm.
    pub fn changed(&self, what: &str, v: &Value) {
        if self.raw(v) {
            return;
        }
        let mac = v
            .get("mac")
            .or_else(|| v.get("removed"))
            .and_then(Value::as_str)
            .unwrap_or("-");
        println!("{what} {mac}");
    }

    /// Answer of `bootctl phase`.
    pub fn phase(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let node = v.get("node").cloned().unwrap_or(Value::Null);
        let changed = v.get("changed").and_then(Value::as_bool).unwrap_or(false);
        println!(
            "{} {} {}% {}",
            s(&node, "mac"),
            s(&node, "phase"),
            s(&node, "progress"),
            if changed { "" } else { "(unchanged)" }
        );
    }

    /// `bootctl hardware MAC`: the inventory as a short sheet.
    pub fn hardware(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let inv = v.get("inventory").cloned().unwrap_or(Value::Null);
        println!("{} (reported {})", s(v, "mac"), s(v, "at"));
        for key in [
            "vendor",
            "product",
            "serial",
            "uuid",
            "sku",
            "boot_mode",
            "secure_boot",
        ] {
            println!("  {:<12} {}", format!("{key}:"), s(&inv, key));
        }
        let cpus = inv.get("cpus").cloned().unwrap_or(Value::Null);
        println!(
            "  {:<12} {} ({} sockets, {} cores, {} threads)",
            "cpu:",
            s(&cpus, "model"),
            s(&cpus, "sockets"),
            s(&cpus, "cores"),
            s(&cpus, "threads")
        );
        let mem = inv.get("memory").cloned().unwrap_or(Value::Null);
        println!("  {:<12} {} bytes", "memory:", s(&mem, "total_bytes"));
        for (what, key) in [("disks", "disks"), ("nics", "nics")] {
            let n = inv
                .get(key)
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            println!("  {:<12} {n}", format!("{what}:"));
        }
        if let Some(changes) = v
            .get("changes")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
        {
            println!("  changed since the previous report:");
            for c in changes {
                println!("    - {}", c.as_str().unwrap_or(""));
            }
        }
    }

    /// `bootctl hardware`: discovered machines that reported.
    pub fn discovered(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rows: Vec<Vec<String>> = v
            .get("discovered")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| {
                        vec![
                            s(m, "mac"),
                            s(m, "summary"),
                            s(m, "first_seen"),
                            s(m, "last_seen"),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(&["MAC", "HARDWARE", "FIRST SEEN", "LAST SEEN"], &rows);
    }

    /// Answer of `bootctl reload`.
    pub fn reload(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        println!("reloaded: {}", s(v, "summary"));
    }

    /// `bootctl relay`: per upstream the backlog, then failing events, dead letters and
    /// the most recent deliveries.
    pub fn relay(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let list = |key: &str| {
            v.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let rows: Vec<Vec<String>> = list("upstreams")
            .iter()
            .map(|u| {
                let configured = u.get("configured").and_then(Value::as_bool) == Some(true);
                vec![
                    s(u, "name"),
                    s(u, "pending"),
                    s(u, "failing"),
                    s(u, "dead"),
                    s(u, "delivered"),
                    s(u, "oldest_pending"),
                    if configured {
                        s(u, "secret")
                    } else {
                        "not configured".into()
                    },
                ]
            })
            .collect();
        table(
            &[
                "UPSTREAM",
                "PENDING",
                "FAILING",
                "DEAD",
                "DELIVERED",
                "OLDEST PENDING",
                "SECRET",
            ],
            &rows,
        );
        let events = |title: &str, key: &str, time_key: &str, time_head: &str, max: usize| {
            let rows: Vec<Vec<String>> = list(key)
                .iter()
                .take(max)
                .map(|r| {
                    vec![
                        s(r, "id"),
                        s(r, "upstream"),
                        s(r, "node"),
                        s(r, "seq"),
                        s(r, "phase"),
                        s(r, "attempts"),
                        s(r, time_key),
                        s(r, "last_error"),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                println!();
                println!("{title}:");
                table(
                    &[
                        "ID",
                        "UPSTREAM",
                        "NODE",
                        "SEQ",
                        "PHASE",
                        "ATTEMPTS",
                        time_head,
                        "LAST ERROR",
                    ],
                    &rows,
                );
            }
        };
        events(
            "failing (retried with backoff)",
            "failing",
            "next_attempt",
            "NEXT ATTEMPT",
            usize::MAX,
        );
        events(
            "dead letters (bootctl relay retry --id N | --all-dead)",
            "dead",
            "created_at",
            "CREATED",
            usize::MAX,
        );
        // The full list of recent deliveries is in --json; a screen shows the last few.
        events(
            "recently delivered",
            "recent",
            "delivered_at",
            "DELIVERED",
            RECENT_ON_SCREEN,
        );
    }

    /// Answers of `bootctl relay retry|drop`.
    pub fn relay_done(&self, what: &str, v: &Value) {
        if self.raw(v) {
            return;
        }
        println!("{what} {}", s(v, what));
    }
}
