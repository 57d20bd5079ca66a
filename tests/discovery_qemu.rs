//! Hardware discovery with a real machine: an unknown QEMU machine (SMBIOS Acme /
//! PXE-Test / SN123) PXE-boots bootd's discovery script, the discovery image reports its
//! hardware with the agent, and bootd lists it as discovered with those values.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::mac::MacAddr;
use common::netboot::{control, start_bootd};
use common::{guest, need_root, Firmware, Netns, Qemu, QemuConfig};
use std::path::Path;
use std::time::Duration;

#[test]
fn unknown_machine_boots_discovery_and_reports_its_hardware() {
    need_root();
    let mac = MacAddr([0x52, 0x54, 0x00, 0x44, 0x00, 0x01]);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let image = guest().expect("test guest");
    // What image/discovery/build installs: the discovery kernel and initramfs.
    for (from, to) in [
        (Path::new("/usr/lib/ipxe/undionly.kpxe"), "undionly.kpxe"),
        (image.vmlinuz.as_path(), "discovery/vmlinuz"),
        (image.initrd.as_path(), "discovery/initrd.img"),
    ] {
        let dest = state.join("assets").join(to);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &dest).expect("copy");
    }
    let config = dir.path().join("bootd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
state_dir = "{state}"
http_listen = "10.77.0.1:8080"
public_url = "http://10.77.0.1:8080"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

[dhcp]
mode = "full"
[[dhcp.pools]]
subnet = "10.77.0.0/24"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"

[tftp]
listen = "10.77.0.1:69"

[boot]
unknown = "discover"
default_profile = "discovery"
"#,
            state = state.display()
        ),
    )
    .expect("config");
    let ns = Netns::new().expect("netns");
    let log = start_bootd(&ns, dir.path(), &config, "info");
    let socket = state.join("control.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu =
        Qemu::launch(&ns, &QemuConfig::new(Firmware::BiosIpxe, mac, &serial)).expect("qemu");
    let exit = qemu.wait(Duration::from_secs(300));
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let exit = exit.unwrap_or_else(|e| panic!("{e}\n--- bootd log ---\n{bootd_log}"));
    let serial_text = qemu.serial();
    assert!(
        serial_text.contains("BOOTD-GUEST: hardware reported"),
        "{serial_text}\n{bootd_log}"
    );

    let listed = control(&socket, "/api/v1/hardware/discovered");
    let entry = listed["discovered"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["mac"] == mac.to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("{mac} not listed as discovered: {listed}\n{bootd_log}"));
    assert_eq!(entry["vendor"], "Acme", "{entry}");
    assert_eq!(entry["product"], "PXE-Test", "{entry}");
    assert_eq!(entry["serial"], "SN123", "{entry}");
    let hw = control(&socket, &format!("/api/v1/nodes/{mac}/hardware"));
    assert_eq!(
        hw["inventory"]["uuid"], "11223344-5566-7788-99aa-bbccddeeff00",
        "{hw}"
    );
    let node = control(&socket, &format!("/api/v1/nodes/{mac}"));
    assert_eq!(node["origin"], "discovered");
    eprintln!(
        "DISCOVERY: {:.1} s to poweroff; inventory: {}",
        exit.elapsed.as_secs_f64(),
        entry["summary"]
    );
}
