//! The DHCP side of the storm: PXE and iPXE requests as firmware sends them, and one
//! shared client socket on port 68 whose replies are handed to machines by xid + chaddr.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootd_proto::dhcp::wire::OptionIter;
use bootd_proto::mac::MacAddr;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Receive buffer of the shared socket: a thousand offers arriving at once must not drop.
const SOCKET_BUFFER: usize = 8 << 20;
/// Largest reply we read.
const MAX_REPLY: usize = 1500;
/// Replies queued per waiting machine before extra ones are dropped.
const REPLY_QUEUE: usize = 8;
/// BOOTP header length up to the magic cookie.
const HEADER_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// PXE firmware's DISCOVER/REQUEST timeouts (PXE 2.1 spec: 4, 8, 16, 32 s), then it gives up.
pub const FIRMWARE_BACKOFF: [Duration; 4] = [
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
];
/// How long a proxy-mode client keeps listening for the second kind of offer after the first.
const PROXY_OFFER_WAIT: Duration = Duration::from_secs(2);

/// The vendor class of UEFI x64 firmware PXE (OVMF / EDK2 UNDI 3.16).
const FIRMWARE_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003016";
/// The vendor class iPXE (UEFI build) sends.
const IPXE_CLASS: &[u8] = b"PXEClient:Arch:00007:UNDI:003010";
/// Parameter request list of EDK2's PXE driver (incl. 66/67 and the PXE options 128–135).
const FIRMWARE_PRL: &[u8] = &[
    1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66,
    67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
];
/// Parameter request list of iPXE.
const IPXE_PRL: &[u8] = &[
    1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 135, 175, 203,
];
/// iPXE's option 175 features: PXE ext (16), iSCSI (17), AoE (18), HTTP (19), HTTPS (20),
/// DNS (21), EFI (24), menu (39), version 1.21.1 (235).
const IPXE_ENCAP: &[u8] = &[
    16, 1, 2, 17, 1, 1, 18, 1, 1, 19, 1, 1, 20, 1, 1, 21, 1, 1, 24, 1, 1, 39, 1, 1, 235, 3, 1, 21,
    1,
];

/// DHCP message types we send or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Ack = 5,
    Nak = 6,
}

/// Who is asking: the firmware's PXE ROM or iPXE after it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Firmware,
    Ipxe,
}

/// What one request looks like.
pub struct Request {
    pub kind: Kind,
    pub stage: Stage,
    pub xid: u32,
    pub mac: MacAddr,
    pub uuid: [u8; 16],
    pub secs: u16,
    pub requested: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
}

fn put(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    // Every value we write is a constant or a few bytes; none exceeds 255.
    out.push(code);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

impl Request {
    /// The request on the wire, broadcast flag set (we have no address yet).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        out[0] = 1; // BOOTREQUEST
        out[1] = 1; // Ethernet
        out[2] = 6;
        out[4..8].copy_from_slice(&self.xid.to_be_bytes());
        out[8..10].copy_from_slice(&self.secs.to_be_bytes());
        out[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
        out[28..34].copy_from_slice(&self.mac.octets());
        out.extend_from_slice(&MAGIC_COOKIE);
        put(&mut out, 53, &[self.kind as u8]);
        put(&mut out, 57, &1464u16.to_be_bytes());
        if let Some(ip) = self.requested {
            put(&mut out, 50, &ip.octets());
        }
        if let Some(ip) = self.server_id {
            put(&mut out, 54, &ip.octets());
        }
        let mut client_id = vec![1u8];
        client_id.extend_from_slice(&self.mac.octets());
        match self.stage {
            Stage::Firmware => {
                put(&mut out, 55, FIRMWARE_PRL);
                put(&mut out, 93, &[0, 7]);
                put(&mut out, 94, &[1, 3, 16]);
                let mut uuid = vec![0u8];
                uuid.extend_from_slice(&self.uuid);
                put(&mut out, 97, &uuid);
                put(&mut out, 60, FIRMWARE_CLASS);
            }
            Stage::Ipxe => {
                put(&mut out, 61, &client_id);
                put(&mut out, 55, IPXE_PRL);
                put(&mut out, 93, &[0, 7]);
                put(&mut out, 94, &[1, 3, 16]);
                put(&mut out, 60, IPXE_CLASS);
                put(&mut out, 77, b"iPXE");
                put(&mut out, 175, IPXE_ENCAP);
                let mut uuid = vec![0u8];
                uuid.extend_from_slice(&self.uuid);
                put(&mut out, 97, &uuid);
            }
        }
        out.push(255);
        // BOOTP minimum size; some servers drop shorter frames.
        if out.len() < 300 {
            out.resize(300, 0);
        }
        out
    }
}

/// The parts of a server reply a PXE client acts on.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: Option<u8>,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    /// Option 67, else the BOOTP `file` field.
    pub boot_file: Option<String>,
    /// Option 60 says `PXEClient`: a ProxyDHCP offer (or a full one with PXE info).
    pub pxe_class: bool,
}

fn ip_of(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

fn text(v: &[u8]) -> Option<String> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    let s = String::from_utf8_lossy(&v[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Reads a BOOTREPLY: `(xid, chaddr, reply)`, or None when it is not one.
pub fn parse_reply(buf: &[u8]) -> Option<(u32, MacAddr, Reply)> {
    if buf.len() < HEADER_LEN + 4 || buf[0] != 2 || buf[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE
    {
        return None;
    }
    let xid = u32::from_be_bytes(buf[4..8].try_into().ok()?);
    let mac = MacAddr::from_slice(&buf[28..34])?;
    let mut reply = Reply {
        kind: None,
        yiaddr: ip_of(&buf[16..20])?,
        siaddr: ip_of(&buf[20..24])?,
        server_id: None,
        boot_file: None,
        pxe_class: false,
    };
    let mut overload = 0;
    for (code, value) in OptionIter::new(&buf[HEADER_LEN + 4..]) {
        match code {
            53 => reply.kind = value.first().copied(),
            54 => reply.server_id = ip_of(value),
            60 => reply.pxe_class = value.starts_with(b"PXEClient"),
            67 => reply.boot_file = text(value),
            52 => overload = value.first().copied().unwrap_or(0),
            _ => {}
        }
    }
    if reply.boot_file.is_none() && overload & 1 == 0 {
        reply.boot_file = text(&buf[108..236]);
    }
    Some((xid, mac, reply))
}

/// A reply as delivered to a machine, with its arrival time.
pub type Delivery = (Reply, Instant);

/// The shared port-68 socket; machines register an xid and get their replies on a channel.
pub struct Hub {
    socket: UdpSocket,
    waiting: Mutex<HashMap<u32, (MacAddr, mpsc::Sender<Delivery>)>>,
    target: SocketAddr,
}

impl Hub {
    /// Binds 0.0.0.0:68 with SO_BROADCAST (and to `interface` when given); replies are read
    /// by [`Hub::run`].
    pub fn bind(interface: Option<&str>) -> std::io::Result<Arc<Hub>> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        // The kernel caps this at rmem_max; best effort is enough.
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
        if let Some(dev) = interface {
            s.bind_device(Some(dev.as_bytes()))?;
        }
        s.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)).into())?;
        s.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(s.into())?;
        Ok(Arc::new(Hub {
            socket,
            waiting: Mutex::new(HashMap::new()),
            target: SocketAddr::from(SocketAddrV4::new(Ipv4Addr::BROADCAST, 67)),
        }))
    }

    /// Reads replies forever and hands each to the machine waiting for its xid.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_REPLY];
        loop {
            let Ok((n, _)) = self.socket.recv_from(&mut buf).await else {
                continue;
            };
            let Some((xid, mac, reply)) = parse_reply(&buf[..n]) else {
                continue;
            };
            let tx = {
                let w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                w.get(&xid)
                    .filter(|(m, _)| *m == mac)
                    .map(|(_, tx)| tx.clone())
            };
            if let Some(tx) = tx {
                let _ = tx.try_send((reply, Instant::now()));
            }
        }
    }

    /// Registers `xid` for `mac`; replies arrive on the receiver until [`Hub::forget`].
    pub fn listen(&self, xid: u32, mac: MacAddr) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(xid, (mac, tx));
        rx
    }

    /// Stops delivering replies for `xid`.
    pub fn forget(&self, xid: u32) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&xid);
    }

    /// Broadcasts a request to port 67.
    pub async fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        self.socket.send_to(frame, self.target).await.map(|_| ())
    }
}

/// How a DHCP exchange ended badly.
#[derive(Debug)]
pub enum DhcpFailure {
    /// No usable answer after the whole backoff schedule.
    Timeout,
    /// The server said NAK.
    Nak,
    /// An answer without the address or boot file we need.
    BadOffer(&'static str),
    /// The socket refused to send.
    Io(std::io::Error),
}

/// The outcome of a full exchange: our address and the boot file named to us.
#[derive(Debug, Clone)]
pub struct Lease {
    pub yiaddr: Ipv4Addr,
    /// The server a boot file (TFTP) comes from: siaddr, else the server id.
    pub next_server: Ipv4Addr,
    pub boot_file: String,
}

/// DHCP in full or proxy mode for one machine.
pub struct Client<'a> {
    pub hub: &'a Hub,
    pub mac: MacAddr,
    pub uuid: [u8; 16],
    pub proxy: bool,
    pub backoff: &'a [Duration],
}

/// The offers collected for one DISCOVER.
#[derive(Default)]
struct Offers {
    address: Option<Reply>,
    boot: Option<Reply>,
}

impl Offers {
    fn take(&mut self, r: Reply, proxy: bool) {
        if r.kind != Some(Kind::Offer as u8) {
            return;
        }
        let has_addr = !r.yiaddr.is_unspecified();
        if proxy {
            if has_addr && self.address.is_none() {
                self.address = Some(r);
            } else if !has_addr && r.pxe_class && self.boot.is_none() {
                self.boot = Some(r);
            }
        } else if has_addr && self.address.is_none() {
            self.address = Some(r);
        }
    }

    fn complete(&self, proxy: bool) -> bool {
        self.address.is_some() && (!proxy || self.boot.is_some())
    }
}

impl Client<'_> {
    /// DISCOVER → OFFER(s) → REQUEST → ACK, each step with the firmware's retries.
    pub async fn exchange(&self, stage: Stage, started: Instant) -> Result<Lease, DhcpFailure> {
        let xid: u32 = rand_u32();
        let mut rx = self.hub.listen(xid, self.mac);
        let result = self.exchange_inner(stage, started, xid, &mut rx).await;
        self.hub.forget(xid);
        result
    }

    async fn exchange_inner(
        &self,
        stage: Stage,
        started: Instant,
        xid: u32,
        rx: &mut mpsc::Receiver<Delivery>,
    ) -> Result<Lease, DhcpFailure> {
        let mut req = Request {
            kind: Kind::Discover,
            stage,
            xid,
            mac: self.mac,
            uuid: self.uuid,
            secs: 0,
            requested: None,
            server_id: None,
        };
        let mut offers = Offers::default();
        'discover: for wait in self.backoff {
            req.secs = started.elapsed().as_secs().min(u16::MAX as u64) as u16;
            self.hub
                .send(&req.encode())
                .await
                .map_err(DhcpFailure::Io)?;
            let deadline = tokio::time::Instant::now() + *wait;
            loop {
                // In proxy mode, once one offer is in, wait a bounded time for the other.
                let until = if offers.address.is_some() || offers.boot.is_some() {
                    deadline.min(tokio::time::Instant::now() + PROXY_OFFER_WAIT)
                } else {
                    deadline
                };
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some((r, _))) => {
                        offers.take(r, self.proxy);
                        if offers.complete(self.proxy) {
                            break 'discover;
                        }
                    }
                    Ok(None) => return Err(DhcpFailure::Timeout),
                    Err(_) if offers.address.is_some() => break 'discover,
                    Err(_) => continue 'discover,
                }
            }
        }
        let Some(offer) = offers.address else {
            return Err(DhcpFailure::Timeout);
        };
        let boot_from = if self.proxy {
            offers.boot.as_ref()
        } else {
            Some(&offer)
        };
        let boot_file = boot_from
            .and_then(|r| r.boot_file.clone())
            .ok_or(DhcpFailure::BadOffer("offer without a boot file"))?;
        let server = offer
            .server_id
            .ok_or(DhcpFailure::BadOffer("offer without a server id"))?;
        let next_server = boot_from
            .map(|r| {
                if r.siaddr.is_unspecified() {
                    r.server_id.unwrap_or(server)
                } else {
                    r.siaddr
                }
            })
            .unwrap_or(server);
        req.kind = Kind::Request;
        req.requested = Some(offer.yiaddr);
        req.server_id = Some(server);
        for wait in self.backoff {
            req.secs = started.elapsed().as_secs().min(u16::MAX as u64) as u16;
            self.hub
                .send(&req.encode())
                .await
                .map_err(DhcpFailure::Io)?;
            let deadline = tokio::time::Instant::now() + *wait;
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((r, _))) => match r.kind {
                        Some(k) if k == Kind::Ack as u8 && !r.yiaddr.is_unspecified() => {
                            return Ok(Lease {
                                yiaddr: r.yiaddr,
                                next_server,
                                boot_file,
                            });
                        }
                        Some(k) if k == Kind::Nak as u8 => return Err(DhcpFailure::Nak),
                        _ => {}
                    },
                    Ok(None) => return Err(DhcpFailure::Timeout),
                    Err(_) => break,
                }
            }
        }
        Err(DhcpFailure::Timeout)
    }
}

/// A random 32-bit value (xids), from the OS.
pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    // getrandom only fails without any entropy source; a fixed xid still works then.
    let _ = getrandom::getrandom(&mut b);
    u32::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_bootd_parser() {
        let req = Request {
            kind: Kind::Discover,
            stage: Stage::Ipxe,
            xid: 0x1234_5678,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            uuid: [7; 16],
            secs: 3,
            requested: None,
            server_id: None,
        };
        let frame = req.encode();
        let msg = bootd_proto::dhcp::wire::Message::new_checked(&frame).expect("valid frame");
        assert_eq!(msg.xid(), 0x1234_5678);
        assert_eq!(msg.option(77), Some(&b"iPXE"[..]));
        assert_eq!(msg.option(60), Some(IPXE_CLASS));
        assert_eq!(msg.option(93), Some(&[0u8, 7][..]));
    }
}
