//! One router for the network listener and the control socket: the path is decoded
//! once, then matched by segments; admin routes answer only on the control socket.

use super::response::{error_response, text_response, Body};
use super::{api, assets, boot, events, hardware, lifecycle, monitoring};
use crate::app::App;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A client of the network listener (machines, browsers, scrapers).
    Network(SocketAddr),
    /// A local peer on the control socket, with its credentials (SO_PEERCRED).
    Control { uid: u32, gid: u32, pid: i32 },
}

impl Caller {
    /// Whether admin routes are open to this caller.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Control { .. })
    }

    /// The source recorded for operator actions: `operator:<uid>`.
    pub fn operator(&self) -> String {
        match self {
            Caller::Control { uid, .. } => format!("operator:{uid}"),
            Caller::Network(peer) => format!("network:{peer}"),
        }
    }
}

/// Longest request path bootd looks at.
const MAX_PATH: usize = 2048;
/// Most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Answers one request; never fails (errors become `{"error": ...}` responses).
pub async fn handle(app: Arc<App>, req: Request<Incoming>, caller: Caller) -> Response<Body> {
    let route_label;
    let response = {
        let raw = req.uri().path();
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            route_label = "invalid";
            error_response(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers over {MAX_HEADER_BYTES} bytes"),
            )
        } else if raw.len() > MAX_PATH {
            route_label = "invalid";
            error_response(StatusCode::URI_TOO_LONG, "request path too long")
        } else {
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Err(_) => {
                    route_label = "invalid";
                    error_response(StatusCode::BAD_REQUEST, "request path is not valid UTF-8")
                }
                Ok(path) => {
                    let path = path.into_owned();
                    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                    let (label, resp) = route(&app, req, &caller, &segs).await;
                    route_label = label;
                    resp
                }
            }
        }
    };
    app.metrics
        .http_requests
        .get_or_create(&crate::metrics::RouteLabels {
            route: route_label.to_string(),
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn route(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    segs: &[&str],
) -> (&'static str, Response<Body>) {
    let method = req.method().clone();
    match (&method, segs) {
        (&Method::GET | &Method::HEAD, ["healthz"]) => ("healthz", api::healthz(app).await),
        (&Method::GET, ["metrics"]) => {
            let held = i64::try_from(assets::cache_bytes()).unwrap_or(i64::MAX);
            app.metrics.asset_cache_bytes.set(held);
            let body = app.metrics.render(
                &app.registry.count_by_phase(),
                app.started.elapsed().as_secs(),
            );
            (
                "metrics",
                text_response(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
            )
        }
        (&Method::GET, ["boot", file]) if file.ends_with(".ipxe") => {
            let mac = file.trim_end_matches(".ipxe");
            (
                "boot",
                boot::render(app, mac, req.uri().query(), boot::Doc::Script).await,
            )
        }
        (&Method::GET, ["config", mac, file]) => (
            "config",
            boot::render(app, mac, req.uri().query(), boot::Doc::from_file(file)).await,
        ),
        (&Method::GET, ["config", mac]) => (
            "config",
            boot::render(app, mac, req.uri().query(), boot::Doc::Config).await,
        ),
        (&Method::GET | &Method::HEAD, ["assets", rest @ ..]) if !rest.is_empty() => {
            ("assets", assets::serve(app, &req, &rest.join("/")).await)
        }
        (&Method::GET | &Method::HEAD, ["monitoring"]) => ("monitoring", monitoring::page()),
        (&Method::GET, ["api", "v1", "events"]) => {
            ("events", events::stream(app, req.uri().query()).await)
        }
        (&Method::GET, ["api", "v1", "status"]) => ("status", api::status(app)),
        (&Method::GET, ["api", "v1", "nodes"]) => ("nodes", api::list_nodes(app)),
        (&Method::GET, ["api", "v1", "nodes", mac]) => ("node", api::show_node(app, mac).await),
        (&Method::POST, ["api", "v1", "nodes", mac, "hardware"]) => {
            ("hardware", hardware::post(app, req, caller, mac).await)
        }
        (&Method::GET, ["api", "v1", "nodes", mac, "hardware"]) => {
            ("hardware", hardware::get(app, mac))
        }
        (&Method::GET, ["api", "v1", "hardware", "discovered"]) => {
            ("hardware", hardware::discovered(app))
        }
        (&Method::POST, ["api", "v1", "nodes", mac, "phase"]) => {
            ("phase", api::post_phase(app, req, caller, mac).await)
        }
        (&Method::GET, ["api", "v1", "groups"]) => ("groups", lifecycle::groups(app)),
        // Admin routes: control socket only.
        (_, ["api", "v1", ..]) if !caller.is_admin() && is_admin_route(&method, segs) => (
            "forbidden",
            error_response(
                StatusCode::FORBIDDEN,
                "this route is only available on the control socket",
            ),
        ),
        (&Method::POST, ["api", "v1", "nodes"]) => {
            ("node_add", api::add_node(app, req, caller).await)
        }
        (&Method::PATCH, ["api", "v1", "nodes", mac]) => {
            ("node_set", api::set_node(app, req, caller, mac).await)
        }
        (&Method::DELETE, ["api", "v1", "nodes", mac]) => {
            ("node_rm", api::remove_node(app, caller, mac).await)
        }
        (&Method::POST, ["api", "v1", "reload"]) => ("reload", api::reload(app, caller).await),
        (&Method::POST, ["api", "v1", "reprovision"]) => (
            "reprovision",
            lifecycle::reprovision(app, req, caller).await,
        ),
        (&Method::POST, ["api", "v1", "nodes", mac, "adopt"]) => {
            ("node_adopt", api::adopt_node(app, req, caller, mac).await)
        }
        (&Method::GET, ["api", "v1", "relay"]) => ("relay", api::relay_overview(app).await),
        (&Method::POST, ["api", "v1", "relay", "retry"]) => {
            ("relay_retry", api::relay_retry(app, req, caller).await)
        }
        (&Method::POST, ["api", "v1", "relay", "drop"]) => {
            ("relay_drop", api::relay_drop(app, req, caller).await)
        }
        (_, ["api", ..]) | (_, ["healthz"]) | (_, ["metrics"]) => (
            "other",
            error_response(StatusCode::NOT_FOUND, "no such route or method"),
        ),
        _ => ("other", error_response(StatusCode::NOT_FOUND, "not found")),
    }
}

fn is_admin_route(method: &Method, segs: &[&str]) -> bool {
    matches!(
        (method, segs),
        (&Method::POST, ["api", "v1", "nodes"])
            | (&Method::PATCH, ["api", "v1", "nodes", _])
            | (&Method::DELETE, ["api", "v1", "nodes", _])
            | (&Method::POST, ["api", "v1", "reload"])
            | (&Method::POST, ["api", "v1", "reprovision"])
            | (&Method::POST, ["api", "v1", "nodes", _, "adopt"])
            | (&Method::GET, ["api", "v1", "relay"])
            | (&Method::POST, ["api", "v1", "relay", _])
    )
}
