//! The socket loop: reads requests from 67 and 4011, runs plan → decide → write, sends
//! replies out of the interface they came in on, and group-commits leases before ACKs.
//!
//! Leases of one burst are persisted by a single `persist_leases` call on a blocking
//! thread; the ACKs of that burst wait in memory and leave only after it returns Ok.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Context, Decision, Destination, IgnoreReason, Port};
use super::lease::{LeaseAnswer, LeaseTable, PlanCtx};
use super::metrics::{Metrics, MsgLabels};
use super::rate::RateLimiter;
use super::reply::{self, ReplyScratch};
use super::request::{MessageType, PxeRequest};
use super::socket::{self, IfaceTable, LinkDest, LinkSender, Received, MAX_FRAME_LEN};
use super::wire::MAX_PACKET_LEN;
use super::{ra, Backend, BackendError, DhcpError, Lease, Mode, Settings};

/// Most datagrams read from one socket before the loop looks at its other work.
pub const MAX_BURST: usize = 512;
/// How often expired offers, quarantines and idle rate entries are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// Most ACKs waiting for one group commit (beyond it requests are dropped: the
/// clients retry, and memory stays bounded).
pub const MAX_PENDING: usize = 16_384;
/// Where giaddr sits in a BOOTP header (RFC 2131 §2).
const GIADDR_OFFSET: usize = 24;

/// Which socket a reply leaves from.
#[derive(Clone, Copy, Debug)]
enum Via {
    Dhcp,
    Pxe,
}

/// Where a written reply goes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Udp {
        via: Via,
        dst: SocketAddrV4,
        ifindex: u32,
        src: Ipv4Addr,
    },
    Link(LinkDest),
}

/// One datagram as it came in: its envelope, and whether it was sent to one of this
/// host's addresses (on any interface).
#[derive(Clone, Copy, Debug)]
struct Arrival {
    r: Received,
    own_dst: bool,
}

/// A reply waiting for its lease to be durable.
struct Pending {
    bytes: Vec<u8>,
    target: Target,
    kind: MessageType,
}

/// A commit being persisted, with the replies that wait for it.
struct InFlight {
    task: JoinHandle<Result<(), BackendError>>,
    replies: Vec<Pending>,
    leases: usize,
}

struct Io {
    dhcp: AsyncFd<Socket>,
    pxe: AsyncFd<Socket>,
    link: Option<LinkSender>,
    /// The ports these sockets are bound to.
    ports: (u16, u16),
}

/// The service's sockets, bound before it runs: the UDP ports (none in mode off) and
/// the ICMPv6 socket for router advertisements.
pub struct Sockets {
    io: Option<Io>,
    ra: Option<AsyncFd<Socket>>,
}

impl Sockets {
    pub(super) fn bind(s: &Settings) -> Result<Sockets, DhcpError> {
        let io = if s.mode == Mode::Off {
            None
        } else {
            Some(bind(s)?)
        };
        let ra = match ra::open().and_then(socket::register) {
            Ok(sock) => Some(sock),
            Err(source) if s.ipv6_ra => {
                return Err(DhcpError::Bind {
                    what: "IPv6 RA",
                    addr: "an ICMPv6 raw socket".into(),
                    interfaces: interfaces_named(s),
                    source,
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "no ICMPv6 socket; router advertisements unavailable");
                None
            }
        };
        Ok(Sockets { io, ra })
    }
}

/// The interfaces served, for messages.
fn interfaces_named(s: &Settings) -> String {
    if s.interfaces.is_empty() {
        "all interfaces".into()
    } else {
        s.interfaces.join(", ")
    }
}

/// Everything the loop mutates.
struct State {
    settings: Arc<Settings>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    table: LeaseTable,
    ifaces: IfaceTable,
    limiter: RateLimiter,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    frame: Box<[u8]>,
    scratch: Box<ReplyScratch>,
    pending: Vec<Pending>,
    pending_leases: Vec<Lease>,
    spare: Vec<Vec<u8>>,
    inflight: Option<InFlight>,
}

enum Exit {
    Shutdown,
    Rebind,
}

pub(super) async fn run(
    sockets: Sockets,
    mut settings: watch::Receiver<Arc<Settings>>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), DhcpError> {
    let loader = backend.clone();
    let leases = tokio::task::spawn_blocking(move || loader.load_leases())
        .await
        .map_err(|e| DhcpError::LoadLeases(BackendError(e.to_string())))??;
    let mut table = LeaseTable::new();
    let loaded = leases.len();
    table.load(leases);
    tracing::info!(leases = loaded, "DHCP leases loaded");
    let ra_token = shutdown.child_token();
    let mut ra_task = tokio::spawn(ra::run(sockets.ra, settings.clone(), ra_token.clone()));
    let mut bound = sockets.io;
    let mut state = State {
        settings: settings.borrow_and_update().clone(),
        backend,
        metrics,
        table,
        ifaces: IfaceTable::new(),
        limiter: RateLimiter::new(Instant::now()),
        rx: vec![0; MAX_PACKET_LEN + 1].into_boxed_slice(),
        tx: vec![0; MAX_FRAME_LEN].into_boxed_slice(),
        frame: vec![0; MAX_FRAME_LEN].into_boxed_slice(),
        scratch: Box::default(),
        pending: Vec::new(),
        pending_leases: Vec::new(),
        spare: Vec::new(),
        inflight: None,
    };
    let result = {
        let main = state.main_loop(&mut bound, &mut settings, &shutdown);
        tokio::pin!(main);
        tokio::select! {
            r = &mut main => r,
            // The RA task ends on its own only at shutdown, or when its socket fails.
            ra = &mut ra_task => match ra {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DhcpError::Ra(e.to_string())),
                Err(e) => Err(DhcpError::Ra(e.to_string())),
            },
        }
    };
    state.drain_commits().await;
    ra_token.cancel();
    if !ra_task.is_finished() {
        let _ = ra_task.await;
    }
    result
}

fn bind(s: &Settings) -> Result<Io, DhcpError> {
    let open = |port: u16, what: &'static str| {
        socket::bind_udp(port)
            .and_then(socket::register)
            .map_err(|source| DhcpError::Bind {
                what,
                addr: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).to_string(),
                interfaces: interfaces_named(s),
                source,
            })
    };
    let dhcp = open(s.port, "DHCP")?;
    let pxe = open(s.pxe_port, "PXE")?;
    let link = match LinkSender::open() {
        Ok(l) => Some(l),
        Err(e) => {
            // Without CAP_NET_RAW, replies to address-less clients are broadcast instead.
            tracing::warn!(error = %e, "no AF_PACKET socket: link-level unicasts become broadcasts");
            None
        }
    };
    Ok(Io {
        dhcp,
        pxe,
        link,
        ports: (s.port, s.pxe_port),
    })
}

async fn wait_commit(inflight: &mut Option<InFlight>) -> Result<(), BackendError> {
    match inflight {
        Some(f) => match (&mut f.task).await {
            Ok(r) => r,
            Err(e) => Err(BackendError(format!("commit task: {e}"))),
        },
        None => std::future::pending().await,
    }
}

impl State {
    /// Binds (or takes the sockets bound at start) and serves, rebinding when the ports
    /// or the mode change, until shutdown.
    async fn main_loop(
        &mut self,
        bound: &mut Option<Io>,
        settings: &mut watch::Receiver<Arc<Settings>>,
        shutdown: &CancellationToken,
    ) -> Result<(), DhcpError> {
        // A dropped settings sender freezes the settings; it does not stop the service.
        let mut watching = true;
        loop {
            self.settings = settings.borrow_and_update().clone();
            if self.settings.mode == Mode::Off {
                *bound = None;
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    c = settings.changed(), if watching => {
                        watching = c.is_ok();
                        continue;
                    }
                }
            }
            let wanted = (self.settings.port, self.settings.pxe_port);
            let io = match bound.take() {
                Some(io) if io.ports == wanted => io,
                _ => bind(&self.settings)?,
            };
            tracing::info!(
                mode = ?self.settings.mode,
                port = self.settings.port,
                pxe_port = self.settings.pxe_port,
                interfaces = ?self.settings.interfaces,
                "DHCP listening"
            );
            match self.serve(&io, settings, &mut watching, shutdown).await? {
                Exit::Shutdown => return Ok(()),
                Exit::Rebind => {
                    // The old sockets close before the new ones bind the same ports.
                    drop(io);
                    continue;
                }
            }
        }
    }

    async fn serve(
        &mut self,
        io: &Io,
        settings: &mut watch::Receiver<Arc<Settings>>,
        watching: &mut bool,
        shutdown: &CancellationToken,
    ) -> Result<Exit, DhcpError> {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Exit::Shutdown),
                changed = settings.changed(), if *watching => {
                    if changed.is_err() {
                        *watching = false;
                        continue;
                    }
                    let new = settings.borrow_and_update().clone();
                    let rebind = new.port != self.settings.port
                        || new.pxe_port != self.settings.pxe_port
                        || new.mode == Mode::Off;
                    self.settings = new;
                    if rebind {
                        return Ok(Exit::Rebind);
                    }
                }
                ready = io.dhcp.readable() => {
                    let mut guard = ready?;
                    self.drain(io, &mut guard, Port::Dhcp);
                }
                ready = io.pxe.readable() => {
                    let mut guard = ready?;
                    self.drain(io, &mut guard, Port::Pxe);
                }
                result = wait_commit(&mut self.inflight) => {
                    self.finish_commit(io, result);
                }
                _ = sweep.tick() => {
                    self.table.sweep(SystemTime::now());
                }
            }
            self.start_commit();
        }
    }

    fn drain(
        &mut self,
        io: &Io,
        guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, Socket>,
        port: Port,
    ) {
        for _ in 0..MAX_BURST {
            let rx = &mut self.rx[..];
            match guard.try_io(|fd| socket::recv(fd.get_ref().as_raw_fd(), rx)) {
                Ok(Ok(r)) => self.handle(io, r, port),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "DHCP receive error");
                    self.metrics.count_drop("recv_error");
                }
                Err(_would_block) => return,
            }
        }
    }

    fn handle(&mut self, io: &Io, r: Received, port: Port) {
        if r.truncated || r.len > MAX_PACKET_LEN {
            self.metrics.count_drop("oversize");
            return;
        }
        // Taken out and put back (no allocation) so the handler can borrow self mutably.
        let mut ifaces = std::mem::take(&mut self.ifaces);
        let rx = std::mem::take(&mut self.rx);
        let settings = self.settings.clone();
        let own_dst = own_address(ifaces.all(), r.dst);
        let frame = rx.get(..r.len).unwrap_or(&[]);
        let relayed_to_us = own_dst && !frame_giaddr(frame).is_unspecified();
        match ifaces.by_index(r.ifindex) {
            None => self.metrics.count_drop("unknown_interface"),
            Some(iface) if !served_on(&settings.interfaces, &iface.name, relayed_to_us) => {
                self.metrics.count_drop("interface_not_served")
            }
            Some(iface) => {
                let arrival = Arrival { r, own_dst };
                self.handle_frame(io, frame, arrival, port, iface, &settings);
            }
        }
        self.rx = rx;
        self.ifaces = ifaces;
    }

    fn handle_frame(
        &mut self,
        io: &Io,
        frame: &[u8],
        arrival: Arrival,
        port: Port,
        iface: &socket::Iface,
        settings: &Settings,
    ) {
        let Arrival { r, own_dst } = arrival;
        let req = match PxeRequest::parse(frame) {
            Ok(req) => req,
            Err(e) => {
                tracing::debug!(peer = %r.src, error = %e, "DHCP frame dropped");
                self.metrics.count_drop(e.reason());
                return;
            }
        };
        self.metrics
            .received
            .get_or_create(&MsgLabels {
                kind: req.msg_type.name(),
            })
            .inc();
        if !self
            .limiter
            .allow(req.mac, settings.rate_per_mac, Instant::now())
        {
            self.metrics.count_drop("rate_limited");
            return;
        }
        if let Some(ip) = address_in_use(&req) {
            self.backend.address_seen(req.mac, ip);
        }
        let node = self.backend.node(req.mac);
        let pool = if settings.mode == Mode::Full {
            let anchor = (!req.giaddr.is_unspecified()).then_some(req.giaddr);
            settings.pools.iter().position(|p| match anchor {
                Some(g) => p.contains(g),
                None => iface.addrs.iter().any(|(a, _)| p.contains(*a)),
            })
        } else {
            None
        };
        let subnet = pool.and_then(|i| settings.pools.get(i)).map(|p| p.subnet);
        // Sent to one of our addresses (a renewing client, or a relay configured with that
        // address, which may reach us through another interface): that address is the
        // server the sender knows.
        let server_ip = if own_dst {
            Some(r.dst)
        } else {
            iface.addr_for(subnet.or((!req.giaddr.is_unspecified()).then_some(req.giaddr)))
        };
        let Some(server_ip) = server_ip else {
            self.metrics.count_drop("interface_without_ipv4");
            return;
        };
        let now = SystemTime::now();
        let lease = if settings.mode == Mode::Full && port == Port::Dhcp {
            let backend = self.backend.clone();
            let reserved = move |ip: Ipv4Addr| backend.reserved_for(ip);
            let ctx = PlanCtx {
                pools: &settings.pools,
                pool,
                server_id: server_ip,
                now,
                reserved_for: &reserved,
            };
            self.table.plan(&req, &node, &ctx)
        } else {
            LeaseAnswer::None
        };
        let ctx = Context {
            iface: &iface.name,
            server_ip,
            port,
            lease,
        };
        let decision = decide(&req, &node, settings, &ctx);
        let persist = if decision.commits_lease() {
            self.table.apply(&lease, &req, &node, &settings.pools, now)
        } else {
            None
        };
        let reply = match decision {
            Decision::Ignore(why) => {
                self.log_ignore(&req, &iface.name, why);
                if why == IgnoreReason::UnknownMac && req.msg_type == MessageType::Discover {
                    self.backend.offered(req.mac, None, req.arch, &iface.name);
                }
                if let Some(l) = persist {
                    self.pending_leases.push(l);
                }
                return;
            }
            Decision::Reply(reply) => reply,
        };
        let len = match reply::write(&mut self.tx[..], &mut self.scratch, &req, &reply) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(mac = %req.mac, error = %e, "DHCP reply not written");
                self.metrics.count_drop("reply_too_large");
                return;
            }
        };
        log_reply(&req, &iface.name, &reply);
        if reply.msg_type == MessageType::Ack && !reply.yiaddr.is_unspecified() {
            self.backend.address_seen(req.mac, reply.yiaddr);
        }
        if reply.msg_type == MessageType::Offer {
            let ip = (!reply.yiaddr.is_unspecified()).then_some(reply.yiaddr);
            self.backend.offered(req.mac, ip, req.arch, &iface.name);
        }
        let client_port = settings.port.wrapping_add(1);
        let via = if port == Port::Pxe {
            Via::Pxe
        } else {
            Via::Dhcp
        };
        let udp = |dst: SocketAddrV4, ifindex: u32| Target::Udp {
            via,
            dst,
            ifindex,
            src: server_ip,
        };
        let target = match reply.dest {
            Destination::Relay(g) => udp(SocketAddrV4::new(g, settings.port), 0),
            Destination::Unicast(ip) => udp(SocketAddrV4::new(ip, client_port), iface.index),
            Destination::Broadcast => udp(
                SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
                iface.index,
            ),
            Destination::Source if r.src.ip().is_unspecified() => udp(
                SocketAddrV4::new(Ipv4Addr::BROADCAST, r.src.port()),
                iface.index,
            ),
            Destination::Source => udp(r.src, iface.index),
            Destination::Link(ip) => match (iface.mac, io.link.is_some()) {
                (Some(src_mac), true) => Target::Link(LinkDest {
                    ifindex: iface.index,
                    src_mac,
                    src_ip: server_ip,
                    dst_mac: req.mac,
                    dst_ip: ip,
                    src_port: settings.port,
                    dst_port: client_port,
                }),
                _ => udp(
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, client_port),
                    iface.index,
                ),
            },
        };
        let tx = std::mem::take(&mut self.tx);
        let bytes = tx.get(..len).unwrap_or(&[]);
        match persist {
            Some(lease) => {
                if self.pending.len() >= MAX_PENDING {
                    self.metrics.count_drop("commit_backlog");
                } else {
                    let mut buf = self.spare.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(bytes);
                    self.pending.push(Pending {
                        bytes: buf,
                        target,
                        kind: reply.msg_type,
                    });
                    self.pending_leases.push(lease);
                }
            }
            None => self.send(io, bytes, target, reply.msg_type),
        }
        self.tx = tx;
    }

    fn send(&mut self, io: &Io, bytes: &[u8], target: Target, kind: MessageType) {
        let result = match target {
            Target::Udp {
                via,
                dst,
                ifindex,
                src,
            } => {
                let sock = match via {
                    Via::Dhcp => &io.dhcp,
                    Via::Pxe => &io.pxe,
                };
                socket::send(sock.get_ref().as_raw_fd(), bytes, dst, ifindex, src)
            }
            Target::Link(d) => match &io.link {
                Some(link) => link.send(&mut self.frame[..], &d, bytes),
                None => Ok(()),
            },
        };
        match result {
            Ok(()) => {
                self.metrics
                    .sent
                    .get_or_create(&MsgLabels { kind: kind.name() })
                    .inc();
            }
            Err(e) => {
                tracing::debug!(error = %e, ?target, "DHCP reply not sent");
                self.metrics.count_drop("send_error");
            }
        }
    }

    fn start_commit(&mut self) {
        if self.inflight.is_some() || self.pending_leases.is_empty() {
            return;
        }
        let leases = std::mem::take(&mut self.pending_leases);
        let replies = std::mem::take(&mut self.pending);
        let backend = self.backend.clone();
        let count = leases.len();
        let task = tokio::task::spawn_blocking(move || backend.persist_leases(&leases));
        self.inflight = Some(InFlight {
            task,
            replies,
            leases: count,
        });
    }

    fn finish_commit(&mut self, io: &Io, result: Result<(), BackendError>) {
        let Some(done) = self.inflight.take() else {
            return;
        };
        self.metrics.commit_batch.observe(done.leases as f64);
        match result {
            Ok(()) => {
                for p in done.replies {
                    self.send(io, &p.bytes, p.target, p.kind);
                    if self.spare.len() < MAX_PENDING {
                        self.spare.push(p.bytes);
                    }
                }
            }
            Err(e) => {
                // No ACK without a durable lease: the clients retry and are re-planned.
                tracing::error!(error = %e, leases = done.leases, "lease commit failed; ACKs withheld");
                self.metrics.commit_failures.inc();
                for _ in &done.replies {
                    self.metrics.count_drop("commit_failed");
                }
            }
        }
    }

    /// At shutdown: waits for the commit in flight and persists what is pending, so no
    /// acknowledged lease is lost (their replies are not sent any more).
    async fn drain_commits(&mut self) {
        if let Some(f) = self.inflight.take() {
            let _ = f.task.await;
        }
        if !self.pending_leases.is_empty() {
            let leases = std::mem::take(&mut self.pending_leases);
            let backend = self.backend.clone();
            let _ = tokio::task::spawn_blocking(move || backend.persist_leases(&leases)).await;
        }
    }

    fn log_ignore(&self, req: &PxeRequest<'_>, iface: &str, why: IgnoreReason) {
        self.metrics.count_drop(why.label());
        let tag = if req.is_pxe() { "PXE" } else { "DHCP" };
        if req.is_pxe() {
            tracing::info!("{tag}({iface}) {} ignored {}: {why}", req.mac, req.msg_type);
        } else {
            tracing::debug!("{tag}({iface}) {} ignored {}: {why}", req.mac, req.msg_type);
        }
    }
}

/// Whether a datagram that came in on `iface` is served. The interface list names the
/// links whose broadcasts bootd answers. A relayed request sent to one of our addresses is
/// served whichever interface it came in on: a relay reaches us over the route back to
/// it, often an uplink that is not listed, and listing the uplink would also make bootd
/// answer the broadcasts of that link.
fn served_on(interfaces: &[String], iface: &str, relayed_to_us: bool) -> bool {
    interfaces.is_empty() || relayed_to_us || interfaces.iter().any(|i| i == iface)
}

/// The address a client says it uses: ciaddr (renewing, INFORM, OVMF's 4011 request) or
/// the one it REQUESTs (also seen by a proxy, from the address server's exchange).
fn address_in_use(req: &PxeRequest<'_>) -> Option<Ipv4Addr> {
    if !req.ciaddr.is_unspecified() {
        return Some(req.ciaddr);
    }
    match req.msg_type {
        MessageType::Request => req.requested_ip,
        _ => None,
    }
}

/// Whether `dst` is a unicast address of one of this host's interfaces.
fn own_address(ifaces: &[socket::Iface], dst: Ipv4Addr) -> bool {
    !dst.is_broadcast()
        && !dst.is_unspecified()
        && ifaces
            .iter()
            .any(|i| i.addrs.iter().any(|(a, _)| *a == dst))
}

/// The giaddr of a raw BOOTP frame (0.0.0.0 when it is too short to have one).
fn frame_giaddr(frame: &[u8]) -> Ipv4Addr {
    match frame.get(GIADDR_OFFSET..GIADDR_OFFSET + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn log_reply(req: &PxeRequest<'_>, iface: &str, reply: &super::Reply<'_>) {
    let tag = if req.is_pxe() || req.is_ipxe() {
        "PXE"
    } else {
        "DHCP"
    };
    let mode = if reply.proxy { "proxy " } else { "" };
    let addr = OptAddr(reply.yiaddr);
    // Relayed requests say so, with the relay's address, after the interface name.
    let relay = OptRelay(req.giaddr);
    let iface = format_args!("{iface}{relay}");
    match (&reply.boot, reply.message) {
        (Some(boot), _) => tracing::info!(
            "{tag}({iface}) {} {mode}{}{addr} {}: {}",
            req.mac,
            reply.msg_type,
            boot.file,
            boot.why
        ),
        (None, Some(msg)) => tracing::info!("{tag}({iface}) {} {}: {msg}", req.mac, reply.msg_type),
        (None, None) => tracing::info!(
            "{tag}({iface}) {} {}{addr}: {}",
            req.mac,
            reply.msg_type,
            OptArch(req.arch)
        ),
    }
}

/// ` 10.0.0.5`, or nothing for 0.0.0.0 (formats only when the log line is enabled).
struct OptAddr(Ipv4Addr);

impl std::fmt::Display for OptAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_unspecified() {
            Ok(())
        } else {
            write!(f, " {}", self.0)
        }
    }
}

/// ` via relay 10.88.0.1`, or nothing when the request was not relayed.
struct OptRelay(Ipv4Addr);

impl std::fmt::Display for OptRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_unspecified() {
            Ok(())
        } else {
            write!(f, " via relay {}", self.0)
        }
    }
}

/// The architecture, or "no PXE".
struct OptArch(Option<super::Arch>);

impl std::fmt::Display for OptArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("no PXE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, index: u32, addr: [u8; 4]) -> socket::Iface {
        socket::Iface {
            name: name.to_string(),
            index,
            mac: None,
            addrs: vec![(Ipv4Addr::from(addr), 24)],
        }
    }

    #[test]
    fn relayed_requests_to_us_are_served_on_any_interface() {
        let listed = vec!["br0".to_string()];
        let all = [
            iface("br0", 2, [10, 77, 0, 1]),
            iface("up0", 3, [10, 66, 0, 1]),
        ];
        // A relay on the other side of the uplink sends to br0's address.
        let to_br0 = own_address(&all, Ipv4Addr::new(10, 77, 0, 1));
        assert!(to_br0);
        assert!(served_on(&listed, "up0", to_br0));
        // Broadcasts (and anything not relayed) on an unlisted link stay unanswered.
        assert!(!own_address(&all, Ipv4Addr::BROADCAST));
        assert!(!own_address(&all, Ipv4Addr::new(10, 66, 0, 9)));
        assert!(!served_on(&listed, "up0", false));
        assert!(served_on(&listed, "br0", false));
        assert!(served_on(&[], "up0", false));
    }

    #[test]
    fn giaddr_read_from_the_raw_header() {
        let mut frame = [0u8; 240];
        assert!(frame_giaddr(&frame).is_unspecified());
        frame[GIADDR_OFFSET..GIADDR_OFFSET + 4].copy_from_slice(&[10, 88, 0, 1]);
        assert_eq!(frame_giaddr(&frame), Ipv4Addr::new(10, 88, 0, 1));
        assert!(frame_giaddr(&frame[..20]).is_unspecified());
        assert_eq!(
            OptRelay(Ipv4Addr::new(10, 88, 0, 1)).to_string(),
            " via relay 10.88.0.1"
        );
        assert_eq!(OptRelay(Ipv4Addr::UNSPECIFIED).to_string(), "");
    }

    #[test]
    fn the_address_a_client_uses_is_learnt_from_requests_only() {
        use crate::dhcp::testdata::{frame, Head};
        let wanted = [10, 91, 32, 7];
        // A REQUEST to another server (seen by a proxy): its requested address.
        let req = frame(
            Head::default(),
            &[(53, &[3]), (50, &wanted), (54, &[10, 91, 0, 9])],
        );
        let parsed = PxeRequest::parse(&req).expect("request");
        assert_eq!(address_in_use(&parsed), Some(Ipv4Addr::from(wanted)));
        // A DISCOVER may name its previous address: not in use yet.
        let disc = frame(Head::default(), &[(53, &[1]), (50, &wanted)]);
        let parsed = PxeRequest::parse(&disc).expect("discover");
        assert_eq!(address_in_use(&parsed), None);
        // A renewing client (or OVMF's 4011 request) says it in ciaddr.
        let head = Head {
            ciaddr: Ipv4Addr::new(10, 91, 32, 8),
            ..Head::default()
        };
        let renew = frame(head, &[(53, &[3])]);
        let parsed = PxeRequest::parse(&renew).expect("renew");
        assert_eq!(address_in_use(&parsed), Some(Ipv4Addr::new(10, 91, 32, 8)));
    }
}
