//! The controller's Service cache: one small, already-parsed record per Service.
//!
//! A full `Service` costs about 1.2 KiB in memory even after trimming (k8s-openapi structs
//! are wide, and every string and map is its own allocation); at 10k Services that alone
//! was a third of the controller's memory. The loop only ever reads a handful of facts, so
//! the watch stream turns each object into a [`ServiceRecord`] as it arrives and the
//! object itself is dropped at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_shared::allocator::{Labels, ServiceKey, ServiceRequest};
use k8s_openapi::api::core::v1::{ObjectReference, Service};

use crate::translate::{
    ClassFilter, RequestError, is_load_balancer, service_key, service_request, status_ips,
};

/// What the allocation loop knows about one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRecord {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `metadata.uid`, for event references.
    pub uid: Option<String>,
    /// The version every decision is fenced by.
    pub resource_version: String,
    /// `spec.type == LoadBalancer`.
    pub load_balancer: bool,
    /// A `LoadBalancer` of this controller's class.
    pub wants_address: bool,
    /// The allocation request, with empty namespace labels: those change on their own and
    /// are filled in at decision time by [`ServiceRecord::request_in`].
    request: ServiceRequest,
    /// Why the Service's own settings are unusable, if they are.
    pub request_error: Option<RequestError>,
    /// `status.loadBalancer.ingress[].ip`, in order.
    pub status: Vec<IpAddr>,
}

impl ServiceRecord {
    /// Reads what the loop needs from a Service.
    pub fn new(svc: &Service, class: &ClassFilter) -> Self {
        let (request, request_error) = service_request(svc, &Labels::new());
        ServiceRecord {
            key: service_key(svc),
            uid: svc.metadata.uid.clone(),
            resource_version: svc.metadata.resource_version.clone().unwrap_or_default(),
            load_balancer: is_load_balancer(svc),
            wants_address: class.wants_address(svc),
            request,
            request_error,
            status: status_ips(svc),
        }
    }

    /// The allocation request as seen from a namespace with these labels.
    pub fn request_in(&self, namespace_labels: &Labels) -> ServiceRequest {
        let mut req = self.request.clone();
        req.namespace_labels = namespace_labels.clone();
        req
    }

    /// A reference to the Service, as events carry it.
    pub fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: self.uid.clone(),
            resource_version: Some(self.resource_version.clone()),
            ..ObjectReference::default()
        }
    }
}

/// One watch event, already turned into records.
#[derive(Debug)]
pub enum ServiceEvent {
    /// Created or changed.
    Apply(Arc<ServiceRecord>),
    /// Deleted.
    Delete(ServiceKey),
    /// A (re)list starts.
    Init,
    /// One object of the (re)list.
    InitApply(Arc<ServiceRecord>),
    /// The (re)list is complete.
    InitDone,
}

/// Services by key, following a watch.
///
/// A relist is collected aside and swapped in whole when it is complete, so a Service
/// deleted while the watch was down disappears then, and the loop never sees half a list.
#[derive(Debug, Default)]
pub struct ServiceCache {
    current: HashMap<ServiceKey, Arc<ServiceRecord>>,
    relist: Option<HashMap<ServiceKey, Arc<ServiceRecord>>>,
}

impl ServiceCache {
    /// Applies one event; returns the keys whose record changed (or disappeared) in the
    /// cache the loop reads.
    pub fn apply(&mut self, ev: ServiceEvent) -> Vec<ServiceKey> {
        match ev {
            ServiceEvent::Apply(r) => {
                let key = r.key.clone();
                self.current.insert(key.clone(), r);
                vec![key]
            }
            ServiceEvent::Delete(key) => {
                self.current.remove(&key);
                vec![key]
            }
            ServiceEvent::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            ServiceEvent::InitApply(r) => {
                self.relist
                    .get_or_insert_with(HashMap::new)
                    .insert(r.key.clone(), r);
                Vec::new()
            }
            ServiceEvent::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                let mut changed: Vec<ServiceKey> = self
                    .current
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                changed.extend(
                    fresh
                        .iter()
                        .filter(|(k, r)| self.current.get(*k) != Some(*r))
                        .map(|(k, _)| k.clone()),
                );
                self.current = fresh;
                changed
            }
        }
    }

    /// The record of one Service.
    pub fn get(&self, key: &ServiceKey) -> Option<Arc<ServiceRecord>> {
        self.current.get(key).cloned()
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.current.keys()
    }

    /// How many Services are cached.
    pub fn len(&self) -> usize {
        self.current.len()
    }

    /// Whether no Service is cached.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, rv: &str, ip: Option<&str>) -> Service {
        let status = ip.map_or(
            json!({}),
            |ip| json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}),
        );
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "resourceVersion": rv,
                         "annotations": {"ferrolb.io/address-pool": "blue", "other": "x"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                     "externalTrafficPolicy": "Local", "selector": {"app": name}},
            "status": status,
        }))
        .unwrap()
    }

    fn record(name: &str, rv: &str, ip: Option<&str>) -> Arc<ServiceRecord> {
        Arc::new(ServiceRecord::new(
            &svc(name, rv, ip),
            &ClassFilter::default(),
        ))
    }

    #[test]
    fn record_keeps_what_decisions_read() {
        let r = record("web", "7", Some("192.0.2.1"));
        assert_eq!(r.key, ServiceKey::new("default", "web"));
        assert!(r.load_balancer && r.wants_address);
        assert_eq!(r.status, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.request_error, None);
        let ns = Labels::from([("team".to_owned(), "a".to_owned())]);
        let req = r.request_in(&ns);
        assert_eq!(req.requested_pool.as_deref(), Some("blue"));
        assert_eq!(req.namespace_labels, ns);
        assert!(req.external_traffic_policy_local);
        let o = r.object_ref();
        assert_eq!(
            (o.kind.as_deref(), o.name.as_deref(), o.uid.as_deref()),
            (Some("Service"), Some("web"), Some("uid-web"))
        );
        assert_eq!(o.resource_version.as_deref(), Some("7"));

        let other_class: Service = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}
        }))
        .unwrap();
        let r = ServiceRecord::new(&other_class, &ClassFilter::default());
        assert!(r.load_balancer && !r.wants_address);
    }

    #[test]
    fn relist_swaps_whole_and_reports_what_changed() {
        let mut c = ServiceCache::default();
        assert_eq!(c.apply(ServiceEvent::Init), vec![]);
        c.apply(ServiceEvent::InitApply(record("a", "1", None)));
        c.apply(ServiceEvent::InitApply(record("b", "1", None)));
        // Nothing is visible before the list is complete.
        assert!(c.is_empty());
        let mut changed = c.apply(ServiceEvent::InitDone);
        changed.sort();
        assert_eq!(
            changed,
            vec![
                ServiceKey::new("default", "a"),
                ServiceKey::new("default", "b")
            ]
        );
        assert_eq!(c.len(), 2);

        // A relist after a watch gap: `a` was deleted meanwhile, `b` unchanged, `c` new.
        c.apply(ServiceEvent::Init);
        c.apply(ServiceEvent::InitApply(record("b", "1", None)));
        c.apply(ServiceEvent::InitApply(record("c", "4", Some("192.0.2.3"))));
        assert!(c.get(&ServiceKey::new("default", "a")).is_some());
        let mut changed = c.apply(ServiceEvent::InitDone);
        changed.sort();
        assert_eq!(
            changed,
            vec![
                ServiceKey::new("default", "a"),
                ServiceKey::new("default", "c")
            ]
        );
        assert!(c.get(&ServiceKey::new("default", "a")).is_none());

        assert_eq!(
            c.apply(ServiceEvent::Delete(ServiceKey::new("default", "b"))),
            vec![ServiceKey::new("default", "b")]
        );
        c.apply(ServiceEvent::Apply(record("d", "5", None)));
        let mut keys: Vec<_> = c.keys().map(|k| k.name.clone()).collect();
        keys.sort();
        assert_eq!(keys, vec!["c", "d"]);
    }
}
