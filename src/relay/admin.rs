//! What `bootctl relay` shows and changes: per-upstream backlog, failing events, dead
//! letters and recent deliveries; retrying and dropping undelivered events.

use crate::app::App;
use crate::nodes::Phase;
use crate::store::{OutboxFilter, OutboxRow, StoreError};
use bootd_api::{RelayBacklog, RelayEntry, RelayOverview, RelayUpstream, Timestamp};
use serde_json::Value;

/// Rows listed per kind (failing, dead, recent).
pub const LIST_LIMIT: usize = 100;

/// A body of `POST /api/v1/relay/retry` or `/drop`.
pub use bootd_api::RelayAction;

fn when(ms: i64) -> Option<Timestamp> {
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Timestamp::from_unix_millis)
}

/// A row as the API shows it: the event's phase and the time fields spelled out.
pub fn row_view(r: &OutboxRow) -> RelayEntry {
    let event: Value = serde_json::from_str(&r.payload).unwrap_or(Value::Null);
    let (next_attempt, delivered_at) = match r.state.as_str() {
        "pending" => (when(r.next_attempt), None),
        "delivered" => (None, when(r.next_attempt)),
        _ => (None, None),
    };
    RelayEntry {
        id: r.id,
        upstream: r.upstream.clone(),
        node: r.node.clone(),
        seq: r.seq,
        phase: event
            .get("to")
            .and_then(Value::as_str)
            .map(Phase::from_stored),
        state: r.state.clone(),
        attempts: r.attempts,
        last_error: r.last_error.clone(),
        next_attempt,
        delivered_at,
        created_at: Timestamp::from_stored(&r.created_at),
        event,
    }
}

/// The backlog per upstream for `GET /api/v1/status`: every configured upstream (zeros
/// when all went out) and any other that still has rows (blocking store read; an
/// unreadable store shows none).
pub fn backlog(app: &App) -> Vec<RelayBacklog> {
    let counts = match app.store.outbox_upstream_counts() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the relay backlog");
            return Vec::new();
        }
    };
    let row = |name: &str| {
        let c = counts.iter().find(|c| c.upstream == name);
        RelayBacklog {
            upstream: name.to_string(),
            pending: c.map_or(0, |c| c.pending),
            failing: c.map_or(0, |c| c.failing),
            dead: c.map_or(0, |c| c.dead),
            oldest_pending: c
                .and_then(|c| c.oldest_pending.as_deref())
                .map(Timestamp::from_stored),
        }
    };
    let cfg = app.config();
    let mut out: Vec<RelayBacklog> = cfg.upstream.iter().map(|u| row(&u.name)).collect();
    for c in &counts {
        if !cfg.upstream.iter().any(|u| u.name == c.upstream) && (c.pending > 0 || c.dead > 0) {
            out.push(row(&c.upstream));
        }
    }
    out
}

/// The whole picture for `GET /api/v1/relay` (blocking store reads).
pub fn overview(app: &App) -> Result<RelayOverview, StoreError> {
    let cfg = app.config();
    let counts = app.store.outbox_upstream_counts()?;
    let upstream = |c: &crate::store::OutboxCounts, url: Option<String>, secret: Option<String>| {
        RelayUpstream {
            name: c.upstream.clone(),
            url: url.clone(),
            configured: url.is_some(),
            secret,
            pending: c.pending,
            failing: c.failing,
            dead: c.dead,
            delivered: c.delivered,
            oldest_pending: c.oldest_pending.as_deref().map(Timestamp::from_stored),
        }
    };
    let mut upstreams = Vec::new();
    for u in &cfg.upstream {
        let mut c = counts
            .iter()
            .find(|c| c.upstream == u.name)
            .cloned()
            .unwrap_or_default();
        c.upstream = u.name.clone();
        let secret = match super::secret_status(u) {
            Ok(s) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        upstreams.push(upstream(&c, Some(u.url.clone()), Some(secret)));
    }
    // Rows of upstreams no longer in the config stay visible (and queued).
    for c in counts
        .iter()
        .filter(|c| !cfg.upstream.iter().any(|u| u.name == c.upstream))
    {
        upstreams.push(upstream(c, None, None));
    }
    let list = |f| -> Result<Vec<RelayEntry>, StoreError> {
        Ok(app
            .store
            .outbox_list(f, LIST_LIMIT)?
            .iter()
            .map(row_view)
            .collect())
    };
    Ok(RelayOverview {
        upstreams,
        failing: list(OutboxFilter::Failing)?,
        dead: list(OutboxFilter::Dead)?,
        recent: list(OutboxFilter::Delivered)?,
    })
}
