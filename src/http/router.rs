//! Two route tables: the public one, served on the network listener and the control
//! socket, and the admin one, served on the control socket only. The network listener
//! is built with the public table alone ([`handle_public`]), so no admin handler is
//! reachable from it; an admin route asked for there is answered 403 from
//! [`ADMIN_ROUTES`], the same table the control socket dispatches from.

use super::response::{error_response, text_response, Body};
use super::{api, assets, auth, boot, events, hardware, lifecycle, monitoring, session, tokens};
use crate::app::App;
use crate::mac::MacAddr;
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
    /// A client of the network listener that presented a valid API token.
    Token {
        name: String,
        role: auth::Role,
        peer: SocketAddr,
    },
}

impl Caller {
    /// The network address of the caller; None on the control socket.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Caller::Network(peer) | Caller::Token { peer, .. } => Some(peer.ip()),
            Caller::Control { .. } => None,
        }
    }

    /// Whether this caller speaks with an operator's rights (the control socket, or an
    /// operator API token admitted by `[http] operator_api`).
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Control { .. } => true,
            Caller::Token { role, .. } => *role == auth::Role::Operator,
            Caller::Network(_) => false,
        }
    }

    /// The source recorded for operator actions: `operator:<uid>`.
    pub fn operator(&self) -> String {
        match self {
            Caller::Control { uid, .. } => format!("operator:{uid}"),
            Caller::Network(peer) => format!("network:{peer}"),
            Caller::Token { name, .. } => format!("token:{name}"),
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
    TokenCreate,
    TokenList,
    TokenRevoke,
    Audit,
}

/// One admin route: method, path pattern (`{mac}` stands for one segment) and action.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoute {
    pub method: &'static str,
    pub pattern: &'static str,
    pub action: AdminAction,
    /// Who may call it over TCP: `Operator` (with `[http] operator_api`) or `ControlOnly`.
    pub access: Access,
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
            AdminAction::TokenCreate => "token_create",
            AdminAction::TokenList => "token_list",
            AdminAction::TokenRevoke => "token_revoke",
            AdminAction::Audit => "audit",
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
        access: Access::Operator,
    },
    AdminRoute {
        method: "PATCH",
        pattern: "/api/v1/nodes/{mac}",
        action: AdminAction::NodeSet,
        access: Access::Operator,
    },
    AdminRoute {
        method: "DELETE",
        pattern: "/api/v1/nodes/{mac}",
        action: AdminAction::NodeRemove,
        access: Access::Operator,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/reload",
        action: AdminAction::Reload,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/reprovision",
        action: AdminAction::Reprovision,
        access: Access::Operator,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/nodes/{mac}/adopt",
        action: AdminAction::NodeAdopt,
        access: Access::Operator,
    },
    AdminRoute {
        method: "GET",
        pattern: "/api/v1/relay",
        action: AdminAction::Relay,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/relay/retry",
        action: AdminAction::RelayRetry,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/relay/drop",
        action: AdminAction::RelayDrop,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "POST",
        pattern: "/api/v1/tokens",
        action: AdminAction::TokenCreate,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "GET",
        pattern: "/api/v1/tokens",
        action: AdminAction::TokenList,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "DELETE",
        pattern: "/api/v1/tokens/{name}",
        action: AdminAction::TokenRevoke,
        access: Access::ControlOnly,
    },
    AdminRoute {
        method: "GET",
        pattern: "/api/v1/audit",
        action: AdminAction::Audit,
        access: Access::ControlOnly,
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
    let routed = match decode(&req) {
        Err(invalid) => invalid.answer(),
        Ok(path) => {
            let segs = segments(&path);
            network(&app, req, peer, &segs).await
        }
    };
    count(&app, "network", routed)
}

/// Routes one network request: the public table, each route admitted by its access;
/// then admin routes open to operator tokens when `[http] operator_api` is on.
async fn network(
    app: &Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    segs: &[&str],
) -> Routed {
    if let Some((route, cap)) = public_route(req.method(), segs) {
        return match admit(app, &req, route.access, peer) {
            Ok(caller @ Caller::Network(_))
                if matches!(route.access, Access::Machine | Access::Hook) =>
            {
                let mac = cap.first().and_then(|m| m.parse::<MacAddr>().ok());
                if let Err(wait) = app.callback_limits.admit(mac, peer.ip()) {
                    app.metrics.callbacks_limited.inc();
                    tracing::info!(%peer, path = %req.uri().path(), "callback rate limited");
                    return (route.label, too_many(wait));
                }
                (
                    route.label,
                    dispatch_public(app, req, &caller, route.action, &cap).await,
                )
            }
            Ok(caller) => (
                route.label,
                dispatch_public(app, req, &caller, route.action, &cap).await,
            ),
            Err(refused) => (route.label, *refused),
        };
    }
    let over_tcp = admin_route(req.method(), segs)
        .is_some_and(|(r, _)| r.access == Access::Operator && app.config().http.operator_api);
    if !over_tcp {
        return not_public(req.method(), segs);
    }
    let caller = match admit(app, &req, Access::Operator, peer) {
        Ok(c) => c,
        Err(refused) => return ("forbidden", *refused),
    };
    match admin(app, req, &caller, segs).await {
        Ok(routed) => routed,
        Err(req) => not_public(req.method(), segs),
    }
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

/// Who may call a route on the network listener (the control socket may call all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, assets, boot scripts and configs (firmware has no credentials),
    /// the monitoring page's shell (it holds no fleet data) and its login and logout.
    Open,
    /// A machine's callback: the handler checks the node token (or, with
    /// `[http] operator_api`, an operator API token).
    Machine,
    /// A group's formation hook: the handler checks the bearer against the token bootd
    /// sent in that delivery (no API token, node token or operator API applies).
    Hook,
    /// A viewer or operator API token, or the monitoring page's session cookie, unless
    /// `[http] read_public`.
    Read,
    /// Like `Read`, unless `[http] metrics_public`.
    Metrics,
    /// An operator API token when `[http] operator_api` is on; else control socket only.
    Operator,
    /// The control socket only.
    ControlOnly,
}

/// What a public route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicAction {
    Healthz,
    Metrics,
    BootScript,
    ConfigFile,
    Config,
    Assets,
    Monitoring,
    Events,
    Status,
    Nodes,
    Node,
    HardwarePost,
    HardwareGet,
    HardwareDiscovered,
    Phase,
    Groups,
    Favicon,
    GroupProgress,
    SessionLogin,
    SessionShow,
    SessionLogout,
}

/// One public route: methods, pattern (`{x}` one segment, `{*rest}` one or more),
/// who may call it, and its metrics label.
#[derive(Debug, Clone, Copy)]
pub struct PublicRoute {
    pub methods: &'static [&'static str],
    pub pattern: &'static str,
    pub access: Access,
    pub action: PublicAction,
    pub label: &'static str,
}

const GET: &[&str] = &["GET"];
const GET_HEAD: &[&str] = &["GET", "HEAD"];
const POST: &[&str] = &["POST"];

/// The public table: served on the network listener (each entry's `access` decides
/// who) and on the control socket (everyone there is an operator).
pub const PUBLIC_ROUTES: &[PublicRoute] = &[
    PublicRoute {
        methods: GET_HEAD,
        pattern: "/healthz",
        access: Access::Open,
        action: PublicAction::Healthz,
        label: "healthz",
    },
    PublicRoute {
        methods: GET,
        pattern: "/metrics",
        access: Access::Metrics,
        action: PublicAction::Metrics,
        label: "metrics",
    },
    PublicRoute {
        methods: GET,
        pattern: "/boot/{file}",
        access: Access::Open,
        action: PublicAction::BootScript,
        label: "boot",
    },
    PublicRoute {
        methods: GET,
        pattern: "/config/{mac}/{file}",
        access: Access::Open,
        action: PublicAction::ConfigFile,
        label: "config",
    },
    PublicRoute {
        methods: GET,
        pattern: "/config/{mac}",
        access: Access::Open,
        action: PublicAction::Config,
        label: "config",
    },
    PublicRoute {
        methods: GET_HEAD,
        pattern: "/assets/{*rest}",
        access: Access::Open,
        action: PublicAction::Assets,
        label: "assets",
    },
    PublicRoute {
        methods: GET_HEAD,
        pattern: "/monitoring",
        access: Access::Open,
        action: PublicAction::Monitoring,
        label: "monitoring",
    },
    PublicRoute {
        methods: GET_HEAD,
        pattern: "/favicon.ico",
        access: Access::Open,
        action: PublicAction::Favicon,
        label: "favicon",
    },
    // The monitoring page's login: a token for a session cookie (rate limited per
    // source address), the session's state, and logout.
    PublicRoute {
        methods: POST,
        pattern: "/api/v1/session",
        access: Access::Open,
        action: PublicAction::SessionLogin,
        label: "session",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/session",
        access: Access::Open,
        action: PublicAction::SessionShow,
        label: "session",
    },
    PublicRoute {
        methods: POST,
        pattern: "/api/v1/session/logout",
        access: Access::Open,
        action: PublicAction::SessionLogout,
        label: "session",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/events",
        access: Access::Read,
        action: PublicAction::Events,
        label: "events",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/status",
        access: Access::Read,
        action: PublicAction::Status,
        label: "status",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/nodes",
        access: Access::Read,
        action: PublicAction::Nodes,
        label: "nodes",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/nodes/{mac}",
        access: Access::Read,
        action: PublicAction::Node,
        label: "node",
    },
    PublicRoute {
        methods: POST,
        pattern: "/api/v1/nodes/{mac}/hardware",
        access: Access::Machine,
        action: PublicAction::HardwarePost,
        label: "hardware",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/nodes/{mac}/hardware",
        access: Access::Read,
        action: PublicAction::HardwareGet,
        label: "hardware",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/hardware/discovered",
        access: Access::Read,
        action: PublicAction::HardwareDiscovered,
        label: "hardware",
    },
    PublicRoute {
        methods: POST,
        pattern: "/api/v1/nodes/{mac}/phase",
        access: Access::Machine,
        action: PublicAction::Phase,
        label: "phase",
    },
    PublicRoute {
        methods: GET,
        pattern: "/api/v1/groups",
        access: Access::Read,
        action: PublicAction::Groups,
        label: "groups",
    },
    // A formation hook reports progress with its delivery's token (checked by the handler),
    // rate limited per source address like machine callbacks.
    PublicRoute {
        methods: &["POST"],
        pattern: "/api/v1/groups/{name}/progress",
        access: Access::Hook,
        action: PublicAction::GroupProgress,
        label: "group_progress",
    },
];

/// Whether `pattern` matches `segs`; the captured segments (`{*rest}` joined by `/`).
fn capture(pattern: &str, segs: &[&str]) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    for (i, p) in pat.iter().enumerate() {
        if p.starts_with("{*") {
            let rest = segs.get(i..).filter(|r| !r.is_empty())?;
            out.push(rest.join("/"));
            return Some(out);
        }
        let s = segs.get(i)?;
        if p.starts_with('{') && p.ends_with('}') {
            out.push((*s).to_string());
        } else if p != s {
            return None;
        }
    }
    (pat.len() == segs.len()).then_some(out)
}

/// The public route `method` and `segs` name, with its captured segments.
pub fn public_route(method: &Method, segs: &[&str]) -> Option<(&'static PublicRoute, Vec<String>)> {
    PUBLIC_ROUTES.iter().find_map(|r| {
        if !r.methods.contains(&method.as_str()) {
            return None;
        }
        capture(r.pattern, segs).map(|c| (r, c))
    })
}

/// 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(wait: std::time::Duration) -> Response<Body> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut r = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many callbacks: retry in {secs} s"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
    }
    r
}

/// The caller a network request acts as on a route of `access`, or the refusal.
fn admit(
    app: &App,
    req: &Request<Incoming>,
    access: Access,
    peer: SocketAddr,
) -> Result<Caller, Box<Response<Body>>> {
    let cfg = app.config();
    let need_token = match access {
        Access::Open => return Ok(Caller::Network(peer)),
        Access::Machine => {
            // An operator token may speak for a node only when the operator API is on;
            // otherwise the bearer is the node's own token, checked by the handler.
            if cfg.http.operator_api {
                if let Ok(id) = auth::identify(app, req) {
                    if id.role == auth::Role::Operator {
                        return Ok(Caller::Token {
                            name: id.name,
                            role: id.role,
                            peer,
                        });
                    }
                }
            }
            return Ok(Caller::Network(peer));
        }
        Access::Hook => return Ok(Caller::Network(peer)),
        Access::Read => !cfg.http.read_public,
        Access::Metrics => !cfg.http.metrics_public && !cfg.http.read_public,
        Access::Operator | Access::ControlOnly => true,
    };
    if !need_token {
        return Ok(Caller::Network(peer));
    }
    // The read routes also take the monitoring page's session cookie; changes never do.
    let who = if matches!(access, Access::Read | Access::Metrics) {
        auth::identify_read(app, req)
    } else {
        auth::identify(app, req)
    };
    let id = who.map_err(|why| {
        tracing::info!(%peer, path = %req.uri().path(), reason = %why, "API request refused");
        Box::new(auth::unauthorized(app, why))
    })?;
    if matches!(access, Access::Operator | Access::ControlOnly) && id.role != auth::Role::Operator {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            format!(
                "token {} is a viewer token: this route needs an operator token",
                id.name
            ),
        )));
    }
    Ok(Caller::Token {
        name: id.name,
        role: id.role,
        peer,
    })
}

/// The public table; the request back when it has no such route.
async fn public(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    segs: &[&str],
) -> Result<Routed, Request<Incoming>> {
    let Some((route, cap)) = public_route(req.method(), segs) else {
        return Err(req);
    };
    Ok((
        route.label,
        dispatch_public(app, req, caller, route.action, &cap).await,
    ))
}

/// Runs a public route's handler.
async fn dispatch_public(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
    action: PublicAction,
    cap: &[String],
) -> Response<Body> {
    let first = cap.first().map(String::as_str).unwrap_or_default();
    let second = cap.get(1).map(String::as_str).unwrap_or_default();
    match action {
        PublicAction::Healthz => api::healthz(app).await,
        PublicAction::Metrics => {
            let held = i64::try_from(assets::cache_bytes()).unwrap_or(i64::MAX);
            app.metrics.asset_cache_bytes.set(held);
            sample_deployments(app);
            crate::relay::metrics::sample(app);
            let body = app.metrics.render(
                &app.registry.count_by_phase(),
                app.started.elapsed().as_secs(),
            );
            text_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            )
        }
        PublicAction::BootScript => match first.strip_suffix(".ipxe") {
            Some(mac) => {
                boot::render(app, mac, req.uri().query(), boot::Doc::Script, caller.ip()).await
            }
            None => error_response(StatusCode::NOT_FOUND, "not found"),
        },
        PublicAction::ConfigFile => {
            boot::render(
                app,
                first,
                req.uri().query(),
                boot::Doc::from_file(second),
                caller.ip(),
            )
            .await
        }
        PublicAction::Config => {
            boot::render(
                app,
                first,
                req.uri().query(),
                boot::Doc::Config,
                caller.ip(),
            )
            .await
        }
        PublicAction::Assets => assets::serve(app, &req, first).await,
        PublicAction::Monitoring => monitoring::page(),
        PublicAction::Events => {
            events::stream(app, req.uri().query(), session_end(app, &req)).await
        }
        PublicAction::Status => api::status(app),
        PublicAction::Nodes => api::list_nodes(app),
        PublicAction::Node => api::show_node(app, first).await,
        PublicAction::HardwarePost => hardware::post(app, req, caller, first).await,
        PublicAction::HardwareGet => hardware::get(app, first),
        PublicAction::HardwareDiscovered => hardware::discovered(app),
        PublicAction::Phase => api::post_phase(app, req, caller, first).await,
        PublicAction::Groups => lifecycle::groups(app),
        PublicAction::Favicon => monitoring::favicon(),
        PublicAction::GroupProgress => lifecycle::group_progress(app, req, first).await,
        PublicAction::SessionLogin => session::login(app, req, caller).await,
        PublicAction::SessionShow => session::show(app, &req),
        PublicAction::SessionLogout => session::logout(app, &req),
    }
}

/// When an event stream read with a session cookie (no bearer token) must end: at the
/// session's end (logout, its token revoked) or expiry.
fn session_end(app: &App, req: &Request<Incoming>) -> Option<events::Until> {
    if req.headers().contains_key(hyper::header::AUTHORIZATION) {
        return None;
    }
    auth::session(app, req).ok().map(|s| events::Until {
        ended: s.ended,
        expires_at: s.expires_at,
    })
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
        AdminAction::TokenCreate => tokens::create(app, req, caller).await,
        AdminAction::TokenList => tokens::list(app),
        AdminAction::TokenRevoke => tokens::revoke(app, caller, mac).await,
        AdminAction::Audit => tokens::audit(app, req.uri().query()),
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
