//! The HTTP service (hyper): boot scripts, assets, machine callbacks, the read API and
//! metrics. The control socket serves the same router with admin rights.

mod api;
mod asset_cache;
mod assets;
mod boot;
pub mod events;
mod hardware;
mod lifecycle;
mod monitoring;
mod response;
mod router;

pub use hardware::latest as latest_hardware;
pub use response::{error_response, json_response, Body};
pub use router::{handle, Caller};

use crate::app::App;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long open connections may finish after shutdown starts.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown, then lets open ones finish for up to `DRAIN`.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    let cfg = app.config();
    let limit = Arc::new(Semaphore::new(cfg.http.max_connections.max(1)));
    let header_timeout = cfg.http.header_timeout;
    let mut conns = tokio::task::JoinSet::new();
    loop {
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
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(%peer, "connection limit reached; closing");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        conns.spawn(async move {
            let caller = Caller::Network(peer);
            let svc_app = app.clone();
            let svc = service_fn(move |req| {
                let app = svc_app.clone();
                let caller = caller.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(app, req, caller).await) }
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
