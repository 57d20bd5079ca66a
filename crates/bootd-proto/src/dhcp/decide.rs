//! The decision: from a request summary, the node's boot facts, the settings and the
//! planned lease, what we answer (or why we stay silent). Pure: no I/O, no clock.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::lease::LeaseAnswer;
use super::pxe::{Arch, ArchFamily, ClassKind};
use super::request::{MessageType, PxeRequest};
use super::{Mode, NodeBoot, Option43Strategy, Pool, Settings, Unknown};
use crate::mac::MacAddr;

/// Which of our ports the request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The DHCP server port (67).
    Dhcp,
    /// The PXE boot server port (4011).
    Pxe,
}

/// Facts about where the request arrived, and the planned address answer.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Interface name (for logs and reports).
    pub iface: &'a str,
    /// Our address on that interface: server identifier, siaddr, next-server.
    pub server_ip: Ipv4Addr,
    /// Port it arrived on.
    pub port: Port,
    /// The address part, from [`super::LeaseTable::plan`] (full mode, port 67).
    pub lease: LeaseAnswer,
}

/// The boot file as it is written: no string is built until the reply is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFile<'a> {
    /// A TFTP path relative to the assets root.
    Name(&'a str),
    /// `{base}/assets/{file}` for UEFI HTTP boot.
    AssetUrl { base: &'a str, file: &'a str },
    /// `{base}/boot/{mac}.ipxe` for a client already in iPXE.
    Script { base: &'a str, mac: MacAddr },
}

impl fmt::Display for BootFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootFile::Name(n) => f.write_str(n),
            BootFile::AssetUrl { base, file } => write!(f, "{base}/assets/{file}"),
            BootFile::Script { base, mac } => write!(f, "{base}/boot/{mac}.ipxe"),
        }
    }
}

/// Why the boot file was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootWhy {
    /// By architecture, from the settings.
    Arch(ArchFamily),
    /// By architecture, from the node's override.
    Override(ArchFamily),
    /// The client already runs iPXE: hand it its script.
    Ipxe,
}

impl fmt::Display for BootWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootWhy::Arch(a) => write!(f, "arch {}", a.name()),
            BootWhy::Override(a) => write!(f, "arch {} (node override)", a.name()),
            BootWhy::Ipxe => f.write_str("client runs iPXE"),
        }
    }
}

/// The PXE part of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot<'a> {
    /// Boot file (BOOTP file field and option 67).
    pub file: BootFile<'a>,
    /// Option 60 to send back: `PXEClient`, `HTTPClient`, or none.
    pub vendor_class: Option<&'static str>,
    /// PXE option 43 to send (ProxyDHCP and 4011 replies).
    pub option43: Option<Option43Strategy>,
    /// Send 175.176 = 1 so iPXE does not wait for ProxyDHCP offers.
    pub ipxe_no_proxydhcp: bool,
    /// Why this file.
    pub why: BootWhy,
}

/// Where the reply goes (RFC 2131 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent, `giaddr:67`.
    Relay(Ipv4Addr),
    /// To the client's address, `ciaddr:68`.
    Unicast(Ipv4Addr),
    /// To 255.255.255.255:68 out of the interface.
    Broadcast,
    /// To `yiaddr:68` at chaddr, at link level (client has no address yet).
    Link(Ipv4Addr),
    /// Back to the sender's address and port (port 4011 requests).
    Source,
}

/// A reply to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply<'a> {
    /// OFFER, ACK or NAK.
    pub msg_type: MessageType,
    /// Address assigned (0 in ProxyDHCP, INFORM and NAK).
    pub yiaddr: Ipv4Addr,
    /// Server identifier, siaddr.
    pub server_ip: Ipv4Addr,
    /// Boot information for PXE clients.
    pub boot: Option<Boot<'a>>,
    /// Pool whose options go with the address.
    pub pool: Option<&'a Pool>,
    /// Lease time (options 51/58/59), absent for proxy and INFORM.
    pub lease_time: Option<Duration>,
    /// Host name (option 12) for the client.
    pub hostname: Option<&'a str>,
    /// Where it goes.
    pub dest: Destination,
    /// True for ProxyDHCP and boot-server replies.
    pub proxy: bool,
    /// Text for option 56 in a NAK.
    pub message: Option<&'static str>,
    /// Client architecture, for logs and reports.
    pub arch: Option<Arch>,
}

/// Why no reply goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// DHCP is off.
    ModeOff,
    /// ProxyDHCP answers only PXE/HTTP boot clients.
    NotPxe,
    /// MAC unknown and `unknown = ignore`.
    UnknownMac,
    /// PXE client with an architecture we have no file for.
    UnknownArch(Option<Arch>),
    /// A message for another server (server identifier not ours).
    NotForUs,
    /// Message type we do not answer on this port/mode.
    Unhandled(MessageType),
    /// The address part says nothing goes out.
    Lease(&'static str),
    /// Handled, and RFC 2131 wants no reply (RELEASE, DECLINE, chose another server).
    NoReplyNeeded(&'static str),
}

impl IgnoreReason {
    /// Label for the drop counter.
    pub fn label(&self) -> &'static str {
        match self {
            IgnoreReason::ModeOff => "mode_off",
            IgnoreReason::NotPxe => "not_pxe",
            IgnoreReason::UnknownMac => "unknown_mac",
            IgnoreReason::UnknownArch(_) => "unknown_arch",
            IgnoreReason::NotForUs => "not_for_us",
            IgnoreReason::Unhandled(_) => "unhandled_type",
            IgnoreReason::Lease(_) => "lease",
            IgnoreReason::NoReplyNeeded(_) => "no_reply_needed",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::ModeOff => f.write_str("dhcp mode off"),
            IgnoreReason::NotPxe => f.write_str("not a PXE client"),
            IgnoreReason::UnknownMac => f.write_str("unknown MAC (unknown = ignore)"),
            IgnoreReason::UnknownArch(Some(a)) => write!(f, "no boot file for arch {}", a.0),
            IgnoreReason::UnknownArch(None) => f.write_str("no client architecture"),
            IgnoreReason::NotForUs => f.write_str("for another server"),
            IgnoreReason::Unhandled(t) => write!(f, "{t} not answered here"),
            IgnoreReason::Lease(why) | IgnoreReason::NoReplyNeeded(why) => f.write_str(why),
        }
    }
}

/// The outcome for one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision<'a> {
    /// Send this.
    Reply(Reply<'a>),
    /// Send nothing, for this reason.
    Ignore(IgnoreReason),
}

impl Decision<'_> {
    /// True when the planned lease change must be applied (a reply goes out, or the
    /// request was a RELEASE/DECLINE that wants none).
    pub fn commits_lease(&self) -> bool {
        matches!(
            self,
            Decision::Reply(_) | Decision::Ignore(IgnoreReason::NoReplyNeeded(_))
        )
    }
}

/// The boot file for a PXE/HTTP/iPXE client, or why it gets none.
pub fn boot_for<'a>(
    req: &PxeRequest<'_>,
    node: &'a NodeBoot,
    settings: &'a Settings,
) -> Result<Boot<'a>, IgnoreReason> {
    let base = settings.public_url.trim_end_matches('/');
    let kind = req.class_kind();
    let class = match kind {
        ClassKind::Http => Some("HTTPClient"),
        _ => Some("PXEClient"),
    };
    if req.is_ipxe() {
        return Ok(Boot {
            file: BootFile::Script { base, mac: req.mac },
            vendor_class: class,
            option43: None,
            ipxe_no_proxydhcp: true,
            why: BootWhy::Ipxe,
        });
    }
    // Old PXE ROMs may leave out option 93 and the Arch field: they are BIOS.
    let arch = req.arch.unwrap_or(Arch::BIOS);
    let family = arch.family().ok_or(IgnoreReason::UnknownArch(req.arch))?;
    let pick = |over: &'a Option<String>, default: &'a str| match over {
        Some(f) => (f.as_str(), BootWhy::Override(family)),
        None => (default, BootWhy::Arch(family)),
    };
    let (file, why, http) = match family {
        ArchFamily::Bios => tuple(pick(&node.bios_file, &settings.bios_file), false),
        ArchFamily::X64Efi => tuple(pick(&node.efi_file, &settings.efi_file), false),
        ArchFamily::Arm64Efi => tuple(pick(&node.arm64_file, &settings.arm64_file), false),
        ArchFamily::X64Http => tuple(pick(&node.efi_file, &settings.efi_file), true),
        ArchFamily::Arm64Http => tuple(pick(&node.arm64_file, &settings.arm64_file), true),
    };
    Ok(Boot {
        file: if http {
            BootFile::AssetUrl { base, file }
        } else {
            BootFile::Name(file)
        },
        // HTTP boot firmware only accepts an offer that says HTTPClient.
        vendor_class: if http { Some("HTTPClient") } else { class },
        option43: None,
        ipxe_no_proxydhcp: false,
        why,
    })
}

fn tuple((file, why): (&str, BootWhy), http: bool) -> (&str, BootWhy, bool) {
    (file, why, http)
}

/// RFC 2131 §4.1 destination for a reply from port 67.
fn destination(req: &PxeRequest<'_>, msg_type: MessageType, yiaddr: Ipv4Addr) -> Destination {
    if !req.giaddr.is_unspecified() {
        return Destination::Relay(req.giaddr);
    }
    if msg_type == MessageType::Nak {
        return Destination::Broadcast;
    }
    if !req.ciaddr.is_unspecified() {
        return Destination::Unicast(req.ciaddr);
    }
    if req.broadcast || yiaddr.is_unspecified() {
        return Destination::Broadcast;
    }
    Destination::Link(yiaddr)
}

/// Decides the answer to one request. Pure.
pub fn decide<'a>(
    req: &PxeRequest<'_>,
    node: &'a NodeBoot,
    settings: &'a Settings,
    ctx: &Context<'_>,
) -> Decision<'a> {
    use Decision::Ignore;
    if settings.mode == Mode::Off {
        return Ignore(IgnoreReason::ModeOff);
    }
    if !node.known && settings.unknown == Unknown::Ignore {
        return Ignore(IgnoreReason::UnknownMac);
    }
    let proxy_reply = |msg_type: MessageType, dest: Destination| -> Decision<'a> {
        if !req.is_pxe() && !req.is_ipxe() {
            return Ignore(IgnoreReason::NotPxe);
        }
        match boot_for(req, node, settings) {
            Ok(mut boot) => {
                if boot.why != BootWhy::Ipxe {
                    boot.option43 = Some(settings.proxy_option43);
                }
                Decision::Reply(Reply {
                    msg_type,
                    yiaddr: Ipv4Addr::UNSPECIFIED,
                    server_ip: ctx.server_ip,
                    boot: Some(boot),
                    pool: None,
                    lease_time: None,
                    hostname: None,
                    dest,
                    proxy: true,
                    message: None,
                    arch: req.arch,
                })
            }
            Err(why) => Ignore(why),
        }
    };
    if ctx.port == Port::Pxe {
        // Boot server requests (UEFI after a proxy offer, PXE menus, iPXE ProxyDHCP).
        return match req.msg_type {
            MessageType::Request | MessageType::Inform => {
                proxy_reply(MessageType::Ack, Destination::Source)
            }
            t => Ignore(IgnoreReason::Unhandled(t)),
        };
    }
    match settings.mode {
        Mode::Off => Ignore(IgnoreReason::ModeOff),
        Mode::Proxy => match req.msg_type {
            MessageType::Discover => proxy_reply(
                MessageType::Offer,
                destination(req, MessageType::Offer, Ipv4Addr::UNSPECIFIED),
            ),
            // A REQUEST naming us as server (some ROMs send it to 67 instead of 4011).
            // One that asks for an address (option 50) selects a DHCP server's lease: a
            // DHCP server on this same host shares our server id, and answering it with
            // yiaddr 0 makes the client decline its address.
            MessageType::Request
                if req.server_id == Some(ctx.server_ip) && req.requested_ip.is_none() =>
            {
                proxy_reply(
                    MessageType::Ack,
                    destination(req, MessageType::Ack, Ipv4Addr::UNSPECIFIED),
                )
            }
            MessageType::Request => Ignore(IgnoreReason::NotForUs),
            t => Ignore(IgnoreReason::Unhandled(t)),
        },
        Mode::Full => decide_full(req, node, settings, ctx),
    }
}

fn decide_full<'a>(
    req: &PxeRequest<'_>,
    node: &'a NodeBoot,
    settings: &'a Settings,
    ctx: &Context<'_>,
) -> Decision<'a> {
    let (msg_type, yiaddr, pool, with_lease) = match ctx.lease {
        LeaseAnswer::Offer { ip, pool } => (MessageType::Offer, ip, Some(pool), true),
        LeaseAnswer::Ack { ip, pool } => (MessageType::Ack, ip, Some(pool), true),
        LeaseAnswer::Inform { pool } => (MessageType::Ack, Ipv4Addr::UNSPECIFIED, pool, false),
        LeaseAnswer::Nak(why) => {
            return Decision::Reply(Reply {
                msg_type: MessageType::Nak,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                server_ip: ctx.server_ip,
                boot: None,
                pool: None,
                lease_time: None,
                hostname: None,
                dest: destination(req, MessageType::Nak, Ipv4Addr::UNSPECIFIED),
                proxy: false,
                message: Some(why),
                arch: req.arch,
            })
        }
        LeaseAnswer::Release { .. } => {
            return Decision::Ignore(IgnoreReason::NoReplyNeeded("released"))
        }
        LeaseAnswer::Decline { .. } => {
            return Decision::Ignore(IgnoreReason::NoReplyNeeded("declined"))
        }
        LeaseAnswer::Forget => {
            return Decision::Ignore(IgnoreReason::NoReplyNeeded("client chose another server"))
        }
        LeaseAnswer::Silent(why) => return Decision::Ignore(IgnoreReason::Lease(why)),
        LeaseAnswer::None => return Decision::Ignore(IgnoreReason::Unhandled(req.msg_type)),
    };
    // A PXE client of an unknown architecture still gets its address.
    let boot = if req.is_pxe() || req.is_ipxe() {
        boot_for(req, node, settings).ok().map(|mut b| {
            // As the address server we are not a ProxyDHCP: option 60 is only needed
            // for HTTP boot; PXEClient would send OVMF to port 4011 for nothing.
            if b.vendor_class == Some("PXEClient") {
                b.vendor_class = None;
            }
            b
        })
    } else {
        None
    };
    let pool = pool.and_then(|i| settings.pools.get(i));
    Decision::Reply(Reply {
        msg_type,
        yiaddr,
        server_ip: ctx.server_ip,
        boot,
        pool,
        lease_time: if with_lease {
            pool.map(|p| p.lease_time)
        } else {
            None
        },
        hostname: node.hostname.as_deref(),
        // INFORM: ciaddr set, so this is a unicast to it (or to the relay).
        dest: destination(req, msg_type, yiaddr),
        proxy: false,
        message: None,
        arch: req.arch,
    })
}
