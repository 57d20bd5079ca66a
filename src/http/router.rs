//! Two route tables: the public one, served on the network listener and the control
//! socket, and the admin one, served on the control socket only. The network listener
//! is built with the public table alone ([`handle_public`]), so no admin handler is
//! reachable from it; an admin route asked for there is answered 403 from
//! [`ADMIN_ROUTES`], the same table the control socket dispatches from.

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
    /// Whether this caller speaks with an operator's rights (the control socket).
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

/// What an admin route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    NodeAdd,
    NodeSet,
    NodeRemove,
    Reload,
    Reprovision,
    NodeAdopt,
    Relay,
    RelayRetry,
    RelayDrop,
}

/// One admin route: method, path pattern (`{mac}` stands for one segment) and action.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoute {
    pub method: &'static str,
    pub pattern: &'static str,
    pub action: AdminAction,
}

impl AdminRoute {
    /// The metrics label of the route.
    pub fn label(&self) -> &'static str {
        match self.action {
            AdminAction::NodeAdd => "node_add",
            AdminAction::NodeSet => "node_set",
            AdminAction::NodeRemove => "node_rm",
            AdminAction::Reload => "reload",
            AdminAction::Reprovision => "reprovision",
            AdminAction::NodeAdopt => "node_adopt",
            AdminAction::Relay => "relay",
            AdminAction::RelayRetry => "relay_retry",
            AdminAction::RelayDrop => "relay_drop",
        }
    }

    /// The segments captured by the pattern's `{...}` placeholders, if `method` and
    /// `segs` are this route.
    fn captures<'a>(&self, method: &Method, segs: &[&'a str]) -> Option<Vec<&'a str>> {
        if method.as_str() != self.method {
            return None;
        }
        let pattern: Vec<&str> = self.pattern.split('/').filter(|s| !s.is_empty()).collect();
        if pattern.len() != segs.len() {
            return None;
        }
        let mut captured = Vec::new();
        for (p, s) in pattern.iter().zip(segs) {
            if p.starts_with('{') && p.ends_with('}') {
                captured.push(*s);
            } else if p != s {
                return None;
            }
        }
        Some(captured)
    }
}

/// The admin routes: served on the control socket only. The network listener answers
/// them 403 without reaching a handler.
pub const ADMIN_ROUTES: &[AdminRoute] = &[
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/nodes",
        action: AdminAction::NodeAdd,
    },
    AdminRoute {
        method: "PATCH",
        pattern: "/api/v1/nodes/{mac}",
        action: AdminAction::NodeSet,
    },
    AdminRoute {
        method: "DELETE",
        pattern: "/api/v1/nodes/{mac}",
        action: AdminAction::NodeRemove,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/reload",
        action: AdminAction::Reload,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/reprovision",
        action: AdminAction::Reprovision,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/nodes/{mac}/adopt",
        action: AdminAction::NodeAdopt,
    },
    AdminRoute {
        method: "GET",
        pattern: "/api/v1/relay",
        action: AdminAction::Relay,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/relay/retry",
        action: AdminAction::RelayRetry,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/relay/drop",
        action: AdminAction::RelayDrop,
    },
];

/// The admin route `method` and `segs` name, with its captured segments.
fn admin_route<'a>(
    method: &Method,
    segs: &[&'a str],
) -> Option<(&'static AdminRoute, Vec<&'a str>)> {
    ADMIN_ROUTES
        .iter()
        .find_map(|r| r.captures(method, segs).map(|c| (r, c)))
}

/// A route's metrics label and answer.
type Routed = (&'static str, Response<Body>);

/// Answers one request of the network listener from the public table; never fails
/// (errors become `{"error": ...}` responses).
pub async fn handle_public(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let caller = Caller::Network(peer);
    let routed = match decode(&req) {
        Err(invalid) => invalid.answer(),
        Ok(path) => {
            let segs = segments(&path);
            match public(&app, req, &caller, &segs).await {
                Ok(routed) => routed,
                Err(req) => not_public(req.method(), &segs),
            }
        }
    };
    count(&app, "network", routed)
}

/// Answers one request of the control socket: the public table, then the admin table.
pub async fn handle_control(
    app: Arc<App>,
    req: Request<Incoming>,
    uid: u32,
    gid: u32,
    pid: i32,
) -> Response<Body> {
    let caller = Caller::Control { uid, gid, pid };
    let routed = match decode(&req) {
        Err(invalid) => invalid.answer(),
        Ok(path) => {
            let segs = segments(&path);
            match public(&app, req, &caller, &segs).await {
                Ok(routed) => routed,
                Err(req) => match admin(&app, req, &caller, &segs).await {
                    Ok(routed) => routed,
                    Err(_) => not_found(&segs),
                },
            }
        }
    };
    count(&app, "control", routed)
}

/// A request refused before routing.
#[derive(Debug, Clone, Copy)]
enum Invalid {
    Headers,
    PathLength,
    PathEncoding,
}

impl Invalid {
    fn answer(self) -> Routed {
        let response = match self {
            Invalid::Headers => error_response(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("request headers over {MAX_HEADER_BYTES} bytes"),
            ),
            Invalid::PathLength => {
                error_response(StatusCode::URI_TOO_LONG, "request path too long")
            }
            Invalid::PathEncoding => {
                error_response(StatusCode::BAD_REQUEST, "request path is not valid UTF-8")
            }
        };
        ("invalid", response)
    }
}

/// Checks the limits and decodes the path once.
fn decode(req: &Request<Incoming>) -> Result<String, Invalid> {
    let raw = req.uri().path();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(Invalid::Headers);
    }
    if raw.len() > MAX_PATH {
        return Err(Invalid::PathLength);
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|p| p.into_owned())
        .map_err(|_| Invalid::PathEncoding)
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Counts the answer under its route and listener labels and hands it on.
fn count(app: &App, listener: &'static str, (label, response): Routed) -> Response<Body> {
    app.metrics
        .http_requests
        .get_or_create(&crate::metrics::RouteLabels {
            listener: listener.to_string(),
            route: label.to_string(),
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// What the network listener answers outside the public table: 403 for an admin
/// route, else 404.
fn not_public(method: &Method, segs: &[&str]) -> Routed {
    if admin_route(method, segs).is_some() {
        return (
            "forbidden",
            error_response(
                StatusCode::FORBIDDEN,
                "this route is only available on the control socket",
            ),
        );
    }
    not_found(segs)
}

fn not_found(segs: &[&str]) -> Routed {
    match segs {
        ["api", ..] | ["healthz"] | ["metrics"] => (
            "other",
            error_response(StatusCode::NOT_FOUND, "no such route or method"),
        ),
        _ => ("other", error_response(StatusCode::NOT_FOUND, "not found")),
    }
}

/// The public table; the request back when it has no such route.
async fn public(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    segs: &[&str],
) -> Result<Routed, Request<Incoming>> {
    let method = req.method().clone();
    let routed = match (&method, segs) {
        (&Method::GET | &Method::HEAD, ["healthz"]) => ("healthz", api::healthz(app).await),
        (&Method::GET, ["metrics"]) => {
            let held = i64::try_from(assets::cache_bytes()).unwrap_or(i64::MAX);
            app.metrics.asset_cache_bytes.set(held);
            sample_deployments(app);
            crate::relay::metrics::sample(app);
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
        (&Method::GET | &Method::HEAD, ["favicon.ico"]) => ("favicon", monitoring::favicon()),
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
        // A formation hook reports progress with its delivery's token.
        (&Method::POST, ["api", "v1", "groups", name, "progress"]) => (
            "group_progress",
            lifecycle::group_progress(app, req, name).await,
        ),
        _ => return Err(req),
    };
    Ok(routed)
}

/// Samples the metrics read from the registry and the store when /metrics is read:
/// success ratio by profile, active leases, relay backlog.
fn sample_deployments(app: &App) {
    let nodes = app.registry.list();
    let pairs: Vec<(String, &str)> = nodes
        .iter()
        .map(|n| (app.registry.effective_profile(n).name, n.phase.name()))
        .collect();
    app.metrics
        .sample_success(pairs.iter().map(|(p, ph)| (p.as_str(), *ph)));
    if let Ok(leases) = app.store.load_leases() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        let active = leases
            .iter()
            .filter(|l| l.state == "bound" && l.expires > now)
            .count();
        app.metrics
            .dhcp_leases_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
    }
}

/// The admin table (control socket only); the request back when it has no such route.
async fn admin(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    segs: &[&str],
) -> Result<Routed, Request<Incoming>> {
    let Some((route, captured)) = admin_route(req.method(), segs) else {
        return Err(req);
    };
    let mac = captured.first().copied().unwrap_or_default();
    let response = match route.action {
        AdminAction::NodeAdd => api::add_node(app, req, caller).await,
        AdminAction::NodeSet => api::set_node(app, req, caller, mac).await,
        AdminAction::NodeRemove => api::remove_node(app, caller, mac).await,
        AdminAction::Reload => api::reload(app, caller).await,
        AdminAction::Reprovision => lifecycle::reprovision(app, req, caller).await,
        AdminAction::NodeAdopt => api::adopt_node(app, req, caller, mac).await,
        AdminAction::Relay => api::relay_overview(app).await,
        AdminAction::RelayRetry => api::relay_retry(app, req, caller).await,
        AdminAction::RelayDrop => api::relay_drop(app, req, caller).await,
    };
    Ok((route.label(), response))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a pattern: `{mac}` becomes a MAC.
    fn concrete(pattern: &str) -> String {
        pattern.replace("{mac}", "52:54:00:00:00:01")
    }

    #[test]
    fn every_admin_route_matches_its_own_pattern_and_nothing_else() {
        for r in ADMIN_ROUTES {
            let path = concrete(r.pattern);
            let segs = segments(&path);
            let method: Method = r.method.parse().expect("method");
            let found = admin_route(&method, &segs).map(|(f, _)| f.action);
            assert_eq!(found, Some(r.action), "{} {path}", r.method);
            assert_eq!(
                not_public(&method, &segs).1.status(),
                StatusCode::FORBIDDEN,
                "{} {path}",
                r.method
            );
        }
        let get = Method::GET;
        assert!(admin_route(&get, &segments("/api/v1/nodes")).is_none());
        assert!(admin_route(&Method::POST, &segments("/api/v1/relay/other")).is_none());
        assert!(admin_route(&Method::PATCH, &segments("/api/v1/nodes")).is_none());
        assert_eq!(
            not_public(&get, &segments("/api/v1/nope")).1.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn admin_routes_capture_the_mac() {
        let segs = segments("/api/v1/nodes/aa:bb:cc:dd:ee:ff/adopt");
        let (route, captured) = admin_route(&Method::POST, &segs).expect("adopt");
        assert_eq!(route.label(), "node_adopt");
        assert_eq!(captured, vec!["aa:bb:cc:dd:ee:ff"]);
    }
}
