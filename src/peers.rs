//! Which MAC uses an IPv4 address, learnt from DHCP as it happens (our ACKs, a client's
//! ciaddr or requested address), so TFTP names the machine behind a peer in O(1).
//!
//! Reading the kernel's neighbour table instead costs a walk of the whole table per
//! transfer: in a boot storm with thousands of neighbours that walk was most of bootd's CPU
//! and delayed RRQs past the firmware's timeout (benches/README-storm.md).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::mac::MacAddr;

/// Most addresses remembered; past it, entries older than [`PEER_TTL`] go, then all.
pub const MAX_PEERS: usize = 65_536;
/// How long an address stays attributed without being seen again (a lease rarely
/// outlives it, and a newer sighting always replaces the entry).
pub const PEER_TTL: Duration = Duration::from_secs(24 * 3600);

/// Address → MAC, most recent sighting wins.
#[derive(Default)]
pub struct PeerTable {
    inner: Mutex<HashMap<Ipv4Addr, (MacAddr, Instant)>>,
}

impl PeerTable {
    /// Records that `mac` uses (or was given) `ip`.
    pub fn learn(&self, ip: Ipv4Addr, mac: MacAddr) {
        if ip.is_unspecified() || ip.is_broadcast() {
            return;
        }
        let now = Instant::now();
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        if map.len() >= MAX_PEERS && !map.contains_key(&ip) {
            map.retain(|_, (_, seen)| now.duration_since(*seen) < PEER_TTL);
            if map.len() >= MAX_PEERS {
                // More live addresses than the bound: start over rather than grow; the
                // neighbour table and the leases still answer for the forgotten ones.
                map.clear();
            }
        }
        map.insert(ip, (mac, now));
    }

    /// The MAC last seen with `ip`, if that was within [`PEER_TTL`].
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        let map = self.inner.lock().ok()?;
        map.get(&ip)
            .filter(|(_, seen)| seen.elapsed() < PEER_TTL)
            .map(|(mac, _)| *mac)
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_sighting_wins_and_the_table_stays_bounded() {
        let t = PeerTable::default();
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let a = MacAddr([2, 0, 0, 0, 0, 1]);
        let b = MacAddr([2, 0, 0, 0, 0, 2]);
        assert_eq!(t.lookup(ip), None);
        t.learn(ip, a);
        assert_eq!(t.lookup(ip), Some(a));
        t.learn(ip, b);
        assert_eq!(t.lookup(ip), Some(b));
        t.learn(Ipv4Addr::UNSPECIFIED, a);
        assert_eq!(t.len(), 1);
        for i in 0..(MAX_PEERS as u32 + 10) {
            t.learn(Ipv4Addr::from(0x0a00_0000 + i), a);
        }
        assert!(t.len() <= MAX_PEERS);
    }
}
