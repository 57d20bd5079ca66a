//! Sockets of the DHCP service: UDP on 67/4011 with IP_PKTINFO (which interface a
//! request came in on, and the same interface out), AF_PACKET for link-level unicasts
//! to clients without an address, and the table of interface names, indexes, addresses.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::mac::MacAddr;

/// Receive buffer per UDP socket: room for a boot storm's burst.
pub const RECV_BUFFER_BYTES: usize = 4 << 20;
/// How often the interface table may be re-read when a lookup misses.
pub const IFACE_REFRESH: Duration = Duration::from_secs(2);
/// Largest Ethernet frame we build (MTU 1500 + header).
pub const MAX_FRAME_LEN: usize = 1514;
/// TTL of replies sent at link level.
const LINK_TTL: u8 = 64;

/// A UDP socket bound to a DHCP port on all addresses, with IP_PKTINFO on.
pub fn bind_udp(port: u16) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Bursts of DISCOVERs must queue, not drop, while the loop is descheduled: past
    // net.core.rmem_max when we may (CAP_NET_ADMIN), else as much as the sysctl allows.
    if setsockopt(&s, sockopt::RcvBufForce, &RECV_BUFFER_BYTES).is_err() {
        let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
    }
    if setsockopt(&s, sockopt::SndBufForce, &RECV_BUFFER_BYTES).is_err() {
        let _ = s.set_send_buffer_size(RECV_BUFFER_BYTES);
    }
    setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s)
}

/// Registers a socket with tokio's reactor.
pub fn register(sock: Socket) -> io::Result<tokio::io::unix::AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor and closes it only when dropped, which
    // happens after the AsyncFd that holds it deregisters it.
    unsafe { tokio::io::unix::AsyncFd::register(sock) }.map_err(io::Error::from)
}

/// One received datagram's envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes read.
    pub len: usize,
    /// Sender.
    pub src: SocketAddrV4,
    /// Interface it arrived on.
    pub ifindex: u32,
    /// Destination address of the datagram (broadcast or ours).
    pub dst: Ipv4Addr,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
}

/// Reads one datagram and its IP_PKTINFO; `WouldBlock` when none is queued.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_TRUNC)
        .map_err(io::Error::from)?;
    let mut ifindex = 0;
    let mut dst = Ipv4Addr::UNSPECIFIED;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
                dst = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
            }
        }
    }
    let src = msg
        .address
        .map(|a| SocketAddrV4::new(a.ip(), a.port()))
        .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    Ok(Received {
        len: msg.bytes,
        src,
        ifindex,
        dst,
        truncated,
    })
}

/// Sends `buf` to `dst` out of interface `ifindex` with source address `src`.
pub fn send(
    fd: RawFd,
    buf: &[u8],
    dst: SocketAddrV4,
    ifindex: u32,
    src: Ipv4Addr,
) -> io::Result<()> {
    let info = libc::in_pktinfo {
        ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(src).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
    let addr = SockaddrIn::from(dst);
    sendmsg(
        fd,
        &[IoSlice::new(buf)],
        &cmsg,
        MsgFlags::empty(),
        Some(&addr),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// A send-only AF_PACKET socket for replies to clients that have no address yet.
pub struct LinkSender {
    sock: Socket,
}

/// Addresses of a link-level unicast.
#[derive(Clone, Copy, Debug)]
pub struct LinkDest {
    /// Interface to send on.
    pub ifindex: u32,
    /// Our MAC on it.
    pub src_mac: MacAddr,
    /// Our address on it.
    pub src_ip: Ipv4Addr,
    /// Client MAC (chaddr).
    pub dst_mac: MacAddr,
    /// Address just assigned (yiaddr).
    pub dst_ip: Ipv4Addr,
    /// Server port (source).
    pub src_port: u16,
    /// Client port (destination).
    pub dst_port: u16,
}

impl LinkSender {
    /// Opens the socket (needs CAP_NET_RAW). Protocol 0: it receives nothing.
    pub fn open() -> io::Result<LinkSender> {
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        sock.set_nonblocking(true)?;
        Ok(LinkSender { sock })
    }

    /// Builds the Ethernet/IPv4/UDP frame around `payload` in `frame` and sends it.
    pub fn send(&self, frame: &mut [u8], d: &LinkDest, payload: &[u8]) -> io::Result<()> {
        let len = build_frame(frame, d, payload)?;
        let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        ll.sll_ifindex = i32::try_from(d.ifindex).unwrap_or(0);
        ll.sll_halen = 6;
        if let Some(dst) = ll.sll_addr.get_mut(..6) {
            dst.copy_from_slice(&d.dst_mac.0);
        }
        let bytes = frame.get(..len).unwrap_or(&[]);
        // SAFETY: `bytes` and `ll` outlive the call; the length arguments match them.
        let rc = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Writes Ethernet + IPv4 + UDP headers and the payload; returns the frame length.
pub fn build_frame(frame: &mut [u8], d: &LinkDest, payload: &[u8]) -> io::Result<usize> {
    let udp_len = UDP_HEADER_LEN + payload.len();
    let ip_len = IPV4_HEADER_LEN + udp_len;
    let total = ETHERNET_HEADER_LEN + ip_len;
    if total > frame.len().min(MAX_FRAME_LEN) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "reply larger than one frame",
        ));
    }
    let buf = frame.get_mut(..total).ok_or(io::ErrorKind::InvalidInput)?;
    let mut eth = EthernetFrame::new_unchecked(&mut *buf);
    eth.set_src_addr(EthernetAddress(d.src_mac.0));
    eth.set_dst_addr(EthernetAddress(d.dst_mac.0));
    eth.set_ethertype(EthernetProtocol::Ipv4);
    let caps = ChecksumCapabilities::default();
    let src = Ipv4Address(d.src_ip.octets());
    let dst = Ipv4Address(d.dst_ip.octets());
    let ip_repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: LINK_TTL,
    };
    let ip_buf = buf
        .get_mut(ETHERNET_HEADER_LEN..)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let mut ip = Ipv4Packet::new_unchecked(&mut *ip_buf);
    ip_repr.emit(&mut ip, &caps);
    let udp_buf = ip_buf
        .get_mut(IPV4_HEADER_LEN..)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let mut udp = UdpPacket::new_unchecked(&mut *udp_buf);
    UdpRepr {
        src_port: d.src_port,
        dst_port: d.dst_port,
    }
    .emit(
        &mut udp,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        payload.len(),
        |p| p.copy_from_slice(payload),
        &caps,
    );
    Ok(total)
}

/// One interface: name, index, MAC, IPv4 addresses with prefix length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Kernel name.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Hardware address (None for loopback-like devices).
    pub mac: Option<MacAddr>,
    /// IPv4 addresses and prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

impl Iface {
    /// Our address on the subnet of `ip`, else the first address.
    pub fn addr_for(&self, ip: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let on_subnet = ip.and_then(|ip| {
            self.addrs.iter().find(|(a, p)| {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from((*p).min(32)))
                    .unwrap_or(0);
                u32::from(*a) & mask == u32::from(ip) & mask
            })
        });
        on_subnet.or(self.addrs.first()).map(|(a, _)| *a)
    }
}

/// The interfaces of this network namespace, re-read at most every [`IFACE_REFRESH`].
#[derive(Debug)]
pub struct IfaceTable {
    ifaces: Vec<Iface>,
    read_at: Option<Instant>,
}

impl Default for IfaceTable {
    fn default() -> Self {
        Self::new()
    }
}

impl IfaceTable {
    /// An empty table, read on first lookup.
    pub fn new() -> Self {
        IfaceTable {
            ifaces: Vec::new(),
            read_at: None,
        }
    }

    /// Re-reads the interfaces now.
    pub fn refresh(&mut self) {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return;
        };
        let mut out: Vec<Iface> = Vec::new();
        for a in addrs {
            let Ok(index) = nix::net::if_::if_nametoindex(a.interface_name.as_str()) else {
                continue;
            };
            let pos = match out.iter().position(|i| i.index == index) {
                Some(p) => p,
                None => {
                    out.push(Iface {
                        name: a.interface_name.clone(),
                        index,
                        mac: None,
                        addrs: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let Some(entry) = out.get_mut(pos) else {
                continue;
            };
            if let Some(addr) = a.address {
                if let Some(sin) = addr.as_sockaddr_in() {
                    let prefix = a
                        .netmask
                        .and_then(|m| {
                            m.as_sockaddr_in()
                                .map(|m| u32::from(m.ip()).count_ones() as u8)
                        })
                        .unwrap_or(32);
                    entry.addrs.push((sin.ip(), prefix));
                } else if let Some(ll) = addr.as_link_addr() {
                    entry.mac = ll.addr().map(MacAddr);
                }
            }
        }
        self.ifaces = out;
        self.read_at = Some(Instant::now());
    }

    /// The interface with this index, re-reading the table on a miss (rate-limited).
    pub fn by_index(&mut self, index: u32) -> Option<&Iface> {
        let stale = self.read_at.is_none_or(|t| t.elapsed() >= IFACE_REFRESH);
        let present = self.ifaces.iter().any(|i| i.index == index);
        if stale && (!present || self.read_at.is_none()) {
            self.refresh();
        }
        self.ifaces.iter().find(|i| i.index == index)
    }

    /// All interfaces.
    pub fn all(&mut self) -> &[Iface] {
        if self.read_at.is_none_or(|t| t.elapsed() >= IFACE_REFRESH) {
            self.refresh();
        }
        &self.ifaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Packet, UdpPacket};

    #[test]
    fn frame_checksums_verify() {
        let d = LinkDest {
            ifindex: 1,
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(10, 77, 0, 1),
            dst_mac: MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            dst_ip: Ipv4Addr::new(10, 77, 0, 100),
            src_port: 67,
            dst_port: 68,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let payload = [7u8; 300];
        let n = build_frame(&mut buf, &d, &payload).unwrap();
        assert_eq!(n, 14 + 20 + 8 + 300);
        let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress(d.dst_mac.0));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr())
        ));
        assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
        assert_eq!(udp.payload(), &payload[..]);
        assert!(build_frame(&mut buf, &d, &[0u8; 1480]).is_err());
    }

    #[test]
    fn iface_table_finds_loopback() {
        let mut t = IfaceTable::new();
        let lo = t.all().iter().find(|i| i.name == "lo").cloned();
        let lo = lo.expect("loopback exists");
        assert!(lo
            .addrs
            .iter()
            .any(|(a, p)| *a == Ipv4Addr::LOCALHOST && *p == 8));
        assert_eq!(t.by_index(lo.index).map(|i| i.name.as_str()), Some("lo"));
    }
}
