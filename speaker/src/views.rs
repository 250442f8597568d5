//! From cached Kubernetes objects to the views the announcement decision reads. Pure: the
//! caches are passed in, nothing here talks to the API server.
//!
//! Invalid ferrolb objects do not take routes away: [`LastGood`] keeps, per object, the last
//! spec that validated, so a bad edit to a working `BGPAdvertisement` reports an error and
//! leaves the announcements as they were.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ferrolb_shared::allocator::ServiceKey;
use ferrolb_shared::announce::{EndpointView, ServiceView, TrafficPolicy};
use ferrolb_shared::constants::DEFAULT_LOAD_BALANCER_CLASS;
use ferrolb_shared::validate::{ConfigError, summarize};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, Service, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

/// Label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which LoadBalancer Services this speaker handles (`--lb-class`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassFilter {
    /// `--lb-class`; `None`: Services with no class, or with ferrolb's default class.
    pub lb_class: Option<String>,
}

impl ClassFilter {
    /// Whether the Service is `type: LoadBalancer` of our class. Other classes belong to
    /// another implementation and are never announced.
    pub fn handles(&self, svc: &Service) -> bool {
        let Some(spec) = svc.spec.as_ref() else {
            return false;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return false;
        }
        self.handles_class(spec.load_balancer_class.as_deref())
    }

    /// Whether a `type: LoadBalancer` Service with this `spec.loadBalancerClass` is ours.
    pub fn handles_class(&self, class: Option<&str>) -> bool {
        match (&self.lb_class, class) {
            (Some(ours), Some(theirs)) => ours == theirs,
            (Some(_), None) => false,
            (None, None) => true,
            (None, Some(theirs)) => theirs == DEFAULT_LOAD_BALANCER_CLASS,
        }
    }
}

/// The views of every Service this speaker handles, with endpoint health from the
/// EndpointSlices labelled with the Service's name.
pub fn service_views(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    class: &ClassFilter,
) -> Vec<ServiceView> {
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let (Some(ns), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        by_service
            .entry((ns, name.as_str()))
            .or_default()
            .push(slice);
    }
    services
        .iter()
        .filter(|s| class.handles(s))
        .map(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            let name = s.metadata.name.as_deref().unwrap_or_default();
            let endpoints = by_service
                .get(&(ns, name))
                .map(|v| EndpointView::from_slices(v.iter().copied()))
                .unwrap_or_default();
            ServiceView::from_service(s, endpoints)
        })
        .collect()
}

/// What the speaker keeps of a `type: LoadBalancer` Service: exactly what the decision and
/// the Service events read. At 10k Services, whole `Service` objects (even trimmed) cost
/// ten times as much memory as these records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    /// `spec.loadBalancerClass`.
    pub class: Option<Box<str>>,
    /// Labels (for `serviceSelectors`).
    pub labels: BTreeMap<String, String>,
    /// The addresses of `status.loadBalancer.ingress`.
    pub ips: Box<[IpAddr]>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `metadata.uid`, for events on the Service.
    pub uid: Option<Uid>,
}

impl ServiceRecord {
    /// The record of a Service; `None` unless it is `type: LoadBalancer` (no class filter
    /// ever handles other types, so they are not kept at all).
    pub fn from_service(svc: &Service) -> Option<Self> {
        let spec = svc.spec.as_ref()?;
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return None;
        }
        // The same reading of ingress and traffic policy as the decision's own view.
        let view = ServiceView::from_service(svc, EndpointView::default());
        Some(ServiceRecord {
            class: spec.load_balancer_class.as_deref().map(Box::from),
            labels: view.labels,
            ips: view.ips.into_boxed_slice(),
            traffic_policy: view.traffic_policy,
            uid: svc.metadata.uid.as_deref().map(Uid::new),
        })
    }

    /// The decision's view of this Service.
    pub fn view(&self, key: ServiceKey, endpoints: EndpointView) -> ServiceView {
        ServiceView {
            key,
            labels: self.labels.clone(),
            ips: self.ips.to_vec(),
            traffic_policy: self.traffic_policy,
            endpoints,
        }
    }

    /// A minimal `Service` carrying what the record holds (for events, which need an object
    /// reference, and for callers that still take objects).
    pub fn to_service(&self, namespace: &str, name: &str) -> Service {
        let mut svc = Service::default();
        svc.metadata.namespace = Some(namespace.to_owned());
        svc.metadata.name = Some(name.to_owned());
        svc.metadata.uid = self.uid.as_ref().map(Uid::to_string);
        if !self.labels.is_empty() {
            svc.metadata.labels = Some(self.labels.clone());
        }
        svc.spec = Some(ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            load_balancer_class: self.class.as_deref().map(str::to_owned),
            external_traffic_policy: Some(
                match self.traffic_policy {
                    TrafficPolicy::Cluster => "Cluster",
                    TrafficPolicy::Local => "Local",
                }
                .to_owned(),
            ),
            ..ServiceSpec::default()
        });
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    self.ips
                        .iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        });
        svc
    }
}

/// An object's `metadata.uid`. API servers give UUIDs, kept as their 16 bytes: at 10k
/// Services the text would cost a 48-byte allocation each. Anything else is kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uid {
    /// A UUID in its canonical form (lowercase, hyphenated).
    Uuid([u8; 16]),
    /// Any other text.
    Other(Box<str>),
}

impl Uid {
    /// The compact form of `uid`; [`Uid::to_string`] gives `uid` back exactly.
    pub fn new(uid: &str) -> Self {
        Self::parse_uuid(uid).map_or_else(|| Uid::Other(uid.into()), Uid::Uuid)
    }

    fn parse_uuid(s: &str) -> Option<[u8; 16]> {
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            // Lowercase only, so that formatting gives the same text back.
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut hex = b.iter().copied().filter(|&c| c != b'-');
        let mut out = [0u8; 16];
        for byte in &mut out {
            *byte = digit(hex.next()?)? << 4 | digit(hex.next()?)?;
        }
        Some(out)
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uid::Other(s) => f.write_str(s),
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Endpoint health of one node in one EndpointSlice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeHealth {
    /// Some endpoint on the node is ready.
    pub ready: bool,
    /// Some endpoint on the node is ready or serving (terminating but still serving).
    pub serving: bool,
}

/// What the speaker keeps of an EndpointSlice: its Service and, per node, whether it has
/// ready or serving endpoints. Addresses, ports and the rest are never read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceRecord {
    /// The Service named by the `kubernetes.io/service-name` label.
    pub service: Box<str>,
    /// Per node name (`""` for endpoints without one), at most one entry each.
    pub nodes: Box<[(Arc<str>, NodeHealth)]>,
}

/// One allocation per node name for every slice that names the node: at 10k Services with
/// endpoints on a few nodes each, a copy per slice would cost ~1 MiB. Node names are as
/// many as the cluster's nodes, so the set is never pruned.
fn node_name(name: &str) -> Arc<str> {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<HashSet<Arc<str>>>> =
        std::sync::OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name) {
        return n.clone();
    }
    let n: Arc<str> = name.into();
    names.insert(n.clone());
    n
}

impl SliceRecord {
    /// The record of a slice; `None` without the Service label (such slices belong to no
    /// Service). Conditions are read as [`EndpointView::from_slices`] reads them.
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)?
            .as_str();
        let mut nodes: Vec<(Arc<str>, NodeHealth)> = Vec::new();
        for endpoint in &slice.endpoints {
            if endpoint.addresses.is_empty() {
                continue;
            }
            let node = endpoint.node_name.as_deref().unwrap_or_default();
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready) || ready;
            match nodes.iter_mut().find(|(n, _)| &**n == node) {
                Some((_, h)) => {
                    h.ready |= ready;
                    h.serving |= serving;
                }
                None => nodes.push((node_name(node), NodeHealth { ready, serving })),
            }
        }
        Some(SliceRecord {
            service: service.into(),
            nodes: nodes.into_boxed_slice(),
        })
    }
}

/// The endpoint view of a Service from its slices' records. Nodes that are ready are not
/// repeated among the serving ones: no decision depends on it (see [`EndpointView`]), and
/// it saves a set per Service.
pub fn endpoint_view<'a>(slices: impl IntoIterator<Item = &'a SliceRecord>) -> EndpointView {
    let mut view = EndpointView::default();
    let all: Vec<(&str, NodeHealth)> = slices
        .into_iter()
        .flat_map(|s| s.nodes.iter().map(|(n, h)| (&**n, *h)))
        .collect();
    for (node, h) in &all {
        if h.ready {
            view.ready_nodes.insert((*node).to_owned());
        }
    }
    for (node, h) in &all {
        if h.serving && !view.ready_nodes.contains(*node) {
            view.serving_nodes.insert((*node).to_owned());
        }
    }
    view
}

/// The slices of some Services, by Service: the `(namespace, record)` slices sorted by
/// `(namespace, Service)`, lighter than a map of vectors.
pub struct SliceIndex<'a> {
    sorted: Vec<(&'a str, &'a str, &'a SliceRecord)>,
}

impl<'a> SliceIndex<'a> {
    /// Indexes the slices of the Services `wanted` accepts (by namespace and name).
    pub fn new(
        slices: impl IntoIterator<Item = (&'a str, &'a SliceRecord)>,
        wanted: impl Fn(&str, &str) -> bool,
    ) -> Self {
        let mut sorted: Vec<(&str, &str, &SliceRecord)> = slices
            .into_iter()
            .map(|(ns, r)| (ns, &*r.service, r))
            .filter(|(ns, svc, _)| wanted(ns, svc))
            .collect();
        sorted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        SliceIndex { sorted }
    }

    /// The slices of one Service.
    pub fn of<'k>(
        &'k self,
        namespace: &'k str,
        name: &'k str,
    ) -> impl Iterator<Item = &'a SliceRecord> + 'k {
        let start = self
            .sorted
            .partition_point(|s| (s.0, s.1) < (namespace, name));
        self.sorted[start..]
            .iter()
            .take_while(move |s| (s.0, s.1) == (namespace, name))
            .map(|s| s.2)
    }

    /// The decision's view of a Service record, with the endpoints of its slices; `None`
    /// when `class` does not handle it.
    pub fn view(
        &self,
        namespace: &str,
        name: &str,
        record: &ServiceRecord,
        class: &ClassFilter,
    ) -> Option<ServiceView> {
        if !class.handles_class(record.class.as_deref()) {
            return None;
        }
        let endpoints = endpoint_view(self.of(namespace, name));
        Some(record.view(ServiceKey::new(namespace, name), endpoints))
    }
}

/// [`service_views`] over records: every `(namespace, name, record)` Service our class
/// handles, with the endpoints of the `(namespace, record)` slices that name it. The
/// speaker builds the same views one at a time ([`SliceIndex::view`]).
pub fn record_views<'a>(
    services: impl IntoIterator<Item = (&'a str, &'a str, &'a ServiceRecord)>,
    slices: impl IntoIterator<Item = (&'a str, &'a SliceRecord)>,
    class: &ClassFilter,
) -> Vec<ServiceView> {
    let index = SliceIndex::new(slices, |_, _| true);
    services
        .into_iter()
        .filter_map(|(ns, name, r)| index.view(ns, name, r, class))
        .collect()
}

/// The BGP identifier for sessions from this node when the peer sets none: the node's
/// first IPv4 `InternalIP`, else any IPv4 node address, else one derived from the node's
/// name (stable across restarts, never 0.0.0.0).
pub fn node_router_id(node: Option<&Node>, node_name: &str) -> Ipv4Addr {
    let addresses = node
        .and_then(|n| n.status.as_ref())
        .and_then(|s| s.addresses.as_ref());
    let v4 = |internal_only: bool| {
        addresses.into_iter().flatten().find_map(|a| {
            if internal_only && a.type_ != "InternalIP" {
                return None;
            }
            match a.address.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) if !ip.is_unspecified() => Some(ip),
                _ => None,
            }
        })
    };
    v4(true).or_else(|| v4(false)).unwrap_or_else(|| {
        // FNV-1a: tiny, stable, and good enough to keep two nodes' identifiers apart.
        let mut h: u32 = 0x811c_9dc5;
        for b in node_name.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Ipv4Addr::from(h.max(1))
    })
}

/// A ferrolb object that failed validation, as reported once per resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidObject {
    /// Object name.
    pub name: String,
    /// Every problem, joined.
    pub message: String,
    /// Whether an earlier valid spec stays in use.
    pub kept_last_good: bool,
}

#[derive(Clone, Debug)]
struct Entry<T> {
    resource_version: Option<String>,
    good: Option<T>,
}

/// Parsed objects of one kind by name, keeping each object's last valid parse when a
/// later version is invalid.
#[derive(Clone, Debug)]
pub struct LastGood<T> {
    entries: BTreeMap<String, Entry<T>>,
}

impl<T> Default for LastGood<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<T: Clone> LastGood<T> {
    /// Brings the entries in line with `objects` (the cache's full content): objects gone
    /// from the cache are dropped, objects with a new resourceVersion are validated again.
    /// Returns the objects that failed validation in this call (each version is reported
    /// once, not on every run).
    pub fn refresh<'a, K, I, F>(&mut self, objects: I, parse: F) -> Vec<InvalidObject>
    where
        K: kube::Resource + 'a,
        I: IntoIterator<Item = &'a K>,
        F: Fn(&K) -> Result<T, Vec<ConfigError>>,
    {
        let mut seen = BTreeSet::new();
        let mut invalid = Vec::new();
        for obj in objects {
            let name = obj.name_any();
            let rv = obj.resource_version();
            seen.insert(name.clone());
            if let Some(e) = self.entries.get(&name)
                && e.resource_version.is_some()
                && e.resource_version == rv
            {
                continue;
            }
            let entry = self.entries.entry(name.clone()).or_insert(Entry {
                resource_version: None,
                good: None,
            });
            entry.resource_version = rv;
            match parse(obj) {
                Ok(parsed) => entry.good = Some(parsed),
                Err(errors) => invalid.push(InvalidObject {
                    name,
                    message: summarize(&errors),
                    kept_last_good: entry.good.is_some(),
                }),
            }
        }
        self.entries.retain(|name, _| seen.contains(name));
        invalid
    }

    /// The valid (or last valid) parse of every object, by name.
    pub fn values(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries
            .iter()
            .filter_map(|(n, e)| Some((n.as_str(), e.good.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_shared::announce::TrafficPolicy;
    use ferrolb_shared::crd::{BGPAdvertisement, BGPAdvertisementSpec};
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn service(name: &str, class: Option<&str>, ty: &str) -> Arc<Service> {
        Arc::new(json(serde_json::json!({
            "metadata": {"namespace": "app", "name": name},
            "spec": {"type": ty, "loadBalancerClass": class, "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
        })))
    }

    fn slice(service: &str, node: &str, ready: bool) -> Arc<EndpointSlice> {
        Arc::new(json(serde_json::json!({
            "metadata": {"namespace": "app", "name": format!("{service}-x"),
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": node,
                           "conditions": {"ready": ready}}],
        })))
    }

    #[test]
    fn only_our_class_of_load_balancers_is_viewed() {
        let services = [
            service("plain", None, "LoadBalancer"),
            service("default", Some(DEFAULT_LOAD_BALANCER_CLASS), "LoadBalancer"),
            service("other", Some("other.io/lb"), "LoadBalancer"),
            service("cluster", None, "ClusterIP"),
        ];
        let names = |f: &ClassFilter| {
            service_views(&services, &[], f)
                .into_iter()
                .map(|v| v.key.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&ClassFilter::default()), ["plain", "default"]);
        let custom = ClassFilter {
            lb_class: Some("other.io/lb".into()),
        };
        assert_eq!(names(&custom), ["other"]);
    }

    #[test]
    fn endpoints_are_matched_by_service_name_label() {
        let services = [
            service("web", None, "LoadBalancer"),
            service("db", None, "LoadBalancer"),
        ];
        let slices = [slice("web", "n1", true), slice("db", "n2", false)];
        let views = service_views(&services, &slices, &ClassFilter::default());
        let web = views.iter().find(|v| v.key.name == "web").unwrap();
        assert_eq!(web.traffic_policy, TrafficPolicy::Local);
        assert_eq!(web.ips, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert!(web.endpoints.ready_nodes.contains("n1"));
        let db = views.iter().find(|v| v.key.name == "db").unwrap();
        assert!(db.endpoints.ready_nodes.is_empty());
    }

    fn slice_with(service: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(json(serde_json::json!({
            "metadata": {"namespace": "app", "name": format!("{service}-{}", endpoints.to_string().len()),
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        })))
    }

    /// The views from records decide exactly as the views from objects: same Services, keys,
    /// addresses, policy, and endpoint sets (serving nodes compared without the ready ones,
    /// which no decision reads there).
    #[test]
    fn record_views_match_object_views() {
        let mut services = vec![
            service("web", None, "LoadBalancer"),
            service("db", None, "LoadBalancer"),
            service("other", Some("other.io/lb"), "LoadBalancer"),
            service("cluster", None, "ClusterIP"),
            service("lonely", None, "LoadBalancer"),
        ];
        let mut labelled = (*service("labelled", None, "LoadBalancer")).clone();
        labelled.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
        services.push(Arc::new(labelled));
        let slices = vec![
            slice_with(
                "web",
                serde_json::json!([
                    {"addresses": ["10.1.0.5"], "nodeName": "n1", "conditions": {"ready": true}},
                    {"addresses": ["10.1.0.6"], "nodeName": "n2",
                     "conditions": {"ready": false, "serving": true, "terminating": true}},
                    {"addresses": [], "nodeName": "n3", "conditions": {"ready": true}},
                ]),
            ),
            slice_with(
                "web",
                serde_json::json!([
                    {"addresses": ["10.1.0.7"], "nodeName": "n2", "conditions": {"ready": true}},
                    {"addresses": ["10.1.0.8"], "conditions": {}},
                ]),
            ),
            slice_with(
                "db",
                serde_json::json!([
                    {"addresses": ["10.1.0.9"], "nodeName": "n1",
                     "conditions": {"ready": false, "serving": false}},
                    {"addresses": ["10.1.0.10"], "nodeName": "n4",
                     "conditions": {"ready": false, "serving": true}},
                ]),
            ),
            slice_with(
                "labelled",
                serde_json::json!([{"addresses": ["10.1.0.11"], "nodeName": "n1"}]),
            ),
        ];
        let records: Vec<(String, String, ServiceRecord)> = services
            .iter()
            .filter_map(|s| {
                Some((
                    s.namespace().unwrap(),
                    s.name_any(),
                    ServiceRecord::from_service(s)?,
                ))
            })
            .collect();
        assert_eq!(records.len(), 5, "the ClusterIP Service is not kept");
        let slice_records: Vec<(String, SliceRecord)> = slices
            .iter()
            .map(|s| (s.namespace().unwrap(), SliceRecord::from_slice(s).unwrap()))
            .collect();
        for class in [
            ClassFilter::default(),
            ClassFilter {
                lb_class: Some("other.io/lb".into()),
            },
        ] {
            let normalize = |mut v: Vec<ServiceView>| {
                for s in &mut v {
                    let ready = s.endpoints.ready_nodes.clone();
                    s.endpoints.serving_nodes.retain(|n| !ready.contains(n));
                }
                v.sort_by(|a, b| a.key.cmp(&b.key));
                v
            };
            let from_objects = normalize(service_views(&services, &slices, &class));
            let from_records = normalize(record_views(
                records
                    .iter()
                    .map(|(ns, n, r)| (ns.as_str(), n.as_str(), r)),
                slice_records.iter().map(|(ns, r)| (ns.as_str(), r)),
                &class,
            ));
            assert_eq!(from_records, from_objects);
        }
        let web = record_views(
            records
                .iter()
                .map(|(ns, n, r)| (ns.as_str(), n.as_str(), r)),
            slice_records.iter().map(|(ns, r)| (ns.as_str(), r)),
            &ClassFilter::default(),
        )
        .into_iter()
        .find(|v| v.key.name == "web")
        .unwrap();
        assert_eq!(
            web.endpoints.ready_nodes,
            ["", "n1", "n2"].map(String::from).into()
        );
        assert!(web.endpoints.serving_nodes.is_empty());
    }

    #[test]
    fn record_rebuilds_what_events_need() {
        let mut svc = (*service("web", None, "LoadBalancer")).clone();
        svc.metadata.uid = Some("u-1".into());
        let r = ServiceRecord::from_service(&svc).unwrap();
        let back = r.to_service("app", "web");
        assert_eq!(back.metadata.uid.as_deref(), Some("u-1"));
        assert!(ClassFilter::default().handles(&back));
        let again = ServiceRecord::from_service(&back).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn uids_round_trip_and_uuids_take_no_allocation() {
        for text in [
            "5f2c1e7a-09b3-4c1d-8e2f-3a4b5c6d7e8f",
            "u-1",
            "5F2C1E7A-09B3-4C1D-8E2F-3A4B5C6D7E8F",
            "5f2c1e7a-09b3-4c1d-8e2f-3a4b5c6d7e8",
            "5f2c1e7a+09b3-4c1d-8e2f-3a4b5c6d7e8f",
            "",
        ] {
            assert_eq!(Uid::new(text).to_string(), text);
        }
        assert!(matches!(
            Uid::new("5f2c1e7a-09b3-4c1d-8e2f-3a4b5c6d7e8f"),
            Uid::Uuid(_)
        ));
        assert!(matches!(
            Uid::new("5F2C1E7A-09B3-4C1D-8E2F-3A4B5C6D7E8F"),
            Uid::Other(_)
        ));
    }

    #[test]
    fn router_id_prefers_internal_ipv4() {
        let node = Node {
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "ExternalIP".into(),
                        address: "198.51.100.1".into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "fd00::1".into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "10.0.0.7".into(),
                    },
                ]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        assert_eq!(node_router_id(Some(&node), "n"), Ipv4Addr::new(10, 0, 0, 7));
        let a = node_router_id(None, "node-a");
        assert_eq!(a, node_router_id(None, "node-a"));
        assert_ne!(a, node_router_id(None, "node-b"));
        assert_ne!(a, Ipv4Addr::UNSPECIFIED);
    }

    fn ad(rv: &str, aggregation: i64) -> BGPAdvertisement {
        let mut a = BGPAdvertisement::new(
            "ad",
            json::<BGPAdvertisementSpec>(serde_json::json!({"aggregationLength": aggregation})),
        );
        a.metadata.resource_version = Some(rv.into());
        a
    }

    #[test]
    fn invalid_update_keeps_last_good_and_reports_once() {
        let mut cache = LastGood::default();
        let parse = |a: &BGPAdvertisement| a.validate();
        assert!(cache.refresh([&ad("1", 32)], parse).is_empty());
        let first = cache.values().next().unwrap().1.clone();
        assert_eq!(first.aggregation_length, 32);

        let bad = cache.refresh([&ad("2", 99)], parse);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].kept_last_good);
        assert!(
            bad[0].message.contains("aggregationLength"),
            "{}",
            bad[0].message
        );
        assert_eq!(cache.values().next().unwrap().1, &first);
        // The same bad version again: nothing new to report.
        assert!(cache.refresh([&ad("2", 99)], parse).is_empty());

        assert!(cache.refresh([&ad("3", 24)], parse).is_empty());
        assert_eq!(cache.values().next().unwrap().1.aggregation_length, 24);

        let none: [&BGPAdvertisement; 0] = [];
        cache.refresh(none, parse);
        assert_eq!(cache.values().count(), 0);
    }

    #[test]
    fn invalid_new_object_is_absent() {
        let mut cache = LastGood::default();
        let bad = cache.refresh([&ad("1", 99)], |a: &BGPAdvertisement| a.validate());
        assert!(!bad[0].kept_last_good);
        assert_eq!(cache.values().count(), 0);
    }
}
