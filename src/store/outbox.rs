//! The relay outbox: events written with their transition, delivered later, in order per node.
//! Rows are `pending` (due at `next_attempt`), `delivered` (kept, bounded, for display) or `dead`.

use super::{Store, StoreError};
use rusqlite::{params, Row};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One outbox row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub upstream: String,
    pub node: String,
    pub seq: u64,
    pub payload: String,
    pub attempts: u32,
    /// Unix milliseconds: when a pending row is due; when a delivered row was delivered.
    pub next_attempt: i64,
    pub last_error: Option<String>,
    pub state: String,
    pub created_at: String,
}

/// Row counts of one upstream, for `bootctl relay` and status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OutboxCounts {
    pub upstream: String,
    /// Waiting for delivery (including the failing ones).
    pub pending: u64,
    /// Pending rows that failed at least once.
    pub failing: u64,
    pub dead: u64,
    /// Delivered rows still kept for display.
    pub delivered: u64,
    /// `created_at` of the oldest pending row.
    pub oldest_pending: Option<String>,
}

/// Which rows `outbox_list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFilter {
    /// Pending rows that failed at least once, oldest first.
    Failing,
    /// Dead letters, oldest first.
    Dead,
    /// Delivered rows, newest first.
    Delivered,
}

const COLUMNS: &str =
    "id, upstream, node, seq, payload, attempts, next_attempt, last_error, state, created_at";

fn row(r: &Row) -> rusqlite::Result<OutboxRow> {
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
        created_at: r.get(9)?,
    })
}

impl Store {
    /// The oldest pending events, up to `limit`, in delivery order.
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?1"
            ))?;
            let rows = st.query_map(params![limit as i64], row)?;
            rows.collect()
        })
    }

    /// The head (oldest pending row) of every node of `upstream` that is due at `now_ms`,
    /// most overdue first, up to `limit`. Later rows of a node wait behind its head.
    pub fn outbox_due_heads(
        &self,
        upstream: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE id IN \
                   (SELECT MIN(id) FROM outbox WHERE state = 'pending' AND upstream = ?1 \
                    GROUP BY node) \
                 AND next_attempt <= ?2 ORDER BY next_attempt, id LIMIT ?3"
            ))?;
            let rows = st.query_map(params![upstream, now_ms, limit as i64], row)?;
            rows.collect()
        })
    }

    /// The head of one node's queue for one upstream, due or not.
    pub fn outbox_head(&self, upstream: &str, node: &str) -> Result<Option<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND upstream = ?1 \
                 AND node = ?2 ORDER BY id LIMIT 1"
            ))?;
            let mut rows = st.query_map(params![upstream, node], row)?;
            rows.next().transpose()
        })
    }

    /// One row by id.
    pub fn outbox_get(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))?;
            let mut rows = st.query_map(params![id], row)?;
            rows.next().transpose()
        })
    }

    /// Marks a row delivered at `now_ms` (only if still pending: a concurrent drop wins).
    pub async fn outbox_delivered(
        &self,
        id: i64,
        attempts: u32,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                c.prepare_cached(
                    "UPDATE outbox SET state = 'delivered', attempts = ?2, next_attempt = ?3, \
                     last_error = NULL WHERE id = ?1 AND state = 'pending'",
                )?
                .execute(params![id, attempts as i64, now_ms])?;
                Ok(())
            })
            .await
    }

    /// Records a failed attempt; the row stays pending, due again at `next_ms`.
    pub async fn outbox_failed(
        &self,
        id: i64,
        attempts: u32,
        next_ms: i64,
        error: String,
    ) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                c.prepare_cached(
                    "UPDATE outbox SET attempts = ?2, next_attempt = ?3, last_error = ?4 \
                     WHERE id = ?1 AND state = 'pending'",
                )?
                .execute(params![id, attempts as i64, next_ms, error])?;
                Ok(())
            })
            .await
    }

    /// Dead-letters a row: it is kept but no longer delivered, and its node's later rows go on.
    pub async fn outbox_dead(
        &self,
        id: i64,
        attempts: u32,
        error: String,
    ) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                c.prepare_cached(
                    "UPDATE outbox SET state = 'dead', attempts = ?2, last_error = ?3 \
                     WHERE id = ?1 AND state = 'pending'",
                )?
                .execute(params![id, attempts as i64, error])?;
                Ok(())
            })
            .await
    }

    /// Moves dead letters back to pending (one by id, or all); returns how many moved.
    pub async fn outbox_retry(&self, id: Option<i64>) -> Result<usize, StoreError> {
        let moved = Arc::new(AtomicUsize::new(0));
        let count = moved.clone();
        self.writer
            .submit(move |c| {
                let n = match id {
                    Some(id) => c.execute(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = 0 \
                         WHERE id = ?1 AND state = 'dead'",
                        params![id],
                    )?,
                    None => c.execute(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = 0 \
                         WHERE state = 'dead'",
                        [],
                    )?,
                };
                count.store(n, Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(moved.load(Ordering::Relaxed))
    }

    /// Deletes one undelivered row (pending or dead); returns whether it existed.
    pub async fn outbox_drop(&self, id: i64) -> Result<bool, StoreError> {
        let dropped = Arc::new(AtomicUsize::new(0));
        let count = dropped.clone();
        self.writer
            .submit(move |c| {
                let n = c.execute(
                    "DELETE FROM outbox WHERE id = ?1 AND state IN ('pending', 'dead')",
                    params![id],
                )?;
                count.store(n, Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(dropped.load(Ordering::Relaxed) > 0)
    }

    /// Keeps only the newest `keep` delivered rows of each upstream; returns how many went.
    pub async fn outbox_prune_delivered(&self, keep: usize) -> Result<usize, StoreError> {
        let pruned = Arc::new(AtomicUsize::new(0));
        let count = pruned.clone();
        self.writer
            .submit(move |c| {
                let n = c.execute(
                    "DELETE FROM outbox WHERE state = 'delivered' AND id NOT IN \
                       (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                          (PARTITION BY upstream ORDER BY id DESC) AS rank \
                        FROM outbox WHERE state = 'delivered') WHERE rank <= ?1)",
                    params![keep as i64],
                )?;
                count.store(n, Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(pruned.load(Ordering::Relaxed))
    }

    /// Counts of outbox rows by state, for status and metrics.
    pub fn outbox_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
            rows.collect()
        })
    }

    /// Per-upstream counts, ordered by upstream name.
    pub fn outbox_upstream_counts(&self) -> Result<Vec<OutboxCounts>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT upstream, \
                   SUM(state = 'pending'), SUM(state = 'pending' AND attempts > 0), \
                   SUM(state = 'dead'), SUM(state = 'delivered'), \
                   MIN(CASE WHEN state = 'pending' THEN created_at END) \
                 FROM outbox GROUP BY upstream ORDER BY upstream",
            )?;
            let rows = st.query_map([], |r| {
                let n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
                };
                Ok(OutboxCounts {
                    upstream: r.get(0)?,
                    pending: n(1)?,
                    failing: n(2)?,
                    dead: n(3)?,
                    delivered: n(4)?,
                    oldest_pending: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Rows of one kind, up to `limit` (see `OutboxFilter` for the order).
    pub fn outbox_list(
        &self,
        filter: OutboxFilter,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let clause = match filter {
            OutboxFilter::Failing => "state = 'pending' AND attempts > 0 ORDER BY id",
            OutboxFilter::Dead => "state = 'dead' ORDER BY id",
            OutboxFilter::Delivered => "state = 'delivered' ORDER BY id DESC",
        };
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE {clause} LIMIT ?1"
            ))?;
            let rows = st.query_map(params![limit as i64], row)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryRow, NodeRow, TransitionRow};

    fn transition(mac: &str, seq: u64, upstreams: &[&str]) -> TransitionRow {
        TransitionRow {
            node: NodeRow {
                mac: mac.into(),
                boot: "profile".into(),
                vars: "{}".into(),
                origin: "runtime".into(),
                phase: "installing".into(),
                seq,
                created_at: "t".into(),
                updated_at: "t".into(),
                phase_since: "t".into(),
                ..NodeRow::default()
            },
            history: HistoryRow {
                at: format!("t{seq}"),
                from: "known".into(),
                to: "installing".into(),
                progress: 30,
                message: String::new(),
                source: "test".into(),
            },
            outbox: upstreams
                .iter()
                .map(|u| (u.to_string(), format!("{{\"seq\":{seq}}}")))
                .collect(),
        }
    }

    #[tokio::test]
    async fn heads_wait_in_order_and_dead_letters_unblock_the_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for seq in 1..=3 {
            for mac in ["aa", "bb"] {
                store
                    .queue_transition(transition(mac, seq, &["p", "q"]), None)
                    .expect("queue")
                    .wait()
                    .await
                    .expect("commit");
            }
        }
        let heads = store.outbox_due_heads("p", 0, 10).expect("heads");
        assert_eq!(heads.len(), 2);
        assert!(heads.iter().all(|h| h.seq == 1 && h.upstream == "p"));

        // A failing head holds its node back until due.
        let aa = heads.iter().find(|h| h.node == "aa").expect("aa").clone();
        store
            .outbox_failed(aa.id, 1, 5_000, "HTTP 500".into())
            .await
            .expect("fail");
        let heads = store.outbox_due_heads("p", 1_000, 10).expect("heads");
        assert_eq!(
            heads.iter().map(|h| &h.node[..]).collect::<Vec<_>>(),
            ["bb"]
        );
        assert_eq!(store.outbox_due_heads("p", 5_000, 10).expect("h").len(), 2);

        // Dead-lettering moves the node on to its next row.
        store
            .outbox_dead(aa.id, 5, "HTTP 400".into())
            .await
            .expect("dead");
        let head = store.outbox_head("p", "aa").expect("head").expect("some");
        assert_eq!(head.seq, 2);
        let counts = store.outbox_upstream_counts().expect("counts");
        assert_eq!(counts.first().map(|c| (c.pending, c.dead)), Some((5, 1)));

        // Retry puts it back in front; drop removes it.
        assert_eq!(store.outbox_retry(None).await.expect("retry"), 1);
        assert_eq!(
            store.outbox_head("p", "aa").expect("h").map(|h| h.seq),
            Some(1)
        );
        assert!(store.outbox_drop(aa.id).await.expect("drop"));
        assert!(!store.outbox_drop(aa.id).await.expect("drop twice"));

        // Delivered rows are kept up to a bound per upstream.
        for r in store.outbox_pending(100).expect("pending") {
            store.outbox_delivered(r.id, 1, 7).await.expect("delivered");
        }
        assert_eq!(store.outbox_prune_delivered(2).await.expect("prune"), 7);
        let kept = store
            .outbox_list(OutboxFilter::Delivered, 10)
            .expect("list");
        assert_eq!(kept.len(), 4);
        assert!(kept.windows(2).all(|w| w[0].id > w[1].id));
    }
}
