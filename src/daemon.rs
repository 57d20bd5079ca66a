//! Start-up and shutdown of the daemon: load the config, open the store, bind every
//! listener, start the services, then wait for signals (HUP reload, TERM/INT stop).

use crate::app::{load_config, App};
use crate::config::Config;
use crate::nodes::{token::TokenKey, Registry};
use crate::store::Store;
use crate::supervise::Supervisor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The production config file, used when present and nothing else is named.
pub const DEFAULT_CONFIG: &str = crate::config::DEFAULT_CONFIG_PATH;

/// Which config file to use: the flag, `$BOOTD_CONFIG`, or /etc/bootd/bootd.toml if it
/// exists; None means embedded defaults.
pub fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("BOOTD_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG);
            p.is_file().then_some(p)
        })
}

/// Logging: plain lines without timestamps under journald (it stamps them itself).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if crate::journal::stderr_is_journal() {
        // Native journal entries carry MAC=/NODE=/PHASE= as fields of their own.
        match crate::journal::JournalLayer::connect() {
            Ok(layer) => {
                use tracing_subscriber::layer::SubscriberExt;
                use tracing_subscriber::util::SubscriberInitExt;
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => eprintln!("journal socket unavailable ({e}); logging plain lines"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        // Colours only for a person at a terminal, never into a file.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(tty).init();
    }
}

/// Raises the soft limit of open files to the hard one: a boot storm holds a socket per
/// TFTP transfer and HTTP connection, far past the 1,024 systemd and shells start with.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::debug!(from = before, to = lim.rlim_cur, "open files limit raised");
        }
    }
}

/// `bootd check-config`.
pub fn check_config(path: Option<PathBuf>) -> ExitCode {
    match load_config(path.as_deref()) {
        Ok(_) => {
            match &path {
                Some(p) => println!("ok ({})", p.display()),
                None => println!("ok (embedded defaults; no config file)"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `bootd preflight`: every start-up check (src/preflight/), table or JSON.
pub fn preflight(path: Option<PathBuf>, json: bool) -> ExitCode {
    crate::preflight::run(path.as_deref(), json)
}

/// `bootd run`.
pub fn run(path: Option<PathBuf>) -> ExitCode {
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bootd")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bootd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bootd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the daemon did not start, or stopped on a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] crate::app::LoadError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Registry(crate::nodes::RegistryError),
    #[error("cannot store the configured nodes: {0}")]
    ConfiguredNodes(crate::nodes::RegistryError),
    #[error("cannot read or create the token key in {dir}: {source}")]
    TokenKey {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A listener could not be bound: nothing was announced.
    #[error("{0}")]
    Bind(#[from] crate::wiring::BindError),
    /// A service ended while running.
    #[error("{0}")]
    Service(#[from] crate::supervise::Failure),
}

fn create_dirs(cfg: &Config) -> Result<(), RunError> {
    for dir in [&cfg.server.state_dir, &cfg.server.assets_dir] {
        std::fs::create_dir_all(dir).map_err(|source| RunError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

async fn serve(path: Option<PathBuf>) -> Result<(), RunError> {
    let (cfg, templates) = load_config(path.as_deref())?;
    create_dirs(&cfg)?;
    let store = Arc::new(Store::open(&cfg.server.state_dir)?);
    let registry = Arc::new(Registry::load(store.clone()).map_err(RunError::Registry)?);
    registry
        .apply_config(&cfg)
        .await
        .map_err(RunError::ConfiguredNodes)?;
    let tokens =
        TokenKey::load_or_create(&cfg.server.state_dir).map_err(|source| RunError::TokenKey {
            dir: cfg.server.state_dir.clone(),
            source,
        })?;

    raise_fd_limit();
    // Bind everything before announcing readiness; any failure stops the start.
    let listeners = crate::wiring::bind(&cfg).await?;

    let app = App::new(
        cfg.clone(),
        templates,
        store.clone(),
        registry,
        tokens,
        path.clone(),
    );
    let mut services = Supervisor::new(app.shutdown.clone());
    listeners.spawn(&app, &mut services);

    announce(&app, path.as_deref());
    crate::systemd::ready(&crate::systemd::summary(&app));

    let failure = tokio::select! {
        () = wait_for_stop(&app) => None,
        f = services.failure() => Some(f),
    };
    crate::systemd::stopping();
    match &failure {
        Some(f) => tracing::error!(service = f.service, error = %f.ending,
            "service stopped; stopping bootd (draining for at most 10 s)"),
        None => tracing::info!("stopping: no new requests, draining for at most 10 s"),
    }
    app.shutdown.cancel();
    if !services.drain(Duration::from_secs(11)).await {
        tracing::warn!("drain deadline passed; closing anyway");
    }
    store.close().await;
    crate::control::unlink(&cfg.server.control_socket);
    match failure {
        Some(f) => Err(RunError::Service(f)),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Prints where everything is, for the operator who just started it.
fn announce(app: &App, path: Option<&Path>) {
    let cfg = app.config();
    let source = match path {
        Some(p) => format!("config {}", p.display()),
        None => "embedded defaults (no config file)".to_string(),
    };
    tracing::info!("bootd {} on {source}", env!("CARGO_PKG_VERSION"));
    tracing::info!(
        "  state:    {} (database {})",
        cfg.server.state_dir.display(),
        app.store.path().display()
    );
    tracing::info!("  assets:   {}", cfg.server.assets_dir.display());
    tracing::info!(
        "  http:     http://{} (public URL {})",
        cfg.server.http_listen,
        cfg.server.public_url
    );
    if cfg.tftp.enabled {
        tracing::info!("  tftp:     {}", cfg.tftp.listen);
    } else {
        tracing::info!("  tftp:     off");
    }
    tracing::info!("  dhcp:     {:?}", cfg.dhcp.mode);
    tracing::info!(
        "  control:  {} (bootctl --socket {})",
        cfg.server.control_socket.display(),
        cfg.server.control_socket.display()
    );
}

/// Waits for SIGTERM/SIGINT; reloads on SIGHUP meanwhile.
async fn wait_for_stop(app: &Arc<App>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers; stopping");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                let _ = app.reload().await;
            }
        }
    }
}
