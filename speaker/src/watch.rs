//! The speaker's watch caches: reflectors for exactly what it needs, each poking one shared
//! change signal.
//!
//! The stores are never cleared on errors: a lost API server connection leaves every store
//! as it was (the watcher retries with backoff and a re-list swaps the store in one step),
//! so nothing is withdrawn while the API server is away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, SecretKeyReference};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Secret, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
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
            .default_backoff()
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

fn keep<K>(_: &mut K) {}

/// Keeps what the decision and events read of a Service: type, class, traffic policy and
/// the ingress addresses (plus metadata for events).
fn slim_service(svc: &mut Service) {
    if let Some(spec) = svc.spec.take() {
        svc.spec = Some(ServiceSpec {
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            external_traffic_policy: spec.external_traffic_policy,
            ..ServiceSpec::default()
        });
    }
    if let Some(status) = svc.status.as_mut() {
        status.conditions = None;
    }
}

/// Keeps each endpoint's addresses (only whether there are any matters), node and
/// conditions.
fn slim_slice(slice: &mut EndpointSlice) {
    slice.ports = None;
    for ep in &mut slice.endpoints {
        ep.addresses.truncate(1);
        ep.target_ref = None;
        ep.hints = None;
        ep.hostname = None;
        ep.zone = None;
        ep.deprecated_topology = None;
    }
}

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
    services: Reflector<Service>,
    slices: Reflector<EndpointSlice>,
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
        Caches {
            services: spawn_reflector(
                Api::all(client.clone()),
                all.clone(),
                changed.clone(),
                slim_service,
            ),
            slices: spawn_reflector(
                Api::all(client.clone()),
                all.clone(),
                changed.clone(),
                slim_slice,
            ),
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

    /// Every cached Service.
    pub fn services(&self) -> Vec<Arc<Service>> {
        self.services.store.state()
    }

    /// Every cached EndpointSlice.
    pub fn slices(&self) -> Vec<Arc<EndpointSlice>> {
        self.slices.store.state()
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
