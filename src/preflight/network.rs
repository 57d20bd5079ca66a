//! Network checks: the listen ports are free (bound and released here, the way the
//! daemon binds them) and the served interfaces exist, are up and have an IPv4 address.

use super::owner::{holder, Proto};
use super::{Check, Verdict};
use crate::config::{Config, DhcpMode};
use nix::net::if_::InterfaceFlags;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};

/// The DHCP server port.
pub const DHCP_PORT: u16 = 67;
/// The PXE boot server port (UEFI firmware and iPXE ask it after a proxy offer).
pub const PXE_PORT: u16 = 4011;

/// An interface DHCP will answer on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub name: String,
    pub addr: Ipv4Addr,
}

/// `http_port`, `tftp_port`, and with DHCP on `dhcp_port` and `pxe_port`.
pub fn check_ports(cfg: &Config) -> Vec<Check> {
    let mut out = vec![tcp_port(
        "http_port",
        cfg.server.http_listen,
        "server.http_listen",
    )];
    if cfg.tftp.enabled {
        out.push(udp_port("tftp_port", cfg.tftp.listen, "tftp.listen", false));
    }
    if cfg.dhcp.mode != DhcpMode::Off {
        for (id, port) in [("dhcp_port", DHCP_PORT), ("pxe_port", PXE_PORT)] {
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
            out.push(udp_port(id, addr, "dhcp.mode", true));
        }
    }
    out
}

fn bind_problem(id: &'static str, addr: SocketAddr, key: &str, e: &std::io::Error) -> Check {
    let (what, hint) = match e.kind() {
        ErrorKind::AddrInUse => (
            "in use by another process".to_string(),
            format!(
                "stop whatever holds it (ss -lntup 'sport = :{}') or change {key}",
                addr.port()
            ),
        ),
        ErrorKind::PermissionDenied => (
            "permission denied".to_string(),
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (the systemd unit grants it)"
                .to_string(),
        ),
        ErrorKind::AddrNotAvailable => (
            "the address is not on this host".to_string(),
            format!("use an address of this host (ip -br addr) in {key}"),
        ),
        _ => (e.to_string(), format!("check {key}")),
    };
    Check::new(
        id,
        addr.to_string(),
        Verdict::Fail,
        format!("cannot bind: {what} ({e})"),
        hint,
    )
}

fn tcp_port(id: &'static str, addr: SocketAddr, key: &str) -> Check {
    match TcpListener::bind(addr) {
        Ok(_) => Check::ok(id, addr.to_string(), "free"),
        Err(e) => held_by_bootd(id, addr, Proto::Tcp, &e)
            .unwrap_or_else(|| bind_problem(id, addr, key, &e)),
    }
}

/// A port in use by a running bootd (preflight on a live appliance) is fine.
fn held_by_bootd(
    id: &'static str,
    addr: SocketAddr,
    proto: Proto,
    e: &std::io::Error,
) -> Option<Check> {
    if e.kind() != ErrorKind::AddrInUse {
        return None;
    }
    let h = holder(proto, addr.port()).filter(|h| h.is_bootd())?;
    Some(Check::ok(
        id,
        addr.to_string(),
        format!("in use by bootd itself (pid {})", h.pid),
    ))
}

/// Binds a UDP port alone; if it is taken and `shareable`, tries the daemon's own bind
/// (SO_REUSEADDR): the DHCP service can then start, but it shares broadcasts with the
/// other socket, and unicasts go to only one of the two.
fn udp_port(id: &'static str, addr: SocketAddr, key: &str, shareable: bool) -> Check {
    let e = match UdpSocket::bind(addr) {
        Ok(_) => return Check::ok(id, addr.to_string(), "free"),
        Err(e) => e,
    };
    if let Some(ours) = held_by_bootd(id, addr, Proto::Udp, &e) {
        return ours;
    }
    if e.kind() == ErrorKind::AddrInUse && shareable {
        if let Ok(_shared) = crate::dhcp::socket::bind_udp(addr.port()) {
            return Check::new(
                id,
                addr.to_string(),
                Verdict::Warn,
                "held by another process that allows sharing (SO_REUSEADDR); bootd can bind \
                 it too, but unicast requests reach only one of the two",
                format!(
                    "stop the other DHCP/PXE service on this host (ss -lunp 'sport = :{}')",
                    addr.port()
                ),
            );
        }
    }
    bind_problem(id, addr, key, &e)
}

/// What getifaddrs says about one interface.
#[derive(Debug, Default)]
struct IfaceState {
    flags: Option<InterfaceFlags>,
    addrs: Vec<Ipv4Addr>,
}

fn interfaces() -> Result<std::collections::BTreeMap<String, IfaceState>, nix::Error> {
    let mut out: std::collections::BTreeMap<String, IfaceState> = Default::default();
    for a in nix::ifaddrs::getifaddrs()? {
        let e = out.entry(a.interface_name.clone()).or_default();
        e.flags = Some(e.flags.unwrap_or(InterfaceFlags::empty()) | a.flags);
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            e.addrs.push(sin.ip());
        }
    }
    Ok(out)
}

/// `interface` checks (with DHCP on): each name in `server.interfaces` exists, is up,
/// has carrier and an IPv4 address; with none named, that some interface qualifies.
/// Returns the interfaces DHCP will serve (and the probe will ask on).
pub fn check_interfaces(cfg: &Config, out: &mut Vec<Check>) -> Vec<Served> {
    if cfg.dhcp.mode == DhcpMode::Off {
        return Vec::new();
    }
    let table = match interfaces() {
        Ok(t) => t,
        Err(e) => {
            out.push(Check::new(
                "interface",
                "",
                Verdict::Fail,
                format!("cannot list the network interfaces: {e}"),
                "run preflight where bootd runs (same network namespace)",
            ));
            return Vec::new();
        }
    };
    let mut served = Vec::new();
    if cfg.server.interfaces.is_empty() {
        for (name, st) in &table {
            let flags = st.flags.unwrap_or(InterfaceFlags::empty());
            if flags.contains(InterfaceFlags::IFF_UP)
                && !flags.contains(InterfaceFlags::IFF_LOOPBACK)
            {
                if let Some(addr) = st.addrs.first() {
                    served.push(Served {
                        name: name.clone(),
                        addr: *addr,
                    });
                }
            }
        }
        let names: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
        out.push(if served.is_empty() {
            Check::new(
                "interface",
                "(all)",
                Verdict::Fail,
                "no interface is up with an IPv4 address: DHCP has nowhere to answer",
                "configure the boot network's interface, or name it in server.interfaces",
            )
        } else {
            Check::new(
                "interface",
                "(all)",
                Verdict::Warn,
                format!(
                    "server.interfaces is empty: DHCP answers on every interface ({})",
                    names.join(", ")
                ),
                "name the boot network's interface in server.interfaces so DHCP stays off the others",
            )
        });
        return served;
    }
    for name in &cfg.server.interfaces {
        let Some(st) = table.get(name) else {
            out.push(Check::new(
                "interface",
                name,
                Verdict::Fail,
                "no such interface",
                "check the name with `ip -br link`, or fix server.interfaces",
            ));
            continue;
        };
        let flags = st.flags.unwrap_or(InterfaceFlags::empty());
        if !flags.contains(InterfaceFlags::IFF_UP) {
            out.push(Check::new(
                "interface",
                name,
                Verdict::Fail,
                "down",
                format!("ip link set {name} up (and make it come up at boot)"),
            ));
            continue;
        }
        let Some(addr) = st.addrs.first().copied() else {
            out.push(Check::new(
                "interface",
                name,
                Verdict::Fail,
                "up, but has no IPv4 address: bootd cannot name itself as the boot server",
                format!("give {name} an address on the boot network (ip addr add ... dev {name})"),
            ));
            continue;
        };
        let list: Vec<String> = st.addrs.iter().map(|a| a.to_string()).collect();
        if flags.contains(InterfaceFlags::IFF_RUNNING) {
            out.push(Check::ok(
                "interface",
                name,
                format!("up, {}", list.join(", ")),
            ));
        } else {
            out.push(Check::new(
                "interface",
                name,
                Verdict::Warn,
                format!(
                    "up, {}, but no carrier (cable, switch port, bridge with no port up)",
                    list.join(", ")
                ),
                format!("check the link: ip -br link show {name}"),
            ));
        }
        served.push(Served {
            name: name.clone(),
            addr,
        });
    }
    served
}

/// The host part of an http(s) URL: `10.0.0.1` from `http://10.0.0.1:8080/x`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

/// `public_url`: machines fetch their scripts from it, so its address should be this
/// host's (a loopback or foreign address boots nothing; a name is not resolved here).
pub fn check_public_url(cfg: &Config) -> Check {
    let url = &cfg.server.public_url;
    let hint = format!(
        "set server.public_url to http://<this host's address on the boot network>:{}",
        cfg.server.http_listen.port()
    );
    let Some(host) = url_host(url) else {
        return Check::new("public_url", url, Verdict::Warn, "not an http(s) URL", hint);
    };
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return Check::ok(
            "public_url",
            url,
            format!("host name {host} (not resolved here)"),
        );
    };
    if ip.is_loopback() {
        return Check::new(
            "public_url",
            url,
            Verdict::Warn,
            "a loopback address: only this host can fetch boot scripts from it",
            hint,
        );
    }
    let local = nix::ifaddrs::getifaddrs()
        .map(|addrs| {
            addrs.into_iter().any(|a| {
                a.address.as_ref().is_some_and(|s| {
                    s.as_sockaddr_in().map(|v4| std::net::IpAddr::V4(v4.ip())) == Some(ip)
                        || s.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())) == Some(ip)
                })
            })
        })
        .unwrap_or(true);
    if local {
        Check::ok("public_url", url, "an address of this host")
    } else {
        Check::new(
            "public_url",
            url,
            Verdict::Warn,
            format!("{ip} is not an address of this host: boot scripts would point elsewhere"),
            hint + " (ignore this behind NAT or a reverse proxy)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_reported_with_a_hint() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let c = tcp_port("http_port", addr, "server.http_listen");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.message.contains("in use"), "{c:?}");
        assert!(c.hint.contains("server.http_listen"), "{c:?}");
        drop(held);
        assert_eq!(
            tcp_port("http_port", addr, "server.http_listen").verdict,
            Verdict::Ok
        );
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let uaddr = u.local_addr().expect("addr");
        assert_eq!(
            udp_port("tftp_port", uaddr, "tftp.listen", false).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://10.0.0.1:8080/x"), Some("10.0.0.1"));
        assert_eq!(
            url_host("https://boot.example.net"),
            Some("boot.example.net")
        );
        assert_eq!(url_host("http://[fd00::1]:8080"), Some("fd00::1"));
        assert_eq!(url_host("ftp://x"), None);
    }

    #[test]
    fn loopback_is_listed() {
        let t = interfaces().expect("getifaddrs");
        let lo = t.get("lo").expect("lo");
        assert!(lo.addrs.contains(&Ipv4Addr::LOCALHOST));
        assert!(lo
            .flags
            .is_some_and(|f| f.contains(InterfaceFlags::IFF_LOOPBACK)));
    }
}
