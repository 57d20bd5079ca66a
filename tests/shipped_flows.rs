//! The shipped install flows finish by themselves: each profile of
//! config/examples/profiles.toml declares readiness checks, and each first-boot script
//! (rendered from the real templates, run by a real `sh`) posts `registered` with the
//! machine's IPv4 and host name as valid JSON, with the node's token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use bootd::boot::{Context, Templates};
use bootd::config::Config;
use bootd::mac::MacAddr;
use bootd::nodes::{Node, Origin};
use bootd::ready::Check;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOKEN: &str = "tok3n0123456789";
/// What the fake `ip` reports as the default route's source address.
const ROUTE_IP: &str = "10.0.0.11";

fn accept_all(_: &Path, _: &str) -> bool {
    true
}

fn examples() -> (Config, Templates) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/profiles.toml");
    let cfg = Config::load(&path, &accept_all).unwrap_or_else(|e| panic!("{e}"));
    let templates = Templates::load(&cfg).unwrap_or_else(|e| panic!("{e:?}"));
    (cfg, templates)
}

fn render(cfg: &Config, t: &Templates, profile: &str, template: &str) -> (String, String) {
    let mut node = Node::new(MacAddr([0x52, 0x54, 0, 0x30, 0, 1]), Origin::Config);
    node.hostname = Some("db1".into());
    let ctx = Context::new(
        &node,
        profile,
        "x86_64-efi",
        TOKEN.into(),
        &cfg.server.public_url,
    );
    let text = t
        .render(template, &ctx)
        .unwrap_or_else(|e| panic!("{template}: {e}"));
    (text, ctx.phase_url)
}

/// A directory with a fake `ip` (answers like iproute2 with a default route) and a
/// fake `curl` that writes its arguments, one a line, to `curl.args`.
fn fake_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let write = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, body).unwrap();
        Command::new("chmod").arg("755").arg(&p).status().unwrap();
    };
    write(
        "ip",
        &format!("#!/bin/sh\necho \"1.1.1.1 via 10.0.0.1 dev eth0 src {ROUTE_IP} uid 0 \\\\    cache \"\n"),
    );
    write(
        "curl",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {}\necho -- >> {}\n",
            dir.join("curl.args").display(),
            dir.join("curl.args").display()
        ),
    );
    bin
}

/// Runs `script` with `sh` and the fake tools first in PATH; returns every curl call.
fn run_script(dir: &Path, script: &str) -> Vec<Vec<String>> {
    let bin = fake_tools(dir);
    let file = dir.join("script.sh");
    std::fs::write(&file, script).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(&file)
        .env("PATH", path)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = std::fs::read_to_string(dir.join("curl.args")).unwrap_or_default();
    args.split("--\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().map(str::to_string).collect())
        .collect()
}

/// The `registered` call among `calls`: its JSON body, URL and headers are right.
fn assert_registered(calls: &[Vec<String>], phase_url: &str) {
    let call = calls
        .iter()
        .find(|c| c.iter().any(|a| a.contains("registered")))
        .unwrap_or_else(|| panic!("no registered call in {calls:?}"));
    let body = call
        .iter()
        .position(|a| a == "-d")
        .and_then(|i| call.get(i + 1))
        .unwrap_or_else(|| panic!("no body in {call:?}"));
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        json,
        serde_json::json!({ "phase": "registered", "ip": ROUTE_IP, "hostname": host })
    );
    assert!(call.iter().any(|a| a == phase_url), "{call:?}");
    assert!(
        call.iter()
            .any(|a| a == &format!("Authorization: Bearer {TOKEN}")),
        "{call:?}"
    );
}

#[test]
fn shipped_profiles_declare_fitting_ready_checks() {
    let (cfg, _) = examples();
    let ready = |p: &str| cfg.profiles.get(p).map(|p| p.ready.clone()).unwrap();
    for p in ["ubuntu", "debian", "flatcar"] {
        assert_eq!(ready(p), [Check::Ssh(22)], "{p}");
    }
    assert_eq!(ready("proxmox"), [Check::Ssh(22), Check::Tcp(8006)]);
    // No SSH on Talos: its API and the kubelet.
    assert_eq!(ready("talos"), [Check::Tcp(50000), Check::Tcp(10250)]);
}

#[test]
fn ubuntu_first_boot_posts_registered_with_its_ip() {
    let (cfg, t) = examples();
    let (text, phase_url) = render(&cfg, &t, "ubuntu", "ubuntu-user-data.yaml");
    // The block under `runcmd:` (`- |`), dedented.
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("runcmd:"));
    lines.next();
    assert_eq!(lines.next().map(str::trim), Some("- |"), "{text}");
    let script: String = lines
        .take_while(|l| l.starts_with("        "))
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    assert_registered(&run_script(dir.path(), &script), &phase_url);
}

#[test]
fn proxmox_first_boot_posts_registered_with_its_ip() {
    let (cfg, t) = examples();
    let (script, phase_url) = render(&cfg, &t, "proxmox", "proxmox/first-boot.sh");
    let dir = tempfile::tempdir().unwrap();
    assert_registered(&run_script(dir.path(), &script), &phase_url);
}

#[test]
fn debian_late_command_installs_a_first_boot_unit_that_posts_registered() {
    let (cfg, t) = examples();
    let (text, phase_url) = render(&cfg, &t, "debian", "debian-preseed.cfg");
    // debconf joins lines ending in a backslash.
    let joined = text.replace("\\\n", "");
    let late = joined
        .lines()
        .find_map(|l| l.strip_prefix("d-i preseed/late_command string "))
        .unwrap_or_else(|| panic!("no late_command:\n{text}"));
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    for d in ["usr/local/sbin", "etc/systemd/system"] {
        std::fs::create_dir_all(target.join(d)).unwrap();
    }
    let installer = format!(
        "in_target() {{ echo \"$@\" >> {log}; \"$@\"; }}\n{}\n",
        late.replace("in-target systemctl", "echo systemctl")
            .replace("in-target ", "in_target ")
            .replace("/target/", &format!("{}/", target.display())),
        log = dir.path().join("in-target.log").display()
    );
    let during_install = run_script(dir.path(), &installer);
    assert!(
        during_install
            .iter()
            .any(|c| c.iter().any(|a| a.contains("\"progress\":85"))),
        "{during_install:?}"
    );
    let unit = std::fs::read_to_string(target.join("etc/systemd/system/bootd-registered.service"))
        .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/sbin/bootd-registered\n")
            && unit.contains("ConditionPathExists=!/var/lib/bootd-registered")
            && unit.contains("WantedBy=multi-user.target"),
        "{unit}"
    );
    let script = std::fs::read_to_string(target.join("usr/local/sbin/bootd-registered")).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    let first_boot = tempfile::tempdir().unwrap();
    // `touch /var/lib/...` fails outside a real system; the call has been made by then.
    let script = script.replace("&& touch /var/lib/bootd-registered", "");
    assert_registered(&run_script(first_boot.path(), &script), &phase_url);
}

#[test]
fn flatcar_ignition_carries_a_first_boot_script_that_posts_registered() {
    let (cfg, t) = examples();
    let (text, phase_url) = render(&cfg, &t, "flatcar", "flatcar-ignition.json");
    let ign: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    let files = ign["storage"]["files"].as_array().unwrap();
    let file = files
        .iter()
        .find(|f| f["path"] == "/opt/bin/bootd-registered")
        .unwrap_or_else(|| panic!("no script in {files:?}"));
    assert_eq!(file["mode"], 0o755);
    let source = file["contents"]["source"].as_str().unwrap();
    let encoded = source.strip_prefix("data:,").unwrap();
    let script = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .to_string();
    let unit = ign["systemd"]["units"][0]["contents"].as_str().unwrap();
    assert!(
        unit.contains("ExecStart=/opt/bin/bootd-registered\n"),
        "{unit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = script.replace("&& touch /var/lib/bootd-registered", "");
    assert_registered(&run_script(dir.path(), &script), &phase_url);
}

#[test]
fn flatcar_ssh_key_renders_as_a_json_string() {
    let (cfg, t) = examples();
    let mut node = Node::new(MacAddr([0x52, 0x54, 0, 0x30, 0, 2]), Origin::Config);
    node.vars.insert(
        "ssh_key".into(),
        serde_json::json!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 core@lab"),
    );
    let ctx = Context::new(
        &node,
        "flatcar",
        "x86_64-efi",
        TOKEN.into(),
        &cfg.server.public_url,
    );
    let text = t.render("flatcar-ignition.json", &ctx).unwrap();
    let ign: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    assert_eq!(
        ign["passwd"]["users"][0]["sshAuthorizedKeys"][0],
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0 core@lab"
    );
}
