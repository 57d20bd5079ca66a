//! Who may call what on the network listener, walked over the route tables themselves:
//! no token, viewer, operator (with and without `[http] operator_api`), a node's token,
//! a revoked and an expired API token, the monitoring page's session cookie; 401 bodies
//! are JSON; no token in clear in the store or the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use bootd::http::{Access, ADMIN_ROUTES, PUBLIC_ROUTES};
use common::daemon::{curl_url, Daemon};
use std::time::Duration;

/// The node every `{mac}` of the public table names: defined, with a script that
/// carries its token.
const MAC: &str = "52:54:00:aa:00:01";
/// The MAC admin routes name: not defined, so PATCH/DELETE/adopt change nothing.
const OTHER_MAC: &str = "52:54:00:aa:00:09";

const NODES: &str = r#"
[profiles.t]
script = "t.ipxe"

[[nodes]]
mac = "52:54:00:aa:00:01"
hostname = "alpha"
profile = "t"
"#;

fn start(operator_api: bool) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("state/templates");
    std::fs::create_dir_all(&t).expect("mkdir");
    std::fs::write(t.join("t.ipxe"), "#!ipxe\necho bootd.token={{ token }}\n").expect("write");
    let extra = format!("{NODES}\n[http]\noperator_api = {operator_api}\n");
    Daemon::start_in(dir, &extra, &[])
}

fn concrete(pattern: &str, mac: &str) -> String {
    pattern
        .replace("{mac}", mac)
        .replace("{file}", &format!("{mac}.ipxe"))
        .replace("{*rest}", "none/such")
        .replace("{name}", "nobody")
}

/// A request on the TCP listener with `token` (if any) as Bearer: (status, body, head).
fn call(d: &Daemon, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{}{}", d.http, path);
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args: Vec<&str> = vec!["-X", method, "--max-time", "3"];
    if method == "POST" || method == "PATCH" {
        args.extend(["-H", "Content-Type: application/json", "-d", "{}"]);
    }
    if let Some(a) = &auth {
        args.extend(["-H", a]);
    }
    // Without a token the harness's curl_url sends none: the raw call.
    curl_url(&args, &url)
}

fn create(d: &Daemon, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", name, "--role", role];
    args.extend_from_slice(extra);
    let (code, out, err) = d.bootctl(&args);
    assert_eq!(code, 0, "token create {name}: {err}");
    out.trim().to_string()
}

fn node_token(d: &Daemon) -> String {
    let (code, script) = d.curl(&[], &format!("/boot/{MAC}.ipxe"));
    assert_eq!(code, 200, "{script}");
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bootd.token="))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no token in {script}"))
        .to_string()
}

fn refused(code: u16) -> bool {
    code == 401 || code == 403
}

/// Asserts a 401 answer is JSON with an `error`.
fn assert_json_401(code: u16, body: &str, what: &str) {
    assert_eq!(code, 401, "{what}: {body}");
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: 401 body not JSON ({e}): {body}"));
    assert!(v["error"].is_string(), "{what}: {body}");
}

struct Tokens {
    viewer: String,
    operator: String,
    node: String,
    revoked: String,
    expired: String,
}

fn tokens(d: &Daemon) -> Tokens {
    let operator = create(d, "op", "operator", &[]);
    let revoked = create(d, "gone", "viewer", &[]);
    let expired = create(d, "brief", "viewer", &["--expires", "1s"]);
    // A revoked token is refused at once: it worked the moment before.
    let (code, _) = call(d, "GET", "/api/v1/nodes", Some(&revoked));
    assert_eq!(code, 200);
    let (code, _, err) = d.bootctl(&["token", "revoke", "gone"]);
    assert_eq!(code, 0, "{err}");
    let (code, body) = call(d, "GET", "/api/v1/nodes", Some(&revoked));
    assert_json_401(code, &body, "revoked token");
    std::thread::sleep(Duration::from_millis(2500));
    Tokens {
        viewer: d.viewer.clone(),
        operator,
        node: node_token(d),
        revoked,
        expired,
    }
}

fn walk(d: &Daemon, t: &Tokens, operator_api: bool) {
    for r in PUBLIC_ROUTES {
        let path = concrete(r.pattern, MAC);
        let method = r.methods[0];
        let what = |who: &str| format!("{method} {path} as {who} (operator_api={operator_api})");
        match r.access {
            Access::Open => {
                for tok in [None, Some(t.viewer.as_str()), Some(t.revoked.as_str())] {
                    let (code, body) = call(d, method, &path, tok);
                    assert!(!refused(code), "{}: {code} {body}", what("anyone"));
                }
            }
            Access::Read | Access::Metrics => {
                let (code, body) = call(d, method, &path, None);
                assert_json_401(code, &body, &what("no token"));
                for (who, tok) in [
                    ("node token", &t.node),
                    ("revoked", &t.revoked),
                    ("expired", &t.expired),
                ] {
                    let (code, body) = call(d, method, &path, Some(tok));
                    assert_json_401(code, &body, &what(who));
                }
                if path == "/api/v1/events" {
                    continue; // a stream: its success never ends (tests/monitoring.rs)
                }
                for (who, tok) in [("viewer", &t.viewer), ("operator", &t.operator)] {
                    let (code, body) = call(d, method, &path, Some(tok));
                    assert!(!refused(code), "{}: {code} {body}", what(who));
                }
            }
            Access::Machine => {
                for (who, tok) in [
                    ("no token", None),
                    ("viewer", Some(&t.viewer)),
                    ("revoked", Some(&t.revoked)),
                    ("expired", Some(&t.expired)),
                ] {
                    let (code, body) = call(d, method, &path, tok.map(String::as_str));
                    assert!(refused(code), "{}: {code} {body}", what(who));
                }
                let (code, body) = call(d, method, &path, Some(&t.node));
                assert!(!refused(code), "{}: {code} {body}", what("node token"));
                let (code, body) = call(d, method, &path, Some(&t.operator));
                assert_eq!(
                    refused(code),
                    !operator_api,
                    "{}: {code} {body}",
                    what("operator")
                );
            }
            Access::Hook => {
                // Only the token of a running formation's delivery; none is under way.
                for (who, tok) in [
                    ("no token", None),
                    ("viewer", Some(&t.viewer)),
                    ("operator", Some(&t.operator)),
                    ("node token", Some(&t.node)),
                ] {
                    let (code, body) = call(d, method, &path, tok.map(String::as_str));
                    assert!(refused(code), "{}: {code} {body}", what(who));
                }
            }
            Access::Operator | Access::ControlOnly => {
                panic!("{path}: the public table holds no admin access")
            }
        }
    }
    for r in ADMIN_ROUTES {
        let path = concrete(r.pattern, OTHER_MAC);
        let method = r.method;
        let what = |who: &str| format!("{method} {path} as {who} (operator_api={operator_api})");
        let served = operator_api && r.access == Access::Operator;
        for (who, tok) in [("viewer", &t.viewer), ("node token", &t.node)] {
            let (code, body) = call(d, method, &path, Some(tok));
            assert!(refused(code), "{}: {code} {body}", what(who));
        }
        let (code, body) = call(d, method, &path, None);
        if served {
            assert_json_401(code, &body, &what("no token"));
            for (who, tok) in [("revoked", &t.revoked), ("expired", &t.expired)] {
                let (code, body) = call(d, method, &path, Some(tok));
                assert_json_401(code, &body, &what(who));
            }
        } else {
            assert_eq!(code, 403, "{}: {body}", what("no token"));
        }
        let (code, body) = call(d, method, &path, Some(&t.operator));
        assert_eq!(
            !refused(code),
            served,
            "{}: {code} {body}",
            what("operator")
        );
    }
}

/// `POST /api/v1/session` with `token`: (status, the session cookie's `name=value`, body).
fn login(d: &Daemon, token: &str) -> (u16, Option<String>, String) {
    let url = format!("http://{}/api/v1/session", d.http);
    let body = serde_json::json!({ "token": token }).to_string();
    let args = [
        "-X",
        "POST",
        "--max-time",
        "3",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        "-D",
        "-",
    ];
    let (code, out) = curl_url(&args, &url);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let cookie = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("set-cookie")
            .then(|| v.trim().split(';').next().unwrap_or_default().to_string())
    });
    (code, cookie, body.to_string())
}

/// A request on the TCP listener carrying only a session cookie.
fn call_cookie(d: &Daemon, method: &str, path: &str, cookie: &str) -> (u16, String) {
    let url = format!("http://{}{}", d.http, path);
    let header = format!("Cookie: {cookie}");
    let mut args: Vec<&str> = vec!["-X", method, "--max-time", "3", "-H", &header];
    if method == "POST" || method == "PATCH" {
        args.extend(["-H", "Content-Type: application/json", "-d", "{}"]);
    }
    curl_url(&args, &url)
}

/// The session routes: only a live viewer or operator token logs in; the cookie stands
/// for its token on the read routes (`Access::Read`, `Access::Metrics`) and never on a
/// machine callback or an admin route, whatever the token's role.
fn sessions(d: &Daemon, t: &Tokens, operator_api: bool) {
    for (who, tok) in [
        ("node token", &t.node),
        ("revoked", &t.revoked),
        ("expired", &t.expired),
    ] {
        let (code, cookie, body) = login(d, tok);
        assert_json_401(code, &body, &format!("login as {who}"));
        assert_eq!(cookie, None, "login as {who} set a cookie");
    }
    for (who, tok) in [("viewer", &t.viewer), ("operator", &t.operator)] {
        let (code, cookie, body) = login(d, tok);
        assert_eq!(code, 200, "login as {who}: {body}");
        let cookie = cookie.unwrap_or_else(|| panic!("login as {who}: no cookie"));
        let what = |m: &str, p: &str| {
            format!("{m} {p} with the {who} session (operator_api={operator_api})")
        };
        for r in PUBLIC_ROUTES {
            let path = concrete(r.pattern, MAC);
            let method = r.methods[0];
            match r.access {
                Access::Read | Access::Metrics if path != "/api/v1/events" => {
                    let (code, body) = call_cookie(d, method, &path, &cookie);
                    assert!(!refused(code), "{}: {code} {body}", what(method, &path));
                }
                Access::Machine | Access::Hook => {
                    let (code, body) = call_cookie(d, method, &path, &cookie);
                    assert!(refused(code), "{}: {code} {body}", what(method, &path));
                }
                _ => {}
            }
        }
        for r in ADMIN_ROUTES {
            let path = concrete(r.pattern, OTHER_MAC);
            let (code, body) = call_cookie(d, r.method, &path, &cookie);
            assert!(refused(code), "{}: {code} {body}", what(r.method, &path));
        }
        let (code, body) = call_cookie(d, "POST", "/api/v1/session/logout", &cookie);
        assert_eq!(code, 200, "{body}");
        let (code, body) = call_cookie(d, "GET", "/api/v1/nodes", &cookie);
        assert_json_401(code, &body, &what("GET", "/api/v1/nodes after logout"));
    }
}

/// No token issued during the test appears in clear in the store (database and WAL)
/// or in the log.
fn assert_no_clear_tokens(d: &Daemon, t: &Tokens) {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(d.state())
        .expect("state dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bootd.db"))
        })
        .collect();
    assert!(!files.is_empty(), "no bootd.db in {}", d.state().display());
    files.push(d.log.clone());
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        for (who, tok) in [
            ("viewer", &t.viewer),
            ("operator", &t.operator),
            ("node", &t.node),
            ("revoked", &t.revoked),
            ("expired", &t.expired),
        ] {
            assert!(tok.len() >= 16, "{who} token too short: {tok}");
            assert!(
                !bytes.windows(tok.len()).any(|w| w == tok.as_bytes()),
                "{who} token in clear in {}",
                f.display()
            );
        }
    }
}

#[test]
fn every_route_with_every_kind_of_token() {
    for operator_api in [false, true] {
        let d = start(operator_api);
        let t = tokens(&d);
        walk(&d, &t, operator_api);
        sessions(&d, &t, operator_api);
        assert_no_clear_tokens(&d, &t);
    }
}

#[test]
fn token_list_shows_names_and_roles_but_no_secret() {
    let d = start(false);
    let op = create(&d, "deploy-bot", "operator", &["--expires", "30d"]);
    let (code, out, err) = d.bootctl(&["token", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("deploy-bot") && out.contains("operator"),
        "{out}"
    );
    assert!(out.contains("harness") && out.contains("viewer"), "{out}");
    assert!(!out.contains(&op) && !out.contains(&d.viewer), "{out}");
    // A second token of the same name is refused; revoking an unknown one fails.
    let (code, _, _) = d.bootctl(&["token", "create", "deploy-bot", "--role", "viewer"]);
    assert_ne!(code, 0);
    let (code, _, _) = d.bootctl(&["token", "revoke", "nobody"]);
    assert_ne!(code, 0);
    let (code, _, err) = d.bootctl(&["token", "revoke", "deploy-bot"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = d.bootctl(&["token", "list"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("deploy-bot"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!row.trim_end().ends_with('-'), "not marked revoked: {out}");
}

/// The audit entries `bootctl audit --json` lists: (who, action, target, before, after).
fn audit(d: &Daemon) -> Vec<serde_json::Value> {
    let (code, out, err) = d.bootctl(&["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .cloned()
        .or_else(|| v["entries"].as_array().cloned())
        .unwrap_or_else(|| panic!("no entries in {out}"))
}

#[test]
fn operator_changes_are_audited_with_before_and_after() {
    let d = start(false);
    let run = |args: &[&str]| {
        let (code, out, err) = d.bootctl(args);
        assert_eq!(code, 0, "bootctl {args:?}: {out}{err}");
    };
    const NEW: &str = "52:54:00:aa:00:02";
    run(&["node", "add", NEW, "--hostname", "beta", "--profile", "t"]);
    run(&["node", "set", NEW, "--hostname", "gamma"]);
    run(&["phase", NEW, "installing"]);
    run(&["reprovision", NEW]);
    run(&["node", "rm", NEW]);
    // A machine nobody defined boots, is discovered, then adopted.
    let (code, body) = d.curl(&[], "/boot/52:54:00:aa:00:03.ipxe");
    assert_eq!(code, 200, "{body}");
    run(&[
        "node",
        "adopt",
        "52:54:00:aa:00:03",
        "--profile",
        "t",
        "--hostname",
        "delta",
    ]);
    run(&["reload"]);

    let entries = audit(&d);
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {entries:?}"))
            .clone()
    };
    for action in [
        "token_create",
        "node_add",
        "node_set",
        "phase_override",
        "reprovision",
        "node_remove",
        "node_adopt",
        "reload",
    ] {
        let e = find(action);
        let who = e["who"].as_str().unwrap_or_default();
        assert!(who.starts_with("operator:"), "{action}: who {who}");
    }
    let set = find("node_set");
    assert_eq!(set["target"], NEW);
    assert!(
        set["before"].as_str().unwrap().contains("\"beta\""),
        "{set}"
    );
    assert!(
        set["after"].as_str().unwrap().contains("\"gamma\""),
        "{set}"
    );
    let phase = find("phase_override");
    assert!(
        phase["after"].as_str().unwrap().contains("installing"),
        "{phase}"
    );
    let rm = find("node_remove");
    assert!(rm["before"].as_str().unwrap().contains("gamma"), "{rm}");
    assert_eq!(rm["after"], "");
    let adopt = find("node_adopt");
    assert!(
        adopt["before"].as_str().unwrap().contains("discovered"),
        "{adopt}"
    );
    assert!(
        adopt["after"].as_str().unwrap().contains("delta"),
        "{adopt}"
    );
    // No token hash in the audit log.
    for e in &entries {
        assert!(!e.to_string().contains("token_hash"), "{e}");
    }
    // The table names them too.
    let (code, table, err) = d.bootctl(&["audit", "--since", "1h"]);
    assert_eq!(code, 0, "{err}");
    for action in [
        "node_add",
        "node_set",
        "node_remove",
        "node_adopt",
        "reload",
    ] {
        assert!(table.contains(action), "{action} missing:\n{table}");
    }
}
