//! TFTP wire format: a borrowed, never-panicking view over request datagrams (RRQ/WRQ
//! with RFC 2347 options), ACK/ERROR parsing, and writers for DATA, OACK and ERROR.

use thiserror::Error;

/// Opcode of a read request (RFC 1350).
pub const OP_RRQ: u16 = 1;
/// Opcode of a write request.
pub const OP_WRQ: u16 = 2;
/// Opcode of a data packet.
pub const OP_DATA: u16 = 3;
/// Opcode of an acknowledgement.
pub const OP_ACK: u16 = 4;
/// Opcode of an error packet.
pub const OP_ERROR: u16 = 5;
/// Opcode of an option acknowledgement (RFC 2347).
pub const OP_OACK: u16 = 6;

/// Most options one request may carry; more is treated as a malformed request.
pub const MAX_OPTIONS: usize = 16;
/// Largest request datagram accepted (RFC 2347 allows requests beyond 512 bytes).
pub const MAX_REQUEST_LEN: usize = 2048;
/// Size of the header in front of DATA payload (opcode + block number).
pub const DATA_HEADER_LEN: usize = 4;

/// TFTP error codes (RFC 1350, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see message.
    Undefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTid = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// Option negotiation refused (RFC 2347); clients use it to end a tsize probe.
    OptionRefused = 8,
}

/// Why a datagram is not a well-formed TFTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer than the 2 bytes of an opcode, or a fixed field cut short.
    #[error("packet truncated: {len} bytes")]
    Truncated {
        /// Length that was received.
        len: usize,
    },
    /// Larger than [`MAX_REQUEST_LEN`].
    #[error("request too long: {len} bytes, at most {MAX_REQUEST_LEN}")]
    TooLong {
        /// Length that was received.
        len: usize,
    },
    /// Opcode outside 1..=6 or not valid where it was received.
    #[error("unexpected opcode {0}")]
    BadOpcode(u16),
    /// A string field lacks its NUL terminator.
    #[error("unterminated string field")]
    Unterminated,
    /// The filename is empty.
    #[error("empty filename")]
    EmptyFilename,
    /// The mode is neither octet nor netascii (mail is obsolete and refused).
    #[error("unsupported transfer mode")]
    BadMode,
    /// An option name came without a value.
    #[error("option without a value")]
    OptionWithoutValue,
    /// More than [`MAX_OPTIONS`] options.
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
}

/// Read or write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// RRQ.
    Read,
    /// WRQ (always refused by this read-only server).
    Write,
}

/// Transfer mode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text with CR LF line ends, CR sent as CR NUL.
    Netascii,
}

/// A borrowed view over an RRQ/WRQ: filename, mode and up to [`MAX_OPTIONS`] options.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    kind: RequestKind,
    filename: &'a [u8],
    mode: Mode,
    options: [(&'a [u8], &'a [u8]); MAX_OPTIONS],
    option_count: usize,
}

impl<'a> Request<'a> {
    /// Parses a request datagram; any byte string gives `Ok` or `Err`, never a panic.
    pub fn parse(buf: &'a [u8]) -> Result<Request<'a>, PacketError> {
        if buf.len() > MAX_REQUEST_LEN {
            return Err(PacketError::TooLong { len: buf.len() });
        }
        let opcode = read_u16(buf, 0).ok_or(PacketError::Truncated { len: buf.len() })?;
        let kind = match opcode {
            OP_RRQ => RequestKind::Read,
            OP_WRQ => RequestKind::Write,
            other => return Err(PacketError::BadOpcode(other)),
        };
        let mut fields = CStrings {
            rest: buf.get(2..).unwrap_or(&[]),
        };
        let filename = fields.next().ok_or(PacketError::Unterminated)??;
        if filename.is_empty() {
            return Err(PacketError::EmptyFilename);
        }
        let mode_raw = fields.next().ok_or(PacketError::Unterminated)??;
        let mode = if mode_raw.eq_ignore_ascii_case(b"octet") {
            Mode::Octet
        } else if mode_raw.eq_ignore_ascii_case(b"netascii") {
            Mode::Netascii
        } else {
            return Err(PacketError::BadMode);
        };
        let mut options: [(&[u8], &[u8]); MAX_OPTIONS] = [(&[], &[]); MAX_OPTIONS];
        let mut option_count = 0;
        while let Some(name) = fields.next() {
            let name = name?;
            let value = match fields.next() {
                Some(v) => v?,
                None => return Err(PacketError::OptionWithoutValue),
            };
            let slot = options
                .get_mut(option_count)
                .ok_or(PacketError::TooManyOptions)?;
            *slot = (name, value);
            option_count += 1;
        }
        Ok(Request {
            kind,
            filename,
            mode,
            options,
            option_count,
        })
    }

    /// RRQ or WRQ.
    pub fn kind(&self) -> RequestKind {
        self.kind
    }

    /// The filename exactly as sent (not yet normalised or checked).
    pub fn filename(&self) -> &'a [u8] {
        self.filename
    }

    /// Octet or netascii.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Options in the order they were sent, names as sent (compare case-insensitively).
    pub fn options(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.options.iter().take(self.option_count).copied()
    }

    /// Value of the first option with this name (ASCII case-insensitive).
    pub fn option(&self, name: &str) -> Option<&'a [u8]> {
        self.options()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// Iterator over NUL-terminated fields; yields `Err` for a trailing unterminated one.
struct CStrings<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for CStrings<'a> {
    type Item = Result<&'a [u8], PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match self.rest.iter().position(|&b| b == 0) {
            Some(end) => {
                let field = self.rest.get(..end).unwrap_or(&[]);
                self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
                Some(Ok(field))
            }
            None => {
                self.rest = &[];
                Some(Err(PacketError::Unterminated))
            }
        }
    }
}

/// A packet a client sends during a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPacket<'a> {
    /// ACK of a block number (0 acknowledges an OACK).
    Ack(u16),
    /// ERROR from the client: the transfer ends.
    Error {
        /// Error code as sent (not necessarily a known one).
        code: u16,
        /// Message bytes without the terminator.
        message: &'a [u8],
    },
}

/// Parses an ACK or ERROR received on a session socket.
pub fn parse_client_packet(buf: &[u8]) -> Result<ClientPacket<'_>, PacketError> {
    let opcode = read_u16(buf, 0).ok_or(PacketError::Truncated { len: buf.len() })?;
    match opcode {
        OP_ACK => {
            let block = read_u16(buf, 2).ok_or(PacketError::Truncated { len: buf.len() })?;
            Ok(ClientPacket::Ack(block))
        }
        OP_ERROR => {
            let code = read_u16(buf, 2).ok_or(PacketError::Truncated { len: buf.len() })?;
            // Clients are lax about the terminator; take the text up to NUL or the end.
            let text = buf.get(4..).unwrap_or(&[]);
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            Ok(ClientPacket::Error {
                code,
                message: text.get(..end).unwrap_or(&[]),
            })
        }
        other => Err(PacketError::BadOpcode(other)),
    }
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Writes a DATA header for `block` into the first 4 bytes of `buf` (which must hold 4).
pub fn write_data_header(buf: &mut [u8], block: u16) {
    if let Some(head) = buf.get_mut(..DATA_HEADER_LEN) {
        head.copy_from_slice(&[0, OP_DATA as u8, (block >> 8) as u8, block as u8]);
    }
}

/// Replaces `out` with an ERROR packet carrying `code` and `message`.
pub fn write_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.clear();
    out.extend_from_slice(&OP_ERROR.to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
}

/// Replaces `out` with an OACK listing `options` as name/decimal-value pairs.
pub fn write_oack<'n>(out: &mut Vec<u8>, options: impl IntoIterator<Item = (&'n str, u64)>) {
    out.clear();
    out.extend_from_slice(&OP_OACK.to_be_bytes());
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        push_decimal(out, value);
        out.push(0);
    }
}

/// Appends `value` in decimal without going through a `String`.
fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut n = value;
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0, 1];
        for f in fields {
            v.extend_from_slice(f);
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_plain_rrq() {
        let buf = rrq(&[b"pxelinux.0", b"octet"]);
        let req = Request::parse(&buf).unwrap();
        assert_eq!(req.kind(), RequestKind::Read);
        assert_eq!(req.filename(), b"pxelinux.0");
        assert_eq!(req.mode(), Mode::Octet);
        assert_eq!(req.options().count(), 0);
    }

    #[test]
    fn parses_options_case_insensitively() {
        let buf = rrq(&[
            b"ipxe.efi",
            b"OCTET",
            b"BlkSize",
            b"1468",
            b"tsize",
            b"0",
            b"windowsize",
            b"16",
        ]);
        let req = Request::parse(&buf).unwrap();
        assert_eq!(req.option("blksize"), Some(&b"1468"[..]));
        assert_eq!(req.option("TSIZE"), Some(&b"0"[..]));
        assert_eq!(req.option("windowsize"), Some(&b"16"[..]));
        assert_eq!(req.option("timeout"), None);
    }

    #[test]
    fn netascii_mode_and_wrq() {
        let mut buf = rrq(&[b"a.txt", b"NetAscii"]);
        buf[1] = 2;
        let req = Request::parse(&buf).unwrap();
        assert_eq!(req.kind(), RequestKind::Write);
        assert_eq!(req.mode(), Mode::Netascii);
    }

    #[test]
    fn rejects_malformed_requests() {
        assert_eq!(
            Request::parse(&[]).unwrap_err(),
            PacketError::Truncated { len: 0 }
        );
        assert_eq!(
            Request::parse(&[0]).unwrap_err(),
            PacketError::Truncated { len: 1 }
        );
        assert_eq!(
            Request::parse(&[0, 3, b'a', 0]).unwrap_err(),
            PacketError::BadOpcode(3)
        );
        assert_eq!(
            Request::parse(&[0, 1]).unwrap_err(),
            PacketError::Unterminated
        );
        assert_eq!(
            Request::parse(&[0, 1, b'a']).unwrap_err(),
            PacketError::Unterminated
        );
        assert_eq!(
            Request::parse(&[0, 1, b'a', 0]).unwrap_err(),
            PacketError::Unterminated
        );
        assert_eq!(
            Request::parse(&rrq(&[b"", b"octet"])).unwrap_err(),
            PacketError::EmptyFilename
        );
        assert_eq!(
            Request::parse(&rrq(&[b"a", b"mail"])).unwrap_err(),
            PacketError::BadMode
        );
        assert_eq!(
            Request::parse(&rrq(&[b"a", b"octet", b"blksize"])).unwrap_err(),
            PacketError::OptionWithoutValue
        );
        let mut unterminated = rrq(&[b"a", b"octet", b"blksize"]);
        unterminated.extend_from_slice(b"1468");
        assert_eq!(
            Request::parse(&unterminated).unwrap_err(),
            PacketError::Unterminated
        );
    }

    #[test]
    fn bounds_option_count_and_length() {
        let mut fields: Vec<&[u8]> = vec![b"a", b"octet"];
        for _ in 0..MAX_OPTIONS {
            fields.push(b"x");
            fields.push(b"1");
        }
        assert!(Request::parse(&rrq(&fields)).is_ok());
        fields.push(b"y");
        fields.push(b"2");
        assert_eq!(
            Request::parse(&rrq(&fields)).unwrap_err(),
            PacketError::TooManyOptions
        );
        let long = vec![b'a'; MAX_REQUEST_LEN];
        let buf = rrq(&[&long, b"octet"]);
        assert!(matches!(
            Request::parse(&buf),
            Err(PacketError::TooLong { .. })
        ));
    }

    #[test]
    fn embedded_nul_ends_the_filename() {
        // "passwd\0../../etc" must not smuggle anything: the second field becomes the mode.
        let buf = rrq(&[b"passwd", b"../../etc", b"octet"]);
        assert_eq!(Request::parse(&buf).unwrap_err(), PacketError::BadMode);
    }

    #[test]
    fn client_packets() {
        assert_eq!(
            parse_client_packet(&[0, 4, 0xff, 0xfe]).unwrap(),
            ClientPacket::Ack(0xfffe)
        );
        assert_eq!(
            parse_client_packet(&[0, 5, 0, 8, b'n', b'o', 0]).unwrap(),
            ClientPacket::Error {
                code: 8,
                message: b"no"
            }
        );
        assert_eq!(
            parse_client_packet(&[0, 5, 0, 1]).unwrap(),
            ClientPacket::Error {
                code: 1,
                message: b""
            }
        );
        assert!(parse_client_packet(&[0, 4, 1]).is_err());
        assert!(parse_client_packet(&[0, 3, 0, 1]).is_err());
        assert!(parse_client_packet(&[]).is_err());
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        write_oack(&mut out, [("blksize", 1468), ("tsize", 0), ("x", u64::MAX)]);
        assert_eq!(
            out,
            b"\0\x06blksize\x001468\0tsize\x000\0x\x0018446744073709551615\0"
        );
        write_error(&mut out, ErrorCode::AccessViolation, "access violation");
        assert_eq!(out, b"\0\x05\0\x02access violation\0");
        let mut data = [0u8; 6];
        write_data_header(&mut data, 0x1234);
        assert_eq!(data, [0, 3, 0x12, 0x34, 0, 0]);
    }
}
