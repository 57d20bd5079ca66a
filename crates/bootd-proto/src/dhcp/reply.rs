//! Writes a decided [`Reply`] as a BOOTREPLY into a reused buffer: header fields, then
//! options in a fixed order, overloading file/sname only when the options do not fit.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::decide::{Boot, BootFile, Reply};
use super::pxe::{pxe43, IpxeEncap};
use super::request::{MessageType, PxeRequest};
use super::wire::{code, write_reply, OptionStage, ReplyHeader, WriteError};
use super::Option43Strategy;

/// Vendor-specific boot server type we announce in the `Menu` strategy (types below
/// 0x8000 are assigned by the PXE spec; 0 means "local boot" to some firmware).
pub const MENU_BOOT_TYPE: u16 = 0x8000;
/// Label of the single menu item and prompt.
pub const MENU_LABEL: &[u8] = b"bootd network boot";

/// A fixed-capacity text buffer for the boot file and server name (no allocation).
pub struct TextBuf {
    buf: [u8; 255],
    len: usize,
}

impl Default for TextBuf {
    fn default() -> Self {
        TextBuf {
            buf: [0; 255],
            len: 0,
        }
    }
}

impl std::fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl TextBuf {
    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    fn set(&mut self, args: std::fmt::Arguments<'_>) -> Result<(), WriteError> {
        self.len = 0;
        self.write_fmt(args)
            .map_err(|_| WriteError::ValueTooLong(code::BOOTFILE))
    }
}

/// Renewal (T1) and rebinding (T2) times as RFC 2131 §4.4.5 suggests: 1/2 and 7/8.
fn renew_rebind(lease: Duration) -> (u32, u32) {
    let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
    (secs / 2, (u64::from(secs) * 7 / 8) as u32)
}

fn put_option43(
    stage: &mut OptionStage,
    strategy: Option43Strategy,
    server: Ipv4Addr,
    item: Option<&[u8]>,
) -> Result<(), WriteError> {
    let mut v = [0u8; 96];
    let mut n = 0usize;
    let mut push = |bytes: &[u8]| {
        if let Some(dst) = v.get_mut(n..n + bytes.len()) {
            dst.copy_from_slice(bytes);
            n += bytes.len();
        }
    };
    match strategy {
        Option43Strategy::Minimal => push(&[pxe43::DISCOVERY_CONTROL, 1, pxe43::DC_USE_BOOTFILE]),
        Option43Strategy::Menu => {
            let dc = pxe43::DC_NO_BROADCAST | pxe43::DC_NO_MULTICAST | pxe43::DC_SERVER_LIST_ONLY;
            push(&[pxe43::DISCOVERY_CONTROL, 1, dc]);
            let [th, tl] = MENU_BOOT_TYPE.to_be_bytes();
            let ip = server.octets();
            push(&[pxe43::BOOT_SERVERS, 7, th, tl, 1]);
            push(&ip);
            let label_len = MENU_LABEL.len() as u8;
            push(&[pxe43::BOOT_MENU, 3 + label_len, th, tl, label_len]);
            push(MENU_LABEL);
            // Prompt timeout 0: pick the only item at once.
            push(&[pxe43::MENU_PROMPT, 1 + label_len, 0]);
            push(MENU_LABEL);
        }
    }
    if let Some(item) = item {
        if item.len() == 4 {
            push(&[pxe43::BOOT_ITEM, 4]);
            push(item);
        }
    }
    push(&[code::END]);
    stage.put(code::VENDOR, v.get(..n).unwrap_or(&[]))
}

/// Scratch state reused across replies.
#[derive(Default)]
pub struct ReplyScratch {
    stage: OptionStage,
    file: TextBuf,
    sname: TextBuf,
}

/// Writes the reply to `req` into `out`; returns the length.
pub fn write(
    out: &mut [u8],
    scratch: &mut ReplyScratch,
    req: &PxeRequest<'_>,
    reply: &Reply<'_>,
) -> Result<usize, WriteError> {
    let ReplyScratch { stage, file, sname } = scratch;
    stage.clear();
    file.len = 0;
    sname.len = 0;
    let nak = reply.msg_type == MessageType::Nak;
    stage.put(code::MESSAGE_TYPE, &[reply.msg_type.to_u8()])?;
    stage.put(code::SERVER_ID, &reply.server_ip.octets())?;
    if let Some(lease) = reply.lease_time {
        let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
        let (t1, t2) = renew_rebind(lease);
        stage.put(code::LEASE_TIME, &secs.to_be_bytes())?;
        stage.put(code::RENEWAL_T1, &t1.to_be_bytes())?;
        stage.put(code::REBINDING_T2, &t2.to_be_bytes())?;
    }
    if let Some(pool) = reply.pool {
        stage.put(code::SUBNET_MASK, &pool.mask().octets())?;
        if let Some(r) = pool.router {
            stage.put(code::ROUTER, &r.octets())?;
        }
        if !pool.dns.is_empty() {
            stage.put_with(code::DNS, |dst| {
                let mut n = 0;
                for (ip, chunk) in pool.dns.iter().zip(dst.chunks_exact_mut(4)) {
                    chunk.copy_from_slice(&ip.octets());
                    n += 4;
                }
                n
            })?;
        }
        if let Some(d) = &pool.domain {
            stage.put(
                code::DOMAIN,
                d.as_bytes().get(..d.len().min(255)).unwrap_or(&[]),
            )?;
        }
    }
    if let Some(h) = reply.hostname {
        if !nak {
            stage.put(
                code::HOSTNAME,
                h.as_bytes().get(..h.len().min(255)).unwrap_or(&[]),
            )?;
        }
    }
    let mut siaddr = Ipv4Addr::UNSPECIFIED;
    if let Some(boot) = &reply.boot {
        siaddr = reply.server_ip;
        write_boot(stage, file, sname, req, reply, boot)?;
    }
    if let Some(m) = reply.message {
        stage.put(
            code::MESSAGE,
            m.as_bytes().get(..m.len().min(255)).unwrap_or(&[]),
        )?;
    }
    // RFC 3046 §2.2: option 82 is echoed, and last.
    if let (Some(info), false) = (req.relay_info, req.giaddr.is_unspecified()) {
        stage.put(code::RELAY_AGENT, info)?;
    }
    let mut flags = req.msg.flags() & 0x8000;
    if nak && !req.giaddr.is_unspecified() {
        // RFC 2131 §4.3.2: a relayed NAK asks the relay to broadcast.
        flags |= 0x8000;
    }
    let hdr = ReplyHeader {
        xid: req.xid,
        flags,
        hops: 0,
        ciaddr: if nak {
            Ipv4Addr::UNSPECIFIED
        } else {
            req.ciaddr
        },
        yiaddr: reply.yiaddr,
        siaddr,
        giaddr: req.giaddr,
        htype: req.msg.htype(),
        hlen: req.msg.hlen(),
        chaddr: req.msg.chaddr_field(),
        file: file.as_bytes(),
        sname: sname.as_bytes(),
    };
    write_reply(out, req.max_reply_len(), &hdr, stage)
}

fn write_boot(
    stage: &mut OptionStage,
    file: &mut TextBuf,
    sname: &mut TextBuf,
    req: &PxeRequest<'_>,
    reply: &Reply<'_>,
    boot: &Boot<'_>,
) -> Result<(), WriteError> {
    file.set(format_args!("{}", boot.file))?;
    if let Some(class) = boot.vendor_class {
        stage.put(code::CLASS_ID, class.as_bytes())?;
    }
    if matches!(boot.file, BootFile::Name(_)) {
        // TFTP: the server name (66) and sname are our address as text.
        sname.set(format_args!("{}", reply.server_ip))?;
        stage.put(code::TFTP_SERVER, sname.as_bytes())?;
    }
    stage.put(code::BOOTFILE, file.as_bytes())?;
    if let Some(strategy) = boot.option43 {
        let item = req.pxe_vendor.and_then(|v| v.get(pxe43::BOOT_ITEM));
        put_option43(stage, strategy, reply.server_ip, item)?;
    }
    if let Some(uuid) = req.uuid {
        stage.put(code::CLIENT_UUID, uuid.raw())?;
    }
    if boot.ipxe_no_proxydhcp {
        stage.put(code::IPXE_ENCAP, &[IpxeEncap::NO_PXEDHCP, 1, 1])?;
    }
    Ok(())
}
