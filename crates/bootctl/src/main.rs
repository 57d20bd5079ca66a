//! bootctl: drives a running bootd over its control socket.
//! Exit codes: 0 ok, 1 error (daemon down, request refused), 2 usage.

mod client;
mod follow;
mod output;
mod stages;
mod timeline;
mod tokens;
mod wait;

use bootd_api::{
    routes, AddNode, DiscoveredList, Dropped, GroupList, HardwareAnswer, NodeDetail, NodeFields,
    NodeList, NodeView, PhaseAnswer, PhasePost, RelayOverview, ReloadAnswer, Removed,
    ReprovisionRequest, Retried, Status,
};
use clap::{Args, Parser, Subcommand};
use client::{Client, CtlError};
use hyper::Method;
use output::Output;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bootctl",
    version,
    about = "Control a running bootd over its control socket"
)]
struct Cli {
    /// Control socket (default: $BOOTD_SOCKET, /run/bootd/control.sock, or ./bootd-state/control.sock).
    #[arg(long, global = true, env = "BOOTD_SOCKET")]
    socket: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// `bootctl nodes` filters and layout.
#[derive(clap::Args, Debug)]
struct NodesArgs {
    /// Only nodes in this phase (repeat for several).
    #[arg(long = "phase", value_name = "PHASE")]
    phases: Vec<String>,
    /// Only nodes of this group.
    #[arg(long)]
    group: Option<String>,
    /// Leave out the header line (for scripts).
    #[arg(long)]
    no_headers: bool,
    /// `wide` adds health, origin, effective-profile source and last update.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = ["wide"])]
    output: Option<String>,
}

impl NodesArgs {
    fn view(&self) -> output::NodesView {
        output::NodesView {
            phases: self.phases.clone(),
            group: self.group.clone(),
            headers: !self.no_headers,
            wide: self.output.is_some(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Daemon summary: listeners, nodes per phase, relay backlog.
    Status,
    /// List every node with its phase and progress.
    #[command(
        after_help = "Examples:\n  bootctl nodes --phase installing --phase failed\n  bootctl nodes --group pve -o wide\n  bootctl nodes --no-headers | cut -c1-17"
    )]
    Nodes(NodesArgs),
    /// Show, add, change or remove one node.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Move a node to a phase (operator override, recorded as operator:<uid>).
    #[command(
        after_help = "Phases (progress): discovered, known (0), server_requested (5), pending, starting (10),\n  dhcp (15), ipxe_boot (20), config_requested (30), installing (30-85), registered (88),\n  health_validation (90), running, clustered (100), unhealthy, stopped, failed, timeout;\n  plus the phases the node's profile declares (profiles.X.phases).\n\nExamples:\n  bootctl phase 52:54:00:12:34:56 failed --message \"disk died\"\n  bootctl phase 52:54:00:12:34:57 foundation_boot --progress 40"
    )]
    Phase {
        /// The node's MAC (any common spelling).
        mac: String,
        /// The phase to set: a built-in one (listed below) or one of the profile's own.
        phase: String,
        /// Progress in percent (default: the phase's own).
        #[arg(long)]
        progress: Option<u8>,
        /// Message shown with the phase.
        #[arg(long)]
        message: Option<String>,
    },
    /// Re-read the config file (an invalid one is refused and the old one kept).
    Reload,
    /// Reinstall nodes: new callback token, one-shot install profile, server_requested,
    /// and the profile's power_cycle hook.
    Reprovision {
        /// Nodes by MAC.
        #[arg(required_unless_present_any = ["group", "all"], conflicts_with_all = ["group", "all"])]
        macs: Vec<String>,
        /// Every node of a group.
        #[arg(long, conflicts_with = "all")]
        group: Option<String>,
        /// Every node.
        #[arg(long)]
        all: bool,
        /// Install this profile instead of each node's own (or its group's).
        #[arg(long)]
        profile: Option<String>,
        /// Follow the nodes until all are running (clustered, in a group with on_complete);
        /// exit 1 if any fails or times out.
        #[arg(long)]
        wait: bool,
        /// With --wait: per-node limit, e.g. 45m [default: the profile's timeout, else 45m].
        #[arg(long, requires = "wait", value_parser = positive_duration)]
        timeout: Option<std::time::Duration>,
        /// With --wait: limit of the whole wait.
        #[arg(long, requires = "wait", value_parser = positive_duration, default_value = "60m")]
        overall_timeout: std::time::Duration,
        /// With --wait, in a pipe: print a summary line this often.
        #[arg(long, requires = "wait", value_parser = positive_duration, default_value = "5m")]
        report_every: std::time::Duration,
    },
    /// Follow phase changes live (reconnects when bootd restarts; Ctrl-C ends it).
    ///
    /// A MAC or group bootd does not know is refused (exit 1) unless --wait-for-new.
    #[command(
        after_help = "Examples:\n  bootctl watch\n  bootctl watch 52:54:00:12:34:56\n  \
        bootctl watch --group web\n  bootctl watch 52:54:00:12:34:57 --wait-for-new"
    )]
    Watch {
        /// Only this node.
        mac: Option<String>,
        /// Only this group's nodes.
        #[arg(long, conflicts_with = "mac")]
        group: Option<String>,
        /// Wait for a MAC or group that bootd does not know yet (a machine about to boot).
        #[arg(long)]
        wait_for_new: bool,
    },
    /// Groups with their state (pending, in_progress, forming, completed, clustered,
    /// member_failed, hook_failed, timeout) and progress (0-70% deployment, 70-100% cluster
    /// formation).
    Groups,
    /// Hardware inventories: one node's latest, or every discovered machine that reported.
    #[command(
        after_help = "Examples:\n  bootctl hardware 52:54:00:12:34:56\n  bootctl hardware          # discovered machines waiting for adoption\n  bootctl hardware --all    # every node that reported, adopted ones too"
    )]
    Hardware {
        mac: Option<String>,
        /// Every node with a report (adopted and configured ones too), not only
        /// discovered machines.
        #[arg(long, conflicts_with = "mac")]
        all: bool,
    },
    /// Print bootctl's version.
    Version,
    /// API tokens for the network listener.
    Token {
        #[command(subcommand)]
        action: tokens::TokenCommand,
    },
    /// Changes by operators and API tokens: who, what, before → after.
    Audit {
        /// Only this recent, e.g. 1h.
        #[arg(long, value_parser = duration)]
        since: Option<std::time::Duration>,
    },
    /// Upstream relay: backlog, failures and dead letters per upstream.
    Relay {
        #[command(subcommand)]
        action: Option<RelayCommand>,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Move dead letters back to the queue: one by id, or every one with --all-dead.
    #[command(
        after_help = "Examples:\n  bootctl relay retry 42\n  bootctl relay retry --all-dead"
    )]
    Retry {
        /// One dead letter by id (or --id ID); --all-dead retries every one instead.
        #[arg(value_name = "ID", conflicts_with_all = ["all_dead", "id_flag"])]
        id: Option<i64>,
        /// The same, as a flag.
        #[arg(long = "id", value_name = "ID", conflicts_with = "all_dead")]
        id_flag: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete one undelivered event (pending or dead) for good.
    #[command(after_help = "Examples:\n  bootctl relay drop 42\n  bootctl relay drop --id 42")]
    Drop {
        /// The event's id (`bootctl relay` lists them).
        #[arg(
            value_name = "ID",
            required_unless_present = "id_flag",
            conflicts_with = "id_flag"
        )]
        id: Option<i64>,
        /// The same, as a flag.
        #[arg(long = "id", value_name = "ID")]
        id_flag: Option<i64>,
    },
}

#[derive(Subcommand)]
enum NodeAction {
    /// A node with its history.
    Show { mac: String },
    /// Add a node (persists across restarts).
    Add {
        mac: String,
        #[command(flatten)]
        fields: NodeFieldArgs,
    },
    /// Change fields of a node; an empty value clears a field.
    Set {
        mac: String,
        #[command(flatten)]
        fields: NodeFieldArgs,
    },
    /// Remove a node and its history.
    Rm { mac: String },
    /// Turn a discovered machine into a managed node.
    Adopt {
        mac: String,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
    },
}

#[derive(Args, Default)]
struct NodeFieldArgs {
    /// Host name (RFC 1123; unique among nodes).
    #[arg(long)]
    hostname: Option<String>,
    /// Group the node belongs to (`[groups.NAME]`).
    #[arg(long)]
    group: Option<String>,
    /// Profile it installs (else its group's, else boot.default_profile).
    #[arg(long)]
    profile: Option<String>,
    /// IPv4 address: reserved in full DHCP mode, the node's address otherwise (unique).
    #[arg(long)]
    ip: Option<String>,
    /// `profile` (boot the profile) or `local` (boot from disk).
    #[arg(long)]
    boot: Option<String>,
    /// Install once with this profile, then back to local disk.
    #[arg(long)]
    next_boot: Option<String>,
    /// The upstream provider's id of this machine (provider status polls).
    #[arg(long)]
    provider_id: Option<String>,
    /// URL the health monitor polls once the node runs.
    #[arg(long)]
    health_url: Option<String>,
    /// BMC or console link shown on the monitoring page.
    #[arg(long)]
    console_url: Option<String>,
    /// Template variable, `key=value` (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    vars: Vec<String>,
}

/// What is wrong with the command line beyond what clap checks.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("--var {0:?}: expected KEY=VALUE")]
    Var(String),
    #[error("{text:?}: {source} (try 45m, 90s, 1h30m)")]
    Duration {
        text: String,
        source: bootd_proto::duration::DurationError,
    },
    #[error("{0:?}: must be longer than zero")]
    Zero(String),
}

impl NodeFieldArgs {
    fn body(&self) -> Result<bootd_api::NodeFields, UsageError> {
        let vars = if self.vars.is_empty() {
            None
        } else {
            let mut vars = serde_json::Map::new();
            for kv in &self.vars {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| UsageError::Var(kv.clone()))?;
                vars.insert(k.into(), Value::String(v.into()));
            }
            Some(vars)
        };
        Ok(bootd_api::NodeFields {
            hostname: self.hostname.clone(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            ip: self.ip.clone(),
            boot: self.boot.clone(),
            next_boot: self.next_boot.clone(),
            provider_id: self.provider_id.clone(),
            health_url: self.health_url.clone(),
            console_url: self.console_url.clone(),
            vars,
            ..bootd_api::NodeFields::default()
        })
    }
}

/// `--timeout` and `--overall-timeout`: bootd's one duration grammar.
fn duration(text: &str) -> Result<std::time::Duration, UsageError> {
    bootd_proto::duration::parse(text).map_err(|source| UsageError::Duration {
        text: text.to_string(),
        source,
    })
}

/// A duration that must not be zero (`--timeout 0` would end every wait at once).
fn positive_duration(text: &str) -> Result<std::time::Duration, UsageError> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err(UsageError::Zero(text.to_string()));
    }
    Ok(d)
}

fn usage(e: UsageError) -> CtlError {
    CtlError::Usage(e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let client = Client::new(client::socket_path(cli.socket));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bootctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Status => client
                .get::<Status>(routes::STATUS)
                .await
                .map(|a| out.status(&a)),
            Command::Nodes(args) => client
                .get::<NodeList>(routes::NODES)
                .await
                .map(|a| out.nodes(&a, &args.view())),
            Command::Node { action } => match action {
                NodeAction::Show { mac } => client
                    .get::<NodeDetail>(&routes::node(&mac))
                    .await
                    .map(|a| out.node(&a)),
                NodeAction::Add { mac, fields } => {
                    let body = AddNode {
                        mac,
                        fields: fields.body().map_err(usage)?,
                    };
                    client
                        .call::<NodeView>(Method::POST, routes::NODES, &body)
                        .await
                        .map(|a| out.changed("added", &a))
                }
                NodeAction::Set { mac, fields } => {
                    let body = fields.body().map_err(usage)?;
                    client
                        .call::<NodeView>(Method::PATCH, &routes::node(&mac), &body)
                        .await
                        .map(|a| out.changed("changed", &a))
                }
                NodeAction::Rm { mac } => client
                    .call::<Removed>(Method::DELETE, &routes::node(&mac), &())
                    .await
                    .map(|a| out.removed(&a)),
                NodeAction::Adopt {
                    mac,
                    profile,
                    group,
                    hostname,
                } => {
                    let body = NodeFields {
                        profile: Some(profile),
                        group,
                        hostname,
                        ..NodeFields::default()
                    };
                    client
                        .call::<NodeView>(Method::POST, &routes::node_adopt(&mac), &body)
                        .await
                        .map(|a| out.changed("adopted", &a))
                }
            },
            Command::Hardware { mac: Some(mac), .. } => client
                .get::<HardwareAnswer>(&routes::node_hardware(&mac))
                .await
                .map(|a| out.hardware(&a)),
            Command::Hardware {
                mac: None,
                all: true,
            } => client
                .get::<NodeList>(routes::NODES)
                .await
                .map(|a| out.reported(&a)),
            Command::Hardware {
                mac: None,
                all: false,
            } => client
                .get::<DiscoveredList>(routes::HARDWARE_DISCOVERED)
                .await
                .map(|a| out.discovered(&a)),
            Command::Phase {
                mac,
                phase,
                progress,
                message,
            } => {
                let body = PhasePost {
                    phase,
                    progress: progress.map(u32::from),
                    message,
                    ..PhasePost::default()
                };
                client
                    .call::<PhaseAnswer>(Method::POST, &routes::node_phase(&mac), &body)
                    .await
                    .map(|a| out.phase(&a))
            }
            Command::Reprovision {
                macs,
                group,
                all,
                profile,
                wait,
                timeout,
                overall_timeout,
                report_every,
            } => {
                let body = ReprovisionRequest {
                    macs,
                    group,
                    all,
                    profile,
                };
                let wait = wait.then(|| wait::WaitOptions {
                    per_node: timeout,
                    overall: overall_timeout,
                    report_every,
                    display: wait::Display::pick(out.json),
                });
                wait::reprovision(&client, &body, wait, out.json).await
            }
            Command::Watch {
                mac,
                group,
                wait_for_new,
            } => {
                let filter = follow::WatchFilter {
                    mac,
                    group,
                    wait_for_new,
                };
                follow::watch(&client, filter, out.json).await
            }
            Command::Groups => client
                .get::<GroupList>(routes::GROUPS)
                .await
                .map(|a| out.groups(&a)),
            Command::Reload => client
                .call::<ReloadAnswer>(Method::POST, routes::RELOAD, &())
                .await
                .map(|a| out.reload(&a)),
            Command::Token { action } => tokens::run(&client, action, out.json).await,
            Command::Audit { since } => tokens::audit(&client, since, out.json).await,
            Command::Relay { action: None } => client
                .get::<RelayOverview>(routes::RELAY)
                .await
                .map(|a| out.relay(&a)),
            Command::Version => {
                if out.json {
                    println!(
                        "{}",
                        serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })
                    );
                } else {
                    println!("bootctl {}", env!("CARGO_PKG_VERSION"));
                }
                Ok(())
            }
            Command::Relay {
                action:
                    Some(RelayCommand::Retry {
                        id,
                        id_flag,
                        all_dead,
                    }),
            } => {
                let id = id.or(id_flag);
                if id.is_none() && !all_dead {
                    return Err(CtlError::Usage(
                        "relay retry needs an ID (bootctl relay retry 42) or --all-dead".into(),
                    ));
                }
                let body = bootd_api::RelayAction {
                    id: if all_dead { None } else { id },
                    all_dead,
                };
                client
                    .call::<Retried>(Method::POST, routes::RELAY_RETRY, &body)
                    .await
                    .map(|a| out.retried(&a))
            }
            Command::Relay {
                action: Some(RelayCommand::Drop { id, id_flag }),
            } => {
                let body = bootd_api::RelayAction {
                    id: id.or(id_flag),
                    all_dead: false,
                };
                client
                    .call::<Dropped>(Method::POST, routes::RELAY_DROP, &body)
                    .await
                    .map(|a| out.dropped(&a))
            }
        }
    });
    let code = match &result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(CtlError::Usage(_)) => ExitCode::from(2),
        Err(_) => ExitCode::FAILURE,
    };
    if let Err(e) = result {
        // Under --json a script reads the reason as JSON on stdout (`reprovision --wait`
        // already ended its output with the summary; its reason stays on stderr).
        if out.json && !matches!(e, CtlError::Unfinished(_)) {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
        } else {
            eprintln!("bootctl: {e}");
        }
    }
    code
}
