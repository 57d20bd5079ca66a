//! Route paths of the API, one place for the daemon's tables and `bootctl`'s requests.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

pub const HEALTHZ: &str = "/healthz";
pub const STATUS: &str = "/api/v1/status";
pub const NODES: &str = "/api/v1/nodes";
pub const EVENTS: &str = "/api/v1/events";
pub const GROUPS: &str = "/api/v1/groups";
pub const REPROVISION: &str = "/api/v1/reprovision";
pub const RELOAD: &str = "/api/v1/reload";
pub const RELAY: &str = "/api/v1/relay";
pub const RELAY_RETRY: &str = "/api/v1/relay/retry";
pub const RELAY_DROP: &str = "/api/v1/relay/drop";
pub const TOKENS: &str = "/api/v1/tokens";
pub const AUDIT: &str = "/api/v1/audit";
pub const HARDWARE_DISCOVERED: &str = "/api/v1/hardware/discovered";
pub const SESSION: &str = "/api/v1/session";
pub const SESSION_LOGOUT: &str = "/api/v1/session/logout";

/// A path segment as typed, made safe for a URL (bootd parses any MAC spelling).
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// `/api/v1/nodes/{mac}`.
pub fn node(mac: &str) -> String {
    format!("{NODES}/{}", segment(mac))
}

/// `/api/v1/tokens/{name}`.
pub fn token(name: &str) -> String {
    format!("{TOKENS}/{}", segment(name))
}

/// `/api/v1/audit?since=<seconds since the epoch>`.
pub fn audit(since: i64) -> String {
    format!("{AUDIT}?since={since}")
}

/// `/api/v1/nodes/{mac}/phase`.
pub fn node_phase(mac: &str) -> String {
    format!("{}/phase", node(mac))
}

/// `/api/v1/nodes/{mac}/adopt`.
pub fn node_adopt(mac: &str) -> String {
    format!("{}/adopt", node(mac))
}

/// `/api/v1/nodes/{mac}/hardware`.
pub fn node_hardware(mac: &str) -> String {
    format!("{}/hardware", node(mac))
}

/// `/api/v1/groups/{name}/progress`.
pub fn group_progress(name: &str) -> String {
    format!("{GROUPS}/{}/progress", segment(name))
}

/// `/api/v1/events`, `?mac=` or `?group=` (a MAC wins).
pub fn events(mac: Option<&str>, group: Option<&str>) -> String {
    match (mac, group) {
        (Some(m), _) => format!("{EVENTS}?mac={}", segment(m)),
        (None, Some(g)) => format!("{EVENTS}?group={}", segment(g)),
        (None, None) => EVENTS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_what_is_typed() {
        assert_eq!(
            node("52:54:00:aa:00:01"),
            "/api/v1/nodes/52%3A54%3A00%3Aaa%3A00%3A01"
        );
        assert_eq!(node_phase("a b"), "/api/v1/nodes/a%20b/phase");
        assert_eq!(events(None, Some("web")), "/api/v1/events?group=web");
        assert_eq!(events(None, None), EVENTS);
    }
}
