//! Control-socket routes for API tokens (`bootctl token ...`) and the audit log
//! (`bootctl audit`). Every change made here is audited too.

use super::api::read_json;
use super::auth::{self, Role};
use super::response::{error_response, json_response, Body};
use super::router::Caller;
use crate::app::App;
use crate::store::{ApiTokenRow, AuditRow};
use bootd_api::{AuditEntry, TokenCreate, TokenCreated, TokenInfo};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// Longest token name.
const MAX_NAME: usize = 64;

fn info(r: &ApiTokenRow) -> TokenInfo {
    TokenInfo {
        name: r.name.clone(),
        role: r.role.clone(),
        created_at: r.created_at.clone(),
        expires_at: r.expires_at,
        revoked_at: r.revoked_at.clone(),
    }
}

/// Records one change by `caller` in the audit log (a failure is logged, not fatal:
/// the change itself is already durable).
pub async fn record(
    app: &App,
    caller: &Caller,
    action: &str,
    target: &str,
    before: String,
    after: String,
) {
    let row = AuditRow {
        at: crate::store::now_rfc3339(),
        at_unix: auth::unix_now(),
        who: caller.operator(),
        action: action.to_string(),
        target: target.to_string(),
        before,
        after,
    };
    if let Err(e) = app.store.audit(row).await {
        tracing::warn!(error = %e, action, target, "cannot record the audit entry");
    }
}

/// `POST /api/v1/tokens`: issues a token, shown once.
pub async fn create(app: &Arc<App>, req: Request<Incoming>, caller: &Caller) -> Response<Body> {
    let body: TokenCreate = match read_json(req, 4096).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let valid_name = !body.name.is_empty()
        && body.name.len() <= MAX_NAME
        && body
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_name {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("token name must be 1-{MAX_NAME} letters, digits, '-', '_' or '.'"),
        );
    }
    let Some(role) = Role::parse(&body.role) else {
        return error_response(StatusCode::BAD_REQUEST, "role must be viewer or operator");
    };
    let token = match auth::generate() {
        Ok(t) => t,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let expires_at = body
        .expires_in
        .map(|s| auth::unix_now().saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
    let row = ApiTokenRow {
        name: body.name.clone(),
        role: role.as_str().to_string(),
        hash: crate::nodes::token::hash(&token),
        created_at: crate::store::now_rfc3339(),
        expires_at,
        revoked_at: None,
    };
    match app.store.create_api_token(row.clone()).await {
        Ok(true) => {}
        Ok(false) => {
            return error_response(
                StatusCode::CONFLICT,
                format!("a token named {} exists (revoke it first)", body.name),
            )
        }
        Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
    tracing::info!(operator = %caller.operator(), name = %row.name, role = %row.role, "API token created");
    let after = match expires_at {
        Some(t) => format!("role={} expires_at={t}", row.role),
        None => format!("role={}", row.role),
    };
    record(app, caller, "token_create", &row.name, String::new(), after).await;
    json_response(
        StatusCode::CREATED,
        &TokenCreated {
            info: info(&row),
            token,
        },
    )
}

/// `GET /api/v1/tokens`: every token, without secrets.
pub fn list(app: &Arc<App>) -> Response<Body> {
    match app.store.list_api_tokens() {
        Ok(rows) => json_response(StatusCode::OK, &rows.iter().map(info).collect::<Vec<_>>()),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `DELETE /api/v1/tokens/{name}`: revokes at once.
pub async fn revoke(app: &Arc<App>, caller: &Caller, name: &str) -> Response<Body> {
    match app
        .store
        .revoke_api_token(name.to_string(), crate::store::now_rfc3339())
        .await
    {
        Ok(true) => {
            // Its monitoring sessions end now, open event streams included.
            let sessions = app.sessions.end_token(name);
            tracing::info!(operator = %caller.operator(), name, sessions, "API token revoked");
            record(
                app,
                caller,
                "token_revoke",
                name,
                "live".into(),
                "revoked".into(),
            )
            .await;
            json_response(StatusCode::OK, &serde_json::json!({ "revoked": name }))
        }
        Ok(false) => error_response(StatusCode::NOT_FOUND, format!("no live token named {name}")),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/v1/audit?since=<epoch seconds>`.
pub fn audit(app: &Arc<App>, query: Option<&str>) -> Response<Body> {
    let since = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("since="))
        .map(|v| v.parse::<i64>());
    let since = match since {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "since must be seconds since the epoch",
            )
        }
    };
    match app.store.audit_since(since) {
        Ok(rows) => json_response(
            StatusCode::OK,
            &rows
                .into_iter()
                .map(|r| AuditEntry {
                    at: r.at,
                    who: r.who,
                    action: r.action,
                    target: r.target,
                    before: r.before,
                    after: r.after,
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
