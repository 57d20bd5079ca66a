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
        Phase::HealthValidation
            | Phase::Running
            | Phase::Clustered
            | Phase::Unhealthy
            | Phase::Stopped
    )
}

/// The phase a recovering node returns to: the live phase it left for `unhealthy` or
/// `stopped`, read from its history (oldest first, as `(from, to)` names); `running`
/// when the history does not say (a node that was never live, a trimmed history).
pub fn recovery_phase<'a>(history: impl DoubleEndedIterator<Item = (&'a str, &'a str)>) -> Phase {
    for (from, to) in history.rev() {
        let (from, to) = (Phase::from_stored(from), Phase::from_stored(to));
        if !matches!(to, Phase::Unhealthy | Phase::Stopped) {
            // The newest row is not a fall: the node is not down (or came up since).
            if matches!(to, Phase::Running | Phase::Clustered) {
                return to;
            }
            return Phase::Running;
        }
        if matches!(from, Phase::Running | Phase::Clustered) {
            return from;
        }
        // unhealthy → stopped and back: keep looking further down.
    }
    Phase::Running
}

/// Whether a failed poll of a node in `phase`, failing for `failing_for`, should ask the
/// provider for the machine's power state (only when it matters for the verdict).
pub fn wants_provider(phase: &Phase, failing_for: Duration, unhealthy_after: Duration) -> bool {
    match phase {
        Phase::Unhealthy => true,
        Phase::HealthValidation | Phase::Running | Phase::Clustered => {
            failing_for >= unhealthy_after
        }
        _ => false,
    }
}

/// The phase change after a poll, with its message, if any.
/// `result` is `Err(reason)` for a failed poll; `failing_for` is the time since the last
/// success (or since monitoring began); `provider_stopped` is the provider's power-state
/// text when it reports the machine off; `returns_to` is where a recovering node goes
/// back to ([`recovery_phase`]: `clustered` stays `clustered`).
pub fn decide(
    phase: &Phase,
    result: &Result<(), String>,
    failing_for: Duration,
    unhealthy_after: Duration,
    provider_stopped: Option<&str>,
    returns_to: &Phase,
) -> Option<(Phase, String)> {
    match result {
        Ok(()) => match phase {
            Phase::HealthValidation => Some((Phase::Running, "health check passed".into())),
            Phase::Unhealthy => Some((returns_to.clone(), "health check passes again".into())),
            Phase::Stopped => Some((
                returns_to.clone(),
                "health check passes (powered on)".into(),
            )),
            _ => None,
        },
        Err(reason) => {
            let live = matches!(
                phase,
                Phase::HealthValidation | Phase::Running | Phase::Clustered | Phase::Unhealthy
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
    state_text(body).filter(|s| STOPPED_STATES.contains(&s.as_str()))
}

/// The state in a provider's JSON answer (`state`, else `status`), lower case.
pub fn state_text(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["state", "status"]
        .iter()
        .find_map(|k| Some(v.get(*k)?.as_str()?.to_ascii_lowercase()))
}

/// Order of the early phases: a provider's answer only moves a node forward.
fn early_rank(p: &Phase) -> Option<u8> {
    match p {
        Phase::ServerRequested => Some(0),
        Phase::Pending => Some(1),
        Phase::Starting => Some(2),
        _ => None,
    }
}

/// Whether a node in `phase` is followed through its provider (before its first boot).
pub fn early(phase: &Phase) -> bool {
    early_rank(phase).is_some()
}

/// The early phase a node in `phase` moves to when its provider reports a state that
/// maps to `mapped` (`pending`/`starting`): only forward, never to where it is.
pub fn early_step(phase: &Phase, mapped: &str) -> Option<Phase> {
    let to = match mapped {
        "pending" => Phase::Pending,
        "starting" => Phase::Starting,
        _ => return None,
    };
    (early_rank(&to)? > early_rank(phase)?).then_some(to)
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
                decide(&p, &Ok(()), Duration::ZERO, AFTER, None, &Phase::Running).map(|d| d.0),
                Some(Phase::Running),
                "{p}"
            );
        }
        assert_eq!(
            decide(
                &Phase::Running,
                &Ok(()),
                Duration::ZERO,
                AFTER,
                None,
                &Phase::Running
            ),
            None
        );
    }

    #[test]
    fn failing_becomes_unhealthy_only_after_the_grace_time() {
        let d = |f| {
            decide(
                &Phase::Running,
                &err(),
                Duration::from_secs(f),
                AFTER,
                None,
                &Phase::Running,
            )
        };
        assert_eq!(d(2), None);
        let (to, msg) = d(3).expect("unhealthy");
        assert_eq!(to, Phase::Unhealthy);
        assert_eq!(msg, "GET http://n/status: HTTP 503 (failing for 3 s)");
        assert_eq!(
            decide(
                &Phase::Unhealthy,
                &err(),
                AFTER * 9,
                AFTER,
                None,
                &Phase::Running
            ),
            None
        );
        assert_eq!(
            decide(
                &Phase::Stopped,
                &err(),
                AFTER * 9,
                AFTER,
                None,
                &Phase::Running
            ),
            None
        );
    }

    #[test]
    fn provider_stopped_wins_over_unhealthy() {
        let got = decide(
            &Phase::Unhealthy,
            &err(),
            AFTER,
            AFTER,
            Some("powered_off"),
            &Phase::Running,
        );
        assert_eq!(got.map(|d| d.0), Some(Phase::Stopped));
        let got = decide(
            &Phase::Running,
            &err(),
            AFTER,
            AFTER,
            Some("off"),
            &Phase::Running,
        );
        assert_eq!(got.map(|d| d.0), Some(Phase::Stopped));
        assert!(wants_provider(&Phase::Unhealthy, Duration::ZERO, AFTER));
        assert!(!wants_provider(&Phase::Running, AFTER / 2, AFTER));
        assert!(wants_provider(&Phase::Running, AFTER, AFTER));
    }

    #[test]
    fn clustered_nodes_are_watched_and_recover_to_clustered() {
        assert!(watched(&Phase::Clustered));
        let d = decide(
            &Phase::Clustered,
            &err(),
            AFTER,
            AFTER,
            None,
            &Phase::Clustered,
        );
        assert_eq!(d.map(|d| d.0), Some(Phase::Unhealthy));
        let back = decide(
            &Phase::Unhealthy,
            &Ok(()),
            Duration::ZERO,
            AFTER,
            None,
            &Phase::Clustered,
        );
        assert_eq!(back.map(|d| d.0), Some(Phase::Clustered));
        assert!(wants_provider(&Phase::Clustered, AFTER, AFTER));
    }

    #[test]
    fn recovery_returns_to_the_phase_left() {
        let h = |rows: &[(&'static str, &'static str)]| recovery_phase(rows.iter().copied());
        assert_eq!(
            h(&[("running", "clustered"), ("clustered", "unhealthy")]),
            Phase::Clustered
        );
        assert_eq!(
            h(&[
                ("running", "clustered"),
                ("clustered", "unhealthy"),
                ("unhealthy", "stopped")
            ]),
            Phase::Clustered
        );
        assert_eq!(
            h(&[("health_validation", "running"), ("running", "unhealthy")]),
            Phase::Running
        );
        assert_eq!(h(&[("health_validation", "unhealthy")]), Phase::Running);
        assert_eq!(h(&[]), Phase::Running);
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
    fn provider_states_move_early_phases_forward_only() {
        assert_eq!(
            early_step(&Phase::ServerRequested, "pending"),
            Some(Phase::Pending)
        );
        assert_eq!(
            early_step(&Phase::ServerRequested, "starting"),
            Some(Phase::Starting)
        );
        assert_eq!(
            early_step(&Phase::Pending, "starting"),
            Some(Phase::Starting)
        );
        assert_eq!(early_step(&Phase::Pending, "pending"), None);
        assert_eq!(early_step(&Phase::Starting, "pending"), None);
        assert_eq!(early_step(&Phase::Dhcp, "starting"), None);
        assert_eq!(early_step(&Phase::Pending, "running"), None);
        assert_eq!(
            state_text(br#"{"status":"Powering_On"}"#).as_deref(),
            Some("powering_on")
        );
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
