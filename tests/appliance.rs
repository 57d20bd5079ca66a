//! The appliance image end to end: image/build-appliance builds a bookworm disk with the
//! package from the test build, QEMU boots it from its disk (SeaBIOS, SYSLINUX, systemd as
//! PID 1) on a private namespace's bridge beside an address-only dnsmasq, its first boot
//! writes the config for the address DHCP gave it, and the serial console must show the
//! real bootd.service (Type=notify, full sandbox) started, i.e. READY=1. Then a PXE client
//! (SeaBIOS + iPXE) on the same bridge boots through the appliance in proxy mode and the
//! appliance's HTTP API shows it went through dhcp → ipxe_boot → installing.
//!
//! The image is cached as $BOOTD_TEST_DEBIAN_CACHE (default /var/cache/bootd-tests)/
//! appliance-<hash of every input>.qcow2, and the system root under it (Debian, kernel:
//! everything but bootd) by the script itself, so a run builds at most once; QEMU boots it
//! with snapshot=on, so every boot is a first boot.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::bin;
use common::netboot::{address_only_dnsmasq, history_phases, TEST_SCRIPT};
use common::util::tail;
use common::{guest, need_root, Firmware, MacAddr, Netns, Qemu, QemuConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the image and the system root are cached.
const DEFAULT_CACHE: &str = "/var/cache/bootd-tests";
/// The tests' Debian 12 minbase root (tests/package.rs), a head start for the build.
const MINBASE_TARBALL: &str = "bookworm-minbase.tar.zst";
/// The appliance's memory: Debian's initrd and systemd want more than a PXE client.
const APPLIANCE_MEMORY_MIB: u32 = 1024;
/// From QEMU start to bootd READY under TCG on a busy 2-core host.
const READY_TIMEOUT: Duration = Duration::from_secs(480);
/// The PXE client's whole run (DHCP, iPXE, kernel, phase post, poweroff).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);
/// What systemd prints once bootd.service sent READY=1 (Type=notify).
const READY_LINE: &str = "Started bootd.service";
/// Lines that end the wait early: the unit or the first boot failed.
const FAILURE_LINES: [&str; 3] = [
    "Failed to start bootd.service",
    "Failed to start bootd-preflight.service",
    "Failed to start bootd-firstboot.service",
];
/// What the first-boot script prints after writing the config.
const FIRSTBOOT_PREFIX: &str = "bootd-firstboot: interface ";
/// The appliance's HTTP port (the packaged config's http_listen).
const HTTP_PORT: u16 = 8080;
/// Serial console bytes quoted in a failure.
const SERIAL_TAIL_BYTES: usize = 4000;
/// How often the serial log is read.
const POLL: Duration = Duration::from_millis(500);

const APPLIANCE_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xa1, 0x00, 0x01]);
const CLIENT_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xa1, 0x00, 0x02]);

/// Runs a command that must succeed; its stdout.
fn sh(cmd: &mut Command) -> String {
    common::util::run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The packaged config (what build-deb makes of config/bootd.toml) plus the test profile
/// for the client's MAC; the first boot edits interfaces, public_url and mode in it.
fn appliance_config() -> String {
    let shipped =
        std::fs::read_to_string(repo().join("config/bootd.toml")).expect("config/bootd.toml");
    let packaged = shipped.replace("#control_group = \"bootd\"", "control_group = \"bootd\"");
    // The test reads /api/v1 from outside the appliance and has no login to create a
    // token there: the read API is opened for it (API tokens are tests/auth_routes.rs).
    assert!(
        packaged.contains("\nread_public = false\n"),
        "config/bootd.toml no longer sets read_public = false in [http]"
    );
    let packaged = packaged.replacen("\nread_public = false\n", "\nread_public = true\n", 1);
    format!(
        "{packaged}\n# Added by tests/appliance.rs\n[profiles.test]\nscript = \"test.ipxe\"\n\n\
         [[nodes]]\nmac = \"{CLIENT_MAC}\"\nhostname = \"client1\"\nprofile = \"test\"\n"
    )
}

/// A unit of the test overlay: prints on the serial console whether bootd runs, with
/// `bootd-ctl status` once it does, or the units' state and journal while it does not
/// (the only window into the appliance: the test has no login).
const CONSOLE_UNIT: &str = "[Unit]
Description=test: bootd state on the serial console
After=bootd-firstboot.service

[Service]
Type=simple
ExecStart=/usr/local/sbin/bootd-test-console
StandardOutput=journal

[Install]
WantedBy=multi-user.target
";

/// What that unit runs: up to `tries` looks, 15 s apart.
const CONSOLE_SCRIPT: &str = r#"#!/bin/sh
# Each report opens the console anew: the serial getty's vhangup() kills older handles.
tries=30
while [ "$tries" -gt 0 ]; do
    if systemctl is-active --quiet bootd.service; then
        {
            echo "TEST: bootd.service active"
            bootd-ctl status 2>&1 | sed 's/^/TEST: bootd-ctl: /'
        } >/dev/console 2>&1
        exit 0
    fi
    {
        echo "TEST: bootd.service $(systemctl is-active bootd.service)"
        systemctl --no-pager status bootd-preflight.service bootd.service 2>&1 | tail -n 20
        journalctl --no-pager -b -u bootd.service -u bootd-preflight.service 2>&1 | tail -n 30
        ps -eo pid,stat,wchan:20,args | grep '[b]ootd'
    } >/dev/console 2>&1
    tries=$((tries - 1))
    sleep 15
done
"#;

/// The tree copied over the image's root: the test guest as assets, its boot script and
/// a config that assigns it to that script.
fn write_overlay(dir: &Path) {
    let units = dir.join("etc/systemd/system");
    std::fs::create_dir_all(units.join("multi-user.target.wants")).expect("mkdir");
    std::fs::write(units.join("bootd-test-console.service"), CONSOLE_UNIT).expect("unit");
    std::os::unix::fs::symlink(
        "/etc/systemd/system/bootd-test-console.service",
        units.join("multi-user.target.wants/bootd-test-console.service"),
    )
    .expect("enable the unit");
    let sbin = dir.join("usr/local/sbin");
    std::fs::create_dir_all(&sbin).expect("mkdir");
    let script = sbin.join("bootd-test-console");
    std::fs::write(&script, CONSOLE_SCRIPT).expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = guest().expect("test guest (tests/guest/build-guest.sh)");
    let assets = dir.join("var/lib/bootd/assets/test");
    std::fs::create_dir_all(&assets).expect("mkdir");
    std::fs::copy(&image.vmlinuz, assets.join("vmlinuz")).expect("guest kernel");
    std::fs::copy(&image.initrd, assets.join("initrd.gz")).expect("guest initrd");
    let templates = dir.join("etc/bootd/templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    std::fs::write(templates.join("test.ipxe"), TEST_SCRIPT).expect("template");
    std::fs::write(dir.join("etc/bootd/bootd.toml"), appliance_config()).expect("config");
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A hash of everything the image is made from: the binaries, the packaging, the
/// appliance files, the scripts and the overlay.
fn inputs_hash(overlay: &Path) -> String {
    let r = repo();
    let mut files = vec![
        bin("bootd"),
        bin("bootctl"),
        r.join("image/build-deb"),
        r.join("image/build-appliance"),
        r.join("config/bootd.toml"),
    ];
    for d in [
        "image/appliance",
        "image/debian",
        "systemd",
        "boot-assets/templates",
        "boot-assets/agent",
    ] {
        files_under(&r.join(d), &mut files);
    }
    files_under(overlay, &mut files);
    let mut h = Sha256::new();
    for f in &files {
        // Overlay paths differ per run (a temp dir): hash the part inside it.
        let name = f.strip_prefix(overlay).unwrap_or(f);
        h.update(name.to_string_lossy().as_bytes());
        // A symlink counts by its target (which may not exist on this host).
        match std::fs::read_link(f) {
            Ok(target) => h.update(target.to_string_lossy().as_bytes()),
            Err(_) => h.update(std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))),
        }
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The appliance image: from the cache, or built now (and the older ones removed).
fn appliance_image(work: &Path) -> PathBuf {
    let cache = PathBuf::from(
        std::env::var("BOOTD_TEST_DEBIAN_CACHE").unwrap_or_else(|_| DEFAULT_CACHE.into()),
    );
    let overlay = work.join("overlay");
    write_overlay(&overlay);
    let image = cache.join(format!("appliance-{}.qcow2", inputs_hash(&overlay)));
    if image.is_file() {
        println!("appliance image from the cache: {}", image.display());
        return image;
    }
    std::fs::create_dir_all(&cache).expect("cache dir");
    if let Ok(entries) = std::fs::read_dir(&cache) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("appliance-") && name.ends_with(".qcow2") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let started = Instant::now();
    let deb_dir = work.join("deb");
    let bin_dir = bin("bootd").parent().expect("binary dir").to_path_buf();
    let out = sh(Command::new(repo().join("image/build-deb"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(&deb_dir)
        .arg("--fast"));
    let deb = out.lines().last().unwrap_or("").trim().to_string();
    let mut cmd = Command::new(repo().join("image/build-appliance"));
    cmd.arg("--out")
        .arg(&image)
        .arg("--deb")
        .arg(&deb)
        .arg("--cache")
        .arg(&cache)
        .arg("--overlay")
        .arg(&overlay);
    let minbase = cache.join(MINBASE_TARBALL);
    if minbase.is_file() {
        cmd.arg("--base").arg(&minbase);
    }
    sh(&mut cmd);
    assert!(
        image.is_file(),
        "build-appliance made no {}",
        image.display()
    );
    println!(
        "built the appliance image {} in {:?}",
        image.display(),
        started.elapsed()
    );
    image
}

/// The serial console without terminal escape sequences (systemd colours unit names).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, ended by a letter.
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Waits until the serial console shows `READY_LINE`; fails on a failure line, QEMU's
/// exit or the timeout. Returns the time from QEMU's start.
fn wait_ready(qemu: &Qemu, started: Instant) -> Duration {
    loop {
        let serial = plain(&qemu.serial());
        if serial.contains(READY_LINE) {
            return started.elapsed();
        }
        if let Some(line) = FAILURE_LINES.iter().find(|l| serial.contains(*l)) {
            panic!(
                "the appliance reported \"{line}\"; serial console:\n{}",
                tail(&serial, SERIAL_TAIL_BYTES)
            );
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "no \"{READY_LINE}\" within {READY_TIMEOUT:?} ({:?}); serial console:\n{}",
            qemu.accel(),
            tail(&serial, SERIAL_TAIL_BYTES)
        );
        std::thread::sleep(POLL);
    }
}

/// (interface, address) from the first-boot script's console line.
fn firstboot_result(serial: &str) -> (String, String) {
    let line = serial
        .lines()
        .find_map(|l| l.split_once(FIRSTBOOT_PREFIX).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no first-boot line; serial:\n{}", tail(serial, 2000)));
    // "IFACE address ADDR public_url URL mode MODE"
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [iface, "address", addr, "public_url", url, "mode", mode, ..] => {
            assert_eq!(*url, format!("http://{addr}:{HTTP_PORT}"), "{line}");
            assert_eq!(*mode, "proxy", "{line}");
            (iface.to_string(), addr.to_string())
        }
        _ => panic!("unexpected first-boot line: {line}"),
    }
}

fn curl(ns: &Netns, url: &str) -> String {
    let out = ns
        .cmd("curl")
        .args(["-s", "--max-time", "10", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn appliance_image_boots_to_bootd_ready_and_serves_a_pxe_client() {
    need_root();
    let work = tempfile::tempdir().expect("tempdir");
    let image = appliance_image(work.path());
    let apparent = std::fs::metadata(&image).expect("image").len();
    let qcow2_info = sh(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&image));
    let info: serde_json::Value = serde_json::from_str(&qcow2_info).expect("qemu-img json");
    println!(
        "IMAGE {}: {:.0} MiB file, {:.0} MiB virtual disk",
        image.display(),
        apparent as f64 / (1024.0 * 1024.0),
        info["virtual-size"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
    );

    let ns = Netns::new().expect("network namespace");
    ns.add_tap("tap1", "br0").expect("client tap");
    address_only_dnsmasq(&ns, work.path());

    let mut config = QemuConfig::new(
        Firmware::BiosIpxe,
        APPLIANCE_MAC,
        work.path().join("appliance-serial.log"),
    );
    config.memory_mib = APPLIANCE_MEMORY_MIB;
    config.boot_disk = Some(image.clone());
    let started = Instant::now();
    let appliance = Qemu::launch(&ns, &config).expect("appliance QEMU");
    let ready = wait_ready(&appliance, started);
    let serial = plain(&appliance.serial());
    let (iface, addr) = firstboot_result(&serial);
    println!(
        "READY: bootd.service started {:.1} s after QEMU start ({:?}); first boot chose {iface} {addr}",
        ready.as_secs_f64(),
        appliance.accel()
    );

    // The real unit answers on the address the first boot wrote into its config.
    let base = format!("http://{addr}:{HTTP_PORT}");
    let health = curl(&ns, &format!("{base}/healthz"));
    assert!(health.contains("ok"), "/healthz: {health}");
    let status: serde_json::Value =
        serde_json::from_str(&curl(&ns, &format!("{base}/api/v1/status"))).unwrap_or_default();
    assert_eq!(
        status["public_url"].as_str(),
        Some(base.as_str()),
        "{status}"
    );

    // A PXE client on the same bridge boots through the appliance's ProxyDHCP.
    let mut client_config = QemuConfig::new(
        Firmware::BiosIpxe,
        CLIENT_MAC,
        work.path().join("client-serial.log"),
    );
    client_config.tap = "tap1".to_string();
    let mut client = Qemu::launch(&ns, &client_config).expect("client QEMU");
    let exit = client.wait(CLIENT_TIMEOUT).unwrap_or_else(|e| {
        panic!(
            "client: {e}\n--- appliance serial ---\n{}",
            tail(&appliance.serial(), SERIAL_TAIL_BYTES)
        )
    });
    let node: serde_json::Value =
        serde_json::from_str(&curl(&ns, &format!("{base}/api/v1/nodes/{CLIENT_MAC}")))
            .unwrap_or_default();
    let mut path = history_phases(&node);
    path.dedup();
    assert!(
        path.windows(3)
            .any(|w| w == ["dhcp", "ipxe_boot", "installing"]),
        "client history {path:?}\n--- client serial ---\n{}\n--- appliance serial ---\n{}",
        tail(&client.serial(), SERIAL_TAIL_BYTES),
        tail(&appliance.serial(), SERIAL_TAIL_BYTES)
    );
    println!(
        "CLIENT through the appliance: {:.1} s to poweroff, history {path:?}",
        exit.elapsed.as_secs_f64()
    );
}
