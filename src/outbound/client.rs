//! The outbound HTTP(S) client of the relay, the hooks and the health monitor: hyper's
//! pooled client over rustls (webpki roots plus an optional CA file), every request
//! time-bounded and every body read bounded.

use super::call::Call;
use super::error::{excerpt, OutboundError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Longest TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Idle connections kept per host.
const POOL_PER_HOST: usize = 32;
/// Most certificates read from one CA file.
const MAX_CA_CERTS: usize = 1000;

/// A response as the callers need it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in whole seconds, when given that way.
    pub retry_after: Option<u64>,
    /// The body, up to the caller's limit (longer bodies are an error).
    pub body: Bytes,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer if its status is 2xx, else `OutboundError::Status` with the status,
    /// `Retry-After` and the start of the body.
    pub fn success(self) -> Result<Answer, OutboundError> {
        if self.is_success() {
            return Ok(self);
        }
        Err(OutboundError::Status {
            status: self.status,
            retry_after: self.retry_after,
            excerpt: excerpt(&self.body),
        })
    }
}

/// A pooled HTTP and HTTPS client with a per-request deadline.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// The trust roots: the webpki (Mozilla) set plus every certificate of `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, OutboundError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let bad = |reason: String| OutboundError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let iter =
            CertificateDer::pem_file_iter(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let mut added = 0usize;
        for cert in iter.take(MAX_CA_CERTS) {
            let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no PEM certificate".into()));
        }
    }
    Ok(roots)
}

impl HttpClient {
    /// A client trusting the webpki roots and `ca_file`, with `timeout` per request
    /// (connect, send and reading the answer together).
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<HttpClient, OutboundError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundError::Tls(e.to_string()))?
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_PER_HOST)
            .build(https);
        Ok(HttpClient { inner, timeout })
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Builds `call` (stamping and signing it now) and sends it; see `send`.
    pub async fn call(&self, call: Call<'_>, max_body: usize) -> Result<Answer, OutboundError> {
        self.send(call.into_request()?, max_body).await
    }

    /// Sends a request and reads at most `max_body` bytes of the answer, whatever its
    /// status; no answer (refused, reset, TLS, timeout, oversized body) is an error.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<Answer, OutboundError> {
        let work = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| OutboundError::Transport(describe(&e)))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| OutboundError::Body {
                    status,
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok(Answer {
                status,
                retry_after,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(OutboundError::Timeout(self.timeout)),
        }
    }
}

/// The innermost cause of an error, which is the one that says what happened
/// ("Connection refused (os error 111)", "invalid peer certificate: UnknownIssuer").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let inner = cause.to_string();
    if inner.is_empty() {
        e.to_string()
    } else {
        inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").expect("write");
        let err = roots(Some(&p)).expect_err("refused").to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = roots(Some(&dir.path().join("missing.pem")))
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with("ca_file ") && err.contains("cannot read"),
            "{err}"
        );
        assert!(roots(None).map(|r| r.len()).unwrap_or(0) > 100);
    }

    #[tokio::test]
    async fn refused_and_silent_peers_give_short_reasons() {
        let client = HttpClient::new(None, Duration::from_millis(300)).expect("client");
        // A port that was just free: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let req = Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        let err = client.send(req, 1024).await.expect_err("refused");
        assert!(
            matches!(&err, OutboundError::Transport(t) if t.contains("refused")),
            "{err}"
        );

        // A listener that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let req = Request::get(format!("http://{addr}/"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        let err = client.send(req, 1024).await.expect_err("timeout");
        assert_eq!(err.to_string(), "timed out after 0.3 s");
        hold.abort();
    }
}
