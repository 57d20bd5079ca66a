//! What every real-machine boot test does around QEMU: bootd started inside the test's
//! namespace, an address-only dnsmasq beside it for ProxyDHCP runs, and API reads over
//! the control socket.

use super::Netns;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A boot script for the test guest (tests/guest): its kernel and initrd from
/// `assets/test/`, the phase URL and token on its command line; it posts a phase and
/// powers off.
pub const TEST_SCRIPT: &str = "#!ipxe\n\
kernel {{ assets_url }}/test/vmlinuz initrd=initrd.gz console=ttyS0 panic=-1 bootd.phase_url={{ phase_url }} bootd.token={{ token }}\n\
initrd --name initrd.gz {{ assets_url }}/test/initrd.gz\n\
boot\n";

/// How long bootd may take to bind everything.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `bootd run --config CONFIG` in `ns`, logging to `dir/bootd.log` at
/// `$BOOTD_TEST_LOG` or `default_log`; returns the log path once the control socket
/// (`dir/state/control.sock`) exists.
pub fn start_bootd(ns: &Netns, dir: &Path, config: &Path, default_log: &str) -> PathBuf {
    let log = dir.join("bootd.log");
    let logf = std::fs::File::create(&log).expect("log");
    let mut cmd = ns.cmd(super::daemon::bin("bootd"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env(
            "BOOTD_LOG",
            std::env::var("BOOTD_TEST_LOG").unwrap_or_else(|_| default_log.into()),
        )
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("log"))
        .stderr(logf);
    ns.spawn(cmd).expect("bootd");
    let socket = dir.join("state/control.sock");
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < START_TIMEOUT,
            "bootd did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    log
}

/// A dnsmasq on `br0` that only hands out addresses (10.77.0.100–199), as the DHCP
/// server a ProxyDHCP runs beside.
pub fn address_only_dnsmasq(ns: &Netns, dir: &Path) {
    let mut cmd = ns.cmd("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=br0",
        "--bind-interfaces",
        "--dhcp-range=10.77.0.100,10.77.0.199,1h",
        "--leasefile-ro",
        "--log-dhcp",
    ])
    .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    ns.spawn(cmd).expect("dnsmasq");
}

/// `GET path` on the control socket as JSON (Null when there is no answer).
pub fn control(socket: &Path, path: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--unix-socket"])
        .arg(socket)
        .arg(format!("http://bootd{path}"))
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}
