//! One readiness probe against one address: a TCP connect, an SSH identification line,
//! an HTTP GET; each bounded by the caller's timeout and failing with a one-line reason.

use crate::outbound::HttpClient;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Longest identification line, CR LF included (RFC 4253 section 4.2).
const MAX_BANNER_LINE: usize = 255;
/// Most bytes read while looking for the banner: a server may send other lines first.
const MAX_BANNER_BYTES: usize = 8 * 1024;
/// Largest body read from an http readiness endpoint; only the status counts.
const MAX_HTTP_BODY: usize = 64 * 1024;
/// Longest piece of a peer's text quoted in a reason.
const MAX_QUOTED: usize = 80;

/// Why a check failed, as the history shows it after `kind address: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("connection refused")]
    Refused,
    #[error("no connection within {}", secs(*.0))]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Io(String),
    /// The port accepted but no `SSH-` line came in time; `got` is the first other
    /// line it sent, if any.
    #[error("no SSH banner within {}{}", secs(*.within), got.as_ref().map(|g| format!(", got {g:?}")).unwrap_or_default())]
    NoBanner {
        within: Duration,
        got: Option<String>,
    },
    #[error("closed the connection before an SSH banner")]
    ClosedBeforeBanner,
    #[error("not an SSH server: {0:?}")]
    NotSsh(String),
    /// An HTTP status other than 2xx.
    #[error("{0}")]
    Status(u16),
    #[error("no answer within {}", secs(*.0))]
    NoAnswer(Duration),
    #[error("{0}")]
    Http(String),
    #[error("invalid URL {0:?}")]
    BadUrl(String),
    #[error("template: {0}")]
    Template(String),
}

fn secs(d: Duration) -> String {
    bootd_proto::duration::format(d)
}

/// A peer's text cut to a length fit for one log line.
fn quoted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches(['\r', '\n']);
    text.chars().take(MAX_QUOTED).collect()
}

fn io_reason(e: &std::io::Error) -> Reason {
    match e.kind() {
        ErrorKind::ConnectionRefused => Reason::Refused,
        ErrorKind::ConnectionReset => Reason::Io("connection reset".into()),
        ErrorKind::HostUnreachable => Reason::Io("host unreachable".into()),
        ErrorKind::NetworkUnreachable => Reason::Io("network unreachable".into()),
        _ => Reason::Io(e.to_string()),
    }
}

/// Connects before `deadline`.
async fn connect(
    addr: SocketAddr,
    deadline: Instant,
    bound: Duration,
) -> Result<TcpStream, Reason> {
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(io_reason(&e)),
        Err(_) => Err(Reason::ConnectTimeout(bound)),
    }
}

/// `tcp = PORT`: the port accepts a connection within `bound`.
pub async fn tcp(addr: SocketAddr, bound: Duration) -> Result<(), Reason> {
    connect(addr, Instant::now() + bound, bound).await.map(drop)
}

/// `ssh = PORT`: the port accepts and sends a line starting `SSH-` within `bound`
/// (connect included); returns that line.
pub async fn ssh(addr: SocketAddr, bound: Duration) -> Result<String, Reason> {
    let deadline = Instant::now() + bound;
    let mut stream = connect(addr, deadline, bound).await?;
    let mut first_other = None;
    match timeout_at(deadline, read_banner(&mut stream, &mut first_other)).await {
        Ok(r) => r,
        Err(_) => Err(Reason::NoBanner {
            within: bound,
            got: first_other,
        }),
    }
}

/// Reads lines until one starts with `SSH-`; `first_other` keeps the first line that
/// did not, for the reason if the banner never comes.
async fn read_banner(
    stream: &mut TcpStream,
    first_other: &mut Option<String>,
) -> Result<String, Reason> {
    let mut buf = Vec::with_capacity(MAX_BANNER_LINE);
    let mut chunk = [0u8; 512];
    let mut total = 0usize;
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if line.starts_with(b"SSH-") {
                return Ok(quoted(&line));
            }
            if first_other.is_none() {
                *first_other = Some(quoted(&line));
            }
        }
        if buf.len() >= MAX_BANNER_LINE || total >= MAX_BANNER_BYTES {
            return Err(Reason::NotSsh(quoted(&buf)));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| io_reason(&e))?;
        if n == 0 {
            return Err(match first_other.take() {
                Some(line) => Reason::NotSsh(line),
                None => Reason::ClosedBeforeBanner,
            });
        }
        total += n;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// `http = "URL"` (already rendered): a `GET` answered with a 2xx within `bound`;
/// returns the status.
pub async fn http(client: &HttpClient, url: &str, bound: Duration) -> Result<u16, Reason> {
    let uri: hyper::Uri = url.parse().map_err(|_| Reason::BadUrl(url.to_string()))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(Reason::BadUrl(url.to_string()));
    }
    let req = Request::get(uri)
        .header(
            hyper::header::USER_AGENT,
            concat!("bootd-ready/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))
        .map_err(|_| Reason::BadUrl(url.to_string()))?;
    match tokio::time::timeout(bound, client.send(req, MAX_HTTP_BODY)).await {
        Err(_) => Err(Reason::NoAnswer(bound)),
        Ok(Ok(a)) if (200..300).contains(&a.status) => Ok(a.status),
        Ok(Ok(a)) => Err(Reason::Status(a.status)),
        // The client reports the innermost cause as text; a refused connect reads the
        // same as it does for the socket checks.
        Ok(Err(e))
            if e.to_string()
                .to_ascii_lowercase()
                .starts_with("connection refused") =>
        {
            Err(Reason::Refused)
        }
        Ok(Err(e)) => Err(Reason::Http(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn serve_once(bytes: &'static [u8], close: bool) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(bytes).await;
                if !close {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn banner_split_over_reads_and_lf_only() {
        let addr = serve_once(b"SSH-2.0-dropbear\n", false).await;
        assert_eq!(
            ssh(addr, Duration::from_secs(5)).await,
            Ok("SSH-2.0-dropbear".to_string())
        );
    }

    #[tokio::test]
    async fn closed_without_banner() {
        let addr = serve_once(b"", true).await;
        assert_eq!(
            ssh(addr, Duration::from_secs(5)).await,
            Err(Reason::ClosedBeforeBanner)
        );
        let addr = serve_once(b"HTTP/1.1 400 Bad Request\r\n\r\n", true).await;
        assert_eq!(
            ssh(addr, Duration::from_secs(5)).await,
            Err(Reason::NotSsh("HTTP/1.1 400 Bad Request".into()))
        );
    }

    #[tokio::test]
    async fn endless_line_is_bounded() {
        static LONG: [u8; 1024] = [b'x'; 1024];
        let addr = serve_once(&LONG, false).await;
        match ssh(addr, Duration::from_secs(5)).await {
            Err(Reason::NotSsh(text)) => assert_eq!(text.len(), MAX_QUOTED),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_urls_are_reasons() {
        let client = HttpClient::new(None, Duration::from_secs(2)).expect("client");
        for url in ["ftp://h/x", "http:///x", "not a url"] {
            assert_eq!(
                http(&client, url, Duration::from_secs(1)).await,
                Err(Reason::BadUrl(url.to_string())),
                "{url}"
            );
        }
    }
}
