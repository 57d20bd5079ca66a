//! Request and answer bodies.

use crate::phase::Phase;
use crate::time::Timestamp;
use bootd_proto::mac::MacAddr;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A node as the API shows it (`GET /api/v1/nodes/{mac}` and the answers of changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub mac: MacAddr,
    pub hostname: Option<String>,
    pub group: Option<String>,
    /// The effective profile: the node's own, else its group's, else one matched by
    /// hardware, else `boot.default_profile`.
    pub profile: Option<String>,
    /// Where `profile` came from: `node`, `group`, `hardware` or `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_source: Option<String>,
    /// The node's own `profile` setting.
    #[serde(default)]
    pub node_profile: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub uuid: Option<String>,
    pub provider_id: Option<String>,
    pub health_url: Option<String>,
    pub console_url: Option<String>,
    /// `profile` or `local`.
    pub boot: String,
    pub next_boot: Option<String>,
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// `config`, `runtime` or `discovered`.
    pub origin: String,
    pub phase: Phase,
    pub progress: u8,
    pub message: String,
    pub seq: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub phase_since: Timestamp,
    /// What the health monitor says: `not_checked` (no `health_url`), `checking`
    /// (health_validation), `healthy`, `unhealthy` or `stopped`; absent before deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// The last reprovision of the node: `in_progress`, `completed` (running),
    /// `clustered`, `timeout` or `error`; absent when it was never reprovisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_status: Option<String>,
    /// When the last reprovision began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_started: Option<Timestamp>,
    /// Why the node is failed, timed out, unhealthy or stopped; absent otherwise, so a
    /// progress `message` is never taken for an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The part of an inventory a node list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactHardware {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub cpus: bootd_proto::hardware::Cpus,
    pub memory: CompactMemory,
    pub disks: Vec<CompactDisk>,
    pub nics: Vec<CompactNic>,
    pub summary: String,
}

/// `hardware.memory` of a list row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactMemory {
    pub total_bytes: Option<u64>,
}

/// `hardware.disks[]` of a list row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactDisk {
    pub size_bytes: Option<u64>,
}

/// `hardware.nics[]` of a list row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactNic {
    pub name: Option<String>,
}

/// One row of `GET /api/v1/nodes`: the node and, when it reported, its hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeListEntry {
    #[serde(flatten)]
    pub node: NodeView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<CompactHardware>,
}

/// `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<NodeListEntry>,
}

/// `GET /api/v1/nodes/{mac}`: the node, its history (oldest first) and latest inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub node: NodeView,
    pub history: Vec<HistoryEntry>,
    /// The latest hardware report (`null` if none).
    pub hardware: Option<bootd_proto::hardware::Inventory>,
}

/// Who made a phase change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A machine's callback with its token.
    Callback,
    /// An operator on the control socket: `operator:<uid>`.
    Operator(String),
    /// Observed by a service (`dhcp`, `tftp`, `http`, `health`, `group`, `deadline`...).
    Service(String),
}

impl Source {
    /// The source as the API spells it.
    pub fn parse(text: &str) -> Source {
        match text {
            "callback" => Source::Callback,
            _ => match text.strip_prefix("operator:") {
                Some(who) => Source::Operator(who.to_string()),
                None => Source::Service(text.to_string()),
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Callback => f.write_str("callback"),
            Source::Operator(who) => write!(f, "operator:{who}"),
            Source::Service(name) => f.write_str(name),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Source::parse(&String::deserialize(d)?))
    }
}

/// One recorded phase change of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub from: Phase,
    pub to: Phase,
    pub progress: u8,
    pub message: String,
    pub source: Source,
}

/// A committed phase change on `GET /api/v1/events` (and to upstreams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub mac: MacAddr,
    pub from: Phase,
    pub to: Phase,
    pub progress: u8,
    pub message: String,
    pub source: Source,
    pub at: Timestamp,
    /// Per-node sequence number: consumers detect gaps and duplicates with it.
    pub seq: u64,
    pub hostname: Option<String>,
    pub group: Option<String>,
    pub provider_id: Option<String>,
}

/// The event stream's `event: lagged` message: events dropped for a slow reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lagged {
    pub missed: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_seconds: u64,
    pub config: Option<String>,
    pub state_dir: String,
    pub database: String,
    pub http_listen: String,
    pub public_url: String,
    pub tftp: Option<String>,
    pub dhcp_mode: String,
    pub control_socket: String,
    pub nodes: u64,
    pub phases: BTreeMap<String, u64>,
    #[serde(default)]
    pub outbox: BTreeMap<String, u64>,
    /// The relay backlog per upstream: every configured one, and any that still has rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay: Vec<RelayBacklog>,
}

/// One upstream's backlog in `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayBacklog {
    pub upstream: String,
    /// Events still to deliver (including the failing ones).
    pub pending: u64,
    /// Pending events that failed at least once.
    pub failing: u64,
    /// Events set aside after the upstream kept refusing them.
    pub dead: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending: Option<Timestamp>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub mac: MacAddr,
    pub hostname: Option<String>,
    pub phase: Phase,
    pub progress: u8,
}

/// A group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// No member has booted yet (or the group has none).
    Pending,
    InProgress,
    /// Every member runs and `on_complete` is forming the cluster.
    Forming,
    Completed,
    Clustered,
    Timeout,
    /// A member failed.
    MemberFailed,
    /// Every member runs but `on_complete` gave up.
    HookFailed,
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupState::Pending => "pending",
            GroupState::InProgress => "in_progress",
            GroupState::Forming => "forming",
            GroupState::Completed => "completed",
            GroupState::Clustered => "clustered",
            GroupState::Timeout => "timeout",
            GroupState::MemberFailed => "member_failed",
            GroupState::HookFailed => "hook_failed",
        })
    }
}

/// A group with its state and why it is in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub profile: Option<String>,
    pub on_complete: Option<String>,
    pub state: GroupState,
    pub reason: String,
    pub nodes: Vec<GroupMember>,
    /// Overall progress: 0–70 deployment (members' mean), 70–100 cluster formation
    /// (75 hook called, 85 hook answered 2xx, 100 every member clustered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
}

/// `POST /api/v1/groups/{name}/progress`: a formation hook reports how far it got.
/// Authorized with `Authorization: Bearer <progress_token>` from the hook's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupProgress {
    /// 70..=100 (clamped into the formation stage, below 100 until members are clustered).
    pub progress: u8,
    #[serde(default)]
    pub message: Option<String>,
}

/// `GET /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<Group>,
}

/// The fields of a node an operator sets (`POST /api/v1/nodes`, `PATCH
/// /api/v1/nodes/{mac}`, adopt); absent ones are left alone, an empty string clears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// `profile` or `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Map<String, Value>>,
}

/// `POST /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddNode {
    pub mac: String,
    #[serde(flatten)]
    pub fields: NodeFields,
}

/// `DELETE /api/v1/nodes/{mac}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: MacAddr,
}

/// `POST /api/v1/nodes/{mac}/phase`: a machine's callback or an operator override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhasePost {
    pub phase: String,
    #[serde(default)]
    pub progress: Option<u32>,
    #[serde(default)]
    pub message: Option<String>,
    /// Facts a machine may report with `registered` or `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The answer of a phase post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseAnswer {
    pub changed: bool,
    pub node: Option<NodeView>,
    /// The progress stored (a callback's value may be kept within its phase's band).
    #[serde(default)]
    pub progress: Option<u8>,
    /// Why the stored progress differs from the one asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /api/v1/reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub reloaded: bool,
    pub summary: String,
}

/// `POST /api/v1/reprovision`: `macs`, or `group`, or `all`; optionally another profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReprovisionRequest {
    #[serde(default)]
    pub macs: Vec<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub profile: Option<String>,
}

/// What the power-cycle hook of a reprovisioned node did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status")]
pub enum PowerCycle {
    #[serde(rename = "ok")]
    Ok { http: u16 },
    #[serde(rename = "failed")]
    Failed { error: String },
    #[serde(rename = "not configured")]
    NotConfigured,
}

/// One node of a reprovision answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reprovisioned {
    pub mac: MacAddr,
    pub hostname: Option<String>,
    pub profile: String,
    pub token_generation: u32,
    pub phase: Phase,
    pub progress: u8,
    pub seq: u64,
    pub power_cycle: PowerCycle,
    /// The install profile's `timeout` in seconds, if it has one (absent from older
    /// daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// The answer of `POST /api/v1/reprovision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReprovisionAnswer {
    pub operator: String,
    pub nodes: Vec<Reprovisioned>,
}

/// One upstream of `GET /api/v1/relay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayUpstream {
    pub name: String,
    pub url: Option<String>,
    /// False for rows of an upstream no longer in the config.
    pub configured: bool,
    pub secret: Option<String>,
    pub pending: u64,
    pub failing: u64,
    pub dead: u64,
    pub delivered: u64,
    pub oldest_pending: Option<Timestamp>,
}

/// One outbox row of `GET /api/v1/relay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayEntry {
    pub id: i64,
    pub upstream: String,
    pub node: String,
    pub seq: u64,
    pub phase: Option<Phase>,
    /// `pending`, `dead` or `delivered`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// The event as it is (or was) sent.
    pub event: Value,
}

/// `GET /api/v1/relay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayOverview {
    pub upstreams: Vec<RelayUpstream>,
    pub failing: Vec<RelayEntry>,
    pub dead: Vec<RelayEntry>,
    pub recent: Vec<RelayEntry>,
}

/// `POST /api/v1/relay/retry` (`id` or `all_dead`) and `/relay/drop` (`id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_dead: bool,
}

/// The answer of `POST /api/v1/relay/retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retried {
    pub retried: usize,
}

/// The answer of `POST /api/v1/relay/drop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub dropped: i64,
}

/// `GET /api/v1/nodes/{mac}/hardware`: the latest report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareAnswer {
    pub mac: MacAddr,
    pub at: Timestamp,
    pub inventory: bootd_proto::hardware::Inventory,
    /// What changed since the report before it.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// The answer of a hardware report (`POST /api/v1/nodes/{mac}/hardware`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareReported {
    pub mac: MacAddr,
    pub inventory: bootd_proto::hardware::Inventory,
    pub changes: Vec<String>,
    pub summary: String,
}

/// A discovered machine that reported its hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    pub mac: MacAddr,
    pub summary: String,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub phase: Phase,
}

/// `GET /api/v1/hardware/discovered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredList {
    pub discovered: Vec<Discovered>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_json() -> Value {
        serde_json::json!({
            "mac": "52:54:00:aa:00:01", "hostname": "web1", "group": null, "profile": "p",
            "profile_source": "node", "node_profile": "p", "ip": "10.0.0.5", "uuid": null, "provider_id": null, "health_url": null,
            "console_url": null, "boot": "profile", "next_boot": null, "vars": {"a": 1},
            "origin": "runtime", "phase": "foundation_boot", "progress": 40, "message": "m",
            "seq": 7, "created_at": "2026-11-23T09:00:00.000Z",
            "updated_at": "2026-11-23T09:00:01.000Z", "phase_since": "2026-11-23T09:00:01.500Z",
        })
    }

    #[test]
    fn node_detail_reads_and_writes_the_same_fields() {
        let mut v = node_json();
        let history = serde_json::json!([{"at": "2026-11-23T09:00:00.000Z", "from": "known",
            "to": "dhcp", "progress": 15, "message": "", "source": "operator:0"}]);
        v["history"] = history;
        v["hardware"] = Value::Null;
        let d: NodeDetail = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(d.node.phase, Phase::Custom("foundation_boot".into()));
        assert_eq!(d.history[0].source, Source::Operator("0".into()));
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
    }

    #[test]
    fn list_rows_leave_out_missing_hardware() {
        let entry: NodeListEntry = serde_json::from_value(node_json()).unwrap();
        assert!(entry.hardware.is_none());
        assert_eq!(serde_json::to_value(&entry).unwrap(), node_json());
    }

    #[test]
    fn power_cycle_outcomes_keep_their_spelling() {
        for (v, want) in [
            (
                PowerCycle::Ok { http: 200 },
                r#"{"status":"ok","http":200}"#,
            ),
            (
                PowerCycle::Failed { error: "x".into() },
                r#"{"status":"failed","error":"x"}"#,
            ),
            (PowerCycle::NotConfigured, r#"{"status":"not configured"}"#),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), want);
            assert_eq!(serde_json::from_str::<PowerCycle>(want).unwrap(), v);
        }
    }

    #[test]
    fn sources_and_errors() {
        for s in ["callback", "operator:1000", "deadline", "tftp"] {
            assert_eq!(Source::parse(s).to_string(), s);
        }
        let e: ErrorBody = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert_eq!(e.error, "no");
        let a = RelayAction {
            id: None,
            all_dead: true,
        };
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"all_dead":true}"#);
    }
}

/// `POST /api/v1/tokens` (control socket): issue an API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreate {
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// Lifetime in seconds; None never expires.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: String,
    /// Seconds since the epoch; None never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<String>,
}

/// The answer of `POST /api/v1/tokens`: the token, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// One audited change: who, what, before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub who: String,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
}

/// `POST /api/v1/session`: the monitoring page logs in with an API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLogin {
    pub token: String,
}

/// A session of the monitoring page: the token it stands for, never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The API token's name.
    pub name: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// `GET /api/v1/session`: the caller's session, if any, and whether the read API is
/// open without one (`[http] read_public`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub session: Option<SessionInfo>,
    pub read_public: bool,
}
