//! The health monitor: polls the `health_url` of deployed nodes, each at its own offset
//! in `health.interval`, and turns the results into `running` / `unhealthy` / `stopped`.

mod decide;
pub mod provider;

pub use decide::{
    decide, early, early_step, offset, recovery_phase, state_text, stopped_state, wants_provider,
    watched, STOPPED_STATES,
};

use crate::app::App;
use crate::config::Config;
use crate::mac::MacAddr;
use crate::nodes::{Node, Phase, PhaseRequest};
use crate::outbound::{Call, HttpClient, OutboundError, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

/// How often the node list is re-read (new nodes, phase changes, removed nodes).
const REFRESH: Duration = Duration::from_secs(1);
/// Polls in flight at once, over all nodes.
pub const MAX_POLLS: usize = 64;
/// Longest wait for one health answer (shorter if the interval is shorter).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest health answer read (and discarded).
const MAX_HEALTH_BODY: usize = 64 * 1024;
/// Largest provider status answer read.
const MAX_STATUS_BODY: usize = 1024 * 1024;
/// What is escaped when a provider id goes into a URL path: all but RFC 3986 unreserved.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// `User-Agent` of health polls (a node's own health endpoint may log it).
const HEALTH_AGENT: &str = concat!("bootd-health/", env!("CARGO_PKG_VERSION"));
/// History rows read to find the phase a recovering node returns to.
const RECOVERY_HISTORY: usize = 50;
/// Results waiting for the monitor loop.
const RESULT_QUEUE: usize = 1024;

/// A provider status endpoint of one `[[upstream]]`.
pub(crate) struct StatusSource {
    pub(crate) upstream: crate::config::Upstream,
    template: String,
    secret: Option<Secret>,
    client: HttpClient,
}

/// Builds the status sources of the `[[upstream]]`s that have a `status_url`.
pub(crate) fn status_sources(cfg: &Config, timeout: Duration) -> Vec<StatusSource> {
    let mut providers = Vec::new();
    for u in &cfg.upstream {
        let Some(template) = &u.status_url else {
            continue;
        };
        let secret = u.secret_file.as_deref().and_then(|p| Secret::load(p).ok());
        match HttpClient::new(u.ca_file.as_deref(), timeout) {
            Ok(client) => providers.push(StatusSource {
                upstream: u.clone(),
                template: template.clone(),
                secret,
                client,
            }),
            Err(e) => tracing::error!(upstream = %u.name,
                "provider state of {} cannot be polled: {e}", u.name),
        }
    }
    providers
}

impl StatusSource {
    /// Asks the provider for a machine's state (`state` or `status` of its JSON answer,
    /// lower case); Ok(None) when the answer has none.
    pub(crate) async fn state(&self, provider_id: &str) -> Result<Option<String>, OutboundError> {
        let id = percent_encoding::utf8_percent_encode(provider_id, PATH_SEGMENT).to_string();
        let url = self.template.replace("{provider_id}", &id);
        let call = Call::get(url.as_str())
            .header("accept", "application/json")
            .signed(self.secret.as_ref());
        let answer = self
            .client
            .call(call, MAX_STATUS_BODY)
            .await
            .and_then(|a| a.success())?;
        Ok(state_text(&answer.body))
    }
}

/// The clients of the current config.
struct Probes {
    health: HttpClient,
    providers: Vec<StatusSource>,
}

impl Probes {
    fn from_config(cfg: &Config) -> Result<Probes, OutboundError> {
        let timeout = POLL_TIMEOUT.min(cfg.health.interval);
        let health = HttpClient::new(None, timeout)?;
        let providers = status_sources(cfg, timeout);
        Ok(Probes { health, providers })
    }
}

/// What the monitor remembers of a node.
struct Tracked {
    url: String,
    next: Instant,
    /// Last successful poll, or when monitoring began.
    healthy_at: Instant,
    in_flight: bool,
}

/// One finished poll.
struct PollResult {
    mac: MacAddr,
    url: String,
    result: Result<(), String>,
    provider_stopped: Option<String>,
    at: Instant,
}

/// The health service: runs until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut configs = app.config_watch();
    let mut probes =
        Arc::new(Probes::from_config(&configs.borrow_and_update()).map_err(|e| e.to_string())?);
    let (tx, mut rx) = mpsc::channel::<PollResult>(RESULT_QUEUE);
    let slots = Arc::new(Semaphore::new(MAX_POLLS));
    let mut tracked: HashMap<MacAddr, Tracked> = HashMap::new();
    let mut round = Round::default();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_due = tracked
            .values()
            .filter(|t| !t.in_flight)
            .map(|t| t.next)
            .min()
            .unwrap_or_else(|| Instant::now() + REFRESH);
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = refresh.tick() => {
                track(&app, &mut tracked);
                round.follow(&app, &tracked);
            }
            _ = tokio::time::sleep_until(next_due) => {}
            Some(r) = rx.recv() => {
                round.checked(r.mac);
                handle(&app, &mut tracked, r);
                while let Ok(r) = rx.try_recv() {
                    round.checked(r.mac);
                    handle(&app, &mut tracked, r);
                }
                round.follow(&app, &tracked);
            }
            changed = configs.changed() => {
                if changed.is_err() { break; }
                match Probes::from_config(&configs.borrow_and_update()) {
                    Ok(p) => probes = Arc::new(p),
                    Err(e) => tracing::error!("health probes keep the old settings: {e}"),
                }
            }
        }
        dispatch(&app, &mut tracked, &probes, &slots, &tx);
    }
    Ok(())
}

/// A round of the monitor: every node watched when it began has been polled once.
#[derive(Default)]
struct Round {
    waiting: std::collections::HashSet<MacAddr>,
    checked: usize,
}

impl Round {
    fn checked(&mut self, mac: MacAddr) {
        if self.waiting.remove(&mac) {
            self.checked += 1;
        }
    }

    /// Ends the round when no node it began with is still waiting (nodes that stopped
    /// being watched do not hold it up), exports its time and size, starts the next.
    fn follow(&mut self, app: &App, tracked: &HashMap<MacAddr, Tracked>) {
        self.waiting.retain(|m| tracked.contains_key(m));
        if !self.waiting.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        app.metrics.health_last_round.set(now);
        app.metrics
            .health_nodes_checked
            .set(i64::try_from(self.checked).unwrap_or(i64::MAX));
        self.checked = 0;
        self.waiting = tracked.keys().copied().collect();
    }
}

/// Follows the registry: starts watching nodes that need it, forgets the others.
fn track(app: &App, tracked: &mut HashMap<MacAddr, Tracked>) {
    let interval = app.config().health.interval;
    let now = Instant::now();
    let nodes: Vec<Node> = app.registry.list();
    let mut keep = std::collections::HashSet::with_capacity(nodes.len());
    for n in nodes {
        let Some(url) = n.health_url.clone().filter(|_| watched(&n.phase)) else {
            continue;
        };
        keep.insert(n.mac);
        let entry = tracked.entry(n.mac).or_insert_with(|| Tracked {
            url: url.clone(),
            next: now + offset(&n.mac.octets(), interval),
            healthy_at: now,
            in_flight: false,
        });
        if entry.url != url {
            // A new health URL starts with a clean slate.
            entry.url = url;
            entry.healthy_at = now;
        }
    }
    tracked.retain(|mac, _| keep.contains(mac));
}

/// Starts the polls that are due; each waits for a slot so bursts stay bounded.
fn dispatch(
    app: &Arc<App>,
    tracked: &mut HashMap<MacAddr, Tracked>,
    probes: &Arc<Probes>,
    slots: &Arc<Semaphore>,
    tx: &mpsc::Sender<PollResult>,
) {
    let cfg = app.config();
    let (interval, after) = (cfg.health.interval, cfg.health.unhealthy_after);
    let now = Instant::now();
    for (mac, t) in tracked.iter_mut() {
        if t.in_flight || t.next > now {
            continue;
        }
        // Keep the node's slot in the interval; skip beats that were missed.
        while t.next <= now {
            t.next += interval;
        }
        let Some(node) = app.registry.get(*mac) else {
            continue;
        };
        t.in_flight = true;
        let failing_for = now.saturating_duration_since(t.healthy_at);
        let ask_provider =
            wants_provider(&node.phase, failing_for + interval.min(POLL_TIMEOUT), after)
                .then(|| node.provider_id.clone())
                .flatten();
        let job = Poll {
            mac: *mac,
            url: t.url.clone(),
            provider_id: ask_provider,
            probes: probes.clone(),
        };
        let (slots, tx) = (slots.clone(), tx.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let r = job.run().await;
            let _ = tx.send(r).await;
        });
    }
}

/// One poll to run.
struct Poll {
    mac: MacAddr,
    url: String,
    provider_id: Option<String>,
    probes: Arc<Probes>,
}

impl Poll {
    async fn run(self) -> PollResult {
        let result = get_health(&self.probes.health, &self.url).await;
        let provider_stopped = match (&result, &self.provider_id) {
            (Err(_), Some(id)) => provider_state(&self.probes.providers, id).await,
            _ => None,
        };
        PollResult {
            mac: self.mac,
            url: self.url,
            result,
            provider_stopped,
            at: Instant::now(),
        }
    }
}

/// `GET url`: healthy is any 2xx. The reason names the URL; it becomes the node's message.
async fn get_health(client: &HttpClient, url: &str) -> Result<(), String> {
    let call = Call::get(url).user_agent(HEALTH_AGENT);
    match client
        .call(call, MAX_HEALTH_BODY)
        .await
        .and_then(|a| a.success())
    {
        Ok(_) => Ok(()),
        Err(OutboundError::Request { reason, .. }) => Err(format!("GET {url}: bad URL: {reason}")),
        Err(e) => Err(format!("GET {url}: {e}")),
    }
}

/// Asks every provider status endpoint about a machine; the first that reports it
/// switched off wins. Failures count as "not known to be off".
async fn provider_state(sources: &[StatusSource], provider_id: &str) -> Option<String> {
    for s in sources {
        match s.state(provider_id).await {
            Ok(Some(state)) if STOPPED_STATES.contains(&state.as_str()) => return Some(state),
            Ok(_) => {}
            Err(e) => tracing::debug!(upstream = %s.upstream.name, error = %e,
                answer = e.excerpt(), "provider state not available"),
        }
    }
    None
}

/// Applies one poll result: remembers success, and asks the registry for a phase change
/// when the verdict calls for one.
fn handle(app: &Arc<App>, tracked: &mut HashMap<MacAddr, Tracked>, r: PollResult) {
    let Some(t) = tracked.get_mut(&r.mac) else {
        return;
    };
    t.in_flight = false;
    if t.url != r.url {
        return; // the URL changed while this poll ran
    }
    if r.result.is_ok() {
        t.healthy_at = r.at;
    }
    let Some(node) = app.registry.get(r.mac) else {
        return;
    };
    let after = app.config().health.unhealthy_after;
    let failing_for = r.at.saturating_duration_since(t.healthy_at);
    let returns_to = if r.result.is_ok() && matches!(node.phase, Phase::Unhealthy | Phase::Stopped)
    {
        let history = app
            .store
            .history(&r.mac.to_string(), RECOVERY_HISTORY)
            .unwrap_or_default();
        recovery_phase(history.iter().map(|h| (h.from.as_str(), h.to.as_str())))
    } else {
        Phase::Running
    };
    let Some((to, message)) = decide(
        &node.phase,
        &r.result,
        failing_for,
        after,
        r.provider_stopped.as_deref(),
        &returns_to,
    ) else {
        if let Err(e) = &r.result {
            tracing::debug!(mac = %r.mac, error = %e, "health check failed");
        }
        return;
    };
    let app = app.clone();
    let mac = r.mac;
    tokio::spawn(async move {
        let req = PhaseRequest {
            to: to.clone(),
            progress: None,
            message: message.clone(),
            source: "health".into(),
            force: false,
        };
        match app.registry.transition(mac, req).await {
            Ok(_) => {
                if matches!(to, Phase::Running | Phase::Clustered) {
                    tracing::info!(%mac, "health: {message}");
                } else {
                    tracing::warn!(%mac, phase = %to, "health: {message}");
                }
            }
            Err(e) => tracing::debug!(%mac, error = %e, "health verdict not applied"),
        }
    });
}
