//! `[boot]`: the default boot files and what unknown machines get.

use super::profiles::{check_profile_ref, Profile, DISCOVERY_PROFILE};
use super::reader::{Ctx, Section};
use super::values::check_relative_file;
use serde::Serialize;
use std::collections::BTreeMap;

/// Default of `boot.bios_file`: iPXE's UNDI loader, which chains the rest over HTTP.
pub const DEFAULT_BIOS_FILE: &str = "undionly.kpxe";
/// Default of `boot.efi_file`: iPXE for x86-64 UEFI.
pub const DEFAULT_EFI_FILE: &str = "ipxe.efi";
/// Default of `boot.arm64_file`: iPXE for ARM64 UEFI.
pub const DEFAULT_ARM64_FILE: &str = "arm64/ipxe.efi";

/// `boot.unknown`: what an unknown machine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// Boot the default profile and record it as `discovered`.
    Discover,
    /// Do not answer it.
    Ignore,
}

/// `[boot]`.
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    /// What unknown machines get.
    pub unknown: UnknownPolicy,
    /// Profile of nodes that name none (directly or through their group).
    pub default_profile: String,
    /// Boot file for BIOS clients, relative to `assets_dir`.
    pub bios_file: String,
    /// Boot file for x86-64 UEFI clients, relative to `assets_dir`.
    pub efi_file: String,
    /// Boot file for ARM64 UEFI clients, relative to `assets_dir`.
    pub arm64_file: String,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            unknown: UnknownPolicy::Discover,
            default_profile: DISCOVERY_PROFILE.to_string(),
            bios_file: DEFAULT_BIOS_FILE.to_string(),
            efi_file: DEFAULT_EFI_FILE.to_string(),
            arm64_file: DEFAULT_ARM64_FILE.to_string(),
        }
    }
}

pub(super) fn read_boot(
    cx: &mut Ctx<'_>,
    s: &Section<'_>,
    profiles: &BTreeMap<String, Profile>,
) -> Boot {
    s.check_keys(
        cx,
        &[
            "unknown",
            "default_profile",
            "bios_file",
            "efi_file",
            "arm64_file",
        ],
    );
    let d = Boot::default();
    let unknown = s
        .get("unknown")
        .and_then(|f| {
            cx.choice(
                &f,
                &[
                    ("discover", UnknownPolicy::Discover),
                    ("ignore", UnknownPolicy::Ignore),
                ],
            )
        })
        .unwrap_or(d.unknown);
    let default_profile = s
        .get("default_profile")
        .and_then(|f| check_profile_ref(cx, &f, profiles))
        .unwrap_or(d.default_profile);
    let mut asset = |key: &str, default: String| {
        s.get(key)
            .and_then(|f| cx.parsed(&f, check_relative_file))
            .unwrap_or(default)
    };
    Boot {
        unknown,
        default_profile,
        bios_file: asset("bios_file", d.bios_file),
        efi_file: asset("efi_file", d.efi_file),
        arm64_file: asset("arm64_file", d.arm64_file),
    }
}
