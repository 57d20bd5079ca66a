//! What every real-machine boot test does around QEMU: the boot files and bootd's config
//! for one test node, bootd started inside the test's namespace, an address-only dnsmasq
//! beside it for ProxyDHCP runs, and API reads over the control socket.

use super::{MacAddr, Netns};
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

/// bootd's address on `br0` in every boot test.
pub const BRIDGE_IP: &str = "10.77.0.1";
/// bootd's HTTP port in every boot test.
pub const HTTP_PORT: u16 = 8080;

fn copy(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// Writes `dir/bootd.toml` and `dir/state/` (Debian's iPXE loaders, the test guest and
/// [`TEST_SCRIPT`]) for one node `mac` with profile `test`; `dhcp` is the body of the
/// `[dhcp]` table. bootd serves DHCP on `br0` only, HTTP and TFTP on [`BRIDGE_IP`].
pub fn write_setup(dir: &Path, dhcp: &str, mac: MacAddr) -> PathBuf {
    let state = dir.join("state");
    let assets = state.join("assets");
    let image = super::guest().expect("test guest (tests/guest/build-guest.sh)");
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
    let config = format!(
        r#"[server]
state_dir = "{state}"
templates_dir = "{state}/templates"
http_listen = "{BRIDGE_IP}:{HTTP_PORT}"
public_url = "http://{BRIDGE_IP}:{HTTP_PORT}"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

[dhcp]
{dhcp}
[tftp]
listen = "{BRIDGE_IP}:69"

# Tests read /metrics without a token (tests/auth_routes.rs covers the tokens); no
# secrets_trusted: the machine gets its token because bootd saw its MAC in DHCP.
[http]
metrics_public = true

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

/// The node's JSON and the phases of its history, oldest first.
pub fn node_history(socket: &Path, mac: MacAddr) -> (serde_json::Value, Vec<String>) {
    let node = control(socket, &format!("/api/v1/nodes/{mac}"));
    let path = history_phases(&node);
    (node, path)
}

/// The phases of a node's history (its API JSON), oldest first.
pub fn history_phases(node: &serde_json::Value) -> Vec<String> {
    node["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|r| r["to"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a history went dhcp → ipxe_boot → installing (repeats of a phase ignored).
pub fn booted_through_ipxe(path: &[String]) -> bool {
    let mut deduped = path.to_vec();
    deduped.dedup();
    deduped
        .windows(3)
        .any(|w| w == ["dhcp", "ipxe_boot", "installing"])
}

/// `GET path` on bootd's HTTP port as text, from inside `ns` (Prometheus metrics, say).
pub fn http_get(ns: &Netns, path: &str) -> String {
    let out = ns
        .cmd("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{BRIDGE_IP}:{HTTP_PORT}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of a Prometheus sample whose line starts with `series` (0 when absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

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
