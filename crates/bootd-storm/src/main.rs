//! bootd-storm: simulates N PXE machines booting at once (or ramped) against a boot
//! server, each with its own MAC, and reports per-step latency, failures and server cost.
//!
//! Run it in a network namespace that reaches only the server under test; DHCP is
//! broadcast on `--interface`.

mod dhcp;
mod http;
mod machine;
mod report;
mod script;
mod tftp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use serde_json::json;

use machine::Plan;

/// Most machines one run simulates (the MAC index has 24 bits).
const MAX_MACHINES: u32 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The server hands out addresses and boot files.
    Full,
    /// Addresses from one server, boot files from a ProxyDHCP.
    Proxy,
}

#[derive(Debug, Parser)]
#[command(version, about = "Simulate a PXE boot storm against a boot server")]
struct Args {
    /// Number of machines.
    #[arg(short = 'n', long, default_value_t = 100)]
    machines: u32,
    /// Seed of the MACs (02:SS:SS:II:II:II) and UUIDs.
    #[arg(long, default_value_t = 1)]
    seed: u16,
    /// Interface DHCP is broadcast on.
    #[arg(long)]
    interface: Option<String>,
    /// DHCP mode of the server.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    mode: Mode,
    /// Start machines evenly over this time instead of all at once (e.g. "10s").
    #[arg(long, value_parser = humantime::parse_duration)]
    ramp: Option<Duration>,
    /// TFTP windowsize to ask for (RFC 7440); none when absent.
    #[arg(long)]
    windowsize: Option<u16>,
    /// TFTP server port.
    #[arg(long, default_value_t = 69)]
    tftp_port: u16,
    /// TFTP timeout per packet.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    tftp_timeout: Duration,
    /// TFTP sends per packet before the transfer is given up.
    #[arg(long, default_value_t = 5)]
    tftp_tries: u32,
    /// Deadline of each HTTP request (a whole asset included).
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    http_timeout: Duration,
    /// Use the wildcard address for TFTP and HTTP instead of each machine's lease.
    #[arg(long)]
    no_bind_lease: bool,
    /// Kernel URL instead of the one in the boot script.
    #[arg(long)]
    kernel_url: Option<String>,
    /// Initrd URL instead of the one in the boot script.
    #[arg(long)]
    initrd_url: Option<String>,
    /// lshw JSON sent as every machine's hardware report.
    #[arg(long)]
    lshw: PathBuf,
    /// Server process to measure (CPU time, peak RSS); repeat for several.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Write the JSON report here ("-" for stdout instead of the table).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Label stored in the JSON report (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Worker threads of the runtime (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("--machines must be 1..={MAX_MACHINES}, not {0}")]
    Machines(u32),
    #[error("cannot read the lshw report {path}: {source}")]
    Lshw {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    LshwJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot bind the DHCP client port 68: {0}")]
    Bind(std::io::Error),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bootd-storm: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, Error> {
    if args.machines == 0 || args.machines > MAX_MACHINES {
        return Err(Error::Machines(args.machines));
    }
    let lshw = std::fs::read(&args.lshw).map_err(|source| Error::Lshw {
        path: args.lshw.clone(),
        source,
    })?;
    let lshw: serde_json::Value =
        serde_json::from_slice(&lshw).map_err(|source| Error::LshwJson {
            path: args.lshw.clone(),
            source,
        })?;
    let hardware = Bytes::from(json!({ "lshw": lshw }).to_string());
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = rt.build().map_err(Error::Runtime)?;
    let report = rt.block_on(storm(&args, hardware))?;
    let text = report::text(&report);
    match &args.json {
        Some(p) if p.as_os_str() == "-" => println!("{report:#}"),
        Some(p) => {
            std::fs::write(p, format!("{report:#}\n")).map_err(|source| Error::Write {
                path: p.clone(),
                source,
            })?;
            print!("{text}");
        }
        None => print!("{text}"),
    }
    Ok(if report["failed"].as_u64() == Some(0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn storm(args: &Args, hardware: Bytes) -> Result<serde_json::Value, Error> {
    let hub = dhcp::Hub::bind(args.interface.as_deref()).map_err(Error::Bind)?;
    tokio::spawn(hub.clone().run());
    let plan = Arc::new(Plan {
        proxy: args.mode == Mode::Proxy,
        backoff: dhcp::FIRMWARE_BACKOFF.to_vec(),
        tftp_port: args.tftp_port,
        tftp_timeout: args.tftp_timeout,
        tftp_tries: args.tftp_tries,
        windowsize: args.windowsize,
        http_timeout: args.http_timeout,
        bind_lease: !args.no_bind_lease,
        kernel_url: args.kernel_url.clone(),
        initrd_url: args.initrd_url.clone(),
        hardware,
    });
    let mut servers = report::Servers::watch(args.server_pids.clone());
    let started = Instant::now();
    let n = args.machines;
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (mac, uuid) = machine::identity(args.seed, i);
        let delay = args
            .ramp
            .map(|r| r.mul_f64(f64::from(i) / f64::from(n)))
            .unwrap_or_default();
        let (hub, plan) = (hub.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(started + delay)).await;
            machine::boot(hub, plan, mac, uuid).await
        }));
    }
    let all = futures_join(tasks);
    tokio::pin!(all);
    let outcomes = loop {
        tokio::select! {
            o = &mut all => break o,
            _ = tokio::time::sleep(report::RSS_SAMPLE_EVERY) => servers.sample(),
        }
    };
    let wall = started.elapsed();
    let args_json = json!({
        "label": args.label,
        "machines": n,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "ramp_seconds": args.ramp.map(|r| r.as_secs_f64()),
        "windowsize": args.windowsize,
        "bind_lease": !args.no_bind_lease,
    });
    Ok(report::build(&outcomes, wall, servers.finish(), args_json))
}

/// Awaits every task; a task that panicked counts as a failed machine.
async fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<machine::Outcome>>,
) -> Vec<machine::Outcome> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| machine::Outcome {
            failure: Some(machine::Failure {
                step: machine::Step::Total,
                kind: "panic",
                detail: e.to_string(),
            }),
            ..machine::Outcome::default()
        }));
    }
    out
}
