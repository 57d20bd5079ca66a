//! The control-socket client: HTTP/1.1 over a Unix socket, typed answers.

use bootd_api::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The socket of a production install.
pub const DEFAULT_SOCKET: &str = "/run/bootd/control.sock";
/// The socket of `bootd run` on embedded defaults in the working directory.
pub const LOCAL_SOCKET: &str = "bootd-state/control.sock";

/// What can go wrong talking to bootd.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("bootd is not running (nothing listens on {0}); start it or pass --socket")]
    Down(PathBuf),
    #[error("permission denied on {0}: run as root or as a member of bootd's control group")]
    Denied(PathBuf),
    #[error("cannot talk to bootd on {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// bootd refused the request; its reason (the status only when it gave none).
    #[error("{}", refusal(*.status, .message))]
    Refused { status: u16, message: String },
    /// A node or group bootd does not know.
    #[error("{0}")]
    Unknown(String),
    #[error("unexpected answer from bootd on {path}: {detail}")]
    Answer { path: String, detail: String },
    #[error("{0}")]
    Usage(String),
    /// `reprovision --wait`: some nodes did not get to running (the table was printed).
    #[error("{0}")]
    Unfinished(String),
}

/// A refusal as the operator reads it: bootd's reason, not an HTTP code.
fn refusal(status: u16, message: &str) -> String {
    if !message.trim().is_empty() {
        return message.to_string();
    }
    let what = match status {
        400 => "bootd refused the request as invalid",
        401 | 403 => "bootd refused the request: not allowed",
        404 => "bootd does not know that",
        409 => "bootd refused the request: it conflicts with the current state",
        500..=599 => "bootd failed to answer the request",
        _ => "bootd refused the request",
    };
    format!("{what} (HTTP {status})")
}

/// The socket to use: the flag or env, else the production path, else the local one.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    let prod = PathBuf::from(DEFAULT_SOCKET);
    if !prod.exists() && Path::new(LOCAL_SOCKET).exists() {
        return PathBuf::from(LOCAL_SOCKET);
    }
    prod
}

/// An answer: the typed body and the JSON as bootd sent it (for `--json`).
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub body: T,
    pub raw: Value,
}

/// A control-socket client.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// A client for the socket at `path`.
    pub fn new(path: PathBuf) -> Client {
        Client { path }
    }

    fn io(&self, e: &dyn std::fmt::Display) -> CtlError {
        CtlError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Sends one request (a body that serializes to `null` is sent empty) and returns
    /// the answer with its body unread (event streams).
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<hyper::Response<hyper::body::Incoming>, CtlError> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    CtlError::Down(self.path.clone())
                }
                std::io::ErrorKind::PermissionDenied => CtlError::Denied(self.path.clone()),
                _ => self.io(&e),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.io(&e))?;
        tokio::spawn(conn);
        let value = serde_json::to_value(body).map_err(|e| self.io(&e))?;
        let payload = if value.is_null() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(&value).map_err(|e| self.io(&e))?)
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bootd")
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .map_err(|e| self.io(&e))?;
        sender.send_request(req).await.map_err(|e| self.io(&e))
    }

    /// The one request helper: any method, a JSON body (`&()` for none), a typed answer;
    /// a 4xx/5xx becomes `Refused` with bootd's `{"error": ...}`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Answer<T>, CtlError> {
        let resp = self.open(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.io(&e))?
            .to_bytes();
        if !status.is_success() {
            return Err(refused(status.as_u16(), &bytes));
        }
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| CtlError::Answer {
            path: path.to_string(),
            detail: e.to_string(),
        })?;
        let body = T::deserialize(&raw).map_err(|e| CtlError::Answer {
            path: path.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Answer { body, raw })
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, CtlError> {
        self.call(Method::GET, path, &()).await
    }
}

/// A refusal from its status and body: bootd's error message, else the body as text.
pub fn refused(status: u16, bytes: &[u8]) -> CtlError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned());
    CtlError::Refused { status, message }
}
