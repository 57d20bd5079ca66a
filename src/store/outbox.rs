//! The relay outbox: events written with their transition, delivered later, in order per node.

use super::{Store, StoreError};
use rusqlite::params;

/// One undelivered (or dead-lettered) event.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub upstream: String,
    pub node: String,
    pub seq: u64,
    pub payload: String,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: Option<String>,
    pub state: String,
}

impl Store {
    /// The oldest pending events, up to `limit`, in delivery order.
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, upstream, node, seq, payload, attempts, next_attempt, last_error, state \
                 FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?1",
            )?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    upstream: r.get(1)?,
                    node: r.get(2)?,
                    seq: r.get::<_, i64>(3)?.max(0) as u64,
                    payload: r.get(4)?,
                    attempts: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
                    next_attempt: r.get(6)?,
                    last_error: r.get(7)?,
                    state: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Counts of outbox rows by state, for status and metrics.
    pub fn outbox_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
            rows.collect()
        })
    }
}
