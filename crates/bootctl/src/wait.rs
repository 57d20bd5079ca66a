//! `bootctl reprovision` and its `--wait`: follows the nodes until they run, fail or
//! time out, with progress bars on a terminal and a line per change elsewhere.

use crate::client::{Client, CtlError};
use crate::follow::{Followed, Follower};
use crate::timeline::human;
use bootd_api::{
    routes, Event, NodeList, NodeView, Phase, PowerCycle, ReprovisionAnswer, ReprovisionRequest,
};
use bootd_proto::mac::MacAddr;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::time::Duration;
use tokio::time::Instant;

/// Width of a progress bar in characters.
const BAR: usize = 24;
/// How often the progress display redraws its clocks.
const REDRAW: Duration = Duration::from_secs(1);

/// How a waited-for node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Failed,
    TimedOut(String),
}

/// A node's state as an event or a node object tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub mac: MacAddr,
    pub seq: u64,
    pub phase: Phase,
    pub progress: u8,
    pub message: String,
}

impl From<&Event> for Update {
    fn from(e: &Event) -> Update {
        Update {
            mac: e.mac,
            seq: e.seq,
            phase: e.to.clone(),
            progress: e.progress,
            message: e.message.clone(),
        }
    }
}

impl From<&NodeView> for Update {
    fn from(n: &NodeView) -> Update {
        Update {
            mac: n.mac,
            seq: n.seq,
            phase: n.phase.clone(),
            progress: n.progress,
            message: n.message.clone(),
        }
    }
}

/// A node `reprovision --wait` follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub mac: MacAddr,
    pub hostname: String,
    pub phase: Phase,
    pub progress: u8,
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
        self.outcome = match self.phase {
            Phase::Running | Phase::Clustered => Some(Outcome::Running),
            Phase::Failed => Some(Outcome::Failed),
            Phase::Timeout => Some(Outcome::TimedOut(self.message.clone())),
            _ => None,
        };
    }

    fn reason(&self) -> String {
        match &self.outcome {
            Some(Outcome::TimedOut(r)) => r.clone(),
            _ => self.message.clone(),
        }
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
    pub fn new(answer: &ReprovisionAnswer, per_node: Option<Duration>, started: Instant) -> Self {
        let nodes = answer
            .nodes
            .iter()
            .map(|n| {
                let mut t = Tracked {
                    mac: n.mac,
                    hostname: n.hostname.clone().unwrap_or_else(|| "-".into()),
                    phase: n.phase.clone(),
                    progress: n.progress,
                    message: String::new(),
                    seq: n.seq,
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

    /// Takes a node's newer state; true if it changed one of ours.
    pub fn apply(&mut self, u: &Update) -> bool {
        let Some(t) = self.nodes.iter_mut().find(|t| t.mac == u.mac) else {
            return false;
        };
        if u.seq <= t.seq {
            return false;
        }
        t.seq = u.seq;
        t.phase = u.phase.clone();
        t.progress = u.progress;
        t.message = u.message.clone();
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

    /// Mean progress of all nodes.
    fn total(&self) -> u64 {
        let n = self.nodes.len().max(1) as u64;
        self.nodes
            .iter()
            .map(|t| u64::from(t.progress.min(100)))
            .sum::<u64>()
            / n
    }

    fn running(&self) -> usize {
        self.nodes
            .iter()
            .filter(|t| t.outcome == Some(Outcome::Running))
            .count()
    }
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
    /// Progress bars redrawn in place (a terminal).
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

/// The bars of a terminal: one per node and a total, on stdout.
struct Bars {
    nodes: Vec<ProgressBar>,
    total: ProgressBar,
}

impl Bars {
    fn new(tracker: &Tracker) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let template = format!("{{prefix}} [{{bar:{BAR}}}] {{pos:>3}}% {{msg}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("##-");
        let bar = |prefix: String| {
            let b = multi.add(ProgressBar::new(100).with_style(style.clone()));
            b.set_prefix(prefix);
            b
        };
        let nodes = tracker
            .nodes
            .iter()
            .map(|t| bar(format!("{:<17} {:<12}", t.mac.to_string(), t.hostname)))
            .collect();
        let total = bar(format!("{:<30}", "total"));
        Bars { nodes, total }
    }

    fn draw(&self, tracker: &Tracker, now: Instant) {
        for (t, b) in tracker.nodes.iter().zip(&self.nodes) {
            b.set_position(u64::from(t.progress.min(100)));
            b.set_message(format!(
                "{:<18} {:<9} {}",
                t.phase.to_string(),
                outcome_text(&t.outcome),
                t.message.chars().take(40).collect::<String>()
            ));
        }
        self.total.set_position(tracker.total());
        self.total.set_message(format!(
            "{}/{} running, {} elapsed",
            tracker.running(),
            tracker.nodes.len(),
            human(now.saturating_duration_since(tracker.started))
        ));
    }

    /// Leaves the last state on the screen.
    fn finish(&self) {
        for b in self.nodes.iter().chain(std::iter::once(&self.total)) {
            b.abandon();
        }
    }
}

struct Screen {
    display: Display,
    bars: Option<Bars>,
}

impl Screen {
    fn new(display: Display, tracker: &Tracker) -> Screen {
        let bars = (display == Display::Bars).then(|| Bars::new(tracker));
        Screen { display, bars }
    }

    fn redraw(&self, tracker: &Tracker, now: Instant) {
        if let Some(b) = &self.bars {
            b.draw(tracker, now);
        }
    }

    fn changed(&self, tracker: &Tracker, mac: MacAddr, raw: &Value, now: Instant) {
        match self.display {
            Display::Bars => self.redraw(tracker, now),
            Display::Json => println!("{raw}"),
            Display::Lines => {
                if let Some(t) = tracker.nodes.iter().find(|t| t.mac == mac) {
                    println!(
                        "[{:>7}] {:<17} {:<12} {:<18} {:>3}%  {}",
                        human(now.saturating_duration_since(tracker.started)),
                        t.mac.to_string(),
                        t.hostname,
                        t.phase.to_string(),
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
    body: &ReprovisionRequest,
    wait: Option<WaitOptions>,
    json_out: bool,
) -> Result<(), CtlError> {
    let Some(opts) = wait else {
        let answer = client
            .call::<ReprovisionAnswer>(Method::POST, routes::REPROVISION, body)
            .await?;
        print_answer(&answer.body, &answer.raw, json_out);
        return Ok(());
    };
    // Subscribe first, so no change between the reprovision and the wait is missed.
    let mut follower = Follower::new(client, routes::EVENTS.into());
    follower.connect().await?;
    let started = Instant::now();
    let answer = client
        .call::<ReprovisionAnswer>(Method::POST, routes::REPROVISION, body)
        .await?;
    print_answer(&answer.body, &answer.raw, json_out);
    let mut tracker = Tracker::new(&answer.body, opts.per_node, started);
    let screen = Screen::new(opts.display, &tracker);
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
                Followed::Event(ev, raw) => {
                    if tracker.apply(&Update::from(ev.as_ref())) {
                        screen.changed(&tracker, ev.mac, &raw, Instant::now());
                    }
                }
                Followed::Lagged(_) | Followed::Reconnected => {
                    let nodes = client.get::<NodeList>(routes::NODES).await?;
                    let raw_rows = nodes.raw.get("nodes").and_then(Value::as_array);
                    for (i, e) in nodes.body.nodes.iter().enumerate() {
                        if tracker.apply(&Update::from(&e.node)) {
                            let raw = raw_rows.and_then(|r| r.get(i)).cloned().unwrap_or(Value::Null);
                            screen.changed(&tracker, e.node.mac, &raw, Instant::now());
                        }
                    }
                }
            },
        }
    }
    screen.redraw(&tracker, Instant::now());
    if let Some(b) = &screen.bars {
        b.finish();
    }
    finish(&tracker, json_out)
}

fn print_answer(answer: &ReprovisionAnswer, raw: &Value, json_out: bool) {
    if json_out {
        println!("{raw}");
        return;
    }
    for n in &answer.nodes {
        let power = match &n.power_cycle {
            PowerCycle::Ok { http } => format!("power cycle ok (HTTP {http})"),
            PowerCycle::Failed { error } => format!("POWER CYCLE FAILED: {error}"),
            PowerCycle::NotConfigured => "no power_cycle hook: boot it yourself".into(),
        };
        println!(
            "reprovision {} ({}) with profile {}: {}",
            n.mac,
            n.hostname.as_deref().unwrap_or("-"),
            n.profile,
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
                    "reason": t.reason(),
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
            println!(
                "{:<17}  {:<12}  {:<18}  {:<9}  {}",
                t.mac.to_string(),
                t.hostname,
                t.phase.to_string(),
                outcome_text(&t.outcome),
                t.reason()
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

#[cfg(test)]
mod tests {
    use super::*;
    use bootd_api::Reprovisioned;

    fn mac(last: u8) -> MacAddr {
        format!("52:54:00:00:00:{last:02x}").parse().unwrap()
    }

    fn up(m: u8, seq: u64, to: Phase, progress: u8) -> Update {
        Update {
            mac: mac(m),
            seq,
            phase: to,
            progress,
            message: "m".into(),
        }
    }

    #[test]
    fn tracker_finishes_on_running_and_reports_the_rest() {
        let node = |m: u8, seq: u64| Reprovisioned {
            mac: mac(m),
            hostname: None,
            profile: "p".into(),
            token_generation: 1,
            phase: Phase::ServerRequested,
            progress: 5,
            seq,
            power_cycle: PowerCycle::NotConfigured,
        };
        let answer = ReprovisionAnswer {
            operator: "operator:0".into(),
            nodes: vec![node(1, 5), node(2, 2)],
        };
        let t0 = Instant::now();
        let mut t = Tracker::new(&answer, Some(Duration::from_secs(60)), t0);
        assert!(
            !t.apply(&up(1, 5, Phase::Running, 100)),
            "old event ignored"
        );
        assert!(t.apply(&up(1, 6, Phase::Installing, 40)));
        assert!(t.apply(&up(1, 9, Phase::Running, 100)));
        assert!(!t.finished());
        assert!(!t.expire(t0 + Duration::from_secs(59)));
        assert!(t.expire(t0 + Duration::from_secs(61)));
        assert!(t.finished());
        let bad = t.unfinished();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].mac, mac(2));
        // The local deadline sticks even if the node gets there later.
        assert!(t.apply(&up(2, 3, Phase::Running, 100)));
        assert_eq!(t.unfinished().len(), 1);

        let mut t = Tracker::new(&answer, None, t0);
        t.apply(&up(1, 6, Phase::Timeout, 15));
        t.apply(&up(2, 3, Phase::Clustered, 100));
        assert!(t.finished());
        assert_eq!(t.total(), 57);
        assert_eq!(
            t.unfinished()[0].outcome,
            Some(Outcome::TimedOut("m".into()))
        );
    }
}
