//! bootctl: drives a running bootd over its control socket.
//! Exit codes: 0 ok, 1 error (daemon down, request refused), 2 usage.

mod client;
mod follow;
mod output;
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

#[derive(Subcommand)]
enum Command {
    /// Daemon summary: listeners, nodes per phase, relay backlog.
    Status,
    /// List every node with its phase and progress.
    Nodes,
    /// Show, add, change or remove one node.
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Move a node to a phase (operator override, recorded as operator:<uid>).
    Phase {
        mac: String,
        phase: String,
        #[arg(long)]
        progress: Option<u8>,
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
        /// Follow the nodes until all are running; exit 1 if any fails or times out.
        #[arg(long)]
        wait: bool,
        /// With --wait: per-node limit, e.g. 45m.
        #[arg(long, requires = "wait", value_parser = duration)]
        timeout: Option<std::time::Duration>,
        /// With --wait: limit of the whole wait.
        #[arg(long, requires = "wait", value_parser = duration, default_value = "2h")]
        overall_timeout: std::time::Duration,
    },
    /// Follow phase changes live (reconnects when bootd restarts; Ctrl-C ends it).
    Watch {
        /// Only this node.
        mac: Option<String>,
        /// Only this group's nodes.
        #[arg(long, conflicts_with = "mac")]
        group: Option<String>,
    },
    /// Groups with their state (in_progress, completed, clustered, timeout, error).
    Groups,
    /// Hardware inventories: one node's latest, or every discovered machine that reported.
    Hardware { mac: Option<String> },
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
    /// Move dead letters back to the queue.
    Retry {
        /// One dead letter by id.
        #[arg(
            long,
            conflicts_with = "all_dead",
            required_unless_present = "all_dead"
        )]
        id: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete one undelivered event (pending or dead) for good.
    Drop {
        #[arg(long)]
        id: i64,
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
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    profile: Option<String>,
    #[arg(long)]
    ip: Option<String>,
    /// `profile` (boot the profile) or `local` (boot from disk).
    #[arg(long)]
    boot: Option<String>,
    /// Install once with this profile, then back to local disk.
    #[arg(long)]
    next_boot: Option<String>,
    #[arg(long)]
    provider_id: Option<String>,
    #[arg(long)]
    health_url: Option<String>,
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
            Command::Nodes => client
                .get::<NodeList>(routes::NODES)
                .await
                .map(|a| out.nodes(&a)),
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
            Command::Hardware { mac: Some(mac) } => client
                .get::<HardwareAnswer>(&routes::node_hardware(&mac))
                .await
                .map(|a| out.hardware(&a)),
            Command::Hardware { mac: None } => client
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
                    display: wait::Display::pick(out.json),
                });
                wait::reprovision(&client, &body, wait, out.json).await
            }
            Command::Watch { mac, group } => {
                let filter = follow::WatchFilter { mac, group };
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
            Command::Relay {
                action: Some(RelayCommand::Retry { id, all_dead }),
            } => {
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
                action: Some(RelayCommand::Drop { id }),
            } => {
                let body = bootd_api::RelayAction {
                    id: Some(id),
                    all_dead: false,
                };
                client
                    .call::<Dropped>(Method::POST, routes::RELAY_DROP, &body)
                    .await
                    .map(|a| out.dropped(&a))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Usage(m)) => {
            eprintln!("bootctl: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bootctl: {e}");
            ExitCode::FAILURE
        }
    }
}
