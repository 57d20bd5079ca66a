//! The shipped config files parse cleanly, and `Config::load` reads files from disk
//! with positions, relative paths and template checks as an operator would see them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use bootd::config::{template_lookup, Config, ConfigErrors, DhcpMode, MAX_CONFIG_BYTES};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn accept_all(_: &Path, _: &str) -> bool {
    true
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

fn load_ok(path: &Path) -> Config {
    match Config::load(path, &accept_all) {
        Ok(c) => c,
        Err(e) => panic!("{} should parse:\n{e}", path.display()),
    }
}

#[test]
fn shipped_default_parses_with_zero_errors() {
    let c = load_ok(&shipped("bootd.toml"));
    assert_eq!(c.dhcp.mode, DhcpMode::Proxy);
    assert_eq!(c.server.public_url, "http://10.0.0.1:8080");
    assert_eq!(c.server.state_dir, Path::new("/var/lib/bootd"));
    assert_eq!(c.http.body_limit, 8 << 20);
    assert!(c.nodes.is_empty() && c.upstream.is_empty());
}

/// Every commented example in the default (`#key = ...`, `#[table]`) is valid too.
#[test]
fn shipped_default_examples_parse_when_uncommented() {
    let path = shipped("bootd.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(uncommented.len() < text.len(), "no examples found");
    let c = match Config::parse_str(&uncommented, &path, &accept_all) {
        Ok(c) => c,
        Err(e) => panic!("uncommented examples should parse:\n{e}"),
    };
    assert_eq!(c.dhcp.pools.len(), 1);
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.upstream.len(), 1);
    assert_eq!(c.server.control_group.as_deref(), Some("bootd"));
    let ubuntu = c
        .profiles
        .get("ubuntu")
        .map(|p| p.phases.get("foundation_boot").copied());
    assert_eq!(ubuntu, Some(Some(40)));
}

#[test]
fn full_mode_example_parses() {
    let path = shipped("examples/full-mode.toml");
    let c = load_ok(&path);
    assert_eq!(c.dhcp.mode, DhcpMode::Full);
    assert_eq!(c.server.public_url, "http://10.0.0.1:8080");
    let pool = c
        .dhcp
        .pools
        .first()
        .map(|p| (p.subnet.to_string(), p.lease_time));
    assert_eq!(
        pool,
        Some(("10.0.0.0/24".to_string(), Duration::from_secs(12 * 3600)))
    );
    assert_eq!(c.nodes.len(), 2);
    let names: Vec<&str> = c.nodes.iter().map(|n| c.profile_name_for(n)).collect();
    assert_eq!(names, ["proxmox", "proxmox"]);
    let second = c.nodes.get(1).map(|n| (n.mac.to_string(), n.vars.len()));
    assert_eq!(second, Some(("52:54:00:12:34:57".to_string(), 2)));
    // Relative paths are resolved against the file's directory.
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    assert_eq!(
        c.server.templates_dir,
        dir.join("../../boot-assets/templates")
    );
    let secret = c.upstream.first().and_then(|u| u.secret_file.clone());
    assert_eq!(secret, Some(dir.join("cluster-manager.secret")));
}

#[test]
fn load_checks_templates_on_disk_and_builtins() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(templates.join("ubuntu.ipxe"), "#!ipxe\n").unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bootd.toml");
    let text = "[server]\n\
                templates_dir = \"templates\"\n\
                http_listen = \"127.0.0.1:0\"\n\
                [profiles.ubuntu]\n\
                script = \"ubuntu.ipxe\"\n\
                config = \"user-data.yaml\"\n\
                [profiles.discovery]\n\
                script = \"discovery.ipxe\"\n";
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let builtin = ["discovery.ipxe", "local.ipxe"];
    let lookup = template_lookup(&builtin);
    let err = Config::load(&file, &lookup).map(|_| ());
    let want = format!(
        "{}:6:10: profiles.ubuntu.config: template \"user-data.yaml\" not found in {}",
        file.display(),
        templates.display()
    );
    assert_eq!(err.map_err(|e| e.to_string()), Err(want));

    std::fs::write(templates.join("user-data.yaml"), "#cloud-config\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = Config::load(&file, &lookup).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source.as_deref(), Some(file.as_path()));
    assert!(c
        .validate_templates(|name| templates.join(name).is_file() || builtin.contains(&name))
        .is_empty());
    let missing = c.validate_templates(|name| name != "local.ipxe");
    assert_eq!(missing.len(), 1);
    assert_eq!(
        missing.first().map(ToString::to_string),
        Some(format!(
            "{}: profiles.local.script: template \"local.ipxe\" not found in {}",
            file.display(),
            templates.display()
        ))
    );
}

#[test]
fn unreadable_and_oversized_files_are_one_error_without_position() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let missing = dir.path().join("nope.toml");
    let err = Config::load(&missing, &accept_all)
        .err()
        .map(|ConfigErrors(e)| e);
    let first = err.as_ref().and_then(|e| e.first());
    assert_eq!(first.map(|e| (e.line, e.col)), Some((0, 0)));
    assert!(first.is_some_and(|e| e
        .to_string()
        .starts_with(&format!("{}: cannot open: ", missing.display()))));

    let binary = dir.path().join("bin.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap_or_else(|e| panic!("{e}"));
    let err = Config::load(&binary, &accept_all)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err(format!("{}: not UTF-8 text (byte 0)", binary.display()))
    );

    let huge = dir.path().join("huge.toml");
    let size = usize::try_from(MAX_CONFIG_BYTES).unwrap_or(usize::MAX / 2) + 1;
    std::fs::write(&huge, vec![b'#'; size]).unwrap_or_else(|e| panic!("{e}"));
    let err = Config::load(&huge, &accept_all)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err(format!(
            "{}: larger than {MAX_CONFIG_BYTES} bytes: not a config file",
            huge.display()
        ))
    );
}

#[test]
fn all_errors_are_printed_one_per_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("bad.toml");
    let text = "[server]\npublic_url = \"gopher://x\"\n[tftp]\nmax_windowsize = 0\n[[nodes]]\nmac = \"xx\"\n";
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let shown = Config::load(&file, &accept_all)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let f = file.display();
    assert_eq!(
        shown,
        Err(format!(
            "{f}:2:14: server.public_url: invalid URL \"gopher://x\": expected an http:// or https:// URL\n\
             {f}:4:18: tftp.max_windowsize: must be between 1 and 64, found 0\n\
             {f}:6:7: nodes[0].mac: invalid MAC address \"xx\": expected six hex octets such as 52:54:00:12:34:56"
        ))
    );
}

/// Damaged files (truncated, or a character dropped anywhere) never crash the loader,
/// and every error points inside the file.
#[test]
fn damaged_files_give_positions_inside_the_file() {
    let path = shipped("examples/full-mode.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines = text.lines().count() + 1;
    let mut failures = 0;
    for (i, _) in text.char_indices() {
        let truncated = text.get(..i).unwrap_or_default().to_string();
        let mut dropped = text.clone();
        dropped.remove(i);
        for variant in [truncated, dropped] {
            if let Err(ConfigErrors(errors)) = Config::parse_str(&variant, &path, &accept_all) {
                failures += 1;
                for e in errors {
                    assert!(
                        e.line >= 1 && e.line <= lines && e.col >= 1,
                        "{e} in:\n{variant}"
                    );
                }
            }
        }
    }
    assert!(
        failures > 100,
        "only {failures} damaged variants were refused"
    );
}

const READY_BASE: &str =
    "[server]\nstate_dir = \"/tmp/s\"\npublic_url = \"http://10.0.0.1:8080\"\n";

#[test]
fn profile_ready_checks_and_health_ready_keys() {
    use bootd::ready::Check;
    let path = Path::new("ready.toml");
    let text = format!(
        "{READY_BASE}[health]\nready_interval = \"15s\"\nready_timeout = \"3s\"\n\
         [profiles.pve]\nscript = \"pve.ipxe\"\n\
         ready = [ {{ ssh = 22 }}, {{ tcp = 8006 }}, {{ http = \"https://{{{{ hostname }}}}:8006/api2/json/version\" }} ]\n\
         [profiles.plain]\nscript = \"plain.ipxe\"\n"
    );
    let c = Config::parse_str(&text, path, &accept_all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.health.ready_interval, Duration::from_secs(15));
    assert_eq!(c.health.ready_timeout, Duration::from_secs(3));
    assert_eq!(
        c.profiles.get("pve").map(|p| p.ready.clone()),
        Some(vec![
            Check::Ssh(22),
            Check::Tcp(8006),
            Check::Http("https://{{ hostname }}:8006/api2/json/version".into())
        ])
    );
    assert_eq!(c.profiles.get("plain").map(|p| p.ready.len()), Some(0));
    // Defaults.
    let d = Config::parse_str(READY_BASE, path, &accept_all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.health.ready_interval, Duration::from_secs(30));
    assert_eq!(d.health.ready_timeout, Duration::from_secs(10));
}

#[test]
fn bad_ready_checks_are_reported_with_file_line_col() {
    let path = Path::new("ready.toml");
    let text = format!(
        "{READY_BASE}[health]\nready_timeout = \"0s\"\nready_interval = 30\n\
         [profiles.pve]\nscript = \"pve.ipxe\"\n\
         ready = [ {{ ssh = 22 }}, {{ ping = 1 }}, {{ tcp = 0 }}, {{ http = \"http://{{{{ ip \" }} ]\n"
    );
    let Err(ConfigErrors(errors)) = Config::parse_str(&text, path, &accept_all) else {
        panic!("must fail")
    };
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "ready.toml:5:17: health.ready_timeout: must be between 1s and 5m, found 0s",
            "ready.toml:6:18: health.ready_interval: expected a duration string such as \"30s\", found an integer",
            "ready.toml:9:27: profiles.pve.ready[1].ping: unknown check kind \"ping\"; expected one of ssh, tcp, http",
            "ready.toml:9:47: profiles.pve.ready[2].tcp: must be a port between 1 and 65535, found 0",
            "ready.toml:9:61: profiles.pve.ready[3].http: template error: unexpected end of input, expected end of variable block (line 1)",
        ]
    );
}
