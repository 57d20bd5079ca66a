//! `App`: what every service shares — the config snapshot, the store, the node registry,
//! the metrics and the shutdown signal.

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
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub tokens: TokenKey,
    pub shutdown: CancellationToken,
    pub started: Instant,
    /// The config file, or None on embedded defaults.
    pub config_path: Option<PathBuf>,
    /// One reload at a time (SIGHUP and the control socket may race).
    reload_lock: tokio::sync::Mutex<()>,
}

/// Whether a template exists: a file in the templates dir or one built into bootd.
pub fn template_exists(dir: &Path, name: &str) -> bool {
    BUILTIN_TEMPLATES.contains(&name) || dir.join(name).is_file()
}

/// Templates bootd ships inside the binary, so embedded defaults need no files.
pub const BUILTIN_TEMPLATES: &[&str] = &["discovery.ipxe", "local.ipxe"];

/// Loads the config file if there is one, else the embedded defaults for `cwd`.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p, &template_exists).map_err(|e| e.to_string()),
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| format!("cannot read the working directory: {e}"))?;
            Ok(Config::embedded(&cwd))
        }
    }
}

impl App {
    /// Puts the parts together.
    pub fn new(
        config: Config,
        store: Arc<Store>,
        registry: Arc<Registry>,
        tokens: TokenKey,
        config_path: Option<PathBuf>,
    ) -> Arc<App> {
        let (tx, _) = watch::channel(Arc::new(config));
        Arc::new(App {
            config: tx,
            store,
            registry,
            metrics: Arc::new(Metrics::new()),
            tokens,
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
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

    /// Swaps in a validated configuration.
    pub fn set_config(&self, config: Config) {
        self.config.send_replace(Arc::new(config));
    }

    /// Re-reads the config file; an invalid one leaves the running config in place.
    pub async fn reload(&self) -> Result<String, String> {
        let _one = self.reload_lock.lock().await;
        let path = self.config_path.clone();
        let loaded = tokio::task::spawn_blocking(move || load_config(path.as_deref()))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload refused, keeping the running config:\n{e}");
                crate::systemd::status(
                    "reload failed: config invalid, running on the previous one",
                );
                return Err(e);
            }
        };
        let changed = self
            .registry
            .apply_config(&new)
            .await
            .map_err(|e| format!("cannot apply the nodes of the new config: {e}"))?;
        let summary = format!("{} nodes configured, {} updated", new.nodes.len(), changed);
        self.set_config(new);
        tracing::info!("config reloaded: {summary}");
        crate::systemd::status(&crate::systemd::summary(self));
        Ok(summary)
    }
}
