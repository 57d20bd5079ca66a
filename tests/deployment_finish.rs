//! A deployment finishes by itself: a real bootd on loopback, a node that posts only
//! `registered` with its IP, an SSH-banner listener its profile's `ready` check finds,
//! a group hook on a real HTTP server (failing once, reporting progress), then health
//! failures and recovery back to `clustered`, and a provider that says powered off.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::{curl_url, Daemon};
use common::json;
use common::upstream::{FakeServer, Reply};
use common::util::wait_for;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCRIPT: &str = "#!ipxe\n# token {{ token }}\necho {{ profile }}\n";
const MAC: &str = "52:54:00:f1:00:01";
const EARLY: &str = "52:54:00:f1:00:02";

/// What the fake provider and the fake machine say.
#[derive(Default)]
struct World {
    healthy: AtomicBool,
    powered_off: AtomicBool,
    /// The state the provider reports for the early node.
    early_state: Mutex<String>,
    hook_calls: AtomicUsize,
    /// (status of the progress report, groups seen while forming) from the hook.
    during_hook: Mutex<Option<(u16, String)>>,
}

fn start(extra: &str) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("state/templates");
    std::fs::create_dir_all(&templates).expect("templates dir");
    std::fs::write(templates.join("inst.ipxe"), SCRIPT).expect("template");
    Daemon::start_in(dir, extra, &[])
}

fn wait_phase(d: &Daemon, mac: &str, want: &str, within: Duration) -> Duration {
    let t = Instant::now();
    if wait_for(within, want, || d.node_json(mac)["phase"] == want).is_err() {
        panic!(
            "{mac} did not reach {want} within {within:?}: {}\nlog:\n{}",
            d.node_json(mac),
            d.log_text()
        );
    }
    t.elapsed()
}

/// A port that answers every connection with an SSH identification line.
fn ssh_banner() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"SSH-2.0-bootd_test\r\n");
        }
    });
    port
}

#[test]
fn a_registered_node_becomes_ready_running_clustered_and_is_watched() {
    let world = Arc::new(World::default());
    world.healthy.store(true, Ordering::SeqCst);
    *world.early_state.lock().unwrap() = "provisioning".into();
    let w = world.clone();
    let server = FakeServer::start(move |req| {
        match req.path.as_str() {
            "/health/a" if w.healthy.load(Ordering::SeqCst) => return Reply::json("{}"),
            "/health/a" => return Reply::status(503),
            "/servers/srv-a" if w.powered_off.load(Ordering::SeqCst) => {
                return Reply::json(r#"{"state":"powered_off"}"#)
            }
            "/servers/srv-a" => return Reply::json(r#"{"state":"running"}"#),
            "/servers/srv-b" => {
                let s = w.early_state.lock().unwrap().clone();
                return Reply::json(&format!(r#"{{"status":"{s}"}}"#));
            }
            "/hook" => {}
            _ => return Reply::status(204), // relay events
        }
        if w.hook_calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::status(503);
        }
        // The hook reports progress, and sees its group forming, before it answers.
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let url = body["progress_url"].as_str().unwrap().to_string();
        let auth = format!(
            "Authorization: Bearer {}",
            body["progress_token"].as_str().unwrap()
        );
        let (code, _) = curl_url(
            &[
                "-X",
                "POST",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data",
                r#"{"progress":90,"message":"etcd up"}"#,
            ],
            &url,
        );
        let groups = url.trim_end_matches("/g/progress").to_string();
        let (_, seen) = curl_url(&[], &groups);
        *w.during_hook.lock().unwrap() = Some((code, seen));
        Reply::json("{}")
    });
    let ssh = ssh_banner();
    // The hook reads the group list over TCP while it forms the cluster: open reads here
    // (tests/auth_routes.rs covers tokens).
    let extra = format!(
        r#"[http]
read_public = true

[health]
interval = "1s"
unhealthy_after = "2s"
ready_interval = "1s"
ready_timeout = "1s"

[[upstream]]
name = "cloud"
url = "{events}"
status_url = "{status}"

[profiles.inst]
script = "inst.ipxe"
ready = [ {{ ssh = {ssh} }} ]

[groups.g]
profile = "inst"
on_complete = "{hook}"

[[nodes]]
mac = "{MAC}"
group = "g"
provider_id = "srv-a"
health_url = "{health}"

[[nodes]]
mac = "{EARLY}"
profile = "inst"
provider_id = "srv-b"
"#,
        events = server.url("/events"),
        status = server.url("/servers/{provider_id}"),
        hook = server.url("/hook"),
        health = server.url("/health/a"),
    );
    let d = start(&extra);

    // The machine boots and says only `registered` with its IP.
    let (code, body) = d.curl(&[], &format!("/boot/{MAC}.ipxe"));
    assert_eq!(code, 200, "{body}");
    let token = body
        .lines()
        .find_map(|l| l.strip_prefix("# token "))
        .expect("token")
        .to_string();
    assert_eq!(
        d.phase_callback(MAC, &token, r#"{"phase":"registered","ip":"127.0.0.1"}"#)
            .0,
        200
    );
    wait_phase(&d, MAC, "clustered", Duration::from_secs(30));
    let v = d.node_json(MAC);
    let history = v["history"].as_array().unwrap();
    let moves: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h["to"].as_str().unwrap(), h["source"].as_str().unwrap()))
        .collect();
    let at = |to: &str| moves.iter().position(|m| m.0 == to).unwrap_or(usize::MAX);
    assert!(
        at("registered") < at("health_validation")
            && at("health_validation") < at("running")
            && at("running") < at("clustered"),
        "{moves:?}"
    );
    let ready_row = history
        .iter()
        .find(|h| h["to"] == "health_validation")
        .unwrap();
    assert_eq!(ready_row["source"], "ready");
    let msg = ready_row["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("ssh 127.0.0.1:{ssh}")) && msg.contains("SSH-2.0-bootd_test"),
        "{msg}"
    );
    assert_eq!(v["health"], "healthy");
    assert_eq!(
        world.hook_calls.load(Ordering::SeqCst),
        2,
        "failed once, then 2xx"
    );
    let (code, seen) = world.during_hook.lock().unwrap().clone().expect("hook ran");
    assert_eq!(code, 200, "progress report accepted");
    let seen = json(&seen);
    let g = &seen["groups"][0];
    assert_eq!(g["state"], "forming", "{seen}");
    assert_eq!(g["progress"], 90, "{seen}");
    let (_, groups) = d.curl(&[], "/api/v1/groups");
    let groups = json(&groups);
    assert_eq!(groups["groups"][0]["state"], "clustered", "{groups}");
    assert_eq!(groups["groups"][0]["progress"], 100, "{groups}");

    // The metrics have the seed series.
    let (_, metrics) = d.curl(&[], "/metrics");
    for series in [
        "bootd_boot_success_ratio{profile=\"inst\"}",
        "bootd_deployment_seconds_count{profile=\"inst\"} 1",
        "bootd_health_last_round_timestamp_seconds",
        "bootd_health_nodes_checked",
        "bootd_dhcp_leases_active 0",
        "bootd_relay_backlog",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    // Health fails: unhealthy within unhealthy_after + 2 intervals, back to clustered.
    world.healthy.store(false, Ordering::SeqCst);
    let t = wait_phase(&d, MAC, "unhealthy", Duration::from_secs(10));
    assert!(t <= Duration::from_secs(5), "unhealthy after {t:?}");
    let v = d.node_json(MAC);
    assert_eq!(v["health"], "unhealthy");
    assert!(
        v["error_message"].as_str().unwrap_or("").contains("503"),
        "{v}"
    );
    world.healthy.store(true, Ordering::SeqCst);
    wait_phase(&d, MAC, "clustered", Duration::from_secs(10));

    // The provider says powered off: stopped, not unhealthy.
    world.powered_off.store(true, Ordering::SeqCst);
    world.healthy.store(false, Ordering::SeqCst);
    wait_phase(&d, MAC, "stopped", Duration::from_secs(15));
    assert_eq!(d.node_json(MAC)["health"], "stopped");

    // The early node follows its provider: provisioning → pending, powering_on → starting.
    let (code, _, err) = d.bootctl(&["phase", EARLY, "server_requested"]);
    assert_eq!(code, 0, "{err}");
    wait_phase(&d, EARLY, "pending", Duration::from_secs(10));
    *world.early_state.lock().unwrap() = "powering_on".into();
    wait_phase(&d, EARLY, "starting", Duration::from_secs(10));
    let v = d.node_json(EARLY);
    let last = v["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["source"], "provider", "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("powering_on"),
        "{last}"
    );
}
