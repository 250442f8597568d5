//! `BGPPeer`: a BGP router the speakers open sessions to.

// Clippy mistakes repeated `type_ = ...` inside separate `printcolumn(...)` entries of the
// `#[kube]` attribute for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{SecretKeyReference, conditions_schema};

/// Desired state of a `BGPPeer`.
// Numbers are kept as wide signed integers here and narrowed by `validate`: one out-of-range
// value must turn into a condition on its object, not into a deserialization error that stops a
// whole watch (the schema's bounds protect real API servers, but not every server enforces them).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    status = "BGPPeerStatus",
    derive = "PartialEq",
    shortname = "bgpp",
    category = "ferrolb",
    doc = "A BGP router that ferrolb speakers peer with to announce Service addresses.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(name = "Peer ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// Our autonomous system number (1 to 4294967295, not 23456).
    #[serde(rename = "myASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub my_asn: i64,
    /// The peer's autonomous system number; equal to `myASN` for iBGP.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub peer_asn: i64,
    /// IP address of the peer.
    pub peer_address: String,
    /// TCP port of the peer.
    #[serde(default = "default_bgp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: i32,
    /// Local address to open the session from; by default the kernel picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// Proposed hold time as a duration (`90s`, `1m30s`): `0s` (no keepalives) or at least
    /// `3s`. Defaults to `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval: at most the hold time, and `0s` exactly when the hold time is
    /// `0s`. Defaults to a third of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Time between connection attempts to the peer (greater than zero). Defaults to `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    /// BGP identifier (an IPv4 address); by default the node's IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Nodes that peer with this router; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Secret key holding the TCP MD5 password of the session. The password is read from the
    /// Secret only; it is never copied into any other object, log or event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyReference>,
    /// Allow the peer to be more than one hop away (eBGP multi-hop).
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// Negotiate graceful restart (RFC 4724) with the peer.
    #[serde(default)]
    pub enable_graceful_restart: bool,
}

/// Observed state of a `BGPPeer`, written by the controller. Per-node session state lives in
/// the per-node status object, not here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerStatus {
    /// `Valid` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

fn default_bgp_port() -> i32 {
    179
}
