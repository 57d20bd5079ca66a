//! The services' settings, derived from the config at start and on every reload.

use crate::app::App;
use crate::config::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// DHCP settings from the config (the service binds its own sockets per interface).
pub fn dhcp_settings(cfg: &Config) -> crate::dhcp::Settings {
    use crate::config::{DhcpMode, Option43, UnknownPolicy};
    use crate::dhcp::{Mode, Option43Strategy, Pool, Unknown};
    crate::dhcp::Settings {
        mode: match cfg.dhcp.mode {
            DhcpMode::Off => Mode::Off,
            DhcpMode::Proxy => Mode::Proxy,
            DhcpMode::Full => Mode::Full,
        },
        interfaces: cfg.server.interfaces.clone(),
        public_url: cfg.server.public_url.clone(),
        bios_file: cfg.boot.bios_file.clone(),
        efi_file: cfg.boot.efi_file.clone(),
        arm64_file: cfg.boot.arm64_file.clone(),
        unknown: match cfg.boot.unknown {
            UnknownPolicy::Discover => Unknown::Discover,
            UnknownPolicy::Ignore => Unknown::Ignore,
        },
        pools: cfg
            .dhcp
            .pools
            .iter()
            .map(|p| Pool {
                subnet: p.subnet.addr,
                prefix: p.subnet.prefix,
                range: (p.start, p.end),
                router: p.router,
                dns: p.dns.clone(),
                lease_time: p.lease_time,
                domain: p.domain.clone(),
            })
            .collect(),
        ipv6_ra: cfg.dhcp.ipv6_ra,
        proxy_option43: match cfg.dhcp.proxy_option43 {
            Option43::Menu => Option43Strategy::Menu,
            Option43::Minimal => Option43Strategy::Minimal,
        },
        rate_per_mac: cfg.dhcp.rate_per_mac,
        ..crate::dhcp::Settings::default()
    }
}

/// TFTP settings from the config.
pub fn tftp_settings(cfg: &Config) -> crate::tftp::Settings {
    crate::tftp::Settings {
        root: cfg.server.assets_dir.clone(),
        max_blksize: cfg.tftp.max_blksize,
        max_windowsize: cfg.tftp.max_windowsize,
        max_sessions: cfg.tftp.max_sessions,
        max_sessions_per_client: cfg.tftp.max_sessions_per_client,
        ..crate::tftp::Settings::default()
    }
}

/// Follows config reloads, deriving a service's settings from each new config.
/// The returned task (supervised by the caller) runs until shutdown.
pub fn derive<T: Send + Sync + 'static>(
    app: &Arc<App>,
    f: fn(&Config) -> T,
) -> (
    watch::Receiver<Arc<T>>,
    impl std::future::Future<Output = Result<(), SettingsError>> + Send + 'static,
) {
    let mut configs = app.config_watch();
    let (tx, rx) = watch::channel(Arc::new(f(&configs.borrow())));
    let shutdown = app.shutdown.clone();
    let follow = async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = configs.changed() => {
                    if changed.is_err() {
                        return Err(SettingsError::ConfigGone);
                    }
                    let next = f(&configs.borrow_and_update());
                    tx.send_replace(Arc::new(next));
                }
            }
        }
    };
    (rx, follow)
}

/// Why settings stopped following the config.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the config channel closed")]
    ConfigGone,
}
