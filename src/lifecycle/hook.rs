//! Operator-side webhooks (a group's `on_complete`, a profile's `power_cycle`): one JSON
//! POST, signed like relay events with the first `[[upstream]]` secret that loads.

use crate::config::Config;
use crate::outbound::{Call, HttpClient, OutboundError, Secret};
use bytes::Bytes;
use std::time::Duration;

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
pub fn client() -> Result<HttpClient, OutboundError> {
    HttpClient::new(None, HOOK_TIMEOUT)
}

/// POSTs `body` as JSON to `url` with `X-Bootd-Timestamp` and, with a secret,
/// `X-Bootd-Signature`; `kind` goes into `X-Bootd-Hook`. Ok(status) for a 2xx answer;
/// any other status is `OutboundError::Status` with the start of the answer.
pub async fn post(
    client: &HttpClient,
    url: &str,
    secret: Option<&Secret>,
    kind: &str,
    body: &serde_json::Value,
) -> Result<u16, OutboundError> {
    let body = serde_json::to_vec(body).map_err(|e| OutboundError::Request {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let call = Call::post_json(url, Bytes::from(body))
        .header("x-bootd-hook", kind)
        .signed(secret);
    Ok(client.call(call, MAX_HOOK_ANSWER).await?.success()?.status)
}
