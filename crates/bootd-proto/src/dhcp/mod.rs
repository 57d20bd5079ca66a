//! DHCPv4 for PXE, without I/O: the borrowed wire view (`wire`), PXE option views
//! (`pxe`), the request summary (`request`), address planning (`lease`), the pure
//! per-packet decision (`decide`) and the reply writer (`reply`).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use crate::mac::MacAddr;

pub mod decide;
#[doc(hidden)]
pub mod fuzz;
pub mod lease;
pub mod pxe;
pub mod rate;
pub mod reply;
pub mod request;
/// Request frames for tests of the crates above (built like real firmware sends them).
#[doc(hidden)]
pub mod testdata;
#[cfg(test)]
mod tests;
pub mod wire;

pub use decide::{decide, BootFile, Context, Decision, IgnoreReason, Port, Reply};
#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use lease::{LeaseAnswer, LeaseTable};
pub use pxe::{Arch, ArchFamily};
pub use request::{MessageType, PxeRequest, RequestError};

/// Which DHCP service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No DHCP at all.
    Off,
    /// ProxyDHCP: boot information only, next to another DHCP server.
    Proxy,
    /// Authoritative DHCP server for the configured pools.
    Full,
}

/// What to do with MACs that bootd does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Answer them and report them (bootd records them as `discovered`).
    Discover,
    /// Stay silent (they are still reported).
    Ignore,
}

/// How a ProxyDHCP offer carries PXE option 43.
///
/// Every proxy offer has option 60 `PXEClient` (or `HTTPClient`), siaddr, the boot file in
/// `file` and option 67, and 43. Default `Minimal`: 43 holds only discovery control = 8
/// ("a boot file is present: download it, no boot server discovery"). iPXE boots from
/// such an offer without a ProxyDHCP request (it needs siaddr + file, `dhcp_has_pxeopts`
/// in `net/udp/dhcp.c`, or a menu); OVMF (edk2 2022.11, checked with QEMU) takes siaddr +
/// file from it directly too. Firmware that still asks port 4011 (edk2 does for offers
/// without a boot file; old ROMs after a menu) gets an ACK with the same file there.
/// `Menu` adds a boot-server list naming us, a one-item menu and a zero-timeout prompt
/// (discovery control 7: unicast to listed servers only), for PXE ROMs that ignore an
/// offer without a menu; they then send a REQUEST with 43.71 to 4011, answered with the
/// file and 43.71 echoed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Option43Strategy {
    /// Discovery control only.
    #[default]
    Minimal,
    /// Discovery control, boot servers, one-item menu, zero-timeout prompt.
    Menu,
}

/// An address pool (full mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Network address.
    pub subnet: Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix: u8,
    /// First and last address handed out, inclusive.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Default gateway (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Lease duration (option 51).
    pub lease_time: Duration,
    /// Domain name (option 15).
    pub domain: Option<String>,
}

impl Pool {
    /// The subnet mask.
    pub fn mask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix.min(32)))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }
    /// True if `ip` is in this pool's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.mask());
        u32::from(ip) & m == u32::from(self.subnet) & m
    }
    /// True if `ip` is in the range handed out.
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        (self.range.0..=self.range.1).contains(&ip)
    }
}

/// The DHCP part of bootd's configuration, validated by the config loader.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Off, Proxy or Full.
    pub mode: Mode,
    /// Interfaces served (empty: all).
    pub interfaces: Vec<String>,
    /// Base URL for HTTP boot and iPXE scripts, without a trailing slash.
    pub public_url: String,
    /// Boot file for BIOS PXE (arch 0).
    pub bios_file: String,
    /// Boot file for x64 UEFI (arch 7, 9; and as URL for 16).
    pub efi_file: String,
    /// Boot file for ARM64 UEFI (arch 11; and as URL for 19).
    pub arm64_file: String,
    /// Unknown MACs: discover or ignore.
    pub unknown: Unknown,
    /// Pools (full mode).
    pub pools: Vec<Pool>,
    /// Send minimal IPv6 router advertisements on the served interfaces.
    pub ipv6_ra: bool,
    /// Option 43 shape in ProxyDHCP replies.
    pub proxy_option43: Option43Strategy,
    /// DHCP server port (67; clients are on port + 1).
    pub port: u16,
    /// PXE boot server port (4011).
    pub pxe_port: u16,
    /// Packets per second accepted from one MAC (burst of the same size).
    pub rate_per_mac: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::Off,
            interfaces: Vec::new(),
            public_url: "http://127.0.0.1:8080".into(),
            bios_file: "undionly.kpxe".into(),
            efi_file: "ipxe.efi".into(),
            arm64_file: "arm64/ipxe.efi".into(),
            unknown: Unknown::Discover,
            pools: Vec::new(),
            ipv6_ra: false,
            proxy_option43: Option43Strategy::Minimal,
            port: 67,
            pxe_port: 4011,
            rate_per_mac: 20,
        }
    }
}

/// What bootd knows about a MAC, with boot-file overrides already merged from the
/// node, its group and its profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBoot {
    /// The MAC is a configured or discovered node.
    pub known: bool,
    /// Reserved address (full mode).
    pub reserved_ip: Option<Ipv4Addr>,
    /// Host name (option 12 in full mode).
    pub hostname: Option<String>,
    /// Override of `Settings::bios_file`.
    pub bios_file: Option<String>,
    /// Override of `Settings::efi_file`.
    pub efi_file: Option<String>,
    /// Override of `Settings::arm64_file`.
    pub arm64_file: Option<String>,
    /// Reserved for Secure Boot chains (shim/GRUB); not used by the decision yet.
    pub loader_grub: bool,
}

/// Where a lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered, not yet requested (kept in memory only).
    Offered,
    /// Acknowledged.
    Bound,
    /// Given back by the client.
    Released,
    /// Declined by the client: the address is quarantined until `expires`.
    Declined,
}

/// One lease as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Client.
    pub mac: MacAddr,
    /// Address.
    pub ip: Ipv4Addr,
    /// End of the lease (or of the quarantine for `Declined`).
    pub expires: SystemTime,
    /// Host name the client sent or the node has.
    pub hostname: Option<String>,
    /// State.
    pub state: LeaseState,
}
