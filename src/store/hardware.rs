//! Hardware reports: one row per report, the normalized inventory as JSON.

use super::{Store, StoreError};
use rusqlite::{params, OptionalExtension};

/// One stored report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HardwareRow {
    pub node: String,
    pub at: String,
    /// The normalized inventory (JSON text).
    pub inventory: String,
    /// What changed since the report before, as a JSON array of strings.
    pub changes: String,
    pub source_ip: Option<String>,
}

/// The first and last report of a node, for the discovered list.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareSeen {
    pub node: String,
    pub first_seen: String,
    pub last_seen: String,
    pub inventory: String,
}

impl Store {
    /// Stores a report; resolves once durable.
    pub async fn save_hardware(&self, row: HardwareRow) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                c.execute(
                    "INSERT INTO hardware (node, at, inventory, changed, changes, source_ip) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        row.node,
                        row.at,
                        row.inventory,
                        row.changes != "[]",
                        row.changes,
                        row.source_ip
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// The newest report of a node.
    pub fn latest_hardware(&self, mac: &str) -> Result<Option<HardwareRow>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT node, at, inventory, changes, source_ip FROM hardware WHERE node = ?1 ORDER BY id DESC LIMIT 1",
                [mac],
                |r| {
                    Ok(HardwareRow {
                        node: r.get(0)?,
                        at: r.get(1)?,
                        inventory: r.get(2)?,
                        changes: r.get::<_, Option<String>>(3)?.unwrap_or_else(|| "[]".into()),
                        source_ip: r.get(4)?,
                    })
                },
            )
            .optional()
        })
    }

    /// First/last report time and newest inventory of every node that reported.
    pub fn hardware_seen(&self) -> Result<Vec<HardwareSeen>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT h.node, MIN(h.at), MAX(h.at), \
                 (SELECT inventory FROM hardware x WHERE x.node = h.node ORDER BY x.id DESC LIMIT 1) \
                 FROM hardware h GROUP BY h.node ORDER BY h.node",
            )?;
            let rows = st.query_map([], |r| {
                Ok(HardwareSeen {
                    node: r.get(0)?,
                    first_seen: r.get(1)?,
                    last_seen: r.get(2)?,
                    inventory: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}
