//! What `bootctl relay` shows and changes: per-upstream backlog, failing events, dead
//! letters and recent deliveries; retrying and dropping undelivered events.

use crate::app::App;
use crate::store::{OutboxFilter, OutboxRow, StoreError};
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};

/// Rows listed per kind (failing, dead, recent).
pub const LIST_LIMIT: usize = 100;

/// A body of `POST /api/v1/relay/retry` or `/drop`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayAction {
    pub id: Option<i64>,
    #[serde(default)]
    pub all_dead: bool,
}

fn when(ms: i64) -> Value {
    if ms <= 0 {
        return Value::Null;
    }
    let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
    json!(humantime::format_rfc3339_millis(t).to_string())
}

/// A row as the API shows it: the event's phase and the time fields spelled out.
pub fn row_json(r: &OutboxRow) -> Value {
    let event: Value = serde_json::from_str(&r.payload).unwrap_or(Value::Null);
    let (due, delivered) = match r.state.as_str() {
        "pending" => (when(r.next_attempt), Value::Null),
        "delivered" => (Value::Null, when(r.next_attempt)),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "id": r.id,
        "upstream": r.upstream,
        "node": r.node,
        "seq": r.seq,
        "phase": event.get("to").cloned().unwrap_or(Value::Null),
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "next_attempt": due,
        "delivered_at": delivered,
        "created_at": r.created_at,
        "event": event,
    })
}

/// The whole picture for `GET /api/v1/relay` (blocking store reads).
pub fn overview(app: &App) -> Result<Value, StoreError> {
    let cfg = app.config();
    let counts = app.store.outbox_upstream_counts()?;
    let mut upstreams: Vec<Value> = Vec::new();
    for u in &cfg.upstream {
        let c = counts
            .iter()
            .find(|c| c.upstream == u.name)
            .cloned()
            .unwrap_or_default();
        let secret = match super::secret_status(u) {
            Ok(s) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        upstreams.push(json!({
            "name": u.name, "url": u.url, "configured": true, "secret": secret,
            "pending": c.pending, "failing": c.failing, "dead": c.dead,
            "delivered": c.delivered, "oldest_pending": c.oldest_pending,
        }));
    }
    // Rows of upstreams no longer in the config stay visible (and queued).
    for c in counts
        .iter()
        .filter(|c| !cfg.upstream.iter().any(|u| u.name == c.upstream))
    {
        upstreams.push(json!({
            "name": c.upstream, "url": null, "configured": false, "secret": null,
            "pending": c.pending, "failing": c.failing, "dead": c.dead,
            "delivered": c.delivered, "oldest_pending": c.oldest_pending,
        }));
    }
    let list = |f| -> Result<Vec<Value>, StoreError> {
        Ok(app
            .store
            .outbox_list(f, LIST_LIMIT)?
            .iter()
            .map(row_json)
            .collect())
    };
    Ok(json!({
        "upstreams": upstreams,
        "failing": list(OutboxFilter::Failing)?,
        "dead": list(OutboxFilter::Dead)?,
        "recent": list(OutboxFilter::Delivered)?,
    }))
}
