//! `bootd preflight` as a black box: a good setup passes; each broken setup fails with
//! the check id an operator would look for; a foreign DHCP server is found in a netns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::bin;
use common::{need_root, wait_for, Netns, NetnsConfig};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Debian's iPXE binaries (the ipxe package is a test dependency).
const IPXE_DIR: &str = "/usr/lib/ipxe";
/// How long dnsmasq gets to start listening.
const DNSMASQ_START: Duration = Duration::from_secs(10);
/// The exposure the hardened unit must stay within (systemd-analyze security, 0..10).
const MAX_EXPOSURE: f64 = 2.0;

/// A state dir with Debian's iPXE binaries and a config on free loopback ports.
struct Setup {
    dir: tempfile::TempDir,
    http: u16,
    tftp: u16,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let assets = dir.path().join("state/assets");
        std::fs::create_dir_all(&assets).expect("assets dir");
        for f in ["undionly.kpxe", "ipxe.efi", "snponly.efi"] {
            // fs::copy follows symlinks: Debian's ipxe.efi is one, into /boot.
            std::fs::copy(Path::new(IPXE_DIR).join(f), assets.join(f))
                .unwrap_or_else(|e| panic!("copy {IPXE_DIR}/{f} (is ipxe installed?): {e}"));
        }
        let setup = Setup {
            dir,
            http: common::free_tcp_port(),
            tftp: common::free_udp_port(),
        };
        setup.write_config("mode = \"off\"", "");
        setup
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("bootd.toml")
    }

    /// Writes the config with this `[dhcp]` body and extra `[server]` lines.
    fn write_config(&self, dhcp: &str, server_extra: &str) {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot-assets/templates");
        let text = format!(
            r#"[server]
state_dir = "{state}"
assets_dir = "{state}/assets"
templates_dir = "{templates}"
http_listen = "127.0.0.1:{http}"
control_socket = "{state}/control.sock"
{server_extra}

[dhcp]
{dhcp}

[tftp]
listen = "127.0.0.1:{tftp}"

[profiles.ubuntu]
script = "ubuntu.ipxe"
config = "ubuntu-user-data.yaml"

[[nodes]]
mac = "52:54:00:20:00:01"
hostname = "u1"
profile = "ubuntu"
vars = {{ disk = "/dev/vda" }}
"#,
            state = self.state().display(),
            templates = templates.display(),
            http = self.http,
            tftp = self.tftp,
        );
        std::fs::write(self.config(), text).expect("write config");
    }

    /// Runs `bootd preflight --json` (inside `ns` if given): (exit code, report).
    fn preflight(&self, ns: Option<&Netns>) -> (i32, Value) {
        let mut cmd = match ns {
            Some(ns) => ns.cmd(bin("bootd")),
            None => Command::new(bin("bootd")),
        };
        let out = cmd
            .args(["preflight", "--json", "--config"])
            .arg(self.config())
            .stdin(Stdio::null())
            .output()
            .expect("run bootd preflight");
        let text = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "preflight printed no JSON ({e}): {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }
}

fn checks(report: &Value) -> &Vec<Value> {
    report["checks"].as_array().expect("checks array")
}

/// The ids of the failed checks.
fn failed(report: &Value) -> Vec<String> {
    checks(report)
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The one check with this id and subject.
fn find<'a>(report: &'a Value, id: &str, subject: &str) -> &'a Value {
    checks(report)
        .iter()
        .find(|c| c["id"] == id && c["subject"] == subject)
        .unwrap_or_else(|| panic!("no check {id} for {subject}: {report:#}"))
}

#[test]
fn good_setup_passes_and_names_every_check() {
    let s = Setup::new();
    let (code, report) = s.preflight(None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(failed(&report).is_empty(), "{report:#}");
    for id in [
        "config",
        "state_dir",
        "disk_space",
        "database",
        "boot_file",
        "boot_file_type",
        "templates",
        "http_port",
        "tftp_port",
        "capabilities",
    ] {
        assert!(
            checks(&report).iter().any(|c| c["id"] == id),
            "no {id} check: {report:#}"
        );
    }
    assert_eq!(
        find(&report, "boot_file_type", "undionly.kpxe")["verdict"],
        "ok"
    );
    assert_eq!(find(&report, "boot_file_type", "ipxe.efi")["verdict"], "ok");
    // The arm64 default is only a warning on an x86-only network.
    assert_eq!(
        find(&report, "boot_file", "arm64/ipxe.efi")["verdict"],
        "warn"
    );

    // The table: same verdict, human words, no colour when not on a terminal.
    let out = Command::new(bin("bootd"))
        .args(["preflight", "--config"])
        .arg(s.config())
        .output()
        .expect("run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(!table.contains('\x1b'), "{table}");
    assert!(table.contains("0 failed"), "{table}");
    println!("{table}");
}

#[test]
fn missing_boot_file_fails_boot_file() {
    let s = Setup::new();
    std::fs::remove_file(s.state().join("assets/undionly.kpxe")).expect("rm");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["boot_file"], "{report:#}");
    let c = find(&report, "boot_file", "undionly.kpxe");
    assert!(
        c["message"].as_str().unwrap_or("").contains("missing"),
        "{c}"
    );
    assert!(
        c["hint"]
            .as_str()
            .unwrap_or("")
            .contains("/usr/lib/ipxe/undionly.kpxe"),
        "{c}"
    );
    let target = s.state().join("assets/undionly.kpxe");
    assert!(
        c["hint"]
            .as_str()
            .unwrap_or("")
            .contains(&target.display().to_string()),
        "the hint names the real assets dir: {c}"
    );
}

#[test]
fn a_symlink_out_of_assets_fails_like_tftp_would_refuse_it() {
    let s = Setup::new();
    let link = s.state().join("assets/undionly.kpxe");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink(Path::new(IPXE_DIR).join("undionly.kpxe"), &link).expect("symlink");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    let c = find(&report, "boot_file", "undionly.kpxe");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(
        c["message"].as_str().unwrap_or("").contains("symlink"),
        "{c}"
    );
}

/// The smallest PE32+ header firmware would look at: MZ, PE, machine, subsystem 10.
fn tiny_pe(machine: u16) -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    b[0..2].copy_from_slice(b"MZ");
    b[0x3C..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    b[0x40..0x44].copy_from_slice(b"PE\0\0");
    b[0x44..0x46].copy_from_slice(&machine.to_le_bytes());
    b[0x54..0x56].copy_from_slice(&240u16.to_le_bytes());
    b[0x58..0x5A].copy_from_slice(&0x20Bu16.to_le_bytes());
    b[0x58 + 68..0x58 + 70].copy_from_slice(&10u16.to_le_bytes());
    b
}

#[test]
fn arm64_binary_as_ipxe_efi_fails_boot_file_type() {
    let s = Setup::new();
    std::fs::write(s.state().join("assets/ipxe.efi"), tiny_pe(0xAA64)).expect("write");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["boot_file_type"], "{report:#}");
    let c = find(&report, "boot_file_type", "ipxe.efi");
    let msg = c["message"].as_str().unwrap_or("");
    assert!(msg.contains("arm64") && msg.contains("x64"), "{c}");

    // The same binary is right in the arm64 slot.
    std::fs::create_dir_all(s.state().join("assets/arm64")).expect("dir");
    std::fs::rename(
        s.state().join("assets/ipxe.efi"),
        s.state().join("assets/arm64/ipxe.efi"),
    )
    .expect("mv");
    std::fs::copy(
        Path::new(IPXE_DIR).join("ipxe.efi"),
        s.state().join("assets/ipxe.efi"),
    )
    .expect("copy");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        find(&report, "boot_file_type", "arm64/ipxe.efi")["verdict"],
        "ok"
    );
}

#[test]
fn http_port_in_use_fails_http_port() {
    let s = Setup::new();
    let _held = TcpListener::bind(("127.0.0.1", s.http)).expect("hold the http port");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["http_port"], "{report:#}");
    let c = find(&report, "http_port", &format!("127.0.0.1:{}", s.http));
    assert!(
        c["message"].as_str().unwrap_or("").contains("in use"),
        "{c}"
    );
}

#[test]
fn corrupt_database_fails_database_and_is_left_alone() {
    let s = Setup::new();
    let db = s.state().join("bootd.db");
    let garbage = b"not a database, just bytes ".repeat(200);
    std::fs::write(&db, &garbage).expect("write");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["database"], "{report:#}");
    assert_eq!(std::fs::read(&db).expect("read"), garbage);
}

#[test]
fn broken_template_fails_templates() {
    let s = Setup::new();
    let templates = s.dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("dir");
    // Renders for the sample node, fails for the configured one (its vars are a map).
    std::fs::write(
        templates.join("ubuntu.ipxe"),
        "#!ipxe\n{% if node.vars.disk %}{{ node.vars.disk + 1 }}{% endif %}\n",
    )
    .expect("write");
    std::fs::write(templates.join("ubuntu-user-data.yaml"), "#cloud-config\n").expect("write");
    let text = std::fs::read_to_string(s.config()).expect("read");
    let edited = text.replace(
        &format!(
            "templates_dir = \"{}\"",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("boot-assets/templates")
                .display()
        ),
        &format!("templates_dir = \"{}\"", templates.display()),
    );
    std::fs::write(s.config(), edited).expect("write");
    let (code, report) = s.preflight(None);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        failed(&report).first().map(String::as_str),
        Some("templates"),
        "{report:#}"
    );
    let c = find(&report, "templates", "ubuntu.ipxe");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or("")
            .contains("52:54:00:20:00:01"),
        "{c}"
    );
}

/// A second namespace wired into `ns`'s `br0` by a veth (10.77.0.2 on its end): another
/// host on bootd's segment, as on a real network.
fn neighbour(ns: &Netns) -> Netns {
    let other = Netns::with_config(NetnsConfig {
        bridge_addr: "10.78.0.1/24".into(),
        bridge_addr6: None,
        second_bridge_addr: None,
    })
    .expect("second netns");
    ns.ip(&[
        "link",
        "add",
        "vpf0",
        "type",
        "veth",
        "peer",
        "name",
        "vpf1",
        "netns",
        other.name(),
    ])
    .expect("veth");
    ns.ip(&["link", "set", "vpf0", "master", "br0", "up"])
        .expect("veth into br0");
    other
        .ip(&["addr", "add", "10.77.0.2/24", "dev", "vpf1"])
        .expect("addr");
    other.ip(&["link", "set", "vpf1", "up"]).expect("up");
    other
}

/// Starts dnsmasq serving addresses on the neighbour's end of the veth.
fn start_dnsmasq(other: &Netns, dir: &Path) {
    let log = dir.join("dnsmasq.log");
    other
        .spawn_logged(
            "dnsmasq",
            &[
                "--no-daemon",
                "--port=0",
                "--interface=vpf1",
                "--bind-interfaces",
                "--dhcp-range=10.77.0.100,10.77.0.150,1h",
                "--no-ping",
                "--leasefile-ro",
                "--log-dhcp",
                "--conf-file=/dev/null",
                &format!("--pid-file={}", log.with_extension("pid").display()),
            ],
            &log,
        )
        .expect("dnsmasq");
    wait_for(DNSMASQ_START, "dnsmasq listening", || {
        common::util::read_lossy(&log).contains("DHCP, IP range")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", common::util::read_lossy(&log)));
}

#[test]
fn foreign_dhcp_server_fails_full_mode_and_satisfies_proxy_mode() {
    need_root();
    let ns = Netns::new().expect("netns");
    let other = neighbour(&ns);
    let s = Setup::new();
    let pool = "mode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.77.0.0/24\"\n\
                range = [\"10.77.0.160\", \"10.77.0.199\"]";
    let served = "interfaces = [\"br0\"]";

    // Alone on the segment: full mode is fine, proxy mode warns (it needs a server).
    s.write_config(pool, served);
    let (code, report) = s.preflight(Some(&ns));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(find(&report, "dhcp_server", "br0")["verdict"], "ok");
    assert_eq!(find(&report, "interface", "br0")["verdict"], "ok");
    s.write_config("mode = \"proxy\"", served);
    let (code, report) = s.preflight(Some(&ns));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(find(&report, "dhcp_server", "br0")["verdict"], "warn");

    start_dnsmasq(&other, s.dir.path());
    s.write_config(pool, served);
    let (code, report) = s.preflight(Some(&ns));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["dhcp_server"], "{report:#}");
    let c = find(&report, "dhcp_server", "br0");
    assert!(
        c["message"].as_str().unwrap_or("").contains("10.77.0.2"),
        "{c}"
    );
    println!("full mode: {}", c["message"]);

    s.write_config("mode = \"proxy\"", served);
    let (code, report) = s.preflight(Some(&ns));
    assert_eq!(code, 0, "{report:#}");
    let c = find(&report, "dhcp_server", "br0");
    assert_eq!(c["verdict"], "ok", "{c}");
    println!("proxy mode: {}", c["message"]);

    // A named interface that does not exist fails before any probe.
    s.write_config("mode = \"proxy\"", "interfaces = [\"nosuch0\"]");
    let (code, report) = s.preflight(Some(&ns));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(failed(&report), vec!["interface"], "{report:#}");
}

#[test]
fn hardened_unit_exposure_is_at_most_2() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/bootd.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .stdin(Stdio::null())
        .output()
        .expect("systemd-analyze (package systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "→ Overall exposure level for bootd.service: 1.8 OK 🙂"
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let figure: f64 = line
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the figure in {line:?}"));
    println!("systemd-analyze security --offline=true systemd/bootd.service: {figure}");
    assert!(figure <= MAX_EXPOSURE, "{line}");
}

#[test]
fn listener_off_loopback_without_an_api_token_warns() {
    let s = Setup::new();
    let loopback = format!("http_listen = \"127.0.0.1:{}\"", s.http);
    let (_, report) = s.preflight(None);
    let subject = format!("server.http_listen = 127.0.0.1:{}", s.http);
    assert_eq!(find(&report, "api_tokens", &subject)["verdict"], "ok");

    // Reachable from the network, no token yet: a warning (preflight still passes).
    let text = std::fs::read_to_string(s.config()).expect("config");
    let open = format!(
        "http_listen = \"0.0.0.0:{0}\"\npublic_url = \"http://192.0.2.1:{0}\"",
        s.http
    );
    std::fs::write(s.config(), text.replace(&loopback, &open)).expect("config");
    let (code, report) = s.preflight(None);
    let subject = format!("server.http_listen = 0.0.0.0:{}", s.http);
    let check = find(&report, "api_tokens", &subject);
    assert_eq!(check["verdict"], "warn", "{report:#}");
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains("bootctl token create"),
        "{check}"
    );
    assert_eq!(code, 0, "{report:#}");

    // A token issued (bootd on loopback meanwhile): no warning.
    std::fs::write(s.config(), text.clone()).expect("config");
    let mut bootd = Command::new(bin("bootd"))
        .args(["run", "--config"])
        .arg(s.config())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bootd");
    let socket = s.state().join("control.sock");
    let started = std::time::Instant::now();
    while !socket.exists() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = Command::new(common::daemon::bootctl_bin())
        .arg("--socket")
        .arg(&socket)
        .args(["token", "create", "prom", "--role", "viewer"])
        .output()
        .expect("bootctl");
    let _ = bootd.kill();
    let _ = bootd.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(s.config(), text.replace(&loopback, &open)).expect("config");
    let (_, report) = s.preflight(None);
    assert_eq!(
        find(&report, "api_tokens", &subject)["verdict"],
        "ok",
        "{report:#}"
    );

    // Revoked or expired tokens do not count: the database is read, not the count of rows.
    let db = s.state().join("bootd.db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute(
        "UPDATE api_tokens SET revoked_at = '2026-01-01T00:00:00Z'",
        [],
    )
    .expect("revoke");
    drop(conn);
    let (_, report) = s.preflight(None);
    assert_eq!(
        find(&report, "api_tokens", &subject)["verdict"],
        "warn",
        "{report:#}"
    );
}
