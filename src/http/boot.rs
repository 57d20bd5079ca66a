//! Boot scripts and install configs per MAC: `/boot/{mac}.ipxe` and `/config/{mac}`.
//! Each render carries the node's current callback token (only for a requester whose
//! address belongs to the node: [`crate::secrets`]) and records its phase.

use super::response::{error_response, text_response, Body};
use crate::app::App;
use crate::boot::{select_with_hardware, Context};
use crate::config::UnknownPolicy;
use crate::mac::MacAddr;
use crate::nodes::{token, NodePatch, Phase, PhaseRequest, RegistryError};
use hyper::{Response, StatusCode};
use std::sync::Arc;

/// Which document of the selected profile to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doc {
    /// The boot script (`/boot/{mac}.ipxe`): records ipxe_boot.
    Script,
    /// The install config (`/config/{mac}`, also `/config/{mac}/user-data`): records
    /// config_requested.
    Config,
    /// cloud-init NoCloud `meta-data`, generated.
    MetaData,
    /// Another file of the profile, `templates_dir/<profile>/<file>`.
    Extra(String),
}

impl Doc {
    /// The document a `/config/{mac}/{file}` request names.
    pub fn from_file(file: &str) -> Doc {
        match file {
            "user-data" => Doc::Config,
            "meta-data" => Doc::MetaData,
            other => Doc::Extra(other.to_string()),
        }
    }
}

fn arch_param(query: Option<&str>) -> Option<&'static str> {
    let q = query?;
    q.split('&').find_map(|kv| match kv {
        "arch=bios" => Some("bios"),
        "arch=x86_64-efi" => Some("x86_64-efi"),
        "arch=arm64-efi" => Some("arm64-efi"),
        _ => None,
    })
}

/// Renders the node's script or config; unknown MACs get the discovery script when
/// `boot.unknown = "discover"`, else 404.
pub async fn render(
    app: &Arc<App>,
    raw_mac: &str,
    query: Option<&str>,
    doc: Doc,
    requester: Option<std::net::IpAddr>,
) -> Response<Body> {
    let mac: MacAddr = match raw_mac.parse() {
        Ok(m) => m,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let cfg = app.config();
    if app.registry.get(mac).is_none() {
        if cfg.boot.unknown == UnknownPolicy::Ignore {
            return error_response(StatusCode::NOT_FOUND, format!("no node with MAC {mac}"));
        }
        if let Err(e) = app.registry.discover(mac).await {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    }
    let Some(node) = app.registry.get(mac) else {
        return error_response(StatusCode::NOT_FOUND, format!("no node with MAC {mac}"));
    };
    let sel = select_with_hardware(Some(&node), &cfg, &|| app.latest_hardware(mac));
    let name = match &doc {
        Doc::Script => sel.script.clone(),
        Doc::Config => match &sel.config {
            Some(c) => c.clone(),
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    format!("profile {} has no install config", sel.profile),
                )
            }
        },
        Doc::MetaData => {
            let host = node.hostname.clone().unwrap_or_else(|| mac.hyphenated());
            let body = format!(
                "instance-id: bootd-{}-{}\nlocal-hostname: {host}\n",
                mac.hyphenated(),
                node.token_gen
            );
            return text_response(StatusCode::OK, "text/plain; charset=utf-8", body);
        }
        Doc::Extra(file) => {
            let name = format!("{}/{file}", sel.profile);
            if file.contains('/') || !app.templates().has(&name) {
                return error_response(StatusCode::NOT_FOUND, "not found");
            }
            name
        }
    };
    let arch = arch_param(query)
        .or_else(|| app.arch_of(mac))
        .unwrap_or("x86_64-efi");
    // The control socket (an operator) always gets the token; a network requester only
    // when its address belongs to the node.
    let tok = match requester {
        None => app.tokens.token(mac, node.token_gen),
        Some(ip) => crate::secrets::token_for(app, mac, node.token_gen, ip, &name),
    };
    let mut ctx = Context::new(
        &node,
        &sel.profile,
        arch,
        tok.clone(),
        &cfg.server.public_url,
    );
    // Inventory facts are template variables too: `{{ node.hardware.product }}`.
    if let (serde_json::Value::Object(n), Some(hw)) = (&mut ctx.node, app.latest_hardware(mac)) {
        n.insert(
            "hardware".into(),
            serde_json::to_value(hw).unwrap_or_default(),
        );
    }
    let body = match app.templates().render(&name, &ctx) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(%mac, template = %name, error = %e, "render failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("template {name}: {e}"),
            );
        }
    };
    app.metrics.renders.inc();
    if !tok.is_empty() {
        if let Err(e) = app.registry.note_token(mac, token::hash(&tok)).await {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    }
    let record = match doc {
        Doc::Script => Some(Phase::IpxeBoot),
        Doc::Config => Some(Phase::ConfigRequested),
        Doc::MetaData | Doc::Extra(_) => None,
    };
    if let (Some(to), true) = (record, sel.profile != "local") {
        let req = PhaseRequest {
            to,
            progress: None,
            message: format!("{} {}", sel.profile, name),
            source: "http".into(),
            force: false,
        };
        match app.registry.transition(mac, req).await {
            Ok(_) | Err(RegistryError::Transition(_)) => {}
            Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
    if sel.one_shot && doc == Doc::Script {
        // Install once: the next boot of this machine is from its disk again.
        let back = NodePatch {
            next_boot: Some(String::new()),
            boot: Some("local".into()),
            ..NodePatch::default()
        };
        if let Err(e) = app.registry.set(mac, &back).await {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    }
    tracing::info!(%mac, profile = %sel.profile, template = %name, arch, "rendered");
    text_response(StatusCode::OK, "text/plain; charset=utf-8", body)
}
