//! The readiness poller: nodes in `registered` (or a phase their profile names in
//! `ready_from`) whose effective profile declares `ready` checks are checked every
//! `[health] ready_interval` against their IP. All passing → `health_validation` (the
//! history names the checks), then `running` at once when the node has no `health_url`
//! (else the health monitor's first good poll does it). A failure only updates the
//! node's message, and only when the reason changes.

use super::{Check, Failure, Prober, Ready};
use crate::app::App;
use crate::boot::Context;
use crate::mac::MacAddr;
use crate::nodes::{Node, Phase, PhaseRequest};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the node list is re-read.
const REFRESH: Duration = Duration::from_secs(1);
/// Checks of different nodes run at once.
const MAX_PARALLEL: usize = 64;
/// The `source` of the phase changes this service makes.
pub const SOURCE: &str = "ready";

/// Whether a node in `phase` waits for readiness under a profile with `checks` and
/// `ready_from`.
pub fn waits(phase: &Phase, checks: &[Check], ready_from: &[String]) -> bool {
    !checks.is_empty()
        && (*phase == Phase::Registered || ready_from.iter().any(|p| p == phase.name()))
}

/// What follows a round of checks: the phase changes to request (in order) with their
/// message, or the note to leave on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Advance(Vec<(Phase, String)>),
    Note(String),
}

/// The verdict for a node after its checks; `has_health_url` says whether the health
/// monitor will take it from `health_validation` to `running`.
pub fn verdict(result: &Result<Ready, Failure>, has_health_url: bool) -> Verdict {
    match result {
        Ok(ready) => {
            let mut steps = vec![(Phase::HealthValidation, format!("ready: {ready}"))];
            if !has_health_url {
                steps.push((
                    Phase::Running,
                    "ready; no health_url, so health is not checked".to_string(),
                ));
            }
            Verdict::Advance(steps)
        }
        Err(f) => Verdict::Note(format!("not ready: {f}")),
    }
}

/// What the poller remembers of a waiting node.
struct Waiting {
    next: Instant,
    in_flight: bool,
}

/// One finished round of checks.
struct Done {
    mac: MacAddr,
    phase: Phase,
    result: Result<Ready, Failure>,
}

/// The readiness service: runs until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut configs = app.config_watch();
    let timeout = configs.borrow_and_update().health.ready_timeout;
    let mut prober = Prober::new(timeout).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::channel::<Done>(MAX_PARALLEL);
    let mut waiting: HashMap<MacAddr, Waiting> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = refresh.tick() => {
                follow(&app, &mut waiting);
                start(&app, &mut waiting, &prober, &mut tasks, &tx);
            }
            Some(done) = rx.recv() => apply(&app, &mut waiting, done).await,
            Some(_) = tasks.join_next() => {}
            changed = configs.changed() => {
                if changed.is_err() { break; }
                let timeout = configs.borrow_and_update().health.ready_timeout;
                match Prober::new(timeout) {
                    Ok(p) => prober = p,
                    Err(e) => tracing::error!("readiness checks keep the old settings: {e}"),
                }
            }
        }
    }
    tasks.abort_all();
    Ok(())
}

/// The checks and `ready_from` of a node's effective profile.
fn profile_checks(app: &App, node: &Node) -> (Vec<Check>, Vec<String>) {
    let cfg = app.config();
    let name = app.registry.effective_profile(node).name;
    cfg.profiles
        .get(&name)
        .map(|p| (p.ready.clone(), p.ready_from.clone()))
        .unwrap_or_default()
}

/// Starts following nodes that now wait for readiness and forgets the others.
fn follow(app: &App, waiting: &mut HashMap<MacAddr, Waiting>) {
    let now = Instant::now();
    let mut keep = std::collections::HashSet::new();
    for n in app.registry.list() {
        if !matches!(
            n.phase,
            Phase::Registered | Phase::Installing | Phase::ConfigRequested | Phase::Custom(_)
        ) {
            continue;
        }
        let (checks, from) = profile_checks(app, &n);
        if waits(&n.phase, &checks, &from) {
            keep.insert(n.mac);
            waiting.entry(n.mac).or_insert(Waiting {
                next: now,
                in_flight: false,
            });
        }
    }
    waiting.retain(|mac, w| keep.contains(mac) || w.in_flight);
}

/// The address to check: the node's own (configured, or reported at registration),
/// else its DHCP lease.
fn address(app: &App, node: &Node) -> Option<Ipv4Addr> {
    if let Some(ip) = node.ip {
        return Some(ip);
    }
    let mac = node.mac.to_string();
    app.store
        .load_leases()
        .ok()?
        .into_iter()
        .filter(|l| l.mac == mac && l.state == "bound")
        .max_by_key(|l| l.expires)
        .and_then(|l| l.ip.parse().ok())
}

/// Starts the checks of the nodes that are due.
fn start(
    app: &Arc<App>,
    waiting: &mut HashMap<MacAddr, Waiting>,
    prober: &Prober,
    tasks: &mut JoinSet<()>,
    tx: &mpsc::Sender<Done>,
) {
    let cfg = app.config();
    let interval = cfg.health.ready_interval;
    let now = Instant::now();
    for (mac, w) in waiting.iter_mut() {
        if w.in_flight || w.next > now || tasks.len() >= MAX_PARALLEL {
            continue;
        }
        let Some(node) = app.registry.get(*mac) else {
            continue;
        };
        w.next = now + interval;
        let (checks, _) = profile_checks(app, &node);
        let Some(ip) = address(app, &node) else {
            let app = app.clone();
            let mac = *mac;
            tasks.spawn(async move {
                let note = "not ready: no IP known (no lease, none registered or configured)";
                let _ = app.registry.note_message(mac, note.into()).await;
            });
            continue;
        };
        w.in_flight = true;
        let profile = app.registry.effective_profile(&node).name;
        let ctx = Context::new(&node, &profile, "", String::new(), &cfg.server.public_url);
        let (prober, tx, mac) = (prober.clone(), tx.clone(), *mac);
        tasks.spawn(async move {
            let result = prober.run(&checks, ip, &ctx).await;
            let _ = tx
                .send(Done {
                    mac,
                    phase: node.phase,
                    result,
                })
                .await;
        });
    }
}

/// Applies a finished round of checks if the node is still where it was.
async fn apply(app: &App, waiting: &mut HashMap<MacAddr, Waiting>, done: Done) {
    if let Some(w) = waiting.get_mut(&done.mac) {
        w.in_flight = false;
    }
    let Some(node) = app.registry.get(done.mac) else {
        return;
    };
    if node.phase != done.phase {
        return; // the node moved on while its checks ran
    }
    match verdict(&done.result, node.health_url.is_some()) {
        Verdict::Advance(steps) => {
            for (to, message) in steps {
                let req = PhaseRequest {
                    to,
                    progress: None,
                    message,
                    source: SOURCE.into(),
                    force: false,
                };
                if let Err(e) = app.registry.transition(done.mac, req).await {
                    tracing::warn!(mac = %done.mac, error = %e, "readiness verdict not applied");
                    break;
                }
            }
            waiting.remove(&done.mac);
        }
        Verdict::Note(note) => {
            if let Ok(true) = app.registry.note_message(done.mac, note.clone()).await {
                tracing::info!(mac = %done.mac, "{note}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready::{Passed, Reason};

    #[test]
    fn registered_or_a_declared_phase_waits_when_the_profile_has_checks() {
        let ssh = [Check::Ssh(22)];
        let from = ["installing".to_string()];
        assert!(waits(&Phase::Registered, &ssh, &[]));
        assert!(!waits(&Phase::Installing, &ssh, &[]));
        assert!(waits(&Phase::Installing, &ssh, &from));
        assert!(
            !waits(&Phase::Registered, &[], &from),
            "no checks: today's behaviour"
        );
        assert!(!waits(&Phase::Running, &ssh, &from));
    }

    #[test]
    fn passing_checks_advance_and_failures_only_note() {
        let ready = Ready {
            passed: vec![Passed {
                check: "ssh 10.0.0.11:22".into(),
                detail: "SSH-2.0-OpenSSH_9.2".into(),
            }],
        };
        assert_eq!(
            verdict(&Ok(ready.clone()), true),
            Verdict::Advance(vec![(
                Phase::HealthValidation,
                "ready: ssh 10.0.0.11:22 (SSH-2.0-OpenSSH_9.2)".into()
            )])
        );
        let Verdict::Advance(steps) = verdict(&Ok(ready), false) else {
            panic!("advance");
        };
        assert_eq!(
            steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            [Phase::HealthValidation, Phase::Running]
        );
        let failure = Failure {
            check: "ssh 10.0.0.11:22".into(),
            reason: Reason::Refused,
        };
        let Verdict::Note(note) = verdict(&Err(failure), true) else {
            panic!("note");
        };
        assert!(note.starts_with("not ready: ssh 10.0.0.11:22: "), "{note}");
    }
}
