//! The service as a black box inside network namespaces, with real clients: busybox
//! udhcpc (full mode), dnsmasq next to us (proxy mode), crafted PXE requests over UDP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bootd::dhcp::file_backend::FileBackend;
use bootd::dhcp::{LeaseState, Mode, NodeBoot, Pool, Settings};
use bootd::mac::MacAddr;
use common::dhcp::*;
use common::netns::{enter, Lab};
use common::wait_until;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const BCAST67: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);

fn pool(net: [u8; 3], lo: u8, hi: u8) -> Pool {
    let ip = |last| Ipv4Addr::new(net[0], net[1], net[2], last);
    Pool {
        subnet: ip(0),
        prefix: 24,
        range: (ip(lo), ip(hi)),
        router: Some(ip(1)),
        dns: vec![ip(1)],
        lease_time: Duration::from_secs(3600),
        domain: Some("lab.test".into()),
    }
}

fn settings(mode: Mode) -> Settings {
    Settings {
        mode,
        interfaces: vec!["br0".into()],
        public_url: "http://10.77.0.1:8080".into(),
        pools: vec![pool([10, 77, 0], 100, 199)],
        rate_per_mac: 50,
        ..Settings::default()
    }
}

fn backend(dir: &tempfile::TempDir) -> Arc<FileBackend> {
    let mut b = FileBackend::open(dir.path().join("leases.log")).expect("lease file");
    b.default_node = NodeBoot {
        known: true,
        ..NodeBoot::default()
    };
    Arc::new(b)
}

fn udhcpc_script(dir: &tempfile::TempDir) -> (String, std::path::PathBuf) {
    let log = dir.path().join("udhcpc.log");
    let script = dir.path().join("script.sh");
    let body = format!(
        "#!/bin/sh\necho \"$1 $ip $serverid\" >> {log}\ncase \"$1\" in\n bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface ;;\n deconfig) ip addr flush dev $interface ;;\nesac\n",
        log = log.display()
    );
    std::fs::write(&script, body).expect("script");
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .expect("chmod");
    (script.to_string_lossy().into_owned(), log)
}

fn log_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn lease_of(b: &FileBackend, mac: [u8; 6]) -> Option<bootd::dhcp::Lease> {
    b.stored()
        .into_iter()
        .find(|l| l.mac == MacAddr(mac) && l.state != LeaseState::Declined)
}

#[test]
fn full_mode_udhcpc_bind_renew_restart_release() {
    let mut lab = Lab::new("f");
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let server = Server::start(&lab.server, settings(Mode::Full), b.clone());
    let (script, log) = udhcpc_script(&dir);
    let pid = lab.spawn(
        &lab.client.clone(),
        &[
            "udhcpc", "-f", "-i", "vc", "-s", &script, "-t", "20", "-T", "1", "-A", "1",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(15), || log_lines(&log)
            .iter()
            .any(|l| l.starts_with("bound "))),
        "no lease: {:?}",
        log_lines(&log)
    );
    let bound = log_lines(&log)
        .into_iter()
        .find(|l| l.starts_with("bound "))
        .unwrap();
    let ip: Ipv4Addr = bound.split(' ').nth(1).unwrap().parse().unwrap();
    assert!((Ipv4Addr::new(10, 77, 0, 100)..=Ipv4Addr::new(10, 77, 0, 199)).contains(&ip));
    assert!(
        bound.ends_with("10.77.0.1"),
        "server id is br0's address: {bound}"
    );
    let stored = lease_of(&b, MAC).expect("lease persisted before the ACK");
    assert_eq!((stored.ip, stored.state), (ip, LeaseState::Bound));
    assert!(b
        .offered
        .lock()
        .unwrap()
        .iter()
        .any(|o| o.mac == MacAddr(MAC) && o.ip == Some(ip) && o.iface == "br0"));

    // Renew (unicast REQUEST with ciaddr).
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    kill("-USR1");
    assert!(
        wait_until(Duration::from_secs(10), || log_lines(&log)
            .iter()
            .any(|l| l.starts_with(&format!("renew {ip}")))),
        "no renew: {:?}",
        log_lines(&log)
    );

    // Restart: the lease survives; another MAC does not get its address.
    server.stop().expect("clean stop");
    let b2 = backend(&dir);
    let _server2 = Server::start(&lab.server, settings(Mode::Full), b2.clone());
    let sock = client_socket(
        &lab.client,
        "vc",
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    );
    let other = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
    let disc = frame(
        other,
        77,
        0x8000,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &[(53, &[1])],
    );
    let replies = exchange(&sock, &disc, BCAST67, Duration::from_secs(2));
    let offer = replies.first().expect("offer to a second client");
    let yiaddr = Ipv4Addr::new(offer.0[16], offer.0[17], offer.0[18], offer.0[19]);
    assert_ne!(
        yiaddr, ip,
        "a persisted lease is not handed to another MAC after restart"
    );
    // The first client renews with the restarted server and keeps its address.
    let before = log_lines(&log).len();
    kill("-USR1");
    assert!(
        wait_until(Duration::from_secs(10), || log_lines(&log)[before..]
            .iter()
            .any(|l| l.starts_with(&format!("renew {ip}")))),
        "renew after restart: {:?}",
        log_lines(&log)
    );

    // Release.
    kill("-USR2");
    assert!(
        wait_until(Duration::from_secs(5), || lease_of(&b2, MAC)
            .is_some_and(|l| l.state == LeaseState::Released)),
        "release not persisted"
    );
}

fn pxe_discover(arch: u16, class: &[u8], extra: &[(u8, &[u8])], xid: u32) -> Vec<u8> {
    let arch = arch.to_be_bytes();
    let uuid: Vec<u8> = (0..17).collect();
    let mut opts: Vec<(u8, &[u8])> = vec![
        (53, &[1]),
        (93, &arch),
        (94, &[1, 3, 16]),
        (60, class),
        (97, &uuid),
    ];
    opts.extend_from_slice(extra);
    frame(
        MAC,
        xid,
        0x8000,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &opts,
    )
}

#[test]
fn proxy_next_to_dnsmasq_with_4011() {
    let mut lab = Lab::new("p");
    let dns_ns = lab.add_peer("d", "10.77.0.2/24");
    lab.spawn(
        &dns_ns,
        &[
            "dnsmasq",
            "--conf-file=/dev/null",
            "--no-daemon",
            "--port=0",
            "--no-ping",
            "--leasefile-ro",
            "--interface=vx",
            "--bind-interfaces",
            "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let server = Server::start(&lab.server, settings(Mode::Proxy), b.clone());
    std::thread::sleep(Duration::from_millis(500));

    // A plain client gets its address from dnsmasq; we stay silent.
    let (script, log) = udhcpc_script(&dir);
    let out = lab.run(
        &lab.client,
        &[
            "udhcpc", "-q", "-n", "-f", "-i", "vc", "-s", &script, "-t", "10", "-T", "1",
        ],
    );
    assert!(
        out.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bound = log_lines(&log)
        .into_iter()
        .find(|l| l.starts_with("bound "))
        .expect("address from dnsmasq");
    assert!(bound.ends_with("10.77.0.2"), "{bound}");
    assert!(
        server.metrics_text().contains("reason=\"not_pxe\""),
        "non-PXE client ignored"
    );

    // PXE firmware: an address offer from dnsmasq and a boot offer from us.
    let sock = client_socket(
        &lab.client,
        "vc",
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    );
    let replies = exchange(
        &sock,
        &pxe_discover(7, b"PXEClient:Arch:00007:UNDI:003016", &[], 1),
        BCAST67,
        Duration::from_millis(1500),
    );
    let ours = replies
        .iter()
        .find(|(_, from)| *from.ip() == SERVER)
        .expect("our proxy offer");
    let theirs = replies
        .iter()
        .find(|(_, from)| *from.ip() == Ipv4Addr::new(10, 77, 0, 2))
        .expect("dnsmasq offer");
    assert_eq!(&ours.0[16..20], &[0, 0, 0, 0], "proxy never assigns");
    assert_ne!(&theirs.0[16..20], &[0, 0, 0, 0]);
    let o = options(&ours.0);
    assert_eq!(cstr(&ours.0[108..236]), b"ipxe.efi");
    assert_eq!(&ours.0[20..24], &SERVER.octets(), "siaddr");
    assert_eq!(o[&60], b"PXEClient");
    assert_eq!(o[&43], [6, 1, 8, 255]);
    assert_eq!(o[&54], SERVER.octets());

    // BIOS, HTTP boot, iPXE.
    type Case<'a> = (u16, &'a [u8], &'a [(u8, &'a [u8])], &'a [u8]);
    let cases: [Case<'_>; 4] = [
        (
            0,
            b"PXEClient:Arch:00000:UNDI:002001",
            &[],
            b"undionly.kpxe",
        ),
        (
            11,
            b"PXEClient:Arch:00011:UNDI:003000",
            &[],
            b"arm64/ipxe.efi",
        ),
        (
            16,
            b"HTTPClient:Arch:00016:UNDI:003001",
            &[],
            b"http://10.77.0.1:8080/assets/ipxe.efi",
        ),
        (
            7,
            b"PXEClient:Arch:00007:UNDI:003010",
            &[(77, b"iPXE"), (175, &[19, 1, 1])],
            b"http://10.77.0.1:8080/boot/52:54:00:12:34:56.ipxe",
        ),
    ];
    for (i, (arch, class, extra, file)) in cases.iter().enumerate() {
        let replies = exchange(
            &sock,
            &pxe_discover(*arch, class, extra, 10 + i as u32),
            BCAST67,
            Duration::from_millis(800),
        );
        let (r, _) = replies
            .iter()
            .find(|(_, f)| *f.ip() == SERVER)
            .unwrap_or_else(|| panic!("no offer for arch {arch}"));
        let o = options(r);
        assert_eq!(o[&67], *file, "arch {arch}");
        if *arch == 16 {
            assert_eq!(o[&60], b"HTTPClient");
        }
        if !extra.is_empty() {
            assert_eq!(o[&175], [176, 1, 1]);
        }
    }

    // UEFI then asks port 4011 from its new address; the ACK comes back to that port.
    assert!(lab
        .run(
            &lab.client,
            &["ip", "addr", "add", "10.77.0.60/24", "dev", "vc"]
        )
        .status
        .success());
    let s4011 = client_socket(
        &lab.client,
        "vc",
        SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 60), 4012),
    );
    let req = frame(
        MAC,
        99,
        0,
        Ipv4Addr::new(10, 77, 0, 60),
        Ipv4Addr::UNSPECIFIED,
        &[
            (53, &[3]),
            (93, &[0, 7]),
            (60, b"PXEClient:Arch:00007:UNDI:003016"),
            (54, &SERVER.octets()),
        ],
    );
    let acks = exchange(
        &s4011,
        &req,
        SocketAddrV4::new(SERVER, 4011),
        Duration::from_secs(1),
    );
    let (ack, from) = acks.first().expect("4011 ACK");
    assert_eq!(*from, SocketAddrV4::new(SERVER, 4011));
    assert_eq!(options(ack)[&53], [5]);
    assert_eq!(cstr(&ack[108..236]), b"ipxe.efi");
    assert!(
        b.offered
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.mac == MacAddr(MAC) && o.ip.is_none()),
        "proxy offers reported"
    );
}

#[test]
fn relayed_request_answered_to_giaddr_with_82() {
    let lab = Lab::new("r");
    let mut s = settings(Mode::Full);
    s.pools.push(pool([10, 88, 0], 100, 120));
    // The "relay" lives in the client namespace at 10.77.0.50 and owns 10.88.0.1.
    assert!(lab
        .run(
            &lab.client,
            &["ip", "addr", "add", "10.77.0.50/24", "dev", "vc"]
        )
        .status
        .success());
    assert!(lab
        .run(
            &lab.client,
            &["ip", "addr", "add", "10.88.0.1/24", "dev", "vc"]
        )
        .status
        .success());
    assert!(lab
        .run(
            &lab.server,
            &["ip", "route", "add", "10.88.0.0/24", "via", "10.77.0.50"]
        )
        .status
        .success());
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(&lab.server, s, backend(&dir));
    let relay = client_socket(
        &lab.client,
        "vc",
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67),
    );
    let info: &[u8] = &[1, 4, b'p', b'o', b'r', b't', 2, 3, 1, 2, 3];
    let disc = frame(
        [2, 0, 0, 0, 0, 7],
        5,
        0,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 88, 0, 1),
        &[
            (53, &[1]),
            (82, info),
            (93, &[0, 0]),
            (60, b"PXEClient:Arch:00000:UNDI:002001"),
        ],
    );
    let replies = exchange(
        &relay,
        &disc,
        SocketAddrV4::new(SERVER, 67),
        Duration::from_secs(1),
    );
    let (r, from) = replies.first().expect("reply to the relay");
    assert_eq!(from.port(), 67);
    let yiaddr = Ipv4Addr::new(r[16], r[17], r[18], r[19]);
    assert!(
        (Ipv4Addr::new(10, 88, 0, 100)..=Ipv4Addr::new(10, 88, 0, 120)).contains(&yiaddr),
        "pool of the relay's subnet: {yiaddr}"
    );
    let o = options(r);
    assert_eq!(o[&82], info);
    assert_eq!(o[&3], [10, 88, 0, 1]);
    assert_eq!(cstr(&r[108..236]), b"undionly.kpxe");
    // A request for an address of the wrong subnet is NAKed.
    let bad = frame(
        [2, 0, 0, 0, 0, 7],
        6,
        0,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 88, 0, 1),
        &[(53, &[3]), (50, &[10, 77, 0, 123]), (82, info)],
    );
    let naks = exchange(
        &relay,
        &bad,
        SocketAddrV4::new(SERVER, 67),
        Duration::from_secs(1),
    );
    assert_eq!(
        naks.first().map(|(r, _)| options(r)[&53].clone()),
        Some(vec![6])
    );
}

#[test]
fn garbage_and_flood_do_not_stop_a_good_client() {
    let lab = Lab::new("g");
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(Mode::Full);
    s.rate_per_mac = 5;
    let server = Server::start(&lab.server, s, backend(&dir));
    let sock = client_socket(
        &lab.client,
        "vc",
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    );
    let good = || {
        frame(
            MAC,
            4242,
            0x8000,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[(53, &[1]), (93, &[0, 0]), (60, b"PXEClient")],
        )
    };
    let mut garbage: Vec<Vec<u8>> = Vec::new();
    garbage.push(good()[..200].to_vec()); // truncated
    let mut overrun = good();
    let n = overrun.len();
    overrun[n - 1] = 60;
    overrun.push(200); // option length past the end
    garbage.push(overrun);
    let mut ov = frame(
        MAC,
        4242,
        0x8000,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &[(53, &[1]), (52, &[3])],
    );
    ov[108] = 60;
    ov[109] = 250; // overload pointing at garbage
    garbage.push(ov);
    let mut hlen = good();
    hlen[2] = 17;
    garbage.push(hlen);
    let mut pads = good();
    pads.truncate(240);
    pads.extend(std::iter::repeat_n(0u8, 10_000));
    pads.extend_from_slice(&[53, 1, 1, 255]);
    garbage.push(pads);
    garbage.push((0..600u32).map(|i| (i * 7919 % 251) as u8).collect());
    for g in &garbage {
        let r = exchange(&sock, g, BCAST67, Duration::from_millis(300));
        assert!(r.is_empty(), "reply to garbage {:?}", &g[..g.len().min(16)]);
    }
    // Flood: 20,000 DISCOVERs from random MACs, unanswered by us here (no reply read).
    let mut x: u32 = 0x1234_5678;
    for i in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = x.to_be_bytes();
        let f = frame(
            [0x02, b[0], b[1], b[2], b[3], (i & 0xff) as u8],
            i,
            0,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[(53, &[1])],
        );
        let _ = sock.send_to(&f, &std::net::SocketAddr::V4(BCAST67).into());
    }
    // Let the service work through the flood (the socket buffer holds thousands).
    let discovers = || {
        server
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("dhcp_received_total{kind=\"discover\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut last = discovers();
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(400));
            let now = discovers();
            let settled = now == last;
            last = now;
            settled
        }),
        "flood never drained"
    );
    // A looping client is limited to about `rate_per_mac` answers per second.
    let looping = [0x52, 0x54, 0, 0xde, 0xad, 0x01];
    let mut answered = 0;
    for i in 0..40 {
        let f = frame(
            looping,
            9000 + i,
            0x8000,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[(53, &[1])],
        );
        let _ = sock.send_to(&f, &std::net::SocketAddr::V4(BCAST67).into());
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(800);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            // SAFETY: recv_from initialised n bytes.
            let b: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            if b.len() > 34 && b[28..34] == looping {
                answered += 1;
            }
        }
    }
    assert!(
        (1..=8).contains(&answered),
        "looping client answered {answered} times"
    );
    // The good client is still served.
    let mut served = false;
    for _ in 0..5 {
        let r = exchange(&sock, &good(), BCAST67, Duration::from_millis(600));
        if r.iter().any(|(b, _)| options(b).get(&53) == Some(&vec![2])) {
            served = true;
            break;
        }
    }
    assert!(served, "good client not served after the flood");
    let m = server.metrics_text();
    for reason in [
        "truncated",
        "option_overrun",
        "bad_hlen",
        "oversize",
        "rate_limited",
    ] {
        assert!(
            m.contains(&format!("reason=\"{reason}\"")),
            "no drop counted for {reason}:\n{m}"
        );
    }
    server.stop().expect("server survived");
}

#[test]
fn router_advertisement_answers_a_solicitation() {
    let lab = Lab::new("a");
    let mut s = settings(Mode::Proxy);
    s.ipv6_ra = true;
    // Link-local addresses need DAD to finish before RAs can leave br0.
    std::thread::sleep(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(&lab.server, s, backend(&dir));
    let ns = lab.client.clone();
    let got = std::thread::spawn(move || {
        enter(&ns);
        let sock = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV6),
        )
        .unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        sock.set_multicast_hops_v6(255).unwrap();
        let ifindex = nix::net::if_::if_nametoindex("vc").unwrap();
        let rs = [133u8, 0, 0, 0, 0, 0, 0, 0];
        let all_routers = std::net::SocketAddrV6::new("ff02::2".parse().unwrap(), 0, 0, ifindex);
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        while std::time::Instant::now() < deadline {
            let _ = sock.send_to(&rs, &all_routers.into());
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                // SAFETY: recv_from initialised n bytes.
                let b: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                if b.first() == Some(&134) {
                    return Some(b);
                }
            }
        }
        None
    })
    .join()
    .unwrap();
    let ra = got.expect("router advertisement received");
    assert_eq!(&ra[6..8], &[0, 0], "router lifetime 0");
    assert_eq!(ra[5] & 0xc0, 0, "no M/O flags: iPXE stops waiting");
    assert!(
        !ra[16..].chunks(8).any(|o| o.first() == Some(&3)),
        "no prefix option"
    );
}
