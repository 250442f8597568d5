//! Wiring: caches, the decision loop, the BGP sessions and the HTTP server as one running
//! speaker.
//!
//! The loop: any cache change pokes a signal; the loop waits a few milliseconds so a burst
//! of changes becomes one run, then decides again the Services that changed (all of them
//! when the node or the configuration changed) with a [`Decider`], updates the
//! [`RouteTable`], and hands each session the routes that changed (a new session gets its
//! full set).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_shared::allocator::ServiceKey;
use ferrolb_shared::announce::{
    AdvertisementView, Decider, NodeView, PeerName, PeerView, PoolView, ServiceView, Snapshot,
};
use ferrolb_shared::validate::ParsedPeer;
use kube::Client;
use kube::runtime::events::Reporter;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::Args;
use crate::events::{self, EventSink};
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::sessions::{SessionSpec, Sessions, Wanted};
use crate::status::{self, NodeFacts};
use crate::table::{Batch, Flip, RouteTable, ServiceId};
use crate::views::{ClassFilter, InvalidObject, LastGood, node_router_id};
use crate::watch::{Caches, ChangeSignal, Password, SecretWatches, secret_name};
use ferrolb_ops::HttpError;

/// Default wait after a change before deciding, so a burst of changes is one run.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(5);

/// Reason sent in the Cease NOTIFICATION when the speaker stops (sessions without
/// graceful restart).
pub const SHUTDOWN_REASON: &str = "ferrolb-speaker shutting down";

/// Everything one speaker needs besides a client.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Node this speaker runs on.
    pub node_name: String,
    /// Namespace of the ferrolb objects (and default namespace of password Secrets).
    pub namespace: String,
    /// Which Services are ours.
    pub class: ClassFilter,
    /// HTTP listen address (port 0 picks one).
    pub metrics_addr: SocketAddr,
    /// Wait after a change before deciding.
    pub debounce: Duration,
}

impl Settings {
    /// Settings from command-line flags.
    pub fn from_args(args: &Args) -> Self {
        Settings {
            node_name: args.node_name.clone(),
            namespace: args.namespace(),
            class: ClassFilter {
                lb_class: args.lb_class.clone(),
            },
            metrics_addr: args.metrics_addr,
            debounce: DEFAULT_DEBOUNCE,
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
}

/// A running speaker.
#[derive(Debug)]
pub struct Running {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    main: JoinHandle<()>,
    http: JoinHandle<()>,
}

impl Running {
    /// Graceful stop, before this returns: sessions with graceful restart agreed on both
    /// sides are closed without a NOTIFICATION (the routers keep the routes as stale for
    /// the restart time); every other session withdraws its routes, then sends a Cease.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.main.await;
        let _ = self.http.await;
    }

    /// Simulates a crash: every task stops at once, no NOTIFICATION is sent.
    pub fn abort(self) {
        self.main.abort();
        self.http.abort();
    }
}

/// Starts a speaker on `client`.
pub async fn start(client: Client, settings: Settings) -> Result<Running, AppError> {
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    let (http_addr, serve) = ferrolb_ops::serve(
        settings.metrics_addr,
        metrics.clone(),
        readiness.clone(),
        shutdown.clone(),
    )
    .await?;
    let http = tokio::spawn(serve);
    let main = tokio::spawn(run(
        client,
        settings,
        metrics.clone(),
        readiness,
        shutdown.clone(),
    ));
    Ok(Running {
        http_addr,
        metrics,
        shutdown,
        main,
        http,
    })
}

/// Everything besides the Services that a decision depends on: when any of it changes,
/// every Service is decided again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Setting {
    node: NodeView,
    pools: Vec<PoolView>,
    advertisements: Vec<AdvertisementView>,
    peers: Vec<PeerView>,
}

/// Parsed ferrolb objects, each kept at its last valid version.
#[derive(Default)]
struct Config {
    pools: LastGood<PoolView>,
    advertisements: LastGood<AdvertisementView>,
    peers: LastGood<PeerView>,
}

struct Speaker {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    caches: Caches,
    secrets: SecretWatches,
    config: Config,
    sessions: Sessions,
    changed: ChangeSignal,
    /// Peers whose session could not be configured, with the reason last logged.
    peer_problems: BTreeMap<PeerName, String>,
    /// What every Service contributes, and the routes that makes.
    table: RouteTable,
    /// The setting of the last run.
    setting: Option<Setting>,
    /// Sends the Services' Announced/Withdrawn events.
    events: EventSink,
    /// What the node's `SpeakerStatus` writer needs from each decision run.
    status_facts: watch::Sender<Option<NodeFacts>>,
}

/// The decision loop; returns after every session has been shut down.
async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = watch::channel(());
    let changed: ChangeSignal = Arc::new(tx);
    let caches = Caches::start(&client, &settings.node_name, &settings.namespace, &changed);
    let (status_facts, facts_rx) = watch::channel(None);
    let status_writer = status::spawn_writer(
        client.clone(),
        settings.node_name.clone(),
        settings.namespace.clone(),
        metrics.session_board.clone(),
        facts_rx,
        metrics.clone(),
        shutdown.clone(),
    );
    let events = EventSink::start(
        client.clone(),
        Reporter {
            controller: "ferrolb-speaker".to_owned(),
            instance: Some(settings.node_name.clone()),
        },
    );
    let mut speaker = Speaker {
        client,
        metrics: metrics.clone(),
        caches,
        secrets: SecretWatches::default(),
        config: Config::default(),
        sessions: Sessions::new(metrics.clone()),
        changed,
        peer_problems: BTreeMap::new(),
        table: RouteTable::new(),
        setting: None,
        events,
        status_facts,
        settings,
    };
    tracing::info!(node = %speaker.settings.node_name, namespace = %speaker.settings.namespace, "watching");
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = shutdown.cancelled() => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(speaker.settings.debounce) => {}
            _ = shutdown.cancelled() => break,
        }
        // Everything poked until now is covered by this run.
        rx.borrow_and_update();
        if !speaker.caches.synced() {
            continue;
        }
        if !readiness.is_ready() {
            tracing::info!("caches synced");
            readiness.set_caches_synced();
            metrics.caches_synced.set(1);
        }
        speaker.reconcile().await;
    }
    tracing::info!("shutting down: closing every BGP session");
    speaker.sessions.shutdown_all(SHUTDOWN_REASON).await;
    // The object keeps its last status (its `lastUpdateTime` tells how old it is). The
    // writer normally ended with `shutdown` already; the loop may also end without it.
    status_writer.abort();
    let _ = status_writer.await;
}

impl Speaker {
    /// One decision run: re-decides the Services whose Service or EndpointSlices changed
    /// (every Service when the node, a pool, an advertisement or a peer changed, or a cache
    /// was re-listed), then hands each session the routes that changed.
    async fn reconcile(&mut self) {
        let started = Instant::now();
        self.metrics.reconciles.inc();
        self.refresh_config();
        let node = self.caches.node();
        let node_view = match node.as_deref() {
            Some(n) => NodeView::from_node(n),
            // Not seen (deleted, or never created): not ready, so nothing is announced.
            None => NodeView {
                name: self.settings.node_name.clone(),
                ..NodeView::default()
            },
        };
        let setting = Setting {
            node: node_view,
            pools: self.config.pools.values().map(|(_, v)| v.clone()).collect(),
            advertisements: self
                .config
                .advertisements
                .values()
                .map(|(_, v)| v.clone())
                .collect(),
            peers: self.config.peers.values().map(|(_, v)| v.clone()).collect(),
        };
        let dirty = self.caches.take_dirty();
        let everything = dirty.all || self.setting.as_ref() != Some(&setting);
        let snapshot = Snapshot {
            node: &setting.node,
            pools: &setting.pools,
            advertisements: &setting.advertisements,
            peers: &setting.peers,
            services: &[],
        };
        let decider = Decider::new(&snapshot);
        let sessions = decider.sessions();
        let mut batch = Batch::default();
        let mut flips = Vec::new();
        let mut decided = 0usize;
        // Services the table holds that are no longer cached.
        let gone: Vec<ServiceId> = if everything {
            self.table
                .services()
                .filter(|id| !self.caches.has_service(id))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        {
            let table = &mut self.table;
            let mut one = |id: &ServiceId, view: Option<ServiceView>| {
                decided += 1;
                let decision = view.map(|v| decider.decide_service(&v));
                if let Some(flip) = table.set_service(id, decision.as_ref(), &mut batch) {
                    let announced = flip == Flip::Started;
                    let note = decision.as_ref().map_or_else(String::new, |d| {
                        events::note(d, announced, &self.settings.node_name, &sessions)
                    });
                    flips.push(events::Flip {
                        key: ServiceKey::new(&*id.0, &*id.1),
                        announced,
                        note,
                    });
                }
            };
            if everything {
                self.caches
                    .for_each_view(None, &self.settings.class, &mut one);
                gone.iter().for_each(|id| one(id, None));
            } else if !dirty.services.is_empty() {
                self.caches
                    .for_each_view(Some(&dirty.services), &self.settings.class, &mut one);
            }
        }
        let changes = self.table.finish(batch);
        let decided_at = Instant::now();
        let t_decide = started.elapsed();

        let router_id = node_router_id(node.as_deref(), &self.settings.node_name);
        let by_name: BTreeMap<&str, &ParsedPeer> = setting
            .peers
            .iter()
            .map(|p| (p.name.as_str(), &p.peer))
            .collect();
        let needed_secrets: BTreeSet<_> = sessions
            .iter()
            .filter_map(|p| by_name.get(&**p)?.password_secret.as_ref())
            .map(|r| secret_name(r, &self.settings.namespace))
            .collect();
        self.secrets
            .sync(&self.client, &needed_secrets, &self.changed);
        let mut wanted = BTreeMap::new();
        for name in &sessions {
            let Some(peer) = by_name.get(&**name) else {
                continue;
            };
            let w = self.wanted_session(name, peer, router_id);
            wanted.insert(name.clone(), w);
        }
        self.peer_problems.retain(|p, _| wanted.contains_key(p));
        let changed_routes: usize = changes.values().map(Vec::len).sum();
        self.sessions
            .apply(&wanted, &self.table, changes, decided_at)
            .await;
        let t_apply = started.elapsed();
        let flipped = self.caches.services_named(flips.iter().map(|f| &f.key));
        let dropped = self.events.publish(flips, &flipped);
        if dropped > 0 {
            tracing::debug!(dropped, "event queue full; events dropped");
            self.metrics.error("eventsDropped");
        }
        let announced = self.table.announced_ip_count();
        self.metrics
            .announced_ips
            .set(i64::try_from(announced).unwrap_or(i64::MAX));
        let facts = NodeFacts {
            node_uid: node.as_deref().and_then(|n| n.metadata.uid.clone()),
            sessions: sessions
                .iter()
                .filter_map(|name| {
                    let p = by_name.get(&**name)?;
                    Some((
                        name.to_string(),
                        SocketAddr::new(p.peer_address, p.peer_port),
                    ))
                })
                .collect(),
            problems: self
                .peer_problems
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            announced_ips: announced,
        };
        self.status_facts.send_if_modified(|f| {
            let changed = f.as_ref() != Some(&facts);
            if changed {
                *f = Some(facts);
            }
            changed
        });
        tracing::debug!(
            node_seen = node.is_some(),
            node_ready = setting.node.ready,
            pools = setting.pools.len(),
            advertisements = setting.advertisements.len(),
            everything,
            services_decided = decided,
            changed_routes,
            announced_ips = announced,
            sessions = wanted.len(),
            decide_us = t_decide.as_micros() as u64,
            apply_us = t_apply.as_micros() as u64,
            elapsed_us = started.elapsed().as_micros() as u64,
            "reconciled"
        );
        self.setting = Some(setting);
    }

    /// The session a peer should have, reading its password if it has one.
    fn wanted_session(
        &mut self,
        name: &PeerName,
        peer: &ParsedPeer,
        router_id: std::net::Ipv4Addr,
    ) -> Wanted {
        let password = match &peer.password_secret {
            None => None,
            Some(reference) => match self.secrets.password(reference, &self.settings.namespace) {
                Password::Found(p) => Some(p),
                // The watch just started; its first list pokes the loop again.
                Password::Pending => return Wanted::Keep,
                Password::Unavailable(why) => {
                    if self.peer_problems.get(name) != Some(&why) {
                        tracing::warn!(peer = %name, problem = %why, "cannot read the BGP password; session not (re)configured");
                        self.metrics.error("passwordSecret");
                        self.peer_problems.insert(name.clone(), why);
                    }
                    return Wanted::Keep;
                }
            },
        };
        self.peer_problems.remove(name);
        Wanted::Run(SessionSpec::new(peer, router_id, password))
    }

    /// Re-validates changed ferrolb objects, keeping the last valid version of bad ones.
    fn refresh_config(&mut self) {
        let report = |kind: &str, invalid: Vec<InvalidObject>, metrics: &Metrics| {
            for i in invalid {
                metrics.error("invalidConfig");
                if i.kept_last_good {
                    tracing::warn!(kind, name = %i.name, error = %i.message, "invalid; keeping its last valid version");
                } else {
                    tracing::warn!(kind, name = %i.name, error = %i.message, "invalid; ignored");
                }
            }
        };
        let pools = self.caches.pools();
        let invalid = self
            .config
            .pools
            .refresh(pools.iter().map(|p| &**p), PoolView::from_object);
        report("IPAddressPool", invalid, &self.metrics);
        let ads = self.caches.advertisements();
        let invalid = self
            .config
            .advertisements
            .refresh(ads.iter().map(|a| &**a), AdvertisementView::from_object);
        report("BGPAdvertisement", invalid, &self.metrics);
        let peers = self.caches.peers();
        let invalid = self
            .config
            .peers
            .refresh(peers.iter().map(|p| &**p), PeerView::from_object);
        report("BGPPeer", invalid, &self.metrics);
    }
}

/// Sets up logging; kept under this name for callers of the binary's library.
pub use ferrolb_ops::init_logging as init_tracing;

/// The binary: flags, client from the usual sources, run until SIGTERM or Ctrl-C, then
/// close every session before exiting.
pub async fn main_with(args: Args) -> Result<(), AppError> {
    args.check().map_err(AppError::Flags)?;
    init_tracing(args.log_format);
    let client = Client::try_default().await.map_err(AppError::Client)?;
    let settings = Settings::from_args(&args);
    tracing::info!(
        node = %settings.node_name,
        namespace = %settings.namespace,
        lb_class = ?settings.class.lb_class,
        "starting ferrolb-speaker"
    );
    let running = start(client, settings).await?;
    tracing::info!(addr = %running.http_addr, "serving /metrics /healthz /readyz");
    shutdown_signal().await;
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
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
