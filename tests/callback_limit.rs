//! Machine callbacks are rate limited per node and per source address: a flood from one
//! host gets 429 with Retry-After while another node's callback from another address
//! still goes through.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::{curl_url, Daemon};
use std::process::Command;

const NODES: &str = r#"
[profiles.t]
script = "t.ipxe"

[[nodes]]
mac = "52:54:00:bb:00:01"
hostname = "flooder"
profile = "t"

[[nodes]]
mac = "52:54:00:bb:00:02"
hostname = "quiet"
profile = "t"
"#;

fn start() -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path().join("state/templates");
    std::fs::create_dir_all(&t).expect("mkdir");
    std::fs::write(t.join("t.ipxe"), "#!ipxe\necho bootd.token={{ token }}\n").expect("write");
    Daemon::start_in(dir, NODES, &[])
}

fn token(d: &Daemon, mac: &str) -> String {
    let (code, script) = d.curl(&[], &format!("/boot/{mac}.ipxe"));
    assert_eq!(code, 200, "{script}");
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bootd.token="))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("no token in {script}"))
        .to_string()
}

/// One curl process posting `body` to every URL: the status codes, in order.
fn post_all(urls: &[String], auth: &str, body: &str, source: &str) -> Vec<u16> {
    let out = Command::new("curl")
        // Bodies go to stdout too (-o names one transfer): each code is on a line of its own.
        .args(["-s", "-w", "\n=%{http_code}\n", "--max-time", "30"])
        .args(["--interface", source, "-X", "POST", "-H", auth, "-d", body])
        .args(urls)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('='))
        .map(|c| c.trim().parse().unwrap_or(0))
        .collect()
}

fn phase_url(d: &Daemon, mac: &str) -> String {
    format!("http://{}/api/v1/nodes/{mac}/phase", d.http)
}

#[test]
fn a_flooding_host_gets_429_and_others_still_pass() {
    let d = start();
    let flooder = token(&d, "52:54:00:bb:00:01");
    let quiet = token(&d, "52:54:00:bb:00:02");
    let body = r#"{"phase":"installing"}"#;

    // Per node: one node's own token, posted far past its burst.
    let urls: Vec<String> = (0..60)
        .map(|_| phase_url(&d, "52:54:00:bb:00:01"))
        .collect();
    let codes = post_all(
        &urls,
        &format!("Authorization: Bearer {flooder}"),
        body,
        "127.0.0.1",
    );
    assert_eq!(codes.len(), 60, "{codes:?}");
    assert_eq!(codes[0], 200, "{codes:?}");
    assert!(
        codes.contains(&429),
        "no 429 for a flooding node: {codes:?}"
    );

    // Per address: callbacks for many machines from one address.
    let urls: Vec<String> = (0..200)
        .map(|i| phase_url(&d, &format!("52:54:00:cc:{:02x}:{:02x}", i / 256, i % 256)))
        .collect();
    let codes = post_all(&urls, "Authorization: Bearer nothing", body, "127.0.0.1");
    assert!(
        codes.contains(&429),
        "no 429 for a flooding address: {codes:?}"
    );
    assert!(codes.iter().all(|c| *c == 403 || *c == 429), "{codes:?}");

    // The 429 is JSON with a Retry-After: one curl process floods again on one connection
    // (fast enough to empty the bucket however loaded the host) and prints every answer.
    let mut flood = Command::new("curl");
    flood.args([
        "-s",
        "-i",
        "--interface",
        "127.0.0.1",
        "-X",
        "POST",
        "-d",
        body,
    ]);
    for i in 0..120 {
        flood.arg(phase_url(&d, &format!("52:54:00:cc:ff:{i:02x}")));
    }
    let out = flood.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let refused = text
        .split("http/1.1 ")
        .find(|answer| answer.starts_with("429"))
        .unwrap_or_else(|| panic!("no 429 in a flood of 120: {text}"));
    assert!(refused.contains("\r\nretry-after: "), "{refused}");
    assert!(refused.contains("{\"error\":"), "{refused}");

    // Another node from another address is not starved.
    let (code, answer) = curl_url(
        &[
            "--interface",
            "127.0.0.2",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {quiet}"),
            "-d",
            body,
        ],
        &phase_url(&d, "52:54:00:bb:00:02"),
    );
    assert_eq!(code, 200, "{answer}");

    let (code, metrics) = d.curl_control(&[], "/metrics");
    assert_eq!(code, 200);
    let limited: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bootd_callbacks_rate_limited_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no bootd_callbacks_rate_limited_total:\n{metrics}"));
    assert!(limited >= 2.0, "{limited}");
}
