//! `IPAddressPool`: the addresses the controller may hand to Services.

// Clippy mistakes repeated `type_ = ...` inside separate `printcolumn(...)` entries of the
// `#[kube]` attribute for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::conditions_schema;

/// Desired state of an `IPAddressPool`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    singular = "ipaddresspool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    shortname = "ipp",
    shortname = "ippool",
    category = "ferrolb",
    doc = "A set of IP addresses the ferrolb controller may assign to LoadBalancer Services.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Assigned v4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Assigned v6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Available v4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Available v6",
        type_ = "integer",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Address ranges of the pool: CIDRs (`192.168.10.0/24`, `fc00:f853:ccd:e799::/124`),
    /// single addresses (`192.168.10.7`), or inclusive ranges (`192.168.9.1-192.168.9.5`).
    /// IPv4 and IPv6 entries may be mixed in one pool.
    #[schemars(length(min = 1))]
    pub addresses: Vec<String>,
    /// Whether the controller may pick addresses from this pool for Services that did not ask
    /// for a pool or an address explicitly.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Never assign IPv4 addresses ending in `.0` or `.255`, which some broken network gear
    /// drops.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts the pool to some Services and orders it against other pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// Which Services may get addresses from a pool, and in which order pools are tried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Pools with a lower priority are tried first; pools without one come after all
    /// pools that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Names of the namespaces whose Services may use this pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces (by label) whose Services may use this pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services (by label) that may use this pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Observed state of an `IPAddressPool`, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of this pool currently assigned to Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv6 addresses of this pool currently assigned to Services.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv4 addresses of this pool still free (saturates at the int64 maximum).
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses of this pool still free (saturates at the int64 maximum).
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
    /// `Valid` and `Overlaps` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl IPAddressPoolStatus {
    /// Records the counts of one family; counts beyond `i64::MAX` (large IPv6 pools) are
    /// shown as `i64::MAX`.
    pub fn set_counts(
        &mut self,
        family: crate::validate::IpFamily,
        assigned: u128,
        available: u128,
    ) {
        let clamp = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
        match family {
            crate::validate::IpFamily::V4 => {
                self.assigned_ipv4 = clamp(assigned);
                self.available_ipv4 = clamp(available);
            }
            crate::validate::IpFamily::V6 => {
                self.assigned_ipv6 = clamp(assigned);
                self.available_ipv6 = clamp(available);
            }
        }
    }
}

fn default_true() -> bool {
    true
}
