//! What an operator hits in the first hour (issue 21), daemon side, as a black box through
//! the real daemon, its HTTP listener and its control socket: inherited profiles, runtime
//! node edits, reloads, group states, progress bands.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::Daemon;
use common::json::json;
use serde_json::Value;

/// A boot script that shows its callback token and the profile it was rendered for.
const SCRIPT: &str = "#!ipxe\n# token {{ token }}\n# profile {{ profile }}\n";

/// A profile with its own phase, a group that names it, and a node that inherits it.
const INHERITED: &str = r#"
[profiles.demo]
script = "inst.ipxe"
phases = { foundation_boot = 40 }

[groups.web]
profile = "demo"

[[nodes]]
mac = "52:54:00:21:00:01"
hostname = "w1"
group = "web"
"#;

/// Starts bootd with `inst.ipxe` in its templates dir and `extra` in its config.
fn start(extra: &str) -> Daemon {
    Daemon::start_with_templates(extra, &[("inst.ipxe", SCRIPT)])
}

/// A control-socket request with a JSON body: (status, body).
fn control(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut args = vec!["-X", method];
    if !body.is_empty() {
        args.extend(["-H", "Content-Type: application/json", "--data", body]);
    }
    let (code, text) = d.curl_control(&args, path);
    (code, json(&text))
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

/// A machine's callback with its token: (status, body as JSON).
fn callback(d: &Daemon, mac: &str, token: &str, body: &str) -> (u16, Value) {
    let (code, text) = d.phase_callback(mac, token, body);
    (code, json(&text))
}

#[test]
fn a_group_profile_counts_for_phases_progress_and_the_api() {
    let d = start(INHERITED);
    let mac = "52:54:00:21:00:01";
    let n = d.node_json(mac);
    assert_eq!(
        (&n["profile"], &n["profile_source"], &n["node_profile"]),
        (&Value::from("demo"), &Value::from("group"), &Value::Null),
        "{n}"
    );
    let token = boot(&d, mac);
    // The machine reports the inherited profile's own phase.
    let (code, v) = callback(&d, mac, &token, r#"{"phase":"installing"}"#);
    assert_eq!(code, 200, "{v}");
    let (code, v) = callback(&d, mac, &token, r#"{"phase":"foundation_boot"}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["node"]["phase"], "foundation_boot", "{v}");
    assert_eq!(v["node"]["progress"], 40, "{v}");
    // So may an operator over the control socket.
    let (code, v) = control(
        &d,
        "POST",
        &format!("/api/v1/nodes/{mac}/phase"),
        r#"{"phase":"foundation_boot","progress":45}"#,
    );
    assert_eq!(code, 200, "{v}");
    // A name that is no phase at all is refused with the list of valid ones.
    let (code, v) = control(
        &d,
        "POST",
        &format!("/api/v1/nodes/{mac}/phase"),
        r#"{"phase":"foundation_bot"}"#,
    );
    assert_eq!(code, 400, "{v}");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("installing") && err.contains("profile demo: foundation_boot"),
        "{err}"
    );
    // The list shows the same resolution; a node of its own keeps `node`.
    let (code, v) = control(
        &d,
        "POST",
        "/api/v1/nodes",
        r#"{"mac":"52:54:00:21:00:02","profile":"local"}"#,
    );
    assert_eq!(code, 201, "{v}");
    let (_, list) = control(&d, "GET", "/api/v1/nodes", "");
    let sources: Vec<(String, String)> = list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["profile"].as_str().unwrap_or_default().to_string(),
                n["profile_source"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("demo".to_string(), "group".to_string()),
            ("local".to_string(), "node".to_string())
        ]
    );
}

#[test]
fn runtime_node_edits_get_the_config_files_checks() {
    let d = start(INHERITED);
    // The config's node owns w1; a runtime node may not take the name in any case.
    let add = |body: &str| control(&d, "POST", "/api/v1/nodes", body);
    let (code, v) = add(r#"{"mac":"52:54:00:21:00:02","hostname":"W1"}"#);
    assert_eq!(code, 409, "{v}");
    let err = v["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("duplicate host name W1") && err.contains("52:54:00:21:00:01 (w1)"),
        "{err}"
    );
    for bad in ["bad_name!", "x y"] {
        let (code, v) = add(&format!(
            r#"{{"mac":"52:54:00:21:00:02","hostname":"{bad}"}}"#
        ));
        assert_eq!(code, 400, "{bad}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap_or_default()
                .contains("invalid host name"),
            "{v}"
        );
    }
    let (code, v) = add(r#"{"mac":"52:54:00:21:00:02","hostname":"r2","ip":"10.9.0.2"}"#);
    assert_eq!(code, 201, "{v}");
    // A second runtime node may not take r2's address, nor be renamed onto r2.
    let (code, v) = add(r#"{"mac":"52:54:00:21:00:03","ip":"10.9.0.2"}"#);
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("duplicate IP address 10.9.0.2"),
        "{v}"
    );
    let (code, v) = add(r#"{"mac":"52:54:00:21:00:03","hostname":"r3"}"#);
    assert_eq!(code, 201, "{v}");
    let set = |body: &str| control(&d, "PATCH", "/api/v1/nodes/52:54:00:21:00:03", body);
    assert_eq!(set(r#"{"hostname":"r2"}"#).0, 409);
    assert_eq!(set(r#"{"ip":"10.9.0.2"}"#).0, 409);
    assert_eq!(set(r#"{"hostname":"x y"}"#).0, 400);
    // Its own values, and values nobody has, are fine.
    assert_eq!(set(r#"{"hostname":"r3","ip":"10.9.0.3"}"#).0, 200);
    assert_eq!(d.node_json("52:54:00:21:00:03")["ip"], "10.9.0.3");
}

#[test]
fn nodes_of_the_config_file_are_edited_in_the_file() {
    let d = start(INHERITED);
    let mac = "52:54:00:21:00:01";
    let token = boot(&d, mac);
    let line = std::fs::read_to_string(&d.config)
        .unwrap()
        .lines()
        .position(|l| l == "[[nodes]]")
        .unwrap()
        + 1;
    let place = format!("defined in {}:{line}; edit the file", d.config.display());
    let path = format!("/api/v1/nodes/{mac}");
    let (code, v) = control(&d, "PATCH", &path, r#"{"hostname":"other"}"#);
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains(&place),
        "{v}"
    );
    let (code, v) = control(&d, "DELETE", &path, "");
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains(&place),
        "{v}"
    );
    // Nothing changed, and the history is all there.
    let n = d.node_json(mac);
    assert_eq!(n["hostname"], "w1");
    assert!(!n["history"].as_array().unwrap().is_empty(), "{n}");
    let _ = token;
}

#[test]
fn a_reload_keeps_what_machines_reported() {
    let d = start(INHERITED);
    let mac = "52:54:00:21:00:01";
    let token = boot(&d, mac);
    let (code, v) = callback(
        &d,
        mac,
        &token,
        r#"{"phase":"registered","ip":"10.9.0.7","message":"installed"}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(d.node_json(mac)["ip"], "10.9.0.7");
    // An unchanged file: the reported address stays.
    let (code, v) = control(&d, "POST", "/api/v1/reload", "");
    assert_eq!(code, 200, "{v}");
    let n = d.node_json(mac);
    assert_eq!(
        (&n["ip"], &n["hostname"]),
        (&Value::from("10.9.0.7"), &Value::from("w1")),
        "{n}"
    );
    // SIGHUP reloads the same way, and so does a restart.
    d.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(d.node_json(mac)["ip"], "10.9.0.7");
    // What the file sets wins over what was reported.
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("hostname = \"w1\"", "hostname = \"w1\"\nip = \"10.9.0.8\"");
    std::fs::write(&d.config, text).unwrap();
    let (code, v) = control(&d, "POST", "/api/v1/reload", "");
    assert_eq!(code, 200, "{v}");
    assert_eq!(d.node_json(mac)["ip"], "10.9.0.8");
}

#[test]
fn group_states_name_what_is_wrong() {
    let d = start(&format!(
        "{INHERITED}\n[[nodes]]\nmac = \"52:54:00:21:00:02\"\ngroup = \"web\"\n"
    ));
    let state = |d: &Daemon| {
        let (_, v) = control(d, "GET", "/api/v1/groups", "");
        let g = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "web")
            .cloned()
            .unwrap();
        (
            g["state"].as_str().unwrap_or_default().to_string(),
            g["reason"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        state(&d),
        (
            "pending".to_string(),
            "none of 2 has booted yet".to_string()
        )
    );
    let token = boot(&d, "52:54:00:21:00:01");
    assert_eq!(state(&d).0, "in_progress");
    let (code, v) = callback(
        &d,
        "52:54:00:21:00:01",
        &token,
        r#"{"phase":"failed","message":"disk gone"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let (s, why) = state(&d);
    assert_eq!(s, "member_failed", "{why}");
    assert!(why.contains("disk gone"), "{why}");
}

#[test]
fn installing_progress_outside_its_band_says_what_was_stored() {
    let d = start(INHERITED);
    let mac = "52:54:00:21:00:01";
    let token = boot(&d, mac);
    let (code, v) = callback(&d, mac, &token, r#"{"phase":"installing","progress":5}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["progress"], 30, "{v}");
    assert_eq!(v["node"]["progress"], 30, "{v}");
    let note = v["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("installing progress is kept within 30–85"),
        "{v}"
    );
    let (_, v) = callback(&d, mac, &token, r#"{"phase":"installing","progress":60}"#);
    assert_eq!(
        (&v["progress"], &v["note"]),
        (&Value::from(60), &Value::Null),
        "{v}"
    );
    let (_, v) = callback(&d, mac, &token, r#"{"phase":"installing","progress":99}"#);
    assert_eq!(v["progress"], 85, "{v}");
    assert!(v["note"].is_string(), "{v}");
}

#[test]
fn preflight_on_a_running_appliance_knows_its_own_ports() {
    let d = start("");
    let out = std::process::Command::new(common::daemon::bin("bootd"))
        .args(["preflight", "--json", "--config"])
        .arg(&d.config)
        .output()
        .expect("run bootd preflight");
    let report = json(&String::from_utf8_lossy(&out.stdout));
    let checks = report["checks"].as_array().expect("checks");
    for (id, addr) in [("http_port", d.http), ("tftp_port", d.tftp)] {
        let c = checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {report}"));
        assert_eq!(c["subject"], addr.to_string(), "{c}");
        assert_eq!(c["verdict"], "ok", "{c}");
        assert_eq!(
            c["message"],
            format!("in use by bootd itself (pid {})", d.pid()),
            "{c}"
        );
    }
}

#[test]
fn check_config_says_what_it_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::daemon::bin("bootd"))
            .arg("check-config")
            .args(args)
            .current_dir(dir.path())
            .env_remove("BOOTD_CONFIG")
            .output()
            .expect("run bootd check-config");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    if !std::path::Path::new("/etc/bootd/bootd.toml").exists() {
        assert_eq!(run(&[]), "ok (embedded defaults; no config file)");
    }
    let file = dir.path().join("b.toml");
    std::fs::write(&file, "[server]\nhttp_listen = \"127.0.0.1:8080\"\n").unwrap();
    assert_eq!(
        run(&["--config", file.to_str().unwrap()]),
        format!("ok ({})", file.display())
    );
}
