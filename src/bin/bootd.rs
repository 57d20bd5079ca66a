//! bootd: the network-boot daemon. `bootd run|check-config|preflight|version`.

use bootd::daemon;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bootd",
    version,
    about = "Network-boot appliance: DHCP/ProxyDHCP, TFTP, HTTP boot scripts and deployment tracking"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (embedded defaults when no config file is given or found).
    Run {
        /// Config file (default: $BOOTD_CONFIG, else /etc/bootd/bootd.toml if it exists).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file: prints `ok` (exit 0) or every error (exit 2).
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Start-up checks: config, state, boot files, templates, ports, interfaces, other
    /// DHCP servers, capabilities, upstream secrets. Exit 1 if any fails.
    Preflight {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => daemon::run(daemon::config_path(config)),
        Command::CheckConfig { config } => daemon::check_config(daemon::config_path(config)),
        Command::Preflight { config, json } => daemon::preflight(daemon::config_path(config), json),
        Command::Version => {
            println!("bootd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
