//! The rest of the firmware matrix with real clients: a QEMU machine in another subnet
//! reaching bootd through a real DHCP relay (dnsmasq `--dhcp-relay`) that routes between
//! two network namespaces, and OVMF's own UEFI HTTP Boot (no PXE, no TFTP) chaining to
//! iPXE. Each case boots the test guest through to its phase callback and prints its
//! boot time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::mac::MacAddr;
use common::netboot::{
    self, address_only_dnsmasq, booted_through_ipxe, http_get, metric, node_history, start_bootd,
    BRIDGE_IP, HTTP_PORT,
};
use common::{
    need_root, read_tcp, Capture, Firmware, Netns, NetnsConfig, Qemu, QemuConfig, UdpDatagram,
};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// How long one boot may take under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// The client's MAC.
const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x57]);
/// The relay's address on the client subnet: giaddr, and the clients' router.
const RELAY_GIADDR: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// The client subnet behind the relay.
const REMOTE_SUBNET: &str = "10.88.0.0/24";
/// The relay's address on bootd's own subnet (bridged link).
const RELAY_ON_BR0: &str = "10.77.0.2";
/// A point-to-point uplink between bootd's host and the router (routed link).
const UPLINK_A: &str = "10.66.0.1";
const UPLINK_B: &str = "10.66.0.2";
const UPLINK_PREFIX: &str = "30";
/// The veth pair between the namespaces (A side, B side).
const VETH_A: &str = "rl0";
const VETH_B: &str = "rl1";
/// BOOTP header offsets read from captures (RFC 2131 §2).
const YIADDR: std::ops::Range<usize> = 16..20;
const GIADDR: std::ops::Range<usize> = 24..28;
const FILE: std::ops::Range<usize> = 108..236;
/// DHCP message types.
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;

/// `[dhcp]` of a full-mode bootd with a pool for its own subnet and one behind the relay.
const FULL_TWO_POOLS: &str = r#"mode = "full"
ipv6_ra = true
[[dhcp.pools]]
subnet = "10.77.0.0/24"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"
[[dhcp.pools]]
subnet = "10.88.0.0/24"
range = ["10.88.0.100", "10.88.0.199"]
router = "10.88.0.1"
lease_time = "1h"
"#;
/// `[dhcp]` of a full-mode bootd with one pool.
const FULL_ONE_POOL: &str = r#"mode = "full"
ipv6_ra = true
[[dhcp.pools]]
subnet = "10.77.0.0/24"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"
"#;
/// `[dhcp]` of a ProxyDHCP bootd.
const PROXY: &str = "mode = \"proxy\"\nipv6_ra = true\n";

fn addr(bytes: Option<&[u8]>) -> Ipv4Addr {
    match bytes {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or(&[])).into_owned()
}

fn is_client(d: &UdpDatagram) -> bool {
    d.chaddr() == Some(MAC.0)
}

/// The node's history as `phase: message` lines, for failure messages.
fn messages(node: &serde_json::Value) -> Vec<String> {
    node["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|r| format!("{}: {}", r["to"], r["message"]))
                .collect()
        })
        .unwrap_or_default()
}

/// How the router namespace is linked to bootd's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    /// The veth is a port of bootd's `br0`: the relay is a neighbour on bootd's subnet.
    Bridged,
    /// A routed point-to-point uplink that bootd does not serve (`server.interfaces` lists
    /// only `br0`): relayed requests come in on an unlisted interface.
    Uplink,
}

/// Joins ns A (bootd) and ns B (router) with a veth pair, routes between 10.77.0.0/24 and
/// the remote subnet, and turns forwarding on in B.
fn link_router(a: &Netns, b: &Netns, link: Link) {
    let ok = |r: Result<String, common::HarnessError>| {
        r.unwrap_or_else(|e| panic!("router set-up: {e}"))
    };
    ok(a.ip(&[
        "link",
        "add",
        VETH_A,
        "type",
        "veth",
        "peer",
        "name",
        VETH_B,
        "netns",
        b.name(),
    ]));
    let via = match link {
        Link::Bridged => {
            ok(a.ip(&["link", "set", VETH_A, "master", "br0"]));
            ok(b.ip(&["addr", "add", &format!("{RELAY_ON_BR0}/24"), "dev", VETH_B]));
            RELAY_ON_BR0
        }
        Link::Uplink => {
            ok(a.ip(&[
                "addr",
                "add",
                &format!("{UPLINK_A}/{UPLINK_PREFIX}"),
                "dev",
                VETH_A,
            ]));
            ok(b.ip(&[
                "addr",
                "add",
                &format!("{UPLINK_B}/{UPLINK_PREFIX}"),
                "dev",
                VETH_B,
            ]));
            UPLINK_B
        }
    };
    ok(a.ip(&["link", "set", VETH_A, "up"]));
    ok(b.ip(&["link", "set", VETH_B, "up"]));
    ok(a.ip(&["route", "add", REMOTE_SUBNET, "via", via]));
    if link == Link::Uplink {
        ok(b.ip(&["route", "add", "10.77.0.0/24", "via", UPLINK_A]));
    }
    // Written inside B, /proc/sys/net is B's own (no procps needed).
    ok(b.run("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]));
}

/// dnsmasq as a pure DHCP relay in `ns`: requests on the interface that owns
/// [`RELAY_GIADDR`] go to bootd with that giaddr; replies come back to it on port 67.
/// It also advertises the client subnet's IPv6 prefix, as the router of that subnet
/// would, so iPXE does not wait for a router advertisement.
fn start_relay(ns: &Netns, dir: &Path) -> std::path::PathBuf {
    let log = dir.join("relay.log");
    ns.spawn_logged(
        "dnsmasq",
        &[
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            "--log-dhcp",
            "--leasefile-ro",
            &format!("--dhcp-relay={RELAY_GIADDR},{BRIDGE_IP}"),
            "--enable-ra",
            "--dhcp-range=::,constructor:br0,ra-only",
            &format!("--pid-file={}", dir.join("relay.pid").display()),
        ],
        &log,
    )
    .expect("dnsmasq relay");
    log
}

/// The address the node leased, from bootd's database.
fn leased_ip(state: &Path) -> Option<Ipv4Addr> {
    let out = std::process::Command::new("sqlite3")
        .arg(state.join("bootd.db"))
        .arg(format!(
            "SELECT ip FROM leases WHERE lower(mac) = '{}';",
            MAC.to_string().to_lowercase()
        ))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn relayed(firmware: Firmware, link: Link) {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = netboot::write_setup(dir.path(), FULL_TWO_POOLS, MAC);
    let a = Netns::new().expect("namespace A (bootd)");
    let b = Netns::with_config(NetnsConfig {
        bridge_addr: format!("{RELAY_GIADDR}/24"),
        bridge_addr6: Some("fd88::1/64".to_string()),
        second_bridge_addr: None,
    })
    .expect("namespace B (router)");
    link_router(&a, &b, link);
    let pcap = dir.path().join("uplink.pcap");
    let capture = Capture::start(&a, VETH_A, "udp and (port 67 or port 68)", &pcap)
        .expect("capture on the link to the relay");
    let log = start_bootd(&a, dir.path(), &config, "info");
    let relay_log = start_relay(&b, dir.path());
    let socket = dir.path().join("state/control.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu = Qemu::launch(&b, &QemuConfig::new(firmware, MAC, &serial)).expect("qemu");
    let exit = qemu.wait(BOOT_TIMEOUT);
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let relay_text = std::fs::read_to_string(&relay_log).unwrap_or_default();
    let case = format!("relayed {firmware:?} {link:?}");
    let exit = exit.unwrap_or_else(|e| {
        panic!("{case}: {e}\n--- bootd log ---\n{bootd_log}\n--- relay log ---\n{relay_text}")
    });
    let (node, path) = node_history(&socket, MAC);
    assert!(
        booted_through_ipxe(&path),
        "{case}: history {path:?}\n--- serial ---\n{}\n--- bootd log ---\n{bootd_log}\n--- relay log ---\n{relay_text}",
        qemu.serial()
    );
    assert!(
        node["message"].as_str().unwrap_or("").contains("guest up"),
        "{node}"
    );
    // The lease comes from the relay's subnet, in bootd's database and in the history.
    let ip = leased_ip(&dir.path().join("state")).expect("a lease for the client");
    assert_eq!(ip.octets()[..3], [10, 88, 0], "{case}: lease {ip}");
    let history = messages(&node);
    assert!(
        history.iter().any(|m| m.contains("offer 10.88.0.")),
        "{case}: {history:?}"
    );
    // bootd said it answered through the relay...
    assert!(
        bootd_log.contains(&format!("via relay {RELAY_GIADDR}")),
        "{case}: {bootd_log}"
    );
    // ...and the wire agrees: relayed requests in, replies to the relay's port 67.
    let seen = capture.finish().expect("read capture");
    let relayed_in = |t: u8| {
        seen.iter().any(|d| {
            is_client(d)
                && d.dport == 67
                && d.sport == 67
                && d.dst.to_string() == BRIDGE_IP
                && addr(d.payload.get(GIADDR)) == RELAY_GIADDR
                && d.dhcp_type() == Some(t)
        })
    };
    let relayed_out = |t: u8| {
        seen.iter().any(|d| {
            is_client(d)
                && d.dst == RELAY_GIADDR
                && d.dport == 67
                && addr(d.payload.get(GIADDR)) == RELAY_GIADDR
                && addr(d.payload.get(YIADDR)).octets()[..3] == [10, 88, 0]
                && d.dhcp_option(3) == Some(&RELAY_GIADDR.octets()[..])
                && d.dhcp_type() == Some(t)
        })
    };
    assert!(
        relayed_in(DISCOVER) && relayed_in(REQUEST),
        "{case}: no relayed DISCOVER/REQUEST on {VETH_A}: {seen:?}"
    );
    assert!(
        relayed_out(OFFER) && relayed_out(ACK),
        "{case}: no OFFER/ACK to the relay on {VETH_A}: {seen:?}"
    );
    // Nothing from the client subnet reached bootd except through the relay.
    assert!(
        !seen
            .iter()
            .any(|d| is_client(d) && d.dport == 67 && addr(d.payload.get(GIADDR)).is_unspecified()),
        "{case}: an unrelayed request crossed the router"
    );
    eprintln!(
        "BOOT {case}: {:.1} s to poweroff ({:?}), lease {ip}, history {path:?}",
        exit.elapsed.as_secs_f64(),
        qemu.accel()
    );
}

/// How bootd is the DHCP side of an HTTP Boot run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dhcp {
    /// bootd hands out the address and the URL.
    Full,
    /// dnsmasq hands out the address, bootd the URL as ProxyDHCP.
    Proxy,
}

fn uefi_http_boot(mode: Dhcp) {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let dhcp = match mode {
        Dhcp::Full => FULL_ONE_POOL,
        Dhcp::Proxy => PROXY,
    };
    let config = netboot::write_setup(dir.path(), dhcp, MAC);
    let ns = Netns::new().expect("network namespace");
    if mode == Dhcp::Proxy {
        address_only_dnsmasq(&ns, dir.path());
    }
    let pcap = dir.path().join("br0.pcap");
    let capture = Capture::start(
        &ns,
        "br0",
        &format!("port 67 or port 68 or port 69 or port 4011 or tcp port {HTTP_PORT}"),
        &pcap,
    )
    .expect("capture on br0");
    let log = start_bootd(&ns, dir.path(), &config, "info");
    let tftp_series = "tftp_transfers_started_total";
    let tftp_before = metric(&http_get(&ns, "/metrics"), tftp_series);
    let socket = dir.path().join("state/control.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu =
        Qemu::launch(&ns, &QemuConfig::new(Firmware::UefiHttp, MAC, &serial)).expect("qemu");
    let exit = qemu.wait(BOOT_TIMEOUT);
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let case = format!("UEFI HTTP Boot {mode:?}");
    let exit = exit.unwrap_or_else(|e| panic!("{case}: {e}\n--- bootd log ---\n{bootd_log}"));
    let metrics = http_get(&ns, "/metrics");
    let (node, path) = node_history(&socket, MAC);
    assert!(
        booted_through_ipxe(&path),
        "{case}: history {path:?}\n--- serial ---\n{}\n--- bootd log ---\n{bootd_log}",
        qemu.serial()
    );
    assert!(
        node["message"].as_str().unwrap_or("").contains("guest up"),
        "{node}"
    );
    let udp = capture.finish().expect("read capture");
    let tcp = read_tcp(&pcap).expect("read capture");
    // The firmware asked as an HTTP Boot client...
    let http_discover = udp.iter().find(|d| {
        is_client(d)
            && d.dhcp_type() == Some(DISCOVER)
            && d.dhcp_option(60)
                .is_some_and(|v| v.starts_with(Firmware::UefiHttp.vendor_class_prefix().as_bytes()))
    });
    assert!(
        http_discover.is_some(),
        "{case}: no HTTPClient DISCOVER from the firmware"
    );
    // ...and bootd answered it as one: option 60 HTTPClient and the loader's full URL.
    let url = format!("http://{BRIDGE_IP}:{HTTP_PORT}/assets/ipxe.efi");
    let answered = udp.iter().any(|d| {
        is_client(d)
            && d.sport == 67
            && d.src.to_string() == BRIDGE_IP
            && d.dhcp_type() == Some(OFFER)
            && d.dhcp_option(60) == Some(&b"HTTPClient"[..])
            && (d.dhcp_option(67).map(cstr) == Some(url.clone())
                || d.payload.get(FILE).map(cstr) == Some(url.clone()))
    });
    assert!(
        answered,
        "{case}: no HTTPClient offer with {url}\n--- bootd log ---\n{bootd_log}"
    );
    // The loader came over HTTP, HEAD first, then GET; TFTP was never used.
    let requests: Vec<String> = tcp
        .iter()
        .filter(|s| s.dport == HTTP_PORT && !s.payload.is_empty())
        .filter_map(|s| {
            String::from_utf8_lossy(&s.payload)
                .lines()
                .next()
                .map(str::to_string)
        })
        .collect();
    let head = requests
        .iter()
        .position(|r| r.starts_with("HEAD /assets/ipxe.efi "));
    let get = requests
        .iter()
        .position(|r| r.starts_with("GET /assets/ipxe.efi "));
    assert!(
        matches!((head, get), (Some(h), Some(g)) if h < g),
        "{case}: HTTP requests {requests:?}"
    );
    assert!(!udp.iter().any(|d| d.dport == 69), "{case}: TFTP was used");
    assert!(
        metrics.contains(tftp_series),
        "{case}: no {tftp_series} in /metrics"
    );
    assert_eq!(
        metric(&metrics, tftp_series),
        tftp_before,
        "{case}: TFTP transfers counted\n{metrics}"
    );
    eprintln!(
        "BOOT {case}: {:.1} s to poweroff ({:?}), HTTP requests {requests:?}, history {path:?}",
        exit.elapsed.as_secs_f64(),
        qemu.accel()
    );
}

#[test]
fn relayed_bios_ipxe_over_an_uplink() {
    relayed(Firmware::BiosIpxe, Link::Uplink);
}

#[test]
fn relayed_bios_ipxe_from_a_neighbour_router() {
    relayed(Firmware::BiosIpxe, Link::Bridged);
}

#[test]
fn uefi_http_boot_full() {
    uefi_http_boot(Dhcp::Full);
}

#[test]
fn uefi_http_boot_proxy() {
    uefi_http_boot(Dhcp::Proxy);
}

#[test]
fn relayed_uefi_ipxe_over_an_uplink() {
    relayed(Firmware::UefiIpxe, Link::Uplink);
}
