//! systemd integration: READY/STATUS/STOPPING notifications and the watchdog task,
//! which only pets systemd while every supervised service runs and the store answers.

use crate::app::App;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

/// Tells systemd every listener is bound.
pub fn ready(status_line: &str) {
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Ready, NotifyState::Status(status_line)],
    );
}

/// Sets the one-line status `systemctl status` shows.
pub fn status(line: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(line)]);
}

/// Tells systemd shutdown has begun.
pub fn stopping() {
    let _ = sd_notify::notify(
        false,
        &[NotifyState::Stopping, NotifyState::Status("draining")],
    );
}

/// "12 nodes: 3 installing, 9 running" — nodes per phase.
pub fn summary(app: &App) -> String {
    let phases = app.registry.count_by_phase();
    let total: u64 = phases.values().sum();
    if total == 0 {
        return "0 nodes".into();
    }
    let parts: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("{total} nodes: {}", parts.join(", "))
}

/// `WATCHDOG_USEC` when it is meant for this process: like libsystemd, a missing
/// `WATCHDOG_PID` counts as ours, a different one does not.
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

/// Pets the watchdog at half of `WATCHDOG_USEC` while every supervised service runs and
/// the store answers, and refreshes STATUS every interval; returns at shutdown. Without
/// a watchdog it only refreshes STATUS.
pub async fn watchdog(app: Arc<App>, services: crate::supervise::Liveness) {
    let usec = watchdog_usec().unwrap_or(0);
    let enabled = usec > 0;
    let every = if enabled && usec > 0 {
        Duration::from_micros(usec / 2)
    } else {
        Duration::from_secs(15)
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !services.all_running() {
            tracing::error!("a service has stopped; not petting the watchdog");
            continue;
        }
        let healthy = tokio::time::timeout(every, app.store.ping()).await;
        match healthy {
            Ok(Ok(())) => {
                if enabled {
                    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                }
                status(&summary(&app));
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store does not answer; not petting the watchdog")
            }
            Err(_) => tracing::error!("store ping timed out; not petting the watchdog"),
        }
    }
}
