//! The real Prometheus (Debian package `prometheus`) scrapes a real bootd on loopback
//! with config/examples/prometheus.yml adapted to the test's ports, and a bootd series
//! is read back through Prometheus' HTTP API. Both processes are killed by pid at the
//! end, whatever happened.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use common::daemon::{curl_url, Daemon};
use common::json;
use common::util::wait_for;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Prometheus, killed (by pid) when dropped.
struct Prometheus {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped example, pointed at `target` with the token in `token_file`, scraping
/// every second.
fn adapt(example: &str, target: &str, token_file: &Path) -> String {
    assert!(example.contains("10.0.0.1:8080"), "example target moved");
    assert!(
        example.contains("/etc/prometheus/bootd.token"),
        "example token file moved"
    );
    example
        .replace("10.0.0.1:8080", target)
        .replace(
            "/etc/prometheus/bootd.token",
            &token_file.display().to_string(),
        )
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("scrape_timeout: 10s", "scrape_timeout: 1s")
}

#[test]
fn prometheus_scrapes_bootd_and_answers_a_query() {
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.exists(),
        "prometheus is missing: apt-get install prometheus (tests/run-all.sh installs it)"
    );
    let d = Daemon::start("");
    let dir = tempfile::tempdir().expect("tempdir");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/prometheus.yml"),
    )
    .expect("example");
    let config = dir.path().join("prometheus.yml");
    // Scraped with a viewer API token, as the example says (no metrics_public).
    let token_file = dir.path().join("bootd.token");
    std::fs::write(&token_file, &d.viewer).expect("token file");
    std::fs::write(&config, adapt(&example, &d.http.to_string(), &token_file)).expect("config");
    let port = common::free_tcp_port();
    let log = dir.path().join("prometheus.log");
    let out = std::fs::File::create(&log).expect("log");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("prometheus starts");
    let p = Prometheus { child, log };
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=bootd_nodes");
    let mut last = String::new();
    let found = wait_for(Duration::from_secs(60), "a scraped bootd_nodes", || {
        let (code, body) = curl_url(&[], &query);
        last = body;
        code == 200
            && json(&last)["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });
    if found.is_err() {
        panic!(
            "no bootd_nodes through Prometheus: {last}\nprometheus log:\n{}\nbootd log:\n{}",
            common::util::read_lossy(&p.log),
            d.log_text()
        );
    }
    let v = json(&last);
    let series = v["data"]["result"].as_array().unwrap();
    let phases: Vec<&str> = series
        .iter()
        .filter_map(|s| s["metric"]["phase"].as_str())
        .collect();
    assert!(phases.contains(&"running"), "zero series too: {phases:?}");
    assert!(
        series.iter().all(|s| s["metric"]["job"] == "bootd"),
        "{last}"
    );
    drop(p);
}
