//! Reprovisioning: for each chosen node a new callback token, a one-shot install profile,
//! `server_requested` (operator), and the profile's power-cycle hook if it has one.

use super::hook;
use crate::app::App;
use crate::mac::MacAddr;
use crate::nodes::{Applied, NodePatch, Phase, PhaseRequest, RegistryError};
use bootd_api::{PowerCycle, ReprovisionAnswer, Reprovisioned};
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Power-cycle hooks called at once.
const MAX_PARALLEL_POWER: usize = 32;

/// The body of `POST /api/v1/reprovision`: exactly one of `macs`, `group`, `all`.
pub use bootd_api::ReprovisionRequest as Request;

/// Why a reprovision was refused before any node changed, or failed on the way.
#[derive(Debug, thiserror::Error)]
pub enum ReprovisionError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no node with MAC {0}")]
    NotFound(MacAddr),
    #[error("{mac}: {source}")]
    Registry { mac: MacAddr, source: RegistryError },
}

/// The nodes a request names, checked before anything changes.
fn chosen(app: &App, req: &Request) -> Result<Vec<MacAddr>, ReprovisionError> {
    let given =
        usize::from(!req.macs.is_empty()) + usize::from(req.group.is_some()) + usize::from(req.all);
    if given != 1 {
        return Err(ReprovisionError::BadRequest(
            "give exactly one of \"macs\", \"group\" and \"all\": true".into(),
        ));
    }
    let cfg = app.config();
    if let Some(p) = &req.profile {
        if !cfg.profiles.contains_key(p) {
            return Err(ReprovisionError::BadRequest(format!(
                "profile: no profile named {p:?}"
            )));
        }
    }
    let nodes = app.registry.list();
    let mut macs = Vec::new();
    if let Some(g) = &req.group {
        macs.extend(
            nodes
                .iter()
                .filter(|n| n.group.as_deref() == Some(g.as_str()))
                .map(|n| n.mac),
        );
        if macs.is_empty() {
            return Err(ReprovisionError::BadRequest(format!(
                "group {g:?} has no nodes"
            )));
        }
    } else if req.all {
        macs.extend(nodes.iter().map(|n| n.mac));
    } else {
        for text in &req.macs {
            let mac: MacAddr = text
                .parse()
                .map_err(|e| ReprovisionError::BadRequest(format!("{e}")))?;
            if !nodes.iter().any(|n| n.mac == mac) {
                return Err(ReprovisionError::NotFound(mac));
            }
            if !macs.contains(&mac) {
                macs.push(mac);
            }
        }
    }
    Ok(macs)
}

/// Reprovisions the nodes a request names; `operator` is `operator:<uid>`. The answer
/// lists each node after the change and what its power-cycle hook said.
pub async fn run(
    app: &App,
    req: Request,
    operator: &str,
) -> Result<ReprovisionAnswer, ReprovisionError> {
    let macs = chosen(app, &req)?;
    let cfg = app.config();
    let mut done = Vec::with_capacity(macs.len());
    let mut power = Vec::new();
    for mac in macs {
        let Some(node) = app.registry.get(mac) else {
            continue; // removed meanwhile
        };
        let profile = req
            .profile
            .clone()
            .unwrap_or_else(|| app.registry.effective_profile(&node).name);
        let registry = |source| ReprovisionError::Registry { mac, source };
        let generation = app.registry.rotate_token(mac).await.map_err(registry)?;
        let patch = NodePatch {
            next_boot: Some(profile.clone()),
            ..NodePatch::default()
        };
        app.registry.set(mac, &patch).await.map_err(registry)?;
        let change = PhaseRequest {
            to: Phase::ServerRequested,
            progress: Some(Phase::ServerRequested.default_progress().unwrap_or(0)),
            message: format!("{REPROVISION_MESSAGE}{profile}"),
            source: operator.to_string(),
            force: true,
        };
        let applied = app
            .registry
            .transition(mac, change)
            .await
            .map_err(registry)?;
        let started = match &applied {
            Applied::Changed(ev) => ev.at.clone(),
            Applied::Unchanged => crate::store::now_rfc3339(),
        };
        app.lifecycle.note_reprovision(mac, started);
        tracing::info!(%mac, %operator, %profile, token_generation = generation,
            changed = matches!(applied, Applied::Changed(_)), "reprovision");
        let after = app.registry.get(mac).unwrap_or(node);
        if let Some(url) = cfg
            .profiles
            .get(&profile)
            .and_then(|p| p.power_cycle.clone())
        {
            power.push((
                mac,
                url,
                json!({
                    "mac": after.mac,
                    "hostname": after.hostname,
                    "provider_id": after.provider_id,
                    "profile": profile,
                }),
            ));
        }
        done.push((mac, profile, generation, after));
    }
    let mut outcomes = power_cycle(&cfg, power).await;
    let nodes = done
        .into_iter()
        .map(|(mac, profile, generation, n)| Reprovisioned {
            timeout_secs: cfg
                .profiles
                .get(&profile)
                .and_then(|p| p.timeout)
                .map(|t| t.as_secs()),
            mac,
            hostname: n.hostname,
            profile,
            token_generation: generation,
            phase: n.phase,
            progress: n.progress,
            seq: n.seq,
            power_cycle: outcomes.remove(&mac).unwrap_or(PowerCycle::NotConfigured),
        })
        .collect();
    Ok(ReprovisionAnswer {
        operator: operator.to_string(),
        nodes,
    })
}

/// The message a reprovision's `server_requested` row starts with.
const REPROVISION_MESSAGE: &str = "reprovision with profile ";

/// Where a node stands in its last reprovision, from its phase: `in_progress`,
/// `completed` (running), `clustered`, `timeout` or `error` (failed, or down before it
/// ever ran).
pub fn status(phase: &Phase) -> &'static str {
    match phase {
        Phase::Clustered => "clustered",
        Phase::Running => "completed",
        Phase::Timeout => "timeout",
        Phase::Failed | Phase::Unhealthy | Phase::Stopped => "error",
        _ => "in_progress",
    }
}

/// When the last reprovision of a node began, from its history (oldest first): the
/// newest operator `server_requested` row written by a reprovision.
pub fn started_in(history: &[crate::store::HistoryRow]) -> Option<String> {
    history
        .iter()
        .rev()
        .find(|h| {
            h.to == Phase::ServerRequested.name()
                && h.source.starts_with("operator")
                && h.message.starts_with(REPROVISION_MESSAGE)
        })
        .map(|h| h.at.clone())
}

/// Calls each power-cycle hook once (a machine must not be cycled twice by a retry);
/// the outcome per MAC: `{"status": "ok", "http": 200}` or `{"status": "failed", "error"}`.
async fn power_cycle(
    cfg: &crate::config::Config,
    calls: Vec<(MacAddr, String, Value)>,
) -> std::collections::HashMap<MacAddr, PowerCycle> {
    let mut out = std::collections::HashMap::new();
    if calls.is_empty() {
        return out;
    }
    let client = match hook::client() {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            for (mac, _, _) in calls {
                out.insert(
                    mac,
                    PowerCycle::Failed {
                        error: e.to_string(),
                    },
                );
            }
            return out;
        }
    };
    let secret = hook::secret(cfg);
    let mut tasks = JoinSet::new();
    let mut queue = calls.into_iter();
    loop {
        while tasks.len() < MAX_PARALLEL_POWER {
            let Some((mac, url, body)) = queue.next() else {
                break;
            };
            let (client, secret) = (client.clone(), secret.clone());
            tasks.spawn(async move {
                let r = hook::post(&client, &url, secret.as_ref(), "power_cycle", &body).await;
                (mac, url, r)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let Ok((mac, url, r)) = joined else {
            continue;
        };
        let v = match r {
            Ok(http) => PowerCycle::Ok { http },
            Err(e) => {
                tracing::warn!(%mac, %url, answer = e.excerpt(), "power cycle failed: {e}");
                PowerCycle::Failed {
                    error: format!("{url}: {e}"),
                }
            }
        };
        out.insert(mac, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::HistoryRow;

    fn row(to: &str, source: &str, message: &str, at: &str) -> HistoryRow {
        HistoryRow {
            at: at.into(),
            from: "known".into(),
            to: to.into(),
            progress: 0,
            message: message.into(),
            source: source.into(),
        }
    }

    #[test]
    fn status_follows_the_phase() {
        assert_eq!(status(&Phase::Installing), "in_progress");
        assert_eq!(status(&Phase::HealthValidation), "in_progress");
        assert_eq!(status(&Phase::Running), "completed");
        assert_eq!(status(&Phase::Clustered), "clustered");
        assert_eq!(status(&Phase::Timeout), "timeout");
        assert_eq!(status(&Phase::Failed), "error");
    }

    #[test]
    fn the_start_comes_from_history() {
        let h = vec![
            row(
                "server_requested",
                "operator:0",
                "reprovision with profile a",
                "t1",
            ),
            row("installing", "callback", "50%", "t2"),
            row(
                "server_requested",
                "operator:0",
                "reprovision with profile b",
                "t3",
            ),
            row("registered", "callback", "up", "t4"),
            row("timeout", "deadline", "no progress", "t5"),
        ];
        assert_eq!(started_in(&h).as_deref(), Some("t3"));
        assert_eq!(started_in(&h[1..2]), None);
    }
}
