//! Minimal IPv6 router advertisements: no prefix, router lifetime 0, M/O flags clear.
//! iPXE waits for an RA before giving up on IPv6; this one ends its wait at once.
//!
//! iPXE (`net/ndp.c`, `ipv6conf_rx_router_advertisement`) finishes IPv6 autoconfiguration
//! on the first RA without M/O flags; a zero lifetime keeps it from routing through us.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::socket::IfaceTable;
use super::Settings;
use crate::mac::MacAddr;

/// Period of unsolicited advertisements.
pub const RA_INTERVAL: Duration = Duration::from_secs(10);
/// Least time between two advertisements on one interface (solicitation floods).
pub const MIN_RA_GAP: Duration = Duration::from_millis(300);
/// ICMPv6 router solicitation type.
const RS: u8 = 133;
/// ICMPv6 router advertisement type.
const RA: u8 = 134;
/// All-nodes multicast group.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast group (solicitations go there).
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The advertisement: header (16 bytes) and a source link-layer address option.
pub fn build_ra(mac: Option<MacAddr>, out: &mut [u8; 24]) -> usize {
    *out = [0; 24];
    out[0] = RA;
    // code 0, checksum by the kernel, hop limit 0 (unspecified), flags 0 (no M/O),
    // router lifetime 0, reachable 0, retransmit 0.
    match mac {
        Some(m) => {
            out[16] = 1; // source link-layer address
            out[17] = 1; // 8 bytes
            out[18..24].copy_from_slice(&m.0);
            24
        }
        None => 16,
    }
}

/// The raw ICMPv6 socket RAs are sent from (needs CAP_NET_RAW).
pub(super) fn open() -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    // RFC 4861 §6.1.2: receivers drop RAs whose hop limit is not 255.
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_loop_v6(false)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn served(name: &str, settings: &Settings) -> bool {
    name != "lo"
        && (settings.interfaces.is_empty() || settings.interfaces.iter().any(|i| i == name))
}

/// Sends RAs on the served interfaces every [`RA_INTERVAL`] and on solicitation, while
/// `settings.ipv6_ra` holds; returns when cancelled. Without a socket (no CAP_NET_RAW,
/// RAs off at start) it only says so when RAs get switched on.
pub async fn run(
    sock: Option<AsyncFd<Socket>>,
    mut settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let Some(sock) = sock else {
        return without_socket(settings, shutdown).await;
    };
    let mut ifaces = IfaceTable::new();
    let mut joined: Vec<u32> = Vec::new();
    let mut last_sent: Vec<(u32, Instant)> = Vec::new();
    let mut tick = tokio::time::interval(RA_INTERVAL);
    let mut buf = [0u8; 1500];
    let mut watching = true;
    loop {
        let current = settings.borrow().clone();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = settings.changed(), if watching => watching = changed.is_ok(),
            _ = tick.tick() => {
                if !current.ipv6_ra { continue; }
                let list: Vec<(u32, Option<MacAddr>)> = ifaces
                    .all()
                    .iter()
                    .filter(|i| served(&i.name, &current))
                    .map(|i| (i.index, i.mac))
                    .collect();
                for (index, mac) in list {
                    if !joined.contains(&index) && sock.get_ref().join_multicast_v6(&ALL_ROUTERS, index).is_ok() {
                        joined.push(index);
                    }
                    send_on(sock.get_ref(), index, mac, &mut last_sent);
                }
            }
            ready = sock.readable() => {
                let mut guard = ready?;
                loop {
                    match guard.try_io(|s| recv_rs(s.get_ref(), &mut buf)) {
                        Ok(Ok(Some(index))) if current.ipv6_ra => {
                            let iface = ifaces.by_index(index).filter(|i| served(&i.name, &current)).map(|i| i.mac);
                            if let Some(mac) = iface {
                                send_on(sock.get_ref(), index, mac, &mut last_sent);
                            }
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "RA socket read");
                            break;
                        }
                        Err(_would_block) => break,
                    }
                }
            }
        }
    }
}

/// Waits for shutdown; an error line each time RAs are switched on without a socket.
async fn without_socket(
    mut settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut watching = true;
    let mut on = settings.borrow_and_update().ipv6_ra;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = settings.changed(), if watching => {
                watching = changed.is_ok();
                let now = settings.borrow_and_update().ipv6_ra;
                if now && !on {
                    tracing::error!("ipv6_ra switched on, but bootd started without an ICMPv6 socket (CAP_NET_RAW); restart it to send router advertisements");
                }
                on = now;
            }
        }
    }
}

/// Reads one ICMPv6 message; the interface index if it is a router solicitation.
fn recv_rs(s: &Socket, buf: &mut [u8]) -> io::Result<Option<u32>> {
    // SAFETY-free path: socket2 wants MaybeUninit; a plain recv_from via std is simpler.
    let uninit: &mut [std::mem::MaybeUninit<u8>] =
        // SAFETY: u8 and MaybeUninit<u8> have the same layout; we only read what recv wrote.
        unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let (n, from) = s.recv_from(uninit)?;
    let is_rs = n >= 8 && buf.first() == Some(&RS);
    let scope = from.as_socket_ipv6().map(|a| a.scope_id()).unwrap_or(0);
    Ok((is_rs && scope != 0).then_some(scope))
}

fn send_on(s: &Socket, index: u32, mac: Option<MacAddr>, last_sent: &mut Vec<(u32, Instant)>) {
    let now = Instant::now();
    match last_sent.iter_mut().find(|(i, _)| *i == index) {
        Some((_, t)) if now.duration_since(*t) < MIN_RA_GAP => return,
        Some((_, t)) => *t = now,
        None => last_sent.push((index, now)),
    }
    let mut ra = [0u8; 24];
    let len = build_ra(mac, &mut ra);
    let dst = SocketAddrV6::new(ALL_NODES, 0, 0, index);
    if let Err(e) = s
        .set_multicast_if_v6(index)
        .and_then(|_| s.send_to(ra.get(..len).unwrap_or(&[]), &dst.into()))
    {
        tracing::debug!(ifindex = index, error = %e, "RA not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ra_has_no_prefix_lifetime_zero_and_slla() {
        let mut out = [0u8; 24];
        let n = build_ra(Some(MacAddr([2, 0, 0, 0, 0, 9])), &mut out);
        assert_eq!(n, 24);
        assert_eq!(out[0], 134);
        assert_eq!(out[5], 0, "M and O flags clear");
        assert_eq!(&out[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(&out[16..24], &[1, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(build_ra(None, &mut out), 16);
    }
}
