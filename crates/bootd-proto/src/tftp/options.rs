//! Option negotiation (RFC 2347/2348/2349/7440) as a pure function from a request and
//! the server's limits to the values the transfer uses and the OACK it sends.

use std::time::Duration;

use super::packet::Request;

/// Block size of RFC 1350 when the client does not negotiate one.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// Largest block size RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest timeout (seconds) RFC 2349 allows.
pub const MIN_TIMEOUT_SECS: u64 = 1;
/// Largest timeout (seconds) RFC 2349 allows.
pub const MAX_TIMEOUT_SECS: u64 = 255;
/// Longest decimal option value parsed; longer values are ignored, not overflowed.
const MAX_DIGITS: usize = 20;

/// What a transfer will use after negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Payload bytes per DATA packet.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK (1 = lockstep RFC 1350).
    pub windowsize: u16,
    /// Retransmission interval the client asked for, if it did.
    pub timeout: Option<Duration>,
    /// Transfer size reported in the OACK, if the client asked for it.
    pub tsize: Option<u64>,
    blksize_acked: bool,
    windowsize_acked: bool,
}

impl Negotiated {
    /// Values without any options: RFC 1350 lockstep at 512 bytes.
    pub fn plain() -> Self {
        Negotiated {
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout: None,
            tsize: None,
            blksize_acked: false,
            windowsize_acked: false,
        }
    }

    /// True when at least one option was accepted, so an OACK must be sent first.
    pub fn needs_oack(&self) -> bool {
        self.blksize_acked
            || self.windowsize_acked
            || self.timeout.is_some()
            || self.tsize.is_some()
    }

    /// The accepted options with the values to put in the OACK, in a fixed order.
    pub fn oack_options(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            self.blksize_acked
                .then_some(("blksize", u64::from(self.blksize))),
            self.tsize.map(|t| ("tsize", t)),
            self.timeout.map(|t| ("timeout", t.as_secs())),
            self.windowsize_acked
                .then_some(("windowsize", u64::from(self.windowsize))),
        ]
        .into_iter()
        .flatten()
    }
}

/// Decides the transfer parameters for `req`; `transfer_size` is what tsize reports.
///
/// Out-of-range or unparsable values are ignored (the option is simply not
/// acknowledged) rather than failing the request; too large ones are lowered to the
/// server's cap, which RFC 2348/7440 allow.
pub fn negotiate(
    req: &Request<'_>,
    max_blksize: u16,
    max_windowsize: u16,
    transfer_size: u64,
) -> Negotiated {
    let mut n = Negotiated::plain();
    let blk_cap = max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
    let win_cap = max_windowsize.max(1);
    if let Some(v) = req.option("blksize").and_then(parse_decimal) {
        if v >= u64::from(MIN_BLKSIZE) {
            n.blksize = u16::try_from(v.min(u64::from(blk_cap))).unwrap_or(blk_cap);
            n.blksize_acked = true;
        }
    }
    if let Some(v) = req.option("windowsize").and_then(parse_decimal) {
        if v >= 1 {
            n.windowsize = u16::try_from(v.min(u64::from(win_cap))).unwrap_or(win_cap);
            n.windowsize_acked = true;
        }
    }
    if let Some(v) = req.option("timeout").and_then(parse_decimal) {
        if (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&v) {
            n.timeout = Some(Duration::from_secs(v));
        }
    }
    if req.option("tsize").and_then(parse_decimal).is_some() {
        n.tsize = Some(transfer_size);
    }
    n
}

/// Parses a plain ASCII decimal (no sign, no spaces); `None` for anything else.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > MAX_DIGITS {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req_bytes(opts: &[(&str, &str)]) -> Vec<u8> {
        let mut v = b"\0\x01file\0octet\0".to_vec();
        for (k, val) in opts {
            v.extend_from_slice(k.as_bytes());
            v.push(0);
            v.extend_from_slice(val.as_bytes());
            v.push(0);
        }
        v
    }

    fn neg(opts: &[(&str, &str)]) -> Negotiated {
        let buf = req_bytes(opts);
        let req = Request::parse(&buf).unwrap();
        negotiate(&req, 1468, 16, 12345)
    }

    #[test]
    fn no_options_is_plain_lockstep() {
        let n = neg(&[]);
        assert_eq!(n, Negotiated::plain());
        assert!(!n.needs_oack());
        assert_eq!(n.oack_options().count(), 0);
    }

    #[test]
    fn blksize_is_capped_and_bounded() {
        assert_eq!(neg(&[("blksize", "1024")]).blksize, 1024);
        assert_eq!(neg(&[("blksize", "65464")]).blksize, 1468);
        assert_eq!(neg(&[("blksize", "99999999")]).blksize, 1468);
        assert_eq!(neg(&[("blksize", "8")]).blksize, 8);
        let small = neg(&[("blksize", "7")]);
        assert_eq!(small.blksize, DEFAULT_BLKSIZE);
        assert!(!small.needs_oack());
        assert!(!neg(&[("blksize", "-1")]).needs_oack());
        assert!(!neg(&[("blksize", "1e3")]).needs_oack());
        assert!(!neg(&[("blksize", "")]).needs_oack());
        assert!(!neg(&[("blksize", "123456789012345678901234")]).needs_oack());
    }

    #[test]
    fn server_cap_above_rfc_maximum_is_clamped() {
        let buf = req_bytes(&[("blksize", "65535")]);
        let req = Request::parse(&buf).unwrap();
        assert_eq!(negotiate(&req, u16::MAX, 16, 0).blksize, MAX_BLKSIZE);
        assert_eq!(negotiate(&req, 0, 16, 0).blksize, MIN_BLKSIZE);
    }

    #[test]
    fn windowsize_timeout_tsize() {
        let n = neg(&[
            ("tsize", "0"),
            ("timeout", "3"),
            ("windowsize", "64"),
            ("blksize", "1468"),
        ]);
        assert_eq!(n.windowsize, 16);
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(n.tsize, Some(12345));
        let oack: Vec<_> = n.oack_options().collect();
        assert_eq!(
            oack,
            vec![
                ("blksize", 1468),
                ("tsize", 12345),
                ("timeout", 3),
                ("windowsize", 16)
            ]
        );
        assert_eq!(neg(&[("windowsize", "0")]).windowsize, 1);
        assert!(!neg(&[("windowsize", "0")]).needs_oack());
        assert_eq!(neg(&[("timeout", "0")]).timeout, None);
        assert_eq!(neg(&[("timeout", "256")]).timeout, None);
    }

    #[test]
    fn unknown_options_are_ignored_and_first_duplicate_wins() {
        let n = neg(&[("multicast", ""), ("blksize", "600"), ("blksize", "700")]);
        assert_eq!(n.blksize, 600);
        assert_eq!(n.oack_options().collect::<Vec<_>>(), vec![("blksize", 600)]);
    }

    #[test]
    fn decimal_parser() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b" 1"), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }
}
