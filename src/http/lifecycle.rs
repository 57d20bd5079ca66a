//! The lifecycle routes: `GET /api/v1/groups` (state of every group), the public
//! `POST /api/v1/groups/{name}/progress` (a formation hook's report, with the token of
//! its delivery) and the admin `POST /api/v1/reprovision` (control socket only).

use super::api::{read_json, registry_error};
use super::response::{error_response, json_response, Body};
use super::router::Caller;
use crate::app::App;
use crate::lifecycle::reprovision::{self, ReprovisionError};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;

/// Largest reprovision body (a list of MACs).
const MAX_BODY: usize = 1024 * 1024;

/// `GET /api/v1/groups`.
pub fn groups(app: &Arc<App>) -> Response<Body> {
    json_response(StatusCode::OK, &crate::lifecycle::groups::overview(app))
}

/// Largest progress report.
const MAX_PROGRESS_BODY: usize = 16 * 1024;
/// Longest message kept with a progress report.
const MAX_PROGRESS_MESSAGE: usize = 512;

/// `POST /api/v1/groups/{name}/progress`: `{"progress": 90, "message": "etcd up"}` with
/// `Authorization: Bearer <progress_token>` from the hook's payload.
pub async fn group_progress(app: &Arc<App>, req: Request<Incoming>, name: &str) -> Response<Body> {
    use crate::lifecycle::groups::ReportError;
    let token = super::api::bearer(&req).unwrap_or_default();
    if !app.lifecycle.groups.accepts(name, &token) {
        return error_response(
            StatusCode::FORBIDDEN,
            format!("no formation of group {name} is under way with this token"),
        );
    }
    let body: bootd_api::GroupProgress = match read_json(req, MAX_PROGRESS_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let message: String = body
        .message
        .unwrap_or_default()
        .chars()
        .take(MAX_PROGRESS_MESSAGE)
        .collect();
    match app
        .lifecycle
        .groups
        .report(name, &token, body.progress, message)
    {
        Ok(r) => {
            tracing::info!(group = %name, progress = r.progress, message = %r.message,
                "cluster formation progress");
            json_response(
                StatusCode::OK,
                &serde_json::json!({"group": name, "progress": r.progress}),
            )
        }
        Err(e @ ReportError::Refused) => error_response(StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ ReportError::OutOfRange(_)) => {
            error_response(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// `POST /api/v1/reprovision` (control socket): `{"macs": [...]}` | `{"group": G}` |
/// `{"all": true}`, with an optional `"profile"`.
pub async fn reprovision(
    app: &Arc<App>,
    req: Request<Incoming>,
    caller: &Caller,
) -> Response<Body> {
    let body: reprovision::Request = match read_json(req, MAX_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let asked = serde_json::to_string(&body).unwrap_or_default();
    match reprovision::run(app, body, &caller.operator()).await {
        Ok(v) => {
            let after = serde_json::to_string(&v).unwrap_or_default();
            super::tokens::record(app, caller, "reprovision", &asked, String::new(), after).await;
            json_response(StatusCode::OK, &v)
        }
        Err(ReprovisionError::BadRequest(e)) => error_response(StatusCode::BAD_REQUEST, e),
        Err(e @ ReprovisionError::NotFound(_)) => {
            error_response(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(ReprovisionError::Registry { mac, source }) => {
            let r = registry_error(source);
            tracing::warn!(%mac, "reprovision stopped at this node");
            r
        }
    }
}
