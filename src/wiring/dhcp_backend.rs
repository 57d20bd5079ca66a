//! bootd's side of the DHCP service: nodes from the registry with their merged boot
//! files, offers as phase events, leases in the store.

use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::{Phase, PhaseRequest};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// bootd's side of the DHCP service: nodes from the registry, offers as phase events,
/// leases in the store.
pub struct DhcpBackend {
    pub app: Arc<App>,
}

impl crate::dhcp::Backend for DhcpBackend {
    fn node(&self, mac: MacAddr) -> crate::dhcp::NodeBoot {
        let Some(node) = self.app.registry.get(mac) else {
            return crate::dhcp::NodeBoot::default();
        };
        let cfg = self.app.config();
        // Hardware matches read the store: only for nodes without a profile of their own.
        let profile =
            crate::boot::select_with_hardware(Some(&node), &cfg, &|| self.app.latest_hardware(mac))
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

pub(super) fn lease_from_row(r: &crate::store::LeaseRow) -> Option<crate::dhcp::Lease> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
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
