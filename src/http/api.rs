//! The JSON API: node list and detail, phase callbacks, and the admin routes.

// Early returns carry a ready response; boxing it would cost an allocation for nothing.
#![allow(clippy::result_large_err)]

use super::response::{error_response, json_response, Body};
use super::router::Caller;
use super::tokens;
use crate::app::App;
use crate::lifecycle::reprovision;
use crate::mac::MacAddr;
use crate::nodes::{Applied, Node, NodePatch, Origin, Phase, PhaseRequest, RegistryError};
use bootd_api::{
    CompactDisk, CompactHardware, CompactMemory, CompactNic, Dropped, HistoryEntry, NodeDetail,
    NodeList, NodeListEntry, PhaseAnswer, PhasePost, ReloadAnswer, Removed, Retried, Source,
    Status, Timestamp,
};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Largest phase-callback or admin body.
const SMALL_BODY: usize = 64 * 1024;
/// Longest message kept with a phase.
const MAX_MESSAGE: usize = 1024;
/// History rows returned with a node.
const HISTORY_LIMIT: usize = 1000;

/// A node as the API shows it: `profile` is the effective one, `profile_source` where
/// it came from (`node`, `group`, `hardware`, `default`), `node_profile` its own setting.
pub fn node_view(app: &App, n: &Node) -> bootd_api::NodeView {
    let effective = app.registry.effective_profile(n);
    let mut v = n.view();
    v.node_profile = n.profile.clone();
    v.profile = Some(effective.name);
    v.profile_source = Some(effective.source.as_str().to_string());
    if let Some(at) = app.lifecycle.reprovision_started(n.mac) {
        v.reprovision_status = Some(reprovision::status(&n.phase).to_string());
        v.reprovision_started = Some(Timestamp::from_stored(&at));
    }
    v
}

fn parse_mac(text: &str) -> Result<MacAddr, Response<Body>> {
    text.parse::<MacAddr>()
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, e.to_string()))
}

pub(super) fn registry_error(e: RegistryError) -> Response<Body> {
    let status = match &e {
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Exists(_)
        | RegistryError::Conflict(_)
        | RegistryError::Configured { .. } => StatusCode::CONFLICT,
        RegistryError::Transition(crate::nodes::TransitionError::NotAllowed { .. }) => {
            StatusCode::CONFLICT
        }
        RegistryError::Transition(_) | RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RegistryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_response(status, e.to_string())
}

/// Reads a JSON body of at most `limit` bytes: 413 past it, 400 for bad JSON.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Response<Body>> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body of {len} bytes is over the limit of {limit}"),
            ));
        }
    }
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body is over the limit of {limit} bytes"),
                    )
                } else {
                    error_response(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
                },
            )
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error_response(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// `GET /healthz`: the store answers.
pub async fn healthz(app: &Arc<App>) -> Response<Body> {
    match app.store.ping().await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")),
    }
}

/// `GET /api/v1/status`: a summary for `bootctl status`.
pub fn status(app: &Arc<App>) -> Response<Body> {
    let cfg = app.config();
    let status = Status {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: app.started.elapsed().as_secs(),
        config: cfg.source.as_ref().map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        }),
        state_dir: cfg.server.state_dir.display().to_string(),
        database: app.store.path().display().to_string(),
        http_listen: cfg.server.http_listen.to_string(),
        public_url: cfg.server.public_url.clone(),
        tftp: cfg.tftp.enabled.then(|| cfg.tftp.listen.to_string()),
        dhcp_mode: format!("{:?}", cfg.dhcp.mode).to_lowercase(),
        control_socket: cfg.server.control_socket.display().to_string(),
        nodes: app.registry.list().len() as u64,
        phases: app.registry.count_by_phase(),
        outbox: app
            .store
            .outbox_counts()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        relay: crate::relay::admin::backlog(app),
    };
    json_response(StatusCode::OK, &status)
}

/// `GET /api/v1/nodes`.
pub fn list_nodes(app: &Arc<App>) -> Response<Body> {
    // One query for every node's newest inventory, reduced to what a list row shows.
    let hardware: std::collections::HashMap<String, CompactHardware> = app
        .store
        .hardware_seen()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| {
            let inv: crate::hardware::Inventory = serde_json::from_str(&h.inventory).ok()?;
            Some((h.node, compact_hardware(&inv)))
        })
        .collect();
    let nodes = app
        .registry
        .list()
        .iter()
        .map(|n| NodeListEntry {
            node: node_view(app, n),
            hardware: hardware.get(&n.mac.to_string()).cloned(),
        })
        .collect();
    json_response(StatusCode::OK, &NodeList { nodes })
}

/// `GET /api/v1/nodes/{mac}`: the node with its history.
pub async fn show_node(app: &Arc<App>, mac: &str) -> Response<Body> {
    let mac = match parse_mac(mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(node) = app.registry.get(mac) else {
        return error_response(StatusCode::NOT_FOUND, format!("no node with MAC {mac}"));
    };
    let store = app.store.clone();
    let key = mac.to_string();
    let history = tokio::task::spawn_blocking(move || store.history(&key, HISTORY_LIMIT)).await;
    let history = match history {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut view = node_view(app, &node);
    if view.reprovision_started.is_none() {
        if let Some(at) = reprovision::started_in(&history) {
            view.reprovision_status = Some(reprovision::status(&node.phase).to_string());
            view.reprovision_started = Some(Timestamp::from_stored(&at));
        }
    }
    let detail = NodeDetail {
        node: view,
        history: history
            .iter()
            .map(|h| HistoryEntry {
                at: Timestamp::from_stored(&h.at),
                from: Phase::from_stored(&h.from),
                to: Phase::from_stored(&h.to),
                progress: h.progress,
                message: h.message.clone(),
                source: Source::parse(&h.source),
            })
            .collect(),
        hardware: app.latest_hardware(mac),
    };
    json_response(StatusCode::OK, &detail)
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(req: &Request<Incoming>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?;
    bootd_proto::auth::bearer(v.as_bytes()).map(str::to_string)
}

/// `POST /api/v1/nodes/{mac}/phase`: a machine's callback (token) or an operator override.
pub async fn post_phase(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    mac: &str,
) -> Response<Body> {
    let mac = match parse_mac(mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let operator = caller.is_admin();
    let node = app.registry.get(mac);
    if !operator {
        // Same answer for an unknown node and a wrong token: nothing to learn from it.
        let ok = match (&node, bearer(&req)) {
            (Some(n), Some(t)) => app.tokens.verify(mac, n.token_gen, &t),
            _ => false,
        };
        if !ok {
            return error_response(StatusCode::FORBIDDEN, "missing or wrong token");
        }
    }
    let Some(node) = node else {
        return error_response(StatusCode::NOT_FOUND, format!("no node with MAC {mac}"));
    };
    let body: PhasePost = match read_json(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let custom = app.registry.phases_of(&node);
    let names: Vec<&str> = custom.iter().map(|(n, _)| n.as_str()).collect();
    let to = match Phase::parse(&body.phase, &names) {
        Ok(p) => p,
        Err(e) => {
            let profile = app.registry.effective_profile(&node).name;
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("{e}; valid phases: {}", valid_phases(&names, &profile)),
            );
        }
    };
    let progress = match body.progress {
        Some(p) if p > 100 => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("progress {p} is outside 0..=100"),
            )
        }
        p => p.map(|p| p as u8),
    };
    let message: String = body
        .message
        .unwrap_or_default()
        .chars()
        .take(MAX_MESSAGE)
        .collect();
    let facts = NodePatch {
        ip: body.ip.clone(),
        hostname: body.hostname.clone(),
        ..NodePatch::default()
    };
    if let Err(e) = facts.validate() {
        return error_response(StatusCode::BAD_REQUEST, e);
    }
    let to_phase = to.clone();
    let req = PhaseRequest {
        to,
        progress,
        message,
        source: if operator {
            caller.operator()
        } else {
            "callback".into()
        },
        force: operator,
    };
    let before = operator.then(|| audit_view(&node));
    if operator {
        tracing::info!(%mac, operator = %caller.operator(), phase = %req.to, "operator phase override");
    }
    let applied = match app.registry.transition(mac, req).await {
        Ok(a) => a,
        Err(e) => return registry_error(e),
    };
    if facts.ip.is_some() || facts.hostname.is_some() {
        if let Err(e) = app.registry.set(mac, &facts).await {
            return registry_error(e);
        }
    }
    let current = app.registry.get(mac);
    if let (Some(before), Some(after)) = (before, current.as_ref()) {
        let after = audit_view(after);
        tokens::record(
            app,
            caller,
            "phase_override",
            &mac.to_string(),
            before,
            after,
        )
        .await;
    }
    let node = current.map(|n| node_view(app, &n));
    let stored = node.as_ref().map(|n| n.progress);
    let band = crate::nodes::INSTALLING_BAND;
    let note = match (&to_phase, operator, progress) {
        (Phase::Installing, false, Some(asked)) if !band.contains(&asked) => Some(format!(
            "installing progress is kept within {}–{}; stored {}",
            band.start(),
            band.end(),
            stored.unwrap_or_default()
        )),
        _ => None,
    };
    let answer = PhaseAnswer {
        changed: matches!(applied, Applied::Changed(_)),
        node,
        progress: stored,
        note,
    };
    json_response(StatusCode::OK, &answer)
}

/// What the audit log keeps of a node before and after a change: the fields an
/// operator sets and the phase (never its token hash).
pub(super) fn audit_view(n: &Node) -> String {
    json!({
        "hostname": n.hostname,
        "group": n.group,
        "profile": n.profile,
        "ip": n.ip,
        "boot": n.boot,
        "next_boot": n.next_boot,
        "origin": n.origin,
        "phase": n.phase,
    })
    .to_string()
}

/// The phases a callback may name: the built-in ones and the profile's own.
fn valid_phases(custom: &[&str], profile: &str) -> String {
    let builtin: Vec<&str> = crate::nodes::phase::BUILTIN
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    let mut text = builtin.join(", ");
    if !custom.is_empty() {
        text.push_str(&format!(" (profile {profile}: {})", custom.join(", ")));
    }
    text
}

/// The body of `POST /api/v1/nodes`.
#[derive(Debug, Deserialize)]
struct AddBody {
    mac: String,
    #[serde(flatten)]
    fields: NodePatch,
}

/// `POST /api/v1/nodes` (control socket): adds a node at runtime.
pub async fn add_node(app: &Arc<App>, req: Request<Incoming>, caller: &Caller) -> Response<Body> {
    let body: AddBody = match read_json(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mac = match parse_mac(&body.mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let Err(e) = check_patch(app, &body.fields) {
        return error_response(StatusCode::BAD_REQUEST, e);
    }
    let mut node = Node::new(mac, Origin::Runtime);
    body.fields.apply(&mut node);
    match app.registry.add(node).await {
        Ok(n) => {
            tracing::info!(%mac, operator = %caller.operator(), "node added");
            tokens::record(
                app,
                caller,
                "node_add",
                &mac.to_string(),
                String::new(),
                audit_view(&n),
            )
            .await;
            json_response(StatusCode::CREATED, &node_view(app, &n))
        }
        Err(e) => registry_error(e),
    }
}

/// Checks a patch against the shape rules and the current config's names.
fn check_patch(app: &Arc<App>, p: &NodePatch) -> Result<(), String> {
    p.validate()?;
    let cfg = app.config();
    for (what, name) in [("profile", &p.profile), ("next_boot", &p.next_boot)] {
        if let Some(name) = name.as_ref().filter(|n| !n.is_empty()) {
            if !cfg.profiles.contains_key(name) {
                return Err(format!("{what}: no profile named {name:?}"));
            }
        }
    }
    if let Some(g) = p.group.as_ref().filter(|n| !n.is_empty()) {
        if !cfg.groups.contains_key(g) {
            return Err(format!("group: no group named {g:?}"));
        }
    }
    Ok(())
}

/// The MAC of the path and a checked patch from the body, or the error answer.
async fn mac_and_patch(
    app: &Arc<App>,
    req: Request<Incoming>,
    mac: &str,
) -> Result<(MacAddr, NodePatch), Response<Body>> {
    let mac = parse_mac(mac)?;
    let patch: NodePatch = read_json(req, SMALL_BODY).await?;
    check_patch(app, &patch).map_err(|e| error_response(StatusCode::BAD_REQUEST, e))?;
    Ok((mac, patch))
}

/// `PATCH /api/v1/nodes/{mac}` (control socket).
pub async fn set_node(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    mac: &str,
) -> Response<Body> {
    let (mac, patch) = match mac_and_patch(app, req, mac).await {
        Ok(pair) => pair,
        Err(r) => return r,
    };
    let before = app
        .registry
        .get(mac)
        .map(|n| audit_view(&n))
        .unwrap_or_default();
    match app.registry.edit(mac, &patch).await {
        Ok(n) => {
            tracing::info!(%mac, operator = %caller.operator(), "node changed");
            tokens::record(
                app,
                caller,
                "node_set",
                &mac.to_string(),
                before,
                audit_view(&n),
            )
            .await;
            json_response(StatusCode::OK, &node_view(app, &n))
        }
        Err(e) => registry_error(e),
    }
}

/// `DELETE /api/v1/nodes/{mac}` (control socket).
pub async fn remove_node(app: &Arc<App>, caller: &Caller, mac: &str) -> Response<Body> {
    let mac = match parse_mac(mac) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let before = app
        .registry
        .get(mac)
        .map(|n| audit_view(&n))
        .unwrap_or_default();
    match app.registry.remove_runtime(mac).await {
        Ok(()) => {
            tracing::info!(%mac, operator = %caller.operator(), "node removed");
            tokens::record(
                app,
                caller,
                "node_remove",
                &mac.to_string(),
                before,
                String::new(),
            )
            .await;
            json_response(StatusCode::OK, &Removed { removed: mac })
        }
        Err(e) => registry_error(e),
    }
}

/// `POST /api/v1/reload` (control socket): re-reads the config file.
pub async fn reload(app: &Arc<App>, caller: &Caller) -> Response<Body> {
    tracing::info!(operator = %caller.operator(), "reload requested");
    match app.reload().await {
        Ok(summary) => {
            tokens::record(
                app,
                caller,
                "reload",
                "config",
                String::new(),
                summary.clone(),
            )
            .await;
            json_response(
                StatusCode::OK,
                &ReloadAnswer {
                    reloaded: true,
                    summary,
                },
            )
        }
        Err(e) => error_response(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// `GET /api/v1/relay` (control socket): backlog, failures and dead letters per upstream.
pub async fn relay_overview(app: &Arc<App>) -> Response<Body> {
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || crate::relay::admin::overview(&app2)).await {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(e)) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/v1/relay/retry` (control socket): `{"id": N}` or `{"all_dead": true}` moves
/// dead letters back to pending.
pub async fn relay_retry(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
) -> Response<Body> {
    let body: crate::relay::admin::RelayAction = match read_json(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = match (body.id, body.all_dead) {
        (Some(id), false) => Some(id),
        (None, true) => None,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "give exactly one of \"id\" and \"all_dead\": true",
            )
        }
    };
    match app.store.outbox_retry(id).await {
        Ok(0) if id.is_some() => error_response(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {}", id.unwrap_or_default()),
        ),
        Ok(n) => {
            tracing::info!(operator = %caller.operator(), ?id, retried = n, "relay dead letters retried");
            json_response(StatusCode::OK, &Retried { retried: n })
        }
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/v1/relay/drop` (control socket): `{"id": N}` deletes one undelivered event.
pub async fn relay_drop(app: &Arc<App>, req: Request<Incoming>, caller: &Caller) -> Response<Body> {
    let body: crate::relay::admin::RelayAction = match read_json(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(id) = body.id.filter(|_| !body.all_dead) else {
        return error_response(StatusCode::BAD_REQUEST, "give the \"id\" of one event");
    };
    match app.store.outbox_drop(id).await {
        Ok(true) => {
            tracing::warn!(operator = %caller.operator(), id, "relay event dropped undelivered");
            json_response(StatusCode::OK, &Dropped { dropped: id })
        }
        Ok(false) => error_response(
            StatusCode::NOT_FOUND,
            format!("no pending or dead event with id {id}"),
        ),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /api/v1/nodes/{mac}/adopt` (control socket): a discovered machine becomes managed.
pub async fn adopt_node(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    mac: &str,
) -> Response<Body> {
    let (mac, patch) = match mac_and_patch(app, req, mac).await {
        Ok(pair) => pair,
        Err(r) => return r,
    };
    let before = app
        .registry
        .get(mac)
        .map(|n| audit_view(&n))
        .unwrap_or_default();
    match app.registry.adopt(mac, &patch, caller.operator()).await {
        Ok(n) => {
            tracing::info!(%mac, operator = %caller.operator(), "discovered node adopted");
            tokens::record(
                app,
                caller,
                "node_adopt",
                &mac.to_string(),
                before,
                audit_view(&n),
            )
            .await;
            json_response(StatusCode::OK, &node_view(app, &n))
        }
        Err(e) => registry_error(e),
    }
}

/// The part of an inventory a node list shows (the full one is on the node's own route).
fn compact_hardware(inv: &crate::hardware::Inventory) -> CompactHardware {
    CompactHardware {
        vendor: inv.vendor.clone(),
        product: inv.product.clone(),
        serial: inv.serial.clone(),
        cpus: inv.cpus.clone(),
        memory: CompactMemory {
            total_bytes: inv.memory.total_bytes,
        },
        disks: inv
            .disks
            .iter()
            .map(|d| CompactDisk {
                size_bytes: d.size_bytes,
            })
            .collect(),
        nics: inv
            .nics
            .iter()
            .map(|n| CompactNic {
                name: n.name.clone(),
            })
            .collect(),
        summary: inv.summary(),
    }
}
