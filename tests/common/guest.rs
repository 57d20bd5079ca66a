//! The test guest (Debian kernel + busybox initramfs that POSTs one phase and powers off),
//! built once per machine by `tests/guest/build-guest.sh` and once per test binary here.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::util::{harness_dir, run};
use super::HarnessError;

/// Paths of the built guest.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The kernel (`vmlinuz`).
    pub vmlinuz: PathBuf,
    /// The gzip'd newc initramfs.
    pub initrd: PathBuf,
}

static GUEST: OnceLock<Result<GuestImage, String>> = OnceLock::new();
static GUEST_ARM64: OnceLock<Result<GuestImage, String>> = OnceLock::new();

/// Builds (or finds in the cache) the guest; the build script locks, so tests may race.
pub fn guest() -> Result<GuestImage, HarnessError> {
    GUEST
        .get_or_init(|| build("amd64").map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| HarnessError::Format {
            what: "guest build".to_string(),
            detail,
        })
}

/// The same guest for ARM64 (Debian's arm64 kernel and busybox-static:arm64); needs
/// `dpkg --add-architecture arm64` and `apt-get update` on this host.
pub fn guest_arm64() -> Result<GuestImage, HarnessError> {
    GUEST_ARM64
        .get_or_init(|| build("arm64").map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| HarnessError::Format {
            what: "arm64 guest build".to_string(),
            detail,
        })
}

fn build(arch: &str) -> Result<GuestImage, HarnessError> {
    let script = harness_dir().join("tests/guest/build-guest.sh");
    let out = run(Command::new("bash")
        .arg(&script)
        .env("BOOTD_GUEST_ARCH", arch))?;
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(PathBuf::from)
            .ok_or_else(|| HarnessError::Format {
                what: format!("{} output", script.display()),
                detail: format!("no `{key}` line in {out:?}"),
            })
    };
    Ok(GuestImage {
        vmlinuz: field("vmlinuz=")?,
        initrd: field("initrd=")?,
    })
}

/// Debian's signed boot chain for one architecture (shim signed by Microsoft, network
/// GRUB signed by Debian), unpacked by `tests/guest/fetch-signed.sh`.
#[derive(Debug, Clone)]
pub struct SignedChain {
    /// `shimx64.efi.signed` (or `shimaa64`) from shim-signed.
    pub shim: PathBuf,
    /// `grubnetx64.efi.signed` (or `grubnetaa64`) from grub-efi-ARCH-signed.
    pub grub: PathBuf,
}

static SIGNED: OnceLock<Result<SignedChain, String>> = OnceLock::new();
static SIGNED_ARM64: OnceLock<Result<SignedChain, String>> = OnceLock::new();

/// Fetches (or finds in the cache) the x86-64 chain; the script locks, so tests may race.
pub fn signed_chain() -> Result<SignedChain, HarnessError> {
    chain(&SIGNED, "amd64")
}

/// The ARM64 chain (`shimaa64.efi`, `grubaa64.efi`).
pub fn signed_chain_arm64() -> Result<SignedChain, HarnessError> {
    chain(&SIGNED_ARM64, "arm64")
}

fn chain(
    cell: &OnceLock<Result<SignedChain, String>>,
    arch: &str,
) -> Result<SignedChain, HarnessError> {
    cell.get_or_init(|| fetch_signed(arch).map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| HarnessError::Format {
            what: format!("signed boot chain ({arch})"),
            detail,
        })
}

fn fetch_signed(arch: &str) -> Result<SignedChain, HarnessError> {
    let script = harness_dir().join("tests/guest/fetch-signed.sh");
    let out = run(Command::new("bash").arg(&script).arg(arch))?;
    let efi = if arch == "arm64" { "aa64" } else { "x64" };
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(PathBuf::from)
            .ok_or_else(|| HarnessError::Format {
                what: format!("{} output", script.display()),
                detail: format!("no `{key}` line in {out:?}"),
            })
    };
    Ok(SignedChain {
        shim: field(&format!("shim{efi}="))?,
        grub: field(&format!("grub{efi}="))?,
    })
}
