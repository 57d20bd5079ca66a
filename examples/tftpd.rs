//! Stand-alone bootd TFTP server for benchmarks and manual tests:
//! `tftpd ROOT ADDR [--max-blksize N] [--max-windowsize N] [--max-sessions N] [--max-sessions-per-client N]`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test panics on what it did not expect

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bootd::tftp::{serve, Metrics, NoopObserver, Settings};
use tokio_util::sync::CancellationToken;

fn parse_args() -> Result<(Settings, SocketAddr), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tftpd ROOT ADDR [--max-blksize N] [--max-windowsize N] [--max-sessions N] [--max-sessions-per-client N]";
    let root = args.next().ok_or(usage)?;
    let addr: SocketAddr = args
        .next()
        .ok_or(usage)?
        .parse()
        .map_err(|e| format!("bad address: {e}"))?;
    let mut settings = Settings {
        root: root.into(),
        ..Settings::default()
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--max-blksize" => settings.max_blksize = value.parse().map_err(bad)?,
            "--max-windowsize" => settings.max_windowsize = value.parse().map_err(bad)?,
            "--max-sessions" => settings.max_sessions = value.parse().map_err(bad)?,
            "--max-sessions-per-client" => {
                settings.max_sessions_per_client = value.parse().map_err(bad)?
            }
            other => return Err(format!("unknown flag {other}\n{usage}")),
        }
    }
    Ok((settings, addr))
}

async fn run() -> Result<(), String> {
    let (settings, addr) = parse_args()?;
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(settings));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        stop.cancel();
    });
    let metrics = Arc::new(Metrics::new());
    let result = serve(
        socket,
        rx,
        Arc::clone(&metrics),
        Arc::new(NoopObserver),
        shutdown,
    )
    .await
    .map_err(|e| e.to_string());
    // The counters on exit, in Prometheus text, for benchmark logs.
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_ok() {
        eprint!("{text}");
    }
    result
}

/// `TFTPD_WORKERS=0` runs on a current-thread runtime, `N` on N worker threads
/// (default: one per core), to compare scheduling costs in benchmarks.
fn main() -> ExitCode {
    let workers = std::env::var("TFTPD_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let runtime = match workers {
        Some(0) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(rt) => rt.block_on(async_main()),
        Err(e) => {
            eprintln!("tftpd: runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn async_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tftpd: {e}");
            ExitCode::FAILURE
        }
    }
}
