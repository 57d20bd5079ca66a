//! HTTP boot path against the real daemon with curl: per-MAC scripts, tokens and
//! callbacks, install configs, and /assets with HEAD, Range, ETag and no escapes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::Daemon;
use common::json;
use std::os::unix::fs::symlink;

/// The token a rendered script carries (`bootd.token=...`).
fn token_of(script: &str) -> String {
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bootd.token="))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no token in script:\n{script}"))
}

const PROFILE: &str = r#"
[profiles.install]
script = "install.ipxe"
config = "install.yaml"
phases = { foundation_boot = 40 }

[[nodes]]
mac = "52:54:00:10:00:01"
hostname = "alpha"
profile = "install"
vars = { disk = "/dev/vda" }
"#;

fn daemon_with_templates(extra: &str) -> Daemon {
    // Templates must exist before the config is loaded.
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("state/templates");
    std::fs::create_dir_all(&t).expect("mkdir");
    std::fs::write(
        t.join("install.ipxe"),
        "#!ipxe\nkernel {{ assets_url }}/vmlinuz bootd.token={{ token }} host={{ hostname }} disk={{ node.vars.disk }} arch={{ arch }}\nboot\n",
    )
    .expect("write");
    std::fs::write(
        t.join("install.yaml"),
        "hostname: {{ hostname }}\nphase_url: {{ phase_url }}\n",
    )
    .expect("write");
    Daemon::start_in(dir, &format!("{PROFILE}{extra}"), &[])
}

#[test]
fn scripts_tokens_and_callbacks() {
    let d = daemon_with_templates("");
    // iPXE percent-encodes the colons.
    let (code, script) = d.curl(&[], "/boot/52%3A54%3A00%3A10%3A00%3A01.ipxe?arch=bios");
    assert_eq!(code, 200, "{script}");
    assert!(
        script.contains("host=alpha disk=/dev/vda arch=bios"),
        "{script}"
    );
    let token = token_of(&script);
    let (_, node) = d.curl(&[], "/api/v1/nodes/52:54:00:10:00:01");
    assert_eq!(json(&node)["phase"], "ipxe_boot");

    let (code, cfg) = d.curl(&[], "/config/52-54-00-10-00-01");
    assert_eq!(code, 200);
    assert!(cfg.contains("hostname: alpha"), "{cfg}");

    let phase_url = "/api/v1/nodes/52:54:00:10:00:01/phase";
    let auth = format!("Authorization: Bearer {token}");
    // Wrong or missing token: 403, nothing changes.
    for hdr in ["Authorization: Bearer wrong", "X-None: 1"] {
        let (code, _) = d.curl(
            &["-X", "POST", "-H", hdr, "-d", r#"{"phase":"installing"}"#],
            phase_url,
        );
        assert_eq!(code, 403);
    }
    // Unknown phase, bad JSON, oversized body.
    let (code, body) = d.curl(
        &["-X", "POST", "-H", &auth, "-d", r#"{"phase":"flying"}"#],
        phase_url,
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = d.curl(&["-X", "POST", "-H", &auth, "-d", "{not json"], phase_url);
    assert_eq!(code, 400);
    let big = format!(
        r#"{{"phase":"installing","message":"{}"}}"#,
        "x".repeat(200_000)
    );
    let big_file = d.dir.path().join("big.json");
    std::fs::write(&big_file, big).expect("write");
    let at_file = format!("@{}", big_file.display());
    let (code, _) = d.curl(
        &["-X", "POST", "-H", &auth, "--data-binary", &at_file],
        phase_url,
    );
    assert_eq!(code, 413);
    let (_, node) = d.curl(&[], "/api/v1/nodes/52:54:00:10:00:01");
    assert_eq!(
        json(&node)["phase"],
        "config_requested",
        "nothing changed by bad callbacks"
    );

    let (code, body) = d.curl(
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-d",
            r#"{"phase":"installing","progress":55,"message":"unpacking"}"#,
        ],
        phase_url,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = d.curl(
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-d",
            r#"{"phase":"foundation_boot"}"#,
        ],
        phase_url,
    );
    assert_eq!(code, 200);
    let (_, node) = d.curl(&[], "/api/v1/nodes/52:54:00:10:00:01");
    let v = json(&node);
    assert_eq!(v["phase"], "foundation_boot");
    assert_eq!(v["progress"], 40);
    let path: Vec<&str> = v["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["to"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        path,
        [
            "ipxe_boot",
            "config_requested",
            "installing",
            "foundation_boot"
        ]
    );
}

#[test]
fn unknown_macs_discover_or_404_and_one_shot_next_boot() {
    let d = daemon_with_templates("");
    let (code, script) = d.curl(&[], "/boot/02:00:00:00:00:99.ipxe");
    assert_eq!(code, 200);
    assert!(script.contains("discovery/vmlinuz"), "{script}");
    let (_, node) = d.curl(&[], "/api/v1/nodes/02:00:00:00:00:99");
    assert_eq!(json(&node)["origin"], "discovered");
    let (code, _) = d.curl(&[], "/boot/not-a-mac.ipxe");
    assert_eq!(code, 400);

    // One-shot: install once, then local disk.
    assert_eq!(
        d.bootctl(&[
            "node",
            "set",
            "52:54:00:10:00:01",
            "--boot",
            "local",
            "--next-boot",
            "install"
        ])
        .0,
        0
    );
    let (_, first) = d.curl(&[], "/boot/52:54:00:10:00:01.ipxe");
    assert!(first.contains("host=alpha"), "{first}");
    let (_, second) = d.curl(&[], "/boot/52:54:00:10:00:01.ipxe");
    assert!(
        second.contains("sanboot") && second.contains("${platform}"),
        "{second}"
    );

    let d2 = daemon_with_templates("[boot]\nunknown = \"ignore\"\n");
    let (code, _) = d2.curl(&[], "/boot/02:00:00:00:00:98.ipxe");
    assert_eq!(code, 404);
    let (_, list) = d2.curl(&[], "/api/v1/nodes");
    assert!(!list.contains("02:00:00:00:00:98"));
}

#[test]
fn assets_range_etag_head_and_no_escapes() {
    let d = daemon_with_templates("");
    let assets = d.state().join("assets");
    std::fs::create_dir_all(assets.join("sub")).expect("mkdir");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(assets.join("ipxe.efi"), &data).expect("write");
    std::fs::write(d.dir.path().join("secret.txt"), "TOPSECRET").expect("write");
    symlink(d.dir.path().join("secret.txt"), assets.join("leak")).expect("symlink");
    symlink(d.dir.path(), assets.join("sub/up")).expect("symlink");

    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{}/assets/ipxe.efi", d.http))
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(headers.contains("content-length: 100000"), "{headers}");
    assert!(headers.contains("accept-ranges: bytes"));
    let etag = headers
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .trim()
        .to_string();
    // HEAD: the exact length, no body.
    let out = std::process::Command::new("curl")
        .args(["-s", "-I"])
        .arg(format!("http://{}/assets/ipxe.efi", d.http))
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .contains("content-length: 100000"));
    // Range.
    let out = std::process::Command::new("curl")
        .args(["-s", "-r", "1000-1999"])
        .arg(format!("http://{}/assets/ipxe.efi", d.http))
        .output()
        .expect("curl");
    assert_eq!(out.stdout, data[1000..2000]);
    let (code, _) = d.curl(&["-r", "200000-"], "/assets/ipxe.efi");
    assert_eq!(code, 416);
    let (code, _) = d.curl(
        &["-H", &format!("If-None-Match: {etag}")],
        "/assets/ipxe.efi",
    );
    assert_eq!(code, 304);

    for path in [
        "/assets/../bootd.toml",
        "/assets/%2e%2e/bootd.toml",
        "/assets/%252e%252e/bootd.toml",
        "/assets/..%2fbootd.toml",
        "/assets/sub/..%5c..%5cbootd.toml",
        "/assets/leak",
        "/assets/sub/up/secret.txt",
        "/assets/sub",
        "/assets/",
        "/assets/%00",
    ] {
        let (code, body) = d.curl(&["--path-as-is"], path);
        assert!(code == 404 || code == 400, "{path}: {code}");
        assert!(
            !body.contains("TOPSECRET") && !body.contains("[server]"),
            "{path}: {body}"
        );
    }
}

#[test]
fn shipped_examples_and_templates_check_ok() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in [
        "config/examples/profiles.toml",
        "config/examples/full-mode.toml",
    ] {
        let out = std::process::Command::new(common::daemon::bin("bootd"))
            .args(["check-config", "--config"])
            .arg(root.join(example))
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn cloud_init_files_and_profile_extras() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let templates = root.join("boot-assets/templates");
    let extra =
        "[profiles.ubuntu]\nscript = \"ubuntu.ipxe\"\nconfig = \"ubuntu-user-data.yaml\"\n\n[profiles.proxmox]\nscript = \"proxmox.ipxe\"\nconfig = \"proxmox-answer.toml\"\n\n[[nodes]]\nmac = \"52:54:00:20:00:01\"\nhostname = \"u1\"\nprofile = \"ubuntu\"\n\n[[nodes]]\nmac = \"52:54:00:20:00:02\"\nhostname = \"p1\"\nprofile = \"proxmox\"\n";
    let state_templates = dir.path().join("state/templates");
    std::fs::create_dir_all(&state_templates).expect("mkdir");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", templates.display()))
        .arg(&state_templates)
        .status()
        .expect("cp");
    assert!(status.success());
    let d = Daemon::start_in(dir, extra, &[]);
    let (code, script) = d.curl(&[], "/boot/52:54:00:20:00:01.ipxe");
    assert_eq!(code, 200);
    assert!(
        script.contains("ds=nocloud-net;s=http://")
            && script.contains("/config/52:54:00:20:00:01/"),
        "{script}"
    );
    let (code, ud) = d.curl(&[], "/config/52:54:00:20:00:01/user-data");
    assert_eq!(code, 200);
    assert!(
        ud.starts_with("#cloud-config") && ud.contains("hostname: u1"),
        "{ud}"
    );
    let (code, md) = d.curl(&[], "/config/52:54:00:20:00:01/meta-data");
    assert_eq!(code, 200);
    assert!(md.contains("local-hostname: u1"), "{md}");
    let (code, fb) = d.curl(&[], "/config/52:54:00:20:00:02/first-boot.sh");
    assert_eq!(code, 200);
    assert!(
        fb.contains("Authorization: Bearer ")
            && fb.contains("/api/v1/nodes/52:54:00:20:00:02/phase"),
        "{fb}"
    );
    let (code, _) = d.curl(&[], "/config/52:54:00:20:00:02/nothing.sh");
    assert_eq!(code, 404);
}

#[test]
fn slow_clients_do_not_starve_others_and_oversized_headers_are_refused() {
    use std::io::{Read, Write};
    let d = daemon_with_templates("[http]\nheader_timeout = \"2s\"\n");
    // 100 clients that send half a request line and then nothing.
    let mut slow: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(d.http).expect("connect");
            s.write_all(b"GET /boot/52:54:00:10:00:01.ip")
                .expect("write");
            s
        })
        .collect();
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (code, script) = d.curl(&[], "/boot/52:54:00:10:00:01.ipxe");
        assert_eq!(code, 200, "{script}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "served behind 100 slow clients"
    );
    // The header timeout closes the slow ones.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(_) => closed += 1, // EOF or an error response: either way the slot is freed
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 100, "every slow client was timed out");
    // A 100 KiB header is refused, and the server still answers afterwards.
    let mut s = std::net::TcpStream::connect(d.http).expect("connect");
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "x".repeat(100_000)
    );
    let _ = s.write_all(req.as_bytes());
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 431"),
        "{head}"
    );
    assert_eq!(d.curl(&[], "/healthz").0, 200);
}

/// Past `http.max_connections` a new connection waits in the backlog and is served as
/// soon as a slot frees; it is never accepted and closed (iPXE would fail the download).
#[test]
fn connections_past_the_limit_wait_instead_of_failing() {
    let d = Daemon::start("[http]\nmax_connections = 2\nheader_timeout = \"60s\"\n");
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(d.http).expect("connect"))
        .collect();
    // Give the daemon a moment to accept both into its two slots.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let url = format!("http://{}/healthz", d.http);
    let waiting = std::thread::spawn(move || common::daemon::curl_url(&[], &url));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(
        !waiting.is_finished(),
        "the third connection was answered while both slots were taken"
    );
    drop(held);
    let (status, body) = waiting.join().expect("curl thread");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn check_config_lists_config_and_template_errors_in_one_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    std::fs::write(
        templates.join("broken.ipxe"),
        "#!ipxe\nkernel {{ base_url\n",
    )
    .expect("template");
    let config = dir.path().join("bootd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nstate_dir = \"{0}/state\"\ntemplates_dir = \"{0}/templates\"\nhttp_listen = \"not an address\"\n\n[profiles.demo]\nscript = \"broken.ipxe\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let out = std::process::Command::new(common::daemon::bin("bootd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("server.http_listen"), "{err}");
    assert!(
        err.contains("profiles.demo.script") && err.contains("broken.ipxe"),
        "{err}"
    );
}
