//! The two stages of a group deployment as a number (0–70 % deployment, 70–100 % cluster
//! formation) and the one-line summaries `reprovision --wait` prints into a pipe.

use bootd_api::{Group, Phase};

/// Where deployment ends and cluster formation begins, in percent.
pub const DEPLOYMENT_SHARE: u8 = 70;

/// Which stage a group is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Deployment,
    ClusterFormation,
}

impl Stage {
    /// The words a line or bar shows.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Deployment => "deployment",
            Stage::ClusterFormation => "cluster formation",
        }
    }
}

/// A group's overall progress and stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupProgress {
    pub percent: u8,
    pub stage: Stage,
}

/// Deployment share from the members' own progress: their mean × 0.7.
pub fn deployment_percent(progress: &[u8]) -> u8 {
    if progress.is_empty() {
        return 0;
    }
    let sum: u64 = progress.iter().map(|p| u64::from((*p).min(100))).sum();
    let mean = sum / progress.len() as u64;
    // mean ≤ 100, so the product fits a u8 after the division.
    u8::try_from(mean * u64::from(DEPLOYMENT_SHARE) / 100).unwrap_or(DEPLOYMENT_SHARE)
}

/// A group's two-stage progress. `reported` is the group's `progress` as the daemon sends
/// it (newer daemons only); without it, a group whose members all run is at 70 % and one
/// whose members are all clustered at 100 %.
pub fn group_progress(members: &[(Phase, u8)], reported: Option<u8>) -> GroupProgress {
    let deploy = deployment_percent(&members.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    let all = |f: fn(&Phase) -> bool| !members.is_empty() && members.iter().all(|(ph, _)| f(ph));
    let live = all(|p| matches!(p, Phase::Running | Phase::Clustered));
    let clustered = all(|p| *p == Phase::Clustered);
    let percent = match reported {
        Some(r) => r.min(100),
        None if clustered => 100,
        None if live => DEPLOYMENT_SHARE,
        None => deploy,
    };
    // A daemon may still report the deployment share while its members are all up.
    let percent = if live {
        percent.max(DEPLOYMENT_SHARE)
    } else {
        percent
    };
    let stage = if percent >= DEPLOYMENT_SHARE && live {
        Stage::ClusterFormation
    } else {
        Stage::Deployment
    };
    GroupProgress { percent, stage }
}

/// [`group_progress`] of a group as `GET /api/v1/groups` shows it.
pub fn of_group(g: &Group) -> GroupProgress {
    let members: Vec<(Phase, u8)> = g
        .nodes
        .iter()
        .map(|n| (n.phase.clone(), n.progress))
        .collect();
    group_progress(&members, g.progress)
}

/// `3 nodes: 1 running, 2 installing (62%)`: nodes counted per phase in deployment order,
/// with the mean progress of phases still under way.
pub fn phase_counts(nodes: &[(Phase, u8)]) -> String {
    let mut phases: Vec<(Phase, usize, u64)> = Vec::new();
    for (phase, progress) in nodes {
        match phases.iter_mut().find(|(p, _, _)| p == phase) {
            Some(row) => {
                row.1 += 1;
                row.2 += u64::from(*progress);
            }
            None => phases.push((phase.clone(), 1, u64::from(*progress))),
        }
    }
    // Furthest phase first: what is done reads before what is still under way.
    phases.sort_by_key(|(p, _, _)| std::cmp::Reverse(order(p)));
    let parts: Vec<String> = phases
        .iter()
        .map(|(p, n, sum)| {
            if p.in_progress() {
                format!("{n} {p} ({}%)", sum / *n as u64)
            } else {
                format!("{n} {p}")
            }
        })
        .collect();
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    format!("{} {noun}: {}", nodes.len(), parts.join(", "))
}

/// Position of a phase in deployment order (custom install phases sit with `installing`).
fn order(p: &Phase) -> usize {
    let name = p.to_string();
    bootd_api::phase::BUILTIN
        .iter()
        .position(|(n, _, _)| *n == name)
        .unwrap_or_else(|| order(&Phase::Installing))
}

/// The wall-clock time of a summary line, `HH:MM:SS` (UTC).
pub fn clock(now: std::time::SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    stamp.get(11..19).unwrap_or(&stamp).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_is_the_mean_times_seven_tenths() {
        assert_eq!(deployment_percent(&[]), 0);
        assert_eq!(deployment_percent(&[100, 100, 100]), 70);
        assert_eq!(deployment_percent(&[30, 30, 90]), 35);
        assert_eq!(deployment_percent(&[200]), 70, "clamped to 100 per node");
    }

    #[test]
    fn group_progress_uses_the_daemon_value_and_works_without_it() {
        let ins = (Phase::Installing, 50);
        let run = (Phase::Running, 100);
        let clu = (Phase::Clustered, 100);
        let p = group_progress(&[ins.clone(), run.clone()], None);
        assert_eq!((p.percent, p.stage), (52, Stage::Deployment));
        let p = group_progress(&[run.clone(), run.clone()], None);
        assert_eq!((p.percent, p.stage), (70, Stage::ClusterFormation));
        let p = group_progress(&[run.clone(), run.clone()], Some(85));
        assert_eq!((p.percent, p.stage), (85, Stage::ClusterFormation));
        let p = group_progress(&[clu.clone(), clu], None);
        assert_eq!(p.percent, 100);
        let p = group_progress(&[run.clone(), run], Some(40));
        assert_eq!(p.percent, 70, "never below 70 once every member runs");
        let p = group_progress(&[ins], Some(20));
        assert_eq!((p.percent, p.stage), (20, Stage::Deployment));
        assert_eq!(group_progress(&[], None).percent, 0);
    }

    #[test]
    fn phase_counts_reads_like_the_seeds_status_line() {
        let nodes = [
            (Phase::Installing, 60),
            (Phase::Running, 100),
            (Phase::Installing, 64),
        ];
        assert_eq!(
            phase_counts(&nodes),
            "3 nodes: 1 running, 2 installing (62%)"
        );
        assert_eq!(phase_counts(&[(Phase::Dhcp, 15)]), "1 node: 1 dhcp (15%)");
    }

    #[test]
    fn clock_is_hours_minutes_seconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(12 * 3600 + 5);
        assert_eq!(clock(t), "12:00:05");
    }
}
