//! bootd-storm refuses bad arguments before it touches the network (no DHCP socket is
//! bound in these tests). Having an integration test also makes `cargo test` build the
//! binary, which the root package's `tests/storm_smoke.rs` runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use std::process::{Command, Output};

fn storm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bootd-storm"))
        .args(args)
        .output()
        .expect("bootd-storm runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn zero_machines_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lshw = dir.path().join("lshw.json");
    std::fs::write(&lshw, "{}").unwrap();
    let out = storm(&["--machines", "0", "--lshw", lshw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--machines must be 1..=16777216, not 0"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_or_broken_lshw_report_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let out = storm(&["--lshw", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot read the lshw report {}",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "not json").unwrap();
    let out = storm(&["--lshw", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{} is not JSON", broken.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lshw_is_required() {
    let out = storm(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--lshw"), "{}", stderr(&out));
}
