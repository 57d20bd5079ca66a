//! Sessions of the monitoring page: `POST /api/v1/session` trades a viewer or operator
//! API token for a random session id in an HttpOnly, SameSite=Strict cookie; the page's
//! fetches and its event stream then travel with the cookie. Sessions live in memory
//! only (a restart logs everyone out), at most [`MAX_SESSIONS`] of them (the oldest goes
//! first). Every use re-reads the token's row, so a revoked or expired token ends its
//! sessions at once; a revocation also ends their open event streams.

use super::api::read_json;
use super::auth::{self, unix_now, AuthError, Role};
use super::response::{error_response, json_response, Body};
use super::router::Caller;
use crate::app::App;
use bootd_api::{SessionInfo, SessionLogin, SessionState};
use bootd_proto::limit::KeyedLimiter;
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Sessions kept at most; a new one past that ends the oldest.
pub const MAX_SESSIONS: usize = 1024;
/// How long a session lasts (and the cookie's `Max-Age`), unless its token expires sooner.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Login attempts per second one source address may make, sustained.
pub const LOGIN_RATE: f64 = 1.0;
/// Login attempts one source address may make at once.
pub const LOGIN_BURST: u32 = 10;
/// Source addresses the login limiter tracks at most.
pub const LOGIN_TRACKED: usize = 4096;

/// One session: whose token it stands for, until when, and how to end its streams.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API token's name.
    pub name: String,
    /// The API token's hash: the row every use re-reads.
    pub token_hash: String,
    pub role: Role,
    /// Seconds since the epoch.
    pub expires_at: i64,
    /// Cancelled when the session ends (logout, revocation, eviction).
    pub ended: CancellationToken,
    /// Order of creation (the smallest is evicted first).
    serial: u64,
}

#[derive(Debug, Default)]
struct Table {
    /// SHA-256 of the session id → session (the ids themselves are not kept).
    by_hash: HashMap<String, Session>,
    serial: u64,
}

/// The session table and the login limiter.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<Table>,
    logins: Mutex<KeyedLimiter<IpAddr>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            table: Mutex::new(Table::default()),
            logins: Mutex::new(KeyedLimiter::new(LOGIN_RATE, LOGIN_BURST, LOGIN_TRACKED)),
        }
    }
}

/// A fresh session id: 32 random bytes in lowercase hex.
fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// Whether `addr` may try a login now (taking one attempt); else how long to wait.
    pub fn admit_login(&self, addr: IpAddr) -> Result<(), Duration> {
        let mut l = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        l.take(&addr, Instant::now())
    }

    /// Opens a session for a checked token; returns its id and the session. It ends at
    /// `now + SESSION_TTL` or when the token expires, whichever comes first.
    pub fn open(
        &self,
        name: &str,
        token_hash: &str,
        role: Role,
        token_expires_at: Option<i64>,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = new_id()?;
        let now = unix_now();
        let ttl = i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX);
        let expires_at =
            token_expires_at.map_or(now.saturating_add(ttl), |t| t.min(now.saturating_add(ttl)));
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.by_hash.retain(|_, s| {
            let live = s.expires_at > now;
            if !live {
                s.ended.cancel();
            }
            live
        });
        while t.by_hash.len() >= MAX_SESSIONS {
            let oldest = t
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(k, _)| k.clone());
            match oldest.and_then(|k| t.by_hash.remove(&k)) {
                Some(s) => s.ended.cancel(),
                None => break,
            }
        }
        t.serial += 1;
        let session = Session {
            name: name.to_string(),
            token_hash: token_hash.to_string(),
            role,
            expires_at,
            ended: CancellationToken::new(),
            serial: t.serial,
        };
        t.by_hash
            .insert(crate::nodes::token::hash(&id), session.clone());
        Ok((id, session))
    }

    /// The live session of `id`, if any (an expired one is ended here).
    pub fn get(&self, id: &str) -> Option<Session> {
        if !bootd_proto::auth::is_session_id(id) {
            return None;
        }
        let key = crate::nodes::token::hash(id);
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let s = t.by_hash.get(&key)?;
        if s.expires_at > unix_now() {
            return Some(s.clone());
        }
        if let Some(s) = t.by_hash.remove(&key) {
            s.ended.cancel();
        }
        None
    }

    /// Ends the session of `id`; whether there was one.
    pub fn end(&self, id: &str) -> bool {
        if !bootd_proto::auth::is_session_id(id) {
            return false;
        }
        let key = crate::nodes::token::hash(id);
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match t.by_hash.remove(&key) {
            Some(s) => {
                s.ended.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends every session of the token named `name`; how many there were.
    pub fn end_token(&self, name: &str) -> usize {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let before = t.by_hash.len();
        t.by_hash.retain(|_, s| {
            let keep = s.name != name;
            if !keep {
                s.ended.cancel();
            }
            keep
        });
        before - t.by_hash.len()
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_hash
            .len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value of a new session; `secure` adds `Secure` (the request came
/// over TLS).
pub fn cookie(id: &str, max_age: Duration, secure: bool) -> String {
    let mut c = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::SESSION_COOKIE,
        max_age.as_secs()
    );
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    cookie("", Duration::ZERO, secure)
}

/// Largest login body.
const MAX_LOGIN_BODY: usize = 4096;

/// 429 with `Retry-After` for a source address over its login rate.
fn too_many_logins(wait: Duration) -> Response<Body> {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut r = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many login attempts: retry in {secs} s"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Refuses a browser request sent from another site: when an `Origin` header is
/// present, its host must be the request's `Host` (the cookie is SameSite=Strict too;
/// this keeps another site from logging a browser in with a token of its own).
fn same_origin<B>(req: &Request<B>) -> Result<(), Box<Response<Body>>> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "cross-site request refused",
        ))),
    }
}

/// Adds `Set-Cookie` and `Cache-Control: no-store` to an answer.
fn with_cookie(mut r: Response<Body>, cookie: &str) -> Response<Body> {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn info(s: &Session) -> SessionInfo {
    SessionInfo {
        name: s.name.clone(),
        role: s.role.as_str().to_string(),
        expires_at: s.expires_at,
    }
}

/// `POST /api/v1/session` `{"token": "..."}`: checks a viewer or operator API token and
/// answers a session cookie. Rate limited per source address; a wrong token is a JSON
/// 401 without a cookie.
pub async fn login(app: &Arc<App>, req: Request<Incoming>, caller: &Caller) -> Response<Body> {
    let peer = caller.ip();
    if let Some(ip) = peer {
        if let Err(wait) = app.sessions.admit_login(ip) {
            app.metrics.auth_refused.inc();
            tracing::info!(peer = %ip, "monitoring login rate limited");
            return too_many_logins(wait);
        }
    }
    if let Err(refused) = same_origin(&req) {
        return *refused;
    }
    let secure = auth::over_tls(&req);
    let body: SessionLogin = match read_json(req, MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let token = body.token.trim();
    let checked = if token.starts_with(bootd_proto::auth::API_TOKEN_PREFIX)
        && bootd_proto::auth::plausible_token(token)
    {
        let hash = crate::nodes::token::hash(token);
        auth::check_hash(app, &hash).map(|(who, expires)| (who, expires, hash))
    } else {
        Err(AuthError::Unknown)
    };
    let (who, expires, hash) = match checked {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(peer = ?peer, reason = %why, "monitoring login refused");
            return auth::unauthorized(app, why);
        }
    };
    let (id, s) = match app.sessions.open(&who.name, &hash, who.role, expires) {
        Ok(o) => o,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!(peer = ?peer, token = %who.name, role = who.role.as_str(), "monitoring session opened");
    let max_age = u64::try_from(s.expires_at.saturating_sub(unix_now())).unwrap_or(0);
    with_cookie(
        json_response(StatusCode::OK, &info(&s)),
        &cookie(&id, Duration::from_secs(max_age), secure),
    )
}

/// `POST /api/v1/session/logout`: ends the cookie's session (if any) and clears the
/// cookie.
pub fn logout(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if let Err(refused) = same_origin(req) {
        return *refused;
    }
    let ended = auth::session_id_of(req).is_some_and(|id| app.sessions.end(&id));
    if ended {
        tracing::info!("monitoring session ended by logout");
    }
    with_cookie(
        json_response(StatusCode::OK, &serde_json::json!({ "logged_out": ended })),
        &cleared_cookie(auth::over_tls(req)),
    )
}

/// `GET /api/v1/session`: the caller's session and whether the read API is open without
/// one; the page decides from it whether to ask for a token.
pub fn show(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let session = match auth::session(app, req) {
        Ok(s) => Some(info(&s)),
        Err(AuthError::Store) => return auth::unauthorized(app, AuthError::Store),
        Err(_) => None,
    };
    let mut r = json_response(
        StatusCode::OK,
        &SessionState {
            session,
            read_public: app.config().http.read_public,
        },
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_get_end() {
        let s = Sessions::default();
        let (id, one) = s.open("ci", "h1", Role::Viewer, None).expect("open");
        assert!(bootd_proto::auth::is_session_id(&id), "{id}");
        assert_eq!(s.get(&id).map(|x| x.name), Some("ci".to_string()));
        assert!(s.get(&"0".repeat(64)).is_none());
        assert!(s.get("not-an-id").is_none());
        assert!(s.end(&id));
        assert!(one.ended.is_cancelled());
        assert!(s.get(&id).is_none());
        assert!(!s.end(&id));
    }

    #[test]
    fn a_token_expiring_first_bounds_the_session() {
        let s = Sessions::default();
        let soon = unix_now() + 60;
        let (_, one) = s.open("ci", "h", Role::Viewer, Some(soon)).expect("open");
        assert_eq!(one.expires_at, soon);
        let (id, gone) = s
            .open("ci", "h", Role::Viewer, Some(unix_now() - 1))
            .expect("open");
        assert!(s.get(&id).is_none());
        assert!(gone.ended.is_cancelled());
        let (_, long) = s.open("ci", "h", Role::Viewer, None).expect("open");
        let ttl = i64::try_from(SESSION_TTL.as_secs()).expect("ttl");
        assert!(long.expires_at > unix_now() + ttl - 5);
    }

    #[test]
    fn revoking_a_token_ends_its_sessions_only() {
        let s = Sessions::default();
        let (a, sa) = s.open("a", "ha", Role::Viewer, None).expect("open");
        let (b, _) = s.open("b", "hb", Role::Operator, None).expect("open");
        let (a2, _) = s.open("a", "ha", Role::Viewer, None).expect("open");
        assert_eq!(s.end_token("a"), 2);
        assert!(sa.ended.is_cancelled());
        assert!(s.get(&a).is_none() && s.get(&a2).is_none());
        assert!(s.get(&b).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_the_oldest_goes_first() {
        let s = Sessions::default();
        let (first, one) = s.open("t", "h", Role::Viewer, None).expect("open");
        let (second, _) = s.open("t", "h", Role::Viewer, None).expect("open");
        for _ in 2..MAX_SESSIONS {
            s.open("t", "h", Role::Viewer, None).expect("open");
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        let (last, _) = s.open("t", "h", Role::Viewer, None).expect("open");
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first).is_none());
        assert!(one.ended.is_cancelled());
        assert!(s.get(&second).is_some() && s.get(&last).is_some());
    }

    #[test]
    fn logins_are_limited_per_address() {
        let s = Sessions::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..LOGIN_BURST {
            assert!(s.admit_login(a).is_ok());
        }
        assert!(s.admit_login(a).is_err());
        assert!(s.admit_login(b).is_ok());
    }

    #[test]
    fn cookies_carry_their_attributes() {
        let c = cookie("ab", SESSION_TTL, false);
        assert_eq!(
            c,
            "bootd_session=ab; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert!(cookie("ab", SESSION_TTL, true).ends_with("; Secure"));
        assert!(cleared_cookie(false).starts_with("bootd_session=; "));
        assert!(cleared_cookie(false).contains("Max-Age=0"));
    }
}
