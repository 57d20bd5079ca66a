//! `[health]`: how running nodes are polled and when they count as unhealthy.

use super::reader::{Ctx, Section};
use super::values::{format_duration, serialize_duration};
use serde::Serialize;
use std::time::Duration;

/// Default health poll interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a running node must fail before it is `unhealthy` (DESIGN: within 60 s).
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Shortest health interval and unhealthy_after.
pub const HEALTH_MIN: Duration = Duration::from_secs(1);
/// Longest health interval.
pub const HEALTH_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Longest unhealthy_after.
pub const UNHEALTHY_AFTER_MAX: Duration = Duration::from_secs(86_400);

/// `[health]`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Poll interval of running nodes.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// How long a node must keep failing before it is `unhealthy`.
    #[serde(serialize_with = "serialize_duration")]
    pub unhealthy_after: Duration,
    /// How often a node waiting for its profile's `ready` checks is checked.
    #[serde(serialize_with = "serialize_duration")]
    pub ready_interval: Duration,
    /// The bound of one readiness check.
    #[serde(serialize_with = "serialize_duration")]
    pub ready_timeout: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            interval: DEFAULT_HEALTH_INTERVAL,
            unhealthy_after: DEFAULT_UNHEALTHY_AFTER,
            ready_interval: crate::ready::DEFAULT_READY_INTERVAL,
            ready_timeout: crate::ready::DEFAULT_READY_TIMEOUT,
        }
    }
}

pub(super) fn read_health(cx: &mut Ctx<'_>, s: &Section<'_>) -> Health {
    s.check_keys(
        cx,
        &[
            "interval",
            "unhealthy_after",
            "ready_interval",
            "ready_timeout",
        ],
    );
    let d = Health::default();
    let interval = s
        .get("interval")
        .and_then(|f| cx.duration(&f, HEALTH_MIN, HEALTH_INTERVAL_MAX))
        .unwrap_or(d.interval);
    let after_field = s.get("unhealthy_after");
    let unhealthy_after = after_field
        .as_ref()
        .and_then(|f| cx.duration(f, HEALTH_MIN, UNHEALTHY_AFTER_MAX))
        .unwrap_or(d.unhealthy_after);
    // A failure is only seen at a poll, so a shorter unhealthy_after could not be kept.
    if unhealthy_after < interval {
        let (at, path) =
            after_field.map_or((s.at, s.key_path("unhealthy_after")), |f| (f.at, f.path));
        cx.error(
            at,
            &path,
            format!(
                "{} is shorter than interval ({}): a failure is only noticed at a poll",
                format_duration(unhealthy_after),
                format_duration(interval)
            ),
        );
    }
    use crate::ready::{READY_INTERVAL_MAX, READY_MIN, READY_TIMEOUT_MAX};
    let ready_interval = s
        .get("ready_interval")
        .and_then(|f| cx.duration(&f, READY_MIN, READY_INTERVAL_MAX))
        .unwrap_or(d.ready_interval);
    let ready_timeout = s
        .get("ready_timeout")
        .and_then(|f| cx.duration(&f, READY_MIN, READY_TIMEOUT_MAX))
        .unwrap_or(d.ready_timeout);
    Health {
        interval,
        unhealthy_after,
        ready_interval,
        ready_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::defaults;

    #[test]
    fn serializes_durations_as_text() {
        let c = defaults();
        let text = toml::to_string(&c.health).unwrap_or_default();
        assert_eq!(
            text,
            "interval = \"30s\"\nunhealthy_after = \"1m\"\nready_interval = \"30s\"\nready_timeout = \"10s\"\n"
        );
    }

    #[test]
    fn file_defaults() {
        let c = defaults();
        assert_eq!(c.health.interval, Duration::from_secs(30));
        assert_eq!(c.health.unhealthy_after, Duration::from_secs(60));
    }
}
