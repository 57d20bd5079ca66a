//! Provider polling for the early phases: a node in `server_requested`, `pending` or
//! `starting` with a `provider_id` is polled at every `[[upstream]] status_url` each
//! `[health] interval` (with backoff while the provider errs), and the provider's state
//! moves it forward to `pending` or `starting` (`[[upstream]] states`, over defaults).

use super::{early, early_step, status_sources, StatusSource, POLL_TIMEOUT};
use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::PhaseRequest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the node list is re-read.
const REFRESH: Duration = Duration::from_secs(1);
/// Polls in flight at once.
const MAX_PARALLEL: usize = 32;
/// The `source` of the phase changes this service makes.
pub const SOURCE: &str = "provider";

/// What the poller remembers of a node.
struct Followed {
    next: Instant,
    /// Failed polls in a row (backoff grows with it).
    errors: u32,
    in_flight: bool,
}

/// One poll's outcome: the first state an upstream reported, mapped to a phase name.
struct Polled {
    mac: MacAddr,
    answer: Result<Option<(String, String, Option<String>)>, String>,
}

/// The provider poller: runs until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut configs = app.config_watch();
    let timeout = POLL_TIMEOUT.min(configs.borrow_and_update().health.interval);
    let mut sources = Arc::new(status_sources(&app.config(), timeout));
    let (tx, mut rx) = mpsc::channel::<Polled>(MAX_PARALLEL);
    let mut followed: HashMap<MacAddr, Followed> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = refresh.tick() => {
                if sources.is_empty() {
                    followed.clear();
                    continue;
                }
                follow(&app, &mut followed);
                start(&app, &mut followed, &sources, &mut tasks, &tx);
            }
            Some(p) = rx.recv() => apply(&app, &mut followed, p).await,
            Some(_) = tasks.join_next() => {}
            changed = configs.changed() => {
                if changed.is_err() { break; }
                let cfg = configs.borrow_and_update().clone();
                sources = Arc::new(status_sources(&cfg, POLL_TIMEOUT.min(cfg.health.interval)));
            }
        }
    }
    tasks.abort_all();
    Ok(())
}

fn follow(app: &App, followed: &mut HashMap<MacAddr, Followed>) {
    let now = Instant::now();
    let mut keep = std::collections::HashSet::new();
    for n in app.registry.list() {
        if early(&n.phase) && n.provider_id.is_some() {
            keep.insert(n.mac);
            followed.entry(n.mac).or_insert(Followed {
                next: now,
                errors: 0,
                in_flight: false,
            });
        }
    }
    followed.retain(|mac, f| keep.contains(mac) || f.in_flight);
}

fn start(
    app: &App,
    followed: &mut HashMap<MacAddr, Followed>,
    sources: &Arc<Vec<StatusSource>>,
    tasks: &mut JoinSet<()>,
    tx: &mpsc::Sender<Polled>,
) {
    let now = Instant::now();
    for (mac, f) in followed.iter_mut() {
        if f.in_flight || f.next > now || tasks.len() >= MAX_PARALLEL {
            continue;
        }
        let Some(id) = app.registry.get(*mac).and_then(|n| n.provider_id) else {
            continue;
        };
        f.in_flight = true;
        let (sources, tx, mac) = (sources.clone(), tx.clone(), *mac);
        tasks.spawn(async move {
            let answer = ask(&sources, &id).await;
            let _ = tx.send(Polled { mac, answer }).await;
        });
    }
}

/// The first state an upstream reports: (upstream, state, mapped phase). Err when every
/// upstream failed.
async fn ask(
    sources: &[StatusSource],
    id: &str,
) -> Result<Option<(String, String, Option<String>)>, String> {
    let mut last = None;
    for s in sources {
        match s.state(id).await {
            Ok(Some(state)) => {
                let mapped = s.upstream.state_phase(&state).map(str::to_string);
                return Ok(Some((s.upstream.name.clone(), state, mapped)));
            }
            Ok(None) => last = None,
            Err(e) => last = Some(format!("{}: {e}", s.upstream.name)),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

async fn apply(app: &App, followed: &mut HashMap<MacAddr, Followed>, p: Polled) {
    let interval = app.config().health.interval;
    let Some(f) = followed.get_mut(&p.mac) else {
        return;
    };
    f.in_flight = false;
    let (upstream, state, mapped) = match p.answer {
        Err(e) => {
            f.errors = f.errors.saturating_add(1);
            let delay = crate::outbound::backoff(f.errors, crate::outbound::random_unit());
            f.next = Instant::now() + delay.max(interval);
            tracing::debug!(mac = %p.mac, error = %e, "provider state not available");
            return;
        }
        Ok(None) => {
            f.errors = 0;
            f.next = Instant::now() + interval;
            return;
        }
        Ok(Some(found)) => found,
    };
    f.errors = 0;
    f.next = Instant::now() + interval;
    let Some(node) = app.registry.get(p.mac) else {
        return;
    };
    let Some(to) = mapped.and_then(|m| early_step(&node.phase, &m)) else {
        return;
    };
    let req = PhaseRequest {
        to: to.clone(),
        progress: None,
        message: format!("provider {upstream} reports the server {state}"),
        source: SOURCE.into(),
        force: false,
    };
    if let Err(e) = app.registry.transition(p.mac, req).await {
        tracing::debug!(mac = %p.mac, phase = %to, error = %e, "provider state not applied");
    }
}
