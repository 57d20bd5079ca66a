//! The control socket: the HTTP API plus admin routes over a Unix socket (mode 0660).
//! Each peer's uid/gid (SO_PEERCRED) is checked, and every mutation is logged with it.

use crate::app::App;
use crate::http::{error_response, handle_control};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another process is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot set up control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control group {0:?} does not exist")]
    NoGroup(String),
}

/// Who may use the control socket besides root and bootd's own user.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub own_uid: u32,
    pub group: Option<u32>,
}

impl Access {
    /// Whether a peer with these credentials may talk to bootd.
    pub fn allows(&self, uid: u32, gid: u32, pid: i32) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        match self.group {
            Some(g) => gid == g || supplementary_groups(pid).contains(&g),
            None => false,
        }
    }
}

/// The supplementary groups of a local process (SO_PEERCRED carries only the primary one).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Groups:")).map(|l| {
                l["Groups:".len()..]
                    .split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Binds the socket: removes a stale file only if nobody answers on it, sets 0660 and the group.
pub fn bind(path: &Path, group: Option<&str>) -> Result<(UnixListener, Access), ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ControlError::NoGroup(name.to_string()))?
                .gid
                .as_raw(),
        ),
        None => None,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
        tracing::info!(path = %path.display(), "removed stale control socket");
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    if let Some(g) = gid {
        // Under the systemd unit (Group=bootd) the socket already has the group, and
        // chown is not even allowed there (SystemCallFilter=~@privileged): only change
        // what differs.
        let current = std::fs::metadata(path).map_err(io)?.gid();
        if current != g {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(g)))
                .map_err(|e| io(std::io::Error::from(e)))?;
        }
    }
    let access = Access {
        own_uid: nix::unistd::geteuid().as_raw(),
        group: gid,
    };
    Ok((listener, access))
}

/// Serves the control socket until shutdown.
pub async fn serve(app: Arc<App>, listener: UnixListener, access: Access) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (uid, gid, pid) = match stream.peer_cred() {
            Ok(c) => (c.uid(), c.gid(), c.pid().unwrap_or(0)),
            Err(e) => {
                tracing::warn!(error = %e, "control peer without credentials; closing");
                continue;
            }
        };
        let allowed = access.allows(uid, gid, pid);
        if !allowed {
            tracing::warn!(uid, gid, pid, "control socket: peer refused");
        }
        let app = app.clone();
        conns.spawn(async move {
            let svc_app = app.clone();
            let svc = service_fn(move |req| {
                let app = svc_app.clone();
                async move {
                    let resp = if allowed {
                        handle_control(app, req, uid, gid, pid).await
                    } else {
                        error_response(
                            StatusCode::FORBIDDEN,
                            format!("uid {uid} may not use the bootd control socket (root, bootd's user or the control group only)"),
                        )
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "control connection"); } }
                _ = app.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(crate::http::DRAIN, conn.as_mut()).await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// Removes the socket file at shutdown.
pub fn unlink(path: &Path) {
    let _ = std::fs::remove_file(path);
}
