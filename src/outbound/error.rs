//! What can go wrong with one outbound request: the request could not be built, no answer
//! came (refused, reset, TLS, timeout), or the upstream answered with a failure status.

use std::time::Duration;

/// Most bytes of an upstream's answer kept in an error (enough for a JSON `"error"`).
pub const MAX_EXCERPT: usize = 200;

/// A failed outbound request, or a client or key that cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL or a header is not usable in a request.
    #[error("cannot build the request to {url}: {reason}")]
    Request { url: String, reason: String },
    /// No answer: the innermost cause ("Connection refused (os error 111)", a TLS alert).
    #[error("{0}")]
    Transport(String),
    /// Connect, send and answer together took longer than the client's deadline.
    #[error("timed out after {}", fmt_secs(*.0))]
    Timeout(Duration),
    /// The answer's body broke off or was larger than the caller reads.
    #[error("HTTP {status}, reading the body: {reason}")]
    Body { status: u16, reason: String },
    /// The upstream answered, but not with 2xx. The display is the status alone (it is what
    /// `bootctl relay`/`bootctl groups` show); the excerpt goes to the log.
    #[error("HTTP {status}")]
    Status {
        status: u16,
        /// `Retry-After` in whole seconds, when given that way.
        retry_after: Option<u64>,
        /// The start of the answer's body, one line of printable text.
        excerpt: String,
    },
    /// The TLS client cannot be configured.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The `ca_file` cannot be read or holds nothing usable.
    #[error("ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
    /// The `secret_file` cannot be read, is empty or too large.
    #[error("{0}")]
    Secret(String),
}

impl OutboundError {
    /// The upstream's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            OutboundError::Status { status, .. } | OutboundError::Body { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The start of the upstream's answer ("" when there was none).
    pub fn excerpt(&self) -> &str {
        match self {
            OutboundError::Status { excerpt, .. } => excerpt,
            _ => "",
        }
    }
}

/// A duration as an operator reads it: "10 s", "0.3 s".
pub(crate) fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The first `MAX_EXCERPT` bytes of a body as one printable line (cut at a character
/// boundary; control characters, newlines included, become spaces).
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_EXCERPT)]);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // A multi-byte character cut by the limit decodes to U+FFFD; drop it.
    line.trim_end_matches('\u{FFFD}').trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_one_short_line() {
        assert_eq!(
            excerpt(b"{\"error\":\n\"bad event\"}\r\n"),
            "{\"error\": \"bad event\"}"
        );
        assert_eq!(excerpt(b""), "");
        let long = "é".repeat(150);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut, "é".repeat(100));
        let odd = "a".to_string() + &"é".repeat(150);
        assert_eq!(excerpt(odd.as_bytes()), "a".to_string() + &"é".repeat(99));
    }

    #[test]
    fn status_errors_show_the_status_and_keep_the_body() {
        let e = OutboundError::Status {
            status: 500,
            retry_after: None,
            excerpt: "database down".into(),
        };
        assert_eq!(e.to_string(), "HTTP 500");
        assert_eq!((e.status(), e.excerpt()), (Some(500), "database down"));
        assert_eq!(
            OutboundError::Timeout(Duration::from_millis(300)).to_string(),
            "timed out after 0.3 s"
        );
        assert_eq!(
            OutboundError::Timeout(Duration::from_secs(10)).to_string(),
            "timed out after 10 s"
        );
    }
}
