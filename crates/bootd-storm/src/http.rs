//! A machine's HTTP/1.1 client: one keep-alive connection from its leased address,
//! reopened when the server closes it; bodies are counted, not kept (assets), or read
//! whole (the boot script).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// Largest boot script we read.
const MAX_SCRIPT: usize = 1 << 20;

/// How a request failed.
#[derive(Debug)]
pub enum HttpFailure {
    /// The server answered with a status other than 2xx.
    Status(StatusCode),
    /// Connect, send or read failed, or the deadline passed.
    Io(String),
    /// The URL is not `http://host:port/...`.
    BadUrl(String),
}

/// One machine's connection to one server.
pub struct Conn {
    local: Option<Ipv4Addr>,
    timeout: Duration,
    target: Option<SocketAddr>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What a URL names: the server address and the path with query.
fn split(url: &str) -> Result<(SocketAddr, String, String), HttpFailure> {
    let uri: Uri = url
        .parse()
        .map_err(|_| HttpFailure::BadUrl(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(HttpFailure::BadUrl(url.to_string()));
    }
    let host = uri
        .host()
        .ok_or_else(|| HttpFailure::BadUrl(url.to_string()))?;
    let ip: Ipv4Addr = host
        .parse()
        .map_err(|_| HttpFailure::BadUrl(format!("{url}: host is not an IPv4 address")))?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    Ok((
        SocketAddr::from(SocketAddrV4::new(ip, port)),
        path,
        authority,
    ))
}

fn io<E: std::fmt::Display>(e: E) -> HttpFailure {
    HttpFailure::Io(e.to_string())
}

impl Conn {
    /// A client that binds its connections to `local` (the leased address) when given.
    pub fn new(local: Option<Ipv4Addr>, timeout: Duration) -> Conn {
        Conn {
            local,
            timeout,
            target: None,
            sender: None,
        }
    }

    async fn connect(&mut self, to: SocketAddr) -> Result<(), HttpFailure> {
        let sock = TcpSocket::new_v4().map_err(io)?;
        if let Some(ip) = self.local {
            sock.bind(SocketAddr::from(SocketAddrV4::new(ip, 0)))
                .map_err(io)?;
        }
        let stream = sock.connect(to).await.map_err(io)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io)?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or we drop the sender.
            let _ = conn.await;
        });
        self.sender = Some(sender);
        self.target = Some(to);
        Ok(())
    }

    /// Sends one request; answers the status-checked response body as a stream consumer.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, HttpFailure> {
        let (to, path, authority) = split(url)?;
        let reusable =
            self.target == Some(to) && self.sender.as_ref().is_some_and(|s| !s.is_closed());
        if !reusable {
            self.sender = None;
            self.connect(to).await?;
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "iPXE/1.21.1 (bootd-storm)");
        if let Some(t) = token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(io)?;
        let Some(sender) = self.sender.as_mut() else {
            return Err(HttpFailure::Io("no connection".into()));
        };
        let result = async {
            sender.ready().await?;
            sender.send_request(req).await
        }
        .await;
        match result {
            Ok(resp) if resp.status().is_success() => Ok(resp),
            Ok(resp) => {
                let status = resp.status();
                // Drain so the connection can be reused.
                let _ = resp.into_body().collect().await;
                Err(HttpFailure::Status(status))
            }
            Err(e) => {
                self.sender = None;
                Err(io(e))
            }
        }
    }

    /// GET, reading the whole body (bounded).
    pub async fn get_text(&mut self, url: &str) -> Result<String, HttpFailure> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            let resp = self.send(Method::GET, url, None, None).await?;
            let body = http_body_util::Limited::new(resp.into_body(), MAX_SCRIPT)
                .collect()
                .await
                .map_err(io)?
                .to_bytes();
            Ok(String::from_utf8_lossy(&body).into_owned())
        })
        .await
        .unwrap_or_else(|_| Err(HttpFailure::Io(format!("{url}: no answer in time"))))
    }

    /// GET, counting the body's bytes without keeping them.
    pub async fn get_count(&mut self, url: &str) -> Result<u64, HttpFailure> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            let resp = self.send(Method::GET, url, None, None).await?;
            let expected = resp
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(io)?;
                if let Some(d) = frame.data_ref() {
                    n += d.len() as u64;
                }
            }
            match expected {
                Some(e) if e != n => Err(HttpFailure::Io(format!(
                    "{url}: {n} bytes of {e} announced"
                ))),
                _ => Ok(n),
            }
        })
        .await
        .unwrap_or_else(|_| Err(HttpFailure::Io(format!("{url}: not complete in time"))))
    }

    /// POST a JSON body with a bearer token; the answer is read and dropped.
    pub async fn post(&mut self, url: &str, token: &str, body: Bytes) -> Result<(), HttpFailure> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            let resp = self
                .send(Method::POST, url, Some(token), Some(body))
                .await?;
            resp.into_body().collect().await.map_err(io)?;
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err(HttpFailure::Io(format!("{url}: no answer in time"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        let (to, path, auth) = split("http://10.90.0.1:8080/boot/02%3A00.ipxe?x=1").expect("url");
        assert_eq!(to, "10.90.0.1:8080".parse().expect("addr"));
        assert_eq!(path, "/boot/02%3A00.ipxe?x=1");
        assert_eq!(auth, "10.90.0.1:8080");
        assert!(split("https://10.0.0.1/x").is_err());
        assert!(split("http://example.net/x").is_err());
    }
}
