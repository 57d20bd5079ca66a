//! Process checks: the capabilities the configured services need (from CapEff in
//! /proc/self/status), and each upstream's secret and CA files.

use super::{Check, Verdict};
use crate::config::{Config, DhcpMode};

/// Capability bit numbers (linux/capability.h).
pub const CAP_NET_BIND_SERVICE: u32 = 10;
/// Raw and packet sockets: link-level unicast offers to clients without an address.
pub const CAP_NET_RAW: u32 = 13;
/// Ports below this need CAP_NET_BIND_SERVICE when the sysctl cannot be read.
const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

/// The effective capability mask from a `/proc/<pid>/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

fn has(mask: u64, cap: u32) -> bool {
    mask.checked_shr(cap).is_some_and(|m| m & 1 == 1)
}

fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START)
}

/// `capabilities`: CAP_NET_BIND_SERVICE when a port is privileged, CAP_NET_RAW with DHCP on.
pub fn check_capabilities(cfg: &Config) -> Vec<Check> {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::new(
                "capabilities",
                "",
                Verdict::Warn,
                format!("cannot read /proc/self/status: {e}"),
                "run preflight with /proc mounted",
            )]
        }
    };
    let Some(eff) = parse_cap_eff(&status) else {
        return vec![Check::new(
            "capabilities",
            "",
            Verdict::Warn,
            "no CapEff line in /proc/self/status",
            "",
        )];
    };
    let dhcp = cfg.dhcp.mode != DhcpMode::Off;
    let mut ports = vec![cfg.server.http_listen.port()];
    if cfg.tftp.enabled {
        ports.push(cfg.tftp.listen.port());
    }
    if dhcp {
        ports.extend([super::network::DHCP_PORT, super::network::PXE_PORT]);
    }
    let start = unprivileged_port_start();
    let mut privileged: Vec<u16> = ports.into_iter().filter(|p| *p < start).collect();
    privileged.sort_unstable();
    privileged.dedup();
    let mut out = Vec::new();
    if privileged.is_empty() {
        out.push(Check::ok(
            "capabilities",
            "CAP_NET_BIND_SERVICE",
            "not needed: every port is unprivileged",
        ));
    } else {
        let list: Vec<String> = privileged.iter().map(u16::to_string).collect();
        out.push(if has(eff, CAP_NET_BIND_SERVICE) {
            Check::ok(
                "capabilities",
                "CAP_NET_BIND_SERVICE",
                format!("present (ports {})", list.join(", ")),
            )
        } else {
            Check::new(
                "capabilities",
                "CAP_NET_BIND_SERVICE",
                Verdict::Fail,
                format!("missing: ports {} cannot be bound", list.join(", ")),
                "run as root or with AmbientCapabilities=CAP_NET_BIND_SERVICE (bootd.service has it)",
            )
        });
    }
    if dhcp {
        out.push(if has(eff, CAP_NET_RAW) {
            Check::ok("capabilities", "CAP_NET_RAW", "present")
        } else {
            Check::new(
                "capabilities",
                "CAP_NET_RAW",
                Verdict::Warn,
                "missing: offers to clients without an address are broadcast instead of unicast",
                "run as root or with AmbientCapabilities=CAP_NET_RAW (bootd.service has it)",
            )
        });
    }
    out
}

/// The kernel's neighbour-table limit (per network namespace).
const GC_THRESH3: &str = "/proc/sys/net/ipv4/neigh/default/gc_thresh3";

/// `neighbour_table`: in full mode, whether the kernel can hold a neighbour entry for every
/// address of the pools at once. A boot storm on one segment puts every machine in the
/// table; past `gc_thresh3` new entries are refused and replies to those machines are
/// dropped (the kernel logs "neighbour table overflow").
pub fn check_neighbour_table(cfg: &Config) -> Option<Check> {
    if cfg.dhcp.mode != crate::config::DhcpMode::Full {
        return None;
    }
    let addresses: u64 = cfg
        .dhcp
        .pools
        .iter()
        .map(|p| u64::from(u32::from(p.end).saturating_sub(u32::from(p.start))) + 1)
        .sum();
    let limit = std::fs::read_to_string(GC_THRESH3)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())?;
    Some(neighbour_verdict(addresses, limit))
}

fn neighbour_verdict(addresses: u64, limit: u64) -> Check {
    if addresses <= limit {
        return Check::ok(
            "neighbour_table",
            "net.ipv4.neigh.default.gc_thresh3",
            format!("{limit} entries hold the {addresses} pool addresses"),
        );
    }
    Check::new(
        "neighbour_table",
        "net.ipv4.neigh.default.gc_thresh3",
        Verdict::Warn,
        format!(
            "{limit} entries for {addresses} pool addresses: if more machines than that boot \
             at once on these segments, replies to the rest are dropped"
        ),
        format!(
            "raise it, e.g. sysctl -w net.ipv4.neigh.default.gc_thresh3={n} \
             net.ipv4.neigh.default.gc_thresh2={half} and persist it in /etc/sysctl.d/",
            n = addresses.next_power_of_two(),
            half = addresses.next_power_of_two() / 2
        ),
    )
}

/// `upstream_secret` (and `upstream_ca`) per `[[upstream]]`.
pub fn check_upstreams(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for u in &cfg.upstream {
        out.push(match crate::relay::secret_status(u) {
            Ok("none") => Check::new(
                "upstream_secret",
                &u.name,
                Verdict::Warn,
                "no secret_file: events are sent unsigned",
                "set secret_file so the provider can verify bootd's events",
            ),
            Ok(_) => Check::ok("upstream_secret", &u.name, "secret readable"),
            Err(e) => Check::new(
                "upstream_secret",
                &u.name,
                Verdict::Fail,
                e,
                "create the file readable by bootd (chgrp bootd FILE; chmod 0640 FILE); \
                 until then its events stay queued",
            ),
        });
        if let Some(ca) = &u.ca_file {
            out.push(match std::fs::File::open(ca) {
                Ok(_) => Check::ok("upstream_ca", &u.name, format!("{} readable", ca.display())),
                Err(e) => Check::new(
                    "upstream_ca",
                    &u.name,
                    Verdict::Fail,
                    format!("cannot read {}: {e}", ca.display()),
                    "make the CA bundle readable by bootd or remove ca_file",
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_table_warns_when_the_pools_outgrow_it() {
        assert_eq!(neighbour_verdict(254, 1024).verdict, Verdict::Ok);
        let warn = neighbour_verdict(5000, 1024);
        assert_eq!(warn.verdict, Verdict::Warn);
        assert!(warn.hint.contains("gc_thresh3=8192"), "{}", warn.hint);
    }

    #[test]
    fn cap_eff_parsing() {
        let status = "Name:\tbootd\nCapInh:\t0000000000000000\nCapEff:\t0000000000002400\n";
        let eff = parse_cap_eff(status).expect("CapEff");
        assert!(has(eff, CAP_NET_BIND_SERVICE));
        assert!(has(eff, CAP_NET_RAW));
        assert!(!has(eff, 0));
        assert!(!has(eff, 200));
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff(""), None);
    }
}
