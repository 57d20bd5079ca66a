//! The health monitor as a black box: a real bootd polls a real /status server that
//! flips between healthy, failing and provider-stopped; phases follow within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::Daemon;
use common::json;
use common::upstream::{FakeServer, Reply};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a fake machine answers its health check, and what its provider says.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Machine {
    Healthy,
    Failing,
    /// Health fails and the provider reports it powered off.
    PoweredOff,
}

fn node(d: &Daemon, mac: &str) -> Value {
    let (code, out, err) = d.bootctl(&["--json", "node", "show", mac]);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

/// Waits until `mac` is in `phase`; returns how long it took.
fn wait_phase(d: &Daemon, mac: &str, phase: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let v = node(d, mac);
        if v["phase"] == phase {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{mac} not {phase} after {limit:?}: {v}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set(machines: &Mutex<HashMap<String, Machine>>, id: &str, m: Machine) {
    machines.lock().expect("lock").insert(id.to_string(), m);
}

#[test]
fn failing_nodes_turn_unhealthy_or_stopped_and_recover() {
    let machines: Arc<Mutex<HashMap<String, Machine>>> = Arc::default();
    let m2 = machines.clone();
    let server = FakeServer::start(move |req| {
        let state = |id: &str| {
            m2.lock()
                .expect("lock")
                .get(id)
                .copied()
                .unwrap_or(Machine::Healthy)
        };
        if let Some(id) = req.path.strip_prefix("/health/") {
            return match state(id) {
                Machine::Healthy => Reply::json("{\"ok\":true}"),
                Machine::Failing | Machine::PoweredOff => Reply::status(503),
            };
        }
        if let Some(id) = req.path.strip_prefix("/servers/") {
            return match state(id) {
                Machine::PoweredOff => Reply::json("{\"id\":\"x\",\"state\":\"powered_off\"}"),
                _ => Reply::json("{\"state\":\"running\"}"),
            };
        }
        Reply::status(204) // relay events
    });
    // A port nobody listens on: connection refused.
    let closed = common::free_tcp_port();
    let extra = format!(
        "[health]\ninterval = \"1s\"\nunhealthy_after = \"3s\"\n\n\
         [[upstream]]\nname = \"cloud\"\nurl = \"{}\"\nstatus_url = \"{}\"\n",
        server.url("/events"),
        server.url("/servers/{provider_id}")
    );
    let d = Daemon::start(&extra);
    let nodes = [
        ("52:54:00:e1:00:01", "srv-a"),
        ("52:54:00:e1:00:02", "srv-b"),
        ("52:54:00:e1:00:03", "srv-c"),
    ];
    for (mac, id) in nodes {
        let url = if id == "srv-c" {
            format!("http://127.0.0.1:{closed}/status")
        } else {
            server.url(&format!("/health/{id}"))
        };
        let (code, _, err) = d.bootctl(&[
            "node",
            "add",
            mac,
            "--health-url",
            &url,
            "--provider-id",
            id,
        ]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = d.bootctl(&["phase", mac, "health_validation"]);
        assert_eq!(code, 0, "{err}");
    }
    let (a, b, c) = (nodes[0].0, nodes[1].0, nodes[2].0);

    // health_validation → running after the first passing check.
    for mac in [a, b] {
        let t = wait_phase(&d, mac, "running", Duration::from_secs(10));
        eprintln!("{mac}: health_validation → running in {t:?}");
    }
    // A node whose health port refuses connections never passes.
    let t = wait_phase(&d, c, "unhealthy", Duration::from_secs(60));
    let msg = node(&d, c)["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("refused"), "{msg}");
    eprintln!("{c}: unhealthy in {t:?} ({msg})");

    // A starts failing: unhealthy within 60 s (here: unhealthy_after 3 s + one interval).
    set(&machines, "srv-a", Machine::Failing);
    let t = wait_phase(&d, a, "unhealthy", Duration::from_secs(60));
    let v = node(&d, a);
    let msg = v["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("HTTP 503") && msg.contains("/health/srv-a"),
        "{msg}"
    );
    let last = v["history"].as_array().and_then(|h| h.last()).cloned();
    assert_eq!(
        last.map(|h| h["source"].clone()),
        Some(Value::from("health"))
    );
    assert!(t < Duration::from_secs(30), "unhealthy after {t:?}");
    eprintln!("{a}: running → unhealthy {t:?} after the failure ({msg})");

    // B is switched off at the provider: stopped, never unhealthy.
    set(&machines, "srv-b", Machine::PoweredOff);
    let t = wait_phase(&d, b, "stopped", Duration::from_secs(60));
    let v = node(&d, b);
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("powered_off")),
        "{v}"
    );
    let phases: Vec<&str> = v["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["to"].as_str()).collect())
        .unwrap_or_default();
    assert!(!phases.contains(&"unhealthy"), "{phases:?}");
    eprintln!("{b}: running → stopped {t:?} after power-off");

    // A while unhealthy is powered off too: unhealthy → stopped.
    set(&machines, "srv-a", Machine::PoweredOff);
    wait_phase(&d, a, "stopped", Duration::from_secs(20));

    // Both come back: → running.
    set(&machines, "srv-a", Machine::Healthy);
    set(&machines, "srv-b", Machine::Healthy);
    for mac in [a, b] {
        let t = wait_phase(&d, mac, "running", Duration::from_secs(10));
        eprintln!("{mac}: stopped → running {t:?} after recovery");
    }
    // Recovery from unhealthy: fail A again, then heal it.
    set(&machines, "srv-a", Machine::Failing);
    wait_phase(&d, a, "unhealthy", Duration::from_secs(60));
    set(&machines, "srv-a", Machine::Healthy);
    let t = wait_phase(&d, a, "running", Duration::from_secs(10));
    eprintln!("{a}: unhealthy → running {t:?} after recovery");
    let last = node(&d, a)["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(last["from"], "unhealthy");
    assert_eq!(last["source"], "health");
}

#[test]
fn polls_of_many_nodes_are_spread_over_the_interval() {
    let hits: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let h2 = hits.clone();
    let server = FakeServer::start(move |_| {
        h2.lock().expect("lock").push(Instant::now());
        Reply::status(200)
    });
    let d = Daemon::start("[health]\ninterval = \"4s\"\nunhealthy_after = \"8s\"\n");
    let n = 40;
    for i in 0..n {
        let mac = format!("52:54:00:e2:00:{i:02x}");
        let url = server.url(&format!("/health/{i}"));
        assert_eq!(d.bootctl(&["node", "add", &mac, "--health-url", &url]).0, 0);
        assert_eq!(d.bootctl(&["phase", &mac, "running"]).0, 0);
    }
    // Two full intervals after every node is watched.
    std::thread::sleep(Duration::from_secs(2));
    hits.lock().expect("lock").clear();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let hits = hits.lock().expect("lock").clone();
    // Each node about twice in two intervals (wide bounds: CI machines are loaded).
    assert!(
        hits.len() >= n && hits.len() <= n * 3,
        "{} polls",
        hits.len()
    );
    // No half-second bucket holds more than a third of all nodes.
    let mut buckets: HashMap<u128, usize> = HashMap::new();
    for h in &hits {
        *buckets
            .entry(h.saturating_duration_since(start).as_millis() / 500)
            .or_default() += 1;
    }
    let max = buckets.values().copied().max().unwrap_or(0);
    eprintln!(
        "{} polls of {n} nodes over 8 s; busiest 0.5 s: {max}",
        hits.len()
    );
    assert!(max <= n / 3, "burst of {max} polls in 0.5 s: {buckets:?}");
}
