//! Boot-storm smoke tests: bootd in one namespace (full DHCP mode, or ProxyDHCP beside an
//! address-only dnsmasq), `bootd-storm` with ten machines in another (joined by a veth);
//! every machine must boot without a failure and reach the callbacks' phases and a stored
//! hardware report in bootd's API. `bootd-storm` is another workspace package: root-level
//! `cargo test` builds it; `cargo test --test storm_smoke` alone runs the one already in
//! `target/debug/` (`cargo build -p bootd-storm` first).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::netboot::{control, start_bootd};
use common::{need_root, workspace_bin, Netns, NetnsConfig};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Machines in the storm.
const MACHINES: u32 = 10;
/// MAC seeds (02:00:2a:..., 02:00:2b:...), distinct from other tests' MACs.
const SEED_FULL: u16 = 42;
const SEED_PROXY: u16 = 43;
/// The whole storm must end well within the CI budget.
const STORM_BUDGET: Duration = Duration::from_secs(60);

fn namespace(bridge_addr: &str) -> Netns {
    Netns::with_config(NetnsConfig {
        bridge_addr: bridge_addr.to_string(),
        bridge_addr6: None,
        second_bridge_addr: None,
    })
    .expect("netns")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Full,
    Proxy,
}

#[test]
fn ten_machines_boot_at_once_without_failure() {
    storm(Mode::Full, SEED_FULL);
}

/// The same through ProxyDHCP: addresses from dnsmasq, boot files, scripts and callbacks
/// from bootd.
#[test]
fn ten_machines_boot_at_once_through_proxy_dhcp() {
    storm(Mode::Proxy, SEED_PROXY);
}

fn storm(mode: Mode, seed: u16) {
    need_root();
    let server = namespace("10.91.0.1/16");
    // The client namespace's own bridge is unused; only its veth end matters.
    let client = namespace("10.93.0.1/24");
    server
        .ip(&[
            "link",
            "add",
            "v0",
            "type",
            "veth",
            "peer",
            "name",
            "c0",
            "netns",
            client.name(),
        ])
        .expect("veth");
    server
        .ip(&["link", "set", "v0", "master", "br0", "up"])
        .expect("v0");
    client
        .ip(&["addr", "add", "10.91.0.2/16", "dev", "c0"])
        .expect("c0 addr");
    client.ip(&["link", "set", "c0", "up"]).expect("c0 up");
    // AnyIP: every pool address is local to the client, so machines use their leases.
    client
        .ip(&["route", "add", "local", "10.91.32.0/24", "dev", "lo"])
        .expect("anyip");

    let dir = tempfile::tempdir().expect("tempdir");
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(assets.join("discovery")).expect("assets");
    std::fs::copy("/usr/lib/ipxe/ipxe.efi", assets.join("ipxe.efi"))
        .expect("ipxe.efi (package ipxe)");
    std::fs::write(assets.join("discovery/vmlinuz"), vec![0x4b; 300_000]).expect("kernel");
    std::fs::write(assets.join("discovery/initrd.img"), vec![0x49; 1_000_000]).expect("initrd");
    let state = dir.path().join("state");
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("boot-assets/templates");
    let config = dir.path().join("bootd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
state_dir = "{state}"
assets_dir = "{assets}"
templates_dir = "{templates}"
http_listen = "10.91.0.1:8080"
public_url = "http://10.91.0.1:8080"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

{dhcp}

[tftp]
listen = "10.91.0.1:69"

[boot]
unknown = "discover"
default_profile = "discovery"
"#,
            state = state.display(),
            assets = assets.display(),
            templates = templates.display(),
            dhcp = match mode {
                Mode::Full =>
                    "[dhcp]\nmode = \"full\"\n[[dhcp.pools]]\nsubnet = \"10.91.0.0/16\"\n\
                               range = [\"10.91.32.10\", \"10.91.32.250\"]\nlease_time = \"1h\"\n",
                Mode::Proxy => "[dhcp]\nmode = \"proxy\"\n",
            },
        ),
    )
    .expect("config");
    let log = start_bootd(&server, dir.path(), &config, "info");
    if mode == Mode::Proxy {
        // The site's DHCP server: addresses only, no ping check (AnyIP would answer it).
        let mut dnsmasq = server.cmd("dnsmasq");
        dnsmasq
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--no-ping",
                "--interface=br0",
                "--bind-interfaces",
                "--dhcp-range=10.91.32.10,10.91.32.250,255.255.0.0,1h",
                "--leasefile-ro",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        server.spawn(dnsmasq).expect("dnsmasq");
    }
    let socket = state.join("control.sock");

    let lshw = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hardware/local-vm.lshw.json");
    let report = dir.path().join("storm.json");
    let started = Instant::now();
    let out = client
        .cmd(workspace_bin("bootd-storm"))
        .args(["-n", &MACHINES.to_string(), "--seed", &seed.to_string()])
        .args(["--mode", if mode == Mode::Proxy { "proxy" } else { "full" }])
        .args([
            "--interface",
            "c0",
            "--windowsize",
            "4",
            "--http-timeout",
            "20s",
        ])
        .arg("--lshw")
        .arg(&lshw)
        .arg("--json")
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("bootd-storm");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let bootd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "storm failed:\n{text}\n{}\n--- bootd log ---\n{bootd_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < STORM_BUDGET, "storm took {took:?}:\n{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report JSON");
    assert_eq!(json["failed"], 0, "{text}");
    assert_eq!(json["booted"], MACHINES, "{text}");
    assert_eq!(json["steps"]["total"]["count"], MACHINES, "{text}");
    let ipxe_len = std::fs::metadata(assets.join("ipxe.efi"))
        .expect("ipxe.efi")
        .len();
    assert_eq!(
        json["bytes"]["tftp"],
        ipxe_len * u64::from(MACHINES),
        "{text}"
    );

    for i in 0..MACHINES {
        let mac = format!("02:00:{seed:02x}:00:00:{i:02x}");
        let node = control(&socket, &format!("/api/v1/nodes/{mac}"));
        assert_eq!(node["phase"], "registered", "{mac}: {node}");
        let history: Vec<&str> = node["history"]
            .as_array()
            .map(|h| h.iter().filter_map(|e| e["to"].as_str()).collect())
            .unwrap_or_default();
        for phase in ["dhcp", "ipxe_boot", "installing", "registered"] {
            assert!(
                history.contains(&phase),
                "{mac} never reached {phase}: {node}"
            );
        }
        // Every machine's TFTP download is attributed to it, although all of them sit
        // behind one veth (one link-level address): bootd names TFTP peers from what DHCP
        // saw, not from the neighbour table. Full mode only: there bootd learns the address
        // before its ACK leaves. Behind a ProxyDHCP it learns it from the client's REQUEST
        // to the other server, which races the RRQ; on a real segment the neighbour table
        // then names the peer, here every peer has the veth's one address.
        if mode == Mode::Full {
            let tftp_seen = node["history"]
                .as_array()
                .is_some_and(|h| h.iter().any(|e| e["message"] == "tftp ipxe.efi"));
            assert!(tftp_seen, "{mac}: TFTP transfer not attributed: {node}");
        }
        let hw = control(&socket, &format!("/api/v1/nodes/{mac}/hardware"));
        assert!(
            hw["inventory"].is_object(),
            "{mac}: no hardware report: {hw}"
        );
    }
    eprintln!(
        "STORM SMOKE ({mode:?}): {MACHINES} machines in {:.2} s\n{text}",
        took.as_secs_f64()
    );
}
