//! `[[upstream]]`: provider APIs that receive phase events.

use super::reader::{shown, Ctx, Section};
use super::values::{check_http_url, check_name};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `[[upstream]]`: a provider API that receives phase events.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    /// Unique name (shown by `bootctl relay`).
    pub name: String,
    /// Event endpoint (http or https).
    pub url: String,
    /// File holding the HMAC-SHA256 key.
    pub secret_file: Option<PathBuf>,
    /// Provider state URL to poll; may contain `{provider_id}`.
    pub status_url: Option<String>,
    /// CA bundle to verify the endpoint with.
    pub ca_file: Option<PathBuf>,
    /// Provider states (lower case) and the early phase each means
    /// (`states = { provisioning = "pending", powering_on = "starting" }`), over
    /// [`DEFAULT_STATES`].
    pub states: BTreeMap<String, String>,
}

/// Provider states understood without a `states` table.
pub const DEFAULT_STATES: &[(&str, &str)] = &[
    ("provisioning", "pending"),
    ("pending", "pending"),
    ("creating", "pending"),
    ("starting", "starting"),
    ("powering_on", "starting"),
    ("booting", "starting"),
];

/// The early phases a provider state may map to.
pub const STATE_PHASES: &[&str] = &["pending", "starting"];

impl Upstream {
    /// The early phase a provider state means under this upstream's mapping, if any
    /// (compared case-insensitively).
    pub fn state_phase(&self, state: &str) -> Option<&str> {
        let key = state.to_ascii_lowercase();
        if let Some(p) = self.states.get(&key) {
            return Some(p.as_str());
        }
        DEFAULT_STATES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| *p)
    }
}

/// `upstream[].status_url`: a URL in which `{provider_id}` is the only placeholder.
fn check_status_url(s: &str) -> Result<String, String> {
    const PLACEHOLDER: &str = "{provider_id}";
    let probe = s.replace(PLACEHOLDER, "id");
    if probe.contains(['{', '}']) {
        return Err(format!(
            "invalid URL {:?}: only {PLACEHOLDER} may appear in braces",
            shown(s)
        ));
    }
    check_http_url(&probe)?;
    Ok(s.to_string())
}

pub(super) fn read_upstreams(cx: &mut Ctx<'_>, root: &Section<'_>, base: &Path) -> Vec<Upstream> {
    let sections = root
        .get("upstream")
        .map(|f| cx.tables(&f))
        .unwrap_or_default();
    let mut out: Vec<Upstream> = Vec::new();
    for s in &sections {
        s.check_keys(
            cx,
            &[
                "name",
                "url",
                "secret_file",
                "status_url",
                "ca_file",
                "states",
            ],
        );
        let name = s.require(cx, "name").and_then(|f| {
            let name = cx.parsed(&f, |n| check_name(n).map(|()| n.to_string()))?;
            if out.iter().any(|u| u.name == name) {
                cx.error(f.at, &f.path, format!("upstream {name:?} is defined twice"));
            }
            Some(name)
        });
        let url = s
            .require(cx, "url")
            .and_then(|f| cx.parsed(&f, check_http_url));
        let secret_file = s.get("secret_file").and_then(|f| cx.path(&f, base));
        let status_url = s
            .get("status_url")
            .and_then(|f| cx.parsed(&f, check_status_url));
        let ca_file = s.get("ca_file").and_then(|f| cx.path(&f, base));
        let mut states = BTreeMap::new();
        if let Some(table) = s.get("states").and_then(|f| cx.table(&f)) {
            for e in table.entries() {
                let Some(v) = cx.string(&e) else {
                    continue;
                };
                if STATE_PHASES.contains(&v) {
                    states.insert(e.name.to_ascii_lowercase(), v.to_string());
                } else {
                    cx.error(
                        e.at,
                        &e.path,
                        format!(
                            "{v:?} is not a phase a provider state maps to; expected one of {}",
                            STATE_PHASES.join(", ")
                        ),
                    );
                }
            }
        }
        out.push(Upstream {
            name: name.unwrap_or_default(),
            url: url.unwrap_or_default(),
            secret_file,
            status_url,
            ca_file,
            states,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_states_map_to_early_phases_over_the_defaults() {
        let mut u = Upstream {
            name: "cloud".into(),
            url: "http://h/".into(),
            secret_file: None,
            status_url: None,
            ca_file: None,
            states: BTreeMap::new(),
        };
        assert_eq!(u.state_phase("PROVISIONING"), Some("pending"));
        assert_eq!(u.state_phase("powering_on"), Some("starting"));
        assert_eq!(u.state_phase("running"), None);
        u.states.insert("queued".into(), "pending".into());
        u.states.insert("provisioning".into(), "starting".into());
        assert_eq!(u.state_phase("Queued"), Some("pending"));
        assert_eq!(u.state_phase("provisioning"), Some("starting"));
    }

    #[test]
    fn status_url_allows_only_the_provider_id_placeholder() {
        assert!(check_status_url("https://h/v1/servers/{provider_id}").is_ok());
        assert!(check_status_url("https://h/v1/servers/{id}").is_err());
    }
}
