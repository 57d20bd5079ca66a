//! Fuzzes the TFTP request path: packet view, option negotiation, path normalisation and
//! the listener's decision, checking the invariants the session relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect
#![no_main]

use bootd_proto::tftp::options::{negotiate, DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};
use bootd_proto::tftp::packet::{parse_client_packet, Request};
use bootd_proto::tftp::path::{normalize, MAX_PATH_LEN};
use bootd_proto::tftp::{decide, Decision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes pick the server caps, so caps outside the valid range are tried.
    let (caps, packet) = match data {
        [a, b, rest @ ..] => ((u16::from(*a) << 8 | u16::from(*b), u16::from(*a)), rest),
        _ => ((1468, 16), data),
    };
    if let Ok(req) = Request::parse(packet) {
        assert!(req.options().count() <= bootd_proto::tftp::packet::MAX_OPTIONS);
        let n = negotiate(&req, caps.0, caps.1, packet.len() as u64);
        assert!(n.blksize >= MIN_BLKSIZE && n.blksize <= MAX_BLKSIZE);
        assert!(n.windowsize >= 1);
        assert!(n.windowsize <= caps.1.max(1));
        assert_eq!(n.needs_oack(), n.oack_options().next().is_some());
        if let Ok(path) = normalize(req.filename()) {
            assert!(!path.is_empty() && path.len() <= MAX_PATH_LEN);
            assert!(!path.starts_with('/') && !path.contains('\\') && !path.contains('\0'));
            assert!(path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."));
        }
    }
    if let Decision::Read { path, neg, .. } = decide(packet, caps.0, caps.1) {
        assert!(!path.split('/').any(|c| c == ".."));
        // Without a granted blksize option RFC 1350's 512 applies, whatever the cap.
        let cap = caps.0.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
        assert!(neg.blksize == DEFAULT_BLKSIZE || neg.blksize <= cap);
    }
    let _ = parse_client_packet(packet);
});
