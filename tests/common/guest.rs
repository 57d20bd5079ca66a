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

/// Builds (or finds in the cache) the guest; the build script locks, so tests may race.
pub fn guest() -> Result<GuestImage, HarnessError> {
    GUEST
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| HarnessError::Format {
            what: "guest build".to_string(),
            detail,
        })
}

fn build() -> Result<GuestImage, HarnessError> {
    let script = harness_dir().join("tests/guest/build-guest.sh");
    let out = run(Command::new("bash").arg(&script))?;
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

/// Debian's signed Secure Boot chain for x86-64 (shim signed by Microsoft, network GRUB
/// signed by Debian), unpacked by `tests/guest/fetch-signed.sh`.
#[derive(Debug, Clone)]
pub struct SignedChain {
    /// `shimx64.efi.signed` from shim-signed.
    pub shimx64: PathBuf,
    /// `grubnetx64.efi.signed` from grub-efi-amd64-signed.
    pub grubx64: PathBuf,
}

static SIGNED: OnceLock<Result<SignedChain, String>> = OnceLock::new();

/// Fetches (or finds in the cache) the signed chain; the script locks, so tests may race.
pub fn signed_chain() -> Result<SignedChain, HarnessError> {
    SIGNED
        .get_or_init(|| fetch_signed().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| HarnessError::Format {
            what: "signed boot chain".to_string(),
            detail,
        })
}

fn fetch_signed() -> Result<SignedChain, HarnessError> {
    let script = harness_dir().join("tests/guest/fetch-signed.sh");
    let out = run(Command::new("bash").arg(&script))?;
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
        shimx64: field("shimx64=")?,
        grubx64: field("grubx64=")?,
    })
}
