//! A [`Backend`] without bootd's store, for the standalone DHCP server (`examples/dhcpd`,
//! `benches/dhcp.sh`) and the DHCP tests: leases go to an append-only log file, one
//! `write` + `fdatasync` per group commit; nodes come from an in-memory map.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use super::{Arch, Backend, BackendError, Lease, LeaseState, NodeBoot};
use crate::mac::MacAddr;

/// One `offered` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    pub mac: MacAddr,
    pub ip: Option<Ipv4Addr>,
    pub arch: Option<Arch>,
    pub iface: String,
}

/// File-backed leases, in-memory nodes.
pub struct FileBackend {
    path: PathBuf,
    file: Mutex<File>,
    pub nodes: Mutex<HashMap<MacAddr, NodeBoot>>,
    /// Node returned for MACs not in `nodes`.
    pub default_node: NodeBoot,
    pub offered: Mutex<Vec<Offered>>,
    /// Keep `offered` reports (tests); the benchmark turns it off to measure the service.
    pub record_offers: bool,
}

fn state_name(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Released => "released",
        LeaseState::Declined => "declined",
    }
}

impl FileBackend {
    /// Opens (creating) the lease log at `path`.
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<FileBackend> {
        let path = path.into();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileBackend {
            path,
            file: Mutex::new(file),
            nodes: Mutex::new(HashMap::new()),
            default_node: NodeBoot::default(),
            offered: Mutex::new(Vec::new()),
            record_offers: true,
        })
    }

    /// The latest stored lease per MAC (as a restart would see them).
    pub fn stored(&self) -> Vec<Lease> {
        self.load_leases().unwrap_or_default()
    }
}

impl Backend for FileBackend {
    fn node(&self, mac: MacAddr) -> NodeBoot {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .get(&mac)
            .cloned()
            .unwrap_or_else(|| self.default_node.clone())
    }

    fn offered(&self, mac: MacAddr, ip: Option<Ipv4Addr>, arch: Option<Arch>, iface: &str) {
        if !self.record_offers {
            return;
        }
        let mut o = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a benchmark offers millions of times.
        if o.len() < 100_000 {
            o.push(Offered {
                mac,
                ip,
                arch,
                iface: iface.to_string(),
            });
        }
    }

    fn load_leases(&self) -> Result<Vec<Lease>, BackendError> {
        let f = File::open(&self.path).map_err(|e| BackendError(e.to_string()))?;
        let mut latest: HashMap<(MacAddr, bool), Lease> = HashMap::new();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| BackendError(e.to_string()))?;
            let parts: Vec<&str> = line.split(' ').collect();
            let [mac, ip, exp, state, host] = parts.as_slice() else {
                continue;
            };
            let (Ok(mac), Ok(ip), Ok(exp)) = (
                mac.parse::<MacAddr>(),
                ip.parse::<Ipv4Addr>(),
                exp.parse::<u64>(),
            ) else {
                continue;
            };
            let state = match *state {
                "offered" => LeaseState::Offered,
                "bound" => LeaseState::Bound,
                "released" => LeaseState::Released,
                "declined" => LeaseState::Declined,
                _ => continue,
            };
            let hostname = (*host != "-").then(|| host.to_string());
            let declined = state == LeaseState::Declined;
            latest.insert(
                (mac, declined),
                Lease {
                    mac,
                    ip,
                    expires: UNIX_EPOCH + Duration::from_secs(exp),
                    hostname,
                    state,
                },
            );
        }
        Ok(latest.into_values().collect())
    }

    fn persist_leases(&self, leases: &[Lease]) -> Result<(), BackendError> {
        let mut text = String::with_capacity(leases.len() * 64);
        for l in leases {
            let exp = l
                .expires
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let host = l
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty() && !h.contains(' '))
                .unwrap_or("-");
            text.push_str(&format!(
                "{} {} {} {} {}\n",
                l.mac,
                l.ip,
                exp,
                state_name(l.state),
                host
            ));
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(text.as_bytes())
            .map_err(|e| BackendError(e.to_string()))?;
        f.sync_data().map_err(|e| BackendError(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(mac: u8, ip: u8, state: LeaseState, hostname: Option<&str>) -> Lease {
        Lease {
            mac: MacAddr([2, 0, 0, 0, 0, mac]),
            ip: Ipv4Addr::new(10, 0, 0, ip),
            expires: UNIX_EPOCH + Duration::from_secs(1_000 + u64::from(ip)),
            hostname: hostname.map(str::to_string),
            state,
        }
    }

    #[test]
    fn a_reopened_log_gives_the_latest_lease_per_mac() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.log");
        let b = FileBackend::open(&path).unwrap();
        b.persist_leases(&[
            lease(1, 10, LeaseState::Offered, None),
            lease(2, 20, LeaseState::Bound, Some("two")),
        ])
        .unwrap();
        b.persist_leases(&[lease(1, 10, LeaseState::Bound, Some("has space"))])
            .unwrap();
        drop(b);

        let mut stored = FileBackend::open(&path).unwrap().stored();
        stored.sort_by_key(|l| l.mac);
        assert_eq!(
            stored,
            vec![
                // A host name with a space is not stored.
                lease(1, 10, LeaseState::Bound, None),
                lease(2, 20, LeaseState::Bound, Some("two")),
            ]
        );
    }

    #[test]
    fn offers_are_recorded_unless_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = FileBackend::open(dir.path().join("leases.log")).unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        b.offered(mac, None, None, "eth0");
        assert_eq!(
            *b.offered.lock().unwrap(),
            vec![Offered {
                mac,
                ip: None,
                arch: None,
                iface: "eth0".to_string()
            }]
        );
        b.record_offers = false;
        b.offered(mac, None, None, "eth1");
        assert_eq!(b.offered.lock().unwrap().len(), 1);
    }
}
