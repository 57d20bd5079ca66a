//! `[[upstream]]`: provider APIs that receive phase events.

use super::reader::{shown, Ctx, Section};
use super::values::{check_http_url, check_name};
use serde::Serialize;
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
        s.check_keys(cx, &["name", "url", "secret_file", "status_url", "ca_file"]);
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
        out.push(Upstream {
            name: name.unwrap_or_default(),
            url: url.unwrap_or_default(),
            secret_file,
            status_url,
            ca_file,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_url_allows_only_the_provider_id_placeholder() {
        assert!(check_status_url("https://h/v1/servers/{provider_id}").is_ok());
        assert!(check_status_url("https://h/v1/servers/{id}").is_err());
    }
}
