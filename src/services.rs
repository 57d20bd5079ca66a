//! The packet services (TFTP, DHCP): their sockets are bound before READY, then each
//! runs as a task on the shared `App`, with settings re-derived on every reload.

use crate::app::App;
use crate::config::Config;
use crate::mac::MacAddr;
use crate::nodes::{Phase, PhaseRequest};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Sockets bound at start, handed to the services.
pub struct Services {
    tftp: Option<tokio::net::UdpSocket>,
}

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
        if app.config().dhcp.mode != crate::config::DhcpMode::Off {
            let metrics = Arc::new(crate::dhcp::Metrics::new());
            app.metrics.with_registry(|r| metrics.register(r));
            let settings = derive(app, tasks, dhcp_settings);
            let backend = Arc::new(DhcpBackend { app: app.clone() });
            let shutdown = app.shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::dhcp::serve(settings, backend, metrics, shutdown).await {
                    tracing::error!(error = %e, "dhcp service failed");
                }
            });
        }
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

/// How long a boot-file transfer waits for its machine's DHCP event to be recorded.
const TFTP_EVENT_WAIT: Duration = Duration::from_secs(2);

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
        learnt.or_else(|| crate::neighbours::mac_of_peer(ip))
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
        let sel = crate::boot::select_with_hardware(Some(&node), &cfg, &|| {
            crate::http::latest_hardware(&self.app, mac)
        });
        if !crate::boot::grub::uses_grub(&cfg, &sel.profile) {
            tracing::info!(%mac, %peer, profile = %sel.profile,
                "GRUB asked for its config, but the node's profile is not loader = \"grub\"");
            return None;
        }
        let arch = self.app.arch_of(mac).unwrap_or("x86_64-efi");
        let tok = self.app.tokens.token(mac, node.token_gen);
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
            if let Err(e) = app
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

/// A node's boot-file overrides, merged: its own, else its profile's, else the signed
/// shim when the profile boots through GRUB; None keeps the `[boot]` default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootFiles {
    bios: Option<String>,
    efi: Option<String>,
    arm64: Option<String>,
    grub: bool,
}

fn boot_files(
    spec: Option<&crate::config::NodeSpec>,
    prof: Option<&crate::config::Profile>,
) -> BootFiles {
    let pick = |from_spec: Option<&Option<String>>, from_prof: Option<&Option<String>>| {
        from_spec
            .cloned()
            .flatten()
            .or_else(|| from_prof.cloned().flatten())
    };
    let grub = prof.is_some_and(|p| p.loader == crate::config::Loader::Grub);
    // A GRUB profile starts the signed chain: shim, which then loads GRUB from the TFTP
    // root. BIOS has no Secure Boot and keeps iPXE.
    let chain = |file: &str| grub.then(|| file.to_string());
    BootFiles {
        bios: pick(spec.map(|s| &s.bios_file), prof.map(|p| &p.bios_file)),
        efi: pick(spec.map(|s| &s.efi_file), prof.map(|p| &p.efi_file))
            .or_else(|| chain(crate::boot::grub::SHIM_X64)),
        arm64: pick(spec.map(|s| &s.arm64_file), prof.map(|p| &p.arm64_file))
            .or_else(|| chain(crate::boot::grub::SHIM_ARM64)),
        grub,
    }
}

/// bootd's side of the DHCP service: nodes from the registry, offers as phase events,
/// leases in the store.
struct DhcpBackend {
    app: Arc<App>,
}

impl crate::dhcp::Backend for DhcpBackend {
    fn node(&self, mac: MacAddr) -> crate::dhcp::NodeBoot {
        let Some(node) = self.app.registry.get(mac) else {
            return crate::dhcp::NodeBoot::default();
        };
        let cfg = self.app.config();
        // Hardware matches read the store: only for nodes without a profile of their own.
        let profile = crate::boot::select_with_hardware(Some(&node), &cfg, &|| {
            crate::http::latest_hardware(&self.app, mac)
        })
        .profile;
        let files = boot_files(cfg.node(mac), cfg.profiles.get(&profile));
        crate::dhcp::NodeBoot {
            known: true,
            reserved_ip: node.ip,
            hostname: node.hostname.clone(),
            bios_file: files.bios,
            efi_file: files.efi,
            arm64_file: files.arm64,
            loader_grub: files.grub,
        }
    }

    fn offered(
        &self,
        mac: MacAddr,
        ip: Option<Ipv4Addr>,
        arch: Option<crate::dhcp::Arch>,
        iface: &str,
    ) {
        // Only firmware boots are deployment steps: an installer's or the installed
        // system's own DHCP client (no PXE architecture) must not move a node back.
        let Some(arch) = arch else {
            return;
        };
        if let Some(family) = arch.family() {
            let name = match family {
                crate::dhcp::ArchFamily::Bios => "bios",
                crate::dhcp::ArchFamily::X64Efi | crate::dhcp::ArchFamily::X64Http => "x86_64-efi",
                crate::dhcp::ArchFamily::Arm64Efi | crate::dhcp::ArchFamily::Arm64Http => {
                    "arm64-efi"
                }
            };
            self.app.note_arch(mac, name);
        }
        let app = self.app.clone();
        let message = match ip {
            Some(ip) => format!("offer {ip} on {iface}"),
            None => format!("proxy offer on {iface}"),
        };
        tokio::spawn(async move {
            let cfg = app.config();
            if app.registry.get(mac).is_none() {
                if cfg.boot.unknown != crate::config::UnknownPolicy::Discover {
                    return;
                }
                if let Err(e) = app.registry.discover(mac).await {
                    tracing::warn!(%mac, error = %e, "cannot record discovered machine");
                    return;
                }
            }
            if !app.registry.boot_counts(mac) {
                return;
            }
            let req = PhaseRequest {
                to: Phase::Dhcp,
                progress: None,
                message,
                source: "dhcp".into(),
                force: false,
            };
            if let Err(e) = app.registry.transition(mac, req).await {
                tracing::debug!(%mac, error = %e, "dhcp event not recorded");
            }
        });
    }

    fn address_seen(&self, mac: MacAddr, ip: Ipv4Addr) {
        self.app.peers.learn(ip, mac);
    }

    fn load_leases(&self) -> Result<Vec<crate::dhcp::Lease>, crate::dhcp::BackendError> {
        let rows = self
            .app
            .store
            .load_leases()
            .map_err(|e| crate::dhcp::BackendError(e.to_string()))?;
        Ok(rows.iter().filter_map(lease_from_row).collect())
    }

    fn persist_leases(
        &self,
        leases: &[crate::dhcp::Lease],
    ) -> Result<(), crate::dhcp::BackendError> {
        let rows: Vec<crate::store::LeaseRow> = leases.iter().map(lease_to_row).collect();
        let store = self.app.store.clone();
        tokio::runtime::Handle::current()
            .block_on(store.save_leases(rows))
            .map_err(|e| crate::dhcp::BackendError(e.to_string()))
    }

    fn reserved_for(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.app.registry.mac_by_ip(ip)
    }
}

fn lease_state_name(s: crate::dhcp::LeaseState) -> &'static str {
    use crate::dhcp::LeaseState::*;
    match s {
        Offered => "offered",
        Bound => "bound",
        Released => "released",
        Declined => "declined",
    }
}

fn lease_to_row(l: &crate::dhcp::Lease) -> crate::store::LeaseRow {
    let expires = l
        .expires
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::store::LeaseRow {
        mac: l.mac.to_string(),
        ip: l.ip.to_string(),
        expires,
        hostname: l.hostname.clone(),
        state: lease_state_name(l.state).into(),
    }
}

fn lease_from_row(r: &crate::store::LeaseRow) -> Option<crate::dhcp::Lease> {
    use crate::dhcp::LeaseState::*;
    Some(crate::dhcp::Lease {
        mac: r.mac.parse().ok()?,
        ip: r.ip.parse().ok()?,
        expires: std::time::UNIX_EPOCH + std::time::Duration::from_secs(r.expires.max(0) as u64),
        hostname: r.hostname.clone(),
        state: match r.state.as_str() {
            "bound" => Bound,
            "released" => Released,
            "declined" => Declined,
            _ => Offered,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse_str(text, Path::new("t.toml"), &|_: &Path, _: &str| true)
            .unwrap_or_else(|e| panic!("config: {e}"))
    }

    const NODES: &str = "[server]\nhttp_listen = \"127.0.0.1:8080\"\n\
        [profiles.sb]\nscript = \"grub.cfg\"\nloader = \"grub\"\n\
        [profiles.own]\nscript = \"grub.cfg\"\nloader = \"grub\"\nefi_file = \"own/shim.efi\"\n\
        [profiles.plain]\nscript = \"p.ipxe\"\n\
        [[nodes]]\nmac = \"52:54:00:00:00:01\"\nprofile = \"sb\"\n\
        [[nodes]]\nmac = \"52:54:00:00:00:02\"\nprofile = \"sb\"\nefi_file = \"node/shim.efi\"\n\
        [[nodes]]\nmac = \"52:54:00:00:00:03\"\nprofile = \"own\"\n\
        [[nodes]]\nmac = \"52:54:00:00:00:04\"\nprofile = \"plain\"\n";

    fn files(cfg: &Config, last: u8) -> BootFiles {
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, last]);
        let spec = cfg.node(mac);
        let profile = spec.and_then(|s| s.profile.clone()).unwrap_or_default();
        boot_files(spec, cfg.profiles.get(&profile))
    }

    #[test]
    fn grub_profiles_hand_out_the_signed_shim_unless_overridden() {
        let cfg = config(NODES);
        let sb = files(&cfg, 1);
        assert_eq!(sb.efi.as_deref(), Some("shimx64.efi"));
        assert_eq!(sb.arm64.as_deref(), Some("shimaa64.efi"));
        assert_eq!(sb.bios, None, "BIOS keeps the [boot] default");
        assert!(sb.grub);
        assert_eq!(files(&cfg, 2).efi.as_deref(), Some("node/shim.efi"));
        assert_eq!(files(&cfg, 2).arm64.as_deref(), Some("shimaa64.efi"));
        assert_eq!(files(&cfg, 3).efi.as_deref(), Some("own/shim.efi"));
        let plain = files(&cfg, 4);
        assert_eq!((plain.efi, plain.arm64, plain.grub), (None, None, false));
    }
}
