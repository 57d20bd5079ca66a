//! bootctl's live views over the control socket's event stream: `watch`, the progress of
//! `reprovision --wait`, and the phase timeline of `node show`; reconnects with backoff.

use crate::ctl::{Client, CtlError};
use crate::lifecycle::deadline::{human, parse_time, starts_deployment};
use crate::nodes::Phase;
pub use bootd_proto::sse::{SseMessage, SseParser};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// First reconnect delay after the stream broke.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A stream silent this long (three keep-alives) is taken as dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(45);
/// Width of a progress bar in characters.
const BAR: usize = 24;
/// How often the progress display redraws its clocks.
const REDRAW: Duration = Duration::from_secs(1);

/// What the follower hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// A phase change (`NodeEvent` JSON).
    Event(Value),
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
        let resp = self.client.open("GET", &self.path, &Value::Null).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(CtlError::Refused { status, message });
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
                        for msg in self.parser.push(&data) {
                            self.queue.push_back(interpret(msg));
                        }
                    }
                }
                Ok(Some(Err(e))) => self.lost(&e.to_string()),
                Ok(None) => self.lost("bootd closed it"),
                Err(_) => self.lost("no keep-alive"),
            }
        }
    }
}

fn interpret(msg: SseMessage) -> Followed {
    match msg.event.as_deref() {
        Some("lagged") => Followed::Lagged(
            serde_json::from_str::<Value>(&msg.data)
                .ok()
                .and_then(|v| v.get("missed").and_then(Value::as_u64))
                .unwrap_or(0),
        ),
        _ => Followed::Event(serde_json::from_str(&msg.data).unwrap_or(Value::Null)),
    }
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// `HH:MM:SS` of an RFC 3339 time (the whole text if it is not one).
fn clock(at: &str) -> &str {
    at.get(11..19).unwrap_or(at)
}

/// One event as `watch` prints it.
pub fn event_line(ev: &Value) -> String {
    format!(
        "{}  {:<17}  {:<12}  {} -> {}  {}%  {}  [{}]",
        clock(&s(ev, "at")),
        s(ev, "mac"),
        s(ev, "hostname"),
        s(ev, "from"),
        s(ev, "to"),
        s(ev, "progress"),
        ev.get("message").and_then(Value::as_str).unwrap_or(""),
        s(ev, "source"),
    )
}

/// What `watch` follows.
#[derive(Debug, Default, Clone)]
pub struct WatchFilter {
    pub mac: Option<String>,
    pub group: Option<String>,
}

impl WatchFilter {
    /// The stream path with the filter as query parameters.
    pub fn path(&self) -> String {
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        match (&self.mac, &self.group) {
            (Some(m), _) => format!("/api/v1/events?mac={}", enc(m)),
            (None, Some(g)) => format!("/api/v1/events?group={}", enc(g)),
            (None, None) => "/api/v1/events".into(),
        }
    }

    fn wants(&self, node: &Value, mac: Option<&str>) -> bool {
        let group_ok = self
            .group
            .as_deref()
            .is_none_or(|g| node.get("group").and_then(Value::as_str) == Some(g));
        let mac_ok = match (&self.mac, mac) {
            (Some(_), Some(canonical)) => {
                node.get("mac").and_then(Value::as_str) == Some(canonical)
            }
            _ => true,
        };
        group_ok && mac_ok
    }
}

/// The nodes' last seen sequence numbers; after a break, what changed meanwhile.
async fn resync(
    client: &Client,
    filter: &WatchFilter,
    seen: &mut HashMap<String, u64>,
    print: bool,
    json_out: bool,
) -> Result<(), CtlError> {
    let mac = match &filter.mac {
        Some(m) => Some(
            m.parse::<crate::mac::MacAddr>()
                .map_err(|e| CtlError::Usage(e.to_string()))?
                .to_string(),
        ),
        None => None,
    };
    let nodes = client.get("/api/v1/nodes").await?;
    for n in nodes
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !filter.wants(n, mac.as_deref()) {
            continue;
        }
        let key = s(n, "mac");
        let seq = n.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let changed = match seen.insert(key.clone(), seq) {
            Some(before) => before < seq,
            None => seq > 0,
        };
        if print && changed {
            if json_out {
                println!("{}", json!({ "resumed": n }));
            } else {
                println!(
                    "{}  {:<17}  {:<12}  now {}  {}%  {}  [resumed]",
                    clock(&s(n, "updated_at")),
                    key,
                    s(n, "hostname"),
                    s(n, "phase"),
                    s(n, "progress"),
                    n.get("message").and_then(Value::as_str).unwrap_or(""),
                );
            }
        }
    }
    Ok(())
}

/// `bootctl watch`: prints phase changes as they are committed, until interrupted;
/// survives daemon restarts (and says what changed while it was away).
pub async fn watch(client: &Client, filter: WatchFilter, json_out: bool) -> Result<(), CtlError> {
    let mut follower = Follower::new(client, filter.path());
    follower.connect().await?;
    let mut seen = HashMap::new();
    resync(client, &filter, &mut seen, false, json_out).await?;
    loop {
        match follower.next().await? {
            Followed::Event(ev) => {
                if let (Some(mac), Some(seq)) = (
                    ev.get("mac").and_then(Value::as_str),
                    ev.get("seq").and_then(Value::as_u64),
                ) {
                    seen.insert(mac.to_string(), seq);
                }
                if json_out {
                    println!("{ev}");
                } else {
                    println!("{}", event_line(&ev));
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

/// How a waited-for node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Failed,
    TimedOut(String),
}

/// A node `reprovision --wait` follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub mac: String,
    pub hostname: String,
    pub phase: String,
    pub progress: u64,
    pub message: String,
    pub seq: u64,
    pub outcome: Option<Outcome>,
    /// Set by the local `--timeout`; sticks even if the node moves later.
    expired: bool,
}

impl Tracked {
    fn classify(&mut self) {
        if self.expired {
            return;
        }
        self.outcome = match self.phase.as_str() {
            "running" | "clustered" => Some(Outcome::Running),
            "failed" => Some(Outcome::Failed),
            "timeout" => Some(Outcome::TimedOut(self.message.clone())),
            _ => None,
        };
    }
}

/// The nodes of one `reprovision --wait` and the rules for when they are done.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub nodes: Vec<Tracked>,
    started: Instant,
    per_node: Option<Duration>,
}

impl Tracker {
    /// From the answer of `POST /api/v1/reprovision`.
    pub fn new(answer: &Value, per_node: Option<Duration>, started: Instant) -> Tracker {
        let nodes = answer
            .get("nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|n| {
                let mut t = Tracked {
                    mac: s(n, "mac"),
                    hostname: s(n, "hostname"),
                    phase: s(n, "phase"),
                    progress: n.get("progress").and_then(Value::as_u64).unwrap_or(0),
                    message: String::new(),
                    seq: n.get("seq").and_then(Value::as_u64).unwrap_or(0),
                    outcome: None,
                    expired: false,
                };
                t.classify();
                t
            })
            .collect();
        Tracker {
            nodes,
            started,
            per_node,
        }
    }

    /// Takes a node event or a node object (after a reconnect); true if it changed one.
    pub fn apply(&mut self, v: &Value) -> bool {
        let mac = s(v, "mac");
        let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let Some(t) = self.nodes.iter_mut().find(|t| t.mac == mac) else {
            return false;
        };
        if seq <= t.seq {
            return false;
        }
        t.seq = seq;
        t.phase = v
            .get("to")
            .or_else(|| v.get("phase"))
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        t.progress = v.get("progress").and_then(Value::as_u64).unwrap_or(0);
        t.message = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        t.classify();
        true
    }

    /// Applies the local per-node deadline; true if a node timed out now.
    pub fn expire(&mut self, now: Instant) -> bool {
        let Some(limit) = self.per_node else {
            return false;
        };
        if now.saturating_duration_since(self.started) < limit {
            return false;
        }
        let mut any = false;
        for t in &mut self.nodes {
            if t.outcome.is_none() {
                t.expired = true;
                t.outcome = Some(Outcome::TimedOut(format!(
                    "not running after {} (--timeout); last: {} {}",
                    human(limit),
                    t.phase,
                    t.message
                )));
                any = true;
            }
        }
        any
    }

    /// Gives up on every node still under way.
    pub fn give_up(&mut self, why: &str) {
        for t in &mut self.nodes {
            if t.outcome.is_none() {
                t.expired = true;
                t.outcome = Some(Outcome::TimedOut(format!("{why}; last: {}", t.phase)));
            }
        }
    }

    /// Every node has an outcome.
    pub fn finished(&self) -> bool {
        self.nodes.iter().all(|t| t.outcome.is_some())
    }

    /// Nodes that did not get to running.
    pub fn unfinished(&self) -> Vec<&Tracked> {
        self.nodes
            .iter()
            .filter(|t| t.outcome != Some(Outcome::Running))
            .collect()
    }
}

fn bar(progress: u64) -> String {
    let filled = (progress.min(100) as usize * BAR) / 100;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled))
}

fn outcome_text(o: &Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Running) => "ok",
        Some(Outcome::Failed) => "failed",
        Some(Outcome::TimedOut(_)) => "timed out",
        None => "",
    }
}

/// How `reprovision --wait` shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Bars redrawn in place (a terminal).
    Bars,
    /// A line per change (a pipe or a file).
    Lines,
    /// One JSON object per line.
    Json,
}

impl Display {
    /// Bars on a terminal, lines otherwise, JSON with `--json`.
    pub fn pick(json_out: bool) -> Display {
        if json_out {
            Display::Json
        } else if std::io::stdout().is_terminal() {
            Display::Bars
        } else {
            Display::Lines
        }
    }
}

/// Options of `reprovision --wait`.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Per-node limit counted from the reprovision.
    pub per_node: Option<Duration>,
    /// Limit of the whole wait.
    pub overall: Duration,
    pub display: Display,
}

struct Screen {
    display: Display,
    drawn: usize,
}

impl Screen {
    fn lines(tracker: &Tracker, now: Instant) -> Vec<String> {
        let elapsed = human(now.saturating_duration_since(tracker.started));
        let mut out: Vec<String> = tracker
            .nodes
            .iter()
            .map(|t| {
                format!(
                    "{:<17} {:<12} {} {:>3}% {:<18} {:<9} {}",
                    t.mac,
                    t.hostname,
                    bar(t.progress),
                    t.progress,
                    t.phase,
                    outcome_text(&t.outcome),
                    t.message.chars().take(40).collect::<String>()
                )
            })
            .collect();
        let n = tracker.nodes.len().max(1) as u64;
        let total: u64 = tracker
            .nodes
            .iter()
            .map(|t| t.progress.min(100))
            .sum::<u64>()
            / n;
        let ok = tracker
            .nodes
            .iter()
            .filter(|t| t.outcome == Some(Outcome::Running))
            .count();
        out.push(format!(
            "{:<30} {} {:>3}% {ok}/{} running, {elapsed} elapsed",
            "total",
            bar(total),
            total,
            tracker.nodes.len()
        ));
        out
    }

    fn redraw(&mut self, tracker: &Tracker, now: Instant) {
        if self.display != Display::Bars {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        let lines = Self::lines(tracker, now);
        for l in &lines {
            let _ = writeln!(out, "\x1b[2K{l}");
        }
        self.drawn = lines.len();
        let _ = out.flush();
    }

    fn changed(&mut self, tracker: &Tracker, mac: &str, raw: &Value, now: Instant) {
        match self.display {
            Display::Bars => self.redraw(tracker, now),
            Display::Json => println!("{raw}"),
            Display::Lines => {
                if let Some(t) = tracker.nodes.iter().find(|t| t.mac == mac) {
                    println!(
                        "[{:>7}] {:<17} {:<12} {:<18} {:>3}%  {}",
                        human(now.saturating_duration_since(tracker.started)),
                        t.mac,
                        t.hostname,
                        t.phase,
                        t.progress,
                        t.message
                    );
                }
            }
        }
    }
}

/// `bootctl reprovision`: asks bootd, prints what it did, and with `wait` follows the
/// nodes until all are running (Ok) or some failed or timed out (`Unfinished`).
pub async fn reprovision(
    client: &Client,
    body: &Value,
    wait: Option<WaitOptions>,
    json_out: bool,
) -> Result<(), CtlError> {
    let Some(opts) = wait else {
        let answer = client.send("POST", "/api/v1/reprovision", body).await?;
        print_answer(&answer, json_out);
        return Ok(());
    };
    // Subscribe first, so no change between the reprovision and the wait is missed.
    let mut follower = Follower::new(client, "/api/v1/events".into());
    follower.connect().await?;
    let started = Instant::now();
    let answer = client.send("POST", "/api/v1/reprovision", body).await?;
    print_answer(&answer, json_out);
    let mut tracker = Tracker::new(&answer, opts.per_node, started);
    let mut screen = Screen {
        display: opts.display,
        drawn: 0,
    };
    screen.redraw(&tracker, Instant::now());
    let overall = tokio::time::sleep_until(started + opts.overall);
    tokio::pin!(overall);
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !tracker.finished() {
        tokio::select! {
            _ = &mut overall => {
                tracker.give_up(&format!("--overall-timeout {} passed", human(opts.overall)));
                break;
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if tracker.expire(now) && opts.display == Display::Json {
                    for t in tracker.nodes.iter().filter(|t| t.expired) {
                        println!("{}", json!({"mac": t.mac, "outcome": "timed_out"}));
                    }
                }
                screen.redraw(&tracker, now);
            }
            item = follower.next() => match item? {
                Followed::Event(ev) => {
                    if tracker.apply(&ev) {
                        screen.changed(&tracker, &s(&ev, "mac"), &ev, Instant::now());
                    }
                }
                Followed::Lagged(_) | Followed::Reconnected => {
                    let nodes = client.get("/api/v1/nodes").await?;
                    for n in nodes.get("nodes").and_then(Value::as_array).into_iter().flatten() {
                        if tracker.apply(n) {
                            screen.changed(&tracker, &s(n, "mac"), n, Instant::now());
                        }
                    }
                }
            },
        }
    }
    screen.redraw(&tracker, Instant::now());
    finish(&tracker, json_out)
}

fn print_answer(answer: &Value, json_out: bool) {
    if json_out {
        println!("{answer}");
        return;
    }
    for n in answer
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let power = n.get("power_cycle").cloned().unwrap_or(Value::Null);
        let power = match power.get("status").and_then(Value::as_str) {
            Some("ok") => format!("power cycle ok (HTTP {})", s(&power, "http")),
            Some("failed") => format!("POWER CYCLE FAILED: {}", s(&power, "error")),
            _ => "no power_cycle hook: boot it yourself".into(),
        };
        println!(
            "reprovision {} ({}) with profile {}: {}",
            s(n, "mac"),
            s(n, "hostname"),
            s(n, "profile"),
            power
        );
    }
}

fn finish(tracker: &Tracker, json_out: bool) -> Result<(), CtlError> {
    let bad = tracker.unfinished();
    let elapsed = human(tracker.started.elapsed());
    if json_out {
        let summary = json!({
            "summary": {
                "nodes": tracker.nodes.len(),
                "running": tracker.nodes.len() - bad.len(),
                "elapsed": elapsed,
                "unfinished": bad.iter().map(|t| json!({
                    "mac": t.mac,
                    "phase": t.phase,
                    "outcome": outcome_text(&t.outcome),
                    "reason": match &t.outcome { Some(Outcome::TimedOut(r)) => r.clone(), _ => t.message.clone() },
                })).collect::<Vec<_>>(),
            }
        });
        println!("{summary}");
    } else if bad.is_empty() {
        println!("all {} nodes running after {elapsed}", tracker.nodes.len());
    } else {
        println!();
        println!(
            "{:<17}  {:<12}  {:<18}  {:<9}  REASON",
            "MAC", "HOSTNAME", "PHASE", "OUTCOME"
        );
        for t in &bad {
            let reason = match &t.outcome {
                Some(Outcome::TimedOut(r)) => r.clone(),
                _ => t.message.clone(),
            };
            println!(
                "{:<17}  {:<12}  {:<18}  {:<9}  {}",
                t.mac,
                t.hostname,
                t.phase,
                outcome_text(&t.outcome),
                reason
            );
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Unfinished(format!(
            "{} of {} nodes did not reach running",
            bad.len(),
            tracker.nodes.len()
        )))
    }
}

/// One stay in a phase on a node's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub at: String,
    /// The phase before this visit.
    pub from: String,
    pub phase: String,
    pub progress: String,
    /// Time until the next phase (until now for the current one).
    pub spent: Option<Duration>,
    pub current: bool,
    pub source: String,
    pub message: String,
}

/// A node's history (oldest first) as phase visits: repeated rows of one phase (progress
/// callbacks) are one visit, with the last progress and message.
pub fn timeline(history: &[Value], now: SystemTime) -> Vec<Visit> {
    let mut visits: Vec<Visit> = Vec::new();
    for row in history {
        let phase = s(row, "to");
        let progress = format!("{}%", s(row, "progress"));
        let message = row
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match visits.last_mut() {
            Some(v) if v.phase == phase => {
                v.progress = progress;
                v.message = message;
            }
            _ => visits.push(Visit {
                at: s(row, "at"),
                from: s(row, "from"),
                phase,
                progress,
                spent: None,
                current: false,
                source: s(row, "source"),
                message,
            }),
        }
    }
    let starts: Vec<Option<SystemTime>> = visits.iter().map(|v| parse_time(&v.at)).collect();
    let count = visits.len();
    for (i, v) in visits.iter_mut().enumerate() {
        let end = if i + 1 == count {
            v.current = true;
            Some(now)
        } else {
            starts.get(i + 1).copied().flatten()
        };
        v.spent = match (starts.get(i).copied().flatten(), end) {
            (Some(a), Some(b)) => Some(b.duration_since(a).unwrap_or_default()),
            _ => None,
        };
    }
    visits
}

/// The last completed deployment on a timeline: from the visit that began it to the
/// first `running` after it, with the time it took.
pub fn last_deployment(visits: &[Visit]) -> Option<(&Visit, &Visit, Duration)> {
    let end_idx = visits.iter().rposition(|v| v.phase == "running")?;
    let mut start_idx = None;
    for i in (0..end_idx).rev() {
        let visit = visits.get(i)?;
        let (from, to) = (
            Phase::from_stored(&visit.from),
            Phase::from_stored(&visit.phase),
        );
        if !to.in_progress() {
            break;
        }
        if starts_deployment(&from, &to) {
            start_idx = Some(i);
            break;
        }
    }
    let (start, end) = (visits.get(start_idx?)?, visits.get(end_idx)?);
    let took = parse_time(&end.at)?
        .duration_since(parse_time(&start.at)?)
        .unwrap_or_default();
    Some((start, end, took))
}

/// A duration for tables: `2m 5s`, `-` if unknown.
pub fn spent_text(v: &Visit) -> String {
    let text = |d: Duration| {
        // Boot steps take milliseconds; "0s" would hide them.
        if d < Duration::from_secs(1) {
            format!("{}ms", d.as_millis())
        } else {
            human(d)
        }
    };
    match v.spent {
        Some(d) if v.current => format!("{} (now)", text(d)),
        Some(d) => text(d),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_messages_split_across_chunks_and_comments_are_dropped() {
        let mut p = SseParser::default();
        assert!(p.push(b": bootd events\n\n").is_empty());
        assert!(p.push(b"data: {\"a\":").is_empty());
        let got = p.push(b"1}\n\nevent: lagged\ndata: {\"missed\":3}\n\n: keep-alive\n\n");
        assert_eq!(
            got,
            vec![
                SseMessage {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    event: Some("lagged".into()),
                    data: "{\"missed\":3}".into()
                },
            ]
        );
        assert_eq!(interpret(got[1].clone()), Followed::Lagged(3));
        let crlf = p.push(b"data: x\r\n\r\n");
        assert_eq!(crlf.len(), 1);
        assert_eq!(crlf[0].data, "x");
    }

    fn ev(mac: &str, seq: u64, to: &str, progress: u64) -> Value {
        json!({"mac": mac, "seq": seq, "to": to, "progress": progress, "message": "m"})
    }

    #[test]
    fn tracker_finishes_on_running_and_reports_the_rest() {
        let answer = json!({"nodes": [
            {"mac": "a", "seq": 5, "phase": "server_requested", "progress": 5},
            {"mac": "b", "seq": 2, "phase": "server_requested", "progress": 5},
        ]});
        let t0 = Instant::now();
        let mut t = Tracker::new(&answer, Some(Duration::from_secs(60)), t0);
        assert!(!t.apply(&ev("a", 5, "running", 100)), "old event ignored");
        assert!(t.apply(&ev("a", 6, "installing", 40)));
        assert!(t.apply(&ev("a", 9, "running", 100)));
        assert!(!t.finished());
        assert!(!t.expire(t0 + Duration::from_secs(59)));
        assert!(t.expire(t0 + Duration::from_secs(61)));
        assert!(t.finished());
        let bad = t.unfinished();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].mac, "b");
        // The local deadline sticks even if the node gets there later.
        assert!(t.apply(&ev("b", 3, "running", 100)));
        assert_eq!(t.unfinished().len(), 1);

        let mut t = Tracker::new(&answer, None, t0);
        t.apply(&ev("a", 6, "timeout", 15));
        t.apply(&ev("b", 3, "clustered", 100));
        assert!(t.finished());
        assert_eq!(
            t.unfinished()[0].outcome,
            Some(Outcome::TimedOut("m".into()))
        );
    }

    #[test]
    fn timeline_merges_repeats_and_times_each_phase() {
        let row = |at: &str, from: &str, to: &str, p: u64| json!({"at": at, "from": from, "to": to, "progress": p, "message": to, "source": "t"});
        let h = vec![
            row("2026-01-01T10:00:00.000Z", "known", "dhcp", 15),
            row("2026-01-01T10:00:10.000Z", "dhcp", "installing", 30),
            row("2026-01-01T10:01:00.000Z", "installing", "installing", 60),
            row("2026-01-01T10:05:10.000Z", "installing", "running", 100),
        ];
        let now = parse_time("2026-01-01T10:06:10.000Z").expect("time");
        let v = timeline(&h, now);
        let phases: Vec<(&str, String)> = v
            .iter()
            .map(|v| (v.phase.as_str(), spent_text(v)))
            .collect();
        assert_eq!(
            phases,
            [
                ("dhcp", "10s".to_string()),
                ("installing", "5m".to_string()),
                ("running", "1m (now)".to_string())
            ]
        );
        assert_eq!(v[1].progress, "60%");
        let (start, end, took) = last_deployment(&v).expect("deployment");
        assert_eq!(
            (start.phase.as_str(), end.phase.as_str()),
            ("dhcp", "running")
        );
        assert_eq!(took, Duration::from_secs(310));
    }
}
