//! Wiring and running the server: open the store, load the protocols, seed
//! demo data if asked, bind, serve until SIGINT/SIGTERM, then let in-flight
//! requests finish. Background tasks are started here and only here.

use crate::config::Settings;
use anyhow::{Context, Result};
use careline_core::clock::{Clock, SystemClock};
use careline_store::Store;
use careline_store_sqlite::SqliteStore;
use careline_triage::Engine;
use careline_web::{AppState, WebConfig, metrics::Metrics};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// Load the protocol set: a directory if given, else the embedded one.
pub fn load_engine(dir: Option<&std::path::Path>) -> Result<Engine> {
    match dir {
        Some(d) => Engine::load_dir(d).map_err(|e| anyhow::anyhow!("protocols: {e}")),
        None => Engine::embedded().map_err(|e| anyhow::anyhow!("embedded protocols: {e}")),
    }
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    /// How long in-flight work gets at shutdown.
    grace: std::time::Duration,
}

impl Running {
    /// Stop accepting, finish in-flight requests, end event streams.
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Wait until the server and its workers stop (after a signal), for at
    /// most the shutdown grace past the server: a worker still busy then
    /// (a webhook receiver that does not answer, say) is stopped, and what
    /// it held stays leased for another node.
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("server task")?.context("server")?;
        let deadline = tokio::time::Instant::now() + self.grace;
        for w in self.workers {
            let abort = w.abort_handle();
            if tokio::time::timeout_at(deadline, w).await.is_err() {
                tracing::warn!(grace = ?self.grace, "a background task did not stop within the shutdown grace; stopped it");
                abort.abort();
            }
        }
        Ok(())
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Open the store and build the application state.
pub async fn build_state(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<(AppState, watch::Sender<bool>)> {
    let engine = load_engine(settings.protocols.as_deref())?;
    // The decoy hash for unknown usernames is made now, off the runtime's
    // threads, so that the first login naming no account costs no more than any other.
    tokio::task::spawn_blocking(careline_web::auth::decoy_hash)
        .await
        .context("preparing the login decoy")?;
    let (tx, rx) = watch::channel(false);
    let store = open_store(settings).await?;
    let attachments = attachment_config(settings)?;
    let state = AppState {
        store,
        engine: Arc::new(engine),
        clock,
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(WebConfig {
            session_ttl: settings.session_ttl,
            tls: settings.tls.is_some(),
            // Keep-alive comments at least twice per keep-alive timeout, so
            // a quiet stream is never closed as idle.
            sse_keep_alive: (settings.timeouts.keep_alive / 2)
                .min(std::time::Duration::from_secs(15)),
            outbound: settings.outbound.clone(),
            timeouts: settings.timeouts,
            ..WebConfig::default()
        }),
        shutdown: rx,
        login_throttle: Arc::default(),
        login_notes: Arc::default(),
        workers: Arc::default(),
        principals: Arc::default(),
        attachments: Arc::new(attachments),
    };
    Ok((state, tx))
}

/// The embedded database in the data directory, or PostgreSQL when a
/// database URL is set (a serving node then relays other nodes' committed
/// events to its own bus: see the workers).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    let Some(url) = &settings.database_url else {
        let store = SqliteStore::open_with_key_file(&settings.data_dir, &settings.key_file)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(Arc::new(store));
    };
    crate::config::check_database_url(url)?;
    let store = Arc::new(
        crate::keys_cmd::connect_pg(
            url,
            &settings.data_dir,
            &settings.key_file,
            settings.database_pool,
        )
        .await?,
    );
    if settings.attachments.blob_store.is_none() {
        tracing::warn!(
            "PostgreSQL with local attachment blobs: every node must share the data directory, or use an S3 blob store"
        );
    }
    Ok(store)
}

/// The blob store, the spool directory for uploads in flight, the scanner.
fn attachment_config(settings: &Settings) -> Result<careline_web::attachments::AttachmentConfig> {
    let a = &settings.attachments;
    let blobs = careline_blob::BlobStore::from_url(
        a.blob_store.as_deref().unwrap_or("local"),
        &settings.data_dir,
    )
    .map_err(|e| anyhow::anyhow!("blob store: {e}"))?;
    // Uploads are spooled under the data directory while they are checked;
    // whatever an interrupted upload left behind is removed at start.
    let spool = settings.data_dir.join("spool");
    if spool.exists() {
        std::fs::remove_dir_all(&spool)
            .with_context(|| format!("cannot clear {}", spool.display()))?;
    }
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("cannot create {}", spool.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", spool.display()))?;
    }
    let scanner = a
        .clamd
        .as_deref()
        .map(|addr| {
            addr.parse::<careline_attach::ClamdAddr>()
                .map_err(|e| anyhow::anyhow!("clamd address: {e}"))
                .map(|addr| {
                    careline_attach::Scanner::new(
                        addr,
                        careline_attach::ScanOptions {
                            max_stream_len: a.max_bytes,
                            ..careline_attach::ScanOptions::default()
                        },
                    )
                })
        })
        .transpose()?;
    Ok(careline_web::attachments::AttachmentConfig {
        blobs,
        spool,
        max_bytes: a.max_bytes,
        max_files: a.max_files,
        scanner: scanner.map(Arc::new),
        wake: Arc::default(),
    })
}

/// Bind and serve in the background; returns once the socket is listening.
pub async fn start(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Running> {
    let (state, shutdown) = build_state(settings, clock).await?;
    start_with(settings.listen, state, shutdown).await
}

pub async fn start_with(
    listen: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
) -> Result<Running> {
    start_full(
        listen,
        state,
        shutdown,
        crate::workers::WorkerConfig::default(),
    )
    .await
}

/// Bind, serve, and start the background workers with `cfg`.
pub async fn start_full(
    listen: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    cfg: crate::workers::WorkerConfig,
) -> Result<Running> {
    start_serving(listen, state, shutdown, cfg, None).await
}

/// Bind and serve, over TLS when a certificate and key are given.
pub async fn start_serving(
    listen: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    cfg: crate::workers::WorkerConfig,
    tls: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Running> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let limits = state.config.timeouts;
    let app = careline_web::router(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            careline_web::limits::enforce,
        ))
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut stop = shutdown.subscribe();
    // Both listeners are the same server: in-flight requests get the
    // shutdown grace to finish, and slow or silent clients are cut off by the
    // header, first-request and keep-alive limits (body and per-request
    // limits are the router's).
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    spawn_named("http-shutdown", async move {
        let _ = stop.wait_for(|s| *s).await;
        h.graceful_shutdown(Some(limits.shutdown));
    });
    let idle = crate::idle::IdleAcceptor {
        idle: limits.keep_alive,
    };
    let task = match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .handle(handle)
                .acceptor(idle)
                .first_request_timeout(limits.header);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header);
            spawn_named("http-server", async move { server.serve(app).await })
        }
        Some((cert, key)) => {
            // One process-wide provider; a second install is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .handshake_timeout(limits.header)
                .acceptor(idle);
            let mut server = axum_server::from_tcp(listener)?
                .handle(handle)
                .acceptor(acceptor)
                .first_request_timeout(limits.header);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header);
            spawn_named("https-server", async move { server.serve(app).await })
        }
    };
    let workers = crate::workers::start(&state, cfg, shutdown.subscribe());
    Ok(Running {
        addr,
        state,
        shutdown,
        task,
        workers,
        grace: limits.shutdown,
    })
}

/// The one place background work is spawned: named, so logs and panics say what it was.
pub fn spawn_named<F>(name: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tracing::debug!(task = name, "starting");
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(fut)
}

/// Register for SIGINT and SIGTERM now (so a signal that arrives before the
/// first poll is not lost) and resolve when either arrives.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// `careline serve`.
pub async fn serve(settings: Settings, demo: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (state, shutdown) = build_state(&settings, clock.clone()).await?;
    let files = &state.attachments;
    files
        .blobs
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("blob store {}: {e}", files.blobs.describe()))?;
    match &files.scanner {
        None => {
            tracing::warn!(
                "no virus scanner configured: attachments stay quarantined and are never served"
            );
            eprintln!(
                "WARNING: no virus scanner is configured (--clamd or CARELINE_CLAMD).\n         Attachments will be accepted and kept quarantined; none will be served until a scanner is configured."
            );
        }
        Some(sc) => {
            if let Err(e) = sc.ping().await {
                tracing::warn!(error = %e, "the virus scanner does not answer yet; attachments stay quarantined and are retried");
            }
        }
    }
    if demo {
        let password = crate::demo::password();
        let report = crate::demo::seed(state.store.as_ref(), &password, clock.now()).await?;
        println!("{report}");
    }
    let running = start_serving(
        settings.listen,
        state,
        shutdown,
        crate::workers::WorkerConfig::default(),
        settings.tls.as_ref(),
    )
    .await?;
    tracing::info!(
        addr = %running.addr,
        data_dir = %settings.data_dir.display(),
        protocols = running.state.engine.version(),
        startup_ms = started.elapsed().as_millis() as u64,
        "careline is listening"
    );
    let signals = shutdown_signal()?;
    println!(
        "careline listening on {}://{} (data in {})",
        if settings.tls.is_some() {
            "https"
        } else {
            "http"
        },
        running.addr,
        settings.data_dir.display()
    );
    let tx = running.shutdown_handle();
    spawn_named("signal-watch", async move {
        signals.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = tx.send(true);
    });
    running.wait().await?;
    tracing::info!("stopped");
    Ok(())
}
