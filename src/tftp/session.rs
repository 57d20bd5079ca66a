//! One read transfer on its own connected UDP socket: open the file, OACK, then send
//! windows of DATA with timeout-driven retransmission (never on duplicate ACKs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use super::cache::{FileCache, FileVersion, Lookup};
use super::metrics::{ErrorKind, Metrics};
use super::options::Negotiated;
use super::packet::{
    parse_client_packet, write_data_header, write_error, write_oack, ClientPacket, ErrorCode, Mode,
    DATA_HEADER_LEN,
};
use super::path::{open_beneath, OpenError};
use super::source::{to_netascii, Source};
use super::{Observer, Permit, Settings};

/// Receive buffer for ACK/ERROR packets; longer datagrams are cut (only the head matters).
const RECV_BUF_LEN: usize = 1024;
/// Retransmission intervals double up to this many times (then stay there).
const MAX_BACKOFF_SHIFT: u32 = 3;
/// Send-buffer size asked for per session, at most (the kernel caps it further).
const SESSION_SNDBUF_MAX: usize = 4 * 1024 * 1024;
/// UDP_SEGMENT socket option of linux/udp.h (not exported by the libc crate).
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams one GSO send may carry (UDP_MAX_SEGMENTS of the kernel).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send may carry (the 64 KiB IP limit, less headers).
const GSO_MAX_BYTES: usize = 65_000;
/// IPv4 + UDP header bytes, for the MTU check.
const IPV4_UDP_OVERHEAD: usize = 28;
/// IPv6 + UDP header bytes, for the MTU check.
const IPV6_UDP_OVERHEAD: usize = 48;
/// IPv6 minimum MTU, assumed when the kernel does not say.
const MIN_MTU: usize = 1280;
/// Longest wait to send the closing ERROR packet of a session.
const FINAL_SEND_WAIT: Duration = Duration::from_millis(200);
/// Send-buffer size asked for per session, at least.
const SESSION_SNDBUF_MIN: usize = 256 * 1024;

/// What every session shares with the server.
pub(crate) struct Shared {
    pub metrics: Arc<Metrics>,
    pub observer: Arc<dyn Observer>,
    pub cache: FileCache,
    /// Cancelled when the shutdown grace period is over.
    pub hard_stop: CancellationToken,
}

/// A read request that passed the checks of the listener.
pub(crate) struct Transfer {
    pub peer: SocketAddr,
    pub local_ip: IpAddr,
    pub path: String,
    pub mode: Mode,
    pub neg: Negotiated,
    pub settings: Arc<Settings>,
    pub permit: Permit,
}

/// How a session ended.
enum Outcome {
    /// Last block acknowledged.
    Completed { bytes: u64 },
    /// The client ended after reading the OACK (tsize probe): normal.
    Probe,
    /// The client sent ERROR.
    ClientError { code: u16 },
    /// Refused or failed locally; an ERROR packet goes to the client.
    Failed {
        kind: ErrorKind,
        code: ErrorCode,
        text: &'static str,
    },
    /// The client stopped answering or is unreachable.
    Gone,
}

impl Outcome {
    fn io(e: &io::Error) -> Outcome {
        if e.raw_os_error() == Some(libc::ECONNREFUSED) {
            // ICMP port unreachable on the connected socket: the client went away.
            return Outcome::Gone;
        }
        debug!(error = %e, "session i/o error");
        Outcome::Failed {
            kind: ErrorKind::Io,
            code: ErrorCode::Undefined,
            text: "internal error",
        }
    }
}

/// Runs one transfer to its end and updates the metrics; never panics on peer input.
pub(crate) async fn run(t: Transfer, shared: Arc<Shared>) {
    let span = tracing::debug_span!("tftp", peer = %t.peer, path = %t.path);
    async move {
        let sock = match session_socket(t.local_ip, t.peer, &t.neg) {
            Ok(s) => s,
            Err(e) => {
                info!(error = %e, "cannot open a session socket");
                shared.metrics.error(ErrorKind::Io);
                return;
            }
        };
        let deadline = Instant::now() + t.settings.session_deadline;
        let mut session = Session {
            sock,
            sbuf: Vec::new(),
            rbuf: [0u8; RECV_BUF_LEN],
            shared: Arc::clone(&shared),
            started: Instant::now(),
            t,
        };
        let outcome = tokio::select! {
            biased;
            () = shared.hard_stop.cancelled() => Outcome::Failed {
                kind: ErrorKind::Shutdown,
                code: ErrorCode::Undefined,
                text: "server shutting down",
            },
            () = sleep_until(deadline) => Outcome::Failed {
                kind: ErrorKind::Deadline,
                code: ErrorCode::Undefined,
                text: "transfer deadline exceeded",
            },
            o = session.transfer() => o,
        };
        session.finish(outcome).await;
    }
    .instrument(span)
    .await
}

/// A UDP socket bound to the listener's address (new port) and connected to the peer,
/// so the kernel filters other senders and reports ICMP unreachable to us.
fn session_socket(local_ip: IpAddr, peer: SocketAddr, neg: &Negotiated) -> io::Result<UdpSocket> {
    let sock = Socket::new(
        Domain::for_address(peer),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    let in_flight = usize::from(neg.windowsize) * (usize::from(neg.blksize) + 64) * 2;
    // Best effort: a smaller buffer only means sends wait for room.
    let _ = sock.set_send_buffer_size(in_flight.clamp(SESSION_SNDBUF_MIN, SESSION_SNDBUF_MAX));
    sock.bind(&SocketAddr::new(local_ip, 0).into())?;
    sock.connect(&peer.into())?;
    UdpSocket::from_std(sock.into())
}

struct Session {
    sock: UdpSocket,
    /// The one send buffer of the session: OACK, ERROR, and every DATA batch (one
    /// datagram, or with UDP GSO up to GSO_MAX_SEGMENTS blocks in one send).
    sbuf: Vec<u8>,
    rbuf: [u8; RECV_BUF_LEN],
    shared: Arc<Shared>,
    started: Instant,
    t: Transfer,
}

/// What the socket gave us while waiting.
enum Event {
    Ack(u16),
    Error(u16),
    Timeout,
    Ignored,
}

impl Session {
    async fn transfer(&mut self) -> Outcome {
        let source = match self.open().await {
            Ok(s) => s,
            Err(o) => return o,
        };
        self.shared.metrics.started();
        self.shared
            .observer
            .transfer_started(self.t.peer, &self.t.path);
        let mut neg = self.t.neg;
        if neg.tsize.is_some() {
            neg.tsize = Some(source.len());
        }
        debug!(
            size = source.len(),
            blksize = neg.blksize,
            windowsize = neg.windowsize,
            "transfer opened"
        );
        let interval = neg.timeout.unwrap_or(self.t.settings.retransmit);
        if neg.needs_oack() {
            if let Some(end) = self.send_oack(&neg, interval).await {
                return end;
            }
        }
        self.send_data(&source, &neg, interval).await
    }

    /// Finds the file: the observer's virtual file first, then the disk (cache or stream).
    async fn open(&mut self) -> Result<Source, Outcome> {
        let shared = Arc::clone(&self.shared);
        let source = match shared.observer.virtual_file(self.t.peer, &self.t.path) {
            Some(bytes) => Source::Memory(bytes),
            None => self.open_disk(&shared).await?,
        };
        match (self.t.mode, source) {
            (Mode::Octet, s) => Ok(s),
            (Mode::Netascii, Source::Memory(b)) => Ok(Source::Memory(to_netascii(&b))),
            (Mode::Netascii, Source::Stream { .. }) => Err(Outcome::Failed {
                kind: ErrorKind::Unsupported,
                code: ErrorCode::Undefined,
                text: "netascii not available for this file, use octet",
            }),
        }
    }

    async fn open_disk(&self, shared: &Shared) -> Result<Source, Outcome> {
        let settings = &self.t.settings;
        let file = open_beneath(&settings.root, &self.t.path).map_err(|e| match e {
            OpenError::NotFound => Outcome::Failed {
                kind: ErrorKind::NotFound,
                code: ErrorCode::FileNotFound,
                text: "file not found",
            },
            OpenError::Denied => Outcome::Failed {
                kind: ErrorKind::AccessViolation,
                code: ErrorCode::AccessViolation,
                text: "access violation",
            },
            OpenError::Io(e) => Outcome::io(&e),
        })?;
        let meta = file.metadata().map_err(|e| Outcome::io(&e))?;
        let version = FileVersion::of(&meta);
        if version.size() > settings.cache_max_file {
            return Ok(Source::Stream {
                file,
                len: version.size(),
            });
        }
        let (bytes, lookup) = shared
            .cache
            .get(&settings.root, &self.t.path, file, version)
            .await
            .map_err(|e| Outcome::io(&e))?;
        if lookup == Lookup::Loaded {
            shared.metrics.cache_loaded();
        }
        Ok(Source::Memory(bytes))
    }

    /// Sends the OACK until ACK 0 arrives; `Some` when the session ends here.
    async fn send_oack(&mut self, neg: &Negotiated, interval: Duration) -> Option<Outcome> {
        write_oack(&mut self.sbuf, neg.oack_options());
        let mut retries = 0;
        loop {
            if let Err(e) = self.sock.send(&self.sbuf).await {
                if !is_transient(&e) {
                    return Some(Outcome::io(&e));
                }
            }
            let timer = sleep_until(Instant::now() + backoff(interval, retries));
            tokio::pin!(timer);
            loop {
                match self.wait(timer.as_mut()).await {
                    Ok(Event::Ack(0)) => return None,
                    Ok(Event::Ack(_)) | Ok(Event::Ignored) => continue,
                    Ok(Event::Error(code)) => {
                        return Some(if neg.tsize.is_some() {
                            Outcome::Probe
                        } else {
                            Outcome::ClientError { code }
                        })
                    }
                    Ok(Event::Timeout) => break,
                    Err(e) => return Some(Outcome::io(&e)),
                }
            }
            retries += 1;
            if retries > self.t.settings.max_retries {
                return Some(Outcome::Gone);
            }
            self.shared.metrics.add_retransmits(1);
        }
    }

    /// Sends the data in windows; go-back-N from the first unacknowledged block on a
    /// timeout or on a client's gap report (an ACK inside the window).
    async fn send_data(
        &mut self,
        source: &Source,
        neg: &Negotiated,
        interval: Duration,
    ) -> Outcome {
        let blksize = u64::from(neg.blksize);
        let window = u64::from(neg.windowsize.max(1));
        let size = source.len();
        // A file that is an exact multiple of blksize ends with an empty block.
        let last_block = size / blksize + 1;
        let mut batch = self.enable_gso(neg);
        let segment = DATA_HEADER_LEN + usize::from(neg.blksize);
        self.sbuf.clear();
        self.sbuf.resize(segment * batch as usize, 0);
        // Absolute block numbers (u64) so the wire's u16 may wrap past 65535 to 0.
        let mut base: u64 = 1;
        let mut next: u64 = 1;
        let mut retries: u32 = 0;
        // The timer is re-armed lazily: progress only moves `retransmit_at`, and a timer
        // that fires early is pushed to it, so no timer-wheel update per ACK.
        let mut retransmit_at = Instant::now() + interval;
        let timer = sleep_until(retransmit_at);
        tokio::pin!(timer);
        loop {
            while next < base + window && next <= last_block {
                let end = (base + window).min(last_block + 1).min(next + batch);
                match self.send_blocks(source, next, end, blksize, size).await {
                    Ok(()) => next = end,
                    // The kernel refused segmentation (path MTU, old kernel): go on
                    // one datagram per send.
                    Err(e) if batch > 1 && is_gso_refusal(&e) => {
                        debug!(error = %e, "UDP GSO refused, sending packets one by one");
                        self.disable_gso();
                        batch = 1;
                    }
                    Err(e) => return Outcome::io(&e),
                }
            }
            retransmit_at = Instant::now() + backoff(interval, retries);
            loop {
                match self.wait(timer.as_mut()).await {
                    Ok(Event::Ack(wire)) => {
                        // Only ACKs of blocks in flight count; a duplicate of the last
                        // acknowledged block is ignored (Sorcerer's Apprentice).
                        let Some(acked) = resolve_ack(wire, base, next) else {
                            continue;
                        };
                        if acked >= last_block {
                            return Outcome::Completed { bytes: size };
                        }
                        if acked + 1 < next {
                            self.shared.metrics.add_retransmits(next - acked - 1);
                            next = acked + 1;
                        }
                        base = acked + 1;
                        retries = 0;
                        break;
                    }
                    Ok(Event::Error(code)) => return Outcome::ClientError { code },
                    Ok(Event::Ignored) => continue,
                    Ok(Event::Timeout) => {
                        if Instant::now() < retransmit_at {
                            timer.as_mut().reset(retransmit_at);
                            continue;
                        }
                        retries += 1;
                        if retries > self.t.settings.max_retries {
                            return Outcome::Gone;
                        }
                        self.shared.metrics.add_retransmits(next - base);
                        next = base;
                        timer
                            .as_mut()
                            .reset(Instant::now() + backoff(interval, retries));
                        break;
                    }
                    Err(e) => return Outcome::io(&e),
                }
            }
        }
    }

    /// Turns on UDP segmentation offload when a window can hold several blocks that
    /// fit the path MTU; returns how many blocks one send may carry.
    fn enable_gso(&self, neg: &Negotiated) -> u64 {
        let segment = DATA_HEADER_LEN + usize::from(neg.blksize);
        let batch = (GSO_MAX_BYTES / segment)
            .min(GSO_MAX_SEGMENTS)
            .min(usize::from(neg.windowsize));
        let overhead = if self.t.peer.is_ipv4() {
            IPV4_UDP_OVERHEAD
        } else {
            IPV6_UDP_OVERHEAD
        };
        if batch < 2 || segment + overhead > path_mtu(&self.sock) {
            return 1;
        }
        let gso_size = libc::c_int::try_from(segment).unwrap_or(0);
        if set_udp_segment(&self.sock, gso_size).is_err() {
            return 1;
        }
        batch as u64
    }

    fn disable_gso(&self) {
        let _ = set_udp_segment(&self.sock, 0);
    }

    /// Sends blocks `from..to` in one datagram (or, with GSO, one send of several).
    async fn send_blocks(
        &mut self,
        source: &Source,
        from: u64,
        to: u64,
        blksize: u64,
        size: u64,
    ) -> io::Result<()> {
        let mut filled = 0usize;
        let mut payload_bytes = 0u64;
        for block in from..to {
            let offset = (block - 1) * blksize;
            let len = size.saturating_sub(offset).min(blksize);
            // len <= blksize, which is a u16, so the cast is exact.
            let end = filled + DATA_HEADER_LEN + len as usize;
            let packet = self
                .sbuf
                .get_mut(filled..end)
                .ok_or_else(|| io::Error::other("send buffer smaller than batch"))?;
            write_data_header(packet, block as u16);
            source.read_at(offset, packet.get_mut(DATA_HEADER_LEN..).unwrap_or(&mut []))?;
            filled = end;
            payload_bytes += len;
        }
        let datagrams = self.sbuf.get(..filled).unwrap_or(&[]);
        match self.sock.send(datagrams).await {
            Ok(_) => {
                self.shared.metrics.add_bytes(payload_bytes);
                Ok(())
            }
            // Treated like a loss on the wire: the retransmission timer recovers it.
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits for one packet from the peer or the timer.
    async fn wait(&mut self, timer: std::pin::Pin<&mut tokio::time::Sleep>) -> io::Result<Event> {
        let n = tokio::select! {
            biased;
            r = self.sock.recv(&mut self.rbuf) => r?,
            () = timer => return Ok(Event::Timeout),
        };
        let packet = self.rbuf.get(..n).unwrap_or(&[]);
        Ok(match parse_client_packet(packet) {
            Ok(ClientPacket::Ack(b)) => Event::Ack(b),
            Ok(ClientPacket::Error { code, message }) => {
                debug!(code, message = %String::from_utf8_lossy(message), "client sent ERROR");
                Event::Error(code)
            }
            Err(e) => {
                debug!(error = %e, "ignoring packet");
                Event::Ignored
            }
        })
    }

    /// Sends the ERROR in `sbuf`, waiting a bounded time for room (a new socket is not
    /// known writable until the reactor has seen it, so `try_send` could drop it).
    async fn send_final(&self) {
        let _ = tokio::time::timeout(FINAL_SEND_WAIT, self.sock.send(&self.sbuf)).await;
    }

    /// Logs, counts and, where the client should know, sends an ERROR packet.
    async fn finish(mut self, outcome: Outcome) {
        let m = &self.shared.metrics;
        let elapsed = self.started.elapsed();
        match outcome {
            Outcome::Completed { bytes } => {
                m.completed();
                let secs = elapsed.as_secs_f64();
                let mib_s = if secs > 0.0 {
                    bytes as f64 / secs / (1024.0 * 1024.0)
                } else {
                    0.0
                };
                info!(
                    bytes,
                    ms = elapsed.as_millis() as u64,
                    mib_s = format_args!("{mib_s:.1}"),
                    "tftp {} sent {}",
                    self.t.peer,
                    self.t.path
                );
            }
            Outcome::Probe => debug!("client ended after OACK (tsize probe)"),
            Outcome::ClientError { code } => {
                m.error(ErrorKind::ClientError);
                info!(code, "tftp {} aborted {}", self.t.peer, self.t.path);
            }
            Outcome::Gone => {
                m.error(ErrorKind::Timeout);
                info!("tftp {} stopped answering for {}", self.t.peer, self.t.path);
                write_error(&mut self.sbuf, ErrorCode::Undefined, "timeout");
                self.send_final().await;
            }
            Outcome::Failed { kind, code, text } => {
                m.error(kind);
                info!(
                    reason = kind.as_str(),
                    "tftp {} refused {}: {}", self.t.peer, self.t.path, text
                );
                write_error(&mut self.sbuf, code, text);
                self.send_final().await;
            }
        }
        // The permit (and with it the active-session count) is released here.
        drop(self.t.permit);
    }
}

/// Maps a wire block number to the absolute block it acknowledges, if that block is in
/// flight (base..next); the last already-acknowledged block (base - 1) and anything
/// outside the window give `None`.
pub(crate) fn resolve_ack(wire: u16, base: u64, next: u64) -> Option<u64> {
    let floor = base.checked_sub(1)?;
    let offset = u64::from(wire.wrapping_sub(floor as u16));
    let acked = floor + offset;
    (offset > 0 && acked < next).then_some(acked)
}

/// The kernel's idea of the path MTU of the connected socket (1280 if unknown).
fn path_mtu(sock: &UdpSocket) -> usize {
    let fd = sock.as_raw_fd();
    let (level, name) = match sock.peer_addr() {
        Ok(SocketAddr::V6(_)) => (libc::IPPROTO_IPV6, libc::IPV6_MTU),
        _ => (libc::IPPROTO_IP, libc::IP_MTU),
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, and `mtu`/`len` are live, correctly sized out-parameters.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 && mtu > 0 {
        usize::try_from(mtu).unwrap_or(MIN_MTU)
    } else {
        MIN_MTU
    }
}

/// Sets (or with 0 clears) the UDP_SEGMENT size: sends longer than it are split by the
/// kernel into datagrams of that size, the last one possibly shorter.
fn set_udp_segment(sock: &UdpSocket, size: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and a live c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EIO) | Some(libc::EOPNOTSUPP) | Some(libc::EMSGSIZE)
    )
}

fn backoff(interval: Duration, retries: u32) -> Duration {
    interval.saturating_mul(1 << retries.min(MAX_BACKOFF_SHIFT))
}

/// Send errors that mean "this packet was dropped" rather than "the session is broken".
fn is_transient(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_resolve_within_the_window_only() {
        // Lockstep: block 5 in flight.
        assert_eq!(resolve_ack(5, 5, 6), Some(5));
        assert_eq!(resolve_ack(4, 5, 6), None, "duplicate ACK is ignored");
        assert_eq!(resolve_ack(6, 5, 6), None, "ACK of an unsent block");
        assert_eq!(
            resolve_ack(0, 1, 2),
            None,
            "ACK 0 after the OACK is a duplicate"
        );
        // Window 1..=16 in flight.
        assert_eq!(resolve_ack(16, 1, 17), Some(16));
        assert_eq!(resolve_ack(7, 1, 17), Some(7));
        assert_eq!(resolve_ack(17, 1, 17), None);
        assert_eq!(resolve_ack(1000, 1, 17), None);
    }

    #[test]
    fn acks_wrap_past_65535() {
        // Blocks 65530..=65545 in flight; on the wire 65545 is 9.
        assert_eq!(resolve_ack(9, 65530, 65546), Some(65545));
        assert_eq!(resolve_ack(0, 65530, 65546), Some(65536));
        assert_eq!(resolve_ack(65535, 65530, 65546), Some(65535));
        assert_eq!(resolve_ack(65529, 65530, 65546), None);
        assert_eq!(resolve_ack(10, 65530, 65546), None);
        // Second wrap.
        assert_eq!(resolve_ack(1, 131072, 131074), Some(131073));
    }

    #[test]
    fn backoff_doubles_then_stays() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 0), s);
        assert_eq!(backoff(s, 1), 2 * s);
        assert_eq!(backoff(s, 3), 8 * s);
        assert_eq!(backoff(s, 30), 8 * s);
    }
}
