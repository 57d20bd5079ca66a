//! Wiring of the daemon: every listener is bound here before readiness ([`bind`]), then
//! each service starts as a supervised task on the shared `App` ([`Listeners::spawn`]).
//! The adapters between the packet services and bootd's registry live beside it.

mod dhcp_backend;
pub mod settings;
mod tftp_observer;

use crate::app::App;
use crate::config::{Config, DhcpMode};
use crate::control::{Access, ControlError};
use crate::supervise::Supervisor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket, UnixListener};

pub use dhcp_backend::DhcpBackend;
pub use settings::{dhcp_settings, tftp_settings};
pub use tftp_observer::TftpObserver;

/// A listener that could not be bound: start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot bind HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind TFTP on {addr}: {source}")]
    Tftp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Dhcp(#[from] crate::dhcp::DhcpError),
}

/// Every socket of the daemon, bound.
pub struct Listeners {
    http: TcpListener,
    control: (UnixListener, Access),
    tftp: Option<UdpSocket>,
    dhcp: Option<crate::dhcp::Sockets>,
}

/// Binds HTTP, the control socket, TFTP and DHCP (67 and 4011 when DHCP is on).
pub async fn bind(cfg: &Config) -> Result<Listeners, BindError> {
    let http = crate::http::bind(cfg.server.http_listen).map_err(|source| BindError::Http {
        addr: cfg.server.http_listen,
        source,
    })?;
    let tftp = if cfg.tftp.enabled {
        let addr = cfg.tftp.listen;
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| BindError::Tftp { addr, source })?;
        Some(socket)
    } else {
        None
    };
    let dhcp = if cfg.dhcp.mode != DhcpMode::Off {
        Some(crate::dhcp::bind(&dhcp_settings(cfg))?)
    } else {
        None
    };
    // Last: the socket file appears only when everything else is bound.
    let control = crate::control::bind(
        &cfg.server.control_socket,
        cfg.server.control_group.as_deref(),
    )?;
    Ok(Listeners {
        http,
        control,
        tftp,
        dhcp,
    })
}

impl Listeners {
    /// Starts every service on its listener, and the background services, supervised.
    pub fn spawn(self, app: &Arc<App>, sup: &mut Supervisor) {
        sup.spawn("http", crate::http::serve(app.clone(), self.http));
        let (control, access) = self.control;
        sup.spawn("control", {
            let app = app.clone();
            async move {
                crate::control::serve(app, control, access).await;
                Ok::<(), std::convert::Infallible>(())
            }
        });
        if let Some(sockets) = self.dhcp {
            let metrics = Arc::new(crate::dhcp::Metrics::new());
            app.metrics.with_registry(|r| metrics.register(r));
            let (settings, follow) = settings::derive(app, dhcp_settings);
            sup.spawn("dhcp settings", follow);
            let backend = Arc::new(DhcpBackend { app: app.clone() });
            sup.spawn(
                "dhcp",
                crate::dhcp::serve_bound(sockets, settings, backend, metrics, app.shutdown.clone()),
            );
        }
        if let Some(socket) = self.tftp {
            let metrics = Arc::new(crate::tftp::Metrics::new());
            app.metrics.with_registry(|r| metrics.register(r));
            let (settings, follow) = settings::derive(app, tftp_settings);
            sup.spawn("tftp settings", follow);
            let observer = Arc::new(TftpObserver { app: app.clone() });
            sup.spawn(
                "tftp",
                crate::tftp::serve(socket, settings, metrics, observer, app.shutdown.clone()),
            );
        }
        sup.spawn("relay", crate::relay::serve(app.clone()));
        sup.spawn("health", crate::health::serve(app.clone()));
        sup.spawn("readiness", crate::ready::service::serve(app.clone()));
        sup.spawn("provider poll", crate::health::provider::serve(app.clone()));
        sup.spawn(
            "deployment metrics",
            crate::lifecycle::durations::serve(app.clone()),
        );
        sup.spawn("deadlines", crate::lifecycle::deadline::serve(app.clone()));
        sup.spawn("group hooks", crate::lifecycle::groups::serve(app.clone()));
        let liveness = sup.liveness();
        sup.spawn("watchdog", {
            let app = app.clone();
            async move {
                crate::systemd::watchdog(app, liveness).await;
                Ok::<(), std::convert::Infallible>(())
            }
        });
    }
}

/// The keys bound at start that a reload cannot change, each as `key (old → new)`: the
/// listeners above, the control socket and its group, and the state dir the store lives
/// in. DHCP interfaces and the proxy/full choice apply at run time; turning DHCP on or
/// off does not (its sockets are bound at start or never).
pub fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    fn diff(out: &mut Vec<String>, key: &str, old: String, new: String) {
        if old != new {
            out.push(format!("{key} ({old} → {new})"));
        }
    }
    let mut out = Vec::new();
    let shown = |p: &std::path::Path| p.display().to_string();
    diff(
        &mut out,
        "server.http_listen",
        old.server.http_listen.to_string(),
        new.server.http_listen.to_string(),
    );
    diff(
        &mut out,
        "server.control_socket",
        shown(&old.server.control_socket),
        shown(&new.server.control_socket),
    );
    let group = |g: &Option<String>| g.clone().unwrap_or_else(|| "none".into());
    diff(
        &mut out,
        "server.control_group",
        group(&old.server.control_group),
        group(&new.server.control_group),
    );
    diff(
        &mut out,
        "server.state_dir",
        shown(&old.server.state_dir),
        shown(&new.server.state_dir),
    );
    diff(
        &mut out,
        "tftp.enabled",
        old.tftp.enabled.to_string(),
        new.tftp.enabled.to_string(),
    );
    if old.tftp.enabled && new.tftp.enabled {
        diff(
            &mut out,
            "tftp.listen",
            old.tftp.listen.to_string(),
            new.tftp.listen.to_string(),
        );
    }
    let dhcp_on = |c: &Config| c.dhcp.mode != DhcpMode::Off;
    if dhcp_on(old) != dhcp_on(new) {
        diff(
            &mut out,
            "dhcp.mode",
            format!("{:?}", old.dhcp.mode).to_lowercase(),
            format!("{:?}", new.dhcp.mode).to_lowercase(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_changes_need_a_restart_and_name_the_key() {
        let mut old = Config::embedded(std::path::Path::new("/srv/x"));
        old.dhcp.mode = DhcpMode::Proxy;
        let mut new = old.clone();
        assert!(restart_needed(&old, &new).is_empty());
        new.server.interfaces = vec!["eth1".into()];
        new.dhcp.mode = DhcpMode::Full;
        assert!(restart_needed(&old, &new).is_empty(), "applied at run time");
        new.dhcp.mode = DhcpMode::Off;
        assert_eq!(restart_needed(&old, &new), ["dhcp.mode (proxy → off)"]);
        new.dhcp.mode = DhcpMode::Full;
        new.server.http_listen = "127.0.0.1:9999".parse().expect("addr");
        new.tftp.listen = "127.0.0.1:7000".parse().expect("addr");
        assert_eq!(
            restart_needed(&old, &new),
            [
                format!(
                    "server.http_listen ({} → 127.0.0.1:9999)",
                    old.server.http_listen
                ),
                format!("tftp.listen ({} → 127.0.0.1:7000)", old.tftp.listen),
            ]
        );
    }
}
