//! Secure Boot through bootd: OVMF enforcing Secure Boot with Microsoft's keys PXE-boots
//! Debian's signed shim → signed network GRUB → signed kernel, all over bootd's TFTP, with
//! `/grub/grub.cfg` rendered for the node; plus the per-peer GRUB config without QEMU.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::mac::MacAddr;
use common::netboot::{address_only_dnsmasq, control, start_bootd};
use common::{guest, need_root, signed_chain, Firmware, Netns, Qemu, QemuConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BRIDGE_IP: &str = "10.77.0.1";
/// TCG boots the chain in about 20 s; a loaded machine may take several times that.
const BOOT_TIMEOUT: Duration = Duration::from_secs(400);
fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// How addresses are handed out in a run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dhcp {
    /// bootd hands out addresses and boot files.
    Full,
    /// dnsmasq hands out addresses, bootd answers as ProxyDHCP.
    Proxy,
}

/// bootd in full mode on `br0`; `nodes` is appended (profile `sb` boots through GRUB).
fn write_config(dir: &Path, nodes: &str) -> PathBuf {
    write_config_mode(dir, nodes, Dhcp::Full)
}

fn write_config_mode(dir: &Path, nodes: &str, mode: Dhcp) -> PathBuf {
    let dhcp = match mode {
        Dhcp::Full => {
            "mode = \"full\"\nipv6_ra = true\n[[dhcp.pools]]\nsubnet = \"10.77.0.0/24\"\n\
                       range = [\"10.77.0.100\", \"10.77.0.199\"]\nlease_time = \"1h\"\n"
        }
        Dhcp::Proxy => "mode = \"proxy\"\nipv6_ra = true\n",
    };
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("assets")).expect("mkdir");
    std::fs::create_dir_all(state.join("templates")).expect("mkdir");
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

[profiles.sb]
script = "grub.cfg"
loader = "grub"

{nodes}"#,
        state = state.display()
    );
    let path = dir.join("bootd.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// The phases of a node's history, oldest first, with the source of each.
fn history(node: &serde_json::Value) -> Vec<(String, String)> {
    node["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|r| {
                    (
                        r["to"].as_str().unwrap_or("").to_string(),
                        r["source"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What one boot through the signed chain showed.
struct Booted {
    /// The node as the API shows it after the guest powered off.
    node: serde_json::Value,
    /// Phases of its history, repeats folded.
    phases: Vec<String>,
    /// Everything that explains a failure: history, serial console, bootd's log.
    context: String,
}

/// PXE-boots `firmware` through bootd (full mode) into shim → GRUB → kernel, with the
/// node on a `loader = "grub"` profile; panics with the console and log if it does not
/// power off, and prints the boot time.
fn boot_signed(firmware: Firmware, mode: Dhcp, mac: MacAddr) -> Booted {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config_mode(
        dir.path(),
        // `quiet`: the emulated UART costs seconds per boot under TCG.
        &format!(
            "[[nodes]]\nmac = \"{mac}\"\nhostname = \"sb1\"\nprofile = \"sb\"\n\
             vars = {{ kernel_args = \"quiet\" }}\n"
        ),
        mode,
    );
    let assets = dir.path().join("state/assets");
    if firmware == Firmware::Arm64Uefi {
        let chain =
            common::signed_chain_arm64().expect("arm64 shim + GRUB (fetch-signed.sh arm64)");
        let image =
            common::guest_arm64().expect("arm64 guest (BOOTD_GUEST_ARCH=arm64 build-guest.sh)");
        copy(&chain.shim, &assets.join("shimaa64.efi"));
        copy(&chain.grub, &assets.join("grubaa64.efi"));
        copy(&image.vmlinuz, &assets.join("arm64/vmlinuz"));
        copy(&image.initrd, &assets.join("arm64/initrd.gz"));
    } else {
        let chain = signed_chain().expect("signed shim + GRUB (tests/guest/fetch-signed.sh)");
        let image = guest().expect("test guest (tests/guest/build-guest.sh)");
        copy(&chain.shim, &assets.join("shimx64.efi"));
        copy(&chain.grub, &assets.join("grubx64.efi"));
        copy(&image.vmlinuz, &assets.join("vmlinuz"));
        copy(&image.initrd, &assets.join("initrd.gz"));
    }

    let ns = Netns::new().expect("network namespace");
    if mode == Dhcp::Proxy {
        address_only_dnsmasq(&ns, dir.path());
    }
    let log = start_bootd(&ns, dir.path(), &config, "info,bootd::tftp=debug");
    let socket = dir.path().join("state/control.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu = Qemu::launch(&ns, &QemuConfig::new(firmware, mac, &serial)).expect("qemu");
    let exit = qemu.wait(BOOT_TIMEOUT);
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let exit = exit
        .unwrap_or_else(|e| panic!("{firmware:?}/{mode:?}: {e}\n--- bootd log ---\n{bootd_log}"));
    let console = qemu.serial();
    let node = control(&socket, &format!("/api/v1/nodes/{mac}"));
    let steps = history(&node);
    let mut phases: Vec<String> = steps.iter().map(|(to, _)| to.clone()).collect();
    phases.dedup();
    let context = format!(
        "{firmware:?}/{mode:?}: history {steps:?}\n--- serial ---\n{console}\n--- bootd log ---\n{bootd_log}"
    );
    assert!(
        phases
            .windows(3)
            .any(|w| w == ["dhcp", "ipxe_boot", "installing"]),
        "{context}"
    );
    assert!(
        steps
            .iter()
            .any(|(to, source)| to == "ipxe_boot" && source == "tftp"),
        "the GRUB config fetch is the boot-script step: {context}"
    );
    assert!(
        node["message"].as_str().unwrap_or("").contains("guest up"),
        "{node}\n{context}"
    );
    for line in bootd_log
        .lines()
        .filter(|l| l.contains("PXE(") || l.contains("DHCP(") || l.contains("GRUB"))
    {
        eprintln!("  {firmware:?} bootd: {line}");
    }
    eprintln!(
        "BOOT {firmware:?} {mode:?}: {:.1} s to poweroff ({:?}), history {phases:?}",
        exit.elapsed.as_secs_f64(),
        qemu.accel()
    );
    Booted {
        node,
        phases,
        context,
    }
}

#[test]
fn uefi_secure_boot_shim_grub_kernel_full() {
    secure_boot(Dhcp::Full, MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x01]));
}

#[test]
fn uefi_secure_boot_shim_grub_kernel_proxy() {
    secure_boot(Dhcp::Proxy, MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x03]));
}

fn secure_boot(mode: Dhcp, mac: MacAddr) {
    let b = boot_signed(Firmware::UefiSecureBoot, mode, mac);
    // The guest read SecureBoot=1 from efivarfs and said so in its phase message.
    assert!(
        b.node["message"]
            .as_str()
            .unwrap_or("")
            .contains("secureboot=1"),
        "{}\n{}",
        b.node,
        b.context
    );
    assert_eq!(b.phases.last().map(String::as_str), Some("installing"));
}

#[test]
fn arm64_uefi_shim_grub_kernel_full() {
    let b = boot_signed(
        Firmware::Arm64Uefi,
        Dhcp::Full,
        MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x02]),
    );
    // AAVMF's default variable store has no keys enrolled: shim runs, Secure Boot is off.
    assert!(
        b.node["message"]
            .as_str()
            .unwrap_or("")
            .contains("secureboot=0"),
        "{}\n{}",
        b.node,
        b.context
    );
    assert!(
        b.context.contains("arch arm64-efi") || b.context.contains("shimaa64.efi"),
        "{}",
        b.context
    );
}

/// A client namespace joined to `server`'s `br0` by a veth whose end has `mac` and
/// address `ip`; the namespace is deleted on drop (the veth goes with it).
fn client(server: &Netns, mac: MacAddr, ip: &str) -> Netns {
    let c = Netns::with_config(common::NetnsConfig {
        bridge_addr: "10.79.0.1/24".to_string(),
        bridge_addr6: None,
        second_bridge_addr: None,
    })
    .expect("client namespace");
    server
        .ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vc0"])
        .expect("veth");
    server
        .ip(&["link", "set", "vb0", "master", "br0", "up"])
        .expect("veth to br0");
    server
        .ip(&["link", "set", "vc0", "netns", c.name()])
        .expect("veth to client");
    c.ip(&["link", "set", "vc0", "address", &mac.to_string()])
        .expect("mac");
    c.ip(&["addr", "add", &format!("{ip}/24"), "dev", "vc0"])
        .expect("addr");
    c.ip(&["link", "set", "vc0", "up"]).expect("up");
    c
}

/// Fetches a file over TFTP from inside `ns`: (curl's exit code, body, seconds taken).
fn tftp_get(ns: &Netns, path: &str) -> (i32, String, f64) {
    let start = Instant::now();
    let out = ns
        .cmd("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("tftp://{BRIDGE_IP}/{path}"))
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        start.elapsed().as_secs_f64(),
    )
}

#[test]
fn grub_config_is_rendered_per_tftp_peer() {
    need_root();
    let grub_node = MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x11]);
    let ipxe_node = MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x12]);
    let stranger = MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x13]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("state/templates")).expect("mkdir");
    std::fs::write(
        dir.path().join("state/templates/plain.ipxe"),
        "#!ipxe\nexit\n",
    )
    .expect("write");
    let config = write_config(
        dir.path(),
        &format!(
            "[profiles.plain]\nscript = \"plain.ipxe\"\n\n\
             [[nodes]]\nmac = \"{grub_node}\"\nhostname = \"sb2\"\nprofile = \"sb\"\n\n\
             [[nodes]]\nmac = \"{ipxe_node}\"\nprofile = \"plain\"\n"
        ),
    );
    // An operator's default config for everyone bootd does not render one for.
    let on_disk = "# static default grub.cfg\n";
    let static_cfg = dir.path().join("state/assets/grub/grub.cfg");
    std::fs::create_dir_all(static_cfg.parent().expect("parent")).expect("mkdir");
    std::fs::write(&static_cfg, on_disk).expect("write");
    let ns = Netns::new().expect("network namespace");
    let log = start_bootd(&ns, dir.path(), &config, "info,bootd::tftp=debug");
    let socket = dir.path().join("state/control.sock");
    let c = client(&ns, grub_node, "10.77.0.50");

    let (code, body, _) = tftp_get(&c, "grub/grub.cfg");
    let bootd_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "{}", bootd_log());
    assert!(
        body.contains("linux /vmlinuz ")
            && body.contains(&format!(
                "bootd.phase_url=http://{BRIDGE_IP}:8080/api/v1/nodes/{grub_node}/phase"
            ))
            && body.contains("bootd.token=")
            && body.contains("initrd /initrd.gz"),
        "{body}"
    );
    // The token in the config is the one callbacks are checked against.
    let token = body
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bootd.token="))
        .expect("token")
        .trim_end_matches(';')
        .to_string();
    let post = c
        .cmd("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-d",
            r#"{"phase":"installing","progress":40,"message":"from grub"}"#,
        ])
        .arg(format!(
            "http://{BRIDGE_IP}:8080/api/v1/nodes/{grub_node}/phase"
        ))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&post.stdout),
        "200",
        "{}",
        bootd_log()
    );
    let node = control(&socket, &format!("/api/v1/nodes/{grub_node}"));
    let steps = history(&node);
    assert!(
        steps
            .windows(2)
            .any(|w| w[0] == ("ipxe_boot".into(), "tftp".into()) && w[1].0 == "installing"),
        "{steps:?}"
    );

    // Files GRUB and shim probe for and that do not exist are refused at once.
    for missing in [
        "grub/x86_64-efi/command.lst",
        "revocations_sbat.efi",
        "shim_certificate_0.efi",
    ] {
        let (code, _, secs) = tftp_get(&c, missing);
        assert_ne!(code, 0, "{missing}");
        assert!(secs < 2.0, "{missing}: {secs:.2} s to answer");
    }

    // A node whose profile is iPXE, and a machine bootd does not know, get the file on
    // disk: the neighbour table now maps the address to them.
    for mac in [ipxe_node, stranger] {
        c.ip(&["link", "set", "vc0", "address", &mac.to_string()])
            .expect("mac");
        ns.ip(&["neigh", "flush", "dev", "br0"]).expect("flush");
        let (code, body, _) = tftp_get(&c, "grub/grub.cfg");
        assert_eq!(
            (code, body.as_str()),
            (0, on_disk),
            "{mac}\n{}",
            bootd_log()
        );
    }
    let node = control(&socket, &format!("/api/v1/nodes/{ipxe_node}"));
    assert!(
        !history(&node).iter().any(|(to, _)| to == "ipxe_boot"),
        "{node}"
    );
}

#[test]
fn grub_config_finds_a_peer_without_neighbour_entry_by_its_lease() {
    need_root();
    let mac = MacAddr([0x52, 0x54, 0x00, 0x5b, 0x00, 0x21]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("[[nodes]]\nmac = \"{mac}\"\nprofile = \"sb\"\n"),
    );
    let ns = Netns::new().expect("network namespace");
    let log = start_bootd(&ns, dir.path(), &config, "info,bootd::tftp=debug");
    let bootd_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let c = client(&ns, mac, "10.77.0.50");
    // A real lease from bootd (full mode) for the client's own address.
    c.ip(&["addr", "flush", "dev", "vc0"]).expect("flush addr");
    let hook = dir.path().join("udhcpc.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\n[ \"$1\" = bound ] && ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\nexit 0\n",
    )
    .expect("write hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let lease = c
        .cmd("udhcpc")
        .args(["-i", "vc0", "-n", "-q", "-t", "5", "-T", "2", "-s"])
        .arg(&hook)
        .output()
        .expect("udhcpc");
    assert!(lease.status.success(), "udhcpc failed\n{}", bootd_log());
    let addrs = c.ip(&["-4", "addr", "show", "dev", "vc0"]).expect("addr");
    assert!(addrs.contains("10.77.0.1"), "{addrs}");
    // The client knows the server's MAC for good and never ARPs; the server forgets the
    // client, so only the lease can name the peer of the TFTP request.
    let br0 = ns
        .run("cat", &["/sys/class/net/br0/address"])
        .expect("br0 address");
    c.ip(&[
        "neigh",
        "replace",
        BRIDGE_IP,
        "lladdr",
        br0.trim(),
        "dev",
        "vc0",
        "nud",
        "permanent",
    ])
    .expect("static neighbour");
    ns.ip(&["neigh", "flush", "dev", "br0"])
        .expect("flush neighbours");
    let (code, body, _) = tftp_get(&c, "grub/grub.cfg");
    assert_eq!(code, 0, "{}", bootd_log());
    assert!(
        body.contains(&format!("/api/v1/nodes/{mac}/phase")),
        "{body}\n{}",
        bootd_log()
    );
}
