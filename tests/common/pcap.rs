//! Packet captures for tests: `Capture` runs tcpdump on a namespace's bridge, and
//! `read_udp` / `read_tcp` read the IPv4 UDP datagrams or TCP segments back out of a
//! classic pcap file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::Netns;
use super::util::{read_lossy, wait_for};
use super::HarnessError;

/// How long tcpdump may take to start listening.
const TCPDUMP_START: Duration = Duration::from_secs(10);
/// Classic pcap global header and per-record header sizes.
const GLOBAL_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
const ETHERNET_HEADER: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const LINKTYPE_ETHERNET: u32 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_TCP: u8 = 6;
const UDP_HEADER: usize = 8;
/// Where a TCP header keeps its data offset (in 32-bit words, high nibble).
const TCP_DATA_OFFSET_BYTE: usize = 12;

/// DHCP, ProxyDHCP and TFTP request ports: what a boot test usually wants to see.
pub const BOOT_FILTER: &str = "port 67 or port 68 or port 69 or port 4011";

/// A running tcpdump writing `path`; stop it with [`Capture::finish`] before reading.
pub struct Capture<'ns> {
    ns: &'ns Netns,
    pid: u32,
    path: PathBuf,
}

impl<'ns> Capture<'ns> {
    /// Starts `tcpdump -i iface -U -w path filter` in `ns` and waits until it listens.
    pub fn start(
        ns: &'ns Netns,
        iface: &str,
        filter: &str,
        path: &Path,
    ) -> Result<Capture<'ns>, HarnessError> {
        let log = path.with_extension("tcpdump.log");
        let path_arg = path.to_string_lossy();
        let pid = ns.spawn_logged(
            "tcpdump",
            &["-i", iface, "-U", "-s", "0", "-n", "-w", &path_arg, filter],
            &log,
        )?;
        wait_for(TCPDUMP_START, "tcpdump to listen", || {
            read_lossy(&log).contains("listening on") || !ns.is_running(pid)
        })?;
        if !ns.is_running(pid) {
            return Err(HarnessError::Format {
                what: "tcpdump start".to_string(),
                detail: read_lossy(&log),
            });
        }
        Ok(Capture {
            ns,
            pid,
            path: path.to_path_buf(),
        })
    }

    /// Stops tcpdump (it flushes on SIGTERM) and returns the capture's datagrams.
    pub fn finish(self) -> Result<Vec<UdpDatagram>, HarnessError> {
        self.ns.stop(self.pid)?;
        read_udp(&self.path)
    }

    /// The pcap file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One IPv4/UDP datagram from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The UDP payload (for DHCP: the BOOTP message).
    pub payload: Vec<u8>,
}

impl UdpDatagram {
    /// For a DHCP message: option `code`'s first occurrence, if present and well formed.
    pub fn dhcp_option(&self, code: u8) -> Option<&[u8]> {
        const OPTIONS_START: usize = 240;
        const MAGIC: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
        if self.payload.get(236..OPTIONS_START)? != MAGIC {
            return None;
        }
        let mut i = OPTIONS_START;
        loop {
            let c = *self.payload.get(i)?;
            match c {
                0 => i += 1,
                255 => return None,
                _ => {
                    let len = usize::from(*self.payload.get(i + 1)?);
                    let value = self.payload.get(i + 2..i + 2 + len)?;
                    if c == code {
                        return Some(value);
                    }
                    i += 2 + len;
                }
            }
        }
    }

    /// For a DHCP message: the message type (option 53), e.g. 1 = DISCOVER, 3 = REQUEST.
    pub fn dhcp_type(&self) -> Option<u8> {
        self.dhcp_option(53)?.first().copied()
    }

    /// For a DHCP message: the client hardware address (chaddr's first six bytes).
    pub fn chaddr(&self) -> Option<[u8; 6]> {
        self.payload.get(28..34)?.try_into().ok()
    }
}

fn format_error(path: &Path, detail: impl Into<String>) -> HarnessError {
    HarnessError::Format {
        what: format!("pcap {}", path.display()),
        detail: detail.into(),
    }
}

/// Reads every IPv4/UDP datagram of a classic (not pcapng) Ethernet pcap file.
pub fn read_udp(path: &Path) -> Result<Vec<UdpDatagram>, HarnessError> {
    Ok(frames(path)?
        .iter()
        .filter_map(|f| parse_frame(f))
        .collect())
}

/// One IPv4/TCP segment from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The segment's data (empty for bare ACKs, SYNs, FINs).
    pub payload: Vec<u8>,
}

/// Reads every IPv4/TCP segment of a classic Ethernet pcap file (e.g. to see the HTTP
/// requests a firmware sent: each one starts a segment's payload).
pub fn read_tcp(path: &Path) -> Result<Vec<TcpSegment>, HarnessError> {
    Ok(frames(path)?.iter().filter_map(|f| parse_tcp(f)).collect())
}

/// The frames of a classic (not pcapng) Ethernet pcap file.
fn frames(path: &Path) -> Result<Vec<Vec<u8>>, HarnessError> {
    let data = std::fs::read(path).map_err(|e| HarnessError::file(path, e))?;
    let header = data
        .get(..GLOBAL_HEADER)
        .ok_or_else(|| format_error(path, "shorter than a pcap header"))?;
    let u32_at = |b: &[u8], at: usize, little: bool| -> Option<u32> {
        let four: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(four)
        } else {
            u32::from_be_bytes(four)
        })
    };
    let little = match header.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
        _ => return Err(format_error(path, "bad magic (pcapng is not supported)")),
    };
    if u32_at(header, 20, little) != Some(LINKTYPE_ETHERNET) {
        return Err(format_error(path, "link type is not Ethernet"));
    }
    let mut out = Vec::new();
    let mut off = GLOBAL_HEADER;
    while let Some(record) = data.get(off..off + RECORD_HEADER) {
        let incl = u32_at(record, 8, little)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format_error(path, "bad record header"))?;
        let start = off + RECORD_HEADER;
        let frame = data
            .get(start..start + incl)
            .ok_or_else(|| format_error(path, format!("record at {off} runs past the end")))?;
        off = start + incl;
        out.push(frame.to_vec());
    }
    Ok(out)
}

/// An Ethernet frame's IPv4 header fields and transport payload for protocol `proto`.
fn ipv4_payload(frame: &[u8], proto: u8) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    if frame.get(12..14)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != proto {
        return None;
    }
    let total = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?));
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    // Ethernet pads short frames: the IP total length says where the packet ends.
    Some((
        Ipv4Addr::from(src),
        Ipv4Addr::from(dst),
        ip.get(ihl..total.min(ip.len()))?,
    ))
}

/// An Ethernet frame's IPv4/TCP segment, if it is one.
fn parse_tcp(frame: &[u8]) -> Option<TcpSegment> {
    let (src, dst, tcp) = ipv4_payload(frame, IPPROTO_TCP)?;
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(tcp.get(at..at + 2)?.try_into().ok()?))
    };
    let data_offset = usize::from(tcp.get(TCP_DATA_OFFSET_BYTE)? >> 4) * 4;
    Some(TcpSegment {
        src,
        dst,
        sport: be16(0)?,
        dport: be16(2)?,
        payload: tcp.get(data_offset..)?.to_vec(),
    })
}

/// An Ethernet frame's IPv4/UDP datagram, if it is one (and not fragmented).
fn parse_frame(frame: &[u8]) -> Option<UdpDatagram> {
    let (src, dst, udp) = ipv4_payload(frame, IPPROTO_UDP)?;
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(udp.get(at..at + 2)?.try_into().ok()?))
    };
    let len = usize::from(be16(4)?);
    Some(UdpDatagram {
        src,
        dst,
        sport: be16(0)?,
        dport: be16(2)?,
        payload: udp.get(UDP_HEADER..len)?.to_vec(),
    })
}
