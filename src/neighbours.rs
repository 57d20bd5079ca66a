//! The kernel's neighbour table: the MAC behind the address of a peer on a local
//! segment (a machine that just talked to us). Read from `/proc/net/arp`.

use crate::mac::MacAddr;
use std::net::{IpAddr, Ipv4Addr};

/// The MAC behind a client address: the kernel's neighbour table, which holds every
/// peer that just talked to us on a local segment.
pub fn mac_of(ip: IpAddr) -> Option<MacAddr> {
    let IpAddr::V4(ip) = ip else { return None };
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    mac_in_arp_table(&table, ip)
}

/// `ATF_COM` in `/proc/net/arp`'s flags: the entry is resolved. An unresolved entry
/// (a peer that did not answer ARP) shows the address 00:00:00:00:00:00.
const ARP_COMPLETE: u32 = 0x2;

/// The resolved MAC of `ip` in the text of `/proc/net/arp`.
fn mac_in_arp_table(table: &str, ip: Ipv4Addr) -> Option<MacAddr> {
    table.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let addr: Ipv4Addr = f.next()?.parse().ok()?;
        let flags = f.nth(1)?;
        let hw = f.next()?;
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        (addr == ip && flags & ARP_COMPLETE != 0)
            .then(|| hw.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resolved_neighbours_name_a_peer() {
        let table =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
            10.77.0.100      0x1         0x2         52:54:00:5b:00:01     *        br0\n\
            10.77.0.101      0x1         0x0         00:00:00:00:00:00     *        br0\n\
            10.77.0.102      0x1         0x6         52:54:00:5b:00:03     *        br0\n";
        let ip = |last| Ipv4Addr::new(10, 77, 0, last);
        assert_eq!(
            mac_in_arp_table(table, ip(100)),
            Some(MacAddr([0x52, 0x54, 0, 0x5b, 0, 1]))
        );
        assert_eq!(mac_in_arp_table(table, ip(101)), None, "incomplete entry");
        assert_eq!(
            mac_in_arp_table(table, ip(102)),
            Some(MacAddr([0x52, 0x54, 0, 0x5b, 0, 3])),
            "permanent entry"
        );
        assert_eq!(mac_in_arp_table(table, ip(103)), None);
        assert_eq!(mac_in_arp_table("garbage\n1.2.3.4 x", ip(100)), None);
    }
}
