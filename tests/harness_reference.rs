//! Proves the real-client harness against a reference server (dnsmasq + a Python HTTP
//! server): each firmware PXE-boots the test guest, which POSTs its phase with the token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::path::Path;
use std::time::Duration;

use common::reference::TOKEN;
use common::{
    guest, need_root, read_udp, Capture, DhcpStyle, Firmware, MacAddr, Netns, Qemu, QemuConfig,
    RefStack, UdpDatagram,
};

/// Generous for TCG on a busy 2-core machine (reference: 9-35 s per boot).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const DHCP_DISCOVER: u8 = 1;
const DHCP_REQUEST: u8 = 3;
const MAC: &str = "52:54:00:12:34:56";

/// What one reference boot produced.
struct Boot {
    elapsed: Duration,
    posts: Vec<common::PhasePost>,
    packets: Vec<UdpDatagram>,
}

fn boot(firmware: Firmware, style: DhcpStyle) -> Boot {
    need_root();
    let image = guest().unwrap_or_else(|e| panic!("building the test guest: {e}"));
    let ns = Netns::new().unwrap_or_else(|e| panic!("creating a namespace: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let capture = Capture::start(
        &ns,
        "br0",
        common::pcap::BOOT_FILTER,
        &dir.path().join("boot.pcap"),
    )
    .unwrap_or_else(|e| panic!("starting tcpdump: {e}"));
    let stack = RefStack::start(&ns, style, &image)
        .unwrap_or_else(|e| panic!("starting the reference servers: {e}"));
    let mac: MacAddr = MAC.parse().unwrap_or_else(|e| panic!("{e}"));
    let config = QemuConfig::new(firmware, mac, dir.path().join("serial.log"));
    let mut vm = Qemu::launch(&ns, &config).unwrap_or_else(|e| panic!("launching QEMU: {e}"));
    let exit = vm
        .wait(BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{firmware:?}/{style:?} boot: {e}\n{}", stack.logs()));
    let serial = vm.serial();
    drop(vm);
    let packets = capture
        .finish()
        .unwrap_or_else(|e| panic!("reading the capture: {e}"));
    let posts = stack
        .posts()
        .unwrap_or_else(|e| panic!("reading the POST log: {e}"));
    eprintln!(
        "harness: {firmware:?}/{style:?} ({}) booted to poweroff in {:.1} s ({})",
        common::accel().as_arg(),
        exit.elapsed.as_secs_f64(),
        exit.status
    );
    assert!(
        serial.contains("BOOTD-GUEST: posted 200"),
        "{firmware:?}: the guest did not report a successful POST; serial console:\n{serial}\n{}",
        stack.logs()
    );
    Boot {
        elapsed: exit.elapsed,
        posts,
        packets,
    }
}

fn assert_phase_posted(boot: &Boot) {
    assert_eq!(boot.posts.len(), 1, "exactly one phase POST expected");
    let post = boot.posts.first().unwrap_or_else(|| panic!("no POST"));
    assert_eq!(post.path, "/phase");
    assert_eq!(
        post.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(post.content_type.as_deref(), Some("application/json"));
    assert_eq!(post.body["phase"], "installing");
    assert_eq!(post.body["progress"], 50);
    let message = post.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("guest up; secureboot="),
        "unexpected message {message:?}"
    );
    assert!(boot.elapsed > Duration::ZERO);
}

/// The client's first message of `kind` sent to `port`.
fn first_from_client(boot: &Boot, kind: u8, port: u16) -> Option<&UdpDatagram> {
    let mac: MacAddr = MAC.parse().ok()?;
    boot.packets.iter().find(|d| {
        d.dport == port && d.dhcp_type() == Some(kind) && d.chaddr() == Some(mac.octets())
    })
}

fn assert_firmware_discover(boot: &Boot, firmware: Firmware) {
    let discover = first_from_client(boot, DHCP_DISCOVER, 67)
        .unwrap_or_else(|| panic!("{firmware:?}: no DHCPDISCOVER captured"));
    let vendor = String::from_utf8_lossy(discover.dhcp_option(60).unwrap_or_default()).into_owned();
    assert!(
        vendor.starts_with(firmware.vendor_class_prefix()),
        "{firmware:?}: option 60 is {vendor:?}"
    );
    let is_ipxe = discover.dhcp_option(175).is_some();
    assert_eq!(
        is_ipxe,
        firmware != Firmware::UefiNative,
        "{firmware:?}: option 175 presence"
    );
}

#[test]
fn bios_ipxe_boots_and_posts_its_phase() {
    let b = boot(Firmware::BiosIpxe, DhcpStyle::Full);
    assert_phase_posted(&b);
    assert_firmware_discover(&b, Firmware::BiosIpxe);
}

#[test]
fn uefi_ipxe_boots_and_posts_its_phase() {
    let b = boot(Firmware::UefiIpxe, DhcpStyle::Full);
    assert_phase_posted(&b);
    assert_firmware_discover(&b, Firmware::UefiIpxe);
}

#[test]
fn uefi_native_pxe_boots_and_posts_its_phase() {
    let b = boot(Firmware::UefiNative, DhcpStyle::Full);
    assert_phase_posted(&b);
    assert_firmware_discover(&b, Firmware::UefiNative);
}

#[test]
fn uefi_native_pxe_asks_port_4011_behind_a_proxydhcp() {
    let b = boot(Firmware::UefiNative, DhcpStyle::Proxy);
    assert_phase_posted(&b);
    let request = first_from_client(&b, DHCP_REQUEST, 4011)
        .unwrap_or_else(|| panic!("no DHCPREQUEST to port 4011 captured"));
    // OVMF asks the boot server from its own port 4011, already holding an address.
    assert_eq!(request.sport, 4011);
    assert_ne!(request.payload.get(12..16), Some(&[0u8, 0, 0, 0][..]));
}

#[test]
fn namespace_drop_kills_its_processes_and_deletes_it() {
    need_root();
    let ns = Netns::new().unwrap_or_else(|e| panic!("creating a namespace: {e}"));
    let name = ns.name().to_string();
    let mut cmd = ns.cmd("sleep");
    cmd.arg("600");
    let pid = ns
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("spawning sleep: {e}"));
    let links = ns
        .ip(&["-br", "link"])
        .unwrap_or_else(|e| panic!("ip link: {e}"));
    for dev in ["lo", "br0", "tap0"] {
        assert!(links.contains(dev), "{dev} missing in {links}");
    }
    drop(ns);
    assert!(
        !Path::new("/proc").join(pid.to_string()).exists(),
        "process {pid} survived its namespace"
    );
    assert!(
        !Path::new("/run/netns").join(&name).exists(),
        "namespace {name} survived"
    );
}

#[test]
fn pcap_reader_agrees_with_the_stored_vectors() {
    let data = common::harness_dir().join("tests/data/dhcp");
    let packets = read_udp(&data.join("pcap/ovmf-native-proxy.pcap"))
        .unwrap_or_else(|e| panic!("reading the capture: {e}"));
    let request = packets
        .iter()
        .find(|d| d.dport == 4011 && d.dhcp_type() == Some(DHCP_REQUEST))
        .unwrap_or_else(|| panic!("no 4011 request in the capture"));
    let stored = std::fs::read(data.join("ovmf-native-request-4011.bin"))
        .unwrap_or_else(|e| panic!("reading the vector: {e}"));
    assert_eq!(request.payload, stored);
    assert_eq!(
        request.dhcp_option(60),
        Some(&b"PXEClient:Arch:00007:UNDI:003000"[..])
    );
}
