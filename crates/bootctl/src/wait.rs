//! `bootctl reprovision` and its `--wait`: a status table, then the nodes followed until
//! they reach their goal (`clustered` in a group with `on_complete`, else `running`), fail
//! or time out, with progress bars on a terminal and lines (per change, per stage, and a
//! summary every `--report-every`) elsewhere.

use crate::client::{Client, CtlError};
use crate::follow::{Followed, Follower};
use crate::output::{or_dash, table_text};
use crate::stages::{self, GroupProgress};
use crate::timeline::human;
use bootd_api::{
    routes, Event, GroupList, NodeList, NodeView, Phase, PowerCycle, ReprovisionAnswer,
    ReprovisionRequest,
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
/// Per-node limit when neither `--timeout` nor the profile sets one.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(45 * 60);
/// Time beyond a profile's `timeout` before the local limit fires: bootd enforces the
/// profile's deadline itself (with the phase the node was stuck in), so it should speak first.
pub const PROFILE_GRACE: Duration = Duration::from_secs(15);
/// How often `--group --wait` reads the group's progress.
const GROUP_POLL: Duration = Duration::from_secs(2);
/// Longest pause between group reads after errors (doubling from `GROUP_POLL`).
const GROUP_POLL_MAX: Duration = Duration::from_secs(30);

/// How a waited-for node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reached its goal (`running`, or `clustered` when its group has `on_complete`).
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
    /// The phase that counts as done: `clustered` when the node's group has a hook.
    pub goal: Phase,
    /// This node's limit, counted from the reprovision.
    pub limit: Duration,
    /// Set by the local `--timeout`; sticks even if the node moves later.
    expired: bool,
}

impl Tracked {
    fn classify(&mut self) {
        if self.expired {
            return;
        }
        let done = match self.goal {
            Phase::Clustered => self.phase == Phase::Clustered,
            _ => matches!(self.phase, Phase::Running | Phase::Clustered),
        };
        self.outcome = match self.phase {
            _ if done => Some(Outcome::Running),
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

/// What decides each node's goal and limit.
#[derive(Debug, Clone, Default)]
pub struct Goals {
    /// `--timeout`, which wins over the profile's.
    pub per_node: Option<Duration>,
    /// Nodes whose group has an `on_complete` hook (they must get to `clustered`).
    pub clustered: Vec<MacAddr>,
}

impl Goals {
    /// A node's limit: `--timeout`, else its profile's `timeout` (plus a grace), else 45
    /// minutes.
    fn limit(&self, profile_timeout: Option<u64>) -> Duration {
        self.per_node
            .or(profile_timeout
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s) + PROFILE_GRACE))
            .unwrap_or(DEFAULT_NODE_TIMEOUT)
    }
}

/// The nodes of one `reprovision --wait` and the rules for when they are done.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub nodes: Vec<Tracked>,
    started: Instant,
}

impl Tracker {
    /// From the answer of `POST /api/v1/reprovision`.
    pub fn new(answer: &ReprovisionAnswer, goals: &Goals, started: Instant) -> Self {
        let nodes = answer
            .nodes
            .iter()
            .map(|n| {
                let mut t = Tracked {
                    goal: if goals.clustered.contains(&n.mac) {
                        Phase::Clustered
                    } else {
                        Phase::Running
                    },
                    limit: goals.limit(n.timeout_secs),
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
        Tracker { nodes, started }
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

    /// Applies each node's deadline; true if a node timed out now.
    pub fn expire(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.started);
        let mut any = false;
        for t in &mut self.nodes {
            if t.outcome.is_none() && elapsed >= t.limit {
                t.expired = true;
                t.outcome = Some(Outcome::TimedOut(format!(
                    "not {} after {} (--timeout); last: {} {}",
                    t.goal,
                    human(t.limit),
                    t.phase,
                    t.message
                )));
                any = true;
            }
        }
        any
    }

    /// The group's `on_complete` gave up: nodes waiting to be clustered will not be.
    pub fn hook_failed(&mut self, reason: &str) {
        for t in &mut self.nodes {
            if t.outcome.is_none() && t.goal == Phase::Clustered && t.phase == Phase::Running {
                t.expired = true;
                t.outcome = Some(Outcome::Failed);
                t.message = reason.to_string();
            }
        }
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

    /// Nodes that did not reach their goal.
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

    /// `[12:00:05] 3 nodes: 1 running, 2 installing (62%) — 4m elapsed`.
    pub fn summary(&self, wall: std::time::SystemTime, now: Instant) -> String {
        let rows: Vec<(Phase, u8)> = self
            .nodes
            .iter()
            .map(|t| (t.phase.clone(), t.progress))
            .collect();
        format!(
            "[{}] {} — {} elapsed",
            stages::clock(wall),
            stages::phase_counts(&rows),
            human(now.saturating_duration_since(self.started))
        )
    }

    /// What the nodes end at: `clustered` if every one must, else `running`.
    fn goal_word(&self) -> &'static str {
        if !self.nodes.is_empty() && self.nodes.iter().all(|t| t.goal == Phase::Clustered) {
            "clustered"
        } else {
            "running"
        }
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
    /// `--timeout`: per-node limit counted from the reprovision (else the profile's, else
    /// 45 minutes).
    pub per_node: Option<Duration>,
    /// Limit of the whole wait.
    pub overall: Duration,
    /// How often a summary line is printed into a pipe.
    pub report_every: Duration,
    pub display: Display,
}

/// The group `--group G --wait` follows: its last two-stage progress and state.
struct GroupWatch {
    name: String,
    shown: Option<GroupProgress>,
    /// The daemon's `progress` of the group (newer daemons), from the last read.
    reported: Option<u8>,
    state: String,
    next_read: Instant,
    pause: Duration,
}

impl GroupWatch {
    fn new(name: String, now: Instant) -> GroupWatch {
        GroupWatch {
            name,
            shown: None,
            reported: None,
            state: String::new(),
            next_read: now,
            pause: GROUP_POLL,
        }
    }

    /// The group's progress now: the members' as followed, the daemon's once they are up.
    fn progress(&self, tracker: &Tracker) -> GroupProgress {
        let rows: Vec<(Phase, u8)> = tracker
            .nodes
            .iter()
            .map(|t| (t.phase.clone(), t.progress))
            .collect();
        stages::group_progress(&rows, self.reported)
    }

    /// Reads the group from bootd when due; on errors waits longer each time (to 30 s).
    async fn read(&mut self, client: &Client, tracker: &mut Tracker, now: Instant) {
        if now < self.next_read {
            return;
        }
        match client.get::<GroupList>(routes::GROUPS).await {
            Ok(list) => {
                self.pause = GROUP_POLL;
                if let Some(g) = list.body.groups.iter().find(|g| g.name == self.name) {
                    self.reported = g.progress;
                    self.state = g.state.to_string();
                    if g.state == bootd_api::GroupState::HookFailed {
                        tracker.hook_failed(&g.reason);
                    }
                }
            }
            Err(_) => self.pause = (self.pause * 2).min(GROUP_POLL_MAX),
        }
        self.next_read = now + self.pause;
    }
}

/// The bars of a terminal: one per node, a total, and the group's two stages, on stdout.
struct Bars {
    nodes: Vec<ProgressBar>,
    total: ProgressBar,
    group: Option<ProgressBar>,
}

impl Bars {
    fn new(tracker: &Tracker, group: Option<&str>) -> Bars {
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
        let group = group.map(|g| bar(format!("{:<30}", format!("group {g}"))));
        Bars {
            nodes,
            total,
            group,
        }
    }

    fn draw(&self, tracker: &Tracker, group: Option<&GroupWatch>, now: Instant) {
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
            "{}/{} {}, {} elapsed",
            tracker.running(),
            tracker.nodes.len(),
            tracker.goal_word(),
            human(now.saturating_duration_since(tracker.started))
        ));
        if let (Some(bar), Some(g)) = (&self.group, group) {
            let p = g.progress(tracker);
            bar.set_position(u64::from(p.percent));
            bar.set_message(stage_text(p, &g.state));
        }
    }

    /// Leaves the last state on the screen.
    fn finish(&self) {
        for b in self
            .nodes
            .iter()
            .chain(std::iter::once(&self.total))
            .chain(self.group.iter())
        {
            b.abandon();
        }
    }
}

/// `cluster formation 0–70 %` … as a bar's message or a line's tail.
fn stage_text(p: GroupProgress, state: &str) -> String {
    let range = match p.stage {
        stages::Stage::Deployment => "0-70%",
        stages::Stage::ClusterFormation => "70-100%",
    };
    if state.is_empty() {
        format!("{} ({range})", p.stage.label())
    } else {
        format!("{} ({range}), group {state}", p.stage.label())
    }
}

struct Screen {
    display: Display,
    bars: Option<Bars>,
}

impl Screen {
    fn new(display: Display, tracker: &Tracker, group: Option<&str>) -> Screen {
        let bars = (display == Display::Bars).then(|| Bars::new(tracker, group));
        Screen { display, bars }
    }

    fn redraw(&self, tracker: &Tracker, group: Option<&GroupWatch>, now: Instant) {
        if let Some(b) = &self.bars {
            b.draw(tracker, group, now);
        }
    }

    fn changed(&self, tracker: &Tracker, mac: MacAddr, raw: &Value, now: Instant) {
        match self.display {
            Display::Bars => {}
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

    /// A line (or JSON object) when the group's two-stage progress moved.
    fn group_moved(&self, tracker: &Tracker, g: &mut GroupWatch, now: Instant) {
        let p = g.progress(tracker);
        if g.shown == Some(p) {
            return;
        }
        g.shown = Some(p);
        match self.display {
            Display::Bars => {}
            Display::Json => println!(
                "{}",
                json!({"group": g.name, "progress": p.percent, "stage": p.stage.label(), "state": g.state})
            ),
            Display::Lines => println!(
                "[{:>7}] group {} {:>3}%  {}",
                human(now.saturating_duration_since(tracker.started)),
                g.name,
                p.percent,
                stage_text(p, &g.state)
            ),
        }
    }
}

/// The nodes a request names, as bootd lists them now (MACs bootd does not know are left
/// to bootd to refuse).
fn selected<'a>(nodes: &'a NodeList, body: &ReprovisionRequest) -> Vec<&'a NodeView> {
    let macs: Vec<MacAddr> = body.macs.iter().filter_map(|m| m.parse().ok()).collect();
    nodes
        .nodes
        .iter()
        .map(|e| &e.node)
        .filter(|n| {
            body.all || macs.contains(&n.mac) || (body.group.is_some() && n.group == body.group)
        })
        .collect()
}

/// The table printed before anything is triggered: what is about to be reinstalled
/// (indented, so a row never reads like a row of the final table of failures).
fn status_table(nodes: &[&NodeView]) {
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    println!("reprovisioning {} {noun}:", nodes.len());
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.mac.to_string(),
                or_dash(&n.hostname),
                or_dash(&n.group),
                n.phase.to_string(),
            ]
        })
        .collect();
    for line in table_text(&["NODE", "HOSTNAME", "GROUP", "PHASE"], &rows).lines() {
        println!("  {line}");
    }
}

/// Which nodes must end `clustered`: those whose group has an `on_complete` hook.
fn goals(nodes: &[&NodeView], groups: &GroupList, per_node: Option<Duration>) -> Goals {
    let hooked: Vec<&str> = groups
        .groups
        .iter()
        .filter(|g| g.on_complete.is_some())
        .map(|g| g.name.as_str())
        .collect();
    Goals {
        per_node,
        clustered: nodes
            .iter()
            .filter(|n| n.group.as_deref().is_some_and(|g| hooked.contains(&g)))
            .map(|n| n.mac)
            .collect(),
    }
}

/// `bootctl reprovision`: prints the nodes it is about to reinstall, asks bootd, prints
/// what it did, and with `wait` follows the nodes until all reached their goal (Ok) or
/// some failed or timed out (`Unfinished`).
pub async fn reprovision(
    client: &Client,
    body: &ReprovisionRequest,
    wait: Option<WaitOptions>,
    json_out: bool,
) -> Result<(), CtlError> {
    let before = client.get::<NodeList>(routes::NODES).await?;
    let chosen = selected(&before.body, body);
    if !json_out {
        status_table(&chosen);
    }
    let Some(opts) = wait else {
        let answer = client
            .call::<ReprovisionAnswer>(Method::POST, routes::REPROVISION, body)
            .await?;
        print_answer(&answer.body, &answer.raw, json_out);
        return Ok(());
    };
    let groups = client.get::<GroupList>(routes::GROUPS).await?;
    let goals = goals(&chosen, &groups.body, opts.per_node);
    // Subscribe first, so no change between the reprovision and the wait is missed.
    let mut follower = Follower::new(client, routes::EVENTS.into());
    follower.connect().await?;
    let started = Instant::now();
    let answer = client
        .call::<ReprovisionAnswer>(Method::POST, routes::REPROVISION, body)
        .await?;
    print_answer(&answer.body, &answer.raw, json_out);
    let mut tracker = Tracker::new(&answer.body, &goals, started);
    let mut group = body.group.clone().map(|g| GroupWatch::new(g, started));
    let screen = Screen::new(opts.display, &tracker, body.group.as_deref());
    screen.redraw(&tracker, group.as_ref(), Instant::now());
    let overall = tokio::time::sleep_until(started + opts.overall);
    tokio::pin!(overall);
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval_at(started + opts.report_every, opts.report_every);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !tracker.finished() {
        tokio::select! {
            _ = &mut overall => {
                tracker.give_up(&format!("--overall-timeout {} passed", human(opts.overall)));
                break;
            }
            _ = report.tick() => {
                if opts.display == Display::Lines {
                    println!("{}", tracker.summary(std::time::SystemTime::now(), Instant::now()));
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if tracker.expire(now) && opts.display == Display::Json {
                    for t in tracker.nodes.iter().filter(|t| t.expired) {
                        println!("{}", json!({"mac": t.mac, "outcome": "timed_out"}));
                    }
                }
                if let Some(g) = group.as_mut() {
                    g.read(client, &mut tracker, now).await;
                    screen.group_moved(&tracker, g, now);
                }
                screen.redraw(&tracker, group.as_ref(), now);
            }
            item = follower.next() => match item? {
                Followed::Event(ev, raw) => {
                    if tracker.apply(&Update::from(ev.as_ref())) {
                        let now = Instant::now();
                        screen.changed(&tracker, ev.mac, &raw, now);
                        if let Some(g) = group.as_mut() {
                            screen.group_moved(&tracker, g, now);
                        }
                        screen.redraw(&tracker, group.as_ref(), now);
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
    let now = Instant::now();
    if let Some(g) = group.as_mut() {
        // The last stage line: a group that just clustered shows its 100 %.
        g.next_read = now;
        g.read(client, &mut tracker, now).await;
        screen.group_moved(&tracker, g, now);
    }
    screen.redraw(&tracker, group.as_ref(), now);
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
        println!(
            "all {} nodes {} after {elapsed}",
            tracker.nodes.len(),
            tracker.goal_word()
        );
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
            "{} of {} nodes did not reach {}",
            bad.len(),
            tracker.nodes.len(),
            tracker.goal_word()
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
            timeout_secs: None,
        };
        let answer = ReprovisionAnswer {
            operator: "operator:0".into(),
            nodes: vec![node(1, 5), node(2, 2)],
        };
        let t0 = Instant::now();
        let sixty = Goals {
            per_node: Some(Duration::from_secs(60)),
            clustered: Vec::new(),
        };
        let mut t = Tracker::new(&answer, &sixty, t0);
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

        let mut t = Tracker::new(&answer, &Goals::default(), t0);
        assert!(!t.expire(t0 + Duration::from_secs(44 * 60)), "45m default");
        t.apply(&up(1, 6, Phase::Timeout, 15));
        t.apply(&up(2, 3, Phase::Clustered, 100));
        assert!(t.finished());
        assert_eq!(t.total(), 57);
        assert_eq!(
            t.unfinished()[0].outcome,
            Some(Outcome::TimedOut("m".into()))
        );
    }

    fn answer(timeouts: &[(u8, Option<u64>)]) -> ReprovisionAnswer {
        ReprovisionAnswer {
            operator: "operator:0".into(),
            nodes: timeouts
                .iter()
                .map(|(m, secs)| Reprovisioned {
                    mac: mac(*m),
                    hostname: None,
                    profile: "p".into(),
                    token_generation: 1,
                    phase: Phase::ServerRequested,
                    progress: 5,
                    seq: 1,
                    power_cycle: PowerCycle::NotConfigured,
                    timeout_secs: *secs,
                })
                .collect(),
        }
    }

    #[test]
    fn a_hooked_group_is_done_only_when_clustered() {
        let t0 = Instant::now();
        let goals = Goals {
            per_node: None,
            clustered: vec![mac(1)],
        };
        let mut t = Tracker::new(&answer(&[(1, None), (2, None)]), &goals, t0);
        t.apply(&up(1, 2, Phase::Running, 100));
        t.apply(&up(2, 2, Phase::Running, 100));
        assert!(!t.finished(), "node 1 must get to clustered");
        assert_eq!(t.unfinished().len(), 1);
        t.apply(&up(1, 3, Phase::Clustered, 100));
        assert!(t.finished());
        assert!(t.unfinished().is_empty());

        let mut t = Tracker::new(&answer(&[(1, None)]), &goals, t0);
        assert_eq!(t.goal_word(), "clustered");
        t.apply(&up(1, 2, Phase::Running, 100));
        t.hook_failed("on_complete failed: HTTP 500");
        assert_eq!(t.nodes[0].outcome, Some(Outcome::Failed));
        assert_eq!(t.nodes[0].reason(), "on_complete failed: HTTP 500");
    }

    #[test]
    fn the_limit_is_the_flag_else_the_profile_else_45_minutes() {
        let t0 = Instant::now();
        let a = answer(&[(1, Some(600)), (2, None), (3, Some(0))]);
        let mut t = Tracker::new(&a, &Goals::default(), t0);
        let limits: Vec<Duration> = t.nodes.iter().map(|n| n.limit).collect();
        assert_eq!(
            limits,
            [
                Duration::from_secs(600) + PROFILE_GRACE,
                DEFAULT_NODE_TIMEOUT,
                DEFAULT_NODE_TIMEOUT
            ]
        );
        assert!(!t.expire(t0 + Duration::from_secs(601)));
        assert!(t.expire(t0 + Duration::from_secs(616)));
        let expired: Vec<MacAddr> = t
            .nodes
            .iter()
            .filter(|n| n.outcome.is_some())
            .map(|n| n.mac)
            .collect();
        assert_eq!(expired, [mac(1)], "only the 10-minute node expired");
        let flag = Goals {
            per_node: Some(Duration::from_secs(30)),
            clustered: Vec::new(),
        };
        let t = Tracker::new(&a, &flag, t0);
        assert!(t.nodes.iter().all(|n| n.limit == Duration::from_secs(30)));
    }

    #[test]
    fn summary_counts_phases_with_wall_clock_and_elapsed() {
        let t0 = Instant::now();
        let mut t = Tracker::new(
            &answer(&[(1, None), (2, None), (3, None)]),
            &Goals::default(),
            t0,
        );
        t.apply(&up(1, 2, Phase::Running, 100));
        t.apply(&up(2, 2, Phase::Installing, 60));
        t.apply(&up(3, 2, Phase::Installing, 64));
        let wall = std::time::UNIX_EPOCH + Duration::from_secs(12 * 3600 + 5);
        assert_eq!(
            t.summary(wall, t0 + Duration::from_secs(240)),
            "[12:00:05] 3 nodes: 1 running, 2 installing (62%) — 4m elapsed"
        );
    }
}
