//! A node as the registry holds it, its event, and the conversion to and from store rows.

use super::phase::Phase;
use crate::config::{BootMode, NodeSpec};
use crate::mac::MacAddr;
use crate::store::NodeRow;
use serde::Serialize;
use std::net::Ipv4Addr;

/// Where a node came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[nodes]]` in the config file.
    Config,
    /// Added with `bootctl node add` or the admin API.
    Runtime,
    /// Seen booting or reporting without being configured.
    Discovered,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Runtime => "runtime",
            Origin::Discovered => "discovered",
        }
    }
}

/// A machine bootd knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub mac: MacAddr,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub uuid: Option<String>,
    pub provider_id: Option<String>,
    pub health_url: Option<String>,
    pub console_url: Option<String>,
    pub boot: BootMode,
    pub next_boot: Option<String>,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub origin: Origin,
    pub phase: Phase,
    pub progress: u8,
    pub message: String,
    #[serde(skip)]
    pub token_gen: u32,
    #[serde(skip)]
    pub token_hash: Option<String>,
    pub seq: u64,
    pub created_at: String,
    pub updated_at: String,
    pub phase_since: String,
}

/// A committed phase change, as subscribers and upstreams see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeEvent {
    pub mac: MacAddr,
    pub from: Phase,
    pub to: Phase,
    pub progress: u8,
    pub message: String,
    pub source: String,
    pub at: String,
    /// Per-node sequence number: consumers detect gaps and duplicates with it.
    pub seq: u64,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub provider_id: Option<String>,
}

/// Fields an operator may change on a node; `Some` replaces (an empty string clears).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePatch {
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub profile: Option<String>,
    pub ip: Option<String>,
    pub uuid: Option<String>,
    pub provider_id: Option<String>,
    pub health_url: Option<String>,
    pub console_url: Option<String>,
    pub boot: Option<String>,
    pub next_boot: Option<String>,
    pub vars: Option<serde_json::Map<String, serde_json::Value>>,
}

fn clear_empty(v: &Option<String>) -> Option<Option<String>> {
    v.as_ref()
        .map(|s| if s.is_empty() { None } else { Some(s.clone()) })
}

impl NodePatch {
    /// Checks values that have a shape (IP, boot mode) before anything is applied.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(ip) = &self.ip {
            if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
                return Err(format!("ip: {ip:?} is not an IPv4 address"));
            }
        }
        if let Some(b) = &self.boot {
            if b != "profile" && b != "local" {
                return Err(format!(
                    "boot: expected \"profile\" or \"local\", found {b:?}"
                ));
            }
        }
        Ok(())
    }

    /// True when the patch only switches how the machine boots next (`boot`,
    /// `next_boot`): run-time boot control an operator may use on any node, including one
    /// defined in the config file (identity fields stay the file's).
    pub fn boot_control_only(&self) -> bool {
        let NodePatch {
            hostname,
            group,
            profile,
            ip,
            uuid,
            provider_id,
            health_url,
            console_url,
            boot: _,
            next_boot: _,
            vars,
        } = self;
        [
            hostname,
            group,
            profile,
            ip,
            uuid,
            provider_id,
            health_url,
            console_url,
        ]
        .iter()
        .all(|f| f.is_none())
            && vars.is_none()
    }

    /// Applies a validated patch.
    pub fn apply(&self, n: &mut Node) {
        let fields: [(&Option<String>, &mut Option<String>); 8] = [
            (&self.hostname, &mut n.hostname),
            (&self.group, &mut n.group),
            (&self.profile, &mut n.profile),
            (&self.uuid, &mut n.uuid),
            (&self.provider_id, &mut n.provider_id),
            (&self.health_url, &mut n.health_url),
            (&self.console_url, &mut n.console_url),
            (&self.next_boot, &mut n.next_boot),
        ];
        for (patch, field) in fields {
            if let Some(v) = clear_empty(patch) {
                *field = v;
            }
        }
        if let Some(ip) = clear_empty(&self.ip) {
            n.ip = ip.and_then(|s| s.parse().ok());
        }
        if let Some(b) = &self.boot {
            n.boot = if b == "local" {
                BootMode::Local
            } else {
                BootMode::Profile
            };
        }
        if let Some(vars) = &self.vars {
            n.vars = vars.clone();
        }
    }
}

impl Node {
    /// A fresh node with no configuration.
    pub fn new(mac: MacAddr, origin: Origin) -> Node {
        let now = crate::store::now_rfc3339();
        Node {
            mac,
            hostname: None,
            group: None,
            profile: None,
            ip: None,
            uuid: None,
            provider_id: None,
            health_url: None,
            console_url: None,
            boot: BootMode::Profile,
            next_boot: None,
            vars: serde_json::Map::new(),
            origin,
            phase: if origin == Origin::Discovered {
                Phase::Discovered
            } else {
                Phase::Known
            },
            progress: 0,
            message: String::new(),
            token_gen: 0,
            token_hash: None,
            seq: 0,
            created_at: now.clone(),
            updated_at: now.clone(),
            phase_since: now,
        }
    }

    /// A machine seen on the wire that nobody configured.
    pub fn discovered(mac: MacAddr) -> Node {
        Node::new(mac, Origin::Discovered)
    }

    /// A node from `[[nodes]]`.
    pub fn from_spec(spec: &NodeSpec) -> Node {
        let mut n = Node::new(spec.mac, Origin::Config);
        n.apply_spec(spec);
        n
    }

    /// Takes the configured fields of a spec, keeping phase and history. Facts a machine
    /// reports at run time (its IP and host name at registration) stay unless the file
    /// sets them: the config only overrides what it sets.
    pub fn apply_spec(&mut self, spec: &NodeSpec) {
        if spec.hostname.is_some() {
            self.hostname = spec.hostname.clone();
        }
        self.group = spec.group.clone();
        self.profile = spec.profile.clone();
        if spec.ip.is_some() {
            self.ip = spec.ip;
        }
        self.uuid = spec.uuid.clone();
        self.provider_id = spec.provider_id.clone();
        self.health_url = spec.health_url.clone();
        self.console_url = spec.console_url.clone();
        self.boot = spec.boot;
        self.vars = spec
            .vars
            .iter()
            .filter_map(|(k, v)| serde_json::to_value(v).ok().map(|v| (k.clone(), v)))
            .collect();
        if self.origin == Origin::Discovered {
            self.origin = Origin::Config;
            if self.phase == Phase::Discovered {
                self.phase = Phase::Known;
            }
        } else {
            self.origin = Origin::Config;
        }
    }

    /// The row the store keeps.
    pub fn to_row(&self) -> NodeRow {
        NodeRow {
            mac: self.mac.to_string(),
            hostname: self.hostname.clone(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            ip: self.ip.map(|ip| ip.to_string()),
            uuid: self.uuid.clone(),
            provider_id: self.provider_id.clone(),
            health_url: self.health_url.clone(),
            console_url: self.console_url.clone(),
            boot: self.boot.as_str().into(),
            next_boot: self.next_boot.clone(),
            vars: serde_json::Value::Object(self.vars.clone()).to_string(),
            origin: self.origin.as_str().into(),
            phase: self.phase.name().into(),
            progress: self.progress,
            message: self.message.clone(),
            token_gen: self.token_gen,
            token_hash: self.token_hash.clone(),
            seq: self.seq,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            phase_since: self.phase_since.clone(),
        }
    }

    /// A node from its stored row.
    pub fn from_row(r: &NodeRow) -> Result<Node, String> {
        let mac: MacAddr = r.mac.parse().map_err(|e| format!("{e}"))?;
        let vars = match serde_json::from_str(&r.vars) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        Ok(Node {
            mac,
            hostname: r.hostname.clone(),
            group: r.group.clone(),
            profile: r.profile.clone(),
            ip: r.ip.as_deref().and_then(|s| s.parse().ok()),
            uuid: r.uuid.clone(),
            provider_id: r.provider_id.clone(),
            health_url: r.health_url.clone(),
            console_url: r.console_url.clone(),
            boot: if r.boot == "local" {
                BootMode::Local
            } else {
                BootMode::Profile
            },
            next_boot: r.next_boot.clone(),
            vars,
            origin: match r.origin.as_str() {
                "config" => Origin::Config,
                "discovered" => Origin::Discovered,
                _ => Origin::Runtime,
            },
            phase: Phase::from_stored(&r.phase),
            progress: r.progress,
            message: r.message.clone(),
            token_gen: r.token_gen,
            token_hash: r.token_hash.clone(),
            seq: r.seq,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
            phase_since: r.phase_since.clone(),
        })
    }
}

impl Node {
    /// The node as the API shows it (without history).
    pub fn view(&self) -> bootd_api::NodeView {
        use bootd_api::Timestamp;
        bootd_api::NodeView {
            mac: self.mac,
            hostname: self.hostname.clone(),
            group: self.group.clone(),
            profile: self.profile.clone(),
            profile_source: None,
            node_profile: self.profile.clone(),
            ip: self.ip,
            uuid: self.uuid.clone(),
            provider_id: self.provider_id.clone(),
            health_url: self.health_url.clone(),
            console_url: self.console_url.clone(),
            boot: self.boot.as_str().into(),
            next_boot: self.next_boot.clone(),
            vars: self.vars.clone(),
            origin: self.origin.as_str().into(),
            phase: self.phase.clone(),
            progress: self.progress,
            message: self.message.clone(),
            seq: self.seq,
            created_at: Timestamp::from_stored(&self.created_at),
            updated_at: Timestamp::from_stored(&self.updated_at),
            phase_since: Timestamp::from_stored(&self.phase_since),
            health: self.health().map(str::to_string),
            reprovision_status: None,
            reprovision_started: None,
            error_message: self.phase.is_error().then(|| self.message.clone()),
        }
    }

    /// What the health monitor says of the node, for the API: `not_checked` when it has
    /// no `health_url` (never "healthy" on faith), else from its phase; None before
    /// deployment.
    pub fn health(&self) -> Option<&'static str> {
        let deployed = matches!(
            self.phase,
            Phase::HealthValidation
                | Phase::Running
                | Phase::Clustered
                | Phase::Unhealthy
                | Phase::Stopped
        );
        if !deployed {
            return None;
        }
        if self.phase == Phase::Stopped {
            return Some("stopped");
        }
        if self.health_url.is_none() {
            return Some("not_checked");
        }
        Some(match self.phase {
            Phase::HealthValidation => "checking",
            Phase::Unhealthy => "unhealthy",
            _ => "healthy",
        })
    }
}

impl From<&NodeEvent> for bootd_api::Event {
    fn from(e: &NodeEvent) -> bootd_api::Event {
        bootd_api::Event {
            mac: e.mac,
            from: e.from.clone(),
            to: e.to.clone(),
            progress: e.progress,
            message: e.message.clone(),
            source: bootd_api::Source::parse(&e.source),
            at: bootd_api::Timestamp::from_stored(&e.at),
            seq: e.seq,
            hostname: e.hostname.clone(),
            group: e.group.clone(),
            provider_id: e.provider_id.clone(),
        }
    }
}
