//! The daemon as a black box: config checks, restarts, kill -9 durability, the control
//! socket's access rules, reload by SIGHUP, sd-notify and bootctl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::{bin, unix_request, Daemon};
use common::json;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn shipped_config_checks_ok_and_errors_name_their_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(bin("bootd"))
        .args(["check-config", "--config"])
        .arg(root.join("config/bootd.toml"))
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok ({})", root.join("config/bootd.toml").display()),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(0));

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nhttp_listen = \"nowhere\"\n\n[[nodes]]\nmac = \"52:54:00:zz:00:01\"\n\n[boot]\ncolour = \"blue\"\n",
    )
    .expect("write");
    let out = Command::new(bin("bootd"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    // All three errors, each with its file:line:col.
    assert!(err.contains(&format!("{file}:2:15")), "{err}");
    assert!(err.contains(&format!("{file}:5:7")), "{err}");
    assert!(err.contains(&format!("{file}:8:1")), "{err}");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn runtime_nodes_survive_a_restart() {
    let mut d = Daemon::start("");
    let (code, _, err) = d.bootctl(&["node", "add", "52-54-00-AA-00-01", "--hostname", "web1"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.bootctl(&[
        "phase",
        "52:54:00:aa:00:01",
        "installing",
        "--progress",
        "40",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d.stop(), Some(0), "clean exit on SIGTERM");
    d.spawn(&[]);
    let (code, out, _) = d.bootctl(&["--json", "node", "show", "5254.00aa.0001"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["hostname"], "web1");
    assert_eq!(v["phase"], "installing");
    assert_eq!(v["progress"], 40);
    assert_eq!(v["history"].as_array().map(Vec::len), Some(1));
}

#[test]
fn kill9_during_acknowledged_changes_loses_nothing() {
    let mut d = Daemon::start("");
    let macs: Vec<String> = (0..8).map(|i| format!("52:54:00:bb:00:{i:02x}")).collect();
    for m in &macs {
        assert_eq!(d.bootctl(&["node", "add", m]).0, 0);
    }
    let socket = d.socket.clone();
    let acked_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = macs
        .iter()
        .cloned()
        .map(|mac| {
            let socket = socket.clone();
            let acked_so_far = acked_so_far.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..125 {
                    let body = format!(
                        r#"{{"phase":"installing","progress":{},"message":"change-{i}"}}"#,
                        30 + i % 50
                    );
                    match unix_request(
                        &socket,
                        "POST",
                        &format!("/api/v1/nodes/{mac}/phase"),
                        &body,
                    ) {
                        Some(200) => {
                            acked.push(i);
                            acked_so_far.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        _ => break,
                    }
                }
                (mac, acked)
            })
        })
        .collect();
    // Let a couple of hundred land, then pull the plug while the rest are in flight.
    let start = Instant::now();
    while acked_so_far.load(std::sync::atomic::Ordering::SeqCst) < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "changes are not being acknowledged"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    d.kill9();
    let results: Vec<(String, Vec<usize>)> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let total: usize = results.iter().map(|(_, a)| a.len()).sum();
    assert!(total > 0, "no change was acknowledged before the kill");
    assert!(
        total < 1000,
        "the kill came after every change was already acknowledged"
    );
    d.spawn(&[]);
    for (mac, acked) in &results {
        let (code, out, _) = d.bootctl(&["--json", "node", "show", mac]);
        assert_eq!(code, 0);
        let v = json(&out);
        let messages: Vec<String> = v["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| h["message"].as_str().unwrap_or("").to_string())
            .collect();
        for i in acked {
            assert!(
                messages.contains(&format!("change-{i}")),
                "{mac}: acknowledged change-{i} lost"
            );
        }
    }
    eprintln!("acknowledged before kill -9: {total} changes; all present after restart");
    d.stop();
    let out = Command::new("sqlite3")
        .arg(d.state().join("bootd.db"))
        .arg("PRAGMA integrity_check")
        .output()
        .expect("sqlite3 (apt package sqlite3)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn control_socket_refuses_nobody_and_logs_mutations_with_uid() {
    let d = Daemon::start("");
    // nobody must be able to reach the socket file for the uid check to be what refuses it.
    for p in [d.dir.path(), &d.state()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let as_nobody = |mode: u32| {
        std::fs::set_permissions(
            &d.socket,
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .expect("chmod");
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(bin("bootctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["node", "add", "52:54:00:cc:00:01"])
            .output()
            .expect("setpriv")
    };
    // Mode 0660: the kernel refuses the connect.
    let out = as_nobody(0o660);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    // Even with the file opened up, SO_PEERCRED refuses uid nobody.
    let out = as_nobody(0o666);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not use the bootd control socket"),
        "{out:?}"
    );
    assert_eq!(
        d.bootctl(&["--json", "nodes"])
            .1
            .matches("52:54:00:cc:00:01")
            .count(),
        0
    );
    // Root may; the mutation is logged with its uid.
    assert_eq!(d.bootctl(&["node", "add", "52:54:00:cc:00:01"]).0, 0);
    let log = d.log_text();
    assert!(log.contains("peer refused"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("node added") && l.contains("operator:0")),
        "{log}"
    );
}

#[test]
fn sighup_keeps_old_config_when_broken_and_takes_a_good_one() {
    let d = Daemon::start("[[nodes]]\nmac = \"52:54:00:dd:00:01\"\nhostname = \"first\"\n");
    let original = std::fs::read_to_string(&d.config).expect("read");
    std::fs::write(
        &d.config,
        format!("{original}\n[[nodes]]\nmac = \"not-a-mac\"\n"),
    )
    .expect("write");
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = d.curl(&[], "/api/v1/nodes");
    assert_eq!(code, 200, "still serving");
    assert!(body.contains("first"));
    assert!(d.log_text().contains("reload refused"), "{}", d.log_text());

    std::fs::write(
        &d.config,
        format!("{original}\n[[nodes]]\nmac = \"52:54:00:dd:00:02\"\nhostname = \"second\"\n"),
    )
    .expect("write");
    d.signal("HUP");
    let start = Instant::now();
    loop {
        let (_, body) = d.curl(&[], "/api/v1/nodes");
        if body.contains("second") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "new node never appeared: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same through bootctl reload, with a broken file: refused, exit 1.
    std::fs::write(&d.config, "[server\n").expect("write");
    let (code, _, err) = d.bootctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("bootd.toml:1:"), "{err}");
}

#[test]
fn sd_notify_ready_status_and_watchdog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let sock_str = sock_path.display().to_string();
    let d = Daemon::start_in(
        dir,
        "",
        &[
            ("NOTIFY_SOCKET", sock_str.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(10)
        && !(seen.contains("READY=1") && seen.contains("STATUS=") && seen.contains("WATCHDOG=1"))
    {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(seen.contains("STATUS="), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    drop(d);
}

#[test]
fn bootctl_tables_json_and_exit_codes() {
    let d = Daemon::start("");
    let (code, out, _) = d.bootctl(&[
        "node",
        "add",
        "52:54:00:ee:00:01",
        "--hostname",
        "db1",
        "--ip",
        "10.0.0.9",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("added 52:54:00:ee:00:01"), "{out}");
    let (code, out, _) = d.bootctl(&["nodes"]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.starts_with("MAC") && header.contains("PHASE"),
        "{out}"
    );
    assert!(
        out.contains("db1") && out.contains("10.0.0.9") && out.contains("known"),
        "{out}"
    );
    let (code, out, _) = d.bootctl(&["--json", "nodes"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["nodes"][0]["hostname"], "db1");
    let (code, out, _) = d.bootctl(&["--json", "status"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["nodes"], 1);
    // A refused request is exit 1 with the daemon's reason; bad usage is exit 2.
    let (code, _, err) = d.bootctl(&["node", "add", "52:54:00:ee:00:01"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = d.bootctl(&["phase", "52:54:00:ee:00:01", "flying"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown phase"), "{err}");
    let (code, _, _) = d.bootctl(&["node", "frobnicate"]);
    assert_eq!(code, 2);
    assert_eq!(d.bootctl(&["node", "rm", "52:54:00:ee:00:01"]).0, 0);
    // Daemon down: a clear message, exit 1.
    let out = Command::new(bin("bootctl"))
        .args(["--socket", "/nonexistent/bootd.sock", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn api_rejects_bad_macs_and_bad_tokens() {
    let d = Daemon::start("");
    assert_eq!(d.bootctl(&["node", "add", "52:54:00:ff:00:01"]).0, 0);
    let (code, body) = d.curl(&[], "/api/v1/nodes/52:54:00:ff:00");
    assert_eq!(code, 400);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap_or("")
        .contains("invalid MAC"));
    for spelling in [
        "52-54-00-FF-00-01",
        "5254.00ff.0001",
        "52%3A54%3A00%3Aff%3A00%3A01",
    ] {
        let (code, _) = d.curl(&[], &format!("/api/v1/nodes/{spelling}"));
        assert_eq!(code, 200, "{spelling}");
    }
    let (code, _) = d.curl(
        &[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer nope",
            "-d",
            r#"{"phase":"installing"}"#,
        ],
        "/api/v1/nodes/52:54:00:ff:00:01/phase",
    );
    assert_eq!(code, 403);
    // Admin routes are not on the network listener.
    let (code, _) = d.curl(&["-X", "DELETE"], "/api/v1/nodes/52:54:00:ff:00:01");
    assert_eq!(code, 403);
    let (_, body) = d.curl(&[], "/api/v1/nodes/52:54:00:ff:00:01");
    assert_eq!(json(&body)["phase"], "known", "nothing changed");
    let (code, body) = d.curl(&[], "/healthz");
    assert_eq!((code, json(&body)["status"].as_str()), (200, Some("ok")));
    let (code, body) = d.curl(&[], "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("bootd_nodes{phase=\"known\"} 1"), "{body}");
    assert!(
        body.contains("bootd_process_resident_memory_bytes"),
        "{body}"
    );
}

/// Under systemd (stderr is the journal stream) every line goes to the journal's native
/// socket with MAC=, NODE= and PHASE= as fields of their own, and nothing to stderr.
#[test]
fn journal_entries_carry_mac_node_and_phase_fields() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("bootd.log");
    std::fs::write(&log, "").expect("log file");
    let meta = std::fs::metadata(&log).expect("stat log");
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let journal_path = dir.path().join("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).expect("bind journal socket");
    // Drained from the start, as journald would: the daemon logs before the test reads.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = journal.recv(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let journal_env = journal_path.display().to_string();
    let mac = "52:54:00:dd:0e:01";
    let d = Daemon::start_in(
        dir,
        &format!("[[nodes]]\nmac = \"{mac}\"\nhostname = \"web-7\"\n"),
        &[
            ("JOURNAL_STREAM", stream.as_str()),
            ("BOOTD_JOURNAL_SOCKET", journal_env.as_str()),
        ],
    );
    let (code, _, err) = d.bootctl(&["phase", mac, "installing", "--message", "two\nlines"]);
    assert_eq!(code, 0, "{err}");

    let mut entries = Vec::new();
    let (buf, found) = loop {
        let raw = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(raw) => raw,
            Err(e) => panic!("no phase entry in the journal ({e}); got:\n{entries:#?}"),
        };
        let entry = String::from_utf8_lossy(&raw).into_owned();
        // The registry's "phase" entry (the control handler logs the override too).
        if entry.contains("\nPHASE=installing\n") && entry.contains("\nFROM=") {
            break (raw, entry);
        }
        entries.push(entry);
    };
    for field in [
        format!("MAC={mac}"),
        "NODE=web-7".to_string(),
        "PHASE=installing".to_string(),
        "PRIORITY=6".to_string(),
        "SYSLOG_IDENTIFIER=bootd".to_string(),
    ] {
        assert!(
            found.lines().any(|l| l == field),
            "{field} missing in {found:?}"
        );
    }
    // The operator's two-line message travels in the length-prefixed binary form.
    let mut detail = b"DETAIL\n".to_vec();
    detail.extend_from_slice(&9u64.to_le_bytes());
    detail.extend_from_slice(b"two\nlines\n");
    assert!(
        buf.windows(detail.len()).any(|w| w == detail.as_slice()),
        "multi-line field not length-prefixed: {found:?}"
    );
    assert!(
        !d.log_text().contains("PHASE") && !d.log_text().contains("installing"),
        "journal entries also went to stderr: {}",
        d.log_text()
    );
}
