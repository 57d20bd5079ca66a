//! bootctl: drives a running bootd over its control socket.
//! Exit codes: 0 ok, 1 error (daemon down, request refused), 2 usage.

use bootd::ctl::{self, Client, Output};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
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
    /// Hardware inventories: one node's latest, or every discovered machine that reported.
    Hardware { mac: Option<String> },
    /// Upstream relay: backlog, failures and dead letters per upstream.
    Relay {
        #[command(subcommand)]
        action: Option<RelayAction>,
    },
}

#[derive(Subcommand)]
enum RelayAction {
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
        fields: NodeFields,
    },
    /// Change fields of a node; an empty value clears a field.
    Set {
        mac: String,
        #[command(flatten)]
        fields: NodeFields,
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
struct NodeFields {
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

impl NodeFields {
    fn to_json(&self) -> Result<serde_json::Map<String, Value>, String> {
        let mut m = serde_json::Map::new();
        let pairs = [
            ("hostname", &self.hostname),
            ("group", &self.group),
            ("profile", &self.profile),
            ("ip", &self.ip),
            ("boot", &self.boot),
            ("next_boot", &self.next_boot),
            ("provider_id", &self.provider_id),
            ("health_url", &self.health_url),
            ("console_url", &self.console_url),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        if !self.vars.is_empty() {
            let mut vars = serde_json::Map::new();
            for kv in &self.vars {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--var {kv:?}: expected KEY=VALUE"))?;
                vars.insert(k.into(), json!(v));
            }
            m.insert("vars".into(), Value::Object(vars));
        }
        Ok(m)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let client = Client::new(ctl::socket_path(cli.socket));
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
            Command::Status => client.get("/api/v1/status").await.map(|v| out.status(&v)),
            Command::Nodes => client.get("/api/v1/nodes").await.map(|v| out.nodes(&v)),
            Command::Node { action } => match action {
                NodeAction::Show { mac } => client
                    .get(&format!("/api/v1/nodes/{}", ctl::path_mac(&mac)))
                    .await
                    .map(|v| out.node(&v)),
                NodeAction::Add { mac, fields } => {
                    let mut body = fields.to_json().map_err(ctl::CtlError::Usage)?;
                    body.insert("mac".into(), json!(mac));
                    client
                        .send("POST", "/api/v1/nodes", &Value::Object(body))
                        .await
                        .map(|v| out.changed("added", &v))
                }
                NodeAction::Set { mac, fields } => {
                    let body = fields.to_json().map_err(ctl::CtlError::Usage)?;
                    client
                        .send(
                            "PATCH",
                            &format!("/api/v1/nodes/{}", ctl::path_mac(&mac)),
                            &Value::Object(body),
                        )
                        .await
                        .map(|v| out.changed("changed", &v))
                }
                NodeAction::Rm { mac } => client
                    .send(
                        "DELETE",
                        &format!("/api/v1/nodes/{}", ctl::path_mac(&mac)),
                        &Value::Null,
                    )
                    .await
                    .map(|v| out.changed("removed", &v)),
                NodeAction::Adopt {
                    mac,
                    profile,
                    group,
                    hostname,
                } => {
                    let body = json!({ "profile": profile, "group": group, "hostname": hostname });
                    client
                        .send(
                            "POST",
                            &format!("/api/v1/nodes/{}/adopt", ctl::path_mac(&mac)),
                            &body,
                        )
                        .await
                        .map(|v| out.changed("adopted", &v))
                }
            },
            Command::Hardware { mac: Some(mac) } => client
                .get(&format!("/api/v1/nodes/{}/hardware", ctl::path_mac(&mac)))
                .await
                .map(|v| out.hardware(&v)),
            Command::Hardware { mac: None } => client
                .get("/api/v1/hardware/discovered")
                .await
                .map(|v| out.discovered(&v)),
            Command::Phase {
                mac,
                phase,
                progress,
                message,
            } => {
                let body = json!({ "phase": phase, "progress": progress, "message": message });
                client
                    .send(
                        "POST",
                        &format!("/api/v1/nodes/{}/phase", ctl::path_mac(&mac)),
                        &body,
                    )
                    .await
                    .map(|v| out.phase(&v))
            }
            Command::Reload => client
                .send("POST", "/api/v1/reload", &Value::Null)
                .await
                .map(|v| out.reload(&v)),
            Command::Relay { action: None } => {
                client.get("/api/v1/relay").await.map(|v| out.relay(&v))
            }
            Command::Relay {
                action: Some(RelayAction::Retry { id, all_dead }),
            } => {
                let body = if all_dead {
                    json!({ "all_dead": true })
                } else {
                    json!({ "id": id })
                };
                client
                    .send("POST", "/api/v1/relay/retry", &body)
                    .await
                    .map(|v| out.relay_done("retried", &v))
            }
            Command::Relay {
                action: Some(RelayAction::Drop { id }),
            } => client
                .send("POST", "/api/v1/relay/drop", &json!({ "id": id }))
                .await
                .map(|v| out.relay_done("dropped", &v)),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ctl::CtlError::Usage(m)) => {
            eprintln!("bootctl: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bootctl: {e}");
            ExitCode::FAILURE
        }
    }
}
