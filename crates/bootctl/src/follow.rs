//! The control socket's event stream, followed across daemon restarts (reconnects with
//! backoff), and `bootctl watch` on top of it.

use crate::client::{refused, Client, CtlError};
use bootd_api::{routes, Event, GroupList, Lagged, NodeList, NodeView};
use bootd_proto::mac::MacAddr;
use bootd_proto::sse::{SseMessage, SseParser};
use http_body_util::BodyExt;
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Duration;

/// First reconnect delay after the stream broke.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A stream silent this long (three keep-alives) is taken as dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(45);

/// What the follower hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// A phase change, typed and as bootd sent it (for `--json`).
    Event(Box<Event>, Value),
    /// The server dropped this many events for us (we were too slow).
    Lagged(u64),
    /// The stream was re-established after a break: events in between were not seen.
    Reconnected,
}

/// The event stream of a bootd, re-opened with exponential backoff whenever it breaks
/// (a daemon restart) until the caller stops asking.
pub struct Follower<'a> {
    client: &'a Client,
    path: String,
    body: Option<hyper::body::Incoming>,
    parser: SseParser,
    queue: VecDeque<Followed>,
    delay: Duration,
    connected_once: bool,
    broken: bool,
}

impl<'a> Follower<'a> {
    /// Follows `GET path` (`/api/v1/events?...`) on `client`'s socket.
    pub fn new(client: &'a Client, path: String) -> Follower<'a> {
        Follower {
            client,
            path,
            body: None,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            delay: RECONNECT_FIRST,
            connected_once: false,
            broken: false,
        }
    }

    /// Opens the stream; an error here (bootd down at start) is the caller's.
    pub async fn connect(&mut self) -> Result<(), CtlError> {
        let resp = self.client.open(Method::GET, &self.path, &()).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(refused(status, &bytes));
        }
        self.body = Some(resp.into_body());
        self.parser = SseParser::default();
        self.connected_once = true;
        Ok(())
    }

    fn lost(&mut self, why: &str) {
        self.body = None;
        if !self.broken {
            eprintln!("bootctl: event stream lost ({why}); reconnecting");
        }
        self.broken = true;
    }

    /// The next item; waits through reconnects. Errors only if the first connect fails
    /// or bootd refuses the stream.
    pub async fn next(&mut self) -> Result<Followed, CtlError> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(item);
            }
            let Some(body) = self.body.as_mut() else {
                if !self.connected_once {
                    self.connect().await?;
                    continue;
                }
                tokio::time::sleep(self.delay).await;
                match self.connect().await {
                    Ok(()) => {
                        self.delay = RECONNECT_FIRST;
                        self.broken = false;
                        eprintln!("bootctl: event stream back");
                        return Ok(Followed::Reconnected);
                    }
                    Err(e @ CtlError::Refused { .. }) => return Err(e),
                    Err(_) => {
                        self.delay = (self.delay * 2).min(RECONNECT_CAP);
                        continue;
                    }
                }
            };
            match tokio::time::timeout(STREAM_IDLE, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.queue
                            .extend(self.parser.push(&data).into_iter().filter_map(interpret));
                    }
                }
                Ok(Some(Err(e))) => self.lost(&e.to_string()),
                Ok(None) => self.lost("bootd closed it"),
                Err(_) => self.lost("no keep-alive"),
            }
        }
    }
}

/// A message of the stream; one that is not an event of this API is skipped.
fn interpret(msg: SseMessage) -> Option<Followed> {
    match msg.event.as_deref() {
        Some("lagged") => Some(Followed::Lagged(
            serde_json::from_str::<Lagged>(&msg.data)
                .map(|l| l.missed)
                .unwrap_or(0),
        )),
        _ => {
            let raw: Value = serde_json::from_str(&msg.data).ok()?;
            let event = Event::deserialize(&raw).ok()?;
            Some(Followed::Event(Box::new(event), raw))
        }
    }
}

/// A value or `-`.
fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// Width of the `from -> to` column: the longest pair of built-in phases
/// (`health_validation -> config_requested`); longer custom names push the line on.
const TRANSITION_WIDTH: usize = 37;

/// One event as `watch` prints it: fixed-width columns (time, MAC, host, transition,
/// progress), then the message and who caused it.
pub fn event_line(ev: &Event) -> String {
    let transition = format!("{} -> {}", ev.from, ev.to);
    let line = format!(
        "{}  {:<17}  {:<12}  {:<tw$}  {:>4}  {}  [{}]",
        ev.at.clock(),
        ev.mac.to_string(),
        or_dash(&ev.hostname),
        transition,
        format!("{}%", ev.progress),
        ev.message,
        ev.source,
        tw = TRANSITION_WIDTH,
    );
    line.trim_end().to_string()
}

/// Cuts a line to `width` characters with `…` (a terminal shows one event per row).
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width || width < 2 {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// The terminal's width when stdout is one (lines are cut to it), else None (a pipe or
/// file gets whole lines).
fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    term.size_checked().map(|(_, cols)| usize::from(cols))
}

/// What `watch` follows.
#[derive(Debug, Default, Clone)]
pub struct WatchFilter {
    pub mac: Option<String>,
    pub group: Option<String>,
    /// Wait for a MAC or group bootd does not know yet instead of refusing it.
    pub wait_for_new: bool,
}

impl WatchFilter {
    /// The stream path with the filter as query parameters.
    pub fn path(&self) -> String {
        routes::events(self.mac.as_deref(), self.group.as_deref())
    }

    fn wants(&self, node: &NodeView, mac: Option<MacAddr>) -> bool {
        let group_ok = self
            .group
            .as_deref()
            .is_none_or(|g| node.group.as_deref() == Some(g));
        let mac_ok = mac.is_none_or(|m| node.mac == m);
        group_ok && mac_ok
    }
}

/// The nodes' last seen sequence numbers; after a break, what changed meanwhile.
/// Returns how many nodes the filter matched.
async fn resync(
    client: &Client,
    filter: &WatchFilter,
    seen: &mut HashMap<MacAddr, u64>,
    print: bool,
    json_out: bool,
) -> Result<usize, CtlError> {
    let mac = match &filter.mac {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|e| CtlError::Usage(e.to_string()))?,
        ),
        None => None,
    };
    let nodes = client.get::<NodeList>(routes::NODES).await?;
    let raw_rows = nodes.raw.get("nodes").and_then(Value::as_array);
    let mut matched = 0;
    for (i, entry) in nodes.body.nodes.iter().enumerate() {
        let n = &entry.node;
        if !filter.wants(n, mac) {
            continue;
        }
        matched += 1;
        let changed = match seen.insert(n.mac, n.seq) {
            Some(before) => before < n.seq,
            None => n.seq > 0,
        };
        if print && changed {
            if json_out {
                let raw = raw_rows.and_then(|r| r.get(i)).cloned();
                println!("{}", json!({ "resumed": raw.unwrap_or(Value::Null) }));
            } else {
                println!(
                    "{}  {:<17}  {:<12}  now {}  {}%  {}  [resumed]",
                    n.updated_at.clock(),
                    n.mac.to_string(),
                    or_dash(&n.hostname),
                    n.phase,
                    n.progress,
                    n.message,
                );
            }
        }
    }
    Ok(matched)
}

/// Refuses to follow a MAC or group bootd does not know (a typo would wait forever),
/// unless `--wait-for-new` asks for exactly that.
async fn check_known(
    client: &Client,
    filter: &WatchFilter,
    matched: usize,
) -> Result<(), CtlError> {
    if matched > 0 {
        return Ok(());
    }
    if let Some(mac) = &filter.mac {
        if filter.wait_for_new {
            eprintln!("bootctl: {mac} is not known yet; waiting for it to appear");
            return Ok(());
        }
        return Err(CtlError::Unknown(format!(
            "unknown node {mac}: not in the config, not added and not discovered \
             (bootctl watch {mac} --wait-for-new waits for it)"
        )));
    }
    if let Some(group) = &filter.group {
        let groups = client.get::<GroupList>(routes::GROUPS).await?;
        if groups.body.groups.iter().any(|g| &g.name == group) {
            return Ok(());
        }
        if filter.wait_for_new {
            eprintln!("bootctl: group {group} is not known yet; waiting for its nodes");
            return Ok(());
        }
        let names: Vec<&str> = groups.body.groups.iter().map(|g| g.name.as_str()).collect();
        let known = if names.is_empty() {
            "no groups are defined".to_string()
        } else {
            format!("known groups: {}", names.join(", "))
        };
        return Err(CtlError::Unknown(format!(
            "unknown group {group} ({known}; --wait-for-new waits for it)"
        )));
    }
    Ok(())
}

/// `bootctl watch`: prints phase changes as they are committed, until interrupted;
/// survives daemon restarts (and says what changed while it was away).
pub async fn watch(client: &Client, filter: WatchFilter, json_out: bool) -> Result<(), CtlError> {
    let mut follower = Follower::new(client, filter.path());
    follower.connect().await?;
    let mut seen = HashMap::new();
    let matched = resync(client, &filter, &mut seen, false, json_out).await?;
    check_known(client, &filter, matched).await?;
    loop {
        match follower.next().await? {
            Followed::Event(ev, raw) => {
                seen.insert(ev.mac, ev.seq);
                if json_out {
                    println!("{raw}");
                } else {
                    let line = event_line(&ev);
                    match terminal_width() {
                        Some(w) => println!("{}", fit(&line, w)),
                        None => println!("{line}"),
                    }
                }
            }
            Followed::Lagged(n) => {
                eprintln!("bootctl: {n} events were dropped (output too slow)");
                resync(client, &filter, &mut seen, true, json_out).await?;
            }
            Followed::Reconnected => {
                resync(client, &filter, &mut seen, true, json_out).await?;
            }
        }
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_become_events_and_lag_notices() {
        let mut p = SseParser::default();
        let data = r#"{"mac":"52:54:00:aa:00:01","from":"known","to":"dhcp","progress":15,"message":"","source":"dhcp","at":"2026-01-01T10:00:00.000Z","seq":3,"hostname":null,"group":null,"provider_id":null}"#;
        let got: Vec<Followed> = p
            .push(format!(": hi\n\ndata: {data}\n\nevent: lagged\ndata: {{\"missed\":3}}\n\ndata: nonsense\n\n").as_bytes())
            .into_iter()
            .filter_map(interpret)
            .collect();
        assert_eq!(got.len(), 2);
        let Followed::Event(ev, _) = &got[0] else {
            panic!("not an event: {got:?}")
        };
        assert_eq!(ev.seq, 3);
        assert_eq!(
            event_line(ev),
            "10:00:00  52:54:00:aa:00:01  -             known -> dhcp                           15%    [dhcp]"
        );
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(got[1], Followed::Lagged(3));
    }
}
