//! The deployment lifecycle as a black box: machines driven by real callbacks with the
//! tokens of their boot scripts, a group hook on a real HTTP server, deadlines,
//! `bootctl reprovision --wait`, `bootctl watch` across a daemon restart, timelines.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::relay::Secret;
use common::daemon::{bin, curl_url, Daemon};
use common::json;
use common::upstream::{FakeServer, Reply, Request};
use common::wait_for;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "lifecycle-test-secret";

/// A boot script that shows its callback token, as the shipped ones pass it on.
const SCRIPT: &str = "#!ipxe\n# token {{ token }}\necho {{ profile }}\n";

/// Starts bootd with `inst.ipxe` in its templates dir and `extra` in its config.
fn start(extra: &str) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("state/templates");
    std::fs::create_dir_all(&templates).expect("templates dir");
    std::fs::write(templates.join("inst.ipxe"), SCRIPT).expect("template");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("secret");
    let extra = extra.replace("@DIR@", &dir.path().display().to_string());
    Daemon::start_in(dir, &extra, &[])
}

/// What a machine does when it PXE-boots: fetch its script; returns the token in it.
fn boot(d: &Daemon, mac: &str) -> String {
    let (code, body) = d.curl(&[], &format!("/boot/{mac}.ipxe"));
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("# token "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no token in {body}"))
}

/// A full install of one machine: boot, install, register with facts, run.
fn install(d: &Daemon, mac: &str, n: u8) {
    let token = boot(d, mac);
    assert_eq!(
        d.phase_callback(
            mac,
            &token,
            r#"{"phase":"installing","progress":50,"message":"unpacking"}"#
        )
        .0,
        200
    );
    let facts = format!(r#"{{"phase":"registered","ip":"10.9.0.{n}","hostname":"node{n}"}}"#);
    assert_eq!(d.phase_callback(mac, &token, &facts).0, 200);
    assert_eq!(
        d.phase_callback(mac, &token, r#"{"phase":"running"}"#).0,
        200
    );
}

fn phase(d: &Daemon, mac: &str) -> String {
    d.node_json(mac)["phase"].as_str().unwrap_or("").to_string()
}

fn wait_phase(d: &Daemon, mac: &str, want: &str, within: Duration) {
    if wait_for(within, want, || phase(d, mac) == want).is_err() {
        panic!(
            "{mac} did not reach {want} within {within:?}: {}\nlog:\n{}",
            d.node_json(mac),
            d.log_text()
        );
    }
}

/// The newest history row of a node once it records a move to `to` (the registry shows
/// a change when it is queued; its row follows with the commit).
fn last_row(d: &Daemon, mac: &str, to: &str) -> Value {
    let mut row = Value::Null;
    let found = wait_for(Duration::from_secs(5), "history row", || {
        row = d.node_json(mac)["history"]
            .as_array()
            .and_then(|h| h.last().cloned())
            .unwrap_or(Value::Null);
        row["to"] == to
    });
    assert!(found.is_ok(), "{mac}: no {to} row; last is {row}");
    row
}

/// A running bootctl with its stdout lines on a channel; killed (by pid) on drop.
struct Bootctl {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Bootctl {
    fn spawn(d: &Daemon, args: &[&str]) -> Bootctl {
        let mut child = Command::new(bin("bootctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bootctl");
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Bootctl {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `text`.
    fn expect_line(&mut self, text: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line with {text:?} within {within:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit; (code, everything printed).
    fn finish(&mut self, within: Duration) -> (i32, String) {
        let end = Instant::now() + within;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads hand over the last lines.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
                    self.seen.push(l);
                }
                return (status.code().unwrap_or(-1), self.seen.join("\n"));
            }
            if Instant::now() > end {
                panic!(
                    "bootctl still running after {within:?}; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Bootctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hook_server(fail_first: usize) -> (FakeServer, Arc<Mutex<Vec<Request>>>) {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let failures = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    let server = FakeServer::start(move |req| {
        if req.path == "/events" {
            return Reply::status(204);
        }
        log.lock().expect("log").push(req.clone());
        match req.path.as_str() {
            "/fail" => Reply::status(500),
            "/hook" if failures.fetch_add(1, Ordering::SeqCst) < fail_first => Reply::status(500),
            _ => Reply::json("{}"),
        }
    });
    (server, seen)
}

fn requests_to(seen: &Arc<Mutex<Vec<Request>>>, path: &str) -> Vec<Request> {
    seen.lock()
        .expect("log")
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

fn verify_signature(r: &Request) {
    let ts: u64 = r
        .header("x-bootd-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("timestamp header");
    let sig = r.header("x-bootd-signature").expect("signature header");
    assert!(
        Secret::new(SECRET.as_bytes()).verify(ts, &r.body, sig),
        "bad signature {sig}"
    );
}

#[test]
fn group_is_clustered_through_its_hook_after_two_failures() {
    let (server, seen) = hook_server(2);
    let macs = [
        "52:54:00:c1:00:01",
        "52:54:00:c1:00:02",
        "52:54:00:c1:00:03",
    ];
    let mut extra = format!(
        r#"[[upstream]]
name = "provider"
url = "{events}"
secret_file = "@DIR@/secret"

[profiles.inst]
script = "inst.ipxe"

[groups.pve]
profile = "inst"
on_complete = "{hook}"

[groups.broken]
profile = "inst"
on_complete = "{fail}"

[[nodes]]
mac = "52:54:00:c1:00:09"
group = "broken"
"#,
        events = server.url("/events"),
        hook = server.url("/hook"),
        fail = server.url("/fail"),
    );
    for m in macs {
        extra.push_str(&format!("\n[[nodes]]\nmac = \"{m}\"\ngroup = \"pve\"\n"));
    }
    let d = start(&extra);

    // Two of three running: no hook yet, the group says so.
    install(&d, macs[0], 1);
    install(&d, macs[1], 2);
    let (_, body) = d.curl(&[], "/api/v1/groups");
    let groups = json(&body);
    let pve = &groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "pve")
        .cloned()
        .expect("pve");
    assert_eq!(pve["state"], "in_progress", "{pve}");
    assert_eq!(pve["reason"], "2 of 3 running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(requests_to(&seen, "/hook").is_empty());

    // The third one completes the group; the hook fails twice, then clusters everyone.
    let t0 = Instant::now();
    install(&d, macs[2], 3);
    for m in macs {
        wait_phase(&d, m, "clustered", Duration::from_secs(20));
    }
    let took = t0.elapsed();
    let hooks = requests_to(&seen, "/hook");
    assert_eq!(hooks.len(), 3, "two failures and one success");
    let last = hooks.last().expect("hook");
    verify_signature(last);
    let body = json(&String::from_utf8_lossy(&last.body));
    assert_eq!(body["group"], "pve");
    let members: Vec<&str> = body["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["mac"].as_str())
        .collect();
    assert_eq!(members, macs);
    assert_eq!(
        body["nodes"][2]["hostname"], "node3",
        "registered facts are in the hook"
    );
    let clustered = last_row(&d, macs[0], "clustered");
    assert_eq!(
        (clustered["to"].as_str(), clustered["source"].as_str()),
        (Some("clustered"), Some("group"))
    );
    let (code, out, err) = d.bootctl(&["groups"]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("pve"))
        .expect("pve line");
    assert!(line.contains("clustered") && line.contains("3/3"), "{out}");
    eprintln!("group of 3: hook failed twice, clustered {took:?} after the last node ran");

    // A hook that never succeeds: the group shows hook_failed and why, nodes stay running.
    let lone = "52:54:00:c1:00:09";
    install(&d, lone, 9);
    let error = wait_for(Duration::from_secs(30), "broken group error", || {
        let (_, out, _) = d.bootctl(&["groups"]);
        out.lines()
            .any(|l| l.starts_with("broken") && l.contains("hook_failed"))
    });
    assert!(
        error.is_ok(),
        "{:?}\n{}",
        d.bootctl(&["groups"]),
        d.log_text()
    );
    let (_, out, _) = d.bootctl(&["--json", "groups"]);
    let v = json(&out);
    let broken = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == "broken")
        .cloned()
        .expect("broken");
    let reason = broken["reason"].as_str().unwrap_or("");
    assert!(reason.contains("HTTP 500 after 5 attempts"), "{reason}");
    assert_eq!(requests_to(&seen, "/fail").len(), 5);
    assert_eq!(phase(&d, lone), "running");
}

#[test]
fn an_installed_machine_registers_itself_with_its_facts() {
    let d = start("[profiles.inst]\nscript = \"inst.ipxe\"\n\n[[nodes]]\nmac = \"52:54:00:c2:00:01\"\nprofile = \"inst\"\n");
    let mac = "52:54:00:c2:00:01";
    let token = boot(&d, mac);
    assert_eq!(
        d.phase_callback(mac, &token, r#"{"phase":"installing","progress":70}"#)
            .0,
        200
    );
    // A wrong token changes nothing.
    assert_eq!(
        d.phase_callback(mac, "0000", r#"{"phase":"registered","ip":"10.1.1.1"}"#)
            .0,
        403
    );
    assert_eq!(phase(&d, mac), "installing");
    assert_eq!(
        d.phase_callback(
            mac,
            &token,
            r#"{"phase":"registered","ip":"10.9.9.7","hostname":"db7","message":"first boot"}"#
        )
        .0,
        200
    );
    let n = d.node_json(mac);
    assert_eq!(
        (n["phase"].as_str(), n["progress"].as_u64()),
        (Some("registered"), Some(88))
    );
    assert_eq!(
        (n["ip"].as_str(), n["hostname"].as_str()),
        (Some("10.9.9.7"), Some("db7"))
    );
    assert_eq!(
        d.phase_callback(mac, &token, r#"{"phase":"running","hostname":"db7.lab"}"#)
            .0,
        200
    );
    let n = d.node_json(mac);
    assert_eq!(
        (n["phase"].as_str(), n["hostname"].as_str()),
        (Some("running"), Some("db7.lab"))
    );
    assert_eq!(
        d.phase_callback(mac, &token, r#"{"phase":"running","ip":"10.1"}"#)
            .0,
        400
    );
}

#[test]
fn deadline_times_out_with_the_stuck_phase_across_a_restart() {
    let extra = "[profiles.quick]\nscript = \"inst.ipxe\"\ntimeout = \"3s\"\n\n\
        [[nodes]]\nmac = \"52:54:00:c3:00:01\"\nprofile = \"quick\"\n\n\
        [[nodes]]\nmac = \"52:54:00:c3:00:02\"\nprofile = \"quick\"\n\n\
        [[nodes]]\nmac = \"52:54:00:c3:00:03\"\nprofile = \"quick\"\n";
    let mut d = start(extra);
    let (a, b, c) = (
        "52:54:00:c3:00:01",
        "52:54:00:c3:00:02",
        "52:54:00:c3:00:03",
    );
    let t0 = Instant::now();
    let ta = boot(&d, a);
    assert_eq!(
        d.phase_callback(
            a,
            &ta,
            r#"{"phase":"installing","progress":40,"message":"partitioning"}"#
        )
        .0,
        200
    );
    // c finishes in time and is left alone.
    install(&d, c, 3);
    // b starts, then bootd restarts: its deadline still counts from its start.
    let tb = boot(&d, b);
    assert_eq!(
        d.phase_callback(b, &tb, r#"{"phase":"installing","progress":35}"#)
            .0,
        200
    );
    assert_eq!(d.stop(), Some(0));
    d.spawn(&[]);

    wait_phase(&d, a, "timeout", Duration::from_secs(15));
    let took = t0.elapsed();
    last_row(&d, a, "timeout");
    let n = d.node_json(a);
    let msg = n["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("stuck in installing for "), "{msg}");
    assert!(msg.contains("deadline 3s"), "{msg}");
    let last = n["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
        .expect("history");
    assert_eq!(
        (last["from"].as_str(), last["source"].as_str()),
        (Some("installing"), Some("deadline"))
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    wait_phase(&d, b, "timeout", Duration::from_secs(10));
    assert_eq!(phase(&d, c), "running");
    eprintln!("deadline 3s: timeout after {took:?} (scan every 2 s, one restart)");

    // The timeline shows each phase with the time spent in it.
    let (code, out, err) = d.bootctl(&["node", "show", a]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("timeline:") && out.contains("TIME IN PHASE"),
        "{out}"
    );
    // Timeline rows start with their time; the header fields above do not.
    let row = |p: &str| {
        out.lines()
            .filter(|l| l.starts_with("20"))
            .find(|l| l.split_whitespace().nth(1) == Some(p))
            .unwrap_or_else(|| panic!("no {p} row in\n{out}"))
            .to_string()
    };
    let installing = row("installing");
    let spent = installing.split_whitespace().nth(3).unwrap_or("");
    assert!(
        spent.ends_with('s') && spent.starts_with(|c: char| c.is_ascii_digit()),
        "{out}"
    );
    assert!(installing.contains("partitioning"), "{out}");
    assert!(
        row("timeout").contains("(now)") && row("timeout").contains("deadline"),
        "{out}"
    );
    let (_, out_c, _) = d.bootctl(&["node", "show", c]);
    assert!(out_c.contains("last deployment: "), "{out_c}");
    // --json is unchanged: the raw node with its history rows.
    let (_, raw, _) = d.bootctl(&["--json", "node", "show", a]);
    let v = json(&raw);
    assert!(
        v["history"]
            .as_array()
            .map(|h| h.len() >= 3)
            .unwrap_or(false),
        "{v}"
    );
}

#[test]
fn reprovision_wait_exits_0_when_all_run_and_1_when_one_times_out() {
    let (server, seen) = hook_server(0);
    let extra = format!(
        r#"[[upstream]]
name = "provider"
url = "{events}"
secret_file = "@DIR@/secret"

[profiles.inst]
script = "inst.ipxe"
power_cycle = "{cycle}"

[profiles.quick]
script = "inst.ipxe"
timeout = "3s"

[[nodes]]
mac = "52:54:00:c4:00:01"
profile = "inst"
hostname = "r1"
provider_id = "srv-1"

[[nodes]]
mac = "52:54:00:c4:00:02"
profile = "inst"
"#,
        events = server.url("/events"),
        cycle = server.url("/cycle"),
    );
    let d = start(&extra);
    let (a, b) = ("52:54:00:c4:00:01", "52:54:00:c4:00:02");
    let gen_before = boot(&d, a);
    install(&d, a, 1);

    // Both reach running: exit 0.
    let mut ctl = Bootctl::spawn(&d, &["reprovision", a, b, "--wait", "--timeout", "60s"]);
    for m in [a, b] {
        wait_phase(&d, m, "server_requested", Duration::from_secs(10));
    }
    let n = d.node_json(a);
    assert_eq!(
        (n["next_boot"].as_str(), n["progress"].as_u64()),
        (Some("inst"), Some(5))
    );
    let last = last_row(&d, a, "server_requested");
    assert!(
        last["source"]
            .as_str()
            .unwrap_or("")
            .starts_with("operator:"),
        "{last}"
    );
    // The old token is dead; the script carries the new one.
    assert_eq!(
        d.phase_callback(a, &gen_before, r#"{"phase":"installing"}"#)
            .0,
        403
    );
    install(&d, a, 1);
    install(&d, b, 2);
    let (code, out) = ctl.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 2 nodes running"), "{out}");
    assert!(out.contains("power cycle ok (HTTP 200)"), "{out}");
    let cycles = requests_to(&seen, "/cycle");
    assert_eq!(cycles.len(), 2);
    // The hooks run in parallel: find a's.
    let cycle = cycles
        .iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains(a))
        .expect("a's power cycle");
    verify_signature(cycle);
    let body = json(&String::from_utf8_lossy(&cycle.body));
    assert_eq!(
        (
            body["mac"].as_str(),
            body["hostname"].as_str(),
            body["provider_id"].as_str()
        ),
        (Some(a), Some("node1"), Some("srv-1"))
    );
    // After the one-shot install the machine boots from its disk.
    let n = d.node_json(a);
    assert_eq!(
        (n["next_boot"].as_str(), n["boot"].as_str()),
        (None, Some("local"))
    );

    // With the 3 s profile, b never boots: the deadline times it out, exit 1 with a table.
    let t0 = Instant::now();
    let mut ctl = Bootctl::spawn(&d, &["reprovision", a, b, "--profile", "quick", "--wait"]);
    wait_phase(&d, a, "server_requested", Duration::from_secs(10));
    install(&d, a, 1);
    let (code, out) = ctl.finish(Duration::from_secs(20));
    assert_eq!(code, 1, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(b))
        .unwrap_or_else(|| panic!("no row for {b}:\n{out}"));
    assert!(
        row.contains("timed out") && row.contains("stuck in server_requested"),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with(a) && l.contains("timed out")),
        "{out}"
    );
    assert!(out.contains("1 of 2 nodes did not reach running"), "{out}");
    eprintln!(
        "reprovision --wait with a 3 s deadline: exit 1 after {:?}",
        t0.elapsed()
    );

    // --json and the local per-node limit: one JSON object per line, a summary last.
    let mut ctl = Bootctl::spawn(
        &d,
        &["--json", "reprovision", b, "--wait", "--timeout", "2s"],
    );
    let (code, out) = ctl.finish(Duration::from_secs(15));
    assert_eq!(code, 1, "{out}");
    let objects: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json)
        .collect();
    assert!(objects.len() >= 2, "{out}");
    let summary = &objects.last().expect("summary")["summary"];
    assert_eq!(summary["unfinished"][0]["mac"], b, "{out}");
    assert_eq!(summary["unfinished"][0]["outcome"], "timed out");

    // Refusals: unknown node, unknown profile, nothing chosen (exit 1 or 2, no change).
    assert_eq!(d.bootctl(&["reprovision", "52:54:00:c4:00:99"]).0, 1);
    assert_eq!(d.bootctl(&["reprovision", a, "--profile", "nope"]).0, 1);
    assert_eq!(d.bootctl(&["reprovision"]).0, 2);
    // Admin only: the network listener refuses it.
    let (code, _) = d.curl(
        &["-X", "POST", "--data", "{\"all\":true}"],
        "/api/v1/reprovision",
    );
    assert_eq!(code, 403);
}

#[test]
fn watch_streams_events_live_and_survives_a_restart() {
    let mut d = start("");
    let mac = "52:54:00:c5:00:01";
    assert_eq!(d.bootctl(&["node", "add", mac, "--hostname", "w1"]).0, 0);
    let mut watch = Bootctl::spawn(&d, &["watch", mac]);
    // The stream is open once a change shows up.
    let mut i = 0;
    let connected = wait_for(Duration::from_secs(10), "watch connected", || {
        i += 1;
        let p = (30 + i).to_string();
        d.bootctl(&["phase", mac, "installing", "--progress", &p]);
        watch
            .lines
            .recv_timeout(Duration::from_millis(200))
            .map(|l| watch.seen.push(l))
            .is_ok()
    });
    assert!(connected.is_ok(), "{:?}", watch.seen);
    let t = Instant::now();
    assert_eq!(
        d.bootctl(&[
            "phase",
            mac,
            "installing",
            "--progress",
            "60",
            "--message",
            "live-one"
        ])
        .0,
        0
    );
    let line = watch.expect_line("live-one", Duration::from_secs(5));
    assert!(
        line.contains(mac) && line.contains("installing") && line.contains("60%"),
        "{line}"
    );
    eprintln!("watch: event shown {:?} after the change", t.elapsed());

    // The network listener serves the same stream (read route), filtered.
    let url = format!("http://{}/api/v1/events?mac={mac}", d.http);
    let auth = format!("Authorization: Bearer {}", d.viewer);
    let sse =
        std::thread::spawn(move || curl_url(&["-H", &auth, "-N", "-i", "--max-time", "3"], &url));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.bootctl(&["node", "add", "52:54:00:c5:00:02"]).0, 0);
    assert_eq!(d.bootctl(&["phase", "52:54:00:c5:00:02", "dhcp"]).0, 0);
    assert_eq!(
        d.bootctl(&[
            "phase",
            mac,
            "installing",
            "--progress",
            "61",
            "--message",
            "sse-one"
        ])
        .0,
        0
    );
    let (_, text) = sse.join().expect("curl thread");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    assert!(
        text.contains("data: {") && text.contains("sse-one"),
        "{text}"
    );
    assert!(
        !text.contains("52:54:00:c5:00:02"),
        "filtered by mac: {text}"
    );

    // bootd restarts: watch says so on stderr, reconnects and goes on.
    assert_eq!(d.stop(), Some(0));
    watch.expect_line("event stream lost", Duration::from_secs(5));
    d.spawn(&[]);
    let t = Instant::now();
    watch.expect_line("event stream back", Duration::from_secs(15));
    assert_eq!(
        d.bootctl(&[
            "phase",
            mac,
            "installing",
            "--progress",
            "70",
            "--message",
            "after-restart"
        ])
        .0,
        0
    );
    watch.expect_line("after-restart", Duration::from_secs(5));
    eprintln!(
        "watch: back on the stream {:?} after bootd restarted",
        t.elapsed()
    );
}
