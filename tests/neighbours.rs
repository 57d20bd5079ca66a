//! The neighbour table read over rtnetlink, inside a network namespace of its own: static
//! IPv4 and IPv6 neighbours on a veth pair are found with their MAC, others are not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

mod common;

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use bootd::mac::MacAddr;
use common::*;

/// Runs `f` on a thread that has joined the namespace `name` (setns affects only the
/// calling thread, so the test's own thread stays where it was).
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace fd we hold open; it changes only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

#[test]
fn static_neighbours_are_found_in_their_namespace_only() {
    need_root();
    let ns = Netns::new().expect("netns");
    ns.ip(&["link", "add", "nb0", "type", "veth", "peer", "name", "nb1"])
        .expect("veth");
    for dev in ["nb0", "nb1"] {
        ns.ip(&["link", "set", dev, "up"]).expect("up");
    }
    ns.ip(&["addr", "add", "10.78.0.1/24", "dev", "nb0"])
        .expect("addr");
    ns.ip(&["-6", "addr", "add", "fd78::1/64", "dev", "nb0", "nodad"])
        .expect("addr6");
    let mac4 = "52:54:00:12:34:56";
    let mac6 = "52:54:00:12:34:66";
    ns.ip(&[
        "neigh",
        "add",
        "10.78.0.2",
        "lladdr",
        mac4,
        "dev",
        "nb0",
        "nud",
        "permanent",
    ])
    .expect("neigh v4");
    ns.ip(&[
        "-6",
        "neigh",
        "add",
        "fd78::2",
        "lladdr",
        mac6,
        "dev",
        "nb0",
        "nud",
        "reachable",
    ])
    .expect("neigh v6");
    ns.ip(&[
        "neigh",
        "add",
        "10.78.0.3",
        "dev",
        "nb0",
        "nud",
        "incomplete",
    ])
    .expect("neigh incomplete");

    let ips: Vec<IpAddr> = [
        "10.78.0.2",
        "fd78::2",
        "::ffff:10.78.0.2",
        "10.78.0.3",
        "10.78.0.4",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let asked = ips.clone();
    let found = in_netns(ns.name(), move || {
        asked
            .iter()
            .map(|ip| bootd::neighbours::mac_of(*ip))
            .collect::<Vec<_>>()
    });
    let mac = |s: &str| Some(s.parse::<MacAddr>().unwrap());
    assert_eq!(
        found,
        vec![mac(mac4), mac(mac6), mac(mac4), None, None],
        "for {ips:?}; table:\n{}",
        ns.ip(&["neigh", "show"]).unwrap_or_default()
    );
    // Outside the namespace these entries do not exist.
    assert_eq!(bootd::neighbours::mac_of(ips[0]), None);
    assert_eq!(bootd::neighbours::mac_of(ips[1]), None);
}
