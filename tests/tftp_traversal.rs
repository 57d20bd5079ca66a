//! An attacker's traversal corpus against the real server: not one byte from outside
//! the root, whatever the spelling (dots, backslashes, percent signs, NUL, symlinks).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::tftp::*;

const MARKER: &str = "SECRET-MARKER-7f3a9c";
const PASSWD_MARKER: &str = "root:x:0:0";

struct Layout {
    base: tempfile::TempDir,
}

impl Layout {
    /// base/secret.txt (outside), base/outdir/secret.txt, base/root/ = the TFTP root.
    fn new() -> Layout {
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        std::fs::write(b.join("secret.txt"), MARKER).unwrap();
        std::fs::create_dir(b.join("outdir")).unwrap();
        std::fs::write(b.join("outdir/secret.txt"), MARKER).unwrap();
        let r = b.join("root");
        std::fs::create_dir_all(r.join("files")).unwrap();
        std::fs::write(r.join("files/ok.txt"), "OK-INSIDE").unwrap();
        let link =
            |target: &Path, name: &str| std::os::unix::fs::symlink(target, r.join(name)).unwrap();
        link(&b.join("secret.txt"), "link_out");
        link(Path::new("../secret.txt"), "rel_out");
        link(Path::new("../../../../../../../../etc/passwd"), "deep_out");
        link(&b.join("outdir"), "dir_out");
        link(Path::new("../outdir"), "rel_dir_out");
        link(Path::new("/etc"), "etc");
        link(Path::new("/"), "slash");
        link(Path::new("files/ok.txt"), "in_link");
        link(Path::new("files"), "in_dir");
        link(Path::new("files/../files/ok.txt"), "in_link_dots");
        // A loop must fail cleanly, not hang.
        link(Path::new("loop_b"), "loop_a");
        link(Path::new("loop_a"), "loop_b");
        Layout { base }
    }
    fn root(&self) -> std::path::PathBuf {
        self.base.path().join("root")
    }
}

fn corpus(base: &Path) -> Vec<Vec<u8>> {
    let b = base.display().to_string();
    let mut names: Vec<Vec<u8>> = [
        "..",
        "../..",
        "../secret.txt",
        "../../secret.txt",
        "../root/../secret.txt",
        "/../secret.txt",
        "/..",
        "/../../../../../../etc/passwd",
        "..\\secret.txt",
        "..\\..\\secret.txt",
        "\\..\\secret.txt",
        "files\\..\\..\\secret.txt",
        "files/../../secret.txt",
        "files/./../../secret.txt",
        "./../secret.txt",
        ".\\..\\secret.txt",
        "..//secret.txt",
        "..\\/secret.txt",
        ".../secret.txt",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "..%2fsecret.txt",
        "%2E%2E%5Csecret.txt",
        "..%c0%afsecret.txt",
        "%252e%252e%252fsecret.txt",
        "\u{ff0e}\u{ff0e}/secret.txt",
        "\u{2024}\u{2024}/secret.txt",
        ".. /secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "\\etc\\passwd",
        "/etc/shadow",
        "file:///etc/passwd",
        "/proc/self/root/etc/passwd",
        "proc/self/root/etc/passwd",
        "/proc/self/cwd/secret.txt",
        "/dev/zero",
        "link_out",
        "/link_out",
        "\\link_out",
        "rel_out",
        "deep_out",
        "dir_out/secret.txt",
        "rel_dir_out/secret.txt",
        "dir_out/../secret.txt",
        "etc/passwd",
        "slash/etc/passwd",
        "slash/proc/self/root/etc/passwd",
        "loop_a",
        "in_dir/../../secret.txt",
        "files",
        "/",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Absolute host paths, in every spelling.
    names.push(format!("{b}/secret.txt").into_bytes());
    names.push(format!("{b}/root/../secret.txt").into_bytes());
    names.push(format!("{b}\\secret.txt").replace('/', "\\").into_bytes());
    // Over-long names.
    names.push(vec![b'a'; 256]);
    names.push("a/".repeat(600).into_bytes());
    names.push("../".repeat(400).into_bytes());
    names.push(format!("{}secret.txt", "../".repeat(100)).into_bytes());
    // Non-UTF-8 and control bytes.
    names.push(b"..\xc0\xafsecret.txt".to_vec());
    names.push(b"\xff\xfe../secret.txt".to_vec());
    names.push(b"files/ok.txt\n../secret.txt".to_vec());
    names
}

/// Sends one raw RRQ (optionally with options), ACKs every DATA, returns all payload
/// bytes and any error texts.
async fn attack(server: std::net::SocketAddr, packet: &[u8]) -> (Vec<u8>, Vec<String>) {
    let sock = client_socket().await;
    sock.send_to(packet, server).await.unwrap();
    let mut payload = Vec::new();
    let mut errors = Vec::new();
    while let Some((reply, from)) = recv(&sock, Duration::from_millis(400)).await {
        match reply {
            Reply::Data(block, data) => {
                payload.extend_from_slice(&data);
                sock.send_to(&ack(block), from).await.unwrap();
            }
            Reply::Oack(_) => {
                sock.send_to(&ack(0), from).await.unwrap();
            }
            Reply::Error(_, text) => {
                errors.push(text);
                // Give a late DATA (which must not exist) a moment to show up.
                if let Some((late, _)) = recv(&sock, Duration::from_millis(20)).await {
                    payload.extend_from_slice(format!("{late:?}").as_bytes());
                }
                break;
            }
            Reply::Other(p) => payload.extend_from_slice(&p),
        }
    }
    (payload, errors)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_corpus_never_leaks() {
    let layout = Layout::new();
    let srv = Server::start(settings(&layout.root())).await;
    let base = layout.base.path().display().to_string();
    let mut checked = 0;
    for name in corpus(layout.base.path()) {
        for opts in [&[][..], &[("blksize", "1468"), ("tsize", "0")][..]] {
            for mode in ["octet", "netascii"] {
                let (payload, errors) = attack(srv.addr, &rrq(&name, mode, opts)).await;
                let shown = String::from_utf8_lossy(&name).into_owned();
                assert!(!contains(&payload, MARKER), "{shown:?} leaked the secret");
                assert!(
                    !contains(&payload, PASSWD_MARKER),
                    "{shown:?} leaked /etc/passwd"
                );
                assert!(payload.is_empty(), "{shown:?} returned data: {payload:?}");
                assert_eq!(errors.len(), 1, "{shown:?}: {errors:?}");
                for e in &errors {
                    assert!(
                        ["file not found", "access violation", "malformed request"]
                            .contains(&e.as_str()),
                        "{shown:?}: unexpected error text {e:?}"
                    );
                    assert!(
                        !e.contains(&base) && !e.contains('/'),
                        "{e:?} reveals a path"
                    );
                }
                checked += 1;
            }
        }
    }
    // NUL bytes inside the name end the filename; what follows is no valid mode.
    for packet in [
        b"\0\x01files/ok.txt\0../secret.txt\0octet\0".to_vec(),
        b"\0\x01..\0/secret.txt\0octet\0".to_vec(),
        b"\0\x01\0../secret.txt\0octet\0".to_vec(),
        b"\0\x01../secret.txt".to_vec(),
    ] {
        let (payload, errors) = attack(srv.addr, &packet).await;
        assert!(
            payload.is_empty() && errors.len() == 1,
            "{packet:?}: {errors:?}"
        );
        checked += 1;
    }
    eprintln!("{checked} attack requests refused");
    // Symlinks that stay inside the root are served.
    for name in [
        "in_link",
        "in_dir/ok.txt",
        "in_link_dots",
        "files/ok.txt",
        "/files\\ok.txt",
    ] {
        let got = tftp_get(srv.addr, name, &[]).await.unwrap();
        assert_eq!(got, b"OK-INSIDE", "{name}");
    }
    srv.wait_idle(Duration::from_secs(3)).await;
    assert_eq!(srv.metrics.transfers_completed(), 5);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_never_leak() {
    let layout = Layout::new();
    let srv = Server::start(settings(&layout.root())).await;
    let port = srv.addr.port();
    let out = tempfile::tempdir().unwrap();
    let names = [
        "../secret.txt",
        "..\\..\\secret.txt",
        "/etc/passwd",
        "link_out",
        "rel_out",
        "dir_out/secret.txt",
        "etc/passwd",
        "slash/etc/passwd",
        "%2e%2e/secret.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut runs = Vec::new();
        if have("atftp") {
            let local = out.path().join(format!("a{i}"));
            let mut cmd = Command::new("atftp");
            cmd.args(["-g", "-r", name, "-l"])
                .arg(&local)
                .arg("127.0.0.1")
                .arg(port.to_string());
            runs.push((cmd, local));
        }
        if have("curl") {
            let local = out.path().join(format!("c{i}"));
            let mut cmd = Command::new("curl");
            // curl would normalise ../ itself; --path-as-is sends it as written.
            cmd.arg("-s")
                .arg("--path-as-is")
                .arg(format!("tftp://127.0.0.1:{port}/{name}"))
                .arg("-o")
                .arg(&local);
            runs.push((cmd, local));
        }
        if have("tftp") {
            let local = out.path().join(format!("h{i}"));
            let mut cmd = Command::new("tftp");
            cmd.arg("127.0.0.1")
                .arg(port.to_string())
                .args(["-c", "get", name])
                .arg(&local);
            runs.push((cmd, local));
        }
        assert!(!runs.is_empty(), "no TFTP client installed");
        for (cmd, local) in runs {
            let _ = run_limited_async(cmd, Duration::from_secs(30)).await;
            let got = std::fs::read(&local).unwrap_or_default();
            assert!(!contains(&got, MARKER), "{name} leaked via a client");
            assert!(!contains(&got, PASSWD_MARKER), "{name} leaked /etc/passwd");
            assert!(got.is_empty(), "{name}: got {} bytes", got.len());
        }
    }
    srv.wait_idle(Duration::from_secs(3)).await;
    assert_eq!(srv.metrics.transfers_completed(), 0);
    srv.stop().await;
}
