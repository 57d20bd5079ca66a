//! `bootd_deployment_seconds`: follows the event stream and, when a deployment reaches
//! `running`, observes how long it took since it began, under the node's profile.

use crate::app::App;
use crate::mac::MacAddr;
use crate::metrics::ProfileLabel;
use crate::nodes::Phase;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Whether an event ends a deployment successfully: `running` reached from a phase of
/// the deployment (not a recovery from `unhealthy`).
pub fn finishes(from: &Phase, to: &Phase) -> bool {
    *to == Phase::Running && from.in_progress()
}

/// The metrics service: runs until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut events = app.registry.subscribe();
    let mut started: HashMap<MacAddr, Instant> = HashMap::new();
    loop {
        let ev = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            ev = events.recv() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        if Phase::starts_deployment(&ev.from, &ev.to) {
            started.insert(ev.mac, Instant::now());
        } else if finishes(&ev.from, &ev.to) {
            let (Some(at), Some(node)) = (started.remove(&ev.mac), app.registry.get(ev.mac)) else {
                continue;
            };
            let profile = app.registry.effective_profile(&node).name;
            app.metrics
                .deployment_seconds
                .get_or_create(&ProfileLabel { profile })
                .observe(at.elapsed().as_secs_f64());
        } else if !ev.to.in_progress() {
            started.remove(&ev.mac);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deployment_reaching_running_counts() {
        assert!(finishes(&Phase::HealthValidation, &Phase::Running));
        assert!(finishes(&Phase::Registered, &Phase::Running));
        assert!(!finishes(&Phase::Unhealthy, &Phase::Running));
        assert!(!finishes(&Phase::Running, &Phase::Clustered));
    }
}
