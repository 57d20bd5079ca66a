//! A group of three real machines deployed to the end: `bootctl reprovision --group trio
//! --wait` (piped), three QEMU guests (SeaBIOS + iPXE, TCG) PXE-boot through bootd in full
//! DHCP mode, post `installing` and `registered` with their IP, then serve an SSH banner and
//! /health; bootd's readiness check takes them to `running`, the group hook (failing once)
//! makes them `clustered`. Then one guest's /health fails and recovers, and a machine the
//! provider reports powered off is `stopped`, not `unhealthy`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::mac::MacAddr;
use common::daemon::bootctl_bin;
use common::netboot::{self, control, history_phases, start_bootd, BRIDGE_IP, HTTP_PORT};
use common::upstream::{FakeServer, Reply, Request};
use common::{need_root, wait_until, Firmware, Netns, Qemu, QemuConfig, Smbios};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The group's machines: MAC, hostname, reserved IP, provider id.
const MACHINES: [([u8; 6], &str, &str, &str); 3] = [
    (
        [0x52, 0x54, 0x00, 0x6e, 0x00, 0x01],
        "g1",
        "10.77.0.111",
        "srv-1",
    ),
    (
        [0x52, 0x54, 0x00, 0x6e, 0x00, 0x02],
        "g2",
        "10.77.0.112",
        "srv-2",
    ),
    (
        [0x52, 0x54, 0x00, 0x6e, 0x00, 0x03],
        "g3",
        "10.77.0.113",
        "srv-3",
    ),
];
/// `[health]` of the test: short, so failures show within seconds.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
const UNHEALTHY_AFTER: Duration = Duration::from_secs(4);
/// Three TCG guests boot in parallel on a busy 2-core machine: generous.
const DEPLOY_BOUND: Duration = Duration::from_secs(900);
/// How long the guest takes to notice a health switch (it polls every second).
const GUEST_REACTION: Duration = Duration::from_secs(3);

/// The boot script: the test guest in serve mode, asking the test whether it is healthy.
fn script(ctl_port: u16) -> String {
    format!(
        "#!ipxe\n\
kernel {{{{ assets_url }}}}/test/vmlinuz initrd=initrd.gz console=ttyS0 panic=-1 bootd.mode=serve bootd.phase_url={{{{ phase_url }}}} bootd.token={{{{ token }}}} bootd.health_ctl=http://{BRIDGE_IP}:{ctl_port}/health-ctl/{{{{ mac_hyphen }}}}\n\
initrd --name initrd.gz {{{{ assets_url }}}}/test/initrd.gz\n\
boot\n"
    )
}

fn config(state: &Path, port: u16) -> String {
    let mut c = format!(
        r#"[server]
state_dir = "{state}"
templates_dir = "{state}/templates"
http_listen = "{BRIDGE_IP}:{HTTP_PORT}"
public_url = "http://{BRIDGE_IP}:{HTTP_PORT}"
control_socket = "{state}/control.sock"
interfaces = ["br0"]

[dhcp]
mode = "full"
ipv6_ra = true
[[dhcp.pools]]
subnet = "10.77.0.0/24"
range = ["10.77.0.100", "10.77.0.199"]
lease_time = "1h"

[tftp]
listen = "{BRIDGE_IP}:69"

[health]
interval = "2s"
unhealthy_after = "4s"
ready_interval = "2s"
ready_timeout = "2s"

[[upstream]]
name = "provider"
url = "http://127.0.0.1:{port}/events"
status_url = "http://127.0.0.1:{port}/servers/{{provider_id}}"

[profiles.serve]
script = "serve.ipxe"
ready = [ {{ ssh = 22 }} ]
timeout = "20m"

[groups.trio]
profile = "serve"
on_complete = "http://127.0.0.1:{port}/hook"
"#,
        state = state.display()
    );
    for (mac, host, ip, id) in MACHINES {
        c.push_str(&format!(
            "\n[[nodes]]\nmac = \"{}\"\nhostname = \"{host}\"\ngroup = \"trio\"\nip = \"{ip}\"\nprovider_id = \"{id}\"\nhealth_url = \"http://{ip}:8080/health\"\n",
            MacAddr(mac)
        ));
    }
    c
}

/// What the test's one HTTP server (hook, provider, guests' health switch) is told and saw.
#[derive(Default)]
struct World {
    hook_calls: u32,
    /// Provider ids the provider reports powered off.
    powered_off: HashSet<String>,
    /// MACs (hyphenated) whose guest must fail its /health.
    failing: HashSet<String>,
    requests: Vec<(String, String)>,
}

fn answer(world: &Mutex<World>, r: &Request) -> Reply {
    let mut w = world.lock().unwrap_or_else(|p| p.into_inner());
    w.requests.push((r.method.clone(), r.path.clone()));
    if r.path == "/hook" {
        w.hook_calls += 1;
        // The first formation attempt fails: bootd must retry.
        return Reply::status(if w.hook_calls == 1 { 500 } else { 200 });
    }
    if let Some(id) = r.path.strip_prefix("/servers/") {
        let state = if w.powered_off.contains(id) {
            "powered_off"
        } else {
            "running"
        };
        return Reply::json(&format!("{{\"id\":\"{id}\",\"state\":\"{state}\"}}"));
    }
    if let Some(mac) = r.path.strip_prefix("/health-ctl/") {
        let word = if w.failing.contains(mac) {
            "fail"
        } else {
            "ok"
        };
        return Reply::Answer(200, Vec::new(), word.into());
    }
    Reply::status(200)
}

/// `bootctl` with its stdout in a file (a pipe, as the seeds run it); killed on drop.
struct Ctl {
    child: Child,
    out: PathBuf,
}

impl Ctl {
    fn spawn(socket: &Path, dir: &Path, args: &[&str]) -> Ctl {
        let out = dir.join("bootctl.out");
        let file = std::fs::File::create(&out).expect("bootctl out");
        let child = Command::new(bootctl_bin())
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("bootctl");
        Ctl { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The exit code once it ended, or None after `bound`.
    fn wait(&mut self, bound: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn phase(socket: &Path, mac: MacAddr) -> String {
    control(socket, &format!("/api/v1/nodes/{mac}"))["phase"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Waits until `mac` is in `want`; the time it took, or None after `bound`.
fn wait_phase(socket: &Path, mac: MacAddr, want: &str, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    wait_until(bound, || phase(socket, mac) == want).then(|| start.elapsed())
}

/// Everything worth reading when an assertion fails.
fn diagnostics(socket: &Path, log: &Path, ctl: &Ctl, qemus: &[Option<Qemu<'_>>]) -> String {
    let mut d = String::new();
    d.push_str(&format!("--- bootctl ---\n{}\n", ctl.output()));
    for (mac, ..) in MACHINES {
        let n = control(socket, &format!("/api/v1/nodes/{}", MacAddr(mac)));
        d.push_str(&format!(
            "--- {} phase {} ({}), history {:?}\n",
            MacAddr(mac),
            n["phase"],
            n["message"],
            history_phases(&n)
        ));
    }
    d.push_str(&format!(
        "--- groups ---\n{}\n",
        control(socket, "/api/v1/groups")
    ));
    for q in qemus.iter().flatten() {
        d.push_str(&format!("--- serial {} ---\n{}\n", q.pid(), q.serial()));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(80).collect();
    d.push_str("--- bootd log (last 80 lines) ---\n");
    for l in tail.into_iter().rev() {
        d.push_str(l);
        d.push('\n');
    }
    d
}

fn serial_says(q: &Qemu<'_>, text: &str) -> bool {
    q.serial().contains(text)
}

#[test]
fn group_of_three_deploys_clusters_and_is_watched() {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let macs: Vec<MacAddr> = MACHINES.iter().map(|m| MacAddr(m.0)).collect();
    let ns = Netns::new().expect("network namespace");
    for tap in ["tap1", "tap2"] {
        ns.add_tap(tap, "br0").expect("tap");
    }
    let world = Arc::new(Mutex::new(World::default()));
    let w = world.clone();
    let server = FakeServer::start_in(ns.name(), move |r| answer(&w, r));

    // Boot files and the guest from the common set-up, then this test's config and script.
    netboot::write_setup(dir.path(), "mode = \"full\"\n", macs[0]);
    let state = dir.path().join("state");
    std::fs::write(state.join("templates/serve.ipxe"), script(server.port())).expect("script");
    let cfg_path = dir.path().join("bootd.toml");
    std::fs::write(&cfg_path, config(&state, server.port())).expect("config");
    let log = start_bootd(&ns, dir.path(), &cfg_path, "info");
    let socket = state.join("control.sock");

    // The operator's command, as the seeds run it; no power_cycle hook, so we boot them.
    let mut ctl = Ctl::spawn(
        &socket,
        dir.path(),
        &[
            "reprovision",
            "--group",
            "trio",
            "--wait",
            "--report-every",
            "30s",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(20), || macs
            .iter()
            .all(|m| phase(&socket, *m) == "server_requested")),
        "reprovision did not start:\n{}",
        ctl.output()
    );
    let mut qemus: Vec<Option<Qemu<'_>>> = Vec::new();
    for (i, (mac, host, ..)) in MACHINES.iter().enumerate() {
        let mut q = QemuConfig::new(
            Firmware::BiosIpxe,
            MacAddr(*mac),
            dir.path().join(format!("serial-{host}.log")),
        );
        q.tap = format!("tap{i}");
        q.smbios = Smbios {
            serial: format!("SN-{host}"),
            uuid: Some(format!("11223344-5566-7788-99aa-bbccddeeff0{i}")),
            ..Smbios::default()
        };
        qemus.push(Some(Qemu::launch(&ns, &q).expect("qemu")));
    }
    let t0 = Instant::now();

    // Up to `registered`: the part bootd already does without the readiness poller.
    let registered = wait_until(DEPLOY_BOUND, || {
        macs.iter().all(|m| {
            let n = control(&socket, &format!("/api/v1/nodes/{m}"));
            history_phases(&n).iter().any(|p| p == "registered")
        })
    });
    assert!(
        registered,
        "not every guest registered within {DEPLOY_BOUND:?}\n{}",
        diagnostics(&socket, &log, &ctl, &qemus)
    );
    for (i, m) in macs.iter().enumerate() {
        let n = control(&socket, &format!("/api/v1/nodes/{m}"));
        assert_eq!(
            n["ip"].as_str(),
            Some(MACHINES[i].2),
            "the registered IP is the reserved one: {n}"
        );
        let mut path = history_phases(&n);
        path.dedup();
        assert!(
            path.windows(3)
                .any(|w| w == ["dhcp", "ipxe_boot", "installing"]),
            "{m}: {path:?}"
        );
    }
    eprintln!("all three registered after {:?}", t0.elapsed());

    // From here on bootd's readiness poller and cluster formation do the work.
    let code = ctl.wait(DEPLOY_BOUND.saturating_sub(t0.elapsed()));
    let out = ctl.output();
    // The transcript (shown with --nocapture; README "Deployment lifecycle" quotes one).
    eprintln!("--- bootctl reprovision --group trio --wait ---\n{out}");
    assert_eq!(
        code,
        Some(0),
        "reprovision --wait did not succeed\n{}",
        diagnostics(&socket, &log, &ctl, &qemus)
    );
    assert!(out.contains("all 3 nodes clustered"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("group trio") && l.contains("deployment (0-70%)")),
        "no deployment stage line:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("group trio") && l.contains("cluster formation (70-100%)")),
        "no cluster formation stage line:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("group trio 100%") && l.contains("cluster formation")),
        "the bar ends at 100 %:\n{out}"
    );
    assert!(
        out.contains("reprovisioning 3 nodes:"),
        "status table:\n{out}"
    );
    for m in &macs {
        let n = control(&socket, &format!("/api/v1/nodes/{m}"));
        let mut path = history_phases(&n);
        path.dedup();
        let tail: Vec<&str> = path
            .iter()
            .rev()
            .take(4)
            .rev()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            ["registered", "health_validation", "running", "clustered"],
            "{m}: {path:?}"
        );
    }
    let hook_calls = world.lock().unwrap().hook_calls;
    assert!(
        hook_calls >= 2,
        "the hook failed once and was retried: {hook_calls}"
    );
    eprintln!("group clustered after {:?}", t0.elapsed());
    let (_, groups_out) = {
        let o = Command::new(bootctl_bin())
            .arg("--socket")
            .arg(&socket)
            .arg("groups")
            .output()
            .expect("bootctl groups");
        (o.status, String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let line = groups_out
        .lines()
        .find(|l| l.starts_with("trio"))
        .unwrap_or_else(|| panic!("{groups_out}"));
    assert!(
        line.contains("clustered") && line.contains("100% cluster formation"),
        "{groups_out}"
    );

    // One guest's /health fails: unhealthy within unhealthy_after + 2 intervals.
    let sick = macs[0];
    let sick_key = sick.to_string().replace(':', "-");
    world.lock().unwrap().failing.insert(sick_key.clone());
    let noticed = wait_until(Duration::from_secs(30), || {
        qemus[0]
            .as_ref()
            .is_some_and(|q| serial_says(q, "health off"))
    });
    assert!(noticed, "guest did not switch /health off");
    let bound = UNHEALTHY_AFTER + 2 * HEALTH_INTERVAL + GUEST_REACTION;
    let took = wait_phase(&socket, sick, "unhealthy", bound);
    assert!(
        took.is_some(),
        "{sick} not unhealthy within {bound:?}\n{}",
        diagnostics(&socket, &log, &ctl, &qemus)
    );
    eprintln!(
        "unhealthy {:?} after /health went away",
        took.unwrap_or_default()
    );
    world.lock().unwrap().failing.remove(&sick_key);
    let back = wait_phase(&socket, sick, "clustered", Duration::from_secs(30));
    assert!(
        back.is_some(),
        "{sick} did not return to clustered\n{}",
        diagnostics(&socket, &log, &ctl, &qemus)
    );

    // The provider says a machine is powered off (and it is): stopped, never unhealthy.
    let off = macs[1];
    let before = history_phases(&control(&socket, &format!("/api/v1/nodes/{off}"))).len();
    world
        .lock()
        .unwrap()
        .powered_off
        .insert(MACHINES[1].3.to_string());
    qemus[1] = None; // Qemu's drop kills the process: the machine is off.
    let stopped = wait_phase(&socket, off, "stopped", Duration::from_secs(30));
    assert!(
        stopped.is_some(),
        "{off} not stopped\n{}",
        diagnostics(&socket, &log, &ctl, &qemus)
    );
    let after = history_phases(&control(&socket, &format!("/api/v1/nodes/{off}")));
    assert!(
        !after[before.min(after.len())..]
            .iter()
            .any(|p| p == "unhealthy"),
        "a powered-off machine went through unhealthy: {after:?}"
    );
    let asked: HashMap<String, u32> =
        world
            .lock()
            .unwrap()
            .requests
            .iter()
            .fold(HashMap::new(), |mut m, (_, path)| {
                *m.entry(path.clone()).or_default() += 1;
                m
            });
    assert!(
        asked.contains_key(&format!("/servers/{}", MACHINES[1].3)),
        "bootd never asked the provider: {asked:?}"
    );
}
