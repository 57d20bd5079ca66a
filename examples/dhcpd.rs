//! Full-mode DHCP server for benchmarks and manual tests: one pool, leases persisted to
//! an append-only file (write + fdatasync per group commit) before any ACK leaves.
//!
//! `dhcpd IFACE SUBNET/PREFIX FIRST LAST LEASE_FILE [proxy]`, e.g.
//! `dhcpd veth0 10.90.0.0/16 10.90.1.0 10.90.255.254 /tmp/leases.log`.
//! Log level from RUST_LOG (default warn). SIGINT/SIGTERM stop it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bootd::dhcp::file_backend::FileBackend;
use bootd::dhcp::{serve, Metrics, Mode, NodeBoot, Pool, Settings};
use tokio_util::sync::CancellationToken;

fn usage() -> ExitCode {
    eprintln!("usage: dhcpd IFACE SUBNET/PREFIX FIRST LAST LEASE_FILE [proxy]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [iface, net, first, last, file, rest @ ..] = args.as_slice() else {
        return usage();
    };
    let Some((subnet, prefix)) = net.split_once('/') else {
        return usage();
    };
    let (Ok(subnet), Ok(prefix), Ok(first), Ok(last)) = (
        subnet.parse::<Ipv4Addr>(),
        prefix.parse::<u8>(),
        first.parse::<Ipv4Addr>(),
        last.parse::<Ipv4Addr>(),
    ) else {
        return usage();
    };
    let mut backend = match FileBackend::open(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("dhcpd: lease file {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    backend.record_offers = false;
    backend.default_node = NodeBoot {
        known: true,
        ..NodeBoot::default()
    };
    let settings = Settings {
        mode: if rest.first().map(String::as_str) == Some("proxy") {
            Mode::Proxy
        } else {
            Mode::Full
        },
        interfaces: vec![iface.clone()],
        pools: vec![Pool {
            subnet,
            prefix,
            range: (first, last),
            router: None,
            dns: Vec::new(),
            lease_time: Duration::from_secs(3600),
            domain: None,
        }],
        rate_per_mac: 20,
        ..Settings::default()
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dhcpd: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = CancellationToken::new();
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(settings));
    let result = rt.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
            }
            s.cancel();
        });
        serve(rx, Arc::new(backend), Arc::new(Metrics::new()), stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcpd: {e}");
            ExitCode::FAILURE
        }
    }
}
