//! What an operator hits in the first hour (issue 21), CLI side: the real `bootctl` over
//! the real control socket of a real daemon — reloads that would move a listener, the
//! relay backlog in `status`, `watch` of something unknown, and the smaller CLI edges.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::Daemon;
use common::json::json;
use common::ports::free_tcp_port;

/// A boot script that shows the URL it was rendered with.
const SCRIPT: &str = "#!ipxe\nchain {{ base_url }}/next\n";

/// A node with a profile whose script shows the public URL.
const NODE: &str = r#"
[profiles.demo]
script = "inst.ipxe"

[[nodes]]
mac = "52:54:00:21:02:01"
hostname = "n1"
profile = "demo"
"#;

/// Starts bootd with `inst.ipxe` in its templates dir and `extra` in its config.
fn start(extra: &str) -> Daemon {
    Daemon::start_with_templates(extra, &[("inst.ipxe", SCRIPT)])
}

#[test]
fn a_reload_that_moves_the_http_listener_is_refused_and_nothing_changes() {
    let d = start(NODE);
    let old = d.http.to_string();
    let new = format!("127.0.0.1:{}", free_tcp_port());
    let (code, script) = d.curl(&[], "/boot/52:54:00:21:02:01.ipxe");
    assert_eq!(code, 200, "{script}");
    assert!(script.contains(&format!("http://{old}/next")), "{script}");

    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace(&old, &new)).unwrap();
    let (rc, out, err) = d.bootctl(&["reload"]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(&format!(
            "restart needed for server.http_listen ({old} → {new})"
        )),
        "{err}"
    );

    // The old port still answers, status and the scripts still say the old address.
    let (code, script) = d.curl(&[], "/boot/52:54:00:21:02:01.ipxe");
    assert_eq!(code, 200, "{script}");
    assert!(script.contains(&format!("http://{old}/next")), "{script}");
    let (rc, out, err) = d.bootctl(&["--json", "status"]);
    assert_eq!(rc, 0, "{err}");
    let status = json(&out);
    assert_eq!(status["http_listen"], old.as_str(), "{status}");
    assert_eq!(status["public_url"], format!("http://{old}"), "{status}");
    assert!(
        std::net::TcpStream::connect(new.as_str()).is_err(),
        "nothing listens on {new}"
    );

    // SIGHUP takes the same path: refused, logged with the key.
    d.signal("HUP");
    let start = std::time::Instant::now();
    while !d
        .log_text()
        .contains("reload refused: restart needed for server.http_listen")
    {
        assert!(start.elapsed().as_secs() < 10, "{}", d.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Put back, the reload goes through.
    std::fs::write(&d.config, text).unwrap();
    let (rc, out, err) = d.bootctl(&["reload"]);
    assert_eq!(rc, 0, "stdout: {out}\nstderr: {err}");
}

/// Waits up to 15 s for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed().as_secs() < 15,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The value of one exact series line of `/metrics`, if present.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[test]
fn status_and_metrics_show_the_relay_backlog_per_upstream() {
    use common::upstream::{FakeServer, Reply};
    let down = FakeServer::start(|_| Reply::status(500));
    let fine = FakeServer::start(|_| Reply::status(204));
    let extra = format!(
        "[[upstream]]\nname = \"crm\"\nurl = \"{}\"\n\n[[upstream]]\nname = \"cmdb\"\nurl = \"{}\"\n",
        down.url("/events"),
        fine.url("/events")
    );
    let d = start(&extra);
    let mac = "52:54:00:21:06:01";
    let (rc, _, err) = d.bootctl(&["node", "add", mac]);
    assert_eq!(rc, 0, "{err}");
    for p in ["installing", "registered"] {
        let (rc, _, err) = d.bootctl(&["phase", mac, p]);
        assert_eq!(rc, 0, "{err}");
    }
    // The events of the node (installing, registered) are queued for both.
    wait_for("cmdb to take every event and crm to refuse one", || {
        let (_, out, _) = d.bootctl(&["--json", "status"]);
        let v = json(&out);
        let relay = v["relay"].as_array().cloned().unwrap_or_default();
        let by = |n: &str| relay.iter().find(|r| r["upstream"] == n).cloned();
        matches!((by("crm"), by("cmdb")), (Some(c), Some(m))
            if c["pending"].as_u64() >= Some(1) && c["failing"].as_u64() >= Some(1)
                && m["pending"] == 0)
    });
    let (rc, out, err) = d.bootctl(&["status"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("relay:"), "{out}");
    let crm = out
        .lines()
        .find(|l| l.trim_start().starts_with("crm "))
        .unwrap_or_else(|| panic!("no crm line in\n{out}"));
    assert!(
        crm.contains("pending (") && crm.contains("failing), 0 dead"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("cmdb ")
                && l.contains("0 pending (0 failing), 0 dead")),
        "{out}"
    );
    // The config path is shown absolute.
    let config = d.config.display().to_string();
    assert!(out.contains(&format!("config:         {config}")), "{out}");

    assert_eq!(d.curl(&[], "/healthz").0, 200);
    let (code, text) = d.curl(&[], "/metrics");
    assert_eq!(code, 200, "{text}");
    let pending = series(
        &text,
        r#"bootd_relay_backlog{upstream="crm",state="pending"}"#,
    );
    assert!(pending.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        series(
            &text,
            r#"bootd_relay_backlog{upstream="cmdb",state="pending"}"#
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        series(
            &text,
            r#"bootd_relay_deliveries_total{upstream="crm",result="failed"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        series(
            &text,
            r#"bootd_relay_deliveries_total{upstream="cmdb",result="ok"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "bootd_deadline_timed_out_total"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE bootd_process_cpu_seconds counter"),
        "{text}"
    );
    // Control-socket requests are told apart from the network's.
    assert!(
        text.lines()
            .any(|l| l.starts_with("bootd_http_requests_total{listener=\"control\",")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with(
            "bootd_http_requests_total{listener=\"network\",route=\"healthz\",status=\"200\"}"
        )),
        "{text}"
    );
}

/// `bootctl watch ARGS` in the background, its stdout in a file.
struct Watching {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Watching {
    fn start(d: &Daemon, args: &[&str]) -> Watching {
        let out = d
            .dir
            .path()
            .join(format!("watch-{}.out", args.join("_").replace(':', "")));
        let file = std::fs::File::create(&out).unwrap();
        let child = std::process::Command::new(common::daemon::bootctl_bin())
            .arg("--socket")
            .arg(&d.socket)
            .arg("watch")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Watching { child, out }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_refuses_what_bootd_does_not_know_unless_told_to_wait() {
    let d = start("[groups.web]\n\n[[nodes]]\nmac = \"52:54:00:21:12:01\"\ngroup = \"web\"\n");
    let (rc, out, err) = d.bootctl(&["watch", "52:54:00:21:12:99"]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("unknown node 52:54:00:21:12:99"), "{err}");
    assert!(err.contains("--wait-for-new"), "{err}");
    let (rc, out, err) = d.bootctl(&["watch", "--group", "nope"]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("unknown group nope (known groups: web"),
        "{err}"
    );

    // Known ones are followed, and so is a new MAC with --wait-for-new.
    let mut group = Watching::start(&d, &["--group", "web"]);
    let mut new = Watching::start(&d, &["52:54:00:21:12:99", "--wait-for-new"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(group.running() && new.running());
    let (rc, _, err) = d.bootctl(&["node", "add", "52:54:00:21:12:99"]);
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = d.bootctl(&["phase", "52:54:00:21:12:99", "installing"]);
    assert_eq!(rc, 0, "{err}");
    wait_for("the new node's event", || {
        new.text().contains("-> installing")
    });
    assert!(new.running());
}

#[test]
fn small_cli_edges_version_positional_ids_and_json_errors() {
    let d = start("");
    let (rc, out, _) = d.bootctl(&["version"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("bootctl "), "{out}");
    // `relay drop 1` is taken like other commands' positionals; the refusal is bootd's
    // reason, not an HTTP code.
    let (rc, out, err) = d.bootctl(&["relay", "drop", "1"]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(!err.contains("answered"), "{err}");
    assert!(
        err.starts_with("bootctl: ") && err.len() > "bootctl: \n".len(),
        "{err}"
    );
    // Under --json the error is JSON on stdout.
    let (rc, out, err) = d.bootctl(&["--json", "relay", "drop", "1"]);
    assert_eq!(rc, 1, "stderr: {err}");
    let v = json(&out);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    let (rc, out, _) = d.bootctl(&["--json", "node", "show", "52:54:00:00:00:99"]);
    assert_eq!(rc, 1);
    assert!(json(&out)["error"].is_string(), "{out}");
    // `relay retry` without an id names both ways.
    let (rc, _, err) = d.bootctl(&["relay", "retry"]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("--all-dead"), "{err}");
}

#[test]
fn nodes_filter_by_phase_and_group_and_print_for_scripts() {
    let d = start(
        r#"
[groups.web]

[[nodes]]
mac = "52:54:00:21:09:01"
hostname = "w1"
group = "web"

[[nodes]]
mac = "52:54:00:21:09:02"
hostname = "db1"
"#,
    );
    let (rc, _, err) = d.bootctl(&["phase", "52:54:00:21:09:02", "failed"]);
    assert_eq!(rc, 0, "{err}");

    let (rc, out, _) = d.bootctl(&["nodes"]);
    assert_eq!(rc, 0);
    let header = out.lines().next().unwrap_or_default();
    assert!(header.contains("IN PHASE"), "{out}");
    assert!(out.contains("w1") && out.contains("db1"), "{out}");

    let (_, out, _) = d.bootctl(&["nodes", "--phase", "failed"]);
    assert!(out.contains("db1") && !out.contains("w1"), "{out}");
    let (_, out, _) = d.bootctl(&["nodes", "--group", "web", "--no-headers"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("52:54:00:21:09:01"), "{out}");
    let (_, out, _) = d.bootctl(&["nodes", "-o", "wide"]);
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.contains("HEALTH") && header.contains("ORIGIN"),
        "{out}"
    );
    let (rc, out, _) = d.bootctl(&["nodes", "--phase", "running"]);
    assert_eq!(rc, 0);
    assert_eq!(out.trim(), "no nodes match (of 2)");
    let (rc, _, err) = d.bootctl(&["nodes", "-o", "tall"]);
    assert_eq!(rc, 2, "{err}");
}

#[test]
fn help_names_the_phases_and_the_node_options() {
    let d = start("");
    let (rc, out, _) = d.bootctl(&["phase", "--help"]);
    assert_eq!(rc, 0);
    for phase in [
        "health_validation",
        "clustered",
        "installing (30-85)",
        "Examples:",
    ] {
        assert!(out.contains(phase), "{phase} missing from:\n{out}");
    }
    let (rc, out, _) = d.bootctl(&["node", "add", "--help"]);
    assert_eq!(rc, 0);
    for option in [
        "--hostname",
        "unique",
        "--provider-id",
        "--health-url",
        "--var",
    ] {
        assert!(out.contains(option), "{option} missing from:\n{out}");
    }
}
