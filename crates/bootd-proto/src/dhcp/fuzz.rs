//! One pass of the packet path over arbitrary bytes, for the fuzz target and for the
//! test that replays its corpus: parse → plan → decide → write → re-parse the reply.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use super::decide::{decide, Context, Decision, Port};
use super::lease::{LeaseAnswer, LeaseTable, PlanCtx};
use super::reply::{self, ReplyScratch};
use super::request::PxeRequest;
use super::wire::OptionIter;
use super::{Mode, NodeBoot, Option43Strategy, Pool, Settings, Unknown};

/// Runs the whole decision path on `data`. The first byte picks mode, port, policy and
/// the node's shape; the rest is the frame. Panics only on a broken invariant.
pub fn fuzz_one(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let server = Ipv4Addr::new(10, 77, 0, 1);
    let settings = Settings {
        mode: if sel & 1 == 0 {
            Mode::Proxy
        } else {
            Mode::Full
        },
        unknown: if sel & 2 == 0 {
            Unknown::Discover
        } else {
            Unknown::Ignore
        },
        proxy_option43: if sel & 4 == 0 {
            Option43Strategy::Minimal
        } else {
            Option43Strategy::Menu
        },
        public_url: "http://10.77.0.1:8080".into(),
        pools: vec![Pool {
            subnet: Ipv4Addr::new(10, 77, 0, 0),
            prefix: 24,
            range: (Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 110)),
            router: Some(server),
            dns: vec![server],
            lease_time: Duration::from_secs(600),
            domain: Some("lab".into()),
        }],
        ..Settings::default()
    };
    let node = NodeBoot {
        known: sel & 8 == 0,
        reserved_ip: (sel & 16 != 0).then_some(Ipv4Addr::new(10, 77, 0, 50)),
        hostname: (sel & 32 != 0).then(|| "node".into()),
        efi_file: (sel & 64 != 0).then(|| "snponly.efi".into()),
        ..NodeBoot::default()
    };
    let port = if sel & 128 == 0 {
        Port::Dhcp
    } else {
        Port::Pxe
    };
    let Ok(req) = PxeRequest::parse(frame) else {
        return;
    };
    let mut table = LeaseTable::new();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30);
    let none = |_ip: Ipv4Addr| None;
    let pc = PlanCtx {
        pools: &settings.pools,
        pool: Some(0),
        server_id: server,
        now,
        reserved_for: &none,
    };
    let lease = if settings.mode == Mode::Full && port == Port::Dhcp {
        table.plan(&req, &node, &pc)
    } else {
        LeaseAnswer::None
    };
    let ctx = Context {
        iface: "br0",
        server_ip: server,
        port,
        lease,
    };
    let decision = decide(&req, &node, &settings, &ctx);
    if decision.commits_lease() {
        let _ = table.apply(&lease, &req, &node, &settings.pools, now);
    }
    if let Decision::Reply(r) = decision {
        assert!(
            settings.mode == Mode::Full || r.yiaddr.is_unspecified(),
            "proxy assigned an address"
        );
        let mut out = [0u8; 1500];
        let mut scratch = ReplyScratch::default();
        if let Ok(n) = reply::write(&mut out, &mut scratch, &req, &r) {
            assert!(
                n <= req.max_reply_len(),
                "reply longer than the client accepts"
            );
            let written = out.get(240..n).unwrap_or(&[]);
            assert!(
                OptionIter::new(written).any(|(c, v)| c == 53 && v.len() == 1),
                "reply without type"
            );
        }
    }
}
