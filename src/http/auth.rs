//! API tokens for people and systems: issued on the control socket (`bootctl token
//! create`), shown once, stored as SHA-256 hashes; checked on the network listener for
//! the routes whose table entry asks for them. The read routes also take the monitoring
//! page's session cookie (`session.rs`).

use super::response::{error_response, Body};
use crate::app::App;
use crate::store::ApiTokenRow;
use hyper::{header, Request, Response, StatusCode};

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads the fleet.
    Viewer,
    /// Reads, and (with `[http] operator_api`) changes nodes over TCP.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// A caller that presented a valid API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// Why a request carries no valid API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this route needs an API token: Authorization: Bearer <token> (bootctl token create)")]
    Missing,
    #[error("unknown token")]
    Unknown,
    #[error("token revoked")]
    Revoked,
    #[error("token expired")]
    Expired,
    #[error("cannot check the token now")]
    Store,
    #[error("no such session (logged out or expired): log in again")]
    SessionEnded,
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh random API token: `bootd_` and 64 hex digits.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    let mut s = String::from(bootd_proto::auth::API_TOKEN_PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

/// The bearer token of a request (`Authorization: Bearer <token>`).
pub fn bearer_of<B>(req: &Request<B>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?;
    bootd_proto::auth::bearer(v.as_bytes()).map(str::to_string)
}

/// The session id a request's cookie carries, if any.
pub fn session_id_of<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .find_map(|v| bootd_proto::auth::cookie(v.as_bytes(), SESSION_COOKIE))
        .map(str::to_string)
}

/// The cookie the monitoring page's session travels in.
pub const SESSION_COOKIE: &str = "bootd_session";

/// Marks a request that came over TLS: a TLS listener puts it in the request's
/// extensions, and the session cookie then carries `Secure`. There is no TLS listener
/// yet, so today no request carries it and the cookie goes without `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Whether the request came over TLS.
pub fn over_tls<B>(req: &Request<B>) -> bool {
    req.extensions().get::<OverTls>().is_some()
}

/// The live token row of `hash`: its identity and expiry (every time from the store: a
/// revocation holds at once).
pub fn check_hash(app: &App, hash: &str) -> Result<(Identity, Option<i64>), AuthError> {
    let row: ApiTokenRow = match app.store.api_token_by_hash(hash) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(AuthError::Unknown),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read API tokens");
            return Err(AuthError::Store);
        }
    };
    if row.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if row.expires_at.is_some_and(|t| t <= unix_now()) {
        return Err(AuthError::Expired);
    }
    let role = Role::parse(&row.role).ok_or(AuthError::Unknown)?;
    Ok((
        Identity {
            name: row.name,
            role,
        },
        row.expires_at,
    ))
}

/// Checks an API token against the store (every time: a revocation holds at once).
pub fn check(app: &App, token: &str) -> Result<Identity, AuthError> {
    if !token.starts_with(bootd_proto::auth::API_TOKEN_PREFIX) {
        return Err(AuthError::Unknown);
    }
    check_hash(app, &crate::nodes::token::hash(token)).map(|(id, _)| id)
}

/// The identity of a request's bearer API token (the session cookie does not count).
pub fn identify<B>(app: &App, req: &Request<B>) -> Result<Identity, AuthError> {
    let token = bearer_of(req).ok_or(AuthError::Missing)?;
    check(app, &token)
}

/// The live session of a request's cookie. The session's token row is read again: a
/// token revoked or expired since the login ends the session here.
pub fn session<B>(app: &App, req: &Request<B>) -> Result<super::session::Session, AuthError> {
    let id = session_id_of(req).ok_or(AuthError::Missing)?;
    let s = app.sessions.get(&id).ok_or(AuthError::SessionEnded)?;
    match check_hash(app, &s.token_hash) {
        Ok((who, _)) if who.name == s.name => Ok(s),
        Ok(_) => {
            app.sessions.end(&id);
            Err(AuthError::SessionEnded)
        }
        Err(AuthError::Store) => Err(AuthError::Store),
        Err(why) => {
            app.sessions.end(&id);
            Err(why)
        }
    }
}

/// The identity of a caller of a read route: its bearer token, else its session cookie.
pub fn identify_read<B>(app: &App, req: &Request<B>) -> Result<Identity, AuthError> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return identify(app, req);
    }
    if session_id_of(req).is_none() {
        return Err(AuthError::Missing);
    }
    session(app, req).map(|s| Identity {
        name: s.name,
        role: s.role,
    })
}

/// 401 with a JSON error and `WWW-Authenticate: Bearer`.
pub fn unauthorized(app: &App, why: AuthError) -> Response<Body> {
    app.metrics.auth_refused.inc();
    let status = if why == AuthError::Store {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut r = error_response(status, why.to_string());
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"bootd\""),
    );
    r
}
