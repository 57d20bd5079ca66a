//! The packet services (TFTP, DHCP): their sockets are bound before READY, then each
//! runs as a task on the shared `App`, with settings re-derived on every reload.

use crate::app::App;
use crate::config::Config;
use crate::mac::MacAddr;
use crate::nodes::{Phase, PhaseRequest};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Sockets bound at start, handed to the services.
pub struct Services {
    tftp: Option<tokio::net::UdpSocket>,
}

/// Binds every enabled packet service's sockets.
pub async fn bind(cfg: &Config) -> Result<Services, String> {
    let tftp = if cfg.tftp.enabled {
        Some(
            tokio::net::UdpSocket::bind(cfg.tftp.listen)
                .await
                .map_err(|e| format!("cannot listen for TFTP on {}: {e}", cfg.tftp.listen))?,
        )
    } else {
        None
    };
    Ok(Services { tftp })
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
fn derive<T: Send + Sync + 'static>(
    app: &Arc<App>,
    tasks: &mut JoinSet<()>,
    f: fn(&Config) -> T,
) -> watch::Receiver<Arc<T>> {
    let mut configs = app.config_watch();
    let (tx, rx) = watch::channel(Arc::new(f(&configs.borrow())));
    let shutdown = app.shutdown.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = configs.changed() => {
                    if changed.is_err() { return; }
                    let next = f(&configs.borrow_and_update());
                    tx.send_replace(Arc::new(next));
                }
            }
        }
    });
    rx
}

impl Services {
    /// Starts the services on the app.
    pub fn spawn(self, app: &Arc<App>, tasks: &mut JoinSet<()>) {
        if let Some(socket) = self.tftp {
            let metrics = Arc::new(crate::tftp::Metrics::new());
            app.metrics.with_registry(|r| metrics.register(r));
            let settings = derive(app, tasks, tftp_settings);
            let observer = Arc::new(TftpObserver { app: app.clone() });
            let shutdown = app.shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) =
                    crate::tftp::serve(socket, settings, metrics, observer, shutdown).await
                {
                    tracing::error!(error = %e, "tftp service failed");
                }
            });
        }
    }
}

/// The MAC behind a client address: the kernel's neighbour table, which holds every
/// peer that just talked to us on a local segment.
pub fn mac_of_peer(ip: IpAddr) -> Option<MacAddr> {
    let IpAddr::V4(ip) = ip else { return None };
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let addr: Ipv4Addr = f.next()?.parse().ok()?;
        let hw = f.nth(2)?;
        (addr == ip).then(|| hw.parse().ok()).flatten()
    })
}

/// Turns the first boot-file transfer of a known node into an event.
struct TftpObserver {
    app: Arc<App>,
}

impl crate::tftp::Observer for TftpObserver {
    fn transfer_started(&self, peer: SocketAddr, path: &str) {
        let cfg = self.app.config();
        let boot_files = [
            &cfg.boot.bios_file,
            &cfg.boot.efi_file,
            &cfg.boot.arm64_file,
        ];
        let is_boot_file = boot_files.iter().any(|f| f.trim_start_matches('/') == path)
            || cfg.profiles.values().any(|p| {
                [&p.bios_file, &p.efi_file, &p.arm64_file]
                    .iter()
                    .any(|f| f.as_deref().map(|f| f.trim_start_matches('/')) == Some(path))
            });
        tracing::debug!(%peer, path, "tftp transfer");
        if !is_boot_file {
            return;
        }
        let Some(mac) = mac_of_peer(peer.ip()) else {
            return;
        };
        let Some(node) = self.app.registry.get(mac) else {
            return;
        };
        if node.phase != Phase::Dhcp {
            return;
        }
        let app = self.app.clone();
        let message = format!("tftp {path}");
        tokio::spawn(async move {
            let req = PhaseRequest {
                to: Phase::Dhcp,
                progress: None,
                message,
                source: "tftp".into(),
                force: false,
            };
            if let Err(e) = app.registry.transition(mac, req).await {
                tracing::debug!(%mac, error = %e, "tftp event not recorded");
            }
        });
    }

    fn virtual_file(&self, _peer: SocketAddr, _path: &str) -> Option<bytes::Bytes> {
        None
    }
}
