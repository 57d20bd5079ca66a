//! Hardware reports through the real daemon: token rules, limits and garbage, change
//! detection, the discovered list, bootctl hardware and adopt.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::Daemon;
use common::json;
use std::path::Path;

fn data(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hardware")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The token the discovery script was rendered with for `mac`.
fn token(d: &Daemon, mac: &str) -> String {
    let (code, script) = d.curl(&[], &format!("/boot/{mac}.ipxe"));
    assert_eq!(code, 200, "{script}");
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bootd.token="))
        .map(str::to_string)
        .expect("token in the discovery script")
}

fn post(d: &Daemon, mac: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let file = d.dir.path().join(format!("report-{}.json", body.len()));
    std::fs::write(&file, body).expect("write");
    let at = format!("@{}", file.display());
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}"))
        .unwrap_or_else(|| "X-No: 1".into());
    d.curl(
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &at,
        ],
        &format!("/api/v1/nodes/{mac}/hardware"),
    )
}

#[test]
fn reports_are_checked_stored_compared_and_listed() {
    let d = Daemon::start("[http]\nbody_limit = \"256KiB\"\n");
    let mac = "52:54:00:30:00:01";
    let tok = token(&d, mac);

    // Garbage, bad UTF-8, too deep, empty: 400, nothing stored.
    let deep = format!("{{\"lshw\": {}{}}}", "[".repeat(200), "]".repeat(200));
    for bad in ["not json", "{\"lshw\": ", &deep, "{}", "{\"dmidecode\": 5}"] {
        let (code, body) = post(&d, mac, Some(&tok), bad);
        assert_eq!(code, 400, "{bad:.40}: {body}");
        assert!(
            json(&body)["error"]
                .as_str()
                .unwrap_or("")
                .contains("invalid hardware report"),
            "{body}"
        );
    }
    let (code, _) = d.curl(&[], &format!("/api/v1/nodes/{mac}/hardware"));
    assert_eq!(code, 404, "nothing stored");
    // Over the body limit: 413.
    let huge = serde_json::json!({ "dmidecode": "x".repeat(300_000) }).to_string();
    assert_eq!(post(&d, mac, Some(&tok), &huge).0, 413);
    // No token from an address that is not the machine's: 403.
    let report = serde_json::json!({ "dmidecode": data("dell-m630.dmidecode.txt") }).to_string();
    assert_eq!(post(&d, mac, None, &report).0, 403);
    assert_eq!(post(&d, mac, Some("wrong"), &report).0, 403);

    let (code, body) = post(&d, mac, Some(&tok), &report);
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["inventory"]["vendor"], "Dell Inc.");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(0));
    let first_serial = v["inventory"]["serial"].as_str().unwrap_or("").to_string();
    assert!(!first_serial.is_empty(), "{body}");

    // Another machine's board in the same slot: flagged.
    let other =
        serde_json::json!({ "dmidecode": data("supermicro-ssg-6028r.dmidecode.txt") }).to_string();
    let (code, body) = post(&d, mac, Some(&tok), &other);
    assert_eq!(code, 200);
    let changes = json(&body)["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!changes.is_empty(), "{body}");

    let (code, body) = d.curl(&[], &format!("/api/v1/nodes/{mac}"));
    assert_eq!(code, 200);
    assert_eq!(json(&body)["hardware"]["vendor"], "Supermicro");

    // Listed as discovered until adopted.
    let (_, list) = d.curl(&[], "/api/v1/hardware/discovered");
    assert!(list.contains(mac), "{list}");
    let (code, out, _) = d.bootctl(&["hardware"]);
    assert_eq!(code, 0);
    assert!(out.contains(mac) && out.contains("Supermicro"), "{out}");
    let (code, out, _) = d.bootctl(&["hardware", mac]);
    assert_eq!(code, 0);
    assert!(out.contains("changed since the previous report"), "{out}");
    // Human units: memory and each disk in binary units, not a byte count.
    assert!(out.contains("GiB"), "{out}");
    assert!(!out.contains(" bytes"), "{out}");
    let (code, _, err) = d.bootctl(&[
        "node",
        "adopt",
        mac,
        "--profile",
        "discovery",
        "--hostname",
        "sm1",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, list) = d.curl(&[], "/api/v1/hardware/discovered");
    assert!(!list.contains(mac), "{list}");
    // Adopted, it leaves the discovered list but `--all` still shows its report.
    let (_, out, _) = d.bootctl(&["hardware"]);
    assert!(!out.contains(mac), "{out}");
    let (code, out, _) = d.bootctl(&["hardware", "--all"]);
    assert_eq!(code, 0);
    assert!(out.contains(mac) && out.contains("sm1"), "{out}");
    let (_, node) = d.curl(&[], &format!("/api/v1/nodes/{mac}"));
    let node = json(&node);
    // It keeps its place in the boot (it already fetched a script); it is managed now.
    assert_eq!(
        (node["hostname"].as_str(), node["origin"].as_str()),
        (Some("sm1"), Some("runtime"))
    );
    assert_eq!(node["profile"], "discovery");
}

#[test]
fn the_agent_script_reports_this_machine_and_phases() {
    let d = Daemon::start("");
    let mac = "52:54:00:30:00:02";
    let tok = token(&d, mac);
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot-assets/agent/bootd-report");
    let run = |args: &[&str]| {
        std::process::Command::new("sh")
            .arg(&agent)
            .args(args)
            .env(
                "BOOTD_HARDWARE_URL",
                format!("http://{}/api/v1/nodes/{mac}/hardware", d.http),
            )
            .env(
                "BOOTD_PHASE_URL",
                format!("http://{}/api/v1/nodes/{mac}/phase", d.http),
            )
            .env("BOOTD_TOKEN", &tok)
            .env("BOOTD_TRIES", "2")
            .output()
            .expect("run agent")
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, body) = d.curl(&[], &format!("/api/v1/nodes/{mac}/hardware"));
    assert_eq!(code, 200, "{body}");
    assert!(json(&body)["inventory"].is_object(), "{body}");
    let out = run(&[
        "--phase",
        "installing",
        "--progress",
        "42",
        "--message",
        "agent \"quoted\"",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, node) = d.curl(&[], &format!("/api/v1/nodes/{mac}"));
    let node = json(&node);
    assert_eq!(node["phase"], "installing");
    assert_eq!(node["message"], "agent \"quoted\"");
    // A wrong token is refused at once, not retried.
    let out = std::process::Command::new("sh")
        .arg(&agent)
        .env(
            "BOOTD_HARDWARE_URL",
            format!("http://{}/api/v1/nodes/{mac}/hardware", d.http),
        )
        .env("BOOTD_TOKEN", "wrong")
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
}

#[test]
fn profiles_are_chosen_by_hardware_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("state/templates");
    std::fs::create_dir_all(&t).expect("mkdir");
    std::fs::write(
        t.join("dell.ipxe"),
        "#!ipxe\necho DELL-PROFILE {{ node.hardware.product }}\n",
    )
    .expect("write");
    let d = Daemon::start_in(
        dir,
        "[profiles.dell]\nscript = \"dell.ipxe\"\nmatch = { vendor = \"Dell Inc.\", product = \"PowerEdge M630\" }\n",
        &[],
    );
    let mac = "52:54:00:30:00:03";
    let tok = token(&d, mac);
    let (_, before) = d.curl(&[], &format!("/boot/{mac}.ipxe"));
    assert!(before.contains("discovery/vmlinuz"), "{before}");
    let report = serde_json::json!({ "dmidecode": data("dell-m630.dmidecode.txt") }).to_string();
    assert_eq!(post(&d, mac, Some(&tok), &report).0, 200);
    let (_, after) = d.curl(&[], &format!("/boot/{mac}.ipxe"));
    assert!(after.contains("DELL-PROFILE PowerEdge M630"), "{after}");
    // Another vendor's machine stays on the default.
    let other = "52:54:00:30:00:04";
    let tok2 = token(&d, other);
    let report =
        serde_json::json!({ "dmidecode": data("hpe-dl380-gen10.dmidecode.txt") }).to_string();
    assert_eq!(post(&d, other, Some(&tok2), &report).0, 200);
    let (_, script) = d.curl(&[], &format!("/boot/{other}.ipxe"));
    assert!(script.contains("discovery/vmlinuz"), "{script}");
}

#[test]
fn an_unknown_match_fact_is_a_config_error_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("b.toml");
    std::fs::write(
        &cfg,
        "[profiles.x]\nscript = \"discovery.ipxe\"\nmatch = { colour = \"red\" }\n",
    )
    .expect("write");
    let out = std::process::Command::new(common::daemon::bin("bootd"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("b.toml:3:11") && err.contains("profiles.x.match.colour"),
        "{err}"
    );
}
