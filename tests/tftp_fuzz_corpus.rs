//! Replays every file of fuzz/corpus/tftp_request through the request parser, option
//! negotiation, path normalisation and the listener's decision (as the fuzz target does).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use std::path::Path;

use bootd::tftp::options::{negotiate, DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};
use bootd::tftp::packet::{parse_client_packet, Request, MAX_OPTIONS};
use bootd::tftp::path::normalize;
use bootd::tftp::{decide, Decision, Settings};

fn check(data: &[u8]) -> bool {
    let (caps, packet) = match data {
        [a, b, rest @ ..] => ((u16::from(*a) << 8 | u16::from(*b), u16::from(*a)), rest),
        _ => ((1468, 16), data),
    };
    let parsed = Request::parse(packet);
    if let Ok(req) = &parsed {
        assert!(req.options().count() <= MAX_OPTIONS);
        let n = negotiate(req, caps.0, caps.1, 0);
        assert!(n.blksize >= MIN_BLKSIZE && n.blksize <= MAX_BLKSIZE);
        assert!(n.windowsize >= 1 && n.windowsize <= caps.1.max(1));
        if let Ok(path) = normalize(req.filename()) {
            assert!(path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."));
            assert!(!path.contains('\\'));
        }
    }
    let settings = Settings {
        max_blksize: caps.0,
        max_windowsize: caps.1,
        ..Settings::default()
    };
    if let Decision::Read { path, neg, .. } = decide(packet, &settings) {
        assert!(!path.split('/').any(|c| c == ".."));
        let cap = settings.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
        assert!(neg.blksize == DEFAULT_BLKSIZE || neg.blksize <= cap);
    }
    let _ = parse_client_packet(packet);
    parsed.is_ok()
}

#[test]
fn corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tftp_request");
    let mut files = 0;
    let mut requests = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if check(&data) {
            requests += 1;
        }
        files += 1;
    }
    assert!(files >= 10, "seed corpus missing in {}", dir.display());
    assert!(
        requests >= 5,
        "too few well-formed requests in the corpus: {requests}"
    );
}
