//! What `bootctl relay` shows and changes: per-upstream backlog, failing events, dead
//! letters and recent deliveries; retrying and dropping undelivered events.

use crate::app::App;
use crate::nodes::Phase;
use crate::store::{OutboxFilter, OutboxRow, StoreError};
use bootd_api::{RelayEntry, RelayOverview, RelayUpstream, Timestamp};
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
