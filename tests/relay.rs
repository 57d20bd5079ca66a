//! The upstream relay as a black box: a real bootd delivers phase events to a real HTTP
//! server that fails, throttles, hangs, vanishes and comes back; bootd is killed mid-way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::relay::Secret;
use common::daemon::{unix_request, Daemon};
use common::json;
use common::upstream::{FakeServer, Reply, Request};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "relay-test-secret";

/// What the fake provider saw.
#[derive(Default)]
struct Seen {
    /// Every request: (mac, seq, status answered; 0 = no answer).
    all: Vec<(String, u64, u16)>,
    /// Acknowledged (2xx) seqs per node, in arrival order.
    acked: BTreeMap<String, Vec<u64>>,
    /// Things that must never happen: bad signatures, out-of-order sends.
    violations: Vec<String>,
}

impl Seen {
    fn acked_count(&self) -> usize {
        self.acked.values().map(Vec::len).sum()
    }
}

/// Checks a delivery (signature, timestamp, order), records it, and answers `reply`.
fn record(seen: &Mutex<Seen>, req: &Request, reply: Reply) -> Reply {
    let mut s = seen.lock().expect("lock");
    let ts: u64 = req
        .header("x-bootd-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sig = req.header("x-bootd-signature").unwrap_or("");
    if !Secret::new(SECRET.as_bytes()).verify(ts, &req.body, sig) || now.abs_diff(ts) > 300 {
        s.violations.push(format!("bad signature {sig:?} at {ts}"));
    }
    let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mac = v["mac"].as_str().unwrap_or("?").to_string();
    let seq = v["seq"].as_u64().unwrap_or(0);
    if req.method != "POST" || req.path != "/events" {
        s.violations.push(format!(
            "{} {} is not the event endpoint",
            req.method, req.path
        ));
    }
    let max_acked = s
        .acked
        .get(&mac)
        .and_then(|a| a.iter().max().copied())
        .unwrap_or(0);
    if seq > max_acked + 1 {
        s.violations.push(format!(
            "{mac}: seq {seq} sent before {} was acknowledged",
            max_acked + 1
        ));
    }
    let code = match &reply {
        Reply::Answer(c, _, _) => *c,
        Reply::Hang(_) => 0,
    };
    s.all.push((mac.clone(), seq, code));
    if (200..300).contains(&code) {
        s.acked.entry(mac).or_default().push(seq);
    }
    reply
}

fn upstream_config(url: &str, secret: &Path) -> String {
    format!(
        "[[upstream]]\nname = \"provider\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n",
        secret.display()
    )
}

/// Sends `count` installing callbacks (as the operator) for each MAC; returns how many were acknowledged.
fn drive(d: &Daemon, macs: &[String], from: usize, count: usize) {
    for i in from..from + count {
        for mac in macs {
            let body = format!(
                r#"{{"phase":"installing","progress":{},"message":"step-{i}"}}"#,
                30 + i
            );
            let code = unix_request(
                &d.socket,
                "POST",
                &format!("/api/v1/nodes/{mac}/phase"),
                &body,
            );
            assert_eq!(code, Some(200), "phase change {i} of {mac}");
        }
    }
}

fn add_nodes(d: &Daemon, prefix: &str, n: usize) -> Vec<String> {
    let macs: Vec<String> = (0..n).map(|i| format!("{prefix}:{i:02x}")).collect();
    for m in &macs {
        let (code, _, err) = d.bootctl(&["node", "add", m]);
        assert_eq!(code, 0, "{err}");
    }
    macs
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn relay_json(d: &Daemon) -> Value {
    let (code, out, err) = d.bootctl(&["--json", "relay"]);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

fn upstream_counts(d: &Daemon) -> Value {
    relay_json(d)["upstreams"][0].clone()
}

#[test]
fn every_event_arrives_in_order_through_errors_throttling_hangs_and_an_outage() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let n = Arc::new(AtomicUsize::new(0));
    let (s2, n2) = (seen.clone(), n.clone());
    let mut provider = FakeServer::start(move |req| {
        let k = n2.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = match k {
            1..=3 => Reply::status(500),
            4 => Reply::Answer(429, vec![("retry-after".into(), "1".into())], String::new()),
            // Longer than bootd's 10 s request deadline.
            5 => Reply::Hang(Duration::from_secs(12)),
            k if k % 7 == 0 => Reply::status(503),
            _ => Reply::status(204),
        };
        record(&s2, req, reply)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("provider.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let d = Daemon::start_in(
        dir,
        &upstream_config(&provider.url("/events"), &secret),
        &[],
    );
    let macs = add_nodes(&d, "52:54:00:d1:00", 4);
    let per_node = 12;
    let started = Instant::now();
    drive(&d, &macs, 0, per_node / 2);
    // The provider disappears (connections refused) and comes back on the same port.
    std::thread::sleep(Duration::from_millis(500));
    provider.stop();
    drive(&d, &macs, per_node / 2, per_node / 2);
    std::thread::sleep(Duration::from_secs(3));
    provider.restart();

    let total = macs.len() * per_node;
    wait_for("every event acknowledged", Duration::from_secs(120), || {
        seen.lock().expect("lock").acked_count() >= total
    });
    let elapsed = started.elapsed();
    wait_for("the outbox to drain", Duration::from_secs(10), || {
        upstream_counts(&d)["pending"] == 0
    });
    let s = seen.lock().expect("lock");
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    for mac in &macs {
        let expected: Vec<u64> = (1..=per_node as u64).collect();
        assert_eq!(
            s.acked.get(mac),
            Some(&expected),
            "{mac}: each event once, in order"
        );
    }
    // Every repeat of an event followed a failed attempt of it.
    let mut tries: HashMap<(String, u64), Vec<u16>> = HashMap::new();
    for (mac, seq, code) in &s.all {
        tries.entry((mac.clone(), *seq)).or_default().push(*code);
    }
    for (key, codes) in &tries {
        let ok = codes.iter().filter(|c| (200..300).contains(*c)).count();
        assert_eq!(ok, 1, "{key:?}: {codes:?}");
        assert!(
            codes.last().is_some_and(|c| (200..300).contains(c)),
            "{key:?}: nothing after the acknowledgement: {codes:?}"
        );
    }
    let retries = s.all.len() - total;
    eprintln!(
        "{total} events to {} nodes delivered in {elapsed:?} with {retries} retried attempts ({} requests)",
        macs.len(),
        s.all.len()
    );
    drop(s);
    let c = upstream_counts(&d);
    assert_eq!(c["delivered"], total);
    assert_eq!(c["dead"], 0);
    assert_eq!(c["secret"], "ok");
    // The relay routes are for operators only.
    let (status, _) = d.curl(&[], "/api/v1/relay");
    assert_eq!(status, 403);
}

#[test]
fn kill9_in_the_middle_of_delivery_loses_nothing() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let provider = FakeServer::start(move |req| {
        // A slow provider, so the kill lands while deliveries are under way.
        std::thread::sleep(Duration::from_millis(100));
        record(&s2, req, Reply::status(200))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("provider.secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let mut d = Daemon::start_in(
        dir,
        &upstream_config(&provider.url("/events"), &secret),
        &[],
    );
    let macs = add_nodes(&d, "52:54:00:d2:00", 6);
    let per_node = 20;
    drive(&d, &macs, 0, per_node);
    // Let some land, then pull the plug while others are on the wire.
    wait_for("the first deliveries", Duration::from_secs(20), || {
        seen.lock().expect("lock").acked_count() >= 20
    });
    d.kill9();
    let total = macs.len() * per_node;
    let at_kill = seen.lock().expect("lock").acked_count();
    assert!(
        at_kill < total,
        "delivery had finished before the kill ({at_kill})"
    );
    d.spawn(&[]);
    wait_for(
        "every event acknowledged after restart",
        Duration::from_secs(60),
        || {
            let s = seen.lock().expect("lock");
            macs.iter().all(|m| {
                s.acked
                    .get(m)
                    .is_some_and(|a| (1..=per_node as u64).all(|q| a.contains(&q)))
            })
        },
    );
    let s = seen.lock().expect("lock");
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    let dups = s.acked_count() - total;
    eprintln!("acknowledged before kill -9: {at_kill}/{total}; after restart all {total}, {dups} sent twice");
    // Only events in flight at the kill may come twice (at most one per node and upstream).
    assert!(dups <= macs.len(), "{dups} duplicates");
}

#[test]
fn rejected_events_are_dead_lettered_without_blocking_the_node_and_can_be_retried() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let accept_all = Arc::new(AtomicBool::new(false));
    let (s2, a2) = (seen.clone(), accept_all.clone());
    let bad = "52:54:00:d3:00:00";
    let down = "52:54:00:d3:00:01";
    let provider = FakeServer::start(move |req| {
        let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let reply = if a2.load(Ordering::SeqCst) {
            Reply::status(202)
        } else if v["mac"] == bad && v["seq"] == 2 {
            Reply::Answer(400, Vec::new(), "{\"error\":\"bad event\"}".into())
        } else if v["mac"] == down {
            Reply::status(500)
        } else {
            Reply::status(200)
        };
        // Out-of-order checks do not apply once a dead letter is retried.
        let mut s = s2.lock().expect("lock");
        let mac = v["mac"].as_str().unwrap_or("?").to_string();
        let seq = v["seq"].as_u64().unwrap_or(0);
        if let Reply::Answer(code, _, _) = &reply {
            s.all.push((mac.clone(), seq, *code));
            if (200..300).contains(code) {
                s.acked.entry(mac).or_default().push(seq);
            }
        }
        reply
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("provider.secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let d = Daemon::start_in(
        dir,
        &upstream_config(&provider.url("/events"), &secret),
        &[],
    );
    for m in [bad, down] {
        assert_eq!(d.bootctl(&["node", "add", m]).0, 0);
    }
    drive(&d, &[bad.to_string()], 0, 3);
    drive(&d, &[down.to_string()], 0, 1);

    // Five rejections (backoff 1+2+4+8 s at most), then the node's seq 3 goes on.
    wait_for(
        "seq 3 after the dead letter",
        Duration::from_secs(40),
        || {
            seen.lock()
                .expect("lock")
                .acked
                .get(bad)
                .is_some_and(|a| a.contains(&3))
        },
    );
    let v = relay_json(&d);
    let dead = v["dead"].as_array().expect("dead list").clone();
    assert_eq!(dead.len(), 1, "{v}");
    assert_eq!(dead[0]["node"], bad);
    assert_eq!(dead[0]["seq"], 2);
    assert_eq!(dead[0]["attempts"], 5);
    assert_eq!(dead[0]["last_error"], "HTTP 400, rejected 5 times");
    assert!(d.log_text().contains("DEAD LETTER"), "loud log line");
    let failing = v["failing"].as_array().expect("failing list").clone();
    let stuck = failing
        .iter()
        .find(|r| r["node"] == down)
        .unwrap_or_else(|| panic!("failing row of {down}: {v}"));
    assert_eq!(stuck["last_error"], "HTTP 500");
    assert!(stuck["next_attempt"].is_string());
    let (code, text, _) = d.bootctl(&["relay"]);
    assert_eq!(code, 0);
    for want in [
        "provider",
        "dead letters",
        "HTTP 400, rejected 5 times",
        "HTTP 500",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    // Drop the failing one; retry the dead one once the provider accepts it.
    let id = stuck["id"].as_i64().expect("id").to_string();
    let (code, out, err) = d.bootctl(&["relay", "drop", "--id", &id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dropped {id}"));
    assert_eq!(d.bootctl(&["relay", "drop", "--id", &id]).0, 1, "gone");
    assert_eq!(d.bootctl(&["relay", "retry", "--id", "999999"]).0, 1);
    accept_all.store(true, Ordering::SeqCst);
    let (code, out, err) = d.bootctl(&["relay", "retry", "--all-dead"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "retried 1");
    wait_for("the retried dead letter", Duration::from_secs(10), || {
        seen.lock()
            .expect("lock")
            .acked
            .get(bad)
            .is_some_and(|a| a.contains(&2))
    });
    wait_for("an empty backlog", Duration::from_secs(10), || {
        let c = upstream_counts(&d);
        c["pending"] == 0 && c["dead"] == 0
    });
}

#[test]
fn a_missing_secret_holds_events_until_it_is_there() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let provider = FakeServer::start(move |req| record(&s2, req, Reply::status(200)));
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("later.secret");
    let d = Daemon::start_in(
        dir,
        &upstream_config(&provider.url("/events"), &secret),
        &[],
    );
    let macs = add_nodes(&d, "52:54:00:d4:00", 1);
    drive(&d, &macs, 0, 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        seen.lock().expect("lock").all.len(),
        0,
        "nothing unsigned went out"
    );
    let log = d.log_text();
    assert!(
        log.contains("on hold") && log.contains("later.secret"),
        "clear log line:\n{log}"
    );
    let c = upstream_counts(&d);
    assert_eq!(c["pending"], 2);
    assert!(
        c["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("error:")),
        "{c}"
    );
    std::fs::write(&secret, SECRET).expect("secret");
    let (code, _, err) = d.bootctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    wait_for("the held events", Duration::from_secs(10), || {
        seen.lock().expect("lock").acked_count() == 2
    });
    let s = seen.lock().expect("lock");
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}
