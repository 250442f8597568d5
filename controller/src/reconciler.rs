//! The allocation loop: one task that owns the [`Allocator`], fed by watch caches of
//! Services, pools and namespaces, writing Service and pool status while it leads.
//!
//! The loop follows DESIGN §3's start-up rule every time this replica *becomes* leader:
//! wait until every cache is synced, list Services afresh (the cache may lag behind what a
//! previous leader wrote), take back every address some status shows, and only then serve
//! Services without addresses. When it stops leading it drops the allocator: the state lives
//! in the cluster, and the next term rebuilds it from there.
//!
//! Invariants the code keeps:
//! - an address any Service status shows is reserved in the allocator until that status no
//!   longer shows it (so a write that lags never lets two Services show one address);
//! - a write happens only while [`Leadership::is_leader`] holds, checked right before the
//!   request, and carries the `resourceVersion` the decision was based on (409 otherwise);
//! - events are sent on transitions (an address assigned, a new refusal reason), never on a
//!   resync that changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_shared::allocator::{Allocator, Labels, PoolConfig, ServiceKey};
use ferrolb_shared::constants::CONTROLLER_FIELD_MANAGER;
use ferrolb_shared::crd::{IPAddressPool, IPAddressPoolSpec};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::{ServiceCache, ServiceEvent, ServiceRecord};
use crate::http::Readiness;
use crate::leader::Leadership;
use crate::metrics::{Metrics, pool_labels};
use crate::translate::{ClassFilter, PoolVerdict, desired_pool_status, pool_config, service_key};

/// Namespaces matter only for their name and labels.
fn slim_namespace(ns: &mut Namespace) {
    let meta = std::mem::take(&mut ns.metadata);
    ns.metadata = kube::api::ObjectMeta {
        name: meta.name,
        resource_version: meta.resource_version,
        uid: meta.uid,
        labels: meta.labels,
        ..Default::default()
    };
    ns.spec = None;
    ns.status = None;
}

/// Event reason when a Service gets addresses.
pub const REASON_IP_ALLOCATED: &str = "IPAllocated";
/// Event reason when a Service loses an address because the pools changed.
pub const REASON_IP_REVOKED: &str = "IPRevoked";
/// Event reason when a Service that stopped being ours has its status cleared.
pub const REASON_IP_RELEASED: &str = "IPReleased";

/// Settings of the loop.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Which Services are ours.
    pub class: ClassFilter,
    /// Reporting instance for events.
    pub identity: String,
    /// Status writes in flight at once.
    pub write_concurrency: usize,
    /// Minimum interval between two rounds of pool status writes.
    pub pool_status_interval: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            class: ClassFilter::default(),
            identity: "ferrolb-controller".to_owned(),
            write_concurrency: 32,
            pool_status_interval: Duration::from_millis(500),
        }
    }
}

/// Failures of the loop as a whole (single writes are retried, not reported here).
#[derive(Debug, thiserror::Error)]
pub enum ReconcilerError {
    /// Every watch stream ended.
    #[error("watch streams ended")]
    StreamsEnded,
}

/// Why one status write did not happen.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("not the leader")]
    NotLeader,
    #[error("{0}")]
    Api(#[from] kube::Error),
}

impl WriteError {
    fn code(&self) -> Option<u16> {
        match self {
            WriteError::Api(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }
}

type WatchItem<K> = Box<Result<watcher::Event<K>, watcher::Error>>;

enum Input {
    Service(Box<Result<ServiceEvent, watcher::Error>>),
    Pool(WatchItem<IPAddressPool>),
    Namespace(WatchItem<Namespace>),
}

/// A planned Service status write.
struct StatusWrite {
    key: ServiceKey,
    resource_version: String,
    reference: ObjectReference,
    previous: Vec<IpAddr>,
    desired: Vec<IpAddr>,
    /// The Service stopped being ours: release it once the clear lands.
    release_after: bool,
    started: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Notice {
    type_: EventType,
    reason: String,
    note: String,
}

/// The loop's state.
struct Reconciler {
    client: Client,
    cfg: ReconcilerConfig,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reporter: Reporter,
    services: ServiceCache,
    pools: Store<IPAddressPool>,
    namespaces: Store<Namespace>,
    synced: [bool; 3],
    announced_synced: bool,
    alloc: Option<Allocator>,
    dirty: BTreeSet<ServiceKey>,
    /// Services refused an address: worth another try when addresses free up.
    unserved: BTreeSet<ServiceKey>,
    retries: BTreeMap<ServiceKey, Instant>,
    /// Consecutive failed writes per Service, for backoff.
    failures: HashMap<ServiceKey, u32>,
    /// When to retry taking over after a failed start-up list.
    takeover_retry: Option<Instant>,
    pools_dirty: bool,
    pool_specs: BTreeMap<(String, String), IPAddressPoolSpec>,
    pool_verdicts: BTreeMap<(String, String), PoolVerdict>,
    pool_status_dirty: bool,
    next_pool_status: Instant,
    metric_pools: BTreeSet<String>,
    namespace_labels: BTreeMap<String, Labels>,
    last_notice: HashMap<ServiceKey, Notice>,
    pending_since: HashMap<ServiceKey, Instant>,
}

/// Services as records: each object is parsed once, on arrival, and dropped.
fn service_stream(
    api: Api<Service>,
    class: ClassFilter,
) -> impl Stream<Item = Result<ServiceEvent, watcher::Error>> + Send {
    watcher(api, watcher::Config::default())
        .backoff(ferrolb_ops::backoff::WatchBackoff::for_watches())
        .map(move |item| {
            item.map(|ev| match ev {
                watcher::Event::Apply(s) => {
                    ServiceEvent::Apply(Arc::new(ServiceRecord::new(&s, &class)))
                }
                watcher::Event::Delete(s) => ServiceEvent::Delete(service_key(&s)),
                watcher::Event::Init => ServiceEvent::Init,
                watcher::Event::InitApply(s) => {
                    ServiceEvent::InitApply(Arc::new(ServiceRecord::new(&s, &class)))
                }
                watcher::Event::InitDone => ServiceEvent::InitDone,
            })
        })
}

fn watch_stream<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    slim: fn(&mut K),
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .backoff(ferrolb_ops::backoff::WatchBackoff::for_watches())
            // The cache keeps only what the controller reads.
            .modify(slim),
    )
}

/// Runs the loop until `shutdown`.
pub async fn run(
    client: Client,
    cfg: ReconcilerConfig,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<(), ReconcilerError> {
    let (pool_store, pool_writer) = reflector::store::<IPAddressPool>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let inputs = futures::stream::select_all([
        service_stream(Api::<Service>::all(client.clone()), cfg.class.clone())
            .map(|i| Input::Service(Box::new(i)))
            .boxed(),
        watch_stream(
            Api::<IPAddressPool>::all(client.clone()),
            pool_writer,
            |p| {
                p.metadata.managed_fields = None;
            },
        )
        .map(|i| Input::Pool(Box::new(i)))
        .boxed(),
        watch_stream(
            Api::<Namespace>::all(client.clone()),
            ns_writer,
            slim_namespace,
        )
        .map(|i| Input::Namespace(Box::new(i)))
        .boxed(),
    ]);
    let reporter = Reporter {
        controller: CONTROLLER_FIELD_MANAGER.to_owned(),
        instance: Some(cfg.identity.clone()),
    };
    let mut r = Reconciler {
        client,
        cfg,
        leadership,
        metrics,
        readiness,
        reporter,
        services: ServiceCache::default(),
        pools: pool_store,
        namespaces: ns_store,
        synced: [false; 3],
        announced_synced: false,
        alloc: None,
        dirty: BTreeSet::new(),
        unserved: BTreeSet::new(),
        retries: BTreeMap::new(),
        failures: HashMap::new(),
        takeover_retry: None,
        pools_dirty: true,
        pool_specs: BTreeMap::new(),
        pool_verdicts: BTreeMap::new(),
        pool_status_dirty: false,
        next_pool_status: Instant::now(),
        metric_pools: BTreeSet::new(),
        namespace_labels: BTreeMap::new(),
        last_notice: HashMap::new(),
        pending_since: HashMap::new(),
    };
    r.run(inputs, shutdown).await
}

impl Reconciler {
    async fn run(
        &mut self,
        mut inputs: impl Stream<Item = Input> + Unpin,
        shutdown: CancellationToken,
    ) -> Result<(), ReconcilerError> {
        let mut leadership = self.leadership.clone();
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                input = inputs.next() => match input {
                    Some(i) => self.on_input(i),
                    None => return Err(ReconcilerError::StreamsEnded),
                },
                _ = leadership.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            // Take whatever else is already queued, so a burst is handled as one batch.
            for _ in 0..10_000 {
                match inputs.next().now_or_never() {
                    Some(Some(i)) => self.on_input(i),
                    Some(None) => return Err(ReconcilerError::StreamsEnded),
                    None => break,
                }
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            self.step().await;
        }
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let far = now + Duration::from_secs(3600);
        // Leadership lapsing by time (no renewal) must be noticed even without events.
        let deadline = self
            .leadership
            .deadline()
            .filter(|d| *d > now)
            .unwrap_or(far);
        let takeover = self.takeover_retry.unwrap_or(far);
        if self.alloc.is_none() {
            return deadline.min(takeover);
        }
        // Work queued by the last step itself (freed addresses re-queue waiting Services)
        // must not wait for an unrelated event to wake the loop.
        if !self.dirty.is_empty() {
            return now;
        }
        let retry = self.retries.values().copied().min().unwrap_or(far);
        let pool = if self.pool_status_dirty {
            self.next_pool_status
        } else {
            far
        };
        retry.min(pool).min(deadline).min(takeover)
    }

    // ----- inputs ------------------------------------------------------------------------

    fn on_input(&mut self, input: Input) {
        let error = match input {
            Input::Service(i) => i.map(|ev| self.on_service(ev)).err(),
            Input::Pool(i) => i.map(|ev| self.on_pool(ev)).err(),
            Input::Namespace(i) => i.map(|ev| self.on_namespace(ev)).err(),
        };
        if let Some(e) = error {
            tracing::warn!(error = %e, "watch error; retrying with backoff");
        }
    }

    fn on_service(&mut self, ev: ServiceEvent) {
        match &ev {
            ServiceEvent::Apply(r) | ServiceEvent::InitApply(r)
                if r.status.is_empty() && r.wants_address =>
            {
                self.pending_since
                    .entry(r.key.clone())
                    .or_insert_with(Instant::now);
            }
            _ => {}
        }
        let done = matches!(ev, ServiceEvent::InitDone);
        let changed = self.services.apply(ev);
        self.dirty.extend(changed);
        if done {
            self.synced[0] = true;
            // After a relist, deletions we missed show up as keys the allocator knows
            // but the cache does not.
            if let Some(alloc) = &self.alloc {
                self.dirty.extend(alloc.services().cloned());
            }
        }
    }

    fn on_pool(&mut self, ev: watcher::Event<IPAddressPool>) {
        match ev {
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                self.synced[1] = true;
                self.check_pool_specs();
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => self.check_pool_specs(),
        }
    }

    /// Pool status writes come back as events; only spec changes matter.
    fn check_pool_specs(&mut self) {
        let specs: BTreeMap<(String, String), IPAddressPoolSpec> = self
            .pools
            .state()
            .iter()
            .map(|p| {
                (
                    (p.name_any(), p.namespace().unwrap_or_default()),
                    p.spec.clone(),
                )
            })
            .collect();
        if specs != self.pool_specs {
            self.pool_specs = specs;
            self.pools_dirty = true;
        }
    }

    fn on_namespace(&mut self, ev: watcher::Event<Namespace>) {
        match ev {
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                self.synced[2] = true;
                let all: Vec<String> = self
                    .namespaces
                    .state()
                    .iter()
                    .map(|n| n.name_any())
                    .collect();
                for ns in all {
                    self.check_namespace(&ns);
                }
            }
            watcher::Event::Apply(n) | watcher::Event::Delete(n) => {
                self.check_namespace(&n.name_any());
            }
        }
    }

    fn check_namespace(&mut self, ns: &str) {
        let labels = self
            .namespaces
            .get(&ObjectRef::new(ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        if self.namespace_labels.get(ns) == Some(&labels) {
            return;
        }
        self.namespace_labels.insert(ns.to_owned(), labels);
        let in_ns: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect();
        self.dirty.extend(in_ns);
    }

    // ----- the step ----------------------------------------------------------------------

    async fn step(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        if !self.announced_synced {
            self.announced_synced = true;
            self.readiness.set_caches_synced();
            self.metrics.caches_synced.set(1);
            tracing::info!("caches synced");
        }
        let leading = self.leadership.is_leader();
        self.metrics.leader.set(i64::from(leading));
        if !leading {
            self.takeover_retry = None;
            if self.alloc.take().is_some() {
                tracing::info!("not leading: dropped allocation state; the cluster keeps it");
                // The next term starts from the cluster again (start_leading).
                self.retries.clear();
                self.failures.clear();
                self.pool_status_dirty = false;
                self.pending_since.clear();
            }
            return;
        }
        if self.alloc.is_none() {
            self.takeover_retry = None;
            if let Err(e) = self.start_leading().await {
                tracing::warn!(error = %e, "could not list Services to take over; retrying");
                self.takeover_retry = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        }
        let now = Instant::now();
        let due: Vec<ServiceKey> = self
            .retries
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            // Out of the timer map, or the loop would wake at once forever.
            self.retries.remove(&k);
            self.dirty.insert(k);
        }
        if self.pools_dirty {
            self.apply_pools();
        }
        self.process_services().await;
        if self.pool_status_dirty && Instant::now() >= self.next_pool_status {
            self.write_pool_statuses().await;
        }
    }

    /// The start-up rule: reclaim every address in a status before serving anyone.
    async fn start_leading(&mut self) -> Result<(), kube::Error> {
        let listed = Api::<Service>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        let mut alloc = Allocator::new();
        let (configs, verdicts) = self.pool_configs();
        let report = alloc.set_pools(configs);
        self.pool_verdicts = verdicts;
        for (key, v) in self.pool_verdicts.iter_mut() {
            if let PoolVerdict::Active { overlaps, .. } = v {
                *overlaps = report.overlaps_of(&key.0);
            }
        }
        self.pools_dirty = false;
        let mut existing = Vec::new();
        let listed: Vec<ServiceRecord> = listed
            .items
            .iter()
            .map(|s| ServiceRecord::new(s, &self.cfg.class))
            .collect();
        for r in &listed {
            if r.status.is_empty() || !r.wants_address {
                continue;
            }
            let req = r.request_in(&self.ns_labels(&r.key.namespace));
            existing.push((req, r.status.clone()));
        }
        let reclaimed = alloc.reclaim_all(existing);
        let mut kept = 0usize;
        for (key, outcome) in &reclaimed {
            kept += outcome.kept.len();
            for (ip, refusal) in &outcome.refused {
                tracing::warn!(service = %key, %ip, reason = refusal.reason(), "address in status may not be kept");
            }
        }
        tracing::info!(
            services = reclaimed.len(),
            addresses = kept,
            "leading: reclaimed addresses from Service status"
        );
        self.alloc = Some(alloc);
        self.dirty.extend(listed.into_iter().map(|r| r.key));
        self.dirty.extend(self.services.keys().cloned());
        self.pool_status_dirty = true;
        Ok(())
    }

    fn ns_labels(&self, ns: &str) -> Labels {
        self.namespace_labels.get(ns).cloned().unwrap_or_else(|| {
            self.namespaces
                .get(&ObjectRef::new(ns))
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default()
        })
    }

    /// Pool configurations, and what became of each pool object. Pools are taken in
    /// name order (then namespace), so which of two same-named pools wins is stable.
    fn pool_configs(&self) -> (Vec<PoolConfig>, BTreeMap<(String, String), PoolVerdict>) {
        let mut pools = self.pools.state();
        pools.sort_by_key(|p| (p.name_any(), p.namespace().unwrap_or_default()));
        let mut configs = Vec::new();
        let mut verdicts = BTreeMap::new();
        let mut names = BTreeSet::new();
        for p in pools {
            let key = (p.name_any(), p.namespace().unwrap_or_default());
            let verdict = match p.validate() {
                Err(errors) => PoolVerdict::Invalid(errors),
                Ok(_) if names.contains(&key.0) => PoolVerdict::DuplicateName,
                Ok(parsed) => {
                    names.insert(key.0.clone());
                    configs.push(pool_config(&key.0, &parsed));
                    PoolVerdict::Active {
                        overlaps: Vec::new(),
                        stats: Default::default(),
                    }
                }
            };
            verdicts.insert(key, verdict);
        }
        (configs, verdicts)
    }

    fn apply_pools(&mut self) {
        self.pools_dirty = false;
        let (configs, verdicts) = self.pool_configs();
        let Some(alloc) = self.alloc.as_mut() else {
            return;
        };
        let report = alloc.set_pools(configs);
        self.pool_verdicts = verdicts;
        for (key, v) in self.pool_verdicts.iter_mut() {
            if let PoolVerdict::Active { overlaps, .. } = v {
                *overlaps = report.overlaps_of(&key.0);
            }
        }
        for d in &report.displaced {
            tracing::warn!(service = %d.service, ip = %d.ip, reason = d.refusal.reason(), "pool change revoked an address");
            if let Some(svc) = self.service(&d.service) {
                let note = format!("address {} revoked: {}", d.ip, d.refusal.message());
                self.notify(
                    &d.service,
                    &svc,
                    EventType::Warning,
                    REASON_IP_REVOKED,
                    note,
                );
            }
        }
        // New or larger pools may serve Services that waited; changed rules may move others.
        self.dirty.extend(self.services.keys().cloned());
        self.pool_status_dirty = true;
    }

    fn service(&self, key: &ServiceKey) -> Option<Arc<ServiceRecord>> {
        self.services.get(key)
    }

    /// Emits an event unless the last one for this Service said the same.
    fn notify(
        &mut self,
        key: &ServiceKey,
        svc: &ServiceRecord,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let notice = Notice {
            type_,
            reason: reason.to_owned(),
            note,
        };
        if self.last_notice.get(key) == Some(&notice) {
            return;
        }
        if type_ == EventType::Warning {
            self.metrics.failure(reason);
            self.last_notice.insert(key.clone(), notice.clone());
        } else {
            // Normal events follow a successful write, which cannot repeat on a resync;
            // forgetting the last warning lets a later refusal be reported again.
            self.last_notice.remove(key);
        }
        // A fresh Recorder per event: `Recorder` keeps every event it sent for minutes and
        // scans that cache on each publish (O(n) time per event, ~3 KiB per Service at 10k
        // Services). Repeats are already suppressed above, so its series logic is not needed.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let reference = svc.object_ref();
        tokio::spawn(async move {
            let ev = Event {
                type_: notice.type_,
                reason: notice.reason,
                note: Some(notice.note.chars().take(1000).collect()),
                action: "Allocate".to_owned(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::debug!(error = %e, "could not publish event");
            }
        });
    }

    async fn process_services(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.dirty);
        let mut writes = Vec::new();
        for key in keys {
            let started = Instant::now();
            if let Some(w) = self.decide(&key, started) {
                writes.push(w);
            } else {
                self.metrics.observe_reconcile(started.elapsed());
            }
        }
        if writes.is_empty() {
            return;
        }
        let client = self.client.clone();
        let leadership = self.leadership.clone();
        let results: Vec<(StatusWrite, Result<(), WriteError>)> = futures::stream::iter(writes)
            .map(|w| {
                let client = client.clone();
                let leadership = leadership.clone();
                async move {
                    let r = write_service_status(client, &leadership, &w).await;
                    (w, r)
                }
            })
            .buffer_unordered(self.cfg.write_concurrency.max(1))
            .collect()
            .await;
        let mut freed_something = false;
        for (w, result) in results {
            self.metrics.observe_reconcile(w.started.elapsed());
            match result {
                Ok(()) => {
                    self.retries.remove(&w.key);
                    self.failures.remove(&w.key);
                    freed_something |= w.previous.iter().any(|ip| !w.desired.contains(ip));
                    let Some(alloc) = self.alloc.as_mut() else {
                        continue;
                    };
                    alloc.commit(&w.key, &w.desired);
                    if w.release_after {
                        alloc.release(&w.key);
                        self.last_notice.remove(&w.key);
                        if let Some(svc) = self.service(&w.key) {
                            let note = format!(
                                "released {}: no longer a LoadBalancer of this controller",
                                join(&w.previous)
                            );
                            self.notify(&w.key, &svc, EventType::Normal, REASON_IP_RELEASED, note);
                        }
                        continue;
                    }
                    if !w.desired.is_empty() {
                        self.metrics.allocations.inc();
                        if w.previous.is_empty()
                            && let Some(since) = self.pending_since.remove(&w.key)
                        {
                            self.metrics
                                .service_ip_latency
                                .observe(since.elapsed().as_secs_f64());
                        }
                        if let Some(svc) = self.service(&w.key) {
                            let note = format!("assigned {}", join(&w.desired));
                            self.notify(&w.key, &svc, EventType::Normal, REASON_IP_ALLOCATED, note);
                        }
                    }
                }
                Err(WriteError::NotLeader) => {}
                Err(e) => {
                    let code = e.code();
                    if code == Some(404) {
                        // Deleted meanwhile; its delete event releases it.
                        continue;
                    }
                    let attempts = self.failures.get(&w.key).copied().unwrap_or(0) + 1;
                    self.failures.insert(w.key.clone(), attempts);
                    // A conflict means our cache is behind; its event is on the way.
                    let delay = if code == Some(409) {
                        Duration::from_millis(200)
                    } else {
                        Duration::from_millis(250u64.saturating_mul(1 << attempts.min(7)))
                    };
                    tracing::debug!(service = %w.key, error = %e, "status write failed; retrying");
                    self.retries.insert(w.key.clone(), Instant::now() + delay);
                }
            }
        }
        if freed_something {
            self.dirty.extend(self.unserved.iter().cloned());
        }
        self.pool_status_dirty = true;
    }

    /// Decides what one Service's status should show; `Some` when it must be written.
    fn decide(&mut self, key: &ServiceKey, started: Instant) -> Option<StatusWrite> {
        let Some(svc) = self.service(key) else {
            self.forget(key);
            return None;
        };
        let actual = svc.status.clone();
        let resource_version = svc.resource_version.clone();
        let reference = svc.object_ref();
        let ns_labels = self.ns_labels(&key.namespace);
        let alloc = self.alloc.as_mut()?;
        if !svc.wants_address {
            self.pending_since.remove(key);
            let held = !alloc.assigned(key).is_empty() || !alloc.retiring(key).is_empty();
            // Another class's Service belongs to another implementation: never touch it.
            // A Service that stopped being a LoadBalancer keeps its status until we clear it,
            // and its addresses stay reserved until the clear lands.
            let ours_to_clear = !svc.load_balancer
                && !actual.is_empty()
                && (held || actual.iter().any(|ip| alloc.pool_of(*ip).is_some()));
            if ours_to_clear {
                let req = svc.request_in(&ns_labels);
                if actual.iter().any(|ip| {
                    !alloc.assigned(key).contains(ip) && !alloc.retiring(key).contains(ip)
                }) {
                    let _ = alloc.assign_existing(&req, &actual);
                }
                return Some(StatusWrite {
                    key: key.clone(),
                    resource_version,
                    reference,
                    previous: actual,
                    desired: Vec::new(),
                    release_after: true,
                    started,
                });
            }
            let freed = alloc.release(key);
            if !freed.is_empty() {
                self.dirty.extend(self.unserved.iter().cloned());
            }
            self.unserved.remove(key);
            self.last_notice.remove(key);
            return None;
        }
        let req = svc.request_in(&ns_labels);
        let request_error = svc.request_error.clone();
        let known: BTreeSet<IpAddr> = alloc
            .assigned(key)
            .iter()
            .copied()
            .chain(alloc.retiring(key))
            .collect();
        if actual.iter().any(|ip| !known.contains(ip)) {
            // An address we did not write (start-up lag, another writer): reserve it first.
            let _ = alloc.assign_existing(&req, &actual);
        }
        alloc.commit(key, &actual);
        let (desired, refusal) = match request_error {
            Some(e) => {
                let _ = alloc.assign_existing(&req, &actual);
                (
                    alloc.assigned(key).to_vec(),
                    Some((e.reason(), e.to_string())),
                )
            }
            None => match alloc.allocate(&req) {
                Ok(a) => (a.ips, None),
                Err(r) => (
                    alloc.assigned(key).to_vec(),
                    Some((r.reason(), r.message())),
                ),
            },
        };
        match refusal {
            Some((reason, note)) => {
                self.unserved.insert(key.clone());
                self.notify(key, &svc, EventType::Warning, reason, note);
            }
            None => {
                self.unserved.remove(key);
            }
        }
        if desired == actual {
            if !actual.is_empty() {
                self.pending_since.remove(key);
            }
            return None;
        }
        Some(StatusWrite {
            key: key.clone(),
            resource_version,
            reference,
            previous: actual,
            desired,
            release_after: false,
            started,
        })
    }

    /// The Service is gone: free what it held.
    fn forget(&mut self, key: &ServiceKey) {
        self.pending_since.remove(key);
        self.last_notice.remove(key);
        self.unserved.remove(key);
        self.retries.remove(key);
        self.failures.remove(key);
        if let Some(alloc) = self.alloc.as_mut()
            && !alloc.release(key).is_empty()
        {
            self.dirty.extend(self.unserved.iter().cloned());
            self.pool_status_dirty = true;
        }
    }

    async fn write_pool_statuses(&mut self) {
        self.pool_status_dirty = false;
        self.next_pool_status = Instant::now() + self.cfg.pool_status_interval;
        let Some(alloc) = self.alloc.as_ref() else {
            return;
        };
        let mut seen = BTreeSet::new();
        let api_client = self.client.clone();
        let mut failed = false;
        for pool in self.pools.state() {
            let key = (pool.name_any(), pool.namespace().unwrap_or_default());
            let Some(verdict) = self.pool_verdicts.get(&key) else {
                continue;
            };
            let verdict = match verdict {
                PoolVerdict::Active { overlaps, .. } => {
                    let stats = alloc.pool_stats(&key.0).unwrap_or_default();
                    for (family, s) in [("IPv4", stats.ipv4), ("IPv6", stats.ipv6)] {
                        let labels = pool_labels(&key.0, family);
                        self.metrics
                            .addresses_total
                            .get_or_create(&labels)
                            .set(s.total as f64);
                        self.metrics
                            .addresses_in_use
                            .get_or_create(&labels)
                            .set(s.in_use as f64);
                    }
                    seen.insert(key.0.clone());
                    PoolVerdict::Active {
                        overlaps: overlaps.clone(),
                        stats,
                    }
                }
                other => other.clone(),
            };
            let Some(status) = desired_pool_status(&pool, &verdict) else {
                continue;
            };
            if !self.leadership.is_leader() {
                return;
            }
            let api: Api<IPAddressPool> = Api::namespaced(api_client.clone(), &key.1);
            let patch = json!({
                "metadata": {"resourceVersion": pool.resource_version()},
                "status": status,
            });
            if let Err(e) = api
                .patch_status(&key.0, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                tracing::debug!(pool = %key.0, error = %e, "pool status write failed; retrying");
                failed = true;
            }
        }
        for gone in self.metric_pools.difference(&seen) {
            for family in ["IPv4", "IPv6"] {
                self.metrics
                    .addresses_total
                    .remove(&pool_labels(gone, family));
                self.metrics
                    .addresses_in_use
                    .remove(&pool_labels(gone, family));
            }
        }
        self.metric_pools = seen;
        if failed {
            self.pool_status_dirty = true;
            self.next_pool_status = Instant::now() + Duration::from_secs(1);
        }
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `status.loadBalancer.ingress`, fenced by leadership and by the resourceVersion
/// the decision saw.
async fn write_service_status(
    client: Client,
    leadership: &Leadership,
    w: &StatusWrite,
) -> Result<(), WriteError> {
    if !leadership.is_leader() {
        return Err(WriteError::NotLeader);
    }
    let ingress = if w.desired.is_empty() {
        serde_json::Value::Null
    } else {
        json!(
            w.desired
                .iter()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect::<Vec<_>>()
        )
    };
    let patch = json!({
        "metadata": {"resourceVersion": w.resource_version},
        "status": {"loadBalancer": {"ingress": ingress}},
    });
    let ns = w.reference.namespace.clone().unwrap_or_default();
    let name = w.reference.name.clone().unwrap_or_default();
    let api: Api<Service> = Api::namespaced(client, &ns);
    let pp = PatchParams {
        field_manager: Some(CONTROLLER_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(&name, &pp, &Patch::Merge(patch)).await?;
    Ok(())
}
