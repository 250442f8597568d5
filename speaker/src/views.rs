//! From cached Kubernetes objects to the views the announcement decision reads. Pure: the
//! caches are passed in, nothing here talks to the API server.
//!
//! Invalid ferrolb objects do not take routes away: [`LastGood`] keeps, per object, the last
//! spec that validated, so a bad edit to a working `BGPAdvertisement` reports an error and
//! leaves the announcements as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ferrolb_shared::announce::{EndpointView, ServiceView};
use ferrolb_shared::constants::DEFAULT_LOAD_BALANCER_CLASS;
use ferrolb_shared::validate::{ConfigError, summarize};
use k8s_openapi::api::core::v1::{Node, Service};
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
        match (&self.lb_class, spec.load_balancer_class.as_deref()) {
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
