//! The phase timeline of `node show`: a node's history as stays in phases, with the
//! time spent in each and the last deployment.

use bootd_api::{HistoryEntry, Phase, Source, Timestamp};
use std::time::{Duration, SystemTime};

/// A duration in whole seconds as users read it: `45m`, `1h 2m 3s`.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// One stay in a phase on a node's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub at: Timestamp,
    /// The phase before this visit.
    pub from: Phase,
    pub phase: Phase,
    pub progress: u8,
    /// Time until the next phase (until now for the current one).
    pub spent: Duration,
    pub current: bool,
    pub source: Source,
    pub message: String,
}

/// A node's history (oldest first) as phase visits: repeated rows of one phase (progress
/// callbacks) are one visit, with the last progress and message.
pub fn timeline(history: &[HistoryEntry], now: SystemTime) -> Vec<Visit> {
    let mut visits: Vec<Visit> = Vec::new();
    for row in history {
        match visits.last_mut() {
            Some(v) if v.phase == row.to => {
                v.progress = row.progress;
                v.message = row.message.clone();
            }
            _ => visits.push(Visit {
                at: row.at,
                from: row.from.clone(),
                phase: row.to.clone(),
                progress: row.progress,
                spent: Duration::ZERO,
                current: false,
                source: row.source.clone(),
                message: row.message.clone(),
            }),
        }
    }
    let starts: Vec<Timestamp> = visits.iter().map(|v| v.at).collect();
    let count = visits.len();
    for (i, v) in visits.iter_mut().enumerate() {
        let end = if i + 1 == count {
            v.current = true;
            Timestamp(now)
        } else {
            starts.get(i + 1).copied().unwrap_or(Timestamp(now))
        };
        v.spent = end.since(v.at);
    }
    visits
}

/// The last completed deployment on a timeline: from the visit that began it to the
/// first `running` after it, with the time it took.
pub fn last_deployment(visits: &[Visit]) -> Option<(&Visit, &Visit, Duration)> {
    let end_idx = visits.iter().rposition(|v| v.phase == Phase::Running)?;
    let mut start_idx = None;
    for i in (0..end_idx).rev() {
        let visit = visits.get(i)?;
        if !visit.phase.in_progress() {
            break;
        }
        if Phase::starts_deployment(&visit.from, &visit.phase) {
            start_idx = Some(i);
            break;
        }
    }
    let (start, end) = (visits.get(start_idx?)?, visits.get(end_idx)?);
    Some((start, end, end.at.since(start.at)))
}

/// A duration for tables: `2m 5s`, and `(now)` for the current phase.
pub fn spent_text(v: &Visit) -> String {
    // Boot steps take milliseconds; "0s" would hide them.
    let text = if v.spent < Duration::from_secs(1) {
        format!("{}ms", v.spent.as_millis())
    } else {
        human(v.spent)
    };
    if v.current {
        format!("{text} (now)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_merges_repeats_and_times_each_phase() {
        let row = |at: &str, from: &str, to: &str, progress: u8| HistoryEntry {
            at: Timestamp::parse(at).unwrap(),
            from: Phase::from_stored(from),
            to: Phase::from_stored(to),
            progress,
            message: to.into(),
            source: Source::parse("t"),
        };
        let h = vec![
            row("2026-01-01T10:00:00.000Z", "known", "dhcp", 15),
            row("2026-01-01T10:00:10.000Z", "dhcp", "installing", 30),
            row("2026-01-01T10:01:00.000Z", "installing", "installing", 60),
            row("2026-01-01T10:05:10.000Z", "installing", "running", 100),
        ];
        let now = Timestamp::parse("2026-01-01T10:06:10.000Z").unwrap().0;
        let v = timeline(&h, now);
        let phases: Vec<(String, String)> = v
            .iter()
            .map(|v| (v.phase.to_string(), spent_text(v)))
            .collect();
        let want = [
            ("dhcp", "10s"),
            ("installing", "5m"),
            ("running", "1m (now)"),
        ];
        assert_eq!(phases, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(v[1].progress, 60);
        let (start, end, took) = last_deployment(&v).unwrap();
        assert_eq!((&start.phase, &end.phase), (&Phase::Dhcp, &Phase::Running));
        assert_eq!(took, Duration::from_secs(310));
    }
}
