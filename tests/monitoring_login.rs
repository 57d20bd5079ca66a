//! The monitoring page logs in: without a session it holds no fleet data and asks for an
//! API token; `POST /api/v1/session` answers an HttpOnly, SameSite=Strict cookie that the
//! read API and the event stream take; logout and a revoked token end the session at
//! once. Over raw HTTP, then in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::cdp::{chromium_binary, Browser};
use common::daemon::Daemon;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const PVE: &str = "52:54:00:e1:00:01";
const K8S: &str = "52:54:00:e1:00:02";

const NODES: &str = r#"
[[nodes]]
mac = "52:54:00:e1:00:01"
hostname = "pve1"

[[nodes]]
mac = "52:54:00:e1:00:02"
hostname = "k8s1"
"#;

/// One answer: status, header block, body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The values of a header (names compared without case).
    fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }
}

/// A raw HTTP/1.1 request on the TCP listener with exactly these headers (no token
/// unless one is given), the body read to the end.
fn request(d: &Daemon, method: &str, path: &str, headers: &[String], body: &str) -> Answer {
    let addr = d.http;
    let mut s = TcpStream::connect(addr).expect("connect to bootd");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn login(d: &Daemon, token: &str) -> Answer {
    request(
        d,
        "POST",
        "/api/v1/session",
        &[],
        &json!({ "token": token }).to_string(),
    )
}

/// The `name=value` pair of the answer's session cookie.
fn session_cookie(a: &Answer) -> String {
    let set = a.headers("set-cookie");
    assert_eq!(set.len(), 1, "{}", a.head);
    set[0].split(';').next().unwrap().trim().to_string()
}

fn cookie_header(pair: &str) -> Vec<String> {
    vec![format!("Cookie: theme=dark; {pair}")]
}

fn assert_json_401(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}\n{}", a.head, a.body);
    assert!(a.json()["error"].is_string(), "{what}: {}", a.body);
    assert!(a.headers("set-cookie").is_empty(), "{what}: {}", a.head);
}

fn create_token(d: &Daemon, name: &str) -> String {
    let (code, out, err) = d.bootctl(&["token", "create", name, "--role", "viewer"]);
    assert_eq!(code, 0, "token create {name}: {err}");
    out.trim().to_string()
}

fn revoke(d: &Daemon, name: &str) {
    let (code, _, err) = d.bootctl(&["token", "revoke", name]);
    assert_eq!(code, 0, "token revoke {name}: {err}");
}

/// Moves a node to a phase as an operator would, on the control socket.
fn set_phase(d: &Daemon, mac: &str, phase: &str, message: &str) {
    let mut s = UnixStream::connect(&d.socket).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = json!({ "phase": phase, "message": message }).to_string();
    write!(
        s,
        "POST /api/v1/nodes/{mac}/phase HTTP/1.1\r\nHost: bootd\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[test]
fn session_cookie_over_http() {
    let d = Daemon::start(NODES);

    // Before login: the page is served (it holds no fleet data), the read API is not.
    let page = request(&d, "GET", "/monitoring", &[], "");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(PVE) && !page.body.contains("pve1"));
    let nodes = request(&d, "GET", "/api/v1/nodes", &[], "");
    assert_json_401(&nodes, "nodes without a session");
    let state = request(&d, "GET", "/api/v1/session", &[], "");
    assert_eq!(state.status, 200, "{}", state.body);
    assert_eq!(
        state.json(),
        json!({ "session": null, "read_public": false })
    );

    // Wrong tokens: a JSON 401 and no cookie.
    for wrong in [
        "bootd_0000000000000000000000000000000000000000000000000000000000000000",
        "not-a-token",
        "",
    ] {
        assert_json_401(&login(&d, wrong), &format!("login with {wrong:?}"));
    }
    // Another site cannot log a browser in.
    let cross = request(
        &d,
        "POST",
        "/api/v1/session",
        &["Origin: http://evil.example".to_string()],
        &json!({ "token": d.viewer }).to_string(),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert!(cross.headers("set-cookie").is_empty());

    // The viewer token logs in.
    let ok = login(&d, &d.viewer);
    assert_eq!(ok.status, 200, "{}\n{}", ok.head, ok.body);
    let set = ok.headers("set-cookie");
    assert_eq!(set.len(), 1, "{}", ok.head);
    let attrs: Vec<&str> = set[0].split(';').map(str::trim).collect();
    let id = attrs[0]
        .strip_prefix("bootd_session=")
        .unwrap_or_else(|| panic!("{}", set[0]));
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(attrs.contains(&want), "{want} missing in {}", set[0]);
    }
    // No TLS listener: the request came over plain HTTP, so no `Secure`.
    assert!(!attrs.contains(&"Secure"), "{}", set[0]);
    assert_eq!(ok.headers("cache-control"), ["no-store"]);
    let info = ok.json();
    assert_eq!(info["name"], "harness", "{info}");
    assert_eq!(info["role"], "viewer", "{info}");
    assert!(
        !ok.body.contains(&d.viewer),
        "the token came back: {}",
        ok.body
    );
    let cookie = session_cookie(&ok);

    // The cookie reads the fleet, and the session says who.
    let nodes = request(&d, "GET", "/api/v1/nodes", &cookie_header(&cookie), "");
    assert_eq!(nodes.status, 200, "{}", nodes.body);
    assert!(nodes.body.contains(PVE) && nodes.body.contains(K8S));
    let state = request(&d, "GET", "/api/v1/session", &cookie_header(&cookie), "");
    assert_eq!(state.json()["session"]["name"], "harness", "{}", state.body);
    // A made-up session id reads nothing.
    let forged = cookie_header(&format!("bootd_session={}", "ab".repeat(32)));
    assert_json_401(
        &request(&d, "GET", "/api/v1/nodes", &forged, ""),
        "forged session",
    );
    // The cookie is no node token: it posts no phase.
    let phase = request(
        &d,
        "POST",
        &format!("/api/v1/nodes/{PVE}/phase"),
        &cookie_header(&cookie),
        &json!({ "phase": "failed" }).to_string(),
    );
    assert!(phase.status == 401 || phase.status == 403, "{}", phase.body);

    // Logout: the cookie is cleared and the session is over.
    let out = request(
        &d,
        "POST",
        "/api/v1/session/logout",
        &cookie_header(&cookie),
        "",
    );
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["logged_out"], true);
    let cleared = out.headers("set-cookie");
    assert_eq!(cleared.len(), 1, "{}", out.head);
    assert!(
        cleared[0].starts_with("bootd_session=;") && cleared[0].contains("Max-Age=0"),
        "{}",
        cleared[0]
    );
    assert_json_401(
        &request(&d, "GET", "/api/v1/nodes", &cookie_header(&cookie), ""),
        "nodes after logout",
    );

    // A revoked token's session stops at once, its open event stream too.
    let token = create_token(&d, "wall");
    let cookie = session_cookie(&login(&d, &token));
    let nodes = request(&d, "GET", "/api/v1/nodes", &cookie_header(&cookie), "");
    assert_eq!(nodes.status, 200, "{}", nodes.body);
    let mut stream = TcpStream::connect(d.http).expect("connect");
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Cookie: {cookie}\r\nConnection: close\r\n\r\n",
        d.http
    )
    .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(13).any(|w| w == b"bootd events\n") {
        let n = stream.read(&mut buf).expect("stream opens");
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    revoke(&d, "wall");
    let revoked_at = Instant::now();
    assert_json_401(
        &request(&d, "GET", "/api/v1/nodes", &cookie_header(&cookie), ""),
        "nodes after revocation",
    );
    // The stream ends (its last chunk, then the connection closes) well before a
    // keep-alive would have been due.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the stream went on after the revocation ({e}): {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    assert!(
        got.ends_with(b"0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(revoked_at.elapsed() < Duration::from_secs(5));
    let state = request(&d, "GET", "/api/v1/session", &cookie_header(&cookie), "");
    assert_eq!(state.json()["session"], Value::Null, "{}", state.body);

    // Neither the tokens nor the session ids appear in the log.
    let log = d.log_text();
    assert!(!log.contains(&d.viewer) && !log.contains(&token));
    assert!(!log.contains(id) && !log.contains(&cookie));

    // Logins are rate limited per address: a guessing loop gets 429 with Retry-After.
    let limited = (0..30)
        .map(|_| login(&d, "bootd_guess"))
        .find(|a| a.status == 429)
        .expect("no 429 after 30 wrong logins");
    assert!(
        !limited.headers("retry-after").is_empty(),
        "{}",
        limited.head
    );
    assert!(limited.json()["error"].is_string());
}

#[test]
fn read_public_needs_no_login() {
    let d = Daemon::start(&format!("[http]\nread_public = true\n{NODES}"));
    let state = request(&d, "GET", "/api/v1/session", &[], "");
    assert_eq!(
        state.json(),
        json!({ "session": null, "read_public": true })
    );
    let nodes = request(&d, "GET", "/api/v1/nodes", &[], "");
    assert_eq!(nodes.status, 200, "{}", nodes.body);
}

/// Evaluates a fetch in the page: the status the read API answers it (cookie included).
fn page_fetch_status(page: &mut common::cdp::Page, path: &str) -> i64 {
    page.eval(&format!(
        "fetch('{path}', {{ cache: 'no-store' }}).then(r => r.status)"
    ))
    .expect("fetch in the page")
    .as_i64()
    .expect("a status")
}

fn page_text(page: &mut common::cdp::Page) -> String {
    page.eval("document.documentElement.outerHTML")
        .expect("outerHTML")
        .as_str()
        .expect("text")
        .to_string()
}

fn log_in(page: &mut common::cdp::Page, token: &str) {
    page.eval(&format!(
        "(() => {{ document.getElementById('token').value = '{token}'; \
           document.getElementById('loginform').requestSubmit(); return true; }})()"
    ))
    .expect("submit the login form");
}

fn wait_login_form(page: &mut common::cdp::Page, what: &str) {
    page.wait_until(
        "document.documentElement.dataset.state === 'login' && \
         !document.getElementById('login').hidden && \
         document.getElementById('fleet').hidden && \
         document.querySelectorAll('#nodes tr').length === 0",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{what}: no login form: {e}"));
}

fn wait_fleet(page: &mut common::cdp::Page, what: &str) {
    page.wait_until(
        "document.documentElement.dataset.state === 'ready' && \
         document.querySelectorAll('#nodes tr').length === 2 && \
         document.getElementById('conn').textContent === 'live'",
        Duration::from_secs(15),
    )
    .unwrap_or_else(|e| panic!("{what}: the fleet did not show: {e}"));
}

#[test]
fn page_logs_in_and_out_in_headless_chromium() {
    assert!(
        std::process::Command::new(chromium_binary())
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "{} is not installed: tests/run-all.sh installs Debian's chromium",
        chromium_binary()
    );
    let d = Daemon::start(NODES);
    let browser = Browser::start(1400, 900).expect("start chromium");
    let mut page = browser.page().expect("page");
    page.navigate(&format!("http://{}/monitoring", d.http))
        .expect("navigate");

    // Default config: the login form and no fleet data.
    wait_login_form(&mut page, "first visit");
    let html = page_text(&mut page);
    for secret in [PVE, K8S, "pve1", "k8s1"] {
        assert!(!html.contains(secret), "{secret} in the page before login");
    }
    assert_eq!(page_fetch_status(&mut page, "/api/v1/nodes"), 401);

    // A wrong token: the form says so and stays.
    log_in(&mut page, "bootd_wrong");
    page.wait_until(
        "document.getElementById('loginerr').textContent.includes('not valid')",
        Duration::from_secs(10),
    )
    .expect("the wrong token is refused");
    assert!(!page_text(&mut page).contains(PVE));

    // The harness's viewer token: the table fills, the stream is live.
    log_in(&mut page, &d.viewer);
    wait_fleet(&mut page, "viewer login");
    let who = page
        .eval("document.getElementById('who').textContent")
        .expect("who");
    assert_eq!(who, "harness (viewer)");
    assert_eq!(
        page.eval("document.getElementById('logout').hidden")
            .expect("logout"),
        false
    );
    // The cookie is HttpOnly: the page's script cannot read it.
    assert_eq!(
        page.eval("document.cookie").expect("cookie"),
        Value::String(String::new())
    );
    // A phase change arrives through the event stream, which the cookie opened.
    set_phase(&d, PVE, "installing", "unpacking");
    page.wait_until(
        &format!(
            "(() => {{ const tr = document.querySelector('#nodes tr[data-mac=\"{PVE}\"]'); \
               return tr && tr.dataset.phase === 'installing' && tr.dataset.eventAt; }})()"
        ),
        Duration::from_secs(5),
    )
    .expect("the phase change shows live");

    // Logout: the form again, the fleet gone from the DOM, the cookie dead.
    page.eval("document.getElementById('logout').click(), true")
        .expect("click logout");
    wait_login_form(&mut page, "after logout");
    let html = page_text(&mut page);
    assert!(
        !html.contains(PVE) && !html.contains("pve1"),
        "fleet left after logout"
    );
    assert_eq!(page_fetch_status(&mut page, "/api/v1/nodes"), 401);
    // A reload stays logged out.
    page.navigate(&format!("http://{}/monitoring", d.http))
        .expect("reload");
    wait_login_form(&mut page, "reload after logout");

    // A token revoked while its page is open: back to the login form at once.
    let token = create_token(&d, "wallboard");
    log_in(&mut page, &token);
    wait_fleet(&mut page, "second login");
    assert_eq!(page_fetch_status(&mut page, "/api/v1/nodes"), 200);
    revoke(&d, "wallboard");
    let revoked = Instant::now();
    assert_eq!(page_fetch_status(&mut page, "/api/v1/nodes"), 401);
    wait_login_form(&mut page, "after revocation");
    println!(
        "browser: back at the login form {:?} after the revocation",
        revoked.elapsed()
    );
    assert!(revoked.elapsed() < Duration::from_secs(8));
    let err = page
        .eval("document.getElementById('loginerr').textContent")
        .expect("message");
    assert!(
        err.as_str().is_some_and(|e| e.contains("session ended")),
        "{err}"
    );
    assert!(!page_text(&mut page).contains(PVE));
}
