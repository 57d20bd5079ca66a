//! Real clients against the server on loopback: atftp, curl and tftp-hpa fetch a
//! 100 MiB file (sha256 equal), netascii, and a client killed mid-transfer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bootd::tftp::Settings;
use common::tftp::*;

const BIG: usize = 100 * 1024 * 1024;
const CLIENT_LIMIT: Duration = Duration::from_secs(300);

fn big_root() -> (Root, String) {
    let root = Root::new();
    let p = root.write("big.bin", &pattern(BIG, 42));
    let sum = sha256_file(&p);
    (root, sum)
}

fn require(tool: &str) {
    assert!(
        have(tool),
        "{tool} is missing: apt-get install -y atftp curl tftp-hpa"
    );
}

fn fetched(out: &Path, expected: &str, what: &str) {
    assert!(out.exists(), "{what}: no output file");
    assert_eq!(
        std::fs::metadata(out).unwrap().len(),
        BIG as u64,
        "{what}: size"
    );
    assert_eq!(sha256_file(out), expected, "{what}: sha256");
}

fn atftp(port: u16, remote: &str, local: &Path, opts: &[&str]) -> Command {
    let mut cmd = Command::new("atftp");
    for o in opts {
        cmd.arg("--option").arg(o);
    }
    cmd.arg("-g")
        .arg("-r")
        .arg(remote)
        .arg("-l")
        .arg(local)
        .arg("127.0.0.1")
        .arg(port.to_string());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_100mib_with_options() {
    require("atftp");
    let (root, sum) = big_root();
    let srv = Server::start(Settings {
        max_blksize: 65464,
        ..settings(root.path())
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    for (i, opts) in [
        vec!["blksize 1468", "tsize 0", "windowsize 16"],
        vec!["blksize 65464", "tsize 0"],
    ]
    .into_iter()
    .enumerate()
    {
        let local = out.path().join(format!("atftp{i}"));
        let t0 = Instant::now();
        let o = run_limited_async(
            atftp(srv.addr.port(), "big.bin", &local, &opts),
            CLIENT_LIMIT,
        )
        .await;
        assert!(
            o.status.success(),
            "atftp {opts:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        fetched(&local, &sum, &format!("atftp {opts:?}"));
        eprintln!("atftp {opts:?}: {:?}", t0.elapsed());
    }
    srv.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(srv.metrics.transfers_completed(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_100mib_with_blksize() {
    require("curl");
    let (root, sum) = big_root();
    let srv = Server::start(Settings {
        max_blksize: 65464,
        ..settings(root.path())
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    for blksize in ["1468", "65464"] {
        let local = out.path().join(format!("curl{blksize}"));
        let mut cmd = Command::new("curl");
        cmd.arg("-sS")
            .arg("--tftp-blksize")
            .arg(blksize)
            .arg(format!("tftp://127.0.0.1:{}/big.bin", srv.addr.port()))
            .arg("-o")
            .arg(&local);
        let t0 = Instant::now();
        let o = run_limited_async(cmd, CLIENT_LIMIT).await;
        assert!(
            o.status.success(),
            "curl {blksize}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        fetched(&local, &sum, &format!("curl blksize {blksize}"));
        eprintln!("curl blksize {blksize}: {:?}", t0.elapsed());
    }
    srv.stop().await;
}

fn tftp_hpa(port: u16, mode: &str, remote: &str, local: &Path) -> Command {
    let mut cmd = Command::new("tftp");
    cmd.arg("-m")
        .arg(mode)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg("-c")
        .arg("get")
        .arg(remote)
        .arg(local);
    cmd
}

/// tftp-hpa negotiates nothing: 512-byte lockstep, so 100 MiB is 204,801 blocks and the
/// block number wraps past 65535 three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_100mib_lockstep_512_wraps() {
    require("tftp");
    let (root, sum) = big_root();
    let srv = Server::start(settings(root.path())).await;
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("hpa");
    let t0 = Instant::now();
    let o = run_limited_async(
        tftp_hpa(srv.addr.port(), "binary", "big.bin", &local),
        CLIENT_LIMIT,
    )
    .await;
    assert!(
        o.status.success(),
        "tftp: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    fetched(&local, &sum, "tftp-hpa");
    eprintln!("tftp-hpa 512: {:?}", t0.elapsed());
    srv.stop().await;
}

#[tokio::test]
async fn netascii_round_trip_with_tftp_hpa() {
    require("tftp");
    let root = Root::new();
    let text = b"#!ipxe\nchain http://10.0.0.1/boot/${net0/mac}.ipxe\r\nbare\rcr\n".repeat(40);
    root.write("boot.ipxe", &text);
    let srv = Server::start(settings(root.path())).await;
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("boot.ipxe");
    let o = run_limited_async(
        tftp_hpa(srv.addr.port(), "netascii", "boot.ipxe", &local),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        o.status.success(),
        "tftp: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The client turns CR LF back into LF and CR NUL into CR: the original bytes.
    assert_eq!(std::fs::read(&local).unwrap(), text);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_client_frees_its_session() {
    require("atftp");
    let (root, _) = big_root();
    let srv = Server::start(settings(root.path())).await;
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("partial");
    let mut child = atftp(srv.addr.port(), "big.bin", &local, &["blksize 512"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while srv.metrics.active_sessions() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "transfer never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    // ICMP unreachable or the retransmission limit (300 ms doubling, 3 retries) ends it.
    srv.wait_idle(Duration::from_secs(8)).await;
    assert_eq!(srv.metrics.transfers_completed(), 0);
    assert_eq!(srv.metrics.errors(bootd::tftp::ErrorKind::Timeout), 1);
    srv.stop().await;
}
