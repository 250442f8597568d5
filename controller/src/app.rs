//! Wiring: the elector, the HTTP server and the allocation loop as one running controller.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::Args;
use crate::http::Readiness;
use crate::leader::{LeaderConfig, LeaderElector, Leadership};
use crate::metrics::Metrics;
use crate::reconciler::{self, ReconcilerConfig};
use crate::translate::ClassFilter;
use ferrolb_ops::HttpError;

/// Everything one controller replica needs besides a client.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Allocation loop settings.
    pub reconciler: ReconcilerConfig,
    /// Leader election; `None` runs as the only writer.
    pub leader: Option<LeaderConfig>,
    /// HTTP listen address (port 0 picks one).
    pub metrics_addr: SocketAddr,
}

impl Settings {
    /// Settings from command-line flags.
    pub fn from_args(args: &Args) -> Self {
        let identity = args.identity();
        Settings {
            reconciler: ReconcilerConfig {
                class: ClassFilter {
                    lb_class: args.lb_class.clone(),
                },
                identity: identity.clone(),
                ..ReconcilerConfig::default()
            },
            leader: args.leader_elect.then(|| LeaderConfig {
                lease_name: args.lease_name.clone(),
                namespace: args.lease_namespace(),
                identity,
                lease_duration: args.lease_duration,
                renew_deadline: args.renew_deadline,
                retry_period: args.retry_period,
            }),
            metrics_addr: args.metrics_addr,
        }
    }
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The flags contradict each other.
    #[error("invalid flags: {0}")]
    Flags(String),
    /// No Kubernetes client configuration was found.
    #[error("Kubernetes client configuration: {0}")]
    Client(#[source] kube::Error),
    /// The HTTP server could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The allocation loop stopped on its own.
    #[error(transparent)]
    Reconciler(#[from] reconciler::ReconcilerError),
}

/// A running controller replica.
#[derive(Debug)]
pub struct Running {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    /// This replica's leadership.
    pub leadership: Leadership,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    /// Stops the elector; cancelled only once the loop has stopped writing.
    elector_stop: CancellationToken,
    reconciler: JoinHandle<Result<(), reconciler::ReconcilerError>>,
    elector: Option<JoinHandle<()>>,
    http: JoinHandle<()>,
}

impl Running {
    /// Graceful stop: stop writing, release the Lease, stop serving.
    ///
    /// The Lease is released only after the loop has ended, so no status write of this
    /// replica can still be in flight when a standby takes over at once.
    pub async fn shutdown(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        let result = self.reconciler.await;
        self.elector_stop.cancel();
        if let Some(e) = self.elector {
            let _ = e.await;
        }
        let _ = self.http.await;
        match result {
            Ok(r) => r.map_err(AppError::from),
            // A panicked or cancelled loop has nothing more to report.
            Err(_) => Ok(()),
        }
    }

    /// Simulates a crash: every task stops at once, the Lease is not released.
    pub fn abort(self) {
        self.reconciler.abort();
        if let Some(e) = &self.elector {
            e.abort();
        }
        self.http.abort();
    }

    /// Waits until the allocation loop ends (it does only on shutdown or failure).
    pub async fn wait(&mut self) -> Result<(), AppError> {
        match (&mut self.reconciler).await {
            Ok(r) => r.map_err(AppError::from),
            Err(_) => Ok(()),
        }
    }

    /// The token that stops this replica.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts a replica on `client`.
pub async fn start(client: kube::Client, settings: Settings) -> Result<Running, AppError> {
    let shutdown = CancellationToken::new();
    let elector_stop = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let (elector, leadership) = match &settings.leader {
        Some(cfg) => {
            let (e, l) = LeaderElector::new(client.clone(), cfg.clone());
            (Some(e), l)
        }
        None => (None, Leadership::always()),
    };
    let readiness = Arc::new(Readiness::new(leadership.clone()));
    if elector.is_none() {
        readiness.set_election_settled();
    }
    let (http_addr, serve) = ferrolb_ops::serve(
        settings.metrics_addr,
        metrics.clone(),
        readiness.clone(),
        shutdown.clone(),
    )
    .await?;
    let http = tokio::spawn(serve);
    let elector = elector.map(|e| {
        let stop = shutdown.clone();
        let mut watch = leadership.clone();
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        let l = leadership.clone();
        // Readiness needs one answer from the elector; the gauge follows every change.
        tokio::spawn(async move {
            let mut settled = false;
            loop {
                tokio::select! {
                    _ = watch.changed() => {}
                    _ = stop.cancelled() => break,
                }
                if !settled {
                    settled = true;
                    readiness.set_election_settled();
                }
                metrics.leader.set(i64::from(l.is_leader()));
            }
        });
        tokio::spawn(e.run(elector_stop.clone()))
    });
    let reconciler = tokio::spawn(reconciler::run(
        client,
        settings.reconciler,
        leadership.clone(),
        metrics.clone(),
        readiness,
        shutdown.clone(),
    ));
    Ok(Running {
        http_addr,
        leadership,
        metrics,
        shutdown,
        elector_stop,
        reconciler,
        elector,
        http,
    })
}

/// Sets up logging; kept under this name for callers of the binary's library.
pub use ferrolb_ops::init_logging as init_tracing;

/// The binary: flags, client from the usual sources, run until SIGTERM or Ctrl-C.
pub async fn main_with(args: Args) -> Result<(), AppError> {
    args.check().map_err(AppError::Flags)?;
    init_tracing(args.log_format);
    let client = kube::Client::try_default()
        .await
        .map_err(AppError::Client)?;
    let settings = Settings::from_args(&args);
    tracing::info!(
        identity = %settings.reconciler.identity,
        lb_class = ?settings.reconciler.class.lb_class,
        leader_elect = settings.leader.is_some(),
        "starting ferrolb-controller"
    );
    let mut running = start(client, settings).await?;
    tracing::info!(addr = %running.http_addr, "serving /metrics /healthz /readyz");
    tokio::select! {
        r = running.wait() => return r,
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down");
    running.shutdown().await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
