//! `BGPAdvertisement`: which pools are announced, from which nodes, to which peers, and how.

// Clippy mistakes repeated `type_ = ...` inside separate `printcolumn(...)` entries of the
// `#[kube]` attribute for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::conditions_schema;

/// Desired state of a `BGPAdvertisement`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    singular = "bgpadvertisement",
    namespaced,
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    shortname = "bgpadv",
    category = "ferrolb",
    doc = "Announces the addresses of some IPAddressPools over BGP.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Names of the pools announced. With neither this nor `ipAddressPoolSelectors`, every
    /// pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools (by label) announced, in addition to `ipAddressPools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Services (by label) announced; empty means every Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
    /// Nodes (by label) that announce; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Names of the `BGPPeer`s to announce to; empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Prefix length IPv4 addresses are announced with (0 to 32, default 32). Shorter lengths
    /// aggregate several Service addresses into one route; it must not be shorter than the
    /// prefix length of any pool CIDR announced.
    #[serde(default = "default_aggregation_length")]
    #[schemars(range(min = 0, max = 32))]
    pub aggregation_length: i32,
    /// Prefix length IPv6 addresses are announced with (0 to 128, default 128).
    #[serde(
        default = "default_aggregation_length_v6",
        rename = "aggregationLengthV6"
    )]
    #[schemars(range(min = 0, max = 128))]
    pub aggregation_length_v6: i32,
    /// LOCAL_PREF attribute of the announcements; only sent to iBGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4_294_967_295_i64))]
    pub local_pref: Option<i64>,
    /// BGP communities attached to the announcements: standard (`65000:100`), well-known
    /// names (`no-export`, `no-advertise`, `blackhole`, ...), or large (`large:65000:1:2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

/// Observed state of a `BGPAdvertisement`, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementStatus {
    /// `Valid` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl Default for BGPAdvertisementSpec {
    /// Announce every pool to every peer from every node, one host route per address.
    fn default() -> Self {
        Self {
            ip_address_pools: Vec::new(),
            ip_address_pool_selectors: Vec::new(),
            service_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
            aggregation_length: default_aggregation_length(),
            aggregation_length_v6: default_aggregation_length_v6(),
            local_pref: None,
            communities: Vec::new(),
        }
    }
}

fn default_aggregation_length() -> i32 {
    32
}

fn default_aggregation_length_v6() -> i32 {
    128
}
