//! Supervision of the daemon's long-running services: each runs as a task until
//! shutdown; one that ends before (an error, an early return, a panic) is a failure the
//! daemon stops on, non-zero, naming the service, so systemd's `Restart=` brings it
//! back. The watchdog asks [`Liveness`] whether every service still runs.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// How a supervised service ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ending {
    /// It returned an error.
    #[error("{0}")]
    Failed(String),
    /// It returned without an error while the daemon was not stopping.
    #[error("ended unexpectedly")]
    Ended,
    /// It panicked (or was cancelled).
    #[error("panicked: {0}")]
    Panicked(String),
}

/// A service that ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service {service} stopped: {ending}")]
pub struct Failure {
    pub service: &'static str,
    pub ending: Ending,
}

/// Whether every supervised service still runs (shared with the watchdog).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    spawned: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

impl Liveness {
    /// True while no supervised service has ended.
    pub fn all_running(&self) -> bool {
        self.ended.load(Ordering::SeqCst) == 0
    }

    /// How many services were started.
    pub fn services(&self) -> usize {
        self.spawned.load(Ordering::SeqCst)
    }
}

/// Counts a service as ended when its task ends in any way (return, panic, abort).
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The set of supervised services.
pub struct Supervisor {
    tasks: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
    liveness: Liveness,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// An empty set; `shutdown` tells an expected ending from a failure.
    pub fn new(shutdown: CancellationToken) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            liveness: Liveness::default(),
            shutdown,
        }
    }

    /// The handle the watchdog checks.
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    /// Starts a service; it is meant to run until shutdown.
    pub fn spawn<F, E>(&mut self, name: &'static str, service: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        self.liveness.spawned.fetch_add(1, Ordering::SeqCst);
        let running = Running(self.liveness.ended.clone());
        let handle = self.tasks.spawn(async move {
            let _running = running;
            service.await.map_err(|e| e.to_string())
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits for the first service that ends before shutdown; pending forever while all
    /// run (and when there are none).
    pub async fn failure(&mut self) -> Failure {
        loop {
            let Some(done) = self.tasks.join_next_with_id().await else {
                return std::future::pending().await;
            };
            let (service, ending) = self.ending(done);
            match ending {
                None if self.shutdown.is_cancelled() => continue,
                None => {
                    return Failure {
                        service,
                        ending: Ending::Ended,
                    }
                }
                Some(ending) => return Failure { service, ending },
            }
        }
    }

    fn ending(
        &mut self,
        done: Result<(Id, Result<(), String>), tokio::task::JoinError>,
    ) -> (&'static str, Option<Ending>) {
        let (id, ending) = match done {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(e))) => (id, Some(Ending::Failed(e))),
            Err(e) => (e.id(), Some(Ending::Panicked(panic_text(e)))),
        };
        (self.names.remove(&id).unwrap_or("unknown"), ending)
    }

    /// After shutdown: waits up to `deadline` for every service to finish, logging those
    /// that fail on the way out; aborts the rest. Returns whether all finished in time.
    pub async fn drain(mut self, deadline: Duration) -> bool {
        let all = tokio::time::timeout(deadline, async {
            while let Some(done) = self.tasks.join_next_with_id().await {
                if let (service, Some(ending)) = self.ending(done) {
                    tracing::error!(service, error = %ending, "service failed while stopping");
                }
            }
        })
        .await;
        if all.is_err() {
            self.tasks.abort_all();
        }
        all.is_ok()
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "cancelled".into();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_that_fails_returns_or_panics_is_named() {
        let stop = CancellationToken::new();
        let mut sup = Supervisor::new(stop.clone());
        let live = sup.liveness();
        let forever = stop.clone();
        sup.spawn("steady", async move {
            forever.cancelled().await;
            Ok::<(), String>(())
        });
        sup.spawn("broken", async { Err::<(), _>("socket closed") });
        let f = sup.failure().await;
        assert_eq!(
            f,
            Failure {
                service: "broken",
                ending: Ending::Failed("socket closed".into())
            }
        );
        assert_eq!(f.to_string(), "service broken stopped: socket closed");
        assert!(!live.all_running(), "the watchdog sees it");

        let mut sup = Supervisor::new(stop.clone());
        sup.spawn("quitter", async { Ok::<(), String>(()) });
        assert_eq!(sup.failure().await.ending, Ending::Ended);

        let mut sup = Supervisor::new(stop.clone());
        sup.spawn("crasher", async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            Ok::<(), String>(())
        });
        let f = sup.failure().await;
        assert_eq!(
            (f.service, f.ending),
            ("crasher", Ending::Panicked("boom".into()))
        );
    }

    #[tokio::test]
    async fn endings_after_shutdown_are_not_failures() {
        let stop = CancellationToken::new();
        let mut sup = Supervisor::new(stop.clone());
        let live = sup.liveness();
        for name in ["a", "b"] {
            let s = stop.clone();
            sup.spawn(name, async move {
                s.cancelled().await;
                Ok::<(), String>(())
            });
        }
        assert!(live.all_running());
        assert_eq!(live.services(), 2);
        let waited = tokio::time::timeout(Duration::from_millis(50), sup.failure()).await;
        assert!(waited.is_err(), "nothing failed");
        stop.cancel();
        assert!(sup.drain(Duration::from_secs(5)).await);
    }
}
