//! `[http]`: limits of the HTTP server (connections, body size, header timeout).

use super::reader::{shown, Ctx, Field, Section};
use super::values::serialize_duration;
use serde::Serialize;
use std::time::Duration;

/// Default number of concurrent HTTP connections (past it, new ones wait in the listen
/// backlog rather than being refused).
pub const DEFAULT_HTTP_CONNECTIONS: usize = 4096;
/// Upper bound of `http.max_connections`.
pub const HTTP_CONNECTIONS_MAX: usize = 100_000;
/// Default largest request body (hardware reports with lshw output are the big ones).
pub const DEFAULT_BODY_LIMIT: u64 = 8 << 20;
/// Smallest `http.body_limit`.
pub const BODY_LIMIT_MIN: u64 = 1 << 10;
/// Largest `http.body_limit`.
pub const BODY_LIMIT_MAX: u64 = 1 << 30;
/// Default time a client has to send its request headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `http.header_timeout`.
pub const HEADER_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// `[http]`.
#[derive(Debug, Clone, Serialize)]
pub struct Http {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Largest request body in bytes.
    pub body_limit: u64,
    /// Time a client has to send its request headers.
    #[serde(serialize_with = "serialize_duration")]
    pub header_timeout: Duration,
    /// Operator API tokens may use the node, phase and reprovision admin routes over TCP.
    pub operator_api: bool,
    /// `/metrics` answers without a token.
    pub metrics_public: bool,
    /// The read API and the monitoring page answer without a token (a trusted network
    /// only; off by default).
    pub read_public: bool,
    /// Addresses that receive any node's secrets (callback tokens) in scripts and
    /// configs although bootd cannot tie them to the node's MAC: a provisioning proxy,
    /// or the NAT address of a relayed network without leases. Empty by default.
    pub secrets_trusted: Vec<std::net::IpAddr>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            max_connections: DEFAULT_HTTP_CONNECTIONS,
            body_limit: DEFAULT_BODY_LIMIT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            operator_api: false,
            metrics_public: false,
            read_public: false,
            secrets_trusted: Vec::new(),
        }
    }
}

/// Byte sizes: an integer, or a string with a binary unit (`"8MiB"`, `"512KiB"`, `"1G"`).
fn parse_size(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 8] = [
        ("", 1),
        ("B", 1),
        ("K", 1 << 10),
        ("KiB", 1 << 10),
        ("M", 1 << 20),
        ("MiB", 1 << 20),
        ("G", 1 << 30),
        ("GiB", 1 << 30),
    ];
    let bad = || {
        format!(
            "invalid size {:?}: expected a number of bytes or a number with B, KiB, MiB or GiB such as \"8MiB\"",
            shown(s)
        )
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let scale = UNITS
        .iter()
        .find(|(name, _)| *name == unit.trim_start())
        .map(|(_, scale)| *scale)
        .ok_or_else(bad)?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
}

pub(super) fn read_http(cx: &mut Ctx<'_>, s: &Section<'_>) -> Http {
    s.check_keys(
        cx,
        &[
            "max_connections",
            "body_limit",
            "header_timeout",
            "operator_api",
            "metrics_public",
            "read_public",
            "secrets_trusted",
        ],
    );
    let d = Http::default();
    let max_connections = s
        .get("max_connections")
        .and_then(|f| cx.integer(&f, 1, HTTP_CONNECTIONS_MAX as i64))
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(d.max_connections);
    let body_limit = s
        .get("body_limit")
        .and_then(|f| read_body_limit(cx, &f))
        .unwrap_or(d.body_limit);
    let header_timeout = s
        .get("header_timeout")
        .and_then(|f| cx.duration(&f, Duration::from_millis(1), HEADER_TIMEOUT_MAX))
        .unwrap_or(d.header_timeout);
    let flag =
        |cx: &mut Ctx<'_>, key: &str| s.get(key).and_then(|f| cx.boolean(&f)).unwrap_or(false);
    let operator_api = flag(cx, "operator_api");
    let metrics_public = flag(cx, "metrics_public");
    let read_public = flag(cx, "read_public");
    let mut secrets_trusted = Vec::new();
    if let Some(f) = s.get("secrets_trusted") {
        for (text, elem) in cx.strings(&f).unwrap_or_default() {
            match text.parse::<std::net::IpAddr>() {
                Ok(ip) => secrets_trusted.push(ip),
                Err(_) => cx.error(
                    elem.at,
                    &elem.path,
                    format!(
                        "invalid address {:?}: expected an IPv4 or IPv6 address",
                        shown(text)
                    ),
                ),
            }
        }
    }
    Http {
        max_connections,
        body_limit,
        header_timeout,
        operator_api,
        metrics_public,
        read_public,
        secrets_trusted,
    }
}

fn read_body_limit(cx: &mut Ctx<'_>, f: &Field<'_>) -> Option<u64> {
    let bytes = match f.item.as_integer() {
        Some(_) => cx
            .integer(f, 0, i64::MAX)
            .and_then(|v| u64::try_from(v).ok())?,
        None if f.item.as_str().is_some() => cx.parsed(f, parse_size)?,
        None => {
            cx.wrong_type(
                f,
                "a size in bytes (an integer or a string such as \"8MiB\")",
            );
            return None;
        }
    };
    if !(BODY_LIMIT_MIN..=BODY_LIMIT_MAX).contains(&bytes) {
        cx.error(
            f.at,
            &f.path,
            format!("must be between {BODY_LIMIT_MIN} and {BODY_LIMIT_MAX} bytes, found {bytes}"),
        );
        return None;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::defaults;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("8 MB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn file_defaults() {
        let c = defaults();
        assert_eq!(c.http.max_connections, 4096);
        assert_eq!(c.http.body_limit, 8 << 20);
        assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    }
}
