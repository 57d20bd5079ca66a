//! Read-only TFTP service (RFC 1350/2347/2348/2349/7440): the listener loop that checks
//! requests and bounds sessions, and the types bootd configures and observes it with.

pub mod cache;
pub mod metrics;
pub use bootd_proto::tftp::options;
pub use bootd_proto::tftp::packet;
pub mod path;
mod session;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use metrics::Metrics;

use packet::{write_error, ErrorCode, MAX_REQUEST_LEN};

/// How long running transfers may go on after shutdown before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Receive buffer asked for on the listening socket, so a boot storm's requests queue.
const LISTEN_RCVBUF: usize = 4 * 1024 * 1024;
/// Most session threads (one per core up to this).
const SESSION_THREADS_MAX: usize = 4;
/// Consecutive receive errors on the listener after which `serve` gives up.
const MAX_CONSECUTIVE_RECV_ERRORS: u32 = 1000;
/// At most one "session limit reached" warning per this long (a boot storm would
/// otherwise log one line per refused request).
const BUSY_WARN_EVERY: Duration = Duration::from_secs(10);

/// TFTP settings; a new value from the watch channel applies to new sessions only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Directory served; nothing outside it is ever read.
    pub root: PathBuf,
    /// Largest block size granted (RFC 2348 allows up to 65464).
    pub max_blksize: u16,
    /// Largest window granted (RFC 7440).
    pub max_windowsize: u16,
    /// Most sessions at once, all clients together.
    pub max_sessions: usize,
    /// Most sessions at once from one client IP address.
    pub max_sessions_per_client: usize,
    /// Files up to this size are served from the shared memory cache; larger ones stream.
    pub cache_max_file: u64,
    /// First retransmission interval (a client's `timeout` option overrides it).
    pub retransmit: Duration,
    /// Retransmissions of one packet before the client is given up on.
    pub max_retries: u32,
    /// Longest a single transfer may take.
    pub session_deadline: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: PathBuf::from("."),
            max_blksize: crate::config::DEFAULT_TFTP_BLKSIZE,
            max_windowsize: crate::config::DEFAULT_TFTP_WINDOWSIZE,
            max_sessions: crate::config::DEFAULT_TFTP_SESSIONS,
            max_sessions_per_client: crate::config::DEFAULT_TFTP_SESSIONS_PER_CLIENT,
            cache_max_file: 64 * 1024 * 1024,
            retransmit: Duration::from_secs(1),
            max_retries: 5,
            session_deadline: Duration::from_secs(5 * 60),
        }
    }
}

/// Hooks for the rest of bootd: transfer events and per-machine generated files.
pub trait Observer: Send + Sync + 'static {
    /// Called once per read request whose file was opened; `path` is normalised and
    /// relative to the root, without a leading `/` (`grub/grub.cfg`).
    fn transfer_started(&self, peer: SocketAddr, path: &str);
    /// Contents to serve instead of the disk for `path` (same form as above), if any.
    fn virtual_file(&self, peer: SocketAddr, path: &str) -> Option<Bytes>;
}

/// An observer that ignores events and has no virtual files.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn transfer_started(&self, _peer: SocketAddr, _path: &str) {}
    fn virtual_file(&self, _peer: SocketAddr, _path: &str) -> Option<Bytes> {
        None
    }
}

/// Failures that stop the whole TFTP service.
#[derive(Debug, Error)]
pub enum TftpError {
    /// The listening socket has no local address.
    #[error("reading the TFTP listener's local address: {0}")]
    LocalAddr(#[source] io::Error),
    /// A session thread or its runtime could not be started.
    #[error("starting a TFTP session thread: {0}")]
    Runtime(#[source] io::Error),
    /// The listening socket keeps failing.
    #[error(
        "receiving on the TFTP listener failed {MAX_CONSECUTIVE_RECV_ERRORS} times in a row: {0}"
    )]
    Recv(#[source] io::Error),
}

pub use bootd_proto::tftp::{Decision, ErrorKind};

/// Decides what to do with a datagram received on the listening port (pure).
pub fn decide(datagram: &[u8], settings: &Settings) -> Decision {
    bootd_proto::tftp::decide(datagram, settings.max_blksize, settings.max_windowsize)
}

/// Serves TFTP on `socket` until `shutdown`, then drains transfers for at most
/// [`SHUTDOWN_GRACE`].
pub async fn serve(
    socket: UdpSocket,
    settings: watch::Receiver<Arc<Settings>>,
    metrics: Arc<Metrics>,
    observer: Arc<dyn Observer>,
    shutdown: CancellationToken,
) -> Result<(), TftpError> {
    let local = socket.local_addr().map_err(TftpError::LocalAddr)?;
    // Best effort: the kernel caps it at rmem_max.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(LISTEN_RCVBUF);
    let shared = Arc::new(session::Shared {
        metrics: Arc::clone(&metrics),
        observer,
        cache: cache::FileCache::new(),
        hard_stop: CancellationToken::new(),
    });
    let admission = Arc::new(Admission::default());
    let tracker = TaskTracker::new();
    let mut pool = SessionPool::start(&shared, &tracker).map_err(TftpError::Runtime)?;
    // One byte more than the largest request, so an oversized one is seen as such.
    let mut buf = vec![0u8; MAX_REQUEST_LEN + 1];
    let mut reply = Vec::with_capacity(128);
    let mut recv_errors = 0u32;
    let mut busy_warned: Option<Instant> = None;
    info!(%local, "tftp listening");
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, peer) = match received {
            Ok(x) => {
                recv_errors = 0;
                x
            }
            Err(e) => {
                recv_errors += 1;
                if recv_errors >= MAX_CONSECUTIVE_RECV_ERRORS {
                    return Err(TftpError::Recv(e));
                }
                debug!(error = %e, "tftp listener receive error");
                continue;
            }
        };
        if peer.port() == 0 {
            continue;
        }
        let current = Arc::clone(&settings.borrow());
        let datagram = buf.get(..len).unwrap_or(&[]);
        let refusal = match decide(datagram, &current) {
            Decision::Ignore => None,
            Decision::Refuse { code, text, kind } => {
                debug!(%peer, reason = kind.as_str(), "request refused");
                Some((code, text, kind))
            }
            Decision::Read { path, mode, neg } => {
                match admission.admit(peer, &current, &metrics) {
                    Ok(permit) => {
                        let transfer = session::Transfer {
                            peer,
                            local_ip: local.ip(),
                            path,
                            mode,
                            neg,
                            settings: current,
                            permit,
                        };
                        pool.dispatch(transfer);
                        None
                    }
                    Err(ErrorKind::ClientLimit) => {
                        warn!(%peer, "tftp request refused: too many sessions for this client");
                        Some((
                            ErrorCode::Undefined,
                            "server busy, try again",
                            ErrorKind::ClientLimit,
                        ))
                    }
                    Err(kind) => {
                        // Full, or a resend from a peer already served: stay silent. An
                        // ERROR would end the boot of firmware that is only early (PXE
                        // ROMs give up on it); silence makes it resend the request after
                        // its timeout, when a slot may be free.
                        metrics.error(kind);
                        if kind == ErrorKind::SessionLimit
                            && busy_warned.is_none_or(|t: Instant| t.elapsed() >= BUSY_WARN_EVERY)
                        {
                            warn!(%peer, max = current.max_sessions, "tftp at its session limit: requests wait for the client's resend");
                            busy_warned = Some(Instant::now());
                        }
                        None
                    }
                }
            }
        };
        if let Some((code, text, kind)) = refusal {
            metrics.error(kind);
            write_error(&mut reply, code, text);
            // try_send_to: a full send buffer must never stall the listener.
            let _ = socket.try_send_to(&reply, peer);
        }
    }
    tracker.close();
    // Closing the queues lets each session thread end once its transfers are done.
    drop(pool);
    info!(
        active = tracker.len(),
        "tftp stopped accepting, draining transfers"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            active = tracker.len(),
            "tftp grace period over, cutting transfers"
        );
        shared.hard_stop.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Session threads, each with its own current-thread runtime, so a session's wake-ups
/// never hop between workers (multi-thread runtimes cost lockstep TFTP ~20 % in
/// round-trip latency through work-stealing wake-ups; see benches/README-tftp.md).
struct SessionPool {
    queues: Vec<mpsc::UnboundedSender<session::Transfer>>,
    next: usize,
}

impl SessionPool {
    fn start(shared: &Arc<session::Shared>, tracker: &TaskTracker) -> io::Result<SessionPool> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, SESSION_THREADS_MAX);
        let mut queues = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, mut rx) = mpsc::unbounded_channel::<session::Transfer>();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shared = Arc::clone(shared);
            let tracker = tracker.clone();
            std::thread::Builder::new()
                .name(format!("tftp-session-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(transfer) = rx.recv().await {
                            tracker.spawn(session::run(transfer, Arc::clone(&shared)));
                        }
                        // The listener has stopped (normally or on error): stay until
                        // every transfer has ended.
                        tracker.close();
                        tracker.wait().await;
                    })
                })?;
            queues.push(tx);
        }
        Ok(SessionPool { queues, next: 0 })
    }

    /// Hands a transfer to the next session thread (round robin).
    fn dispatch(&mut self, transfer: session::Transfer) {
        self.next = (self.next + 1) % self.queues.len().max(1);
        if let Some(queue) = self.queues.get(self.next) {
            // A send fails only if that thread died; the transfer (and its permit) is
            // dropped then, so the session count stays right.
            let _ = queue.send(transfer);
        }
    }
}

/// Session counts, total and per client address.
#[derive(Default)]
struct Admission {
    state: Mutex<AdmissionState>,
}

#[derive(Default)]
struct AdmissionState {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// Peers (address and port) with a running session.
    peers: HashSet<SocketAddr>,
}

/// A counted session slot; released (and the gauge lowered) when dropped.
pub(crate) struct Permit {
    admission: Arc<Admission>,
    metrics: Arc<Metrics>,
    peer: SocketAddr,
}

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdmissionState> {
        // Counts are updated in single statements: a poisoned lock holds valid counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(
        self: &Arc<Self>,
        peer: SocketAddr,
        settings: &Settings,
        metrics: &Arc<Metrics>,
    ) -> Result<Permit, ErrorKind> {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let client = peer.ip();
        let mut st = self.lock();
        if st.peers.contains(&peer) {
            return Err(ErrorKind::Duplicate);
        }
        if st.total >= settings.max_sessions {
            return Err(ErrorKind::SessionLimit);
        }
        let count = st.per_client.entry(client).or_insert(0);
        if *count >= settings.max_sessions_per_client {
            if *count == 0 {
                st.per_client.remove(&client);
            }
            return Err(ErrorKind::ClientLimit);
        }
        *count += 1;
        st.total += 1;
        st.peers.insert(peer);
        metrics.session_opened();
        Ok(Permit {
            admission: Arc::clone(self),
            metrics: Arc::clone(metrics),
            peer,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        st.total = st.total.saturating_sub(1);
        st.peers.remove(&self.peer);
        let client = self.peer.ip();
        if let Some(count) = st.per_client.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                st.per_client.remove(&client);
            }
        }
        self.metrics.session_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let s = Settings::default();
        assert_eq!(decide(b"\0\x04\0\x01", &s), Decision::Ignore);
        assert!(matches!(
            decide(b"\0\x02f\0octet\0", &s),
            Decision::Refuse {
                code: ErrorCode::AccessViolation,
                kind: ErrorKind::WriteRefused,
                ..
            }
        ));
        assert!(matches!(
            decide(b"\0\x01../etc/passwd\0octet\0", &s),
            Decision::Refuse {
                code: ErrorCode::AccessViolation,
                ..
            }
        ));
        assert!(matches!(
            decide(b"\0\x01f\0", &s),
            Decision::Refuse {
                kind: ErrorKind::Malformed,
                ..
            }
        ));
        match decide(b"\0\x01\\boot\\x.efi\0octet\0blksize\x009000\0", &s) {
            Decision::Read { path, mode, neg } => {
                assert_eq!(path, "boot/x.efi");
                assert_eq!(mode, packet::Mode::Octet);
                assert_eq!(neg.blksize, 1468);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn admission_bounds_and_release() {
        let adm = Arc::new(Admission::default());
        let m = Arc::new(Metrics::new());
        let s = Settings {
            max_sessions: 3,
            max_sessions_per_client: 2,
            ..Settings::default()
        };
        let a = |port: u16| SocketAddr::from(([10, 0, 0, 1], port));
        let b = |port: u16| SocketAddr::from(([10, 0, 0, 2], port));
        let p1 = adm.admit(a(1000), &s, &m).unwrap();
        // A resend from the same port while its session runs is a duplicate.
        assert_eq!(adm.admit(a(1000), &s, &m).err(), Some(ErrorKind::Duplicate));
        let _p2 = adm.admit(a(1001), &s, &m).unwrap();
        assert_eq!(
            adm.admit(a(1002), &s, &m).err(),
            Some(ErrorKind::ClientLimit)
        );
        let _p3 = adm.admit(b(1000), &s, &m).unwrap();
        assert_eq!(
            adm.admit(b(1001), &s, &m).err(),
            Some(ErrorKind::SessionLimit)
        );
        assert_eq!(m.active_sessions(), 3);
        drop(p1);
        assert_eq!(m.active_sessions(), 2);
        assert!(adm.admit(a(1000), &s, &m).is_ok());
        // The temporary permit above was dropped at once.
        assert_eq!(m.active_sessions(), 2);
    }
}
