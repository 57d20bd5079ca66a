//! The BOOTP/DHCPv4 frame as a borrowed view (read) and a writer into a caller's buffer.
//! Reading never allocates; option overload (52) is followed on read and used on write.

use std::net::Ipv4Addr;

use thiserror::Error;

/// Size of the fixed BOOTP header before the magic cookie.
pub const BOOTP_HEADER_LEN: usize = 236;
/// Offset of the options area (after the magic cookie).
pub const OPTIONS_OFFSET: usize = 240;
/// The DHCP magic cookie (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Largest request we accept: an Ethernet MTU's worth of UDP payload.
pub const MAX_PACKET_LEN: usize = 1500;
/// Most options (pads excluded) we read from one request before calling it hostile.
pub const MAX_OPTIONS: usize = 128;
/// Largest hardware address length BOOTP allows (the chaddr field).
pub const MAX_HLEN: u8 = 16;

const SNAME_RANGE: std::ops::Range<usize> = 44..108;
const FILE_RANGE: std::ops::Range<usize> = 108..236;

/// Option codes this module reads or writes.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const VENDOR: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MSG_SIZE: u8 = 57;
    pub const RENEWAL_T1: u8 = 58;
    pub const REBINDING_T2: u8 = 59;
    pub const CLASS_ID: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_UUID: u8 = 97;
    pub const IPXE_ENCAP: u8 = 175;
    pub const END: u8 = 255;
}

/// Why a frame is not a DHCP request we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Shorter than the fixed header plus cookie.
    #[error("frame of {0} bytes is shorter than the 240-byte BOOTP header")]
    Truncated(usize),
    /// Longer than [`MAX_PACKET_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_PACKET_LEN}-byte bound")]
    Oversize(usize),
    /// Not a BOOTREQUEST.
    #[error("op {0} is not BOOTREQUEST (1)")]
    NotRequest(u8),
    /// hlen beyond the 16-byte chaddr field.
    #[error("hlen {0} exceeds 16")]
    BadHlen(u8),
    /// Cookie missing: plain BOOTP, which we do not serve.
    #[error("magic cookie missing")]
    NoCookie,
    /// An option's length runs past the end of its area.
    #[error("option {code} at offset {at} runs past the end of its area")]
    OptionOverrun { code: u8, at: usize },
    /// More than [`MAX_OPTIONS`] options.
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    /// Option 52 with a value other than 1, 2 or 3.
    #[error("option overload value {0} is not 1, 2 or 3")]
    BadOverload(u8),
}

/// A validated, borrowed view over a DHCP request frame.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    buf: &'a [u8],
    overload: u8,
}

fn ip_at(buf: &[u8], at: usize) -> Ipv4Addr {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Walks one options area and checks every length; returns the overload value seen and
/// the number of options, or the first fault.
fn check_area(area: &[u8], base: usize, count: &mut usize) -> Result<u8, ParseError> {
    let mut overload = 0;
    let mut it = OptionIter::new(area);
    loop {
        let at = it.pos;
        match it.next_checked() {
            Ok(None) => return Ok(overload),
            Ok(Some((c, value))) => {
                *count += 1;
                if *count > MAX_OPTIONS {
                    return Err(ParseError::TooManyOptions);
                }
                if c == code::OVERLOAD {
                    overload = *value.first().unwrap_or(&0);
                }
            }
            Err(code) => {
                return Err(ParseError::OptionOverrun {
                    code,
                    at: base + at,
                })
            }
        }
    }
}

impl<'a> Message<'a> {
    /// Validates lengths once; afterwards every getter reads in place and cannot fail.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, ParseError> {
        if buf.len() > MAX_PACKET_LEN {
            return Err(ParseError::Oversize(buf.len()));
        }
        if buf.len() < OPTIONS_OFFSET {
            return Err(ParseError::Truncated(buf.len()));
        }
        let op = buf.first().copied().unwrap_or(0);
        if op != 1 {
            return Err(ParseError::NotRequest(op));
        }
        let hlen = buf.get(2).copied().unwrap_or(0);
        if hlen > MAX_HLEN {
            return Err(ParseError::BadHlen(hlen));
        }
        if buf.get(BOOTP_HEADER_LEN..OPTIONS_OFFSET) != Some(&MAGIC_COOKIE[..]) {
            return Err(ParseError::NoCookie);
        }
        let mut count = 0;
        let main = buf.get(OPTIONS_OFFSET..).unwrap_or(&[]);
        let overload = check_area(main, OPTIONS_OFFSET, &mut count)?;
        if overload > 3 || (overload == 0 && main.first() == Some(&code::OVERLOAD)) {
            return Err(ParseError::BadOverload(overload));
        }
        if overload & 1 != 0 {
            check_area(
                buf.get(FILE_RANGE).unwrap_or(&[]),
                FILE_RANGE.start,
                &mut count,
            )?;
        }
        if overload & 2 != 0 {
            check_area(
                buf.get(SNAME_RANGE).unwrap_or(&[]),
                SNAME_RANGE.start,
                &mut count,
            )?;
        }
        Ok(Message { buf, overload })
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// Hardware type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.buf.get(1).copied().unwrap_or(0)
    }
    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buf.get(2).copied().unwrap_or(0)
    }
    /// Relay hop count.
    pub fn hops(&self) -> u8 {
        self.buf.get(3).copied().unwrap_or(0)
    }
    /// Transaction id.
    pub fn xid(&self) -> u32 {
        match self.buf.get(4..8) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }
    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        u16_at(self.buf, 8)
    }
    /// Flags (bit 15 = broadcast).
    pub fn flags(&self) -> u16 {
        u16_at(self.buf, 10)
    }
    /// Client address (RENEW/REBIND/INFORM).
    pub fn ciaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 12)
    }
    /// Relay agent address.
    pub fn giaddr(&self) -> Ipv4Addr {
        ip_at(self.buf, 24)
    }
    /// The hardware address, `hlen` bytes of chaddr.
    pub fn chaddr(&self) -> &'a [u8] {
        self.buf
            .get(28..28 + usize::from(self.hlen()))
            .unwrap_or(&[])
    }
    /// The raw 16-byte chaddr field (echoed verbatim in replies).
    pub fn chaddr_field(&self) -> &'a [u8] {
        self.buf.get(28..44).unwrap_or(&[])
    }
    /// The option overload value (0 when absent).
    pub fn overload(&self) -> u8 {
        self.overload
    }
    /// All options: the options area, then file and sname when overloaded (RFC 2131 §4.1).
    pub fn options(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let main = self.buf.get(OPTIONS_OFFSET..).unwrap_or(&[]);
        let file: &[u8] = if self.overload & 1 != 0 {
            self.buf.get(FILE_RANGE).unwrap_or(&[])
        } else {
            &[]
        };
        let sname: &[u8] = if self.overload & 2 != 0 {
            self.buf.get(SNAME_RANGE).unwrap_or(&[])
        } else {
            &[]
        };
        OptionIter::new(main)
            .chain(OptionIter::new(file))
            .chain(OptionIter::new(sname))
    }
    /// The first occurrence of an option.
    pub fn option(&self, wanted: u8) -> Option<&'a [u8]> {
        self.options().find(|(c, _)| *c == wanted).map(|(_, v)| v)
    }
}

/// Iterator over `(code, value)` in one options area; stops at END or at a fault.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    area: &'a [u8],
    pos: usize,
}

impl<'a> OptionIter<'a> {
    /// Iterates over a TLV area (DHCP options, or option 43/175 sub-options).
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter { area, pos: 0 }
    }

    /// Next option, `Ok(None)` at the end, `Err(code)` when a length runs past the area.
    fn next_checked(&mut self) -> Result<Option<(u8, &'a [u8])>, u8> {
        loop {
            let Some(&c) = self.area.get(self.pos) else {
                return Ok(None);
            };
            match c {
                code::PAD => self.pos += 1,
                code::END => {
                    self.pos = self.area.len();
                    return Ok(None);
                }
                _ => {
                    let Some(&len) = self.area.get(self.pos + 1) else {
                        return Err(c);
                    };
                    let start = self.pos + 2;
                    let end = start + usize::from(len);
                    let Some(value) = self.area.get(start..end) else {
                        return Err(c);
                    };
                    self.pos = end;
                    return Ok(Some((c, value)));
                }
            }
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_checked() {
            Ok(item) => item,
            Err(_) => {
                self.pos = self.area.len();
                None
            }
        }
    }
}

/// Why a reply could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WriteError {
    /// The options do not fit even with file and sname overloaded.
    #[error("reply options need more than {0} bytes")]
    NoRoom(usize),
    /// One option value is longer than 255 bytes.
    #[error("option {0} value longer than 255 bytes")]
    ValueTooLong(u8),
}

/// Bytes of scratch for staging options before they are laid out.
pub const OPTION_STAGE_LEN: usize = 1200;

/// Stages options as TLVs in a fixed buffer (no allocation), then lays them out into a
/// reply with overload when the options area is too small.
pub struct OptionStage {
    buf: [u8; OPTION_STAGE_LEN],
    len: usize,
}

impl Default for OptionStage {
    fn default() -> Self {
        OptionStage {
            buf: [0; OPTION_STAGE_LEN],
            len: 0,
        }
    }
}

impl OptionStage {
    /// Empties the stage for the next reply.
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Appends one option.
    pub fn put(&mut self, c: u8, value: &[u8]) -> Result<(), WriteError> {
        let len = u8::try_from(value.len()).map_err(|_| WriteError::ValueTooLong(c))?;
        let end = self.len + 2 + value.len();
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(WriteError::NoRoom(end))?;
        if let Some((head, tail)) = dst.split_first_chunk_mut::<2>() {
            *head = [c, len];
            tail.copy_from_slice(value);
        }
        self.len = end;
        Ok(())
    }
    /// Appends an option whose value is written by `f` into at most 255 bytes.
    pub fn put_with(
        &mut self,
        c: u8,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<(), WriteError> {
        let start = self.len + 2;
        let room = self.buf.len().saturating_sub(start).min(255);
        let dst = self
            .buf
            .get_mut(start..start + room)
            .ok_or(WriteError::NoRoom(start))?;
        let n = f(dst).min(room);
        if let Some(head) = self.buf.get_mut(self.len..start) {
            head.copy_from_slice(&[c, n as u8]);
        }
        self.len = start + n;
        Ok(())
    }
    /// Staged TLVs.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Fixed fields of a reply header.
#[derive(Debug, Clone, Copy)]
pub struct ReplyHeader<'a> {
    pub xid: u32,
    pub flags: u16,
    pub hops: u8,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub htype: u8,
    pub hlen: u8,
    /// The request's 16-byte chaddr field, echoed.
    pub chaddr: &'a [u8],
    /// Boot file for the BOOTP `file` field (written only if it fits with its NUL).
    pub file: &'a [u8],
    /// Server host name for the BOOTP `sname` field (likewise).
    pub sname: &'a [u8],
}

/// Most options a reply stages (bounded so the layout needs no allocation).
pub const MAX_REPLY_OPTIONS: usize = 64;

/// True for options that stay in the options area: the message type and server id so
/// a reader finds them first, and relay info which RFC 3046 wants last.
fn pinned(c: u8) -> bool {
    matches!(c, code::MESSAGE_TYPE | code::SERVER_ID | code::RELAY_AGENT)
}

/// Lays options out over the options area, `file` (overload 1) and `sname` (2), largest
/// first into the first area with room (pinned ones in the options area, in order).
fn layout_overloaded(
    out: &mut [u8],
    max_len: usize,
    tlvs: &[u8],
    overload: u8,
) -> Result<usize, WriteError> {
    let mut items = [(0usize, 0usize, 0u8); MAX_REPLY_OPTIONS];
    let mut n = 0;
    let mut it = OptionIter::new(tlvs);
    loop {
        let start = it.pos;
        let Some((c, _)) = it.next() else { break };
        let slot = items.get_mut(n).ok_or(WriteError::NoRoom(tlvs.len()))?;
        *slot = (start, it.pos, c);
        n += 1;
    }
    let items = items.get_mut(..n).unwrap_or(&mut []);
    // Option 52 (3 bytes) and END (1) take room in the options area.
    let main_start = OPTIONS_OFFSET + 3;
    let main_cap = max_len.saturating_sub(main_start + 1);
    let mut areas: [(usize, usize, usize); 3] = [(main_start, main_cap, 0), (0, 0, 0), (0, 0, 0)];
    if overload & 1 != 0 {
        areas[1] = (FILE_RANGE.start, FILE_RANGE.len() - 1, 0);
    }
    if overload & 2 != 0 {
        areas[2] = (SNAME_RANGE.start, SNAME_RANGE.len() - 1, 0);
    }
    let pinned_len: usize = items
        .iter()
        .filter(|i| pinned(i.2))
        .map(|i| i.1 - i.0)
        .sum();
    if pinned_len > main_cap {
        return Err(WriteError::NoRoom(pinned_len));
    }
    areas[0].1 = main_cap - pinned_len;
    // Pinned options first (53, 54 at the front), 82 is written after the rest.
    let mut main_pos = main_start;
    let copy =
        |out: &mut [u8], at: usize, item: &(usize, usize, u8)| -> Result<usize, WriteError> {
            let src = tlvs.get(item.0..item.1).unwrap_or(&[]);
            let dst = out
                .get_mut(at..at + src.len())
                .ok_or(WriteError::NoRoom(at))?;
            dst.copy_from_slice(src);
            Ok(src.len())
        };
    for item in items
        .iter()
        .filter(|i| pinned(i.2) && i.2 != code::RELAY_AGENT)
    {
        main_pos += copy(out, main_pos, item)?;
    }
    areas[0].0 = main_pos;
    items.sort_by_key(|i| std::cmp::Reverse(i.1 - i.0));
    for item in items.iter().filter(|i| !pinned(i.2)) {
        let size = item.1 - item.0;
        let area = areas
            .iter_mut()
            .find(|a| a.2 + size <= a.1)
            .ok_or(WriteError::NoRoom(tlvs.len() + OPTIONS_OFFSET))?;
        copy(out, area.0 + area.2, item)?;
        area.2 += size;
    }
    let mut end = areas[0].0 + areas[0].2;
    for item in items.iter().filter(|i| i.2 == code::RELAY_AGENT) {
        end += copy(out, end, item)?;
    }
    let last = out.get_mut(end).ok_or(WriteError::NoRoom(end))?;
    *last = code::END;
    for (i, range) in [(1usize, FILE_RANGE), (2, SNAME_RANGE)] {
        if let Some(&(start, cap, used)) = areas.get(i) {
            if cap > 0 {
                if let Some(rest) = out.get_mut(start + used..range.end) {
                    rest.fill(0);
                }
                if let Some(e) = out.get_mut(start + used) {
                    *e = code::END;
                }
            }
        }
    }
    Ok(end + 1)
}

/// Writes a BOOTREPLY into `out` and returns its length. `max_len` is the client's
/// largest acceptable DHCP message (from option 57, or 576 minus IP/UDP headers).
pub fn write_reply(
    out: &mut [u8],
    max_len: usize,
    hdr: &ReplyHeader<'_>,
    options: &OptionStage,
) -> Result<usize, WriteError> {
    let max_len = max_len.min(out.len());
    if max_len < OPTIONS_OFFSET + 4 {
        return Err(WriteError::NoRoom(max_len));
    }
    let head = out
        .get_mut(..OPTIONS_OFFSET)
        .ok_or(WriteError::NoRoom(OPTIONS_OFFSET))?;
    head.fill(0);
    head[0] = 2;
    head[1] = hdr.htype;
    head[2] = hdr.hlen.min(MAX_HLEN);
    head[3] = hdr.hops;
    head[4..8].copy_from_slice(&hdr.xid.to_be_bytes());
    head[10..12].copy_from_slice(&hdr.flags.to_be_bytes());
    head[12..16].copy_from_slice(&hdr.ciaddr.octets());
    head[16..20].copy_from_slice(&hdr.yiaddr.octets());
    head[20..24].copy_from_slice(&hdr.siaddr.octets());
    head[24..28].copy_from_slice(&hdr.giaddr.octets());
    let n = hdr.chaddr.len().min(16);
    head[28..28 + n].copy_from_slice(hdr.chaddr.get(..n).unwrap_or(&[]));
    head[BOOTP_HEADER_LEN..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE);

    let tlvs = options.as_bytes();
    let file_fits = hdr.file.len() < FILE_RANGE.len();
    let sname_fits = hdr.sname.len() < SNAME_RANGE.len();
    // Everything in the options area (room for END).
    if OPTIONS_OFFSET + tlvs.len() < max_len {
        put_field(head, FILE_RANGE, hdr.file, file_fits);
        put_field(head, SNAME_RANGE, hdr.sname, sname_fits);
        return finish_area(out, OPTIONS_OFFSET, tlvs, max_len);
    }
    // Overload sname first (the server name is also in option 66), then file too (the
    // boot file is also in option 67).
    if let Ok(len) = layout_overloaded(out, max_len, tlvs, 2) {
        if let Some(head) = out.get_mut(..OPTIONS_OFFSET) {
            put_field(head, FILE_RANGE, hdr.file, file_fits);
        }
        put_overload(out, 2)?;
        return Ok(len);
    }
    let len = layout_overloaded(out, max_len, tlvs, 3)?;
    put_overload(out, 3)?;
    Ok(len)
}

fn put_overload(out: &mut [u8], value: u8) -> Result<(), WriteError> {
    let area = out
        .get_mut(OPTIONS_OFFSET..OPTIONS_OFFSET + 3)
        .ok_or(WriteError::NoRoom(OPTIONS_OFFSET))?;
    area.copy_from_slice(&[code::OVERLOAD, 1, value]);
    Ok(())
}

fn put_field(head: &mut [u8], range: std::ops::Range<usize>, value: &[u8], fits: bool) {
    if fits {
        if let Some(dst) = head.get_mut(range.start..range.start + value.len()) {
            dst.copy_from_slice(value);
        }
    }
}

fn finish_area(
    out: &mut [u8],
    at: usize,
    tlvs: &[u8],
    max_len: usize,
) -> Result<usize, WriteError> {
    let end = at + tlvs.len();
    if end + 1 > max_len {
        return Err(WriteError::NoRoom(end + 1));
    }
    let dst = out
        .get_mut(at..end + 1)
        .ok_or(WriteError::NoRoom(end + 1))?;
    if let Some((last, body)) = dst.split_last_mut() {
        body.copy_from_slice(tlvs);
        *last = code::END;
    }
    Ok(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(opts: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; OPTIONS_OFFSET];
        f[0] = 1;
        f[1] = 1;
        f[2] = 6;
        f[BOOTP_HEADER_LEN..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE);
        f.extend_from_slice(opts);
        f
    }

    #[test]
    fn bad_frames_are_refused_with_the_reason() {
        let ok = base(&[53, 1, 1, 255]);
        assert!(Message::new_checked(&ok).is_ok());
        assert_eq!(
            Message::new_checked(&ok[..239]).err(),
            Some(ParseError::Truncated(239))
        );
        let mut hlen = ok.clone();
        hlen[2] = 17;
        assert_eq!(
            Message::new_checked(&hlen).err(),
            Some(ParseError::BadHlen(17))
        );
        let mut reply = ok.clone();
        reply[0] = 2;
        assert_eq!(
            Message::new_checked(&reply).err(),
            Some(ParseError::NotRequest(2))
        );
        let mut cookie = ok.clone();
        cookie[236] = 0;
        assert_eq!(
            Message::new_checked(&cookie).err(),
            Some(ParseError::NoCookie)
        );
        let overrun = base(&[53, 1, 1, 60, 9, b'P']);
        assert_eq!(
            Message::new_checked(&overrun).err(),
            Some(ParseError::OptionOverrun { code: 60, at: 243 })
        );
        let no_len = base(&[53, 1, 1, 60]);
        assert!(matches!(
            Message::new_checked(&no_len),
            Err(ParseError::OptionOverrun { code: 60, .. })
        ));
        let many: Vec<u8> = (0..=MAX_OPTIONS).flat_map(|_| [12u8, 1, b'x']).collect();
        assert_eq!(
            Message::new_checked(&base(&many)).err(),
            Some(ParseError::TooManyOptions)
        );
        assert_eq!(
            Message::new_checked(&base(&[52, 1, 7, 255])).err(),
            Some(ParseError::BadOverload(7))
        );
        let mut pads = base(&[]);
        pads.extend(std::iter::repeat_n(0u8, 10_000));
        assert_eq!(
            Message::new_checked(&pads).err(),
            Some(ParseError::Oversize(10_240))
        );
        // Overload into a file field holding garbage.
        let mut garbage = base(&[52, 1, 1, 53, 1, 1, 255]);
        garbage[108] = 60;
        garbage[109] = 200;
        assert!(matches!(
            Message::new_checked(&garbage),
            Err(ParseError::OptionOverrun { code: 60, at: 108 })
        ));
    }

    #[test]
    fn pads_within_bounds_are_skipped() {
        let mut opts = vec![0u8; 1000];
        opts.extend_from_slice(&[53, 1, 1, 255]);
        let f = base(&opts);
        let m = Message::new_checked(&f).unwrap();
        assert_eq!(m.option(code::MESSAGE_TYPE), Some(&[1u8][..]));
        // A missing END is tolerated: the area ends with the frame.
        let open = base(&[53, 1, 3]);
        assert_eq!(
            Message::new_checked(&open).map(|m| m.option(53).map(<[u8]>::to_vec)),
            Ok(Some(vec![3]))
        );
    }

    #[test]
    fn writer_keeps_relay_info_last_when_overloading() {
        let mut stage = OptionStage::default();
        stage.put(code::MESSAGE_TYPE, &[2]).unwrap();
        stage.put(code::RELAY_AGENT, &[1, 2, 3, 4]).unwrap();
        for c in 100..110u8 {
            stage.put(c, &[c; 40]).unwrap();
        }
        let hdr = ReplyHeader {
            xid: 1,
            flags: 0,
            hops: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            htype: 1,
            hlen: 6,
            chaddr: &[0; 16],
            file: b"",
            sname: b"",
        };
        let mut out = [0u8; 1500];
        let n = write_reply(&mut out, 548, &hdr, &stage).unwrap();
        assert!(n <= 548);
        let main: Vec<u8> = OptionIter::new(&out[OPTIONS_OFFSET..n])
            .map(|(c, _)| c)
            .collect();
        assert_eq!(main.first(), Some(&code::OVERLOAD));
        assert_eq!(main.last(), Some(&code::RELAY_AGENT));
        let mut seen: Vec<u8> = main.clone();
        seen.extend(OptionIter::new(&out[FILE_RANGE]).map(|(c, _)| c));
        seen.extend(OptionIter::new(&out[SNAME_RANGE]).map(|(c, _)| c));
        for c in 100..110u8 {
            assert!(seen.contains(&c), "option {c} lost");
        }
        // Too much even for overload is an error, not a truncated reply.
        for c in 110..120u8 {
            stage.put(c, &[c; 40]).unwrap();
        }
        assert!(write_reply(&mut out, 548, &hdr, &stage).is_err());
    }
}
