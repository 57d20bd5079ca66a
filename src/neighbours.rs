//! The kernel's neighbour table (ARP for IPv4, NDP for IPv6), dumped over rtnetlink: the
//! MAC behind a peer address on a local segment, for clients DHCP did not tell us about.

use crate::mac::MacAddr;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Longest wait for one part of the kernel's answer, and for the whole dump.
const DUMP_DEADLINE: Duration = Duration::from_secs(1);
/// Most neighbour entries read from one dump (the kernel's default gc_thresh3 is 1024
/// per family; this leaves room for tuned tables without reading forever).
pub const MAX_ENTRIES: usize = 65_536;
/// Receive buffer: the kernel fills one datagram of a dump up to 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;
/// Sequence number of our dump request (the socket is ours alone).
const DUMP_SEQ: u32 = 1;
/// Length of a netlink message header.
const NLMSG_HEADER: usize = 16;

/// Why the neighbour table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("the kernel refused the neighbour dump: error {0}")]
    Kernel(i32),
    #[error("the neighbour dump did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the neighbour dump holds more than {MAX_ENTRIES} entries")]
    TooMany,
    #[error("malformed netlink message: {0}")]
    Malformed(String),
}

/// The MAC behind `ip` in the kernel's neighbour table, if the entry is resolved
/// (reachable, stale, delay, probe or permanent). IPv4-mapped IPv6 addresses are
/// looked up as IPv4. A table that cannot be read is "not known" (logged at debug).
pub fn mac_of(ip: IpAddr) -> Option<MacAddr> {
    let ip = ip.to_canonical();
    match lookup(ip) {
        Ok(mac) => mac,
        Err(e) => {
            tracing::debug!(%ip, error = %e, "cannot read the neighbour table");
            None
        }
    }
}

/// The MAC behind a client address: the kernel's neighbour table, which holds every
/// peer that just talked to us on a local segment. (Same as `mac_of`.)
pub fn mac_of_peer(ip: IpAddr) -> Option<MacAddr> {
    mac_of(ip)
}

/// Dumps the neighbours of `ip`'s family and picks the resolved entry for `ip`.
pub fn lookup(ip: IpAddr) -> Result<Option<MacAddr>, NeighbourError> {
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let mut found = None;
    dump(family, |entry| {
        if found.is_none() {
            found = resolved_mac(entry, ip);
        }
    })?;
    Ok(found)
}

/// Sends one RTM_GETNEIGH dump request for `family` and hands every entry to `each`,
/// within `DUMP_DEADLINE` and `MAX_ENTRIES`.
fn dump(
    family: AddressFamily,
    mut each: impl FnMut(&NeighbourMessage),
) -> Result<(), NeighbourError> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let timeout = nix::sys::time::TimeVal::new(
        DUMP_DEADLINE.as_secs() as nix::libc::time_t,
        DUMP_DEADLINE.subsec_micros() as nix::libc::suseconds_t,
    );
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(std::io::Error::from)?;

    let mut request = NeighbourMessage::default();
    request.header.family = family;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = DUMP_SEQ;
    let mut message = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetNeighbour(request)),
    );
    message.finalize();
    let mut out = vec![0u8; message.buffer_len()];
    message.serialize(&mut out);
    socket.send(&out, 0)?;

    let started = Instant::now();
    let mut entries = 0usize;
    let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUFFER);
    loop {
        if started.elapsed() > DUMP_DEADLINE {
            return Err(NeighbourError::Timeout(DUMP_DEADLINE));
        }
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(NeighbourError::Timeout(DUMP_DEADLINE))
            }
            Err(e) => return Err(e.into()),
        }
        let mut rest = buf.as_slice();
        while rest.len() >= NLMSG_HEADER {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < NLMSG_HEADER || len > rest.len() {
                return Err(NeighbourError::Malformed(format!(
                    "message length {len} with {} bytes left",
                    rest.len()
                )));
            }
            let (one, next) = rest.split_at(len);
            // Messages are padded to 4 bytes.
            rest = next.get(next.len().min((4 - len % 4) % 4)..).unwrap_or(&[]);
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(one);
            let Ok(parsed) = parsed else {
                continue; // an entry this crate cannot read is skipped, not fatal
            };
            if parsed.header.sequence_number != DUMP_SEQ {
                continue;
            }
            match parsed.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(NeighbourError::Kernel(e.raw_code()));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(entry)) => {
                    entries += 1;
                    if entries > MAX_ENTRIES {
                        return Err(NeighbourError::TooMany);
                    }
                    each(&entry);
                }
                _ => {}
            }
        }
    }
}

/// The MAC of `entry` if it is `ip`'s, resolved, and carries a 6-byte hardware address.
fn resolved_mac(entry: &NeighbourMessage, ip: IpAddr) -> Option<MacAddr> {
    let resolved = matches!(
        entry.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    );
    if !resolved {
        return None;
    }
    let mut dest = None;
    let mut lladdr = None;
    for attr in &entry.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                dest = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                dest = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(hw) => lladdr = Some(hw.as_slice()),
            _ => {}
        }
    }
    if dest != Some(ip) {
        return None;
    }
    let octets: [u8; 6] = lladdr?.try_into().ok()?;
    (octets != [0; 6]).then_some(MacAddr(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn entry(state: NeighbourState, ip: IpAddr, hw: &[u8]) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.state = state;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(hw.to_vec()));
        m
    }

    #[test]
    fn only_resolved_entries_of_the_address_name_a_peer() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100));
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x100));
        let hw = [0x52, 0x54, 0, 0x5b, 0, 1];
        let mac = Some(MacAddr(hw));
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Reachable, v4, &hw), v4),
            mac
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Stale, v6, &hw), v6),
            mac
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Permanent, v4, &hw), v4),
            mac
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Incomplete, v4, &hw), v4),
            None
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Failed, v4, &hw), v4),
            None
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Reachable, v4, &hw), v6),
            None
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Reachable, v4, &[0; 6]), v4),
            None
        );
        assert_eq!(
            resolved_mac(&entry(NeighbourState::Reachable, v4, &hw[..4]), v4),
            None
        );
    }

    #[test]
    fn an_absent_address_is_not_found_in_the_real_table() {
        // TEST-NET-3 is never a neighbour of a test machine.
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 254));
        assert_eq!(lookup(ip).expect("neighbour dump"), None);
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe));
        assert_eq!(lookup(ip).expect("neighbour dump"), None);
    }
}
