//! Node rows, phase transitions and their history.

use super::{Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeRow {
    pub mac: String,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub ip: Option<String>,
    pub uuid: Option<String>,
    pub provider_id: Option<String>,
    pub health_url: Option<String>,
    pub console_url: Option<String>,
    pub boot: String,
    pub next_boot: Option<String>,
    /// JSON object of free-form variables.
    pub vars: String,
    /// `config`, `runtime` or `discovered`.
    pub origin: String,
    pub phase: String,
    pub progress: u8,
    pub message: String,
    pub token_gen: u32,
    pub token_hash: Option<String>,
    pub seq: u64,
    pub created_at: String,
    pub updated_at: String,
    pub phase_since: String,
}

/// One row of `deployment_history`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub at: String,
    pub from: String,
    pub to: String,
    pub progress: u8,
    pub message: String,
    pub source: String,
}

/// A phase change to record: the node row after the change, its history row, and the
/// relay payloads (upstream name, JSON) written to the outbox in the same transaction.
#[derive(Debug, Clone)]
pub struct TransitionRow {
    pub node: NodeRow,
    pub history: HistoryRow,
    pub outbox: Vec<(String, String)>,
}

/// A write queued in commit order; `wait` resolves once it is durable.
pub struct Pending(oneshot::Receiver<Result<(), StoreError>>);

impl Pending {
    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

const NODE_COLUMNS: &str = "mac, hostname, grp, profile, ip, uuid, provider_id, health_url, \
    console_url, boot, next_boot, vars, origin, phase, progress, message, token_gen, token_hash, \
    seq, created_at, updated_at, phase_since";

fn node_from_row(r: &Row) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        mac: r.get(0)?,
        hostname: r.get(1)?,
        group: r.get(2)?,
        profile: r.get(3)?,
        ip: r.get(4)?,
        uuid: r.get(5)?,
        provider_id: r.get(6)?,
        health_url: r.get(7)?,
        console_url: r.get(8)?,
        boot: r.get(9)?,
        next_boot: r.get(10)?,
        vars: r.get(11)?,
        origin: r.get(12)?,
        phase: r.get(13)?,
        progress: r.get::<_, i64>(14)?.clamp(0, 100) as u8,
        message: r.get(15)?,
        token_gen: r.get::<_, i64>(16)?.clamp(0, u32::MAX as i64) as u32,
        token_hash: r.get(17)?,
        seq: r.get::<_, i64>(18)?.max(0) as u64,
        created_at: r.get(19)?,
        updated_at: r.get(20)?,
        phase_since: r.get(21)?,
    })
}

fn write_node(c: &Connection, n: &NodeRow) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT INTO nodes ({NODE_COLUMNS}) VALUES \
             (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22) \
             ON CONFLICT(mac) DO UPDATE SET hostname=?2, grp=?3, profile=?4, ip=?5, uuid=?6, \
             provider_id=?7, health_url=?8, console_url=?9, boot=?10, next_boot=?11, vars=?12, \
             origin=?13, phase=?14, progress=?15, message=?16, token_gen=?17, token_hash=?18, \
             seq=?19, updated_at=?21, phase_since=?22"
        ),
        params![
            n.mac,
            n.hostname,
            n.group,
            n.profile,
            n.ip,
            n.uuid,
            n.provider_id,
            n.health_url,
            n.console_url,
            n.boot,
            n.next_boot,
            n.vars,
            n.origin,
            n.phase,
            n.progress as i64,
            n.message,
            n.token_gen as i64,
            n.token_hash,
            n.seq as i64,
            n.created_at,
            n.updated_at,
            n.phase_since,
        ],
    )?;
    Ok(())
}

fn write_history(c: &Connection, mac: &str, h: &HistoryRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO deployment_history (node, at, from_phase, to_phase, progress, message, source) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![mac, h.at, h.from, h.to, h.progress as i64, h.message, h.source],
    )?;
    Ok(())
}

impl Store {
    /// Every node, for the registry at start.
    pub fn load_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY mac"))?;
            let rows = st.query_map([], node_from_row)?;
            rows.collect()
        })
    }

    /// One node as stored.
    pub fn load_node(&self, mac: &str) -> Result<Option<NodeRow>, StoreError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE mac = ?1"),
                [mac],
                node_from_row,
            )
            .optional()
        })
    }

    /// The history of a node, oldest first (at most `limit` newest rows).
    pub fn history(&self, mac: &str, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        let mut rows = self.read(|c| {
            let mut st = c.prepare(
                "SELECT at, from_phase, to_phase, progress, message, source \
                 FROM deployment_history WHERE node = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![mac, limit as i64], |r| {
                Ok(HistoryRow {
                    at: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    progress: r.get::<_, i64>(3)?.clamp(0, 100) as u8,
                    message: r.get(4)?,
                    source: r.get(5)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// Queues an insert-or-update of a node, with an optional history row.
    pub fn queue_node(
        &self,
        node: NodeRow,
        history: Option<HistoryRow>,
    ) -> Result<Pending, StoreError> {
        let rx = self.writer.enqueue(
            Box::new(move |c| {
                write_node(c, &node)?;
                if let Some(h) = &history {
                    write_history(c, &node.mac, h)?;
                }
                Ok(())
            }),
            None,
        )?;
        Ok(Pending(rx))
    }

    /// Queues a phase transition: node row, history row and outbox rows in one transaction.
    /// `after` runs on the writer thread once committed, in commit order (event fan-out).
    pub fn queue_transition(
        &self,
        t: TransitionRow,
        after: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<Pending, StoreError> {
        let rx = self.writer.enqueue(
            Box::new(move |c| {
                write_node(c, &t.node)?;
                write_history(c, &t.node.mac, &t.history)?;
                for (upstream, payload) in &t.outbox {
                    c.execute(
                        "INSERT INTO outbox (upstream, node, seq, payload, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            upstream,
                            t.node.mac,
                            t.node.seq as i64,
                            payload,
                            t.history.at
                        ],
                    )?;
                }
                Ok(())
            }),
            after,
        )?;
        Ok(Pending(rx))
    }

    /// Queues the removal of a node with its history and hardware reports.
    pub fn queue_delete_node(&self, mac: String) -> Result<Pending, StoreError> {
        let rx = self.writer.enqueue(
            Box::new(move |c| {
                c.execute("DELETE FROM nodes WHERE mac = ?1", [&mac])?;
                Ok(())
            }),
            None,
        )?;
        Ok(Pending(rx))
    }

    /// Number of history rows of a node (tests and status).
    pub fn history_len(&self, mac: &str) -> Result<u64, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM deployment_history WHERE node = ?1",
                [mac],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(mac: &str) -> NodeRow {
        NodeRow {
            mac: mac.into(),
            boot: "profile".into(),
            vars: "{}".into(),
            origin: "runtime".into(),
            phase: "known".into(),
            created_at: "t0".into(),
            updated_at: "t0".into(),
            phase_since: "t0".into(),
            ..NodeRow::default()
        }
    }

    #[tokio::test]
    async fn transition_writes_node_history_and_outbox_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mac = "52:54:00:00:00:01";
        store
            .queue_node(node(mac), None)
            .expect("queue")
            .wait()
            .await
            .expect("commit");
        let mut after = node(mac);
        after.phase = "dhcp".into();
        after.seq = 1;
        let t = TransitionRow {
            node: after.clone(),
            history: HistoryRow {
                at: "t1".into(),
                from: "known".into(),
                to: "dhcp".into(),
                progress: 15,
                message: String::new(),
                source: "dhcp".into(),
            },
            outbox: vec![("provider".into(), "{}".into())],
        };
        store
            .queue_transition(t, None)
            .expect("queue")
            .wait()
            .await
            .expect("commit");
        assert_eq!(store.load_node(mac).expect("load"), Some(after));
        assert_eq!(store.history(mac, 100).expect("history").len(), 1);
        assert_eq!(store.outbox_pending(10).expect("outbox").len(), 1);
    }

    #[tokio::test]
    async fn a_failing_job_does_not_sink_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        // Queued back to back, both land in one batch; only the bad one fails.
        let bad = store
            .writer
            .enqueue(
                Box::new(|c| {
                    c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                    Ok(())
                }),
                None,
            )
            .expect("queue");
        let good = store.queue_node(node("y"), None).expect("queue");
        assert!(bad.await.expect("answer").is_err());
        good.wait().await.expect("good commits");
        assert_eq!(store.load_nodes().expect("nodes").len(), 1);
    }
}
