//! What a kubelet and the EndpointSlice controller would do in a real cluster, done by hand
//! through a kube client: Nodes with their Ready condition and addresses, Services and their
//! EndpointSlices. Plus applying YAML the way `kubectl apply --server-side` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::discovery::Scope;
use serde_json::{Value, json};

use crate::Error;
use crate::sys::wait_until;
use crate::topology::{Port, node_name};

/// Field manager of everything the lab writes.
pub const FIELD_MANAGER: &str = "ferrolb-lab";
/// Label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// Only nodes with a ready endpoint announce.
    Local,
    /// Every eligible node announces while any endpoint is ready.
    Cluster,
}

impl TrafficPolicy {
    fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Local => "Local",
            TrafficPolicy::Cluster => "Cluster",
        }
    }
}

/// A kube client with the lab's helpers.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// Discovery answers by kind, so applying many objects costs one request each.
    kinds: Arc<Mutex<HashMap<GroupVersionKind, (ApiResource, bool)>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cluster")
    }
}

fn api_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Api(format!("{what}: {e}"))
}

impl Cluster {
    /// Helpers over `client`.
    pub fn new(client: kube::Client) -> Cluster {
        Cluster {
            client,
            kinds: Arc::default(),
        }
    }

    /// The API resource of a kind and whether it is namespaced.
    async fn resource(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, bool), Error> {
        if let Some(found) = self.kinds.lock().ok().and_then(|k| k.get(gvk).cloned()) {
            return Ok(found);
        }
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, gvk)
            .await
            .map_err(|e| api_err(format!("discovering {} {}", gvk.api_version(), gvk.kind), e))?;
        let found = (resource, caps.scope == Scope::Namespaced);
        if let Ok(mut k) = self.kinds.lock() {
            k.insert(gvk.clone(), found.clone());
        }
        Ok(found)
    }

    /// Server-side applies every object of a (multi-document) YAML string, in order.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<(), Error> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| api_err("parsing YAML", e))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            self.apply(doc).await?;
        }
        Ok(())
    }

    /// Server-side applies one object.
    pub async fn apply(&self, doc: Value) -> Result<(), Error> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, namespaced) = self.resource(&gvk).await?;
        let api: Api<DynamicObject> = if namespaced {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            Api::namespaced_with(self.client.clone(), ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .map_err(|e| api_err(format!("applying {kind} {name}"), e))?;
        Ok(())
    }

    /// Deletes an object named in YAML-ish terms (`apiVersion`, `kind`, namespace, name);
    /// a missing object is not an error.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), Error> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = self.resource(&gvk).await?;
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(api_err(format!("deleting {kind} {name}"), e)),
        }
    }

    /// Creates (or updates) a namespace.
    pub async fn namespace(&self, name: &str) -> Result<(), Error> {
        self.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .await
    }

    /// Registers node `index` the way its kubelet would: labels, its lab address as
    /// `InternalIP` (the speaker's default router ID), and `Ready=True`.
    pub async fn create_node(
        &self,
        index: usize,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let name = node_name(index);
        let mut all = labels.clone();
        all.insert("kubernetes.io/hostname".into(), name.clone());
        self.apply(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": all},
        }))
        .await?;
        let api: Api<Node> = Api::all(self.client.clone());
        let status = json!({"status": {
            "addresses": [
                {"type": "InternalIP", "address": Port::Ebgp.node_ip(index).to_string()},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [ready_condition(true)],
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map_err(|e| api_err(format!("node {name} status"), e))?;
        Ok(())
    }

    /// Sets node `name`'s Ready condition.
    pub async fn set_node_ready(&self, name: &str, ready: bool) -> Result<(), Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": [ready_condition(ready)]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| api_err(format!("node {name} Ready={ready}"), e))?;
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) a label on node `name`.
    pub async fn set_node_label(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"metadata": {"labels": {key: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| api_err(format!("label {key} on node {name}"), e))?;
        Ok(())
    }

    /// Creates a `type: LoadBalancer` Service (TCP 80) with the given labels and
    /// annotations.
    pub async fn create_service(
        &self,
        namespace: &str,
        name: &str,
        policy: TrafficPolicy,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Result<(), Error> {
        self.apply(service_doc(namespace, name, policy, labels, annotations))
            .await
    }

    /// Creates a `type: LoadBalancer` Service (TCP 80) with an `ipFamilyPolicy`
    /// (`SingleStack`, `PreferDualStack`, `RequireDualStack`) and its `ipFamilies` in
    /// order (`IPv4`, `IPv6`), as a dual-stack or IPv6 cluster would hold it; with
    /// annotations.
    pub async fn create_service_families(
        &self,
        namespace: &str,
        name: &str,
        policy: TrafficPolicy,
        family_policy: &str,
        families: &[&str],
        annotations: &[(&str, &str)],
    ) -> Result<(), Error> {
        let mut doc = service_doc(namespace, name, policy, &[], annotations);
        doc["spec"]["ipFamilyPolicy"] = json!(family_policy);
        doc["spec"]["ipFamilies"] = json!(families);
        self.apply(doc).await
    }

    /// Deletes a Service and its lab EndpointSlice.
    pub async fn delete_service(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.delete(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(namespace),
            &slice_name(name),
        )
        .await?;
        self.delete("v1", "Service", Some(namespace), name).await
    }

    /// Writes the Service's EndpointSlice: one endpoint per `(node index, ready)`, as the
    /// EndpointSlice controller would for pods on those nodes (`serving` follows `ready`).
    pub async fn set_endpoints(
        &self,
        namespace: &str,
        service: &str,
        endpoints: &[(usize, bool)],
    ) -> Result<(), Error> {
        self.set_family_endpoints(namespace, service, false, endpoints)
            .await
    }

    /// [`Cluster::set_endpoints`] for one address family: the EndpointSlice controller
    /// writes one slice per family of a dual-stack Service (`addressType` `IPv4` or
    /// `IPv6`, pod addresses of that family).
    pub async fn set_family_endpoints(
        &self,
        namespace: &str,
        service: &str,
        v6: bool,
        endpoints: &[(usize, bool)],
    ) -> Result<(), Error> {
        let eps: Vec<Value> = endpoints
            .iter()
            .enumerate()
            .map(|(k, &(node, ready))| {
                let address = if v6 {
                    format!("fd00:244:{node}::{:x}", k + 10)
                } else {
                    format!("10.244.{node}.{}", k + 10)
                };
                json!({
                    "addresses": [address],
                    "nodeName": node_name(node),
                    "conditions": {"ready": ready, "serving": ready, "terminating": false},
                })
            })
            .collect();
        let (slice, address_type) = if v6 {
            (slice_name_v6(service), "IPv6")
        } else {
            (slice_name(service), "IPv4")
        };
        self.apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice, "namespace": namespace,
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": address_type,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps,
        }))
        .await
    }

    /// The Service's ingress IPs (empty until the controller has allocated).
    pub async fn service_ips(&self, namespace: &str, name: &str) -> Result<Vec<IpAddr>, Error> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let svc = api
            .get(name)
            .await
            .map_err(|e| api_err(format!("service {namespace}/{name}"), e))?;
        Ok(svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip?.parse().ok())
            .collect())
    }

    /// Waits until the controller has given the Service an IP; returns the first.
    pub async fn wait_service_ip(
        &self,
        namespace: &str,
        name: &str,
        deadline: Duration,
    ) -> Result<IpAddr, Error> {
        wait_until(
            &format!("an IP for Service {namespace}/{name}"),
            deadline,
            Duration::from_millis(20),
            || async { Ok(self.service_ips(namespace, name).await?.first().copied()) },
        )
        .await
    }

    /// Creates or updates an Opaque Secret with one key.
    pub async fn secret(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        self.apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": {key: base64::engine::general_purpose::STANDARD.encode(value)},
        }))
        .await
    }

    /// The holder of the Lease if it was renewed after `since`.
    pub async fn lease_renewed_since(
        &self,
        namespace: &str,
        name: &str,
        since: jiff::Timestamp,
    ) -> Result<Option<String>, Error> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), namespace);
        let lease = api.get_opt(name).await.map_err(|e| api_err("lease", e))?;
        let spec = lease.and_then(|l| l.spec);
        Ok(spec.and_then(|s| {
            let renewed = s.renew_time?.0;
            (renewed > since).then_some(s.holder_identity?)
        }))
    }

    /// The holder of the controller's leader Lease.
    pub async fn lease_holder(&self, namespace: &str, name: &str) -> Result<Option<String>, Error> {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(l) => Ok(l
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty())),
            Err(e) => Err(api_err("lease", e)),
        }
    }
}

/// The lab's EndpointSlice name for a Service.
pub fn slice_name(service: &str) -> String {
    format!("{service}-lab")
}

/// The lab's IPv6 EndpointSlice name for a Service.
pub fn slice_name_v6(service: &str) -> String {
    format!("{service}-lab6")
}

/// A `type: LoadBalancer` Service (TCP 80).
fn service_doc(
    namespace: &str,
    name: &str,
    policy: TrafficPolicy,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Value {
    let labels: BTreeMap<_, _> = labels.iter().copied().collect();
    let annotations: BTreeMap<_, _> = annotations.iter().copied().collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            // BGP load balancing needs no NodePorts (and 10k Services would exhaust
            // the NodePort range).
            "allocateLoadBalancerNodePorts": false,
            "externalTrafficPolicy": policy.as_str(),
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
    })
}

fn ready_condition(ready: bool) -> Value {
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
        "lastHeartbeatTime": now(),
        "lastTransitionTime": now(),
    })
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}
