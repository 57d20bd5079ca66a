//! Value checks the sections share (pure: text in, typed value or message out): IPv4
//! addresses and networks, listen addresses, MACs, URLs, names, host names, interface
//! names, relative file names and durations.

use super::reader::shown;
use crate::mac::MacAddr;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Longest profile, group or upstream name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest Linux interface name (IFNAMSIZ without the NUL).
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest free-form identifier (`provider_id`).
pub const MAX_ID_LEN: usize = 256;
/// Longest URL accepted anywhere in the file.
pub const MAX_URL_LEN: usize = 2048;

/// An IPv4 network such as `10.0.0.0/24` (host bits are always zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

/// Why a string is not an IPv4 network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4NetError {
    /// Not `ADDRESS/PREFIX`.
    #[error("invalid subnet {0:?}: expected ADDRESS/PREFIX such as 10.0.0.0/24")]
    Syntax(String),
    /// Prefix above 32.
    #[error("invalid subnet {0:?}: the prefix length must be 0..=32")]
    Prefix(String),
    /// Host bits set.
    #[error("invalid subnet {input:?}: host bits are set (did you mean {network}?)")]
    HostBits {
        /// The text given.
        input: String,
        /// The network it probably meant.
        network: String,
    },
}

impl Ipv4Net {
    /// The netmask as a 32-bit number.
    pub fn mask(&self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// The netmask as an address (option 1).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// True if `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// True if the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// True if `ip` can be given to a host: inside, and not the network or broadcast
    /// address (/31 and /32 have none of those).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.broadcast()))
    }
}

impl FromStr for Ipv4Net {
    type Err = Ipv4NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input: String = s.chars().take(64).collect();
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| Ipv4NetError::Syntax(input.clone()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| Ipv4NetError::Syntax(input.clone()))?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Ipv4NetError::Syntax(input));
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| Ipv4NetError::Syntax(input.clone()))?;
        if prefix > 32 {
            return Err(Ipv4NetError::Prefix(input));
        }
        let net = Ipv4Net { addr, prefix };
        let network = Ipv4Addr::from(u32::from(addr) & net.mask());
        if network != addr {
            return Err(Ipv4NetError::HostBits {
                input,
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses `"500ms"`, `"30s"`, `"45m"`, `"1h30m"`, `"2d"` (bootd-proto's one grammar).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    bootd_proto::duration::parse(s).map_err(|e| e.to_string())
}

pub use bootd_proto::duration::format as format_duration;

pub(super) fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_duration(*d))
}

pub(super) fn serialize_opt_duration<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

pub(super) fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid IPv4 address {:?}: expected four decimal octets such as 10.0.0.21",
            shown(s)
        )
    })
}

pub(super) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "invalid listen address {:?}: expected IP:PORT such as 0.0.0.0:8080 or [::]:8080",
            shown(s)
        )
    })
}

pub(super) fn parse_mac(s: &str) -> Result<MacAddr, String> {
    s.parse::<MacAddr>().map_err(|e| e.to_string())
}

pub(super) fn parse_net(s: &str) -> Result<Ipv4Net, String> {
    s.parse::<Ipv4Net>().map_err(|e| e.to_string())
}

/// An absolute http or https URL with a host; returns it unchanged.
pub(super) fn check_http_url(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid URL {:?}: {why}", shown(s));
    if s.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        s.get("http://".len()..)
    } else if lower.starts_with("https://") {
        s.get("https://".len()..)
    } else {
        None
    }
    .ok_or_else(|| bad("expected an http:// or https:// URL"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("credentials in URLs are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| bad("invalid IPv6 address in the host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("junk after the host"))?,
            ),
        };
        (inside, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad(
            "the host may hold only letters, digits, '.', '-' and '_'",
        ));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(bad("the port must be 1..=65535")),
        }
    }
    Ok(s.to_string())
}

/// Profile, group and upstream names: they appear in URLs, logs and `bootctl` output.
pub(super) fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {:?}: expected 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.', not starting with '.'",
            shown(s)
        ))
    }
}

/// Host names (RFC 1123): dot-separated labels of letters, digits and inner hyphens.
pub(super) fn check_hostname(s: &str) -> Result<String, String> {
    const MAX_HOSTNAME_LEN: usize = 253;
    const MAX_LABEL_LEN: usize = 63;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() <= MAX_HOSTNAME_LEN && s.split('.').all(label_ok) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid host name {:?}: expected labels of letters, digits and inner '-' (at most {MAX_LABEL_LEN} each), separated by '.'",
            shown(s)
        ))
    }
}

/// Linux interface names: what the kernel's `dev_valid_name` accepts.
pub(super) fn check_interface(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_IFNAME_LEN
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid interface name {:?}: expected 1 to {MAX_IFNAME_LEN} characters without '/', ':' or spaces",
            shown(s)
        ))
    }
}

/// Unix group names (shadow's rules, loosely): checked for shape here, existence at start.
pub(super) fn check_group_name(s: &str) -> Result<String, String> {
    const MAX_GROUP_LEN: usize = 32;
    let ok = !s.is_empty()
        && s.len() <= MAX_GROUP_LEN
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid group name {:?}: expected 1 to {MAX_GROUP_LEN} letters, digits, '_', '-' or '.'",
            shown(s)
        ))
    }
}

/// A file under a served root (assets, templates): relative, and it cannot climb out.
pub(super) fn check_relative_file(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split('/').all(|part| !part.is_empty() && part != "..");
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid file name {:?}: expected a relative path such as \"ipxe.efi\" or \"arm64/ipxe.efi\", without '..', spaces or backslashes",
            shown(s)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("45m", Duration::from_secs(45 * 60)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(2 * 86_400)),
            ("1d2h3m4s5ms", Duration::from_millis(93_784_005)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
            assert_eq!(parse_duration(&format_duration(want)), Ok(want), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        for bad in [
            "",
            "30",
            "s",
            "30x",
            "1.5h",
            "-1s",
            " 30s",
            "30 s",
            "30m1h",
            "1h1h",
            "1h 30m",
            "99999999999999999999d",
            "213503982334601d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv4_nets() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap_or(Ipv4Net {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
        });
        assert_eq!(net.to_string(), "10.0.0.0/24");
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert!(net.contains(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 1, 0)));
        assert!(net.is_host(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!net.is_host(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(!net.is_host(Ipv4Addr::new(10, 0, 0, 255)));
        let all: Result<Ipv4Net, _> = "0.0.0.0/0".parse();
        assert!(all.is_ok_and(|n| n.contains(Ipv4Addr::new(192, 168, 1, 1))));
        let host: Result<Ipv4Net, _> = "10.0.0.7/32".parse();
        assert!(host.is_ok_and(|n| n.is_host(Ipv4Addr::new(10, 0, 0, 7))));
        assert_eq!(
            "10.0.0.1/24".parse::<Ipv4Net>(),
            Err(Ipv4NetError::HostBits {
                input: "10.0.0.1/24".into(),
                network: "10.0.0.0/24".into()
            })
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/24",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for good in [
            "http://10.0.0.1:8080",
            "https://api.example.net/v1/events?x=1",
            "http://[fe80::1]:8080/",
            "HTTP://Host_1.example",
        ] {
            assert!(check_http_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://:80",
            "http://a b",
            "http://h:0",
            "http://h:99999",
            "http://user:pw@h/",
            "http://[::1",
            "10.0.0.1:8080",
        ] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(check_hostname("pve1.lab.example").is_ok());
        assert!(check_hostname("-pve").is_err());
        assert!(check_hostname("pve_1").is_err());
        assert!(check_interface("enp0s31f6").is_ok());
        assert!(check_interface("averyveryverylongname").is_err());
        assert!(check_interface("eth0:1").is_err());
        assert!(check_relative_file("arm64/ipxe.efi").is_ok());
        for bad in ["/etc/passwd", "../x", "a/../../x", "a\\b", "", "a//b"] {
            assert!(check_relative_file(bad).is_err(), "{bad}");
        }
    }
}
