//! DHCP leases (full mode): written before the ACK leaves, read back at start.

use super::{Store, StoreError};
use rusqlite::params;

/// A lease as stored. `expires` is seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub mac: String,
    pub ip: String,
    pub expires: i64,
    pub hostname: Option<String>,
    /// `offered`, `bound`, `released` or `declined`.
    pub state: String,
}

impl Store {
    /// Every stored lease.
    pub fn load_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT mac, ip, expires, hostname, state FROM leases")?;
            let rows = st.query_map([], |r| {
                Ok(LeaseRow {
                    mac: r.get(0)?,
                    ip: r.get(1)?,
                    expires: r.get(2)?,
                    hostname: r.get(3)?,
                    state: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Whether `mac` holds a live (offered or bound, not expired at `now`, seconds since
    /// the epoch) lease of `ip`: one indexed read.
    pub fn lease_holds(&self, mac: &str, ip: &str, now: i64) -> Result<bool, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT COUNT(*) FROM leases WHERE mac = ?1 AND ip = ?2 AND expires > ?3 \
                 AND state IN ('offered', 'bound')",
            )?;
            let n: i64 = st.query_row(params![mac, ip, now], |r| r.get(0))?;
            Ok(n > 0)
        })
    }

    /// Writes a burst of leases in one commit; returns once they are durable.
    pub async fn save_leases(&self, leases: Vec<LeaseRow>) -> Result<(), StoreError> {
        self.writer
            .submit(move |c| {
                let mut st = c.prepare_cached(
                    "INSERT INTO leases (mac, ip, expires, hostname, state) VALUES (?1,?2,?3,?4,?5) \
                     ON CONFLICT(mac) DO UPDATE SET ip=?2, expires=?3, hostname=?4, state=?5",
                )?;
                for l in &leases {
                    st.execute(params![l.mac, l.ip, l.expires, l.hostname, l.state])?;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lease = LeaseRow {
            mac: "52:54:00:00:00:09".into(),
            ip: "10.0.0.100".into(),
            expires: 1_900_000_000,
            hostname: Some("a".into()),
            state: "bound".into(),
        };
        {
            let s = Store::open(dir.path()).expect("open");
            s.save_leases(vec![lease.clone()]).await.expect("save");
            s.close().await;
        }
        let s = Store::open(dir.path()).expect("reopen");
        assert_eq!(s.load_leases().expect("load"), vec![lease]);
    }
}
