//! The state one speaker sees, reduced to what the decision needs.
//!
//! The speaker keeps these views in its caches (built with the `from_*` constructors, which
//! are pure) and lends them to [`decide`](super::decide) through a [`Snapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::allocator::ServiceKey;
use crate::crd::{BGPAdvertisement, BGPPeer, IPAddressPool};
use crate::validate::{ConfigError, ParsedAdvertisement, ParsedPeer, ParsedPool};

/// Everything [`decide`](super::decide) looks at, for the speaker's own node.
///
/// Names are unique within each slice (they are Kubernetes object names); the order of
/// every slice is irrelevant to the result.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The node this speaker runs on.
    pub node: &'a NodeView,
    /// Every valid `IPAddressPool`.
    pub pools: &'a [PoolView],
    /// Every valid `BGPAdvertisement`.
    pub advertisements: &'a [AdvertisementView],
    /// Every valid `BGPPeer` (including those that do not select this node).
    pub peers: &'a [PeerView],
    /// Every LoadBalancer Service this speaker handles (its class), with or without an
    /// address.
    pub services: &'a [ServiceView],
}

/// A node's name, labels and health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
}

impl NodeView {
    /// The view of a Node object. A node without a `Ready` condition counts as not ready
    /// (the kubelet has not reported yet); a missing `NetworkUnavailable` condition counts as
    /// available (most network plugins never set it).
    pub fn from_node(node: &Node) -> Self {
        let condition = |kind: &str| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
                .is_some_and(|c| c.status == "True")
        };
        NodeView {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            ready: condition("Ready"),
            network_unavailable: condition("NetworkUnavailable"),
        }
    }
}

/// An `IPAddressPool` by name, with its labels (for `ipAddressPoolSelectors`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// Pool labels.
    pub labels: BTreeMap<String, String>,
    /// The validated spec.
    pub pool: ParsedPool,
}

/// A `BGPAdvertisement` by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisementView {
    /// Advertisement name.
    pub name: String,
    /// The validated spec.
    pub advertisement: ParsedAdvertisement,
}

/// A `BGPPeer` by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// Peer name.
    pub name: String,
    /// The validated spec.
    pub peer: ParsedPeer,
}

impl PoolView {
    /// Validates a pool into the view the decision reads.
    pub fn from_object(pool: &IPAddressPool) -> Result<Self, Vec<ConfigError>> {
        Ok(PoolView {
            name: pool.metadata.name.clone().unwrap_or_default(),
            labels: pool.metadata.labels.clone().unwrap_or_default(),
            pool: pool.validate()?,
        })
    }
}

impl AdvertisementView {
    /// Validates an advertisement into the view the decision reads.
    pub fn from_object(advertisement: &BGPAdvertisement) -> Result<Self, Vec<ConfigError>> {
        Ok(AdvertisementView {
            name: advertisement.metadata.name.clone().unwrap_or_default(),
            advertisement: advertisement.validate()?,
        })
    }
}

impl PeerView {
    /// Validates a peer into the view the decision reads.
    pub fn from_object(peer: &BGPPeer) -> Result<Self, Vec<ConfigError>> {
        Ok(PeerView {
            name: peer.metadata.name.clone().unwrap_or_default(),
            peer: peer.validate()?,
        })
    }
}

/// `spec.externalTrafficPolicy` of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficPolicy {
    /// `Cluster` (the default): any node forwards to any endpoint.
    #[default]
    Cluster,
    /// `Local`: a node only forwards to endpoints on itself.
    Local,
}

/// Where a Service's endpoints are healthy, by node name.
///
/// Endpoints whose node is unknown (no `nodeName`) go under the empty name `""`: they count
/// for `externalTrafficPolicy: Cluster` but never as local to a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointView {
    /// Nodes with at least one ready endpoint.
    pub ready_nodes: BTreeSet<String>,
    /// Nodes with at least one serving endpoint (ready ones, and terminating ones that still
    /// serve). Whether ready nodes are repeated here does not change any decision.
    pub serving_nodes: BTreeSet<String>,
}

impl EndpointView {
    /// The view of a Service's EndpointSlices (all families). Unset conditions are read as
    /// the API documents and kube-proxy does: `ready` unset means ready; `serving` unset
    /// means the same as `ready` (API servers before `serving` existed), never more.
    pub fn from_slices<'s>(slices: impl IntoIterator<Item = &'s EndpointSlice>) -> Self {
        let mut view = EndpointView::default();
        for endpoint in slices.into_iter().flat_map(|s| &s.endpoints) {
            if endpoint.addresses.is_empty() {
                continue;
            }
            let node = endpoint.node_name.clone().unwrap_or_default();
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            if ready {
                view.ready_nodes.insert(node.clone());
            }
            if ready || serving {
                view.serving_nodes.insert(node);
            }
        }
        view
    }

    /// Whether no endpoint anywhere is ready or serving.
    pub fn is_empty(&self) -> bool {
        self.ready_nodes.is_empty() && self.serving_nodes.is_empty()
    }
}

/// A LoadBalancer Service as the decision sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Namespace and name.
    pub key: ServiceKey,
    /// Service labels (for `serviceSelectors`).
    pub labels: BTreeMap<String, String>,
    /// The addresses in `status.loadBalancer.ingress` (order irrelevant).
    pub ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// Endpoint health by node.
    pub endpoints: EndpointView,
}

impl ServiceView {
    /// The view of a Service and its EndpointSlices. Ingress entries without a parsable
    /// `ip` (hostnames) are skipped.
    pub fn from_service(service: &Service, endpoints: EndpointView) -> Self {
        let ips = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect();
        let traffic_policy = match service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
        {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        ServiceView {
            key: ServiceKey::new(
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default(),
            ),
            labels: service.metadata.labels.clone().unwrap_or_default(),
            ips,
            traffic_policy,
            endpoints,
        }
    }
}
