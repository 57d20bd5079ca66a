//! A node's token goes only to that machine, on a real segment: bootd in full DHCP mode
//! in its own namespace, a client namespace that leases an address for its MAC and
//! fetches its script (token present), and a second host with its own MAC and address
//! that fetches the first node's script (no token).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::bin;
use common::need_root;
use common::netns::Lab;
use std::time::{Duration, Instant};

/// The client namespace's MAC (set by `Lab`).
const CLIENT_MAC: &str = "52:54:00:12:34:56";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("templates")).expect("mkdir");
    std::fs::create_dir_all(state.join("assets")).expect("mkdir");
    std::fs::write(
        state.join("templates/t.ipxe"),
        "#!ipxe\necho token=[{{ token }}]\n",
    )
    .expect("template");
    let config = format!(
        r#"[server]
state_dir = "{state}"
templates_dir = "{state}/templates"
assets_dir = "{state}/assets"
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
enabled = false

[profiles.t]
script = "t.ipxe"

[[nodes]]
mac = "{CLIENT_MAC}"
hostname = "leased"
profile = "t"
"#,
        state = state.display()
    );
    let path = dir.join("bootd.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// `curl` from namespace `ns`: (status, body).
fn fetch(lab: &Lab, ns: &str, url: &str) -> (u16, String) {
    let out = lab.run(
        ns,
        &[
            "curl",
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// What the rendered script carries between `token=[` and `]`.
fn token_in(script: &str) -> String {
    let start = script
        .find("token=[")
        .unwrap_or_else(|| panic!("no token line in {script}"))
        + "token=[".len();
    let end = script[start..].find(']').expect("closing bracket") + start;
    script[start..end].to_string()
}

#[test]
fn only_the_leased_machine_gets_its_token() {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let mut lab = Lab::new("k");
    let other = lab.add_peer("o", "10.77.0.50/24");
    let log = dir.path().join("bootd.log");
    let bootd = bin("bootd");
    let server = lab.server.clone();
    lab.spawn_logged(
        &server,
        &[
            bootd.to_str().expect("path"),
            "run",
            "--config",
            config.to_str().expect("path"),
        ],
        &log,
    );
    let socket = dir.path().join("state/control.sock");
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "bootd did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The client leases an address for its MAC from bootd.
    let script = dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface ;;\nesac\n",
    )
    .expect("script");
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().expect("path")])
        .status()
        .expect("chmod");
    let client = lab.client.clone();
    let out = lab.run(
        &client,
        &[
            "udhcpc",
            "-q",
            "-n",
            "-f",
            "-i",
            "vc",
            "-s",
            script.to_str().expect("path"),
            "-t",
            "10",
            "-T",
            "1",
        ],
    );
    assert!(
        out.status.success(),
        "udhcpc: {}\n--- bootd ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let url = format!("http://10.77.0.1:8080/boot/{CLIENT_MAC}.ipxe");
    // The machine itself (its MAC, its leased address): the token.
    let (code, own) = fetch(&lab, &client, &url);
    assert_eq!(code, 200, "{own}");
    let token = token_in(&own);
    assert!(token.len() >= 16, "the leased machine got no token: {own}");

    // Another host on the segment (its own MAC and address): the same script, no token.
    let (code, foreign) = fetch(&lab, &other, &url);
    assert_eq!(code, 200, "{foreign}");
    assert_eq!(
        token_in(&foreign),
        "",
        "another host got the token: {foreign}"
    );
    assert!(!foreign.contains(&token), "{foreign}");

    // The refusal is logged with the requester's address and counted.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("10.77.0.50"),
        "no log line names the requester:\n{text}"
    );
    let (code, metrics) = common::daemon::curl_url(
        &["--unix-socket", socket.to_str().expect("path")],
        "http://bootd/metrics",
    );
    assert_eq!(code, 200, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("bootd_secrets_withheld_total 1")),
        "{metrics}"
    );
    drop(lab);
}
