//! Hardware reports from booting machines: `POST/GET /api/v1/nodes/{mac}/hardware` and
//! `GET /api/v1/hardware/discovered`. A report is parsed and normalized before anything
//! is stored; garbage is a 400 that changes nothing.

use super::api::bearer;
use super::response::{error_response, json_response, Body};
use super::router::Caller;
use crate::app::App;
use crate::config::UnknownPolicy;
use crate::hardware::{changes, normalize, parse_report_with_limit, Inventory};
use crate::mac::MacAddr;
use crate::nodes::Origin;
use crate::store::HardwareRow;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// Longest a machine may take to upload its report.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this caller may report for `mac`: its token, an operator, or — for a machine
/// nobody configured, when discovery is on — the address that MAC was seen with.
fn allowed(app: &App, req: &Request<Incoming>, caller: &Caller, mac: MacAddr) -> bool {
    if caller.is_admin() {
        return true;
    }
    let node = app.registry.get(mac);
    if let (Some(n), Some(t)) = (&node, bearer(req)) {
        if app.tokens.verify(mac, n.token_gen, &t) {
            return true;
        }
    }
    let unconfigured = node.as_ref().is_none_or(|n| n.origin == Origin::Discovered);
    let Caller::Network(peer) = caller else {
        return false;
    };
    unconfigured
        && app.config().boot.unknown == UnknownPolicy::Discover
        && crate::neighbours::mac_of(peer.ip()) == Some(mac)
}

/// `POST /api/v1/nodes/{mac}/hardware`: answers with the inventory that was stored.
pub async fn post(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    raw_mac: &str,
) -> Response<Body> {
    let mac: MacAddr = match raw_mac.parse() {
        Ok(m) => m,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("{e}")),
    };
    if !allowed(app, &req, caller, mac) {
        return error_response(StatusCode::FORBIDDEN, "missing or wrong token");
    }
    let limit = app.config().http.body_limit as usize;
    let body = tokio::time::timeout(
        UPLOAD_TIMEOUT,
        Limited::new(req.into_body(), limit).collect(),
    )
    .await;
    let bytes = match body {
        Err(_) => {
            return error_response(StatusCode::REQUEST_TIMEOUT, "report not received in time")
        }
        Ok(Err(e)) => {
            return if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("report over the limit of {limit} bytes"),
                )
            } else {
                error_response(StatusCode::BAD_REQUEST, format!("cannot read report: {e}"))
            }
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let report = match parse_report_with_limit(&bytes, limit) {
        Ok(r) => r,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid hardware report: {e}"),
            )
        }
    };
    let inventory = normalize(&report);
    if app.registry.get(mac).is_none() {
        if let Err(e) = app.registry.discover(mac).await {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    }
    let previous = app.latest_hardware(mac);
    let diff = previous
        .as_ref()
        .map(|p| changes(p, &inventory))
        .unwrap_or_default();
    let inventory_json = match serde_json::to_string(&inventory) {
        Ok(j) => j,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let row = HardwareRow {
        node: mac.to_string(),
        at: crate::store::now_rfc3339(),
        inventory: inventory_json,
        changes: serde_json::to_string(&diff).unwrap_or_else(|_| "[]".into()),
        source_ip: match caller {
            Caller::Network(peer) => Some(peer.ip().to_string()),
            Caller::Control { uid, .. } => Some(format!("operator:{uid}")),
            Caller::Token { name, .. } => Some(format!("token:{name}")),
        },
    };
    if let Err(e) = app.store.save_hardware(row).await {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    if diff.is_empty() {
        tracing::info!(%mac, summary = %inventory.summary(), "hardware report");
    } else {
        tracing::warn!(%mac, changes = ?diff, "hardware changed since the last report");
    }
    json_response(
        StatusCode::OK,
        &bootd_api::HardwareReported {
            mac,
            summary: inventory.summary(),
            inventory,
            changes: diff,
        },
    )
}

/// `GET /api/v1/nodes/{mac}/hardware`.
pub fn get(app: &Arc<App>, raw_mac: &str) -> Response<Body> {
    let mac: MacAddr = match raw_mac.parse() {
        Ok(m) => m,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("{e}")),
    };
    match app.store.latest_hardware(&mac.to_string()) {
        Ok(Some(row)) => {
            let answer = bootd_api::HardwareAnswer {
                mac,
                at: bootd_api::Timestamp::from_stored(&row.at),
                inventory: serde_json::from_str(&row.inventory).unwrap_or_default(),
                changes: serde_json::from_str(&row.changes).unwrap_or_default(),
            };
            json_response(StatusCode::OK, &answer)
        }
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            format!("no hardware report from {mac}"),
        ),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/v1/hardware/discovered`: machines nobody configured that reported.
pub fn discovered(app: &Arc<App>) -> Response<Body> {
    let seen = match app.store.hardware_seen() {
        Ok(s) => s,
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let discovered = seen
        .into_iter()
        .filter_map(|s| {
            let mac: MacAddr = s.node.parse().ok()?;
            let node = app.registry.get(mac)?;
            (node.origin == Origin::Discovered).then(|| {
                let inv: Inventory = serde_json::from_str(&s.inventory).unwrap_or_default();
                bootd_api::Discovered {
                    mac,
                    summary: inv.summary(),
                    vendor: inv.vendor,
                    product: inv.product,
                    serial: inv.serial,
                    first_seen: bootd_api::Timestamp::from_stored(&s.first_seen),
                    last_seen: bootd_api::Timestamp::from_stored(&s.last_seen),
                    phase: node.phase,
                }
            })
        })
        .collect();
    json_response(StatusCode::OK, &bootd_api::DiscoveredList { discovered })
}
