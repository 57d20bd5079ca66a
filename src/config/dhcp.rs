//! `[dhcp]` and `[[dhcp.pools]]`: mode, router advertisements, option 43, rate limit and
//! the address pools of full mode.

use super::reader::{Ctx, Field, Section};
use super::values::{check_hostname, parse_ipv4, parse_net, serialize_duration, Ipv4Net};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Default DHCP replies per MAC per second.
pub const DEFAULT_RATE_PER_MAC: u32 = 20;
/// Upper bound of `dhcp.rate_per_mac`.
pub const RATE_PER_MAC_MAX: u32 = 10_000;
/// Default lease time of a pool.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(3600);
/// Shortest lease time (shorter ones make clients renew constantly).
pub const LEASE_TIME_MIN: Duration = Duration::from_secs(60);
/// Longest lease time (fits DHCP's 32-bit seconds with room).
pub const LEASE_TIME_MAX: Duration = Duration::from_secs(365 * 86_400);

/// `dhcp.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// No DHCP at all (another server does PXE).
    Off,
    /// ProxyDHCP beside an existing DHCP server.
    Proxy,
    /// Authoritative DHCP for the configured pools.
    Full,
}

/// `dhcp.proxy_option43`: how much PXE vendor information ProxyDHCP offers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Option43 {
    /// Discovery control, boot servers and a one-entry menu (what Intel PXE ROMs expect).
    Menu,
    /// Only discovery control (some firmware chokes on menus).
    Minimal,
}

/// `[dhcp]`.
#[derive(Debug, Clone, Serialize)]
pub struct Dhcp {
    /// Off, proxy or full.
    pub mode: DhcpMode,
    /// Send a minimal IPv6 router advertisement so iPXE stops waiting for one.
    pub ipv6_ra: bool,
    /// Option 43 contents in ProxyDHCP offers.
    pub proxy_option43: Option43,
    /// DHCP replies per MAC per second; more are dropped and counted.
    pub rate_per_mac: u32,
    /// Address pools (used in full mode only).
    pub pools: Vec<Pool>,
}

/// `[[dhcp.pools]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    /// The subnet this pool serves.
    pub subnet: Ipv4Net,
    /// First address of the dynamic range (inside `subnet`).
    pub start: Ipv4Addr,
    /// Last address of the dynamic range (inside `subnet`, not below `start`).
    pub end: Ipv4Addr,
    /// Default gateway (option 3), inside `subnet` and outside the range.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Lease time offered.
    #[serde(serialize_with = "serialize_duration")]
    pub lease_time: Duration,
    /// Domain name (option 15).
    pub domain: Option<String>,
}

impl Pool {
    /// True if `ip` is inside the dynamic range.
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(ip))
    }
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            mode: DhcpMode::Proxy,
            ipv6_ra: false,
            proxy_option43: Option43::Menu,
            rate_per_mac: DEFAULT_RATE_PER_MAC,
            pools: Vec::new(),
        }
    }
}

pub(super) fn read_dhcp(cx: &mut Ctx<'_>, s: &Section<'_>) -> Dhcp {
    s.check_keys(
        cx,
        &["mode", "ipv6_ra", "proxy_option43", "rate_per_mac", "pools"],
    );
    let defaults = Dhcp::default();
    let mode_field = s.get("mode");
    let mode = mode_field
        .as_ref()
        .and_then(|f| {
            cx.choice(
                f,
                &[
                    ("proxy", DhcpMode::Proxy),
                    ("full", DhcpMode::Full),
                    ("off", DhcpMode::Off),
                ],
            )
        })
        .unwrap_or(defaults.mode);
    let ipv6_ra = s
        .get("ipv6_ra")
        .and_then(|f| cx.boolean(&f))
        .unwrap_or(defaults.ipv6_ra);
    let proxy_option43 = s
        .get("proxy_option43")
        .and_then(|f| {
            cx.choice(
                &f,
                &[("menu", Option43::Menu), ("minimal", Option43::Minimal)],
            )
        })
        .unwrap_or(defaults.proxy_option43);
    let rate_per_mac = s
        .get("rate_per_mac")
        .and_then(|f| cx.integer(&f, 1, i64::from(RATE_PER_MAC_MAX)))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(defaults.rate_per_mac);
    let pool_sections = s.get("pools").map(|f| cx.tables(&f)).unwrap_or_default();
    let mut pools: Vec<Pool> = Vec::new();
    for section in &pool_sections {
        let Some((pool, subnet_at)) = read_pool(cx, section) else {
            continue;
        };
        if let Some(other) = pools.iter().find(|p| p.subnet.overlaps(&pool.subnet)) {
            cx.error(
                subnet_at,
                &section.key_path("subnet"),
                format!(
                    "subnet {} overlaps the pool for {}",
                    pool.subnet, other.subnet
                ),
            );
        }
        pools.push(pool);
    }
    if mode == DhcpMode::Full && pool_sections.is_empty() {
        let at = mode_field.as_ref().map_or(s.at, |f| f.at);
        cx.error(
            at,
            &s.key_path("mode"),
            "mode \"full\" needs at least one [[dhcp.pools]] to hand out addresses from",
        );
    }
    Dhcp {
        mode,
        ipv6_ra,
        proxy_option43,
        rate_per_mac,
        pools,
    }
}

/// One pool and the position of its subnet; `None` if its subnet or range is unusable.
fn read_pool(cx: &mut Ctx<'_>, s: &Section<'_>) -> Option<(Pool, usize)> {
    s.check_keys(
        cx,
        &["subnet", "range", "router", "dns", "lease_time", "domain"],
    );
    let subnet_field = s.require(cx, "subnet");
    let subnet = subnet_field.as_ref().and_then(|f| cx.parsed(f, parse_net));
    let range = s
        .require(cx, "range")
        .and_then(|f| read_range(cx, &f, subnet));
    let router_field = s.get("router");
    let router = router_field.as_ref().and_then(|f| cx.parsed(f, parse_ipv4));
    let dns = s
        .get("dns")
        .and_then(|f| cx.strings(&f))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(text, elem)| match parse_ipv4(text) {
            Ok(ip) => Some(ip),
            Err(message) => {
                cx.error(elem.at, &elem.path, message);
                None
            }
        })
        .collect();
    let lease_time = s
        .get("lease_time")
        .and_then(|f| cx.duration(&f, LEASE_TIME_MIN, LEASE_TIME_MAX))
        .unwrap_or(DEFAULT_LEASE_TIME);
    let domain = s.get("domain").and_then(|f| cx.parsed(&f, check_hostname));
    let (subnet, (start, end), subnet_field) = (subnet?, range?, subnet_field?);
    let pool = Pool {
        subnet,
        start,
        end,
        router,
        dns,
        lease_time,
        domain,
    };
    if let (Some(router), Some(f)) = (router, router_field) {
        if !subnet.is_host(router) {
            cx.error(
                f.at,
                &f.path,
                format!("router {router} is not a host address of subnet {subnet}"),
            );
        } else if pool.in_range(router) {
            cx.error(
                f.at,
                &f.path,
                format!("router {router} is inside the dynamic range {start}-{end}"),
            );
        }
    }
    Some((pool, subnet_field.at))
}

/// `range = [start, end]`, both host addresses of the subnet, start ≤ end.
fn read_range(
    cx: &mut Ctx<'_>,
    f: &Field<'_>,
    subnet: Option<Ipv4Net>,
) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let count = f.item.as_array().map(|a| a.len());
    let elems = cx.strings(f)?;
    let mut addresses = Vec::new();
    for (text, elem) in &elems {
        let ip = match parse_ipv4(text) {
            Ok(ip) => ip,
            Err(message) => {
                cx.error(elem.at, &elem.path, message);
                continue;
            }
        };
        match subnet {
            Some(net) if !net.is_host(ip) => cx.error(
                elem.at,
                &elem.path,
                format!("{ip} is outside subnet {net} (or is its network or broadcast address)"),
            ),
            _ => addresses.push(ip),
        }
    }
    if count != Some(2) {
        cx.error(f.at, &f.path, "expected two addresses: [first, last]");
        return None;
    }
    // Fewer than two means an element was bad, and that is already reported.
    let [start, end] = <[Ipv4Addr; 2]>::try_from(addresses).ok()?;
    if start > end {
        cx.error(
            f.at,
            &f.path,
            format!("the range starts at {start}, after its end {end}"),
        );
        return None;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{defaults, errors, parse, where_, SERVER};

    #[test]
    fn bad_cidr_and_pool_range() {
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.1/24\"\nrange = [\"10.0.0.10\", \"10.0.0.20\"]\n[[dhcp.pools]]\nsubnet = \"10.1.0.0/24\"\nrange = [\"10.1.0.10\", \"10.2.0.20\"]\n"
        );
        assert_eq!(
            errors(&text),
            [
                "t.toml:6:10: dhcp.pools[0].subnet: invalid subnet \"10.0.0.1/24\": host bits are set (did you mean 10.0.0.0/24?)",
                "t.toml:10:23: dhcp.pools[1].range[1]: 10.2.0.20 is outside subnet 10.1.0.0/24 (or is its network or broadcast address)",
            ]
        );
        let reversed = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.20\", \"10.0.0.10\"]\nrouter = \"10.0.0.15\"\n"
        );
        assert_eq!(where_(&reversed), ["t.toml:7:9: dhcp.pools[0].range"]);
    }

    #[test]
    fn every_bad_array_element_is_reported() {
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.10\", 20]\ndns = [\"x\", 5, \"10.0.0.1\"]\n"
        );
        assert_eq!(
            where_(&text),
            [
                "t.toml:7:23: dhcp.pools[0].range[1]",
                "t.toml:8:8: dhcp.pools[0].dns[0]",
                "t.toml:8:13: dhcp.pools[0].dns[1]",
            ]
        );
        let short = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.0.0.0/24\"\nrange = [\"10.0.0.10\"]\n"
        );
        assert_eq!(
            errors(&short),
            ["t.toml:7:9: dhcp.pools[0].range: expected two addresses: [first, last]"]
        );
    }

    #[test]
    fn full_mode_needs_pools_and_reservations_inside_them() {
        let text = format!("{SERVER}[dhcp]\nmode = \"full\"\n");
        assert_eq!(where_(&text), ["t.toml:4:8: dhcp.mode"]);
        let text = format!(
            "{SERVER}[dhcp]\nmode = \"full\"\npools = [{{ subnet = \"10.0.0.0/24\", range = [\"10.0.0.10\", \"10.0.0.20\"] }}]\n[[nodes]]\nmac = \"52:54:00:12:34:56\"\nip = \"10.9.0.5\"\n[[nodes]]\nmac = \"52:54:00:12:34:57\"\nip = \"10.0.0.5\"\n"
        );
        assert_eq!(where_(&text), ["t.toml:8:6: nodes[0].ip"]);
        // In proxy mode a node's address is informational and may be anywhere.
        let proxy = text.replace("mode = \"full\"", "mode = \"proxy\"");
        assert!(parse(&proxy).is_ok());
    }

    #[test]
    fn file_defaults() {
        let c = defaults();
        assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
        assert_eq!(c.dhcp.proxy_option43, Option43::Menu);
        assert_eq!(c.dhcp.rate_per_mac, 20);
    }
}
