//! `GET /api/v1/events`: the registry's phase changes as Server-Sent Events, one
//! `data: <NodeEvent JSON>` per change, optionally filtered by `mac=` or `group=`.

use super::response::{error_response, Body};
use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::NodeEvent;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{header, Response, StatusCode};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A comment line goes out this often so proxies and browsers keep an idle stream open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Most event streams open at once (each holds a registry subscription and a task).
pub const MAX_STREAMS: usize = 256;
/// Chunks buffered per stream before the writer waits for the client to read.
const CHUNK_BACKLOG: usize = 64;
/// Longest query string looked at.
const MAX_QUERY: usize = 512;
/// The reconnection delay (ms) told to EventSource clients.
const RETRY_MS: u32 = 2000;

/// Streams open right now, across both listeners.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Which events a client asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Filter {
    mac: Option<MacAddr>,
    group: Option<String>,
}

impl Filter {
    /// Parses `mac=...&group=...`; an unknown key or a bad MAC is an error.
    fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut f = Filter::default();
        let Some(q) = query.filter(|q| !q.is_empty()) else {
            return Ok(f);
        };
        if q.len() > MAX_QUERY {
            return Err(format!("query over {MAX_QUERY} bytes"));
        }
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(&raw.replace('+', " "))
                .decode_utf8()
                .map_err(|_| format!("{key}: value is not valid UTF-8"))?
                .into_owned();
            match key {
                "mac" => {
                    f.mac = Some(value.parse().map_err(|e| format!("mac: {e}"))?);
                }
                "group" if !value.is_empty() => f.group = Some(value),
                "group" => return Err("group: empty name".into()),
                other => {
                    return Err(format!(
                        "unknown query parameter {:?} (expected mac or group)",
                        other.chars().take(64).collect::<String>()
                    ))
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, e: &NodeEvent) -> bool {
        self.mac.is_none_or(|m| m == e.mac)
            && self
                .group
                .as_deref()
                .is_none_or(|g| e.group.as_deref() == Some(g))
    }
}

/// One SSE message for an event (JSON never holds a raw newline, so one `data:` line).
fn encode(e: &NodeEvent) -> Option<Bytes> {
    let json = serde_json::to_string(&bootd_api::Event::from(e)).ok()?;
    Some(Bytes::from(format!("data: {json}\n\n")))
}

/// The `lagged` message: this many events were dropped for a slow reader.
fn lagged(missed: u64) -> Bytes {
    let json = serde_json::to_string(&bootd_api::Lagged { missed })
        .unwrap_or_else(|_| format!("{{\"missed\":{missed}}}"));
    Bytes::from(format!("event: lagged\ndata: {json}\n\n"))
}

/// Holds one of the `MAX_STREAMS` places while a stream is open.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The response body: chunks written by the stream's task, ending when it stops.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// When a stream opened with a session must end: the session's end, or its expiry.
#[derive(Debug, Clone)]
pub struct Until {
    /// Cancelled at logout, when the session's token is revoked, or at eviction.
    pub ended: tokio_util::sync::CancellationToken,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

impl Until {
    /// Resolves when the session ends.
    async fn reached(self) {
        let left = self.expires_at.saturating_sub(super::auth::unix_now());
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
        tokio::select! {
            _ = self.ended.cancelled() => {}
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// `GET /api/v1/events[?mac=M][&group=G]`: a `text/event-stream` of phase changes.
/// A client that falls behind gets `event: lagged` (it should re-read the node list);
/// the stream ends at shutdown, and (read with a session cookie) when the session ends.
pub async fn stream(app: &Arc<App>, query: Option<&str>, until: Option<Until>) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(f) => f,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    let Some(slot) = Slot::take() else {
        tracing::warn!(limit = MAX_STREAMS, "event stream refused: too many open");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already"),
        );
    };
    // Subscribe before answering: nothing committed after the response starts is missed.
    let events = app.registry.subscribe();
    let (tx, rx) = mpsc::channel(CHUNK_BACKLOG);
    tokio::spawn(pump(events, tx, filter, app.shutdown.clone(), until, slot));
    let mut r = Response::new(SseBody { rx }.boxed());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    // nginx and friends must pass chunks through as they come.
    h.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    r
}

/// Moves matching events from the registry to the client until it leaves, its session
/// ends or bootd stops.
async fn pump(
    mut events: broadcast::Receiver<NodeEvent>,
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    shutdown: tokio_util::sync::CancellationToken,
    until: Option<Until>,
    _slot: Slot,
) {
    let session_over = async move {
        match until {
            Some(u) => u.reached().await,
            None => std::future::pending().await,
        }
    };
    let mut session_over = std::pin::pin!(session_over);
    let hello = Bytes::from(format!("retry: {RETRY_MS}\n: bootd events\n\n"));
    if tx.send(hello).await.is_err() {
        return;
    }
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let chunk = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut session_over => {
                tracing::debug!("event stream ended with its session");
                break;
            }
            _ = tx.closed() => break,
            _ = keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            r = events.recv() => match r {
                Ok(e) if filter.matches(&e) => match encode(&e) {
                    Some(b) => b,
                    None => continue,
                },
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event stream client fell behind");
                    lagged(missed)
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = tx.send(chunk) => if sent.is_err() { break },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::Phase;

    fn event(mac: &str, group: Option<&str>) -> NodeEvent {
        NodeEvent {
            mac: mac.parse().unwrap_or_else(|e| panic!("{e}")),
            from: Phase::Dhcp,
            to: Phase::IpxeBoot,
            progress: 20,
            message: "line one\nline two".into(),
            source: "http".into(),
            at: "2026-01-01T00:00:00Z".into(),
            seq: 3,
            hostname: None,
            group: group.map(str::to_string),
            provider_id: None,
        }
    }

    #[test]
    fn filters_parse_and_match() {
        let all = Filter::parse(None).unwrap_or_default();
        assert!(all.matches(&event("52:54:00:00:00:01", None)));
        let f = Filter::parse(Some("mac=52%3A54%3A00%3A00%3A00%3A01&group=pve"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(f.matches(&event("52:54:00:00:00:01", Some("pve"))));
        assert!(!f.matches(&event("52:54:00:00:00:01", Some("k8s"))));
        assert!(!f.matches(&event("52:54:00:00:00:02", Some("pve"))));
        assert!(!f.matches(&event("52:54:00:00:00:01", None)));
    }

    #[test]
    fn bad_queries_are_refused() {
        for q in ["mac=zz", "color=red", "group=", &"x".repeat(MAX_QUERY + 1)] {
            assert!(Filter::parse(Some(q)).is_err(), "{q}");
        }
    }

    #[test]
    fn one_event_is_one_data_line() {
        let b = encode(&event("52:54:00:00:00:01", None)).unwrap_or_default();
        let text = String::from_utf8_lossy(&b);
        assert!(text.starts_with("data: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(text.matches('\n').count(), 2, "{text}");
        assert!(text.contains(r#""to":"ipxe_boot""#), "{text}");
    }
}
