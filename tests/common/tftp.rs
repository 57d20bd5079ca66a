//! TFTP test helpers: bootd's TFTP service on 127.0.0.1:0 in the test's runtime, a small
//! TFTP client in Rust, raw packet helpers, and external client runs with a time limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootd::tftp::{serve, Metrics, NoopObserver, Observer, Settings};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server; shut down (and awaited) on `stop`, cancelled on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub settings: watch::Sender<Arc<Settings>>,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<Result<(), bootd::tftp::TftpError>>>,
}

impl Server {
    pub async fn start(settings: Settings) -> Server {
        Self::start_with(settings, Arc::new(NoopObserver)).await
    }

    pub async fn start_with(settings: Settings, observer: Arc<dyn Observer>) -> Server {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, rx) = watch::channel(Arc::new(settings));
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            socket,
            rx,
            Arc::clone(&metrics),
            observer,
            shutdown.clone(),
        ));
        Server {
            addr,
            metrics,
            settings: tx,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// Waits until no session is open (or panics after `limit`).
    pub async fn wait_idle(&self, limit: Duration) {
        let start = Instant::now();
        while self.metrics.active_sessions() != 0 {
            assert!(
                start.elapsed() < limit,
                "sessions still open: {}",
                self.metrics.active_sessions()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Test settings: the given root, fast retransmission, generous per-client limit.
pub fn settings(root: &Path) -> Settings {
    Settings {
        root: root.to_path_buf(),
        max_sessions_per_client: 1000,
        retransmit: Duration::from_millis(300),
        max_retries: 3,
        ..Settings::default()
    }
}

/// Deterministic pseudo-random bytes (xorshift), so content errors are visible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap())
}

/// Runs a command with a time limit; the child is killed (by pid) when it overruns.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} ran over {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Same, off the async runtime's threads.
pub async fn run_limited_async(mut cmd: Command, limit: Duration) -> Output {
    tokio::task::spawn_blocking(move || run_limited(&mut cmd, limit))
        .await
        .unwrap()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

// ---- raw packets ----

pub fn rrq(name: &[u8], mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, 1];
    v.extend_from_slice(name);
    v.push(0);
    v.extend_from_slice(mode.as_bytes());
    v.push(0);
    for (k, val) in opts {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

pub fn ack(block: u16) -> [u8; 4] {
    let b = block.to_be_bytes();
    [0, 4, b[0], b[1]]
}

pub fn error_packet(code: u16, msg: &str) -> Vec<u8> {
    let mut v = vec![0, 5];
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(msg.as_bytes());
    v.push(0);
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Data(u16, Vec<u8>),
    Oack(Vec<(String, String)>),
    Error(u16, String),
    Other(Vec<u8>),
}

pub fn parse_reply(p: &[u8]) -> Reply {
    let op = u16::from_be_bytes([p[0], p[1]]);
    match op {
        3 => Reply::Data(u16::from_be_bytes([p[2], p[3]]), p[4..].to_vec()),
        5 => {
            let text = p[4..].split(|&b| b == 0).next().unwrap_or(&[]);
            Reply::Error(
                u16::from_be_bytes([p[2], p[3]]),
                String::from_utf8_lossy(text).into_owned(),
            )
        }
        6 => {
            let parts: Vec<String> = p[2..]
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Reply::Oack(
                parts
                    .chunks(2)
                    .map(|c| (c[0].to_lowercase(), c.get(1).cloned().unwrap_or_default()))
                    .collect(),
            )
        }
        _ => Reply::Other(p.to_vec()),
    }
}

/// Receives one packet (and its sender) or `None` after `wait`.
pub async fn recv(sock: &UdpSocket, wait: Duration) -> Option<(Reply, SocketAddr)> {
    let mut buf = vec![0u8; 70000];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((parse_reply(&buf[..n]), from)),
        _ => None,
    }
}

pub async fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

// ---- a small, complete client ----

/// Downloads `name` with the given options (lockstep or windowed, per the OACK).
pub async fn tftp_get(
    server: SocketAddr,
    name: &str,
    opts: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    const TRIES: u32 = 8;
    let sock = client_socket().await;
    let request = rrq(name.as_bytes(), "octet", opts);
    let mut last: Vec<u8> = request.clone();
    let mut peer: Option<SocketAddr> = None;
    let mut blksize = 512usize;
    let mut window = 1u32;
    let mut expected: u16 = 1;
    let mut in_window = 0u32;
    let mut out = Vec::new();
    let mut timeouts = 0;
    sock.send_to(&request, server)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 70000];
    loop {
        let got = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await;
        let (n, from) = match got {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                timeouts += 1;
                if timeouts > TRIES {
                    return Err(format!("timed out at block {expected}"));
                }
                sock.send_to(&last, peer.unwrap_or(server))
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
        };
        match peer {
            None => peer = Some(from),
            Some(p) if p != from => continue,
            Some(_) => {}
        }
        timeouts = 0;
        match parse_reply(&buf[..n]) {
            Reply::Oack(opts) => {
                for (k, v) in opts {
                    match k.as_str() {
                        "blksize" => blksize = v.parse().map_err(|_| "bad blksize")?,
                        "windowsize" => window = v.parse().map_err(|_| "bad windowsize")?,
                        _ => {}
                    }
                }
                last = ack(0).to_vec();
                sock.send_to(&last, from).await.map_err(|e| e.to_string())?;
            }
            Reply::Data(block, data) => {
                if block == expected {
                    out.extend_from_slice(&data);
                    expected = expected.wrapping_add(1);
                    in_window += 1;
                    let done = data.len() < blksize;
                    if done || in_window >= window {
                        in_window = 0;
                        last = ack(block).to_vec();
                        sock.send_to(&last, from).await.map_err(|e| e.to_string())?;
                    }
                    if done {
                        return Ok(out);
                    }
                } else {
                    // Duplicate or out of order: report the last good block again.
                    in_window = 0;
                    last = ack(expected.wrapping_sub(1)).to_vec();
                    sock.send_to(&last, from).await.map_err(|e| e.to_string())?;
                }
            }
            Reply::Error(code, text) => return Err(format!("ERROR {code}: {text}")),
            Reply::Other(p) => return Err(format!("unexpected packet {p:?}")),
        }
    }
}

/// A temporary root with a few files, removed on drop.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, data).unwrap();
        p
    }
}
