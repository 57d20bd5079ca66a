//! The upstream relay: delivers the durable outbox to every `[[upstream]]` as signed JSON,
//! at least once and in order per node, nodes in parallel, with backoff and dead letters.

pub mod admin;
pub mod metrics;
mod verdict;

// The client, signer and backoff live in `outbound`; these names stay for existing users.
pub use crate::outbound::{
    backoff, random_unit, Answer, HttpClient, Secret, BACKOFF_CAP, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
pub use verdict::{judge, Outcome, Verdict, MAX_REJECTED_ATTEMPTS};

use crate::app::App;
use crate::config::{Config, Upstream};
use crate::outbound::Call;
use crate::store::{OutboxRow, Store};
use bytes::Bytes;
use hyper::Uri;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

/// Deadline of one delivery (connect, send, answer).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Nodes delivered to one upstream at the same time.
pub const MAX_IN_FLIGHT: usize = 16;
/// How often due retries are looked for (new events wake the relay at once).
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Delivered rows kept per upstream for `bootctl relay`.
pub const KEEP_DELIVERED: usize = 1000;
/// How often delivered rows beyond `KEEP_DELIVERED` are removed.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Largest answer body read (and discarded) from an upstream.
const MAX_ANSWER: usize = 64 * 1024;
/// Rows one worker delivers back to back before giving its slot to other nodes.
const MAX_RUN: usize = 64;

/// An upstream as the relay uses it; `held` says why it is not delivered to.
struct Target {
    name: String,
    url: Uri,
    secret: Option<Secret>,
    client: Option<HttpClient>,
    held: Option<String>,
}

impl Target {
    fn from_config(u: &Upstream) -> Target {
        let mut held = None;
        let url = match u.url.parse::<Uri>() {
            Ok(url) => url,
            Err(e) => {
                held = Some(format!("url {:?} is unusable: {e}", u.url));
                Uri::default()
            }
        };
        let secret = match &u.secret_file {
            Some(path) => match Secret::load(path) {
                Ok(s) => Some(s),
                Err(e) => {
                    held = held.or(Some(e.to_string()));
                    None
                }
            },
            None => None,
        };
        let client = match HttpClient::new(u.ca_file.as_deref(), DELIVERY_TIMEOUT) {
            Ok(c) => Some(c),
            Err(e) => {
                held = held.or(Some(e.to_string()));
                None
            }
        };
        Target {
            name: u.name.clone(),
            url,
            secret,
            client,
            held,
        }
    }
}

/// Whether an upstream's secret is usable now: `Ok("none")`, `Ok("ok")` or why not.
pub fn secret_status(u: &Upstream) -> Result<&'static str, String> {
    match &u.secret_file {
        None => Ok("none"),
        Some(p) => Secret::load(p).map(|_| "ok").map_err(|e| e.to_string()),
    }
}

fn build_targets(cfg: &Config) -> HashMap<String, Arc<Target>> {
    let mut out = HashMap::new();
    for u in &cfg.upstream {
        let t = Target::from_config(u);
        match &t.held {
            Some(why) => tracing::error!(
                upstream = %t.name,
                "relay to {} is on hold, its events stay queued: {why}",
                t.name
            ),
            None if t.secret.is_none() => tracing::warn!(
                upstream = %t.name,
                "upstream {} has no secret_file: its events are sent unsigned",
                t.name
            ),
            None => tracing::info!(upstream = %t.name, url = %t.url, "relay ready"),
        }
        out.insert(t.name.clone(), Arc::new(t));
    }
    out
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// A queue: one upstream, one node. At most one worker per key keeps the node in order.
type Key = (String, String);

/// The relay service: runs until shutdown.
pub async fn serve(app: Arc<App>) -> Result<(), String> {
    let mut configs = app.config_watch();
    let mut targets = build_targets(&configs.borrow_and_update());
    let mut events = app.registry.subscribe();
    let mut relay = Dispatcher {
        store: app.store.clone(),
        metrics: app.metrics.clone(),
        workers: JoinSet::new(),
        busy: HashMap::new(),
        queues: HashSet::new(),
        renew: HashSet::new(),
        per_upstream: HashMap::new(),
    };
    let mut scan = tokio::time::interval(SCAN_INTERVAL);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => break,
            _ = scan.tick() => relay.dispatch_due(&targets).await,
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let mut macs = HashSet::from([ev.mac.to_string()]);
                    // Events come in bursts; take all that are already there.
                    while let Ok(ev) = events.try_recv() {
                        macs.insert(ev.mac.to_string());
                    }
                    for t in targets.values() {
                        for mac in &macs {
                            relay.start(t, mac.clone());
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "relay fell behind the event stream; scanning");
                    relay.dispatch_due(&targets).await;
                }
                Err(RecvError::Closed) => break,
            },
            Some(done) = relay.workers.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "relay worker failed; its queue is retried");
                        e.id()
                    }
                };
                relay.finish(id);
            }
            changed = configs.changed() => {
                if changed.is_err() { break; }
                targets = build_targets(&configs.borrow_and_update());
            }
            _ = prune.tick() => {
                match app.store.outbox_prune_delivered(KEEP_DELIVERED).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "old delivered events pruned"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune delivered events"),
                }
            }
        }
    }
    // Undelivered rows stay pending; an interrupted delivery is sent again next start.
    relay.workers.abort_all();
    while relay.workers.join_next().await.is_some() {}
    Ok(())
}

/// Which queues have a worker, and starting new ones within the bounds.
struct Dispatcher {
    store: Arc<Store>,
    metrics: Arc<crate::metrics::Metrics>,
    workers: JoinSet<()>,
    /// The queue each running worker drains.
    busy: HashMap<tokio::task::Id, (Key, Arc<Target>)>,
    queues: HashSet<Key>,
    /// Queues that got a new event while their worker ran: the worker may have looked
    /// before the row was there, so it is started again when it ends.
    renew: HashSet<Key>,
    per_upstream: HashMap<String, usize>,
}

impl Dispatcher {
    fn in_flight(&self, upstream: &str) -> usize {
        self.per_upstream.get(upstream).copied().unwrap_or(0)
    }

    /// Starts a worker for a node's queue unless one runs or the upstream is at its bound
    /// (the periodic scan picks skipped queues up).
    fn start(&mut self, target: &Arc<Target>, node: String) {
        if target.held.is_some() || self.in_flight(&target.name) >= MAX_IN_FLIGHT {
            return;
        }
        let key = (target.name.clone(), node);
        if !self.queues.insert(key.clone()) {
            self.renew.insert(key);
            return;
        }
        *self.per_upstream.entry(target.name.clone()).or_insert(0) += 1;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let worker_target = target.clone();
        let node = key.1.clone();
        let handle = self.workers.spawn(async move {
            drain(&store, &metrics.relay, &worker_target, &node).await;
        });
        self.busy.insert(handle.id(), (key, target.clone()));
    }

    fn finish(&mut self, id: tokio::task::Id) {
        let Some((key, target)) = self.busy.remove(&id) else {
            return;
        };
        self.queues.remove(&key);
        if let Some(n) = self.per_upstream.get_mut(&key.0) {
            *n = n.saturating_sub(1);
        }
        if self.renew.remove(&key) {
            self.start(&target, key.1);
        }
    }

    /// Starts workers for the due heads of every upstream, within the bounds.
    async fn dispatch_due(&mut self, targets: &HashMap<String, Arc<Target>>) {
        for t in targets.values() {
            if t.held.is_some() {
                continue;
            }
            let free = MAX_IN_FLIGHT.saturating_sub(self.in_flight(&t.name));
            if free == 0 {
                continue;
            }
            // Busy queues may be among the heads; ask for enough to fill the free slots.
            let limit = free + self.in_flight(&t.name);
            let store = self.store.clone();
            let name = t.name.clone();
            let heads =
                tokio::task::spawn_blocking(move || store.outbox_due_heads(&name, now_ms(), limit))
                    .await;
            let heads = match heads {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    tracing::warn!(upstream = %t.name, error = %e, "cannot read the outbox");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(upstream = %t.name, error = %e, "outbox read task failed");
                    continue;
                }
            };
            for head in heads {
                self.start(t, head.node);
            }
        }
    }
}

/// Delivers one node's due rows for one upstream, in order, until its queue is empty,
/// its head must wait (backoff), or `MAX_RUN` rows went.
async fn drain(store: &Arc<Store>, metrics: &metrics::RelayMetrics, target: &Target, node: &str) {
    for _ in 0..MAX_RUN {
        let s = store.clone();
        let (name, key) = (target.name.clone(), node.to_string());
        let head = match tokio::task::spawn_blocking(move || s.outbox_head(&name, &key)).await {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(upstream = %target.name, node, error = %e, "cannot read the outbox");
                return;
            }
            Err(_) => return,
        };
        if head.next_attempt > now_ms() {
            return;
        }
        let attempts = head.attempts.saturating_add(1);
        let outcome = deliver(target, &head, attempts).await;
        let verdict = judge(&outcome, attempts, random_unit());
        let result = match &verdict {
            Verdict::Delivered => "ok",
            Verdict::Retry(..) => "failed",
            Verdict::Dead(_) => "dead",
        };
        metrics.delivered(&target.name, result);
        let written = match &verdict {
            Verdict::Delivered => {
                tracing::debug!(upstream = %target.name, node, seq = head.seq, attempts,
                    "event delivered");
                store.outbox_delivered(head.id, attempts, now_ms()).await
            }
            Verdict::Retry(delay, error) => {
                let answer = answer_excerpt(&outcome);
                if attempts.is_power_of_two() {
                    tracing::warn!(upstream = %target.name, node, seq = head.seq, attempts,
                        retry_in = ?delay, answer, "event delivery failed: {error}");
                } else {
                    tracing::debug!(upstream = %target.name, node, seq = head.seq, attempts,
                        retry_in = ?delay, answer, "event delivery failed: {error}");
                }
                let next = now_ms().saturating_add(delay.as_millis().min(i64::MAX as u128) as i64);
                store
                    .outbox_failed(head.id, attempts, next, error.clone())
                    .await
            }
            Verdict::Dead(error) => {
                tracing::error!(upstream = %target.name, node, seq = head.seq, id = head.id,
                    attempts, answer = answer_excerpt(&outcome), "DEAD LETTER: the upstream keeps refusing this event ({error}); \
                    it is set aside (bootctl relay retry --id {}) and the node's later events go on",
                    head.id);
                store.outbox_dead(head.id, attempts, error.clone()).await
            }
        };
        if let Err(e) = written {
            tracing::warn!(upstream = %target.name, node, error = %e, "cannot record a delivery");
            return;
        }
        if matches!(verdict, Verdict::Retry(..)) {
            return;
        }
    }
}

/// The start of the upstream's answer to show in the log ("" without one).
fn answer_excerpt(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Status { excerpt, .. } => excerpt,
        Outcome::Transport(_) => "",
    }
}

/// One signed POST of a stored event.
async fn deliver(target: &Target, row: &OutboxRow, attempts: u32) -> Outcome {
    let Some(client) = &target.client else {
        return Outcome::Transport(crate::outbound::OutboundError::Transport(
            "no HTTP client".into(),
        ));
    };
    let call = Call::post_json(
        target.url.to_string(),
        Bytes::from(row.payload.clone().into_bytes()),
    )
    .header("x-bootd-event", row.id)
    .header("x-bootd-attempt", attempts)
    .signed(target.secret.as_ref());
    Outcome::of(client.call(call, MAX_ANSWER).await)
}
