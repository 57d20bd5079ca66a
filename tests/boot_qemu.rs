//! Real machines booting through bootd: QEMU (SeaBIOS + iPXE, OVMF + iPXE, OVMF's own
//! PXE) in a private network namespace, bootd alone in full mode and in proxy mode beside
//! a dnsmasq that only hands out addresses. Each guest posts a phase with its token; the
//! test reads the node's history through the control socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::mac::MacAddr;
use common::netboot::{self, address_only_dnsmasq, booted_through_ipxe, node_history, start_bootd};
use common::{need_root, Firmware, Netns, Qemu, QemuConfig};
use std::path::Path;
use std::time::Duration;

/// How the DHCP side of a run is arranged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dhcp {
    /// bootd hands out addresses and boot files.
    Full,
    /// dnsmasq hands out addresses, bootd answers as ProxyDHCP.
    Proxy,
}

fn write_setup(dir: &Path, mode: Dhcp, mac: MacAddr) -> std::path::PathBuf {
    let dhcp = match mode {
        Dhcp::Full => {
            "mode = \"full\"\nipv6_ra = true\n[[dhcp.pools]]\nsubnet = \"10.77.0.0/24\"\nrange = [\"10.77.0.100\", \"10.77.0.199\"]\nlease_time = \"1h\"\n"
        }
        Dhcp::Proxy => "mode = \"proxy\"\nipv6_ra = true\n",
    };
    netboot::write_setup(dir, dhcp, mac)
}

fn boot(firmware: Firmware, mode: Dhcp) {
    need_root();
    let mac = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_setup(dir.path(), mode, mac);
    let ns = Netns::new().expect("network namespace");
    if mode == Dhcp::Proxy {
        address_only_dnsmasq(&ns, dir.path());
    }
    let log = start_bootd(&ns, dir.path(), &config, "info");
    let socket = dir.path().join("state/control.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu = Qemu::launch(&ns, &QemuConfig::new(firmware, mac, &serial)).expect("qemu");
    let exit = qemu.wait(Duration::from_secs(300));
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let exit = exit
        .unwrap_or_else(|e| panic!("{firmware:?}/{mode:?}: {e}\n--- bootd log ---\n{bootd_log}"));
    let (node, path) = node_history(&socket, mac);
    assert!(
        booted_through_ipxe(&path),
        "{firmware:?}/{mode:?}: history {path:?}\n--- serial ---\n{}\n--- bootd log ---\n{bootd_log}",
        qemu.serial()
    );
    assert!(
        node["message"].as_str().unwrap_or("").contains("guest up"),
        "{node}"
    );
    let verbose = std::env::var_os("BOOTD_TEST_LOG").is_some();
    for line in bootd_log
        .lines()
        .filter(|l| verbose || l.contains("PXE(") || l.contains("DHCP("))
    {
        eprintln!("  {firmware:?}/{mode:?} bootd: {line}");
    }
    eprintln!(
        "BOOT {firmware:?} {mode:?}: {:.1} s to poweroff ({:?}), history {path:?}",
        exit.elapsed.as_secs_f64(),
        qemu.accel()
    );
}

#[test]
fn bios_ipxe_full() {
    boot(Firmware::BiosIpxe, Dhcp::Full);
}

#[test]
fn uefi_ipxe_full() {
    boot(Firmware::UefiIpxe, Dhcp::Full);
}

#[test]
fn uefi_native_full() {
    boot(Firmware::UefiNative, Dhcp::Full);
}

#[test]
fn bios_ipxe_proxy() {
    boot(Firmware::BiosIpxe, Dhcp::Proxy);
}

#[test]
fn uefi_ipxe_proxy() {
    boot(Firmware::UefiIpxe, Dhcp::Proxy);
}

#[test]
fn uefi_native_proxy() {
    boot(Firmware::UefiNative, Dhcp::Proxy);
}
