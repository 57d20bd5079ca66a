//! Groups: when every member of a group is `running`, its `on_complete` hook is POSTed
//! (signed, retried with backoff); a 2xx makes every member `clustered` (source `group`).
//!
//! A group's progress has two stages: 0–70 deployment (the members' mean progress) and
//! 70–100 cluster formation: 75 once the hook is called, 85 once it answered 2xx, 100
//! when every member is `clustered`. A long formation may report how far it got with
//! `POST /api/v1/groups/{name}/progress {"progress": 90, "message": "etcd up"}` and
//! `Authorization: Bearer <progress_token>`: the hook's payload carries `progress_url`
//! and a `progress_token` made for that delivery (valid while the group is forming).

use super::hook;
use crate::app::App;
use crate::config::{Config, Group};
use crate::mac::MacAddr;
use crate::nodes::{Node, Phase, PhaseRequest, RegistryError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinSet;

/// Attempts of one `on_complete` delivery before the group shows `hook_failed`.
pub const HOOK_ATTEMPTS: u32 = 5;
/// How often groups are re-evaluated without an event (reloads, restarts, lags).
const RESCAN: Duration = Duration::from_secs(5);

/// Where a group's `on_complete` hook stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HookState {
    /// Not sent for the current completion.
    #[default]
    Idle,
    /// Being delivered; the attempt under way and the last failure.
    Sending {
        attempt: u32,
        last_error: Option<String>,
    },
    /// Answered 2xx (`status`); members are being made `clustered`.
    Answered(u16),
    /// Accepted (2xx); members were made `clustered`.
    Delivered,
    /// Every attempt failed; shown until the group leaves completion.
    Failed(String),
}

/// A group's state as the API shows it.
pub use bootd_api::GroupState;

/// Start of the cluster-formation stage of a group's progress.
pub const FORMING_START: u8 = 70;
/// Progress once the hook is called.
pub const HOOK_CALLED: u8 = 75;
/// Progress once the hook answered 2xx.
pub const HOOK_ANSWERED: u8 = 85;

/// What a formation hook reported of its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub progress: u8,
    pub message: String,
}

/// The progress callback of one delivery: its token and the last report.
#[derive(Debug, Clone, Default)]
struct Callback {
    token: String,
    reported: Option<Reported>,
}

/// Why a progress report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// No such group, not forming, or a wrong token: one answer for all three.
    #[error("missing or wrong token, or the group is not forming")]
    Refused,
    #[error("progress {0} is outside 70..=100")]
    OutOfRange(u8),
}

/// The hook state of every group.
#[derive(Default)]
pub struct Board {
    hooks: Mutex<HashMap<String, HookState>>,
    callbacks: Mutex<HashMap<String, Callback>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HookState>> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn callbacks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Callback>> {
        self.callbacks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hook state of one group.
    pub fn get(&self, group: &str) -> HookState {
        self.lock().get(group).cloned().unwrap_or_default()
    }

    fn set(&self, group: &str, state: HookState) {
        if matches!(state, HookState::Idle | HookState::Failed(_)) {
            self.callbacks().remove(group);
        }
        self.lock().insert(group.to_string(), state);
    }

    /// A fresh progress token for a group's delivery (the previous one stops working).
    fn new_token(&self, group: &str) -> String {
        let mut bytes = [0u8; 24];
        if getrandom::getrandom(&mut bytes).is_err() {
            // No randomness: no callback for this delivery (an empty token never matches).
            self.callbacks().remove(group);
            return String::new();
        }
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.callbacks().insert(
            group.to_string(),
            Callback {
                token: token.clone(),
                reported: None,
            },
        );
        token
    }

    /// The last progress a group's formation hook reported.
    pub fn reported(&self, group: &str) -> Option<Reported> {
        self.callbacks().get(group).and_then(|c| c.reported.clone())
    }

    /// True if `token` is the one bootd sent with `group`'s current formation hook
    /// (checked before a report's body is read).
    pub fn accepts(&self, group: &str, token: &str) -> bool {
        self.callbacks().get(group).is_some_and(|cb| {
            !cb.token.is_empty()
                && subtle::ConstantTimeEq::ct_eq(cb.token.as_bytes(), token.as_bytes()).into()
        })
    }

    /// Takes a formation hook's progress report, if the token is the delivery's and the
    /// group is forming. Reports are kept within 70..=99: 100 is bootd's to say.
    pub fn report(
        &self,
        group: &str,
        token: &str,
        progress: u8,
        message: String,
    ) -> Result<Reported, ReportError> {
        let forming = matches!(
            self.get(group),
            HookState::Sending { .. } | HookState::Answered(_)
        );
        let mut callbacks = self.callbacks();
        let Some(cb) = callbacks.get_mut(group) else {
            return Err(ReportError::Refused);
        };
        let same = !cb.token.is_empty()
            && subtle::ConstantTimeEq::ct_eq(cb.token.as_bytes(), token.as_bytes()).into();
        if !forming || !same {
            return Err(ReportError::Refused);
        }
        if !(FORMING_START..=100).contains(&progress) {
            return Err(ReportError::OutOfRange(progress));
        }
        let r = Reported {
            progress: progress.min(99),
            message,
        };
        cb.reported = Some(r.clone());
        Ok(r)
    }
}

fn is_live(p: &Phase) -> bool {
    matches!(p, Phase::Running | Phase::Clustered)
}

/// Before any boot: known to bootd, maybe being created by the provider.
fn not_booted(p: &Phase) -> bool {
    matches!(
        p,
        Phase::Discovered | Phase::Known | Phase::ServerRequested | Phase::Pending
    )
}

/// A group's progress: 0–70 while members deploy (their mean progress scaled), 70–100
/// for cluster formation (75 hook called, 85 answered, a reported figure in between,
/// 100 all clustered); 100 once every member runs when there is no hook.
pub fn group_progress(
    members: &[&Node],
    hook: &HookState,
    has_hook: bool,
    reported: Option<&Reported>,
) -> u8 {
    if members.is_empty() {
        return 0;
    }
    if members.iter().all(|n| n.phase == Phase::Clustered) {
        return 100;
    }
    if !members.iter().all(|n| is_live(&n.phase)) {
        let sum: u32 = members.iter().map(|n| u32::from(n.progress.min(100))).sum();
        let mean = sum / members.len() as u32;
        let scaled = mean * u32::from(FORMING_START) / 100;
        return u8::try_from(scaled.min(u32::from(FORMING_START))).unwrap_or(FORMING_START);
    }
    if !has_hook {
        return 100;
    }
    let base = match hook {
        HookState::Sending { .. } => HOOK_CALLED,
        HookState::Answered(_) | HookState::Delivered => HOOK_ANSWERED,
        HookState::Idle | HookState::Failed(_) => return FORMING_START,
    };
    base.max(reported.map_or(0, |r| r.progress.min(99)))
}

/// A group's state and the reason behind it, from its members and its hook.
pub fn group_state(members: &[&Node], hook: &HookState, has_hook: bool) -> (GroupState, String) {
    if members.is_empty() {
        return (GroupState::Pending, "the group has no nodes".into());
    }
    if members.iter().all(|n| not_booted(&n.phase)) {
        return (
            GroupState::Pending,
            format!("none of {} has booted yet", members.len()),
        );
    }
    let stuck: Vec<&&Node> = members
        .iter()
        .filter(|n| n.phase == Phase::Timeout)
        .collect();
    if let Some(first) = stuck.first() {
        return (
            GroupState::Timeout,
            format!(
                "{} of {} timed out; {}: {}",
                stuck.len(),
                members.len(),
                first.mac,
                first.message
            ),
        );
    }
    if let Some(n) = members.iter().find(|n| n.phase == Phase::Failed) {
        return (
            GroupState::MemberFailed,
            format!("{} failed: {}", n.mac, n.message),
        );
    }
    if members.iter().all(|n| n.phase == Phase::Clustered) {
        return (GroupState::Clustered, "on_complete accepted".into());
    }
    let live = members.iter().filter(|n| is_live(&n.phase)).count();
    if live < members.len() {
        return (
            GroupState::InProgress,
            format!("{live} of {} running", members.len()),
        );
    }
    match hook {
        HookState::Failed(why) => (GroupState::HookFailed, format!("on_complete failed: {why}")),
        HookState::Sending {
            attempt,
            last_error,
        } => (
            GroupState::Forming,
            match last_error {
                Some(e) => format!("on_complete attempt {attempt} of {HOOK_ATTEMPTS} (last: {e})"),
                None => format!("on_complete attempt {attempt} of {HOOK_ATTEMPTS}"),
            },
        ),
        HookState::Answered(status) => (
            GroupState::Forming,
            format!("on_complete answered HTTP {status}; marking members clustered"),
        ),
        _ if !has_hook => (
            GroupState::Completed,
            "every node is running; the group has no on_complete hook".into(),
        ),
        _ => (GroupState::Completed, "every node is running".into()),
    }
}

/// The members of a group, ordered by MAC.
fn members<'a>(nodes: &'a [Node], group: &str) -> Vec<&'a Node> {
    nodes
        .iter()
        .filter(|n| n.group.as_deref() == Some(group))
        .collect()
}

/// `GET /api/v1/groups`: every configured group with its members, state and reason.
pub fn overview(app: &App) -> bootd_api::GroupList {
    let cfg = app.config();
    let nodes = app.registry.list();
    let groups = cfg
        .groups
        .iter()
        .map(|(name, g)| {
            let m = members(&nodes, name);
            let hook = app.lifecycle.groups.get(name);
            let (state, mut reason) = group_state(&m, &hook, g.on_complete.is_some());
            let reported = app.lifecycle.groups.reported(name);
            if let (GroupState::Forming, Some(r)) = (state, &reported) {
                if !r.message.is_empty() {
                    reason = format!("{reason}; hook reports {}% {}", r.progress, r.message);
                }
            }
            let progress = group_progress(&m, &hook, g.on_complete.is_some(), reported.as_ref());
            bootd_api::Group {
                progress: Some(progress),
                name: name.clone(),
                profile: g.profile.clone(),
                on_complete: g.on_complete.clone(),
                state,
                reason,
                nodes: m
                    .iter()
                    .map(|n| bootd_api::GroupMember {
                        mac: n.mac,
                        hostname: n.hostname.clone(),
                        phase: n.phase.clone(),
                        progress: n.progress,
                    })
                    .collect(),
            }
        })
        .collect();
    bootd_api::GroupList { groups }
}

/// Watches the event stream and fires hooks for groups that just completed.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut events = app.registry.subscribe();
    let mut tick = tokio::time::interval(RESCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hooks = JoinSet::new();
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(ev) if ev.group.is_none() => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Events come in bursts; one evaluation covers all that are queued.
                    while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {}
            Some(_) = hooks.join_next() => {}
        }
        evaluate(&app, &mut hooks);
    }
    hooks.abort_all();
    Ok(())
}

/// Starts the hook of every group whose members are all running (some not clustered yet),
/// and forgets a past hook outcome once a group leaves completion.
fn evaluate(app: &Arc<App>, hooks: &mut JoinSet<()>) {
    let cfg = app.config();
    let nodes = app.registry.list();
    for (name, group) in &cfg.groups {
        let m = members(&nodes, name);
        let all_live = !m.is_empty() && m.iter().all(|n| is_live(&n.phase));
        let any_running = m.iter().any(|n| n.phase == Phase::Running);
        let board = &app.lifecycle.groups;
        match board.get(name) {
            HookState::Sending { .. } | HookState::Answered(_) => {}
            HookState::Failed(_) | HookState::Delivered if !all_live => {
                board.set(name, HookState::Idle)
            }
            HookState::Idle | HookState::Delivered if all_live && any_running => {
                let Some(url) = group.on_complete.clone() else {
                    continue;
                };
                board.set(
                    name,
                    HookState::Sending {
                        attempt: 1,
                        last_error: None,
                    },
                );
                hooks.spawn(complete(app.clone(), name.clone(), group.clone(), url));
            }
            _ => {}
        }
    }
}

/// The hook body: the group and its members as they are now, and where the hook may
/// report its progress (`progress_url`, `progress_token`).
fn payload(cfg: &Config, name: &str, group: &Group, nodes: &[&Node], token: &str) -> Value {
    let base = cfg.server.public_url.trim_end_matches('/');
    json!({
        "event": "group_complete",
        "group": name,
        "progress_url": format!("{base}{}", bootd_api::routes::group_progress(name)),
        "progress_token": token,
        "profile": group.profile,
        "public_url": cfg.server.public_url,
        "at": crate::store::now_rfc3339(),
        "nodes": nodes.iter().map(|n| json!({
            "mac": n.mac,
            "hostname": n.hostname,
            "ip": n.ip,
            "provider_id": n.provider_id,
            "profile": n.profile,
            "phase": n.phase,
        })).collect::<Vec<_>>(),
    })
}

/// Delivers one completion: up to `HOOK_ATTEMPTS` POSTs with backoff, then `clustered`
/// for every member still running, or the group's error.
async fn complete(app: Arc<App>, name: String, group: Group, url: String) {
    let board = &app.lifecycle.groups;
    let client = match hook::client() {
        Ok(c) => c,
        Err(e) => {
            board.set(&name, HookState::Failed(e.to_string()));
            return;
        }
    };
    let cfg = app.config();
    let secret = hook::secret(&cfg);
    let nodes = app.registry.list();
    let token = board.new_token(&name);
    let body = payload(&cfg, &name, &group, &members(&nodes, &name), &token);
    let mut last = String::new();
    for attempt in 1..=HOOK_ATTEMPTS {
        board.set(
            &name,
            HookState::Sending {
                attempt,
                last_error: (attempt > 1).then(|| last.clone()),
            },
        );
        match hook::post(&client, &url, secret.as_ref(), "group_complete", &body).await {
            Ok(status) => {
                tracing::info!(group = %name, %url, status, attempt, "on_complete accepted");
                board.set(&name, HookState::Answered(status));
                cluster(&app, &name, status).await;
                board.set(&name, HookState::Delivered);
                return;
            }
            Err(e) => {
                tracing::warn!(group = %name, %url, attempt, answer = e.excerpt(),
                    "on_complete failed: {e}");
                last = e.to_string();
            }
        }
        if attempt < HOOK_ATTEMPTS {
            let delay = crate::outbound::backoff(attempt, crate::outbound::random_unit());
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
    let why = format!("{url}: {last} after {HOOK_ATTEMPTS} attempts");
    tracing::error!(group = %name, "group hook gave up: {why}");
    board.set(&name, HookState::Failed(why));
}

/// Moves every running member to `clustered`.
async fn cluster(app: &App, name: &str, status: u16) {
    let macs: Vec<MacAddr> = app
        .registry
        .list()
        .into_iter()
        .filter(|n| n.group.as_deref() == Some(name) && n.phase == Phase::Running)
        .map(|n| n.mac)
        .collect();
    for mac in macs {
        let req = PhaseRequest {
            to: Phase::Clustered,
            progress: None,
            message: format!("group {name} formed (on_complete answered HTTP {status})"),
            source: "group".into(),
            force: false,
        };
        match app.registry.transition(mac, req).await {
            Ok(_) | Err(RegistryError::Transition(_)) | Err(RegistryError::NotFound(_)) => {}
            Err(e) => tracing::warn!(%mac, group = %name, error = %e, "cannot mark clustered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::Origin;

    fn node(last: u8, phase: Phase) -> Node {
        let mut n = Node::new(MacAddr([0x52, 0x54, 0, 0, 0, last]), Origin::Config);
        n.phase = phase;
        n.message = "m".into();
        n
    }

    fn state(phases: &[Phase], hook: HookState) -> (GroupState, String) {
        let nodes: Vec<Node> = phases
            .iter()
            .enumerate()
            .map(|(i, p)| node(i as u8, p.clone()))
            .collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        group_state(&refs, &hook, true)
    }

    #[test]
    fn states_follow_members_and_hook() {
        use Phase::*;
        assert_eq!(
            state(&[Running, Installing, Running], HookState::Idle),
            (GroupState::InProgress, "2 of 3 running".into())
        );
        assert_eq!(
            state(&[Running, Running], HookState::Idle).0,
            GroupState::Completed
        );
        assert_eq!(
            state(&[Running, Clustered], HookState::Failed("HTTP 500".into())),
            (
                GroupState::HookFailed,
                "on_complete failed: HTTP 500".into()
            )
        );
        assert_eq!(
            state(&[Clustered, Clustered], HookState::Delivered).0,
            GroupState::Clustered
        );
        let (s, why) = state(&[Running, Timeout], HookState::Idle);
        assert_eq!(s, GroupState::Timeout);
        assert!(
            why.starts_with("1 of 2 timed out; 52:54:00:00:00:01: m"),
            "{why}"
        );
        assert_eq!(
            state(&[Failed, Running], HookState::Idle).0,
            GroupState::MemberFailed
        );
        assert_eq!(state(&[], HookState::Idle).0, GroupState::Pending);
        assert_eq!(
            state(&[Known, Known], HookState::Idle),
            (GroupState::Pending, "none of 2 has booted yet".into())
        );
        assert_eq!(
            state(&[Known, Dhcp], HookState::Idle),
            (GroupState::InProgress, "0 of 2 running".into())
        );
        let (s, why) = state(
            &[Running],
            HookState::Sending {
                attempt: 2,
                last_error: Some("HTTP 503".into()),
            },
        );
        assert_eq!(s, GroupState::Forming);
        assert!(why.contains("attempt 2 of 5 (last: HTTP 503)"), "{why}");
        assert_eq!(
            state(&[Running, Running], HookState::Answered(200)).0,
            GroupState::Forming
        );
    }

    fn progress(phases: &[(Phase, u8)], hook: HookState, reported: Option<u8>) -> u8 {
        let nodes: Vec<Node> = phases
            .iter()
            .enumerate()
            .map(|(i, (p, pr))| {
                let mut n = node(i as u8, p.clone());
                n.progress = *pr;
                n
            })
            .collect();
        let refs: Vec<&Node> = nodes.iter().collect();
        let r = reported.map(|progress| Reported {
            progress,
            message: String::new(),
        });
        group_progress(&refs, &hook, true, r.as_ref())
    }

    #[test]
    fn progress_has_a_deployment_and_a_formation_stage() {
        use Phase::*;
        assert_eq!(
            progress(&[(Installing, 50), (Dhcp, 10)], HookState::Idle, None),
            21
        );
        assert_eq!(
            progress(&[(Running, 100), (Running, 100)], HookState::Idle, None),
            70
        );
        let sending = HookState::Sending {
            attempt: 1,
            last_error: None,
        };
        assert_eq!(progress(&[(Running, 100)], sending.clone(), None), 75);
        assert_eq!(progress(&[(Running, 100)], sending, Some(90)), 90);
        assert_eq!(
            progress(&[(Running, 100)], HookState::Answered(200), None),
            85
        );
        assert_eq!(
            progress(&[(Running, 100)], HookState::Answered(200), Some(100)),
            99
        );
        assert_eq!(
            progress(
                &[(Clustered, 100), (Clustered, 100)],
                HookState::Delivered,
                None
            ),
            100
        );
        assert_eq!(progress(&[], HookState::Idle, None), 0);
    }

    #[test]
    fn progress_reports_need_the_delivery_token_while_forming() {
        let board = Board::default();
        assert_eq!(
            board.report("g", "x", 90, String::new()),
            Err(ReportError::Refused)
        );
        board.set(
            "g",
            HookState::Sending {
                attempt: 1,
                last_error: None,
            },
        );
        let token = board.new_token("g");
        assert_eq!(
            board.report("g", "wrong", 90, String::new()),
            Err(ReportError::Refused)
        );
        assert_eq!(
            board.report("g", &token, 20, String::new()),
            Err(ReportError::OutOfRange(20))
        );
        let r = board.report("g", &token, 90, "etcd up".into());
        assert_eq!(r.map(|r| r.progress), Ok(90));
        assert_eq!(
            board.reported("g").map(|r| r.message),
            Some("etcd up".into())
        );
        board.set("g", HookState::Idle);
        assert_eq!(
            board.report("g", &token, 95, String::new()),
            Err(ReportError::Refused)
        );
    }
}
