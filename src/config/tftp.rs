//! `[tftp]`: listener and the limits granted to clients.

use super::reader::{Ctx, Section};
use super::values::parse_socket_addr;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Production default of `tftp.listen`.
pub const DEFAULT_TFTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 69);
/// `tftp.listen` of the embedded (no file) configuration: unprivileged, loopback only.
pub const EMBEDDED_TFTP_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6969);
/// Smallest TFTP block size a client may negotiate (RFC 2348).
pub const TFTP_BLKSIZE_MIN: u16 = 8;
/// Largest TFTP block size a client may negotiate (RFC 2348).
pub const TFTP_BLKSIZE_MAX: u16 = 65464;
/// Default cap on the negotiated TFTP block size: one Ethernet frame.
pub const DEFAULT_TFTP_BLKSIZE: u16 = 1468;
/// Largest TFTP window size we allow (RFC 7440); more only adds loss bursts.
pub const TFTP_WINDOWSIZE_MAX: u16 = 64;
/// Default cap on the negotiated TFTP window size.
pub const DEFAULT_TFTP_WINDOWSIZE: u16 = 16;
/// Default number of concurrent TFTP transfers (dnsmasq's 50 breaks boot storms; a
/// 5,000-machine storm fits, each session costs a socket and a few KiB).
pub const DEFAULT_TFTP_SESSIONS: usize = 10_000;
/// Upper bound of `tftp.max_sessions` (each session holds a socket).
pub const TFTP_SESSIONS_MAX: usize = 100_000;
/// Default number of concurrent TFTP transfers from one client address.
pub const DEFAULT_TFTP_SESSIONS_PER_CLIENT: usize = 64;

/// `[tftp]`.
#[derive(Debug, Clone, Serialize)]
pub struct Tftp {
    /// Serve TFTP at all.
    pub enabled: bool,
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Largest block size granted to a client.
    pub max_blksize: u16,
    /// Largest window size granted to a client.
    pub max_windowsize: u16,
    /// Concurrent transfers in total.
    pub max_sessions: usize,
    /// Concurrent transfers per client address.
    pub max_sessions_per_client: usize,
}

impl Default for Tftp {
    fn default() -> Self {
        Tftp {
            enabled: true,
            listen: DEFAULT_TFTP_LISTEN,
            max_blksize: DEFAULT_TFTP_BLKSIZE,
            max_windowsize: DEFAULT_TFTP_WINDOWSIZE,
            max_sessions: DEFAULT_TFTP_SESSIONS,
            max_sessions_per_client: DEFAULT_TFTP_SESSIONS_PER_CLIENT,
        }
    }
}

pub(super) fn read_tftp(cx: &mut Ctx<'_>, s: &Section<'_>) -> Tftp {
    s.check_keys(
        cx,
        &[
            "enabled",
            "listen",
            "max_blksize",
            "max_windowsize",
            "max_sessions",
            "max_sessions_per_client",
        ],
    );
    let d = Tftp::default();
    let enabled = s
        .get("enabled")
        .and_then(|f| cx.boolean(&f))
        .unwrap_or(d.enabled);
    let listen = s
        .get("listen")
        .and_then(|f| cx.parsed(&f, parse_socket_addr))
        .unwrap_or(d.listen);
    let max_blksize = s
        .get("max_blksize")
        .and_then(|f| cx.integer(&f, i64::from(TFTP_BLKSIZE_MIN), i64::from(TFTP_BLKSIZE_MAX)))
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(d.max_blksize);
    let max_windowsize = s
        .get("max_windowsize")
        .and_then(|f| cx.integer(&f, 1, i64::from(TFTP_WINDOWSIZE_MAX)))
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(d.max_windowsize);
    let max_sessions = s
        .get("max_sessions")
        .and_then(|f| cx.integer(&f, 1, TFTP_SESSIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_sessions);
    let per_client_field = s.get("max_sessions_per_client");
    let max_sessions_per_client = per_client_field
        .as_ref()
        .and_then(|f| cx.integer(f, 1, TFTP_SESSIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_sessions_per_client);
    if max_sessions_per_client > max_sessions {
        let (at, path) = per_client_field
            .map_or((s.at, s.key_path("max_sessions_per_client")), |f| {
                (f.at, f.path)
            });
        cx.error(
            at,
            &path,
            format!("{max_sessions_per_client} is more than max_sessions ({max_sessions})"),
        );
    }
    Tftp {
        enabled,
        listen,
        max_blksize,
        max_windowsize,
        max_sessions,
        max_sessions_per_client,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::defaults;

    #[test]
    fn file_defaults() {
        let c = defaults();
        assert_eq!(c.tftp.listen.to_string(), "0.0.0.0:69");
        assert_eq!(c.tftp.max_blksize, 1468);
        assert_eq!(c.tftp.max_windowsize, 16);
        assert_eq!(c.tftp.max_sessions, 10_000);
        assert_eq!(c.tftp.max_sessions_per_client, 64);
    }
}
