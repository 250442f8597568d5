//! The speaker's watch caches: watches for exactly what it needs, each poking one shared
//! change signal.
//!
//! Services and EndpointSlices, the only kinds that grow with the cluster, are kept as
//! compact records ([`ServiceRecord`], [`SliceRecord`]) rather than objects: at 10k
//! Services the objects, even trimmed, cost tens of MiB. Non-LoadBalancer Services are not
//! kept at all. The few ferrolb objects, this Node and the referenced Secrets are kept
//! as (trimmed) objects in reflector stores.
//!
//! The stores are never cleared on errors: a lost API server connection leaves every store
//! as it was (the watcher retries with backoff and a re-list swaps the store in one step),
//! so nothing is withdrawn while the API server is away.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferrolb_shared::allocator::ServiceKey;
use ferrolb_shared::announce::ServiceView;
use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, SecretKeyReference};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Secret, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::table::ServiceId;
use crate::views::{ClassFilter, ServiceRecord, SliceIndex, SliceRecord};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Wakes the decision loop; any number of pokes before it looks count as one.
pub type ChangeSignal = Arc<watch::Sender<()>>;

/// A running reflector: its store, whether its first list completed, and its task (aborted
/// on drop).
struct Reflector<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl<K: Resource<DynamicType = ()>> Drop for Reflector<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: ChangeSignal,
    slim: fn(&mut K),
) -> Reflector<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let kind = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .backoff(ferrolb_ops::backoff::WatchBackoff::for_watches())
            // Managed fields and annotations are the bulk of most objects (Nodes above all)
            // and never read here; dropping them keeps the caches small.
            .modify(move |o| {
                let meta = o.meta_mut();
                meta.managed_fields = None;
                meta.annotations = None;
                meta.owner_references = None;
                slim(o);
            }),
    );
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    flag.store(true, Ordering::Release);
                    changed.send_replace(());
                }
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    changed.send_replace(());
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                // The watcher retries by itself; the store keeps its content meanwhile.
                Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    Reflector {
        store,
        synced,
        task,
    }
}

/// An object's namespace and name.
type ObjectKey = (Arc<str>, Arc<str>);

/// One allocation per namespace name, shared by every key in it: at 10k Services and as
/// many EndpointSlices in a few namespaces, a copy per key would cost ~1 MiB.
#[derive(Debug, Default)]
struct Namespaces(Mutex<HashSet<Arc<str>>>);

impl Namespaces {
    fn get(&self, namespace: &str) -> Arc<str> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = set.get(namespace) {
            return ns.clone();
        }
        let ns: Arc<str> = namespace.into();
        set.insert(ns.clone());
        ns
    }
}

/// Services (namespace, name) whose record or EndpointSlices changed since the decision
/// last looked, so that it re-decides only those.
#[derive(Debug, Default)]
pub struct Dirty {
    /// A re-list replaced a whole cache: every Service may have changed.
    pub all: bool,
    /// The Services that changed.
    pub services: HashSet<ServiceId>,
}

type SharedDirty = Arc<Mutex<Dirty>>;

fn lock_dirty(d: &SharedDirty) -> std::sync::MutexGuard<'_, Dirty> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Service a record belongs to: a Service's own key, a slice's `(namespace, label)`.
trait OfService {
    fn service(&self, key: &ObjectKey) -> ServiceId;
}

impl OfService for ServiceRecord {
    fn service(&self, key: &ObjectKey) -> ServiceId {
        key.clone()
    }
}

impl OfService for SliceRecord {
    fn service(&self, key: &ObjectKey) -> ServiceId {
        (key.0.clone(), self.service.as_ref().into())
    }
}

/// Records by object, as a watcher last listed and watched them.
type RecordMap<R> = HashMap<ObjectKey, R>;

/// A watch that keeps a compact record per object instead of the object (see
/// [`ServiceRecord`]); objects without a record (e.g. Services of another type) are not
/// kept at all. A re-list builds a new map and swaps it in whole at its end, so a lost API
/// server connection changes nothing until a complete list is back.
struct Records<R> {
    map: Arc<RwLock<RecordMap<R>>>,
    synced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl<R> Drop for Records<R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<R> Records<R> {
    /// Reads the records; a poisoned lock (a panicking writer) still holds valid records.
    fn read<T>(&self, f: impl FnOnce(&RecordMap<R>) -> T) -> T {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        f(&map)
    }
}

fn object_key<K: Resource>(o: &K, namespaces: &Namespaces) -> ObjectKey {
    (
        namespaces.get(o.meta().namespace.as_deref().unwrap_or_default()),
        o.meta().name.as_deref().unwrap_or_default().into(),
    )
}

/// Applies one watcher event to the records; returns whether the records changed (the
/// decision must run again) and whether a complete list was just swapped in.
///
/// A list builds `listing` aside and replaces the records in one step at its end.
fn apply_event<K: Resource, R: OfService>(
    ev: watcher::Event<K>,
    listing: &mut Option<RecordMap<R>>,
    store: &RwLock<RecordMap<R>>,
    record: fn(&K) -> Option<R>,
    dirty: &SharedDirty,
    namespaces: &Namespaces,
) -> (bool, bool) {
    let write = || store.write().unwrap_or_else(|e| e.into_inner());
    let mark = |key: &ObjectKey, r: &R| {
        lock_dirty(dirty).services.insert(r.service(key));
    };
    match ev {
        watcher::Event::Init => {
            *listing = Some(HashMap::new());
            (false, false)
        }
        watcher::Event::InitApply(o) => {
            if let Some(r) = record(&o) {
                listing
                    .get_or_insert_default()
                    .insert(object_key(&o, namespaces), r);
            }
            (false, false)
        }
        watcher::Event::InitDone => {
            let mut fresh = listing.take().unwrap_or_default();
            fresh.shrink_to_fit();
            *write() = fresh;
            lock_dirty(dirty).all = true;
            (true, true)
        }
        watcher::Event::Apply(o) => {
            let key = object_key(&o, namespaces);
            // Any edit of a kept object runs the decision (it is cheap to find nothing
            // changed, and a resync then proves the speaker is alive); objects that have no
            // record and had none (other Service types) never do.
            let relevant = match record(&o) {
                Some(r) => {
                    let service = r.service(&key);
                    let old = write().insert(key.clone(), r);
                    // A slice relabelled to another Service changes the old one too.
                    if let Some(old) = old
                        && old.service(&key) != service
                    {
                        mark(&key, &old);
                    }
                    lock_dirty(dirty).services.insert(service);
                    true
                }
                None => match write().remove(&key) {
                    Some(old) => {
                        mark(&key, &old);
                        true
                    }
                    None => false,
                },
            };
            (relevant, false)
        }
        watcher::Event::Delete(o) => {
            let key = object_key(&o, namespaces);
            match write().remove(&key) {
                Some(old) => {
                    mark(&key, &old);
                    (true, false)
                }
                None => (false, false),
            }
        }
    }
}

fn spawn_records<K, R>(
    api: Api<K>,
    config: watcher::Config,
    changed: ChangeSignal,
    record: fn(&K) -> Option<R>,
    dirty: SharedDirty,
    namespaces: Arc<Namespaces>,
) -> Records<R>
where
    K: Resource<DynamicType = ()>
        + Clone
        + fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    R: OfService + Send + Sync + 'static,
{
    let map: Arc<RwLock<RecordMap<R>>> = Arc::new(RwLock::new(HashMap::new()));
    let synced = Arc::new(AtomicBool::new(false));
    let (store, flag) = (map.clone(), synced.clone());
    let kind = K::kind(&()).into_owned();
    let stream = watcher(api, config).backoff(ferrolb_ops::backoff::WatchBackoff::for_watches());
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        // The records of a list in progress.
        let mut listing: Option<RecordMap<R>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    let (poke, done) =
                        apply_event(ev, &mut listing, &store, record, &dirty, &namespaces);
                    if done {
                        flag.store(true, Ordering::Release);
                    }
                    if poke {
                        changed.send_replace(());
                    }
                }
                // The watcher retries by itself; the records stay as they were meanwhile.
                Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    Records { map, synced, task }
}

fn keep<K>(_: &mut K) {}

/// Keeps labels, conditions and addresses: image lists and capacity are large and unused.
fn slim_node(node: &mut Node) {
    node.spec = None;
    if let Some(status) = node.status.as_mut() {
        *status = NodeStatus {
            addresses: status.addresses.take(),
            conditions: status.conditions.take(),
            ..NodeStatus::default()
        };
    }
}

/// Caches of everything the decision reads.
pub struct Caches {
    dirty: SharedDirty,
    services: Records<ServiceRecord>,
    slices: Records<SliceRecord>,
    node: Reflector<Node>,
    pools: Reflector<IPAddressPool>,
    peers: Reflector<BGPPeer>,
    advertisements: Reflector<BGPAdvertisement>,
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caches")
            .field("synced", &self.synced())
            .finish()
    }
}

impl Caches {
    /// Starts the reflectors: Services and EndpointSlices everywhere, this Node only, and
    /// the ferrolb objects in `namespace`.
    pub fn start(
        client: &Client,
        node_name: &str,
        namespace: &str,
        changed: &ChangeSignal,
    ) -> Self {
        let all = watcher::Config::default();
        // Pages of 100 (not kube's 500) for the two kinds that grow with the cluster: the
        // HTTP read buffer grows to fit a page and keeps that size for the connection's life.
        let large = watcher::Config::default().page_size(100);
        let dirty = SharedDirty::default();
        let namespaces = Arc::new(Namespaces::default());
        Caches {
            services: spawn_records(
                Api::all(client.clone()),
                large.clone(),
                changed.clone(),
                ServiceRecord::from_service,
                dirty.clone(),
                namespaces.clone(),
            ),
            slices: spawn_records(
                Api::all(client.clone()),
                large,
                changed.clone(),
                SliceRecord::from_slice,
                dirty.clone(),
                namespaces,
            ),
            dirty,
            node: spawn_reflector(
                Api::all(client.clone()),
                watcher::Config::default().fields(&format!("metadata.name={node_name}")),
                changed.clone(),
                slim_node,
            ),
            pools: spawn_reflector(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                changed.clone(),
                keep,
            ),
            peers: spawn_reflector(
                Api::namespaced(client.clone(), namespace),
                all.clone(),
                changed.clone(),
                keep,
            ),
            advertisements: spawn_reflector(
                Api::namespaced(client.clone(), namespace),
                all,
                changed.clone(),
                keep,
            ),
        }
    }

    /// Whether every cache completed its first list.
    pub fn synced(&self) -> bool {
        [
            &self.services.synced,
            &self.slices.synced,
            &self.node.synced,
            &self.pools.synced,
            &self.peers.synced,
            &self.advertisements.synced,
        ]
        .iter()
        .all(|f| f.load(Ordering::Acquire))
    }

    /// The Services changed since the last call (every one after a re-list).
    pub fn take_dirty(&self) -> Dirty {
        std::mem::take(&mut *lock_dirty(&self.dirty))
    }

    /// Calls `f` with the decision's view of each Service in `which` (`None`: every
    /// cached one), or `None` for one that is not cached or not of our `class`. The
    /// views are built one at a time, so a run over 10k Services never holds 10k views.
    pub fn for_each_view(
        &self,
        which: Option<&HashSet<ServiceId>>,
        class: &ClassFilter,
        mut f: impl FnMut(&ServiceId, Option<ServiceView>),
    ) {
        self.services.read(|services| {
            self.slices.read(|slices| {
                // For a few Services one pass over the slices picks theirs; for all of
                // them, every slice.
                let wanted: Option<HashSet<(&str, &str)>> =
                    which.map(|w| w.iter().map(|(ns, n)| (&**ns, &**n)).collect());
                let index =
                    SliceIndex::new(slices.iter().map(|((ns, _), r)| (&**ns, r)), |ns, svc| {
                        wanted.as_ref().is_none_or(|w| w.contains(&(ns, svc)))
                    });
                let mut one = |key: &ServiceId, r: Option<&ServiceRecord>| {
                    f(key, r.and_then(|r| index.view(&key.0, &key.1, r, class)));
                };
                match which {
                    // The cache's own key where there is one, so the route table shares
                    // its strings instead of keeping the event's copy.
                    Some(keys) => keys.iter().for_each(|k| match services.get_key_value(k) {
                        Some((cached, r)) => one(cached, Some(r)),
                        None => one(k, None),
                    }),
                    None => services.iter().for_each(|(k, r)| one(k, Some(r))),
                }
            })
        });
    }

    /// Whether a Service is cached.
    pub fn has_service(&self, key: &ServiceId) -> bool {
        self.services.read(|services| services.contains_key(key))
    }

    /// Minimal `Service` objects (name, namespace, uid, labels, type, class, traffic policy,
    /// ingress) for the given keys that are cached: enough for events on them.
    pub fn services_named<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a ServiceKey>,
    ) -> Vec<Arc<Service>> {
        self.services.read(|services| {
            keys.into_iter()
                .filter_map(|k| {
                    let key: ObjectKey = (k.namespace.as_str().into(), k.name.as_str().into());
                    let r = services.get(&key)?;
                    Some(Arc::new(r.to_service(&k.namespace, &k.name)))
                })
                .collect()
        })
    }

    /// This node, once seen.
    pub fn node(&self) -> Option<Arc<Node>> {
        self.node.store.state().into_iter().next()
    }

    /// Every cached IPAddressPool.
    pub fn pools(&self) -> Vec<Arc<IPAddressPool>> {
        self.pools.store.state()
    }

    /// Every cached BGPPeer.
    pub fn peers(&self) -> Vec<Arc<BGPPeer>> {
        self.peers.store.state()
    }

    /// Every cached BGPAdvertisement.
    pub fn advertisements(&self) -> Vec<Arc<BGPAdvertisement>> {
        self.advertisements.store.state()
    }
}

/// A Secret by namespace and name.
pub type SecretName = (String, String);

/// What a password look-up found.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// The watch of the Secret has not listed yet.
    Pending,
    /// The Secret or its key is missing or unusable; the reason (never the value).
    Unavailable(String),
    /// The password.
    Found(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Pending => f.write_str("Pending"),
            Password::Unavailable(why) => f.debug_tuple("Unavailable").field(why).finish(),
            Password::Found(_) => f.write_str("Found(<redacted>)"),
        }
    }
}

/// One watch per Secret that a peer references (field selector on its name), so the
/// speaker never reads other Secrets.
#[derive(Default)]
pub struct SecretWatches {
    watches: BTreeMap<SecretName, Reflector<Secret>>,
}

impl fmt::Debug for SecretWatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretWatches")
            .field("secrets", &self.watches.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretWatches {
    /// Watches exactly the Secrets in `wanted`.
    pub fn sync(&mut self, client: &Client, wanted: &BTreeSet<SecretName>, changed: &ChangeSignal) {
        self.watches.retain(|k, _| wanted.contains(k));
        for key in wanted {
            if self.watches.contains_key(key) {
                continue;
            }
            let (ns, name) = key;
            let r = spawn_reflector(
                Api::<Secret>::namespaced(client.clone(), ns),
                watcher::Config::default().fields(&format!("metadata.name={name}")),
                changed.clone(),
                keep,
            );
            self.watches.insert(key.clone(), r);
        }
    }

    /// The password a reference points at; `default_namespace` applies when the reference
    /// names none.
    pub fn password(&self, reference: &SecretKeyReference, default_namespace: &str) -> Password {
        let key = secret_name(reference, default_namespace);
        let Some(r) = self.watches.get(&key) else {
            return Password::Pending;
        };
        if !r.synced.load(Ordering::Acquire) {
            return Password::Pending;
        }
        let secret = r.store.state().into_iter().next();
        password_from(secret.as_deref(), reference, &key)
    }
}

/// The Secret a reference points at.
pub fn secret_name(reference: &SecretKeyReference, default_namespace: &str) -> SecretName {
    (
        reference
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_namespace.to_owned()),
        reference.name.clone(),
    )
}

/// The password in a Secret (pure, for tests).
pub fn password_from(
    secret: Option<&Secret>,
    reference: &SecretKeyReference,
    key: &SecretName,
) -> Password {
    let Some(secret) = secret else {
        return Password::Unavailable(format!("Secret {}/{} not found", key.0, key.1));
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&reference.key)) else {
        return Password::Unavailable(format!(
            "Secret {}/{} has no key {:?}",
            key.0, key.1, reference.key
        ));
    };
    match std::str::from_utf8(&bytes.0) {
        Ok(p) if !p.is_empty() => Password::Found(p.to_owned()),
        Ok(_) => Password::Unavailable(format!(
            "Secret {}/{} key {:?} is empty",
            key.0, key.1, reference.key
        )),
        Err(_) => Password::Unavailable(format!(
            "Secret {}/{} key {:?} is not UTF-8",
            key.0, key.1, reference.key
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use std::net::IpAddr;

    fn lb(name: &str, ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "app", "name": name},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }))
        .unwrap()
    }

    fn slice(name: &str, service: &str) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "app", "name": name,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": "n1"}],
        }))
        .unwrap()
    }

    #[test]
    fn changes_mark_their_services_for_the_next_decision() {
        let store = RwLock::new(RecordMap::default());
        let mut listing = None;
        let dirty = SharedDirty::default();
        let namespaces = Namespaces::default();
        let mut step = |ev| {
            apply_event(
                ev,
                &mut listing,
                &store,
                SliceRecord::from_slice,
                &dirty,
                &namespaces,
            )
        };
        let take = || std::mem::take(&mut *lock_dirty(&dirty));
        let id = |s: &str| -> ServiceId { ("app".into(), s.into()) };

        step(watcher::Event::Init);
        step(watcher::Event::InitApply(slice("web-1", "web")));
        assert!(!take().all, "nothing before the list is complete");
        step(watcher::Event::InitDone);
        assert!(take().all, "a complete (re-)list: every Service again");

        step(watcher::Event::Apply(slice("web-2", "web")));
        step(watcher::Event::Apply(slice("api-1", "api")));
        let d = take();
        assert!(!d.all);
        assert_eq!(d.services, [id("web"), id("api")].into());
        // A slice moved to another Service changes both.
        step(watcher::Event::Apply(slice("web-2", "db")));
        assert_eq!(take().services, [id("web"), id("db")].into());
        step(watcher::Event::Delete(slice("api-1", "api")));
        assert_eq!(take().services, [id("api")].into());
        // Deleting what was never kept changes nothing.
        step(watcher::Event::Delete(slice("other", "other")));
        assert!(take().services.is_empty());
    }

    #[test]
    fn records_follow_watch_events_and_relists_swap_at_the_end() {
        let store = RwLock::new(RecordMap::default());
        let mut listing = None;
        let rec = ServiceRecord::from_service;
        let dirty = SharedDirty::default();
        let namespaces = Namespaces::default();
        let mut step = |ev| apply_event(ev, &mut listing, &store, rec, &dirty, &namespaces);
        let len = |store: &RwLock<RecordMap<ServiceRecord>>| store.read().unwrap().len();

        assert_eq!(step(watcher::Event::Init), (false, false));
        assert_eq!(
            step(watcher::Event::InitApply(lb("a", "192.0.2.1"))),
            (false, false)
        );
        let mut cluster_ip = lb("c", "192.0.2.3");
        cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        step(watcher::Event::InitApply(cluster_ip.clone()));
        assert_eq!(step(watcher::Event::InitDone), (true, true));
        assert_eq!(len(&store), 1, "only the LoadBalancer is kept");

        // Edits of kept objects run the decision; edits of others never do.
        assert_eq!(
            step(watcher::Event::Apply(lb("a", "192.0.2.9"))),
            (true, false)
        );
        assert_eq!(
            store.read().unwrap().values().next().unwrap().ips[..],
            ["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            step(watcher::Event::Apply(cluster_ip.clone())),
            (false, false)
        );
        // A Service that stops being a LoadBalancer is dropped.
        let mut demoted = lb("a", "192.0.2.9");
        demoted.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(step(watcher::Event::Apply(demoted)), (true, false));
        assert_eq!(len(&store), 0);
        step(watcher::Event::Apply(lb("a", "192.0.2.9")));

        // A re-list (after a lost connection) leaves the records alone until it completes.
        step(watcher::Event::Init);
        step(watcher::Event::InitApply(lb("b", "192.0.2.2")));
        assert_eq!(len(&store), 1);
        assert!(
            store
                .read()
                .unwrap()
                .contains_key(&(Arc::from("app"), Arc::from("a")))
        );
        assert_eq!(step(watcher::Event::InitDone), (true, true));
        let keys: Vec<_> = store.read().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec![(Arc::from("app"), Arc::from("b"))]);

        assert_eq!(
            step(watcher::Event::Delete(lb("b", "192.0.2.2"))),
            (true, false)
        );
        assert_eq!(
            step(watcher::Event::Delete(lb("b", "192.0.2.2"))),
            (false, false)
        );
        assert_eq!(len(&store), 0);
    }

    #[test]
    fn password_lookup_reports_why_without_the_value() {
        let reference = SecretKeyReference {
            name: "bgp".into(),
            namespace: None,
            key: "password".into(),
        };
        let key = secret_name(&reference, "ferrolb-system");
        assert_eq!(key, ("ferrolb-system".to_owned(), "bgp".to_owned()));
        assert!(
            matches!(password_from(None, &reference, &key), Password::Unavailable(w) if w.contains("not found"))
        );
        let mut secret = Secret::default();
        assert!(
            matches!(password_from(Some(&secret), &reference, &key), Password::Unavailable(w) if w.contains("no key"))
        );
        secret.data = Some([("password".to_owned(), ByteString(b"s3cret".to_vec()))].into());
        let found = password_from(Some(&secret), &reference, &key);
        assert_eq!(found, Password::Found("s3cret".into()));
        assert!(!format!("{found:?}").contains("s3cret"));
    }
}
