//! Deployment deadlines: a node still in progress `profile.timeout` after its deployment
//! began goes to `timeout` (source `deadline`), with the phase it was stuck in.

use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::{Applied, NodeEvent, Phase, PhaseRequest, RegistryError};
use crate::store::HistoryRow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;

/// How often deadlines are checked.
pub const SCAN: Duration = Duration::from_secs(2);
/// History rows read to find where a deployment began (at start, or after a lag).
const HISTORY_LOOKBACK: usize = 500;

/// Whether `from → to` begins a deployment: the first in-progress phase after one that
/// is not, or a new `server_requested` (a reprovision restarts the clock; a machine that
/// PXE-boots again mid-install does not).
pub fn starts_deployment(from: &Phase, to: &Phase) -> bool {
    Phase::starts_deployment(from, to)
}

/// When the deployment the node is in began, from its history (oldest first): the newest
/// row that started one, else (history cut short) the oldest row of the in-progress run.
pub fn deployment_start(history: &[HistoryRow]) -> Option<SystemTime> {
    let mut oldest_in_run = None;
    for row in history.iter().rev() {
        let (from, to) = (Phase::from_stored(&row.from), Phase::from_stored(&row.to));
        if !to.in_progress() {
            break;
        }
        let at = parse_time(&row.at);
        if starts_deployment(&from, &to) {
            return at;
        }
        oldest_in_run = at.or(oldest_in_run);
    }
    oldest_in_run
}

/// An RFC 3339 time as the store writes it.
pub fn parse_time(at: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(at).ok()
}

/// A duration in whole seconds as users read it: `45m`, `1h 2m 3s`.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The message of a deadline: `stuck in installing for 12m (deadline 45m from the
/// start of the deployment)`.
pub fn message(phase: &Phase, in_phase: Duration, timeout: Duration) -> String {
    format!(
        "stuck in {phase} for {} (deadline {} from the start of the deployment)",
        human(in_phase),
        human(timeout)
    )
}

/// What the watcher keeps per deploying node.
struct Deploy {
    started: SystemTime,
    /// A one-shot install profile seen during this deployment (`next_boot` is cleared
    /// when the script is fetched, the deadline still belongs to that profile).
    profile: Option<String>,
}

/// Follows the event stream to know when each deployment began, and checks every `SCAN`.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut events = app.registry.subscribe();
    let mut deploys: HashMap<MacAddr, Deploy> = HashMap::new();
    let mut tick = tokio::time::interval(SCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            ev = events.recv() => match ev {
                Ok(ev) => note(&mut deploys, &ev),
                // Starts that went by unseen are read back from the history.
                Err(RecvError::Lagged(_)) => deploys.clear(),
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => scan(&app, &mut deploys).await,
        }
    }
    Ok(())
}

fn note(deploys: &mut HashMap<MacAddr, Deploy>, ev: &NodeEvent) {
    if starts_deployment(&ev.from, &ev.to) {
        let started = parse_time(&ev.at).unwrap_or_else(SystemTime::now);
        deploys.insert(
            ev.mac,
            Deploy {
                started,
                profile: None,
            },
        );
    } else if !ev.to.in_progress() {
        deploys.remove(&ev.mac);
    }
}

async fn history_start(app: &App, mac: MacAddr) -> Option<SystemTime> {
    let store = app.store.clone();
    let key = mac.to_string();
    tokio::task::spawn_blocking(move || store.history(&key, HISTORY_LOOKBACK))
        .await
        .ok()?
        .ok()
        .and_then(|h| deployment_start(&h))
}

async fn scan(app: &Arc<App>, deploys: &mut HashMap<MacAddr, Deploy>) {
    let cfg = app.config();
    let nodes = app.registry.list();
    let present: HashSet<MacAddr> = nodes.iter().map(|n| n.mac).collect();
    deploys.retain(|mac, _| present.contains(mac));
    for node in nodes {
        if !node.phase.in_progress() {
            deploys.remove(&node.mac);
            continue;
        }
        if let Entry::Vacant(slot) = deploys.entry(node.mac) {
            let started = match history_start(app, node.mac).await {
                Some(t) => t,
                None => parse_time(&node.phase_since).unwrap_or_else(SystemTime::now),
            };
            slot.insert(Deploy {
                started,
                profile: None,
            });
        }
        let Some(deploy) = deploys.get_mut(&node.mac) else {
            continue;
        };
        if let Some(next) = &node.next_boot {
            deploy.profile = Some(next.clone());
        }
        let profile = deploy
            .profile
            .clone()
            .unwrap_or_else(|| app.registry.effective_profile(&node).name);
        let Some(timeout) = cfg.profiles.get(&profile).and_then(|p| p.timeout) else {
            continue;
        };
        let now = SystemTime::now();
        let elapsed = now.duration_since(deploy.started).unwrap_or_default();
        if elapsed < timeout {
            continue;
        }
        let in_phase = parse_time(&node.phase_since)
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or(elapsed);
        let req = PhaseRequest {
            to: Phase::Timeout,
            progress: None,
            message: message(&node.phase, in_phase, timeout),
            source: "deadline".into(),
            force: false,
        };
        match app.registry.transition(node.mac, req).await {
            Ok(Applied::Changed(ev)) => {
                deploys.remove(&node.mac);
                app.metrics.deadline_timed_out.inc();
                tracing::warn!(mac = %node.mac, profile = %profile, "deadline: {}", ev.message);
            }
            Ok(Applied::Unchanged) => {}
            // The node moved on (running, failed) since the list was read.
            Err(RegistryError::Transition(_)) | Err(RegistryError::NotFound(_)) => {}
            Err(e) => tracing::warn!(mac = %node.mac, error = %e, "deadline not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: &str, from: &str, to: &str) -> HistoryRow {
        HistoryRow {
            at: at.into(),
            from: from.into(),
            to: to.into(),
            progress: 0,
            message: String::new(),
            source: "test".into(),
        }
    }

    fn t(s: &str) -> Option<SystemTime> {
        parse_time(s)
    }

    #[test]
    fn the_deployment_starts_at_the_last_entry_into_progress() {
        let h = [
            row("2026-01-01T10:00:00.000Z", "known", "dhcp"),
            row("2026-01-01T10:01:00.000Z", "dhcp", "installing"),
            row("2026-01-01T10:05:00.000Z", "installing", "running"),
            row("2026-01-01T11:00:00.000Z", "running", "dhcp"),
            row("2026-01-01T11:01:00.000Z", "dhcp", "ipxe_boot"),
            // Rebooting into PXE mid-install is the same deployment.
            row("2026-01-01T11:02:00.000Z", "ipxe_boot", "dhcp"),
            row("2026-01-01T11:03:00.000Z", "dhcp", "installing"),
        ];
        assert_eq!(deployment_start(&h), t("2026-01-01T11:00:00.000Z"));
        // A reprovision restarts the clock even from an in-progress phase.
        let mut h2 = h.to_vec();
        h2.push(row(
            "2026-01-01T11:30:00.000Z",
            "installing",
            "server_requested",
        ));
        h2.push(row("2026-01-01T11:31:00.000Z", "server_requested", "dhcp"));
        assert_eq!(deployment_start(&h2), t("2026-01-01T11:30:00.000Z"));
    }

    #[test]
    fn no_deployment_when_the_node_is_done_and_a_cut_history_uses_its_oldest_row() {
        let done = [
            row("2026-01-01T10:00:00.000Z", "known", "dhcp"),
            row("2026-01-01T10:05:00.000Z", "dhcp", "running"),
        ];
        assert_eq!(deployment_start(&done), None);
        let cut = [
            row("2026-01-01T10:00:00.000Z", "ipxe_boot", "installing"),
            row("2026-01-01T10:05:00.000Z", "installing", "installing"),
        ];
        assert_eq!(deployment_start(&cut), t("2026-01-01T10:00:00.000Z"));
        assert_eq!(deployment_start(&[]), None);
    }

    #[test]
    fn message_names_the_phase_and_the_deadline() {
        assert_eq!(
            message(
                &Phase::Installing,
                Duration::from_millis(125_400),
                Duration::from_secs(45 * 60)
            ),
            "stuck in installing for 2m 5s (deadline 45m from the start of the deployment)"
        );
        assert!(starts_deployment(&Phase::Known, &Phase::Dhcp));
        assert!(!starts_deployment(&Phase::Installing, &Phase::Dhcp));
        assert!(!starts_deployment(&Phase::Dhcp, &Phase::Running));
    }
}
