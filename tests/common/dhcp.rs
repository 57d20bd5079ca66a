//! DHCP test helpers: bootd's DHCP service running inside a namespace on its own thread,
//! and a UDP client in another namespace (crafted requests, replies with their options).
//! The namespaces themselves are a [`Lab`](super::netns::Lab).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootd::dhcp::{serve, Backend, DhcpError, Metrics, Settings};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::netns::enter;

/// The service running in a namespace on its own thread; stopped on drop.
pub struct Server {
    pub stop: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub settings: tokio::sync::watch::Sender<Arc<Settings>>,
    thread: Option<std::thread::JoinHandle<Result<(), DhcpError>>>,
}

impl Server {
    pub fn start(ns: &str, settings: Settings, backend: Arc<dyn Backend>) -> Server {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        let stop = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(settings));
        let (ns, token, m) = (ns.to_string(), stop.clone(), metrics.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(rx, backend, m, token))
        });
        // Give it a moment to bind.
        std::thread::sleep(Duration::from_millis(300));
        Server {
            stop,
            metrics,
            settings: tx,
            thread: Some(thread),
        }
    }

    /// Stops and returns the service's result.
    pub fn stop(mut self) -> Result<(), DhcpError> {
        self.stop.cancel();
        self.thread
            .take()
            .map_or(Ok(()), |t| t.join().expect("server thread"))
    }

    pub fn metrics_text(&self) -> String {
        let mut reg = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut reg);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &reg).expect("encode");
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP socket in a namespace, bound to `iface` and `bind`.
pub fn client_socket(ns: &str, iface: &str, bind: SocketAddrV4) -> Socket {
    let (ns, iface) = (ns.to_string(), iface.to_string());
    std::thread::spawn(move || {
        enter(&ns);
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.set_reuse_address(true).expect("reuse");
        s.set_broadcast(true).expect("broadcast");
        s.bind_device(Some(iface.as_bytes())).expect("bind device");
        s.bind(&SocketAddr::V4(bind).into()).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        s
    })
    .join()
    .expect("client socket thread")
}

/// Sends `frame` to `to` and collects replies for `wait` (those matching `xid`).
pub fn exchange(
    sock: &Socket,
    frame: &[u8],
    to: SocketAddrV4,
    wait: Duration,
) -> Vec<(Vec<u8>, SocketAddrV4)> {
    sock.send_to(frame, &SocketAddr::V4(to).into())
        .expect("send");
    let xid = &frame[4..8];
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while Instant::now() < deadline {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            // SAFETY: recv_from initialised the first n bytes.
            let bytes: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if bytes.len() >= 240 && bytes[0] == 2 && &bytes[4..8] == xid {
                let from = from
                    .as_socket_ipv4()
                    .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
                got.push((bytes, from));
                if got.len() >= 4 {
                    break;
                }
            }
        }
    }
    got
}

/// Options of a reply (with overload), first occurrence wins.
pub fn options(buf: &[u8]) -> std::collections::HashMap<u8, Vec<u8>> {
    use bootd::dhcp::wire::OptionIter;
    let mut map = std::collections::HashMap::new();
    let main = &buf[240..];
    let ov = OptionIter::new(main)
        .find(|(c, _)| *c == 52)
        .map_or(0, |(_, v)| v[0]);
    let mut areas = vec![main];
    if ov & 1 != 0 {
        areas.push(&buf[108..236]);
    }
    if ov & 2 != 0 {
        areas.push(&buf[44..108]);
    }
    for a in areas {
        for (c, v) in OptionIter::new(a) {
            map.entry(c).or_insert_with(|| v.to_vec());
        }
    }
    map
}

pub fn cstr(f: &[u8]) -> &[u8] {
    &f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())]
}

/// A crafted request (END appended).
pub fn frame(
    mac: [u8; 6],
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    opts: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut f = vec![0u8; 240];
    f[0] = 1;
    f[1] = 1;
    f[2] = 6;
    f[4..8].copy_from_slice(&xid.to_be_bytes());
    f[10..12].copy_from_slice(&flags.to_be_bytes());
    f[12..16].copy_from_slice(&ciaddr.octets());
    f[24..28].copy_from_slice(&giaddr.octets());
    f[28..34].copy_from_slice(&mac);
    f[236..240].copy_from_slice(&[99, 130, 83, 99]);
    for (c, v) in opts {
        f.push(*c);
        f.push(v.len() as u8);
        f.extend_from_slice(v);
    }
    f.push(255);
    f
}
