//! `App`: what every service shares — the config snapshot, the store, the node registry,
//! the metrics and the shutdown signal.

use crate::boot::{template_exists, Templates};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::nodes::token::TokenKey;
use crate::nodes::Registry;
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Shared state of the running daemon.
pub struct App {
    config: watch::Sender<Arc<Config>>,
    templates: std::sync::RwLock<Arc<Templates>>,
    /// The client architecture DHCP last saw per MAC (`bios`, `x86_64-efi`, `arm64-efi`).
    arch_seen: std::sync::Mutex<std::collections::HashMap<crate::mac::MacAddr, &'static str>>,
    /// Address → MAC as DHCP sees it, for naming TFTP peers.
    pub peers: crate::peers::PeerTable,
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// Group hook states and event-stream slots.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    pub tokens: TokenKey,
    pub shutdown: CancellationToken,
    pub started: Instant,
    /// The config file, or None on embedded defaults.
    pub config_path: Option<PathBuf>,
    /// One reload at a time (SIGHUP and the control socket may race).
    reload_lock: tokio::sync::Mutex<()>,
    /// Rate limits of machine callbacks per node and per source address.
    pub callback_limits: crate::http::callback_limit::CallbackLimits,
    /// The monitoring page's sessions and its login limiter.
    pub sessions: crate::http::session::Sessions,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file has errors (each on its own line).
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    #[error("cannot read the working directory: {0}")]
    WorkingDir(std::io::Error),
    /// Templates that do not compile (each on its own line).
    #[error("{}", template_lines(.0))]
    Templates(Vec<crate::boot::TemplateError>),
    /// Both: the file's errors, then its templates'.
    #[error("{config}\n{}", template_lines(.templates))]
    ConfigAndTemplates {
        config: crate::config::ConfigErrors,
        templates: Vec<crate::boot::TemplateError>,
    },
}

fn template_lines(errs: &[crate::boot::TemplateError]) -> String {
    errs.iter()
        .map(|e| format!("template {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reload task failed: {0}")]
    Task(tokio::task::JoinError),
    /// The new config is invalid; the running one stays.
    #[error("{0}")]
    Invalid(LoadError),
    #[error("cannot apply the nodes of the new config: {0}")]
    Nodes(crate::nodes::RegistryError),
    /// The new config moves something bound at start; nothing of it was applied.
    #[error("restart needed for {}; the running config stays (restart bootd to apply the file)", .0.join(", "))]
    RestartNeeded(Vec<String>),
}

/// Loads the config file if there is one, else the embedded defaults for the working
/// directory, and compiles its templates; every error of both is reported.
pub fn load_config(path: Option<&Path>) -> Result<(Config, Templates), LoadError> {
    let cfg = match path {
        Some(p) => match Config::load_partial(p, &template_exists) {
            Ok(cfg) => cfg,
            // Check the templates of what could be read too: every error in one pass.
            Err((errors, partial)) => {
                let templates = partial
                    .map(|c| Templates::load(&c).err().unwrap_or_default())
                    .unwrap_or_default();
                return Err(if templates.is_empty() {
                    LoadError::Config(errors)
                } else {
                    LoadError::ConfigAndTemplates {
                        config: errors,
                        templates,
                    }
                });
            }
        },
        None => {
            let cwd = std::env::current_dir().map_err(LoadError::WorkingDir)?;
            Config::embedded(&cwd)
        }
    };
    let templates = Templates::load(&cfg).map_err(LoadError::Templates)?;
    Ok((cfg, templates))
}

impl App {
    /// Puts the parts together.
    pub fn new(
        config: Config,
        templates: Templates,
        store: Arc<Store>,
        registry: Arc<Registry>,
        tokens: TokenKey,
        config_path: Option<PathBuf>,
    ) -> Arc<App> {
        let (tx, _) = watch::channel(Arc::new(config));
        Arc::new(App {
            config: tx,
            templates: std::sync::RwLock::new(Arc::new(templates)),
            arch_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
            peers: crate::peers::PeerTable::default(),
            store,
            registry,
            metrics: Arc::new(Metrics::new()),
            lifecycle: Arc::default(),
            tokens,
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
            callback_limits: Default::default(),
            sessions: Default::default(),
        })
    }

    /// The current configuration snapshot.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// A receiver that sees every configuration swap (services re-derive their settings).
    pub fn config_watch(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// Swaps in a validated configuration and its templates.
    pub fn set_config(&self, config: Config, templates: Templates) {
        if let Ok(mut t) = self.templates.write() {
            *t = Arc::new(templates);
        }
        self.config.send_replace(Arc::new(config));
    }

    /// The compiled templates of the current configuration.
    pub fn templates(&self) -> Arc<Templates> {
        self.templates
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Remembers the architecture a MAC's firmware announced over DHCP.
    pub fn note_arch(&self, mac: crate::mac::MacAddr, arch: &'static str) {
        if let Ok(mut m) = self.arch_seen.lock() {
            m.insert(mac, arch);
        }
    }

    /// The newest stored hardware inventory of a node, if it reported.
    pub fn latest_hardware(&self, mac: crate::mac::MacAddr) -> Option<crate::hardware::Inventory> {
        let row = self
            .store
            .latest_hardware(&mac.to_string())
            .ok()
            .flatten()?;
        serde_json::from_str(&row.inventory).ok()
    }

    /// The architecture last seen for a MAC.
    pub fn arch_of(&self, mac: crate::mac::MacAddr) -> Option<&'static str> {
        self.arch_seen
            .lock()
            .ok()
            .and_then(|m| m.get(&mac).copied())
    }

    /// Re-reads the config file; an invalid one leaves the running config in place.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let _one = self.reload_lock.lock().await;
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || load_config(path.as_deref()))
            .await
            .map_err(ReloadError::Task)?;
        let (new, templates) = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, keeping the running config:\n{e}");
                crate::systemd::status(
                    "reload failed: config invalid, running on the previous one",
                );
                return Err(ReloadError::Invalid(e));
            }
        };
        let bound = crate::wiring::restart_needed(&self.config(), &new);
        if !bound.is_empty() {
            let e = ReloadError::RestartNeeded(bound);
            tracing::error!("reload refused: {e}");
            crate::systemd::status(
                "reload refused: restart needed, running on the previous config",
            );
            return Err(e);
        }
        let changed = self
            .registry
            .apply_config(&new)
            .await
            .map_err(ReloadError::Nodes)?;
        let summary = format!("{} nodes configured, {} updated", new.nodes.len(), changed);
        self.set_config(new, templates);
        tracing::info!("config reloaded: {summary}");
        crate::systemd::status(&crate::systemd::summary(self));
        Ok(summary)
    }
}
