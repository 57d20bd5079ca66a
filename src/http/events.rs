//! `GET /api/v1/events`: committed phase changes as server-sent events (`data: <NodeEvent>`),
//! optionally only one MAC's or one group's, with keep-alive comments and lag notices.

use super::response::{error_response, Body};
use crate::app::App;
use crate::lifecycle::StreamSlot;
use crate::mac::MacAddr;
use crate::nodes::NodeEvent;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{header, Response, StatusCode};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Interval of the keep-alive comment (proxies and clients see the stream is alive).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Encoded events waiting for a slow reader before the stream's own lag shows.
const QUEUE: usize = 64;
/// Longest filter value looked at.
const MAX_FILTER: usize = 256;

/// Which events a stream carries.
#[derive(Debug, Default, PartialEq, Eq)]
struct Filter {
    mac: Option<MacAddr>,
    group: Option<String>,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut f = Filter::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8()
                .map_err(|_| format!("{k}: not valid UTF-8"))?
                .into_owned();
            if v.len() > MAX_FILTER {
                return Err(format!("{k}: longer than {MAX_FILTER} bytes"));
            }
            match k {
                "mac" => f.mac = Some(v.parse().map_err(|e| format!("mac: {e}"))?),
                "group" => f.group = Some(v),
                other => {
                    return Err(format!(
                        "unknown parameter {:?} (expected mac or group)",
                        other.chars().take(32).collect::<String>()
                    ))
                }
            }
        }
        Ok(f)
    }

    fn wants(&self, ev: &NodeEvent) -> bool {
        self.mac.is_none_or(|m| m == ev.mac)
            && self
                .group
                .as_deref()
                .is_none_or(|g| ev.group.as_deref() == Some(g))
    }
}

/// One event as an SSE message.
pub fn encode(ev: &NodeEvent) -> Bytes {
    let json = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("data: {json}\n\n"))
}

/// A response body fed by the stream's task.
struct EventBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// Opens a stream: subscribes before answering, so every change after the response
/// headers reached the client is in it.
pub fn stream(app: &Arc<App>, query: Option<&str>) -> Response<Body> {
    let filter = match Filter::parse(query) {
        Ok(f) => f,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e),
    };
    let Some(slot) = app.lifecycle.stream_slot() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event streams are open already",
                crate::lifecycle::MAX_EVENT_STREAMS
            ),
        );
    };
    let events = app.registry.subscribe();
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(pump(app.clone(), events, tx, filter, slot));
    let mut r = Response::new(EventBody(rx).boxed());
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    r
}

/// Copies matching events to one client until it leaves or bootd stops.
async fn pump(
    app: Arc<App>,
    mut events: tokio::sync::broadcast::Receiver<NodeEvent>,
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    _slot: StreamSlot,
) {
    if tx
        .send(Bytes::from_static(b": bootd events\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keep_alive.tick().await;
    loop {
        let chunk = tokio::select! {
            // Ending the body lets the connection finish within the shutdown drain.
            _ = app.shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            ev = events.recv() => match ev {
                Ok(ev) if filter.wants(&ev) => encode(&ev),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event stream client fell behind");
                    Bytes::from(format!("event: lagged\ndata: {{\"missed\":{n}}}\n\n"))
                }
                Err(RecvError::Closed) => return,
            },
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::Phase;

    fn ev(mac: u8, group: Option<&str>) -> NodeEvent {
        NodeEvent {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            from: Phase::Known,
            to: Phase::Dhcp,
            progress: 15,
            message: String::new(),
            source: "dhcp".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            seq: 1,
            hostname: None,
            group: group.map(str::to_string),
            provider_id: None,
        }
    }

    #[test]
    fn filters_by_mac_and_group() {
        let all = Filter::parse(None).expect("none");
        assert!(all.wants(&ev(1, None)));
        let one = Filter::parse(Some("mac=52-54-00-00-00-01")).expect("mac");
        assert!(one.wants(&ev(1, None)) && !one.wants(&ev(2, None)));
        let g = Filter::parse(Some("group=pve")).expect("group");
        assert!(g.wants(&ev(1, Some("pve"))) && !g.wants(&ev(1, None)));
        assert!(Filter::parse(Some("mac=zz")).is_err());
        assert!(Filter::parse(Some("colour=blue")).is_err());
        assert_eq!(
            Filter::parse(Some("mac=52%3A54%3A00%3A00%3A00%3A01"))
                .expect("encoded")
                .mac,
            Some(MacAddr([0x52, 0x54, 0, 0, 0, 1]))
        );
    }

    #[test]
    fn an_event_is_one_data_line() {
        let text = String::from_utf8(encode(&ev(1, None)).to_vec()).expect("utf8");
        assert!(
            text.starts_with("data: {\"mac\":\"52:54:00:00:00:01\""),
            "{text}"
        );
        assert!(text.ends_with("}\n\n") && text.matches('\n').count() == 2);
    }
}
