//! Readiness means every listener is bound: a DHCP port already taken stops the start
//! with a message naming it, a non-zero exit, and no READY=1 to systemd. Runs the real
//! daemon in a network namespace of its own, with NOTIFY_SOCKET on a datagram socket
//! the test reads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::bin;
use common::{need_root, wait_for, Netns};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Longest the daemon may take to give up (or to come up).
const START_BOUND: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, ns: &Netns) -> PathBuf {
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("templates")).unwrap();
    let ip = ns.bridge_ip();
    let config = dir.join("bootd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
state_dir = "{state}"
assets_dir = "{state}/assets"
templates_dir = "{state}/templates"
http_listen = "{ip}:8080"
public_url = "http://{ip}:8080"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

[dhcp]
mode = "full"
[[dhcp.pools]]
subnet = "10.77.0.0/24"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"

[tftp]
listen = "{ip}:69"
"#,
            state = state.display()
        ),
    )
    .unwrap();
    config
}

/// Every notification received so far.
fn notifications(sock: &UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

fn says_ready(notes: &[String]) -> bool {
    notes.iter().any(|n| n.lines().any(|l| l == "READY=1"))
}

/// Starts `bootd run` in the namespace with NOTIFY_SOCKET set; stderr to `log`.
fn start_bootd(ns: &Netns, config: &Path, notify: &Path, log: &Path) -> u32 {
    let err = std::fs::File::create(log).unwrap();
    let mut cmd = ns.cmd(bin("bootd"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", notify)
        .env("BOOTD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err);
    ns.spawn(cmd).expect("spawn bootd")
}

#[test]
fn a_taken_dhcp_port_stops_the_start_without_ready() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new().expect("network namespace");
    let config = write_config(dir.path(), &ns);
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();

    // Another process holds UDP 67 in the namespace.
    let mut holder = ns.cmd("python3");
    holder.args([
        "-c",
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', 67))\n\
         time.sleep(600)\n",
    ]);
    let holder = ns.spawn(holder).expect("spawn the port holder");
    wait_for(Duration::from_secs(10), "UDP 67 held", || {
        ns.run("ss", &["-Hulna", "sport = :67"])
            .is_ok_and(|out| !out.trim().is_empty())
    })
    .expect("the holder binds UDP 67");

    let log = dir.path().join("bootd.err");
    let pid = start_bootd(&ns, &config, &notify_path, &log);
    let start = Instant::now();
    while ns.is_running(pid) && start.elapsed() < START_BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !ns.is_running(pid),
        "bootd kept running with UDP 67 taken; stderr:\n{stderr}"
    );
    let status = ns.stop(pid).expect("reap bootd");
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot bind DHCP on 0.0.0.0:67 (br0)"),
        "stderr names the port: {stderr}"
    );
    let notes = notifications(&notify);
    assert!(!says_ready(&notes), "READY=1 sent: {notes:?}");
    assert!(
        !dir.path().join("state/control.sock").exists(),
        "no control socket left behind"
    );

    // The same start with the port free is ready, over the same notify socket.
    ns.stop(holder).expect("stop the holder");
    let pid = start_bootd(&ns, &config, &notify_path, &log);
    let mut notes = Vec::new();
    let ready = wait_for(START_BOUND, "READY=1", || {
        notes.extend(notifications(&notify));
        says_ready(&notes) || !ns.is_running(pid)
    });
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        ready.is_ok() && says_ready(&notes),
        "no READY=1 with the port free: {notes:?}; stderr:\n{stderr}"
    );
    let status = ns.stop(pid).expect("stop bootd");
    assert!(status.success(), "clean stop: {status}");
}
