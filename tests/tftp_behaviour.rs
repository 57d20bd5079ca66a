//! Protocol behaviour on loopback with raw UDP clients and the Rust test client:
//! retransmission, client errors, Sorcerer's Apprentice, windows, limits, reload, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bootd::tftp::{ErrorKind, Observer, Settings};
use bytes::Bytes;
use common::tftp::*;
use tokio::net::UdpSocket;

/// Collects every packet that arrives within `wait` after the last one.
async fn drain(sock: &UdpSocket, wait: Duration) -> Vec<Reply> {
    let mut got = Vec::new();
    while let Some((r, _)) = recv(sock, wait).await {
        got.push(r);
    }
    got
}

async fn expect_data(sock: &UdpSocket) -> (u16, Vec<u8>, SocketAddr) {
    match recv(sock, Duration::from_secs(3)).await {
        Some((Reply::Data(b, d), from)) => (b, d, from),
        other => panic!("expected DATA, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_modes_and_block_rollover() {
    let root = Root::new();
    let srv = Server::start(settings(root.path())).await;
    for (i, len) in [0usize, 1, 511, 512, 513, 1468, 2936, 100_000]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64 + 1);
        root.write(&format!("f{len}"), &data);
        for opts in [
            &[][..],
            &[("blksize", "1468")][..],
            &[("blksize", "1468"), ("windowsize", "16"), ("tsize", "0")][..],
            &[("blksize", "8"), ("windowsize", "3")][..],
        ] {
            let got = tftp_get(srv.addr, &format!("f{len}"), opts).await.unwrap();
            assert_eq!(got.len(), len, "len {len} opts {opts:?}");
            assert!(got == data, "content differs: len {len} opts {opts:?}");
        }
    }
    // 70,000 blocks of 8 bytes: block numbers wrap past 65535 to 0.
    let big = pattern(8 * 70_000 + 3, 99);
    root.write("wrap.bin", &big);
    for opts in [
        &[("blksize", "8")][..],
        &[("blksize", "8"), ("windowsize", "16")][..],
    ] {
        let got = tftp_get(srv.addr, "wrap.bin", opts).await.unwrap();
        assert!(got == big, "rollover transfer differs with {opts:?}");
    }
    srv.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(srv.metrics.transfers_completed(), 34);
    assert_eq!(srv.metrics.errors(ErrorKind::Timeout), 0);
    srv.stop().await;
}

#[tokio::test]
async fn streamed_files_bypass_the_cache() {
    let root = Root::new();
    let data = pattern(300_000, 5);
    root.write("big", &data);
    let srv = Server::start(Settings {
        cache_max_file: 1000,
        ..settings(root.path())
    })
    .await;
    let got = tftp_get(srv.addr, "big", &[("blksize", "1468"), ("windowsize", "8")])
        .await
        .unwrap();
    assert!(got == data);
    assert_eq!(srv.metrics.cache_loads(), 0);
    srv.stop().await;
}

#[tokio::test]
async fn netascii_is_converted() {
    let root = Root::new();
    root.write("t.txt", b"line1\nline2\r\nbare\rend");
    let srv = Server::start(settings(root.path())).await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"t.txt", "netascii", &[]), srv.addr)
        .await
        .unwrap();
    let (block, data, from) = expect_data(&sock).await;
    assert_eq!(block, 1);
    assert_eq!(data, b"line1\r\nline2\r\0\r\nbare\r\0end");
    sock.send_to(&ack(1), from).await.unwrap();
    srv.wait_idle(Duration::from_secs(2)).await;
    assert_eq!(srv.metrics.transfers_completed(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn write_requests_are_refused() {
    let root = Root::new();
    let srv = Server::start(settings(root.path())).await;
    let sock = client_socket().await;
    let mut wrq = rrq(b"upload.bin", "octet", &[]);
    wrq[1] = 2;
    sock.send_to(&wrq, srv.addr).await.unwrap();
    let (reply, _) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply, Reply::Error(2, "access violation".into()));
    assert!(!root.path().join("upload.bin").exists());
    assert_eq!(srv.metrics.errors(ErrorKind::WriteRefused), 1);
    srv.stop().await;
}

#[tokio::test]
async fn missing_file_and_malformed_request() {
    let root = Root::new();
    let srv = Server::start(settings(root.path())).await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"nope", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (reply, _) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply, Reply::Error(1, "file not found".into()));
    sock.send_to(b"\x00\x01abc", srv.addr).await.unwrap();
    let (reply, _) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply, Reply::Error(4, "malformed request".into()));
    // A stray ACK to the listening port gets no answer.
    sock.send_to(&ack(1), srv.addr).await.unwrap();
    assert!(recv(&sock, Duration::from_millis(300)).await.is_none());
    srv.wait_idle(Duration::from_secs(2)).await;
    srv.stop().await;
}

#[tokio::test]
async fn tsize_probe_then_real_request() {
    let root = Root::new();
    let data = pattern(5000, 3);
    root.write("ipxe.efi", &data);
    let srv = Server::start(settings(root.path())).await;
    let sock = client_socket().await;
    sock.send_to(
        &rrq(b"ipxe.efi", "octet", &[("tsize", "0"), ("blksize", "1468")]),
        srv.addr,
    )
    .await
    .unwrap();
    let (reply, from) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        reply,
        Reply::Oack(vec![
            ("blksize".into(), "1468".into()),
            ("tsize".into(), "5000".into())
        ])
    );
    sock.send_to(&error_packet(8, "tsize probe"), from)
        .await
        .unwrap();
    // Nothing more comes: the session ended on the client's ERROR.
    assert!(drain(&sock, Duration::from_millis(800)).await.is_empty());
    srv.wait_idle(Duration::from_secs(2)).await;
    assert_eq!(srv.metrics.errors(ErrorKind::ClientError), 0);
    let got = tftp_get(srv.addr, "ipxe.efi", &[("tsize", "0"), ("blksize", "1468")])
        .await
        .unwrap();
    assert!(got == data);
    srv.stop().await;
}

#[tokio::test]
async fn client_error_stops_retransmission() {
    let root = Root::new();
    root.write("f", &pattern(100_000, 4));
    let srv = Server::start(settings(root.path())).await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (b1, _, from) = expect_data(&sock).await;
    assert_eq!(b1, 1);
    sock.send_to(&ack(1), from).await.unwrap();
    let (b2, _, _) = expect_data(&sock).await;
    assert_eq!(b2, 2);
    sock.send_to(&error_packet(0, "user abort"), from)
        .await
        .unwrap();
    // Retransmission interval is 300 ms: 2.5 s would show several retries.
    let late = drain(&sock, Duration::from_millis(2500)).await;
    assert!(late.is_empty(), "server kept sending after ERROR: {late:?}");
    assert_eq!(srv.metrics.active_sessions(), 0);
    assert_eq!(srv.metrics.errors(ErrorKind::ClientError), 1);
    srv.stop().await;
}

#[tokio::test]
async fn vanished_client_frees_its_session() {
    let root = Root::new();
    root.write("f", &pattern(100_000, 6));
    let srv = Server::start(settings(root.path())).await;
    // Silent client: keeps its port open but never answers.
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (b, _, _) = expect_data(&sock).await;
    assert_eq!(b, 1);
    assert_eq!(srv.metrics.active_sessions(), 1);
    let start = Instant::now();
    let mut copies = 0;
    let mut final_error = None;
    while let Some((r, _)) = recv(&sock, Duration::from_secs(4)).await {
        match r {
            Reply::Data(1, _) => copies += 1,
            Reply::Error(code, text) => final_error = Some((code, text)),
            other => panic!("unexpected {other:?}"),
        }
    }
    // 300 ms, then backoff 600, 1200, 2400 ms: 3 retransmissions, then give up.
    assert_eq!(copies, 3);
    assert_eq!(final_error, Some((0, "timeout".into())));
    srv.wait_idle(Duration::from_secs(1)).await;
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(srv.metrics.errors(ErrorKind::Timeout), 1);

    // Closed client: its port answers ICMP unreachable, which ends the session at once.
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let _ = expect_data(&sock).await;
    drop(sock);
    srv.wait_idle(Duration::from_secs(3)).await;
    assert_eq!(srv.metrics.errors(ErrorKind::Timeout), 2);
    srv.stop().await;
}

#[tokio::test]
async fn duplicate_acks_never_duplicate_data() {
    let root = Root::new();
    root.write("f", &pattern(512 * 10, 7));
    let srv = Server::start(Settings {
        retransmit: Duration::from_secs(3),
        ..settings(root.path())
    })
    .await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (_, _, from) = expect_data(&sock).await;
    for block in 1..=5u16 {
        // Each ACK three times (a delayed network, or an apprentice client).
        for _ in 0..3 {
            sock.send_to(&ack(block), from).await.unwrap();
        }
        let got = drain(&sock, Duration::from_millis(400)).await;
        let next: Vec<_> = got
            .iter()
            .filter(|r| matches!(r, Reply::Data(b, _) if *b == block + 1))
            .collect();
        assert_eq!(got.len(), 1, "after ACK {block} x3: {got:?}");
        assert_eq!(next.len(), 1);
    }
    assert_eq!(srv.metrics.retransmits(), 0);
    sock.send_to(&error_packet(0, "done"), from).await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn window_acks_outside_are_ignored_and_gaps_go_back() {
    let root = Root::new();
    root.write("f", &pattern(512 * 20, 8));
    let srv = Server::start(Settings {
        retransmit: Duration::from_secs(3),
        ..settings(root.path())
    })
    .await;
    let sock = client_socket().await;
    sock.send_to(
        &rrq(b"f", "octet", &[("windowsize", "4"), ("blksize", "512")]),
        srv.addr,
    )
    .await
    .unwrap();
    let (reply, from) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert!(matches!(reply, Reply::Oack(_)));
    sock.send_to(&ack(0), from).await.unwrap();
    let blocks = |v: Vec<Reply>| -> Vec<u16> {
        v.into_iter()
            .map(|r| match r {
                Reply::Data(b, _) => b,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    };
    assert_eq!(
        blocks(drain(&sock, Duration::from_millis(400)).await),
        [1, 2, 3, 4]
    );
    // Beyond what was sent, and far behind: ignored.
    for outside in [9u16, 60000] {
        sock.send_to(&ack(outside), from).await.unwrap();
    }
    assert!(drain(&sock, Duration::from_millis(400)).await.is_empty());
    // Duplicate of the OACK's ACK: ignored too.
    sock.send_to(&ack(0), from).await.unwrap();
    assert!(drain(&sock, Duration::from_millis(400)).await.is_empty());
    // Client saw 1 and 2 only: resend from 3.
    sock.send_to(&ack(2), from).await.unwrap();
    assert_eq!(
        blocks(drain(&sock, Duration::from_millis(400)).await),
        [3, 4, 5, 6]
    );
    sock.send_to(&ack(6), from).await.unwrap();
    assert_eq!(
        blocks(drain(&sock, Duration::from_millis(400)).await),
        [7, 8, 9, 10]
    );
    sock.send_to(&error_packet(0, "done"), from).await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_transfers() {
    let root = Root::new();
    let data = Arc::new(pattern(1024 * 1024, 9));
    root.write("ipxe.efi", &data);
    let srv = Server::start(Settings {
        retransmit: Duration::from_millis(500),
        max_retries: 6,
        ..settings(root.path())
    })
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let opts: &[(&str, &str)] = match i % 3 {
                0 => &[("blksize", "1468"), ("tsize", "0")],
                1 => &[("blksize", "1468"), ("windowsize", "4")],
                _ => &[("blksize", "1024"), ("windowsize", "2")],
            };
            tftp_get(addr, "ipxe.efi", opts).await
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(got) => assert!(got == *data, "content differs"),
            Err(e) => failures.push(e),
        }
    }
    let elapsed = start.elapsed();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        failures.first()
    );
    srv.wait_idle(Duration::from_secs(5)).await;
    assert_eq!(srv.metrics.transfers_completed(), 500);
    assert_eq!(
        srv.metrics.cache_loads(),
        1,
        "the file is read from disk once"
    );
    eprintln!("500 x 1 MiB in {elapsed:?}");
    srv.stop().await;
}

#[tokio::test]
async fn session_limits_refuse_with_busy() {
    let root = Root::new();
    root.write("f", &pattern(10_000, 10));
    let srv = Server::start(Settings {
        max_sessions_per_client: 2,
        retransmit: Duration::from_secs(5),
        ..settings(root.path())
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let s = client_socket().await;
        s.send_to(&rrq(b"f", "octet", &[]), srv.addr).await.unwrap();
        let (_, _, from) = expect_data(&s).await;
        held.push((s, from));
    }
    let s = client_socket().await;
    s.send_to(&rrq(b"f", "octet", &[]), srv.addr).await.unwrap();
    let (reply, from) = recv(&s, Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply, Reply::Error(0, "server busy, try again".into()));
    assert_eq!(from, srv.addr);
    assert_eq!(srv.metrics.errors(ErrorKind::ClientLimit), 1);
    assert_eq!(srv.metrics.active_sessions(), 2);
    for (s, from) in held {
        s.send_to(&error_packet(0, "bye"), from).await.unwrap();
    }
    srv.wait_idle(Duration::from_secs(2)).await;
    srv.stop().await;
}

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<(SocketAddr, String)>>,
}

impl Observer for Recorder {
    fn transfer_started(&self, peer: SocketAddr, path: &str) {
        self.started.lock().unwrap().push((peer, path.to_owned()));
    }
    fn virtual_file(&self, peer: SocketAddr, path: &str) -> Option<Bytes> {
        (path == "grub/grub.cfg").then(|| Bytes::from(format!("set peer={}\n", peer.ip())))
    }
}

#[tokio::test]
async fn observer_sees_starts_and_serves_virtual_files() {
    let root = Root::new();
    root.write("grub/grub.cfg", b"from disk");
    root.write("ipxe.efi", b"efi");
    let rec = Arc::new(Recorder::default());
    let srv = Server::start_with(settings(root.path()), rec.clone()).await;
    let got = tftp_get(srv.addr, "/grub/grub.cfg", &[]).await.unwrap();
    assert_eq!(got, b"set peer=127.0.0.1\n");
    assert_eq!(tftp_get(srv.addr, "ipxe.efi", &[]).await.unwrap(), b"efi");
    assert!(tftp_get(srv.addr, "missing", &[]).await.is_err());
    let paths: Vec<String> = rec
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(paths, ["grub/grub.cfg", "ipxe.efi"]);
    srv.stop().await;
}

#[tokio::test]
async fn reload_applies_to_new_sessions_only() {
    let old_root = Root::new();
    let new_root = Root::new();
    let old = pattern(20_000, 11);
    let new = pattern(3000, 12);
    old_root.write("f", &old);
    new_root.write("f", &new);
    let srv = Server::start(settings(old_root.path())).await;
    // A transfer in flight from the old root...
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (_, first, from) = expect_data(&sock).await;
    srv.settings
        .send_replace(Arc::new(settings(new_root.path())));
    // ...goes on from the old root to the end.
    let mut last_len = first.len();
    let mut got = first;
    let mut block = 1u16;
    loop {
        sock.send_to(&ack(block), from).await.unwrap();
        if last_len < 512 {
            break;
        }
        let (b, d, _) = expect_data(&sock).await;
        assert_eq!(b, block + 1);
        block = b;
        last_len = d.len();
        got.extend_from_slice(&d);
    }
    assert!(got == old);
    assert!(tftp_get(srv.addr, "f", &[]).await.unwrap() == new);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_transfers_finish() {
    let root = Root::new();
    let data = pattern(4 * 1024 * 1024, 13);
    root.write("f", &data);
    let srv = Server::start(settings(root.path())).await;
    let addr = srv.addr;
    let transfer = tokio::spawn(async move { tftp_get(addr, "f", &[]).await });
    // Let it start, then shut down while it runs.
    while srv.metrics.active_sessions() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let metrics = srv.metrics.clone();
    let t0 = Instant::now();
    srv.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(11));
    assert!(transfer.await.unwrap().unwrap() == data);
    assert_eq!(metrics.transfers_completed(), 1);
    assert_eq!(metrics.active_sessions(), 0);
    // Nothing listens any more.
    assert!(tftp_get(addr, "f", &[]).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_stalled_transfers_after_the_grace_period() {
    let root = Root::new();
    root.write("f", &pattern(10_000, 14));
    let srv = Server::start(Settings {
        retransmit: Duration::from_secs(60),
        ..settings(root.path())
    })
    .await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let _ = expect_data(&sock).await;
    let metrics = srv.metrics.clone();
    let t0 = Instant::now();
    srv.stop().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert_eq!(metrics.active_sessions(), 0);
    assert_eq!(metrics.errors(ErrorKind::Shutdown), 1);
    let last = drain(&sock, Duration::from_millis(300)).await;
    assert_eq!(last, [Reply::Error(0, "server shutting down".into())]);
}

#[tokio::test]
async fn session_deadline_ends_slow_transfers() {
    let root = Root::new();
    root.write("f", &pattern(10_000, 15));
    let srv = Server::start(Settings {
        retransmit: Duration::from_secs(60),
        session_deadline: Duration::from_millis(500),
        ..settings(root.path())
    })
    .await;
    let sock = client_socket().await;
    sock.send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let _ = expect_data(&sock).await;
    let (reply, _) = recv(&sock, Duration::from_secs(2)).await.unwrap();
    assert_eq!(reply, Reply::Error(0, "transfer deadline exceeded".into()));
    srv.wait_idle(Duration::from_secs(1)).await;
    assert_eq!(srv.metrics.errors(ErrorKind::Deadline), 1);
    srv.stop().await;
}

/// At the total session limit a request gets no answer (firmware would give up on an
/// ERROR); its resend is served once a slot is free.
#[tokio::test]
async fn full_server_stays_silent_until_a_slot_frees() {
    let root = Root::new();
    root.write("f", &pattern(10_000, 11));
    let srv = Server::start(Settings {
        max_sessions: 1,
        retransmit: Duration::from_secs(5),
        ..settings(root.path())
    })
    .await;
    let holder = client_socket().await;
    holder
        .send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (_, _, held_from) = expect_data(&holder).await;

    let waiting = client_socket().await;
    waiting
        .send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    assert!(
        recv(&waiting, Duration::from_millis(700)).await.is_none(),
        "a full server must not answer"
    );
    assert_eq!(srv.metrics.errors(ErrorKind::SessionLimit), 1);

    holder
        .send_to(&error_packet(0, "done"), held_from)
        .await
        .unwrap();
    srv.wait_idle(Duration::from_secs(2)).await;
    // The firmware's resend, from the same port, now gets the file.
    waiting
        .send_to(&rrq(b"f", "octet", &[]), srv.addr)
        .await
        .unwrap();
    let (block, _, _) = expect_data(&waiting).await;
    assert_eq!(block, 1);
    srv.stop().await;
}

/// A resent request from a peer whose session is running starts no second session.
#[tokio::test]
async fn resent_request_does_not_start_a_second_session() {
    let root = Root::new();
    root.write("f", &pattern(10_000, 12));
    let srv = Server::start(Settings {
        retransmit: Duration::from_secs(5),
        ..settings(root.path())
    })
    .await;
    let s = client_socket().await;
    s.send_to(&rrq(b"f", "octet", &[]), srv.addr).await.unwrap();
    let (_, _, from) = expect_data(&s).await;
    s.send_to(&rrq(b"f", "octet", &[]), srv.addr).await.unwrap();
    assert!(
        recv(&s, Duration::from_millis(700)).await.is_none(),
        "the resend must not start a second stream"
    );
    assert_eq!(srv.metrics.active_sessions(), 1);
    assert_eq!(srv.metrics.errors(ErrorKind::Duplicate), 1);
    s.send_to(&error_packet(0, "bye"), from).await.unwrap();
    srv.wait_idle(Duration::from_secs(2)).await;
    srv.stop().await;
}
