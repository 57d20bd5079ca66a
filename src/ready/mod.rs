//! Readiness of an installed machine: the checks a profile declares (`ssh`, `tcp`,
//! `http`), run against the node's IP; all must pass before it leaves `registered`.

pub mod probe;
pub mod service;
pub mod spec;

use crate::boot::Context;
use crate::outbound::HttpClient;
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use probe::Reason;

/// Default `[health] ready_interval`: how often a node waiting for readiness is checked.
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_secs(30);
/// Default `[health] ready_timeout`: the bound of one check.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest `ready_interval` and `ready_timeout`.
pub const READY_MIN: Duration = Duration::from_secs(1);
/// Longest `ready_interval`.
pub const READY_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Longest `ready_timeout`.
pub const READY_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// Extra time the HTTP client gets beyond a check's bound, so the check's own deadline
/// (with its uniform "no answer within" reason) is the one that fires.
const CLIENT_MARGIN: Duration = Duration::from_secs(1);

/// One readiness check of a profile, as written in `ready = [ ... ]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// TCP connect, then an `SSH-` identification line within the timeout.
    Ssh(u16),
    /// TCP connect only.
    Tcp(u16),
    /// `GET` of a URL template over the node's variables; any 2xx passes.
    Http(String),
}

impl Check {
    /// The key that declares this kind of check.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Ssh(_) => "ssh",
            Check::Tcp(_) => "tcp",
            Check::Http(_) => "http",
        }
    }
}

/// A check that passed, as a node's history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// Kind and target: `ssh 10.0.0.11:22`, `http http://10.0.0.11:9100/ready`.
    pub check: String,
    /// What was seen: the SSH banner, the HTTP status, `connected`.
    pub detail: String,
}

impl fmt::Display for Passed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.check, self.detail)
    }
}

/// The first check that failed: `ssh 10.0.0.11:22: connection refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {reason}")]
pub struct Failure {
    /// Kind and target, as in [`Passed::check`].
    pub check: String,
    pub reason: Reason,
}

/// Every check of a profile passed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ready {
    /// In the order the profile declares them.
    pub passed: Vec<Passed>,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed.is_empty() {
            return f.write_str("no readiness checks");
        }
        for (i, p) in self.passed.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why a [`Prober`] could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadyError {
    #[error("readiness HTTP client: {0}")]
    Client(#[from] crate::outbound::OutboundError),
}

/// Runs readiness checks, each bounded by one timeout (`[health] ready_timeout`).
#[derive(Clone)]
pub struct Prober {
    timeout: Duration,
    http: HttpClient,
}

impl Prober {
    /// A prober whose every check gives up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Prober, ReadyError> {
        let http = HttpClient::new(None, timeout + CLIENT_MARGIN)?;
        Ok(Prober { timeout, http })
    }

    /// The bound of one check.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `checks` in order against `ip` and stops at the first failure, so a node
    /// that is not up yet costs one refused connect, not every check's timeout.
    /// `ctx` is the node's template context ([`Context::new`]); its `ip` is set to
    /// `ip` so an http template's `{{ ip }}` is the address checked.
    pub async fn run(
        &self,
        checks: &[Check],
        ip: Ipv4Addr,
        ctx: &Context,
    ) -> Result<Ready, Failure> {
        let mut ready = Ready::default();
        for check in checks {
            ready.passed.push(self.check(check, ip, ctx).await?);
        }
        Ok(ready)
    }

    /// Runs one check against `ip`.
    pub async fn check(
        &self,
        check: &Check,
        ip: Ipv4Addr,
        ctx: &Context,
    ) -> Result<Passed, Failure> {
        match check {
            Check::Ssh(port) => {
                let addr = socket(ip, *port);
                let label = format!("ssh {addr}");
                match probe::ssh(addr, self.timeout).await {
                    Ok(banner) => Ok(Passed {
                        check: label,
                        detail: banner,
                    }),
                    Err(reason) => Err(Failure {
                        check: label,
                        reason,
                    }),
                }
            }
            Check::Tcp(port) => {
                let addr = socket(ip, *port);
                let label = format!("tcp {addr}");
                match probe::tcp(addr, self.timeout).await {
                    Ok(()) => Ok(Passed {
                        check: label,
                        detail: "connected".into(),
                    }),
                    Err(reason) => Err(Failure {
                        check: label,
                        reason,
                    }),
                }
            }
            Check::Http(template) => {
                let mut ctx = ctx.clone();
                ctx.ip = Some(ip.to_string());
                let url = match render_url(template, &ctx) {
                    Ok(u) => u,
                    Err(e) => {
                        return Err(Failure {
                            check: format!("http {template}"),
                            reason: Reason::Template(template_detail(&e)),
                        })
                    }
                };
                let label = format!("http {url}");
                match probe::http(&self.http, &url, self.timeout).await {
                    Ok(status) => Ok(Passed {
                        check: label,
                        detail: status.to_string(),
                    }),
                    Err(reason) => Err(Failure {
                        check: label,
                        reason,
                    }),
                }
            }
        }
    }
}

fn socket(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

/// Renders an http check's URL template the way boot templates are rendered: an
/// unknown variable (`node.vars.x` of a node without it) renders empty.
pub fn render_url(template: &str, ctx: &Context) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.render_str(template, ctx).map(|s| s.trim().to_string())
}

/// A template error as one line, with its line number when it has one.
fn template_detail(e: &minijinja::Error) -> String {
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    match e.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::MacAddr;
    use crate::nodes::{Node, Origin};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

    fn ctx() -> Context {
        let mut node = Node::new(MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 0x01]), Origin::Config);
        node.hostname = Some("db1".into());
        node.vars
            .insert("ready_path".into(), serde_json::json!("ready"));
        Context::new(
            &node,
            "ubuntu",
            "x86_64-efi",
            "tok".into(),
            "http://boot:8080",
        )
    }

    fn prober(timeout: Duration) -> Prober {
        Prober::new(timeout).expect("prober")
    }

    /// A listener that accepts and then keeps every connection open, sending nothing.
    async fn silent() -> (u16, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        (port, task)
    }

    /// A listener that writes `greeting` to every connection, then holds it open.
    async fn greeter(greeting: &'static [u8]) -> (u16, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(greeting).await;
                held.push(s);
            }
        });
        (port, task)
    }

    /// A port nothing listens on (bound once, then closed).
    async fn refused_port() -> u16 {
        let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// A one-route HTTP server answering `status` and recording request lines.
    async fn http_server(
        status: u16,
    ) -> (
        u16,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        tokio::task::JoinHandle<()>,
    ) {
        let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
                    match s.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                let text = String::from_utf8_lossy(&buf[..got]).to_string();
                log.lock()
                    .expect("lock")
                    .push(text.lines().next().unwrap_or_default().to_string());
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (port, seen, task)
    }

    #[tokio::test]
    async fn ssh_passes_on_a_banner_even_after_other_lines() {
        let (port, _t) =
            greeter(b"hello from the pre-banner text\r\nSSH-2.0-OpenSSH_9.6 test\r\n").await;
        let r = prober(Duration::from_secs(5))
            .run(&[Check::Ssh(port)], LOCAL, &ctx())
            .await
            .expect("ready");
        assert_eq!(
            r.to_string(),
            format!("ssh 127.0.0.1:{port} (SSH-2.0-OpenSSH_9.6 test)")
        );
    }

    #[tokio::test]
    async fn silent_port_fails_ssh_by_timeout_but_passes_tcp() {
        let (port, _t) = silent().await;
        let p = prober(Duration::from_millis(400));
        let start = Instant::now();
        let err = p
            .run(&[Check::Ssh(port)], LOCAL, &ctx())
            .await
            .expect_err("no banner");
        let took = start.elapsed();
        assert_eq!(
            err.to_string(),
            format!("ssh 127.0.0.1:{port}: no SSH banner within 400ms")
        );
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let ok = p
            .run(&[Check::Tcp(port)], LOCAL, &ctx())
            .await
            .expect("tcp connects");
        assert_eq!(ok.to_string(), format!("tcp 127.0.0.1:{port} (connected)"));
    }

    #[tokio::test]
    async fn a_server_that_is_not_ssh_is_named_in_the_reason() {
        let (port, _t) = greeter(b"220 mail.example ESMTP\r\n").await;
        let err = prober(Duration::from_millis(300))
            .run(&[Check::Ssh(port)], LOCAL, &ctx())
            .await
            .expect_err("not ssh");
        assert_eq!(
            err.to_string(),
            format!(
                "ssh 127.0.0.1:{port}: no SSH banner within 300ms, got \"220 mail.example ESMTP\""
            )
        );
    }

    #[tokio::test]
    async fn refused_port_fails_every_socket_kind() {
        let port = refused_port().await;
        let p = prober(Duration::from_secs(5));
        for (check, kind) in [(Check::Ssh(port), "ssh"), (Check::Tcp(port), "tcp")] {
            let err = p.run(&[check], LOCAL, &ctx()).await.expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("{kind} 127.0.0.1:{port}: connection refused")
            );
            assert_eq!(err.reason, Reason::Refused);
        }
        let url = format!("http://127.0.0.1:{port}/ready");
        let err = p
            .run(&[Check::Http(url.clone())], LOCAL, &ctx())
            .await
            .expect_err("refused");
        assert_eq!(err.to_string(), format!("http {url}: connection refused"));
    }

    #[tokio::test]
    async fn http_passes_on_2xx_and_reports_other_statuses() {
        let (ok_port, _, _t1) = http_server(200).await;
        let (bad_port, _, _t2) = http_server(503).await;
        let p = prober(Duration::from_secs(5));
        let ok = p
            .run(
                &[Check::Http(format!("http://{{{{ ip }}}}:{ok_port}/ready"))],
                LOCAL,
                &ctx(),
            )
            .await
            .expect("2xx");
        assert_eq!(
            ok.to_string(),
            format!("http http://127.0.0.1:{ok_port}/ready (200)")
        );
        let err = p
            .run(
                &[Check::Http(format!("http://{{{{ ip }}}}:{bad_port}/ready"))],
                LOCAL,
                &ctx(),
            )
            .await
            .expect_err("503");
        assert_eq!(
            err.to_string(),
            format!("http http://127.0.0.1:{bad_port}/ready: 503")
        );
        assert_eq!(err.reason, Reason::Status(503));
    }

    #[tokio::test]
    async fn http_url_renders_the_node_variables() {
        let (port, seen, _t) = http_server(204).await;
        let template = format!(
            "http://{{{{ ip }}}}:{port}/{{{{ node.vars.ready_path }}}}?host={{{{ hostname }}}}&mac={{{{ mac_hyphen }}}}&x={{{{ node.vars.missing }}}}"
        );
        let ok = prober(Duration::from_secs(5))
            .run(&[Check::Http(template)], LOCAL, &ctx())
            .await
            .expect("2xx");
        assert_eq!(
            ok.passed.first().map(|p| p.check.clone()),
            Some(format!(
                "http http://127.0.0.1:{port}/ready?host=db1&mac=52-54-00-aa-bb-01&x="
            ))
        );
        let lines = seen.lock().expect("lock").clone();
        assert_eq!(
            lines,
            ["GET /ready?host=db1&mac=52-54-00-aa-bb-01&x= HTTP/1.1"]
        );
    }

    #[tokio::test]
    async fn http_that_never_answers_is_bounded_by_the_timeout() {
        let (port, _t) = silent().await;
        let start = Instant::now();
        let err = prober(Duration::from_millis(500))
            .run(
                &[Check::Http(format!("http://{{{{ ip }}}}:{port}/"))],
                LOCAL,
                &ctx(),
            )
            .await
            .expect_err("silent");
        let took = start.elapsed();
        assert_eq!(
            err.to_string(),
            format!("http http://127.0.0.1:{port}/: no answer within 500ms")
        );
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn all_must_pass_and_the_first_failure_is_reported() {
        let (ssh_port, _t1) = greeter(b"SSH-2.0-x\r\n").await;
        let (tcp_port, _t2) = silent().await;
        let refused = refused_port().await;
        let p = prober(Duration::from_secs(5));
        let ok = p
            .run(&[Check::Ssh(ssh_port), Check::Tcp(tcp_port)], LOCAL, &ctx())
            .await
            .expect("both pass");
        assert_eq!(ok.passed.len(), 2);
        let err = p
            .run(
                &[
                    Check::Ssh(ssh_port),
                    Check::Tcp(refused),
                    Check::Tcp(tcp_port),
                ],
                LOCAL,
                &ctx(),
            )
            .await
            .expect_err("second fails");
        assert_eq!(
            err.to_string(),
            format!("tcp 127.0.0.1:{refused}: connection refused")
        );
        let none = p.run(&[], LOCAL, &ctx()).await.expect("vacuous");
        assert_eq!(none.to_string(), "no readiness checks");
    }

    #[tokio::test]
    async fn a_template_that_fails_to_render_is_a_failure_not_a_panic() {
        let err = prober(Duration::from_secs(1))
            .run(
                &[Check::Http("http://{{ ip | nosuchfilter }}/".into())],
                LOCAL,
                &ctx(),
            )
            .await
            .expect_err("bad template");
        assert!(
            err.to_string()
                .starts_with("http http://{{ ip | nosuchfilter }}/: template: "),
            "{err}"
        );
    }
}
