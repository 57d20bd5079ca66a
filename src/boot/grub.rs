//! The GRUB boot path (Secure Boot): which signed loader DHCP hands out, and which TFTP
//! request is the per-client GRUB config that bootd renders instead of a file on disk.

use crate::config::{Config, Loader};

/// Microsoft-signed shim for x86-64 UEFI (shim-signed's `shimx64.efi.signed`), at the
/// TFTP root; shim then asks for [`GRUB_X64`] beside it.
pub const SHIM_X64: &str = "shimx64.efi";
/// Signed shim for ARM64 UEFI (`shimaa64.efi.signed`).
pub const SHIM_ARM64: &str = "shimaa64.efi";
/// The signed network GRUB (`grubnetx64.efi.signed`) that shim loads from the TFTP root.
pub const GRUB_X64: &str = "grubx64.efi";
/// The ARM64 network GRUB: shimaa64 asks for it at the root even when it was itself
/// loaded from a subdirectory.
pub const GRUB_ARM64: &str = "grubaa64.efi";
/// The one config file Debian's signed network GRUB reads (over TFTP, no per-MAC name),
/// as the TFTP service names it: relative to the root, no leading `/`.
pub const CONFIG_PATH: &str = "grub/grub.cfg";
/// The GRUB config template shipped with bootd.
pub const DEFAULT_TEMPLATE: &str = "grub.cfg";

/// Whether a TFTP path (normalised, relative to the root) is the GRUB config.
pub fn is_config(path: &str) -> bool {
    path == CONFIG_PATH
}

/// Whether the named profile boots through shim and GRUB.
pub fn uses_grub(cfg: &Config, profile: &str) -> bool {
    cfg.profiles
        .get(profile)
        .is_some_and(|p| p.loader == Loader::Grub)
}

/// Files of the signed chain that are boot steps worth recording (shim and GRUB).
pub const CHAIN_FILES: [&str; 4] = [SHIM_X64, SHIM_ARM64, GRUB_X64, GRUB_ARM64];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Context, Templates};
    use crate::mac::MacAddr;
    use crate::nodes::{Node, Origin};
    use std::path::Path;

    #[test]
    fn only_the_grub_config_is_virtual() {
        assert!(is_config("grub/grub.cfg"));
        assert!(!is_config("grub/x86_64-efi/command.lst"));
        assert!(!is_config("grub.cfg"));
        assert!(!is_config("/grub/grub.cfg"));
    }

    #[test]
    fn shipped_template_boots_over_tftp_with_token_and_console() {
        let cfg = Config::embedded(Path::new("/nonexistent"));
        let t = Templates::load(&cfg).expect("templates");
        let node = Node::new(MacAddr([0x52, 0x54, 0, 1, 2, 3]), Origin::Config);
        let ctx = Context::new(&node, "sb", "x86_64-efi", "tok".into(), "http://h:8080");
        let out = t.render(DEFAULT_TEMPLATE, &ctx).expect("render");
        let linux = out
            .lines()
            .find(|l| l.trim_start().starts_with("if linux "))
            .unwrap_or_else(|| panic!("no linux line in {out}"));
        assert!(linux.contains(" /vmlinuz "), "{linux}");
        assert!(linux.contains("console=ttyS0"), "{linux}");
        assert!(linux.contains("bootd.token=tok"), "{linux}");
        assert!(
            linux.contains("bootd.phase_url=http://h:8080/api/v1/nodes/52:54:00:01:02:03/phase"),
            "{linux}"
        );
        assert!(out.contains("initrd /initrd.gz"), "{out}");
        let mut quiet = node.clone();
        quiet
            .vars
            .insert("kernel_args".into(), serde_json::json!("quiet loglevel=3"));
        let ctx = Context::new(&quiet, "sb", "x86_64-efi", "tok".into(), "http://h:8080");
        let out = t.render(DEFAULT_TEMPLATE, &ctx).expect("render");
        assert!(
            out.contains("bootd.token=tok quiet loglevel=3; then"),
            "{out}"
        );
        let arm = Context::new(&node, "sb", "arm64-efi", "tok".into(), "http://h:8080");
        let out = t.render(DEFAULT_TEMPLATE, &arm).expect("render");
        assert!(out.contains("linux /arm64/vmlinuz"), "{out}");
        assert!(out.contains("console=ttyAMA0"), "{out}");
        assert!(out.contains("initrd /arm64/initrd.gz"), "{out}");
    }

    #[test]
    fn grub_profiles_are_recognised() {
        let mut cfg = Config::embedded(Path::new("/nonexistent"));
        assert!(!uses_grub(&cfg, "discovery"));
        assert!(!uses_grub(&cfg, "missing"));
        if let Some(p) = cfg.profiles.get_mut("discovery") {
            p.loader = Loader::Grub;
        }
        assert!(uses_grub(&cfg, "discovery"));
    }
}
