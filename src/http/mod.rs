//! The HTTP service (hyper): boot scripts, assets, machine callbacks, the read API and
//! metrics. The network listener serves the public route table only; the control socket
//! serves it and the admin table.

mod api;
mod asset_cache;
mod assets;
pub mod auth;
mod boot;
pub mod callback_limit;
pub mod events;
mod hardware;
mod lifecycle;
mod monitoring;
mod response;
mod router;
pub mod session;
mod tokens;

pub use response::{error_response, json_response, Body};
pub use router::{
    handle_control, handle_public, public_route, Access, AdminAction, AdminRoute, Caller,
    PublicAction, PublicRoute, ADMIN_ROUTES, PUBLIC_ROUTES,
};

use crate::app::App;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections the kernel queues while every slot is taken (capped by net.core.somaxconn).
pub const LISTEN_BACKLOG: i32 = 8192;

/// The HTTP listener, with a backlog deep enough for a boot storm's connections to wait in.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// How long open connections may finish after shutdown starts.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown, then lets open ones finish for up to `DRAIN`.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    let cfg = app.config();
    let limit = Arc::new(Semaphore::new(cfg.http.max_connections.max(1)));
    let header_timeout = cfg.http.header_timeout;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP listening on {addr}");
    }
    let mut conns = tokio::task::JoinSet::new();
    loop {
        // A slot first, then accept: at the limit new connections wait in the kernel's
        // backlog (iPXE waits too) instead of being accepted and closed, which a
        // booting machine would take as a failed download.
        let permit = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if limit.available_permits() == 0 {
            tracing::debug!(%peer, "connection limit reached; further connections wait in the backlog");
        }
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        conns.spawn(async move {
            let svc_app = app.clone();
            let svc = service_fn(move |req| {
                let app = svc_app.clone();
                async move { Ok::<_, std::convert::Infallible>(handle_public(app, req, peer).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(%peer, error = %e, "http connection"); } }
                _ = app.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
                }
            }
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    Ok(())
}
