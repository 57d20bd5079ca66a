//! Small typed views over the PXE-related options of a request: 60, 93, 94, 97, 77, 175
//! and 43. Each borrows the option bytes and checks them once; nothing allocates.

use std::fmt;

use super::wire::OptionIter;

/// Client system architecture (RFC 4578 §2.1, IANA "Processor Architecture Types").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Arch(pub u16);

impl Arch {
    /// x86 BIOS.
    pub const BIOS: Arch = Arch(0);
    /// x86 UEFI, 32-bit.
    pub const EFI_IA32: Arch = Arch(6);
    /// x64 UEFI ("EFI BC" in RFC 4578, what OVMF and iPXE send).
    pub const EFI_BC: Arch = Arch(7);
    /// x64 UEFI.
    pub const EFI_X64: Arch = Arch(9);
    /// ARM64 UEFI.
    pub const EFI_ARM64: Arch = Arch(11);
    /// x64 UEFI HTTP boot.
    pub const EFI_X64_HTTP: Arch = Arch(16);
    /// ARM64 UEFI HTTP boot.
    pub const EFI_ARM64_HTTP: Arch = Arch(19);

    /// What we boot on this architecture, if we know it.
    pub fn family(self) -> Option<ArchFamily> {
        match self {
            Arch::BIOS => Some(ArchFamily::Bios),
            Arch::EFI_BC | Arch::EFI_X64 => Some(ArchFamily::X64Efi),
            Arch::EFI_ARM64 => Some(ArchFamily::Arm64Efi),
            Arch::EFI_X64_HTTP => Some(ArchFamily::X64Http),
            Arch::EFI_ARM64_HTTP => Some(ArchFamily::Arm64Http),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family() {
            Some(fam) => f.write_str(fam.name()),
            None => write!(f, "arch {}", self.0),
        }
    }
}

/// The architectures we hand a boot file to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArchFamily {
    /// Legacy BIOS PXE.
    Bios,
    /// x64 UEFI PXE (TFTP).
    X64Efi,
    /// ARM64 UEFI PXE (TFTP).
    Arm64Efi,
    /// x64 UEFI HTTP boot.
    X64Http,
    /// ARM64 UEFI HTTP boot.
    Arm64Http,
}

impl ArchFamily {
    /// Name used in logs and templates (`bios`, `x86_64-efi`, `arm64-efi`).
    pub fn name(self) -> &'static str {
        match self {
            ArchFamily::Bios => "bios",
            ArchFamily::X64Efi => "x86_64-efi",
            ArchFamily::Arm64Efi => "arm64-efi",
            ArchFamily::X64Http => "x86_64-efi-http",
            ArchFamily::Arm64Http => "arm64-efi-http",
        }
    }
}

/// Option 93: one or more 16-bit architecture types, in the client's preference order.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchList<'a>(&'a [u8]);

impl<'a> ArchList<'a> {
    /// A view over option 93; None unless the length is a non-zero multiple of 2.
    pub fn new(value: &'a [u8]) -> Option<Self> {
        (!value.is_empty() && value.len() % 2 == 0).then_some(ArchList(value))
    }
    /// All listed architectures.
    pub fn iter(&self) -> impl Iterator<Item = Arch> + 'a {
        self.0.chunks_exact(2).map(|c| {
            Arch(u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]))
        })
    }
    /// The first architecture we can boot, else the first listed.
    pub fn preferred(&self) -> Option<Arch> {
        self.iter()
            .find(|a| a.family().is_some())
            .or_else(|| self.iter().next())
    }
}

/// What option 60 says the client is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClassKind {
    /// `PXEClient...`: PXE firmware or iPXE.
    Pxe,
    /// `HTTPClient...`: UEFI HTTP boot.
    Http,
    /// Anything else (an OS DHCP client).
    Other,
}

/// Option 60 for PXE/HTTP clients: `PXEClient:Arch:xxxxx:UNDI:yyyzzz` (fields optional).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VendorClass {
    /// PXE, HTTP or other.
    pub kind: ClassKind,
    /// The `Arch:xxxxx` field, when present and numeric.
    pub arch: Option<Arch>,
    /// The `UNDI:yyyzzz` field as (major, minor), when present and numeric.
    pub undi: Option<(u16, u16)>,
}

fn parse_decimal(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
        .and_then(|v| u16::try_from(v).ok())
}

impl VendorClass {
    /// Parses option 60; fields that do not follow the PXE spec are left out.
    pub fn parse(value: &[u8]) -> VendorClass {
        let kind = if value.starts_with(b"PXEClient") {
            ClassKind::Pxe
        } else if value.starts_with(b"HTTPClient") {
            ClassKind::Http
        } else {
            return VendorClass {
                kind: ClassKind::Other,
                arch: None,
                undi: None,
            };
        };
        let mut arch = None;
        let mut undi = None;
        let mut parts = value.split(|b| *b == b':').skip(1);
        while let Some(key) = parts.next() {
            let Some(val) = parts.next() else { break };
            match key {
                b"Arch" => arch = parse_decimal(val).map(Arch),
                b"UNDI" if val.len() == 6 => {
                    let (maj, min) = val.split_at(3);
                    undi = parse_decimal(maj).zip(parse_decimal(min));
                }
                _ => {}
            }
        }
        VendorClass { kind, arch, undi }
    }
}

/// Option 94: client network device interface (type, major, minor).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientNdi {
    /// Interface type (1 = UNDI).
    pub kind: u8,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl ClientNdi {
    /// Parses option 94; exactly three bytes.
    pub fn parse(value: &[u8]) -> Option<ClientNdi> {
        match value {
            &[kind, major, minor] => Some(ClientNdi { kind, major, minor }),
            _ => None,
        }
    }
}

/// Option 97: client machine identifier (type 0 + 16-byte UUID).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientUuid<'a>(&'a [u8]);

impl<'a> ClientUuid<'a> {
    /// Parses option 97; 17 bytes starting with type 0.
    pub fn parse(value: &'a [u8]) -> Option<ClientUuid<'a>> {
        (value.len() == 17 && value.first() == Some(&0)).then_some(ClientUuid(value))
    }
    /// The option value as received (echoed in PXE replies).
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }
    /// The 16 UUID bytes.
    pub fn uuid(&self) -> &'a [u8] {
        self.0.get(1..).unwrap_or(&[])
    }
}

impl fmt::Debug for ClientUuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.uuid().iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Option 77 user class: iPXE sends the bare bytes `iPXE`; RFC 3004 clients send a
/// list of length-prefixed classes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserClass<'a> {
    /// Not RFC 3004 shaped: the raw value (iPXE's `iPXE`).
    Raw(&'a [u8]),
    /// An RFC 3004 list.
    List(&'a [u8]),
}

impl<'a> UserClass<'a> {
    /// Classifies option 77.
    pub fn parse(value: &'a [u8]) -> UserClass<'a> {
        // RFC 3004: each class is a non-zero length byte and that many bytes, exactly
        // filling the option. "iPXE" starts with 'i' (105) and is 4 bytes, so it is Raw.
        let mut rest = value;
        let mut ok = !value.is_empty();
        while let Some((&len, tail)) = rest.split_first() {
            if len == 0 || usize::from(len) > tail.len() {
                ok = false;
                break;
            }
            rest = tail.get(usize::from(len)..).unwrap_or(&[]);
        }
        if ok {
            UserClass::List(value)
        } else {
            UserClass::Raw(value)
        }
    }
    /// Each class in the option.
    pub fn classes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (raw, mut list): (Option<&'a [u8]>, &'a [u8]) = match *self {
            UserClass::Raw(v) => (Some(v), &[]),
            UserClass::List(v) => (None, v),
        };
        raw.into_iter().chain(std::iter::from_fn(move || {
            let (&len, tail) = list.split_first()?;
            let item = tail.get(..usize::from(len))?;
            list = tail.get(usize::from(len)..).unwrap_or(&[]);
            Some(item)
        }))
    }
    /// True when one of the classes is `iPXE`.
    pub fn is_ipxe(&self) -> bool {
        self.classes().any(|c| c == b"iPXE")
    }
}

/// Option 175: iPXE's encapsulated options (feature flags such as 19 = HTTP).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpxeEncap<'a>(&'a [u8]);

impl<'a> IpxeEncap<'a> {
    /// Sub-option: skip waiting for ProxyDHCP offers (sent by us, value 1).
    pub const NO_PXEDHCP: u8 = 176;
    /// Sub-option: the build supports HTTP.
    pub const FEATURE_HTTP: u8 = 19;
    /// Sub-option: the build supports HTTPS.
    pub const FEATURE_HTTPS: u8 = 20;
    /// Sub-option: the build's PXE extension support.
    pub const FEATURE_PXE_EXT: u8 = 16;

    /// A view over option 175.
    pub fn new(value: &'a [u8]) -> IpxeEncap<'a> {
        IpxeEncap(value)
    }
    /// The sub-options.
    pub fn iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.0)
    }
    /// One sub-option's value.
    pub fn get(&self, sub: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == sub).map(|(_, v)| v)
    }
    /// True if the iPXE build says it can fetch over HTTP.
    pub fn has_http(&self) -> bool {
        self.get(Self::FEATURE_HTTP)
            .is_some_and(|v| v.first() != Some(&0))
    }
}

/// PXE vendor sub-options of option 43 (PXE spec 2.1, §2.4).
pub mod pxe43 {
    /// Discovery control bits.
    pub const DISCOVERY_CONTROL: u8 = 6;
    /// Boot servers list.
    pub const BOOT_SERVERS: u8 = 8;
    /// Boot menu.
    pub const BOOT_MENU: u8 = 9;
    /// Menu prompt.
    pub const MENU_PROMPT: u8 = 10;
    /// Selected boot item (type, layer), sent by the client to 4011.
    pub const BOOT_ITEM: u8 = 71;
    /// Disable broadcast discovery.
    pub const DC_NO_BROADCAST: u8 = 1;
    /// Disable multicast discovery.
    pub const DC_NO_MULTICAST: u8 = 2;
    /// Only use servers in the boot server list.
    pub const DC_SERVER_LIST_ONLY: u8 = 4;
    /// If a boot file is present in the offer, download it without discovery.
    pub const DC_USE_BOOTFILE: u8 = 8;
}

/// Option 43 as PXE vendor sub-options.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PxeVendor<'a>(&'a [u8]);

impl<'a> PxeVendor<'a> {
    /// A view over option 43 from a PXE client.
    pub fn new(value: &'a [u8]) -> PxeVendor<'a> {
        PxeVendor(value)
    }
    /// The sub-options.
    pub fn iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.0)
    }
    /// One sub-option's value.
    pub fn get(&self, sub: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == sub).map(|(_, v)| v)
    }
    /// The boot item (type, layer) a client asks a boot server for (sub-option 71).
    pub fn boot_item(&self) -> Option<(u16, u16)> {
        match self.get(pxe43::BOOT_ITEM)? {
            &[a, b, c, d] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_class_fields() {
        let v = VendorClass::parse(b"PXEClient:Arch:00007:UNDI:003016");
        assert_eq!(v.kind, ClassKind::Pxe);
        assert_eq!(v.arch, Some(Arch::EFI_BC));
        assert_eq!(v.undi, Some((3, 16)));
        let h = VendorClass::parse(b"HTTPClient:Arch:00016:UNDI:003001");
        assert_eq!(h.kind, ClassKind::Http);
        assert_eq!(h.arch, Some(Arch::EFI_X64_HTTP));
        let bare = VendorClass::parse(b"PXEClient");
        assert_eq!(
            (bare.kind, bare.arch, bare.undi),
            (ClassKind::Pxe, None, None)
        );
        let junk = VendorClass::parse(b"PXEClient:Arch:9x:UNDI:1");
        assert_eq!((junk.arch, junk.undi), (None, None));
        assert_eq!(VendorClass::parse(b"udhcp 1.36.1").kind, ClassKind::Other);
    }

    #[test]
    fn arch_list_prefers_known() {
        let l = ArchList::new(&[0x00, 0x63, 0x00, 0x07]).map(|l| l.preferred());
        assert_eq!(l, Some(Some(Arch::EFI_BC)));
        assert!(ArchList::new(&[0, 7, 1]).is_none());
        assert!(ArchList::new(&[]).is_none());
        let multi = ArchList::new(&[0, 0, 0, 9]).map(|l| l.iter().count());
        assert_eq!(multi, Some(2));
    }

    #[test]
    fn user_class_raw_and_list() {
        assert_eq!(UserClass::parse(b"iPXE"), UserClass::Raw(b"iPXE"));
        assert!(UserClass::parse(b"iPXE").is_ipxe());
        let list = b"\x04iPXE\x03foo";
        assert!(matches!(UserClass::parse(list), UserClass::List(_)));
        assert!(UserClass::parse(list).is_ipxe());
        assert_eq!(UserClass::parse(list).classes().count(), 2);
        assert!(!UserClass::parse(b"\x03foo").is_ipxe());
        // A list whose length byte overruns is treated as raw, not trusted.
        assert!(matches!(UserClass::parse(b"\x09iPXE"), UserClass::Raw(_)));
    }

    #[test]
    fn ipxe_encap_and_pxe_vendor() {
        let e = IpxeEncap::new(&[19, 1, 1, 17, 1, 1, 235, 3, 1, 21, 1]);
        assert!(e.has_http());
        assert_eq!(e.get(235), Some(&[1, 21, 1][..]));
        let broken = IpxeEncap::new(&[19, 9, 1]);
        assert_eq!(broken.iter().count(), 0);
        let v = PxeVendor::new(&[6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255]);
        assert_eq!(v.get(pxe43::DISCOVERY_CONTROL), Some(&[8][..]));
        assert_eq!(v.boot_item(), Some((0x8000, 0)));
    }

    #[test]
    fn ndi_and_uuid() {
        assert_eq!(
            ClientNdi::parse(&[1, 3, 16]),
            Some(ClientNdi {
                kind: 1,
                major: 3,
                minor: 16
            })
        );
        assert!(ClientNdi::parse(&[1, 3]).is_none());
        let mut raw = [0u8; 17];
        raw[1] = 0xab;
        let u = ClientUuid::parse(&raw);
        assert_eq!(u.map(|u| u.uuid().len()), Some(16));
        assert!(ClientUuid::parse(&raw[..16]).is_none());
    }
}
