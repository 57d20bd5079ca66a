//! What a health result means for a node's phase: pure functions of the phase, the
//! result, how long the node has been failing and what its provider says.

use crate::nodes::Phase;
use std::time::Duration;

/// Provider states that mean "switched off on purpose", compared case-insensitively.
pub const STOPPED_STATES: &[&str] = &["stopped", "powered_off", "off", "shutdown"];

/// Whether the health monitor looks at nodes in this phase.
pub fn watched(phase: &Phase) -> bool {
    matches!(
        phase,
        Phase::HealthValidation | Phase::Running | Phase::Unhealthy | Phase::Stopped
    )
}

/// Whether a failed poll of a node in `phase`, failing for `failing_for`, should ask the
/// provider for the machine's power state (only when it matters for the verdict).
pub fn wants_provider(phase: &Phase, failing_for: Duration, unhealthy_after: Duration) -> bool {
    match phase {
        Phase::Unhealthy => true,
        Phase::HealthValidation | Phase::Running => failing_for >= unhealthy_after,
        _ => false,
    }
}

/// The phase change after a poll, with its message, if any.
/// `result` is `Err(reason)` for a failed poll; `failing_for` is the time since the last
/// success (or since monitoring began); `provider_stopped` is the provider's power-state
/// text when it reports the machine off.
pub fn decide(
    phase: &Phase,
    result: &Result<(), String>,
    failing_for: Duration,
    unhealthy_after: Duration,
    provider_stopped: Option<&str>,
) -> Option<(Phase, String)> {
    match result {
        Ok(()) => match phase {
            Phase::HealthValidation => Some((Phase::Running, "health check passed".into())),
            Phase::Unhealthy => Some((Phase::Running, "health check passes again".into())),
            Phase::Stopped => Some((Phase::Running, "health check passes (powered on)".into())),
            _ => None,
        },
        Err(reason) => {
            let live = matches!(
                phase,
                Phase::HealthValidation | Phase::Running | Phase::Unhealthy
            );
            if !live {
                return None;
            }
            if let Some(state) = provider_stopped {
                return Some((
                    Phase::Stopped,
                    format!("provider reports the server {state}; health: {reason}"),
                ));
            }
            if *phase != Phase::Unhealthy && failing_for >= unhealthy_after {
                return Some((
                    Phase::Unhealthy,
                    format!("{reason} (failing for {} s)", failing_for.as_secs()),
                ));
            }
            None
        }
    }
}

/// The power state in a provider's JSON answer (`state` or `status`), if it is a stopped one.
pub fn stopped_state(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["state", "status"].iter().find_map(|k| {
        let s = v.get(*k)?.as_str()?;
        let lower = s.to_ascii_lowercase();
        STOPPED_STATES.contains(&lower.as_str()).then_some(lower)
    })
}

/// A stable offset in `[0, interval)` for a node, so polls spread over the interval and a
/// node keeps its slot across restarts (FNV-1a of its MAC).
pub fn offset(mac: &[u8], interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in mac {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let ms = interval.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
    Duration::from_millis(h % ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(3);

    fn err() -> Result<(), String> {
        Err("GET http://n/status: HTTP 503".into())
    }

    #[test]
    fn passing_moves_validation_unhealthy_and_stopped_to_running() {
        for p in [Phase::HealthValidation, Phase::Unhealthy, Phase::Stopped] {
            assert_eq!(
                decide(&p, &Ok(()), Duration::ZERO, AFTER, None).map(|d| d.0),
                Some(Phase::Running),
                "{p}"
            );
        }
        assert_eq!(
            decide(&Phase::Running, &Ok(()), Duration::ZERO, AFTER, None),
            None
        );
    }

    #[test]
    fn failing_becomes_unhealthy_only_after_the_grace_time() {
        let d = |f| decide(&Phase::Running, &err(), Duration::from_secs(f), AFTER, None);
        assert_eq!(d(2), None);
        let (to, msg) = d(3).expect("unhealthy");
        assert_eq!(to, Phase::Unhealthy);
        assert_eq!(msg, "GET http://n/status: HTTP 503 (failing for 3 s)");
        assert_eq!(
            decide(&Phase::Unhealthy, &err(), AFTER * 9, AFTER, None),
            None
        );
        assert_eq!(
            decide(&Phase::Stopped, &err(), AFTER * 9, AFTER, None),
            None
        );
    }

    #[test]
    fn provider_stopped_wins_over_unhealthy() {
        let got = decide(&Phase::Unhealthy, &err(), AFTER, AFTER, Some("powered_off"));
        assert_eq!(got.map(|d| d.0), Some(Phase::Stopped));
        let got = decide(&Phase::Running, &err(), AFTER, AFTER, Some("off"));
        assert_eq!(got.map(|d| d.0), Some(Phase::Stopped));
        assert!(wants_provider(&Phase::Unhealthy, Duration::ZERO, AFTER));
        assert!(!wants_provider(&Phase::Running, AFTER / 2, AFTER));
        assert!(wants_provider(&Phase::Running, AFTER, AFTER));
    }

    #[test]
    fn provider_states_are_read_from_state_or_status() {
        assert_eq!(
            stopped_state(br#"{"state":"STOPPED"}"#).as_deref(),
            Some("stopped")
        );
        assert_eq!(
            stopped_state(br#"{"status":"shutdown"}"#).as_deref(),
            Some("shutdown")
        );
        assert_eq!(stopped_state(br#"{"state":"running"}"#), None);
        assert_eq!(stopped_state(br#"{"state":3}"#), None);
        assert_eq!(stopped_state(b"not json"), None);
    }

    #[test]
    fn offsets_spread_within_the_interval() {
        let interval = Duration::from_secs(30);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..=255u8 {
            let o = offset(&[0x52, 0x54, 0, 0, 1, i], interval);
            assert!(o < interval);
            assert_eq!(o, offset(&[0x52, 0x54, 0, 0, 1, i], interval));
            seen.insert(o.as_secs());
        }
        // 256 nodes over 30 one-second buckets: nearly every second has some.
        assert!(seen.len() >= 25, "{seen:?}");
    }
}
