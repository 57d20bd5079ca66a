//! The DHCP probe: a DISCOVER from a throwaway locally administered MAC, sent from port
//! 68 on each served interface, and the OFFERs that come back within a few seconds.
//!
//! It asks as a BIOS PXE client (option 60 `PXEClient`, 93 = 0) so that both address
//! servers and other ProxyDHCP servers answer; the broadcast flag makes servers broadcast
//! the OFFER, since the probe's MAC is not this host's and a unicast would not reach it.
//! Nothing is requested afterwards, so no lease is taken. Full mode: another address
//! server is a failure (two authorities hand out conflicting addresses). Proxy mode: one
//! is expected, and its absence is a warning (ProxyDHCP only adds boot information).

use super::network::{Served, DHCP_PORT};
use super::{Check, Verdict};
use crate::config::{Config, DhcpMode};
use dhcproto::v4::{
    Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode,
};
use dhcproto::{Decodable, Encodable};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// How long the probe listens for OFFERs after its DISCOVER.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);
/// The DHCP client port the probe sends from (servers answer to it).
pub const CLIENT_PORT: u16 = 68;
/// Most OFFERs kept per interface (a flood must not grow the report).
pub const MAX_OFFERS: usize = 16;
/// Largest datagram read.
const RECV_BUF: usize = 1500;
/// What the probe says it is: a BIOS PXE client, as QEMU's iPXE ROM says it.
const PXE_VENDOR_CLASS: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";

/// One OFFER the probe received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Option 54, else the datagram's source.
    pub server: Ipv4Addr,
    /// The address offered; unspecified for a ProxyDHCP offer.
    pub yiaddr: Ipv4Addr,
    /// A ProxyDHCP offer: no address, option 60 `PXEClient`.
    pub proxy: bool,
    /// Boot file named (file field or option 67), empty if none.
    pub boot_file: String,
}

/// The DISCOVER the probe sends.
pub fn build_discover(mac: [u8; 6], xid: u32) -> Result<Vec<u8>, String> {
    let mut msg = Message::new(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(xid)
        .set_flags(Flags::default().set_broadcast());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(MessageType::Discover));
    opts.insert(DhcpOption::ClassIdentifier(PXE_VENDOR_CLASS.to_vec()));
    opts.insert(DhcpOption::ClientSystemArchitecture(
        Architecture::Intelx86PC,
    ));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::ServerIdentifier,
        OptionCode::ClassIdentifier,
        OptionCode::BootfileName,
    ]));
    msg.to_vec()
        .map_err(|e| format!("cannot encode a DISCOVER: {e}"))
}

/// The OFFER in `buf` answering our DISCOVER (`xid`, `mac`), or None for anything else.
pub fn parse_offer(buf: &[u8], xid: u32, mac: &[u8; 6], from: Ipv4Addr) -> Option<Offer> {
    let msg = Message::from_bytes(buf).ok()?;
    if msg.opcode() != Opcode::BootReply || msg.xid() != xid {
        return None;
    }
    if msg.chaddr().get(..6) != Some(&mac[..]) {
        return None;
    }
    if msg.opts().msg_type() != Some(MessageType::Offer) {
        return None;
    }
    let server = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => from,
    };
    let pxe_class = matches!(
        msg.opts().get(OptionCode::ClassIdentifier),
        Some(DhcpOption::ClassIdentifier(c)) if c.starts_with(b"PXEClient")
    );
    let yiaddr = msg.yiaddr();
    let from_option = match msg.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(f)) => String::from_utf8_lossy(f).into_owned(),
        _ => String::new(),
    };
    let from_field = msg
        .fname()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim_end_matches('\0')
                .to_string()
        })
        .unwrap_or_default();
    let boot_file = if from_field.is_empty() {
        from_option.trim_end_matches('\0').to_string()
    } else {
        from_field
    };
    Some(Offer {
        server,
        yiaddr,
        proxy: yiaddr.is_unspecified() && pxe_class,
        boot_file,
    })
}

/// What happened on one interface.
#[derive(Debug)]
enum Outcome {
    /// The probe may not bind port 68 or the interface here.
    NotPermitted(String),
    /// Some other socket error.
    Failed(String),
    /// The OFFERs seen (possibly none).
    Offers(Vec<Offer>),
}

fn random_identity() -> Result<([u8; 6], u32), String> {
    let mut bytes = [0u8; 10];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let [m0, m1, m2, m3, m4, m5, x0, x1, x2, x3] = bytes;
    // Locally administered (bit 1) and unicast (bit 0 clear): no real NIC has it.
    let mac = [(m0 & 0xFC) | 0x02, m1, m2, m3, m4, m5];
    Ok((mac, u32::from_be_bytes([x0, x1, x2, x3])))
}

fn socket_for(iface: &Served) -> Result<Socket, Outcome> {
    let classify = |what: &str, e: std::io::Error| {
        if e.kind() == ErrorKind::PermissionDenied {
            Outcome::NotPermitted(format!("{what}: {e}"))
        } else {
            Outcome::Failed(format!("{what}: {e}"))
        }
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| classify("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| classify("SO_REUSEADDR", e))?;
    s.set_broadcast(true)
        .map_err(|e| classify("SO_BROADCAST", e))?;
    s.bind_device(Some(iface.name.as_bytes()))
        .map_err(|e| classify("SO_BINDTODEVICE", e))?;
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT);
    s.bind(&any.into())
        .map_err(|e| classify("bind port 68", e))?;
    Ok(s)
}

fn probe(iface: &Served, wait: Duration) -> Outcome {
    let (mac, xid) = match random_identity() {
        Ok(v) => v,
        Err(e) => return Outcome::Failed(e),
    };
    let packet = match build_discover(mac, xid) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e),
    };
    let sock = match socket_for(iface) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let dst = SockAddr::from(SocketAddrV4::new(Ipv4Addr::BROADCAST, DHCP_PORT));
    if let Err(e) = sock.send_to(&packet, &dst) {
        return Outcome::Failed(format!("send DISCOVER: {e}"));
    }
    let deadline = Instant::now() + wait;
    let mut offers: Vec<Offer> = Vec::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); RECV_BUF];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || offers.len() >= MAX_OFFERS {
            break;
        }
        if sock.set_read_timeout(Some(left)).is_err() {
            break;
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Outcome::Failed(format!("receive: {e}")),
        };
        let bytes: Vec<u8> = buf
            .get(..n)
            .unwrap_or(&[])
            .iter()
            // SAFETY: recv_from initialised the first n bytes.
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let src = from
            .as_socket_ipv4()
            .map(|a| *a.ip())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        if let Some(o) = parse_offer(&bytes, xid, &mac, src) {
            // A server may answer twice (retransmits, two sockets): keep one per kind.
            if !offers
                .iter()
                .any(|p| p.server == o.server && p.proxy == o.proxy)
            {
                offers.push(o);
            }
        }
    }
    Outcome::Offers(offers)
}

fn describe(o: &Offer) -> String {
    let file = if o.boot_file.is_empty() {
        String::new()
    } else {
        format!(", boot file {}", o.boot_file)
    };
    if o.proxy {
        format!("ProxyDHCP {}{file}", o.server)
    } else {
        format!("{} offered {}{file}", o.server, o.yiaddr)
    }
}

/// The verdict for one interface from what it heard.
fn judge(mode: DhcpMode, iface: &str, outcome: Outcome) -> Check {
    let wait = PROBE_WAIT.as_secs();
    let offers = match outcome {
        Outcome::NotPermitted(e) => {
            return Check::new(
                "dhcp_server",
                iface,
                Verdict::Warn,
                format!("probe skipped: not permitted ({e})"),
                "run preflight as root or with CAP_NET_BIND_SERVICE and CAP_NET_RAW to look for other DHCP servers",
            )
        }
        Outcome::Failed(e) => {
            return Check::new(
                "dhcp_server",
                iface,
                Verdict::Warn,
                format!("probe failed: {e}"),
                "",
            )
        }
        Outcome::Offers(o) => o,
    };
    let (proxies, servers): (Vec<&Offer>, Vec<&Offer>) = offers.iter().partition(|o| o.proxy);
    let list = |v: &[&Offer]| v.iter().map(|o| describe(o)).collect::<Vec<_>>().join("; ");
    match mode {
        DhcpMode::Full if !servers.is_empty() => Check::new(
            "dhcp_server",
            iface,
            Verdict::Fail,
            format!("another DHCP server answers here: {}", list(&servers)),
            "two authoritative servers hand out conflicting addresses: turn the other one off \
             on this segment, or run bootd with dhcp.mode = \"proxy\" beside it",
        ),
        DhcpMode::Proxy if servers.is_empty() => Check::new(
            "dhcp_server",
            iface,
            Verdict::Warn,
            format!("no DHCP server answered within {wait} s"),
            "ProxyDHCP only adds boot information to another server's offer: clients get no \
             address until a DHCP server serves this segment (or use dhcp.mode = \"full\")",
        ),
        _ if !proxies.is_empty() => Check::new(
            "dhcp_server",
            iface,
            Verdict::Warn,
            format!(
                "another PXE boot server answers PXE clients: {}",
                list(&proxies)
            ),
            "clients may boot from it instead of bootd: turn its PXE answers off",
        ),
        DhcpMode::Proxy if servers.iter().any(|o| !o.boot_file.is_empty()) => Check::new(
            "dhcp_server",
            iface,
            Verdict::Warn,
            format!(
                "DHCP server found, but its offer names a boot file itself: {}",
                list(&servers)
            ),
            "PXE clients may take that boot file instead of bootd's: remove options 66/67 \
             (next-server, filename) from that server",
        ),
        DhcpMode::Proxy => Check::ok(
            "dhcp_server",
            iface,
            format!(
                "DHCP server present as ProxyDHCP expects: {}",
                list(&servers)
            ),
        ),
        _ => Check::ok(
            "dhcp_server",
            iface,
            format!("no other DHCP server answered within {wait} s"),
        ),
    }
}

/// `dhcp_server` per served interface (with DHCP on): the probes run at once.
pub fn check(cfg: &Config, served: &[Served]) -> Vec<Check> {
    if cfg.dhcp.mode == DhcpMode::Off {
        return Vec::new();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = served
            .iter()
            .map(|iface| (iface, scope.spawn(|| probe(iface, PROBE_WAIT))))
            .collect();
        handles
            .into_iter()
            .map(|(iface, h)| {
                let outcome = h
                    .join()
                    .unwrap_or_else(|_| Outcome::Failed("probe thread panicked".into()));
                judge(cfg.dhcp.mode, &iface.name, outcome)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn offer(xid: u32, yiaddr: Ipv4Addr, proxy: bool, file: &str) -> Vec<u8> {
        let mut m = Message::new(
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply).set_xid(xid);
        if !file.is_empty() {
            m.set_fname_str(file);
        }
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Offer));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 2)));
        if proxy {
            o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        }
        m.to_vec().expect("encode")
    }

    #[test]
    fn discover_is_a_broadcast_pxe_request() {
        let d = build_discover(MAC, 0xdead_beef).expect("build");
        let m = Message::from_bytes(&d).expect("decode");
        assert_eq!(m.opcode(), Opcode::BootRequest);
        assert!(m.flags().broadcast());
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert!(matches!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(DhcpOption::ClassIdentifier(c)) if c.starts_with(b"PXEClient")
        ));
        let (mac, _) = random_identity().expect("random");
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
    }

    #[test]
    fn offers_are_matched_and_classified() {
        let from = Ipv4Addr::new(10, 0, 0, 2);
        let addr = Ipv4Addr::new(10, 0, 0, 150);
        let o = parse_offer(&offer(7, addr, false, ""), 7, &MAC, from).expect("offer");
        assert_eq!((o.server, o.yiaddr, o.proxy), (from, addr, false));
        let p = parse_offer(
            &offer(7, Ipv4Addr::UNSPECIFIED, true, "undionly.kpxe"),
            7,
            &MAC,
            from,
        )
        .expect("proxy offer");
        assert!(p.proxy);
        assert_eq!(p.boot_file, "undionly.kpxe");
        assert_eq!(parse_offer(&offer(8, addr, false, ""), 7, &MAC, from), None);
        assert_eq!(parse_offer(b"garbage", 7, &MAC, from), None);
    }

    #[test]
    fn verdicts_follow_the_mode() {
        let server = Offer {
            server: Ipv4Addr::new(10, 0, 0, 2),
            yiaddr: Ipv4Addr::new(10, 0, 0, 150),
            proxy: false,
            boot_file: String::new(),
        };
        let heard = || Outcome::Offers(vec![server.clone()]);
        let none = || Outcome::Offers(Vec::new());
        assert_eq!(judge(DhcpMode::Full, "br0", heard()).verdict, Verdict::Fail);
        assert_eq!(judge(DhcpMode::Full, "br0", none()).verdict, Verdict::Ok);
        assert_eq!(judge(DhcpMode::Proxy, "br0", heard()).verdict, Verdict::Ok);
        assert_eq!(judge(DhcpMode::Proxy, "br0", none()).verdict, Verdict::Warn);
        let mut pxe = server.clone();
        pxe.boot_file = "pxelinux.0".into();
        assert_eq!(
            judge(DhcpMode::Proxy, "br0", Outcome::Offers(vec![pxe])).verdict,
            Verdict::Warn
        );
        let denied = Outcome::NotPermitted("bind port 68: permission denied".into());
        assert_eq!(judge(DhcpMode::Full, "br0", denied).verdict, Verdict::Warn);
    }
}
