//! The node registry: every machine bootd knows, its phase, and the event stream of
//! phase changes. Services report observations here; nothing else changes a node.

mod node;
pub mod phase;
mod profile;
pub mod token;

pub use node::{Node, NodeEvent, NodePatch, Origin};
pub use phase::{Phase, TransitionError};
pub use profile::{effective_profile, EffectiveProfile, ProfileSource};

use crate::config::{BootMode, Config, NodeClaims, NodeValueError};
use crate::mac::MacAddr;
use crate::store::{HistoryRow, Store, StoreError, TransitionRow};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 4096;

/// Why the registry refused a request.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no node with MAC {0}")]
    NotFound(MacAddr),
    #[error("a node with MAC {0} already exists")]
    Exists(MacAddr),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Invalid(String),
    /// A value another node already has (host name, IP).
    #[error("{0}")]
    Conflict(String),
    /// The node is defined in the config file, which a reload would restore.
    #[error("{mac} is defined in {file}:{line}; edit the file and reload")]
    Configured {
        mac: MacAddr,
        file: String,
        line: usize,
    },
    #[error("state store: {0}")]
    Store(#[from] StoreError),
}

/// The outcome of a phase request.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The change was committed and published.
    Changed(Box<NodeEvent>),
    /// The node was already there; nothing was written.
    Unchanged,
}

/// What a phase request asks for.
#[derive(Debug, Clone)]
pub struct PhaseRequest {
    pub to: Phase,
    pub progress: Option<u8>,
    pub message: String,
    /// `dhcp`, `tftp`, `http`, `callback`, `operator:<uid>`, `health`, `deadline`...
    pub source: String,
    /// Operators may move a node anywhere; machines follow the transition table.
    pub force: bool,
}

/// The registry of nodes, backed by the store.
pub struct Registry {
    store: Arc<Store>,
    nodes: Mutex<HashMap<MacAddr, Node>>,
    events: broadcast::Sender<NodeEvent>,
    /// Upstream names that receive every event (outbox rows).
    upstreams: RwLock<Vec<String>>,
    /// Extra phases per profile with their progress.
    profile_phases: RwLock<HashMap<String, BTreeMap<String, u8>>>,
    /// The configuration last applied: groups and defaults for the effective profile.
    config: RwLock<Option<Arc<Config>>>,
}

impl Registry {
    /// Loads every stored node.
    pub fn load(store: Arc<Store>) -> Result<Registry, RegistryError> {
        let mut nodes = HashMap::new();
        for row in store.load_nodes()? {
            match Node::from_row(&row) {
                Ok(node) => {
                    nodes.insert(node.mac, node);
                }
                Err(e) => {
                    tracing::warn!(mac = %row.mac, error = %e, "skipping unreadable node row")
                }
            }
        }
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Ok(Registry {
            store,
            nodes: Mutex::new(nodes),
            events,
            upstreams: RwLock::new(Vec::new()),
            profile_phases: RwLock::new(HashMap::new()),
            config: RwLock::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MacAddr, Node>> {
        // A panic elsewhere must not take the registry down with it.
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of one node.
    pub fn get(&self, mac: MacAddr) -> Option<Node> {
        self.lock().get(&mac).cloned()
    }

    /// Copies of every node, ordered by MAC.
    pub fn list(&self) -> Vec<Node> {
        let mut v: Vec<Node> = self.lock().values().cloned().collect();
        v.sort_by_key(|n| n.mac);
        v
    }

    /// The node an address is reserved for.
    pub fn mac_by_ip(&self, ip: std::net::Ipv4Addr) -> Option<MacAddr> {
        self.lock()
            .values()
            .find(|n| n.ip == Some(ip))
            .map(|n| n.mac)
    }

    /// Node count per phase name.
    pub fn count_by_phase(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for n in self.lock().values() {
            *out.entry(n.phase.name().to_string()).or_insert(0) += 1;
        }
        out
    }

    /// A live stream of committed phase changes.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// The store behind the registry.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Takes the nodes, upstreams and profile phases of a (new) configuration:
    /// `[[nodes]]` are inserted or updated; runtime nodes are left alone.
    pub async fn apply_config(&self, config: &Config) -> Result<usize, RegistryError> {
        if let Ok(mut u) = self.upstreams.write() {
            *u = config.upstream.iter().map(|u| u.name.clone()).collect();
        }
        if let Ok(mut p) = self.profile_phases.write() {
            *p = config
                .profiles
                .iter()
                .map(|(name, prof)| (name.clone(), prof.phases.clone()))
                .collect();
        }
        if let Ok(mut c) = self.config.write() {
            *c = Some(Arc::new(config.clone()));
        }
        let mut pending = Vec::new();
        {
            let mut nodes = self.lock();
            for spec in &config.nodes {
                let node = match nodes.get(&spec.mac) {
                    Some(existing) => {
                        let mut n = existing.clone();
                        n.apply_spec(spec);
                        if n == *existing {
                            continue;
                        }
                        n.updated_at = crate::store::now_rfc3339();
                        n
                    }
                    None => Node::from_spec(spec),
                };
                pending.push(self.store.queue_node(node.to_row(), None)?);
                nodes.insert(node.mac, node);
            }
        }
        let count = pending.len();
        for p in pending {
            p.wait().await?;
        }
        Ok(count)
    }

    /// The configuration last applied.
    fn applied(&self) -> Option<Arc<Config>> {
        self.config.read().ok().and_then(|c| c.clone())
    }

    /// Checks the host name and IP a node would get against the rules of `[[nodes]]`
    /// and every other node, with the config reader's own checks ([`NodeClaims`]).
    fn check_values(
        &self,
        nodes: &HashMap<MacAddr, Node>,
        mac: MacAddr,
        hostname: Option<&str>,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), RegistryError> {
        if hostname.is_none() && ip.is_none() {
            return Ok(());
        }
        let mut claims = NodeClaims::default();
        for n in nodes.values().filter(|n| n.mac != mac) {
            let owner = describe(n);
            // Values the others already hold are claimed as they are; a clash among
            // them is not this request's fault.
            if let Some(h) = &n.hostname {
                let _ = claims.hostname(h, &owner);
            }
            if let Some(ip) = n.ip {
                let _ = claims.ip(ip, &owner);
            }
        }
        let dhcp = self.applied().map(|c| c.dhcp.clone()).unwrap_or_default();
        claims
            .node(&mac.to_string(), hostname, ip, &dhcp)
            .map_err(|e| match e {
                NodeValueError::Invalid(m) => RegistryError::Invalid(m),
                NodeValueError::Duplicate(m) => RegistryError::Conflict(m),
            })
    }

    /// Refuses operator edits of a node the config file defines (a reload would undo them).
    fn check_not_configured(&self, mac: MacAddr) -> Result<(), RegistryError> {
        let Some(cfg) = self.applied() else {
            return Ok(());
        };
        match (cfg.node(mac), &cfg.source) {
            (Some(spec), Some(file)) => Err(RegistryError::Configured {
                mac,
                file: file.display().to_string(),
                line: spec.line,
            }),
            _ => Ok(()),
        }
    }

    /// Adds a node at runtime (persisted; survives restarts).
    pub async fn add(&self, node: Node) -> Result<Node, RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            if let Some(existing) = nodes.get(&node.mac) {
                if existing.origin != Origin::Discovered {
                    return Err(RegistryError::Exists(node.mac));
                }
            }
            self.check_values(&nodes, node.mac, node.hostname.as_deref(), node.ip)?;
            let p = self.store.queue_node(node.to_row(), None)?;
            nodes.insert(node.mac, node.clone());
            p
        };
        self.commit_or_reload(node.mac, pending).await?;
        Ok(node)
    }

    /// An operator's change of a node: refused for nodes of the config file, and checked
    /// like `[[nodes]]` (host name shape, unique host name and IP).
    pub async fn edit(&self, mac: MacAddr, patch: &NodePatch) -> Result<Node, RegistryError> {
        if !patch.boot_control_only() {
            self.check_not_configured(mac)?;
        }
        {
            let nodes = self.lock();
            let existing = nodes.get(&mac).ok_or(RegistryError::NotFound(mac))?;
            let mut n = existing.clone();
            patch.apply(&mut n);
            let hostname = patch.hostname.as_ref().and(n.hostname.as_deref());
            let ip = patch.ip.as_ref().and(n.ip);
            self.check_values(&nodes, mac, hostname, ip)?;
        }
        self.set(mac, patch).await
    }

    /// An operator's removal of a node: refused for nodes of the config file.
    pub async fn remove_runtime(&self, mac: MacAddr) -> Result<(), RegistryError> {
        self.check_not_configured(mac)?;
        self.remove(mac).await
    }

    /// Changes fields of a node.
    pub async fn set(&self, mac: MacAddr, patch: &NodePatch) -> Result<Node, RegistryError> {
        let (node, pending) = {
            let mut nodes = self.lock();
            let existing = nodes.get(&mac).ok_or(RegistryError::NotFound(mac))?;
            let mut n = existing.clone();
            patch.apply(&mut n);
            n.updated_at = crate::store::now_rfc3339();
            let p = self.store.queue_node(n.to_row(), None)?;
            nodes.insert(mac, n.clone());
            (n, p)
        };
        self.commit_or_reload(mac, pending).await?;
        Ok(node)
    }

    /// Turns a discovered machine into a managed one with the given fields.
    pub async fn adopt(
        &self,
        mac: MacAddr,
        patch: &NodePatch,
        operator: String,
    ) -> Result<Node, RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            let n = nodes.get_mut(&mac).ok_or(RegistryError::NotFound(mac))?;
            if n.origin != Origin::Discovered {
                return Err(RegistryError::Invalid(format!("{mac} is already managed")));
            }
            let mut next = n.clone();
            patch.apply(&mut next);
            let hostname = next.hostname.clone();
            let ip = next.ip;
            self.check_values(&nodes, mac, hostname.as_deref(), ip)?;
            let Some(n) = nodes.get_mut(&mac) else {
                return Err(RegistryError::NotFound(mac));
            };
            patch.apply(n);
            n.origin = Origin::Runtime;
            n.updated_at = crate::store::now_rfc3339();
            self.store.queue_node(n.to_row(), None)?
        };
        self.commit_or_reload(mac, pending).await?;
        if self.get(mac).is_some_and(|n| n.phase == Phase::Discovered) {
            let req = PhaseRequest {
                to: Phase::Known,
                progress: Some(0),
                message: "adopted".into(),
                source: operator,
                force: false,
            };
            self.transition(mac, req).await?;
        }
        self.get(mac).ok_or(RegistryError::NotFound(mac))
    }

    /// Removes a node with its history.
    pub async fn remove(&self, mac: MacAddr) -> Result<(), RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            if nodes.remove(&mac).is_none() {
                return Err(RegistryError::NotFound(mac));
            }
            self.store.queue_delete_node(mac.to_string())?
        };
        self.commit_or_reload(mac, pending).await
    }

    /// Rotates a node's callback token generation; returns the new generation.
    pub async fn rotate_token(&self, mac: MacAddr) -> Result<u32, RegistryError> {
        let (gen, pending) = {
            let mut nodes = self.lock();
            let n = nodes.get_mut(&mac).ok_or(RegistryError::NotFound(mac))?;
            n.token_gen = n.token_gen.wrapping_add(1);
            (n.token_gen, self.store.queue_node(n.to_row(), None)?)
        };
        self.commit_or_reload(mac, pending).await?;
        Ok(gen)
    }

    /// Records the hash of the token a node's scripts now carry (the token is never stored).
    pub async fn note_token(&self, mac: MacAddr, hash: String) -> Result<(), RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            let n = nodes.get_mut(&mac).ok_or(RegistryError::NotFound(mac))?;
            if n.token_hash.as_deref() == Some(hash.as_str()) {
                return Ok(());
            }
            n.token_hash = Some(hash);
            self.store.queue_node(n.to_row(), None)?
        };
        self.commit_or_reload(mac, pending).await
    }

    /// Replaces a node's message without a phase change (no history row, no event):
    /// a service's note such as why a readiness check fails. Returns whether it changed.
    pub async fn note_message(&self, mac: MacAddr, message: String) -> Result<bool, RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            let n = nodes.get_mut(&mac).ok_or(RegistryError::NotFound(mac))?;
            if n.message == message {
                return Ok(false);
            }
            n.message = message;
            n.updated_at = crate::store::now_rfc3339();
            self.store.queue_node(n.to_row(), None)?
        };
        self.commit_or_reload(mac, pending).await?;
        Ok(true)
    }

    /// Makes sure a node exists for a MAC seen on the wire; returns whether it is new.
    pub async fn discover(&self, mac: MacAddr) -> Result<bool, RegistryError> {
        let pending = {
            let mut nodes = self.lock();
            if nodes.contains_key(&mac) {
                return Ok(false);
            }
            let node = Node::discovered(mac);
            let p = self.store.queue_node(node.to_row(), None)?;
            nodes.insert(mac, node);
            p
        };
        self.commit_or_reload(mac, pending).await?;
        tracing::info!(%mac, "new machine discovered");
        Ok(true)
    }

    /// A node's effective profile under the configuration last applied (its own, else
    /// its group's, else a hardware match, else `boot.default_profile`).
    pub fn effective_profile(&self, node: &Node) -> EffectiveProfile {
        let cfg = self.config.read().ok().and_then(|c| c.clone());
        let Some(cfg) = cfg else {
            return EffectiveProfile {
                name: node.profile.clone().unwrap_or_default(),
                source: ProfileSource::Node,
            };
        };
        let mac = node.mac.to_string();
        effective_profile(node, &cfg, &|| {
            let row = self.store.latest_hardware(&mac).ok().flatten()?;
            serde_json::from_str(&row.inventory).ok()
        })
    }

    /// The extra phases of a node's effective profile.
    pub fn phases_of(&self, node: &Node) -> Vec<(String, u8)> {
        self.custom_phases(Some(&self.effective_profile(node).name))
    }

    /// Extra phase names of a profile.
    pub fn custom_phases(&self, profile: Option<&str>) -> Vec<(String, u8)> {
        let Some(profile) = profile else {
            return Vec::new();
        };
        self.profile_phases
            .read()
            .ok()
            .and_then(|p| p.get(profile).cloned())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// Moves a node to a phase: one history row, one outbox row per upstream and one
    /// event, committed together; resolves once durable.
    pub async fn transition(
        &self,
        mac: MacAddr,
        req: PhaseRequest,
    ) -> Result<Applied, RegistryError> {
        // A custom phase's progress comes from the node's effective profile, resolved
        // before the lock (a hardware match reads the store).
        let custom = match (&req.to, self.get(mac)) {
            (Phase::Custom(name), Some(node)) => self
                .phases_of(&node)
                .into_iter()
                .find(|(n, _)| n.as_str() == &**name)
                .map(|(_, p)| p),
            _ => None,
        };
        let (event, pending) = {
            let mut nodes = self.lock();
            let node = nodes.get_mut(&mac).ok_or(RegistryError::NotFound(mac))?;
            let from = node.phase.clone();
            if !req.force {
                phase::check(&from, &req.to)?;
            }
            let repeat = from == req.to;
            // A repeated boot phase (iPXE's second DHCP, a re-fetched script) is not news.
            // A TFTP transfer after the offer is news within `dhcp`; a retransmit is not.
            let progress_phase = matches!(req.to, Phase::Installing | Phase::Custom(_));
            let new_boot_step =
                req.to == Phase::Dhcp && req.source == "tftp" && req.message != node.message;
            if repeat && !progress_phase && !new_boot_step {
                return Ok(Applied::Unchanged);
            }
            let progress = progress_for(node, &req, custom)?;
            if repeat && progress == node.progress && req.message == node.message {
                return Ok(Applied::Unchanged);
            }
            let at = crate::store::now_rfc3339();
            let mut next = node.clone();
            next.phase = req.to.clone();
            next.progress = progress;
            next.message = req.message.clone();
            next.seq += 1;
            next.updated_at = at.clone();
            if !repeat {
                next.phase_since = at.clone();
            }
            let event = NodeEvent {
                mac,
                from: from.clone(),
                to: req.to.clone(),
                progress,
                message: req.message.clone(),
                source: req.source.clone(),
                at: at.clone(),
                seq: next.seq,
                hostname: next.hostname.clone(),
                group: next.group.clone(),
                provider_id: next.provider_id.clone(),
            };
            let payload = serde_json::to_string(&event)
                .map_err(|e| RegistryError::Invalid(format!("cannot encode event: {e}")))?;
            let outbox = self
                .upstreams
                .read()
                .map(|u| {
                    u.iter()
                        .map(|name| (name.clone(), payload.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let row = TransitionRow {
                node: next.to_row(),
                history: HistoryRow {
                    at,
                    from: from.name().to_string(),
                    to: req.to.name().to_string(),
                    progress,
                    message: req.message.clone(),
                    source: req.source.clone(),
                },
                outbox,
            };
            let tx = self.events.clone();
            let published = event.clone();
            let pending = self.store.queue_transition(
                row,
                Some(Box::new(move || {
                    let _ = tx.send(published);
                })),
            )?;
            *node = next;
            (event, pending)
        };
        self.commit_or_reload(mac, pending).await?;
        tracing::info!(%mac, hostname = event.hostname.as_deref().unwrap_or(""),
            from = %event.from, to = %event.to, progress = event.progress,
            source = %event.source, detail = %event.message, "phase");
        Ok(Applied::Changed(Box::new(event)))
    }

    /// Waits for a queued write; if it failed, puts the node back as stored.
    async fn commit_or_reload(
        &self,
        mac: MacAddr,
        pending: crate::store::Pending,
    ) -> Result<(), RegistryError> {
        match pending.wait().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let stored = self.store.load_node(&mac.to_string()).ok().flatten();
                let mut nodes = self.lock();
                match stored.and_then(|r| Node::from_row(&r).ok()) {
                    Some(n) => {
                        nodes.insert(mac, n);
                    }
                    None => {
                        nodes.remove(&mac);
                    }
                }
                Err(e.into())
            }
        }
    }

    /// Whether a PXE boot of this node should move it along (a node that boots from its
    /// local disk through PXE every time stays where it is).
    pub fn boot_counts(&self, mac: MacAddr) -> bool {
        match self.get(mac) {
            Some(n) => !(n.boot == BootMode::Local && n.next_boot.is_none()),
            None => true,
        }
    }
}

/// A node as a message names it: its MAC and host name.
fn describe(n: &Node) -> String {
    match &n.hostname {
        Some(h) => format!("{} ({h})", n.mac),
        None => n.mac.to_string(),
    }
}

/// The band `installing` progress is kept within when a machine reports it.
pub const INSTALLING_BAND: std::ops::RangeInclusive<u8> = 30..=85;

/// The progress to show after `req`: the request's own (within the `installing` band
/// for machines), else the custom phase's (`custom`), else the phase's default, else the
/// current one.
fn progress_for(node: &Node, req: &PhaseRequest, custom: Option<u8>) -> Result<u8, RegistryError> {
    if let Some(p) = req.progress {
        if p > 100 {
            return Err(TransitionError::BadProgress(p as u32).into());
        }
    }
    Ok(match (&req.to, req.progress) {
        (Phase::Installing, Some(p)) if !req.force => {
            p.clamp(*INSTALLING_BAND.start(), *INSTALLING_BAND.end())
        }
        (_, Some(p)) => p,
        (Phase::Custom(_), None) => custom.unwrap_or(node.progress),
        (to, None) => to.default_progress().unwrap_or(node.progress),
    })
}
