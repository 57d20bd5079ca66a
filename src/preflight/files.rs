//! Boot-file checks: every file DHCP may name exists in assets_dir, opens the way TFTP
//! opens it, and is what its slot claims (a BIOS PXE NBP, an EFI application for x64/arm64).
//!
//! How a file is recognised:
//! - EFI (x64 and arm64 slots): a PE/COFF image — `MZ`, `e_lfanew` at 0x3C pointing at
//!   `PE\0\0`, the COFF machine (0x8664 x64, 0xAA64 arm64, 0x014C ia32), an optional
//!   header whose subsystem is 10 (EFI application; 11/12 are drivers and cannot be
//!   booted), and every section's raw data inside the file (a truncated download fails).
//! - BIOS: a PXE network bootstrap program has no header: the PXE ROM loads it at
//!   0000:7C00 and jumps to it, so it must fit below 640 KiB. iPXE's `.pxe`/`.kpxe`/
//!   `.kkpxe` (Debian's `/usr/lib/ipxe/undionly.kpxe` among them) start with the far jump
//!   `EA 05 00 C0 07` (to 07C0:0005, normalising CS) and carry the `PXENV+` and `!PXE`
//!   signatures their prefix searches for in the first KiBs; the rest is compressed, so
//!   the text "iPXE" is not visible. Both together mean "iPXE NBP". The PXE signatures
//!   alone mean another PXE NBP (pxelinux): a warning, because bootd's scripts need iPXE.
//!   A PE, ELF or text file (an HTML error page saved as a boot file) in the BIOS slot fails.

use super::{Check, Verdict};
use crate::config::Config;
use crate::tftp::path::{normalize, open_beneath, OpenError};
use std::collections::BTreeMap;
use std::io::Read;

/// How much of a file is read to recognise it (PE headers, the iPXE prefix).
pub const HEAD_BYTES: u64 = 64 << 10;
/// Where a BIOS NBP's PXE signatures must appear (iPXE has them within ~1 KiB).
pub const NBP_SIGNATURE_WINDOW: usize = 4 << 10;
/// Largest BIOS NBP: from 0000:7C00 to the end of conventional memory at A000:0000.
pub const MAX_BIOS_NBP: u64 = 0xA_0000 - 0x7C00;
/// Smallest plausible BIOS NBP (iPXE's prefix alone is larger).
pub const MIN_BIOS_NBP: u64 = 512;
/// The far jump every iPXE PXE prefix starts with: `jmp 07C0:0005`.
const IPXE_NBP_JUMP: [u8; 5] = [0xEA, 0x05, 0x00, 0xC0, 0x07];
/// COFF machine types.
const MACHINE_X64: u16 = 0x8664;
const MACHINE_ARM64: u16 = 0xAA64;
const MACHINE_IA32: u16 = 0x014C;
/// PE optional header subsystem of a bootable EFI application.
const SUBSYSTEM_EFI_APPLICATION: u16 = 10;

/// The CPU a PE image is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeMachine {
    X64,
    Arm64,
    Ia32,
    Other(u16),
}

impl PeMachine {
    fn from_coff(m: u16) -> PeMachine {
        match m {
            MACHINE_X64 => PeMachine::X64,
            MACHINE_ARM64 => PeMachine::Arm64,
            MACHINE_IA32 => PeMachine::Ia32,
            other => PeMachine::Other(other),
        }
    }

    /// How an operator calls it.
    pub fn name(self) -> String {
        match self {
            PeMachine::X64 => "x64 (0x8664)".into(),
            PeMachine::Arm64 => "arm64 (0xAA64)".into(),
            PeMachine::Ia32 => "ia32 (0x014C)".into(),
            PeMachine::Other(m) => format!("machine 0x{m:04X}"),
        }
    }
}

/// The parts of a PE header that say whether firmware can boot it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeInfo {
    pub machine: PeMachine,
    pub subsystem: u16,
    /// End of the last section's raw data: the file must be at least this long.
    pub raw_end: u64,
}

/// Why bytes are not a PE image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    #[error("not a PE/COFF image (no MZ header)")]
    NoMz,
    #[error("MZ header points at offset {0}, outside the file's first {HEAD_BYTES} bytes")]
    BadOffset(u32),
    #[error("no PE signature at offset {0}")]
    NoPe(u32),
    #[error("PE header truncated")]
    Truncated,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*s.first()?, *s.get(1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Reads the PE/COFF headers from the start of a file.
pub fn parse_pe(head: &[u8]) -> Result<PeInfo, PeError> {
    if head.get(..2) != Some(b"MZ") {
        return Err(PeError::NoMz);
    }
    let lfanew = u32_at(head, 0x3C).ok_or(PeError::Truncated)?;
    let pe = usize::try_from(lfanew).map_err(|_| PeError::BadOffset(lfanew))?;
    if pe >= head.len() {
        return Err(PeError::BadOffset(lfanew));
    }
    if head.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(PeError::NoPe(lfanew));
    }
    let coff = pe + 4;
    let machine = u16_at(head, coff).ok_or(PeError::Truncated)?;
    let sections = u16_at(head, coff + 2).ok_or(PeError::Truncated)?;
    let opt_size = u16_at(head, coff + 16).ok_or(PeError::Truncated)?;
    let opt = coff + 20;
    // Subsystem sits at the same offset in PE32 and PE32+ optional headers.
    let subsystem = u16_at(head, opt + 68).ok_or(PeError::Truncated)?;
    let table = opt + usize::from(opt_size);
    let mut raw_end = 0u64;
    for i in 0..usize::from(sections) {
        let entry = table + i * 40;
        let size = u32_at(head, entry + 16).ok_or(PeError::Truncated)?;
        let ptr = u32_at(head, entry + 20).ok_or(PeError::Truncated)?;
        raw_end = raw_end.max(u64::from(ptr) + u64::from(size));
    }
    Ok(PeInfo {
        machine: PeMachine::from_coff(machine),
        subsystem,
        raw_end,
    })
}

/// What a file in the BIOS slot looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiosNbp {
    /// iPXE's PXE prefix: the 07C0 far jump and the PXE signatures.
    Ipxe,
    /// PXE signatures but not iPXE's prefix (pxelinux and friends).
    OtherPxe,
    /// A PE image (an EFI binary in the BIOS slot).
    Pe,
    /// An ELF file.
    Elf,
    /// Text (an HTML error page, a script).
    Text,
    /// Nothing recognisable.
    Unknown,
}

/// Recognises a BIOS NBP from its first bytes (see the module doc for the heuristic).
pub fn classify_bios_nbp(head: &[u8]) -> BiosNbp {
    if head.starts_with(b"MZ") {
        return BiosNbp::Pe;
    }
    if head.starts_with(b"\x7fELF") {
        return BiosNbp::Elf;
    }
    let window = head.get(..NBP_SIGNATURE_WINDOW).unwrap_or(head);
    let has = |needle: &[u8]| window.windows(needle.len()).any(|w| w == needle);
    let pxe = has(b"PXENV+") && has(b"!PXE");
    if pxe && head.starts_with(&IPXE_NBP_JUMP) {
        return BiosNbp::Ipxe;
    }
    if pxe {
        return BiosNbp::OtherPxe;
    }
    let sample = head.get(..512).unwrap_or(head);
    let printable = sample
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    if !sample.is_empty() && printable * 100 / sample.len() >= 95 {
        return BiosNbp::Text;
    }
    BiosNbp::Unknown
}

/// Which firmware a boot-file slot serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Bios,
    X64,
    Arm64,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::Bios => "BIOS",
            Slot::X64 => "x64 UEFI",
            Slot::Arm64 => "arm64 UEFI",
        }
    }
}

/// Every (file, slot) DHCP may hand out, with the config keys that name it and whether
/// only a default names it (the arm64 default need not exist on an x86-only network).
fn wanted(cfg: &Config) -> BTreeMap<(Slot, String), (Vec<String>, bool)> {
    let mut out: BTreeMap<(Slot, String), (Vec<String>, bool)> = BTreeMap::new();
    let mut add = |file: &str, slot: Slot, key: String, explicit: bool| {
        let e = out
            .entry((slot, file.to_string()))
            .or_insert((Vec::new(), false));
        e.0.push(key);
        e.1 |= explicit;
    };
    add(
        &cfg.boot.bios_file,
        Slot::Bios,
        "boot.bios_file".into(),
        true,
    );
    add(&cfg.boot.efi_file, Slot::X64, "boot.efi_file".into(), true);
    add(
        &cfg.boot.arm64_file,
        Slot::Arm64,
        "boot.arm64_file".into(),
        false,
    );
    for (name, p) in &cfg.profiles {
        for (file, slot, key) in [
            (&p.bios_file, Slot::Bios, "bios_file"),
            (&p.efi_file, Slot::X64, "efi_file"),
            (&p.arm64_file, Slot::Arm64, "arm64_file"),
        ] {
            if let Some(f) = file {
                add(f, slot, format!("profiles.{name}.{key}"), true);
            }
        }
    }
    for n in &cfg.nodes {
        for (file, slot, key) in [
            (&n.bios_file, Slot::Bios, "bios_file"),
            (&n.efi_file, Slot::X64, "efi_file"),
            (&n.arm64_file, Slot::Arm64, "arm64_file"),
        ] {
            if let Some(f) = file {
                add(f, slot, format!("nodes[{}].{key}", n.mac), true);
            }
        }
    }
    out
}

/// One `boot_file` check per file DHCP may name, and a `boot_file_type` check per file
/// that opened.
pub fn check(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for ((slot, file), (keys, explicit)) in wanted(cfg) {
        out.extend(check_one(cfg, &file, slot, &keys, explicit));
    }
    out
}

fn check_one(cfg: &Config, file: &str, slot: Slot, keys: &[String], explicit: bool) -> Vec<Check> {
    let root = &cfg.server.assets_dir;
    let subject = file.to_string();
    let named_by = keys.join(", ");
    let rel = match normalize(file.as_bytes()) {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::new(
                "boot_file",
                subject,
                Verdict::Fail,
                format!("{named_by}: not a path TFTP can serve: {e}"),
                "name a file relative to server.assets_dir",
            )]
        }
    };
    let missing_verdict = if explicit {
        Verdict::Fail
    } else {
        Verdict::Warn
    };
    let opened = match open_beneath(root, &rel) {
        Ok(f) => f,
        Err(OpenError::NotFound) => {
            return vec![Check::new(
                "boot_file",
                subject,
                missing_verdict,
                format!(
                    "{} missing from {} ({named_by}): {} clients cannot boot",
                    rel,
                    root.display(),
                    slot.name()
                ),
                hint_for_missing(slot, root, &rel),
            )]
        }
        Err(OpenError::Denied) => {
            return vec![Check::new(
            "boot_file",
            subject,
            Verdict::Fail,
            format!(
                "{rel} in {} is refused: a symlink (TFTP and HTTP follow none, so none can \
                     leave assets_dir) or not readable by this user",
                root.display()
            ),
            "replace the symlink with a copy or hard link (cp -L) and make it readable by bootd",
        )]
        }
        Err(OpenError::Io(e)) => {
            return vec![Check::new(
                "boot_file",
                subject,
                Verdict::Fail,
                format!("cannot open {rel}: {e}"),
                "check the file and the file system",
            )]
        }
    };
    let len = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = Vec::new();
    if let Err(e) = opened.take(HEAD_BYTES).read_to_end(&mut head) {
        return vec![Check::new(
            "boot_file",
            subject,
            Verdict::Fail,
            format!("cannot read {rel}: {e}"),
            "check the file and the file system",
        )];
    }
    let present = Check::ok(
        "boot_file",
        &subject,
        format!("present, {len} bytes ({named_by})"),
    );
    let kind = match slot {
        Slot::Bios => bios_verdict(&head, len),
        Slot::X64 => efi_verdict(&head, len, PeMachine::X64),
        Slot::Arm64 => efi_verdict(&head, len, PeMachine::Arm64),
    };
    let (verdict, message, hint) = kind;
    vec![
        present,
        Check::new("boot_file_type", subject, verdict, message, hint),
    ]
}

fn hint_for_missing(slot: Slot, assets: &std::path::Path, rel: &str) -> String {
    let target = assets.join(rel);
    let target = target.display();
    match slot {
        Slot::Bios | Slot::X64 => format!(
            "copy it from the ipxe package (cp /usr/lib/ipxe/{} {target}) or change the config key",
            rel.rsplit('/').next().unwrap_or(rel)
        ),
        Slot::Arm64 => format!(
            "put an arm64 iPXE build at {target} (Debian's ipxe package has no arm64 build: \
             build iPXE's bin-arm64-efi/ipxe.efi) or ignore this if no ARM64 machine boots here"
        ),
    }
}

fn bios_verdict(head: &[u8], len: u64) -> (Verdict, String, String) {
    let fail = |m: String, h: &str| (Verdict::Fail, m, h.to_string());
    if len < MIN_BIOS_NBP {
        return fail(
            format!("{len} bytes: too small for a PXE boot program"),
            "the file is truncated: copy it again",
        );
    }
    if len > MAX_BIOS_NBP {
        return fail(
            format!("{len} bytes: a BIOS NBP must fit below 640 KiB (at most {MAX_BIOS_NBP})"),
            "use undionly.kpxe, which chains everything else over HTTP",
        );
    }
    match classify_bios_nbp(head) {
        BiosNbp::Ipxe => (
            Verdict::Ok,
            "iPXE PXE boot program (07C0 jump, PXENV+/!PXE signatures)".into(),
            String::new(),
        ),
        BiosNbp::OtherPxe => (
            Verdict::Warn,
            "a PXE boot program, but not iPXE: bootd's HTTP scripts need iPXE".into(),
            "use undionly.kpxe from the ipxe package unless this is deliberate".into(),
        ),
        BiosNbp::Pe => fail(
            "a PE/EFI binary: BIOS PXE ROMs cannot run it".into(),
            "boot.bios_file must be a BIOS NBP such as undionly.kpxe",
        ),
        BiosNbp::Elf => fail(
            "an ELF file: BIOS PXE ROMs cannot run it".into(),
            "boot.bios_file must be a BIOS NBP such as undionly.kpxe",
        ),
        BiosNbp::Text => fail(
            "a text file (an error page or script saved as the boot file?)".into(),
            "download the binary again",
        ),
        BiosNbp::Unknown => (
            Verdict::Warn,
            "not recognised as a PXE boot program (no PXE signatures in its first 4 KiB)".into(),
            "use undionly.kpxe from the ipxe package unless this is deliberate".into(),
        ),
    }
}

fn efi_verdict(head: &[u8], len: u64, want: PeMachine) -> (Verdict, String, String) {
    let slot_hint = match want {
        PeMachine::Arm64 => "boot.arm64_file must be an arm64 EFI build (bin-arm64-efi/ipxe.efi)",
        _ => {
            "boot.efi_file must be an x64 EFI build (ipxe.efi or snponly.efi from the ipxe package)"
        }
    };
    let pe = match parse_pe(head) {
        Ok(pe) => pe,
        Err(e) => {
            let what = match classify_bios_nbp(head) {
                BiosNbp::Ipxe | BiosNbp::OtherPxe => {
                    "a BIOS PXE boot program, not an EFI binary".to_string()
                }
                BiosNbp::Text => "a text file, not an EFI binary".to_string(),
                _ => e.to_string(),
            };
            return (Verdict::Fail, what, slot_hint.into());
        }
    };
    if pe.machine != want {
        return (
            Verdict::Fail,
            format!(
                "EFI binary for {}, but this slot serves {} firmware",
                pe.machine.name(),
                want.name()
            ),
            slot_hint.into(),
        );
    }
    if pe.subsystem != SUBSYSTEM_EFI_APPLICATION {
        return (
            Verdict::Fail,
            format!(
                "PE subsystem {} is not an EFI application (10): firmware will not boot it",
                pe.subsystem
            ),
            slot_hint.into(),
        );
    }
    if pe.raw_end > len {
        return (
            Verdict::Fail,
            format!(
                "truncated: sections end at byte {}, the file has {len}",
                pe.raw_end
            ),
            "copy the file again".into(),
        );
    }
    (
        Verdict::Ok,
        format!("EFI application for {}", pe.machine.name()),
        String::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header: MZ, e_lfanew = 0x40, COFF with one section, subsystem.
    fn pe(machine: u16, subsystem: u16, section_end: u32) -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3C..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        b[0x44..0x46].copy_from_slice(&machine.to_le_bytes());
        b[0x46..0x48].copy_from_slice(&1u16.to_le_bytes());
        b[0x54..0x56].copy_from_slice(&240u16.to_le_bytes());
        b[0x58..0x5A].copy_from_slice(&0x20Bu16.to_le_bytes());
        let opt = 0x58;
        b[opt + 68..opt + 70].copy_from_slice(&subsystem.to_le_bytes());
        let sec = opt + 240;
        b[sec + 16..sec + 20].copy_from_slice(&(section_end - 0x200).to_le_bytes());
        b[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
        b
    }

    #[test]
    fn pe_machine_subsystem_and_truncation() {
        let x = pe(0x8664, 10, 0x400);
        assert_eq!(
            parse_pe(&x),
            Ok(PeInfo {
                machine: PeMachine::X64,
                subsystem: 10,
                raw_end: 0x400
            })
        );
        assert_eq!(efi_verdict(&x, 0x400, PeMachine::X64).0, Verdict::Ok);
        assert_eq!(efi_verdict(&x, 0x300, PeMachine::X64).0, Verdict::Fail);
        let arm = pe(0xAA64, 10, 0x400);
        let (v, m, _) = efi_verdict(&arm, 0x400, PeMachine::X64);
        assert_eq!(v, Verdict::Fail);
        assert!(m.contains("arm64 (0xAA64)"), "{m}");
        assert_eq!(efi_verdict(&arm, 0x400, PeMachine::Arm64).0, Verdict::Ok);
        let ia32 = pe(0x14c, 10, 0x400);
        assert_eq!(efi_verdict(&ia32, 0x400, PeMachine::X64).0, Verdict::Fail);
        let driver = pe(0x8664, 11, 0x400);
        assert_eq!(efi_verdict(&driver, 0x400, PeMachine::X64).0, Verdict::Fail);
    }

    #[test]
    fn pe_garbage_never_panics() {
        assert_eq!(parse_pe(b""), Err(PeError::NoMz));
        assert_eq!(parse_pe(b"MZ"), Err(PeError::Truncated));
        let mut b = pe(0x8664, 10, 0x400);
        b[0x3C..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_pe(&b), Err(PeError::BadOffset(u32::MAX)));
        let mut b = pe(0x8664, 10, 0x400);
        b[0x46..0x48].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(parse_pe(&b), Err(PeError::Truncated));
        for cut in 0..0x200 {
            let _ = parse_pe(&pe(0x8664, 10, 0x400)[..cut]);
        }
    }

    #[test]
    fn bios_nbp_heuristic() {
        let mut ipxe = IPXE_NBP_JUMP.to_vec();
        ipxe.resize(2048, 0x90);
        ipxe[900..906].copy_from_slice(b"PXENV+");
        ipxe[920..924].copy_from_slice(b"!PXE");
        assert_eq!(classify_bios_nbp(&ipxe), BiosNbp::Ipxe);
        assert_eq!(bios_verdict(&ipxe, 70_000).0, Verdict::Ok);
        assert_eq!(bios_verdict(&ipxe, 100).0, Verdict::Fail);
        assert_eq!(bios_verdict(&ipxe, MAX_BIOS_NBP + 1).0, Verdict::Fail);
        let mut other = ipxe.clone();
        other[0] = 0xFA;
        assert_eq!(classify_bios_nbp(&other), BiosNbp::OtherPxe);
        assert_eq!(bios_verdict(&other, 70_000).0, Verdict::Warn);
        assert_eq!(classify_bios_nbp(&pe(0x8664, 10, 0x400)), BiosNbp::Pe);
        let html = b"<html><body>404 Not Found</body></html>\n".repeat(20);
        assert_eq!(classify_bios_nbp(&html), BiosNbp::Text);
        assert_eq!(bios_verdict(&html, 70_000).0, Verdict::Fail);
        assert_eq!(classify_bios_nbp(&[0x55; 1024]), BiosNbp::Text);
        assert_eq!(classify_bios_nbp(&[0xC3; 1024]), BiosNbp::Unknown);
    }

    #[test]
    fn debian_ipxe_binaries_are_recognised_when_installed() {
        let dir = std::path::Path::new("/usr/lib/ipxe");
        let read = |name: &str| {
            let mut head = Vec::new();
            let f = std::fs::File::open(dir.join(name)).ok()?;
            let len = f.metadata().ok()?.len();
            f.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
            Some((head, len))
        };
        // The ipxe package is a test dependency (tests/run-all.sh installs it).
        let (kpxe, len) = read("undionly.kpxe").expect("ipxe package installed");
        assert_eq!(classify_bios_nbp(&kpxe), BiosNbp::Ipxe);
        assert_eq!(bios_verdict(&kpxe, len).0, Verdict::Ok);
        for efi in ["ipxe.efi", "snponly.efi"] {
            let (head, len) = read(efi).expect("ipxe package installed");
            let v = efi_verdict(&head, len, PeMachine::X64);
            assert_eq!(v.0, Verdict::Ok, "{efi}: {v:?}");
            assert_eq!(efi_verdict(&head, len, PeMachine::Arm64).0, Verdict::Fail);
        }
    }
}
