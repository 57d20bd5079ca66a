//! bootd's side of the TFTP service: the first boot-file transfer of a known node
//! becomes a phase event, and GRUB's config is rendered per node.

use super::dhcp_backend::lease_from_row;
use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::{Phase, PhaseRequest};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a boot-file transfer waits for its machine's DHCP event to be recorded.
const TFTP_EVENT_WAIT: Duration = Duration::from_secs(2);

/// Turns the first boot-file transfer of a known node into an event.
pub struct TftpObserver {
    pub app: Arc<App>,
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
            || crate::boot::grub::CHAIN_FILES.contains(&path)
            || cfg.profiles.values().any(|p| {
                [&p.bios_file, &p.efi_file, &p.arm64_file]
                    .iter()
                    .any(|f| f.as_deref().map(|f| f.trim_start_matches('/')) == Some(path))
            });
        tracing::debug!(%peer, path, "tftp transfer");
        if !is_boot_file {
            return;
        }
        let Some(mac) = self.app_peer(peer.ip()) else {
            return;
        };
        // The offer's own event (and, for a new machine, its discovery) is recorded by a
        // task of its own and may still be on its way to the store when a fast client's
        // RRQ arrives: subscribe first, then look, then wait a bounded time for it.
        let mut events = self.app.registry.subscribe();
        let app = self.app.clone();
        let message = format!("tftp {path}");
        tokio::spawn(async move {
            let in_dhcp = |app: &App| {
                app.registry
                    .get(mac)
                    .is_some_and(|n| n.phase == Phase::Dhcp)
            };
            if !in_dhcp(&app) {
                let arrived = tokio::time::timeout(TFTP_EVENT_WAIT, async {
                    loop {
                        match events.recv().await {
                            Ok(ev) if ev.mac == mac && ev.to == Phase::Dhcp => return true,
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                if in_dhcp(&app) {
                                    return true;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                        }
                    }
                })
                .await;
                if arrived != Ok(true) {
                    return;
                }
            }
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

    fn virtual_file(&self, peer: SocketAddr, path: &str) -> Option<bytes::Bytes> {
        if !crate::boot::grub::is_config(path) {
            return None;
        }
        let rendered = self.render_grub_config(peer);
        if rendered.is_none() {
            tracing::debug!(%peer, path, "no per-node GRUB config: serving the file on disk, if any");
        }
        rendered
    }
}

impl TftpObserver {
    /// The node behind a TFTP peer: the neighbour table on the local segment, else the
    /// DHCP lease of the address (full mode, and clients behind a relay).
    /// The MAC DHCP last saw with `ip`, else the kernel's neighbour table (a peer whose
    /// DHCP bootd did not see, e.g. a static address).
    fn app_peer(&self, ip: IpAddr) -> Option<MacAddr> {
        let learnt = match ip {
            IpAddr::V4(v4) => self.app.peers.lookup(v4),
            IpAddr::V6(_) => None,
        };
        learnt.or_else(|| crate::neighbours::mac_of(ip))
    }

    fn mac_for(&self, ip: IpAddr) -> Option<MacAddr> {
        if let Some(mac) = self.app_peer(ip) {
            return Some(mac);
        }
        let IpAddr::V4(ip) = ip else { return None };
        let now = std::time::SystemTime::now();
        // A small indexed read, and only for a GRUB config request whose peer the
        // neighbour table does not know.
        let rows = match self.app.store.load_leases() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(%ip, error = %e, "cannot read leases to find a TFTP peer's MAC");
                return None;
            }
        };
        rows.iter()
            .filter_map(lease_from_row)
            .find(|l| {
                l.ip == ip
                    && l.expires > now
                    && matches!(
                        l.state,
                        crate::dhcp::LeaseState::Bound | crate::dhcp::LeaseState::Offered
                    )
            })
            .map(|l| {
                tracing::debug!(%ip, mac = %l.mac, "TFTP peer named by its DHCP lease");
                l.mac
            })
    }

    /// Renders the GRUB template of the peer's node when its selected profile boots
    /// through GRUB, and records `ipxe_boot` like a fetched iPXE script; None leaves the
    /// request to the file on disk (an operator's default `grub/grub.cfg`, or not found).
    fn render_grub_config(&self, peer: SocketAddr) -> Option<bytes::Bytes> {
        let mac = self.mac_for(peer.ip())?;
        let node = self.app.registry.get(mac)?;
        let cfg = self.app.config();
        let sel =
            crate::boot::select_with_hardware(Some(&node), &cfg, &|| self.app.latest_hardware(mac));
        if !crate::boot::grub::uses_grub(&cfg, &sel.profile) {
            tracing::info!(%mac, %peer, profile = %sel.profile,
                "GRUB asked for its config, but the node's profile is not loader = \"grub\"");
            return None;
        }
        let arch = self.app.arch_of(mac).unwrap_or("x86_64-efi");
        let tok = crate::secrets::token_for(&self.app, mac, node.token_gen, peer.ip(), "grub.cfg");
        let ctx = crate::boot::Context::new(
            &node,
            &sel.profile,
            arch,
            tok.clone(),
            &cfg.server.public_url,
        );
        let body = match self.app.templates().render(&sel.script, &ctx) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%mac, template = %sel.script, error = %e, "GRUB config render failed");
                return None;
            }
        };
        self.app.metrics.renders.inc();
        tracing::info!(%mac, %peer, profile = %sel.profile, template = %sel.script, arch,
            "rendered GRUB config over TFTP");
        let app = self.app.clone();
        let message = format!("{} {} (tftp)", sel.profile, sel.script);
        let one_shot = sel.one_shot;
        tokio::spawn(async move {
            // The token is noted before the phase so the kernel's first callback finds it.
            if tok.is_empty() {
                // Withheld from a stranger: nothing to note.
            } else if let Err(e) = app
                .registry
                .note_token(mac, crate::nodes::token::hash(&tok))
                .await
            {
                tracing::warn!(%mac, error = %e, "cannot record the GRUB config's token");
                return;
            }
            let req = PhaseRequest {
                to: Phase::IpxeBoot,
                progress: None,
                message,
                source: "tftp".into(),
                force: false,
            };
            if let Err(e) = app.registry.transition(mac, req).await {
                tracing::debug!(%mac, error = %e, "ipxe_boot (GRUB config) not recorded");
            }
            if one_shot {
                // Install once, as for an iPXE script: the next boot is from disk again.
                let back = crate::nodes::NodePatch {
                    next_boot: Some(String::new()),
                    boot: Some("local".into()),
                    ..crate::nodes::NodePatch::default()
                };
                if let Err(e) = app.registry.set(mac, &back).await {
                    tracing::warn!(%mac, error = %e, "cannot consume the one-shot next boot");
                }
            }
        });
        Some(bytes::Bytes::from(body))
    }
}
