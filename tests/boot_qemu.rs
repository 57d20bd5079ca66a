//! Real machines booting through bootd: QEMU (SeaBIOS + iPXE, OVMF + iPXE, OVMF's own
//! PXE) in a private network namespace, bootd alone in full mode and in proxy mode beside
//! a dnsmasq that only hands out addresses. Each guest posts a phase with its token; the
//! test reads the node's history through the control socket.

mod common;

use bootd::mac::MacAddr;
use common::netboot::{address_only_dnsmasq, control, start_bootd, TEST_SCRIPT};
use common::{guest, need_root, Firmware, Netns, Qemu, QemuConfig};
use std::path::Path;
use std::time::Duration;

const BRIDGE_IP: &str = "10.77.0.1";

/// How the DHCP side of a run is arranged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dhcp {
    /// bootd hands out addresses and boot files.
    Full,
    /// dnsmasq hands out addresses, bootd answers as ProxyDHCP.
    Proxy,
}

fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

fn write_setup(dir: &Path, mode: Dhcp, mac: MacAddr) -> std::path::PathBuf {
    let state = dir.join("state");
    let assets = state.join("assets");
    let image = guest().expect("test guest (tests/guest/build-guest.sh)");
    copy(
        Path::new("/usr/lib/ipxe/undionly.kpxe"),
        &assets.join("undionly.kpxe"),
    );
    copy(
        Path::new("/usr/lib/ipxe/ipxe.efi"),
        &assets.join("ipxe.efi"),
    );
    copy(&image.vmlinuz, &assets.join("test/vmlinuz"));
    copy(&image.initrd, &assets.join("test/initrd.gz"));
    std::fs::create_dir_all(state.join("templates")).expect("mkdir");
    std::fs::write(state.join("templates/test.ipxe"), TEST_SCRIPT).expect("write");
    let dhcp = match mode {
        Dhcp::Full => {
            "mode = \"full\"\nipv6_ra = true\n[[dhcp.pools]]\nsubnet = \"10.77.0.0/24\"\nrange = [\"10.77.0.100\", \"10.77.0.199\"]\nlease_time = \"1h\"\n"
                .to_string()
        }
        Dhcp::Proxy => "mode = \"proxy\"\nipv6_ra = true\n".to_string(),
    };
    let config = format!(
        r#"[server]
state_dir = "{state}"
templates_dir = "{state}/templates"
http_listen = "{BRIDGE_IP}:8080"
public_url = "http://{BRIDGE_IP}:8080"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

[dhcp]
{dhcp}
[tftp]
listen = "{BRIDGE_IP}:69"

[profiles.test]
script = "test.ipxe"

[[nodes]]
mac = "{mac}"
hostname = "qemu1"
profile = "test"
"#,
        state = state.display()
    );
    let path = dir.join("bootd.toml");
    std::fs::write(&path, config).expect("write config");
    path
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
    let node = control(&socket, &format!("/api/v1/nodes/{mac}"));
    let path: Vec<String> = node["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|r| r["to"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut deduped = path.clone();
    deduped.dedup();
    assert!(
        deduped.windows(3).any(|w| w == ["dhcp", "ipxe_boot", "installing"]),
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
