//! Operator-side webhooks (a group's `on_complete`, a profile's `power_cycle`): one JSON
//! POST, signed like relay events with the first `[[upstream]]` secret that loads.

use crate::config::Config;
use crate::relay::{HttpClient, Secret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deadline of one hook request (connect, send, answer).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest hook answer read (and discarded).
const MAX_HOOK_ANSWER: usize = 64 * 1024;

/// The key hooks are signed with: the first `[[upstream]]` whose `secret_file` loads
/// (hook receivers are usually the provider that receives the relay's events).
pub fn secret(cfg: &Config) -> Option<Secret> {
    cfg.upstream
        .iter()
        .filter_map(|u| u.secret_file.as_deref())
        .find_map(|p| Secret::load(p).ok())
}

/// A client for hooks, bounded by `HOOK_TIMEOUT`.
pub fn client() -> Result<HttpClient, String> {
    HttpClient::new(None, HOOK_TIMEOUT)
}

/// POSTs `body` as JSON to `url` with `X-Bootd-Timestamp` and, with a secret,
/// `X-Bootd-Signature`; `kind` goes into `X-Bootd-Hook`. Ok(status) for a 2xx answer,
/// else a one-line reason.
pub async fn post(
    client: &HttpClient,
    url: &str,
    secret: Option<&Secret>,
    kind: &str,
    body: &serde_json::Value,
) -> Result<u16, String> {
    let body = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("bootd/", env!("CARGO_PKG_VERSION")),
        )
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header("x-bootd-hook", kind);
    if let Some(secret) = secret {
        req = req.header(SIGNATURE_HEADER, secret.sign(ts, &body));
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
    match client.send(req, MAX_HOOK_ANSWER).await {
        Ok(a) if (200..300).contains(&a.status) => Ok(a.status),
        Ok(a) => Err(format!("HTTP {}", a.status)),
        Err(e) => Err(e),
    }
}
