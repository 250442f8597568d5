//! The allocator's inputs: pools and Services in plain form. The controller translates
//! `IPAddressPool`s and `Service`s (with their annotations) into these.

use std::fmt;
use std::net::IpAddr;

use super::range::{IpFamily, IpRange};
use super::selector::{LabelSelector, Labels};

/// A pool as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Unique name (the controller may use `namespace/name`).
    pub name: String,
    /// Addresses of the pool, any order, both families allowed.
    pub ranges: Vec<IpRange>,
    /// Whether Services that did not ask for this pool or one of its addresses may get one.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Restriction to some Services, and the pool's priority among the pools that have one.
    pub allocation: Option<ServiceAllocation>,
}

impl PoolConfig {
    /// An auto-assign pool with no restriction.
    pub fn new(name: impl Into<String>, ranges: Vec<IpRange>) -> Self {
        PoolConfig {
            name: name.into(),
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    /// Sets `autoAssign`.
    pub fn auto_assign(mut self, on: bool) -> Self {
        self.auto_assign = on;
        self
    }

    /// Sets `avoidBuggyIPs`.
    pub fn avoid_buggy_ips(mut self, on: bool) -> Self {
        self.avoid_buggy_ips = on;
        self
    }

    /// Sets `serviceAllocation`.
    pub fn allocation(mut self, allocation: ServiceAllocation) -> Self {
        self.allocation = Some(allocation);
        self
    }
}

/// `serviceAllocation` of a pool.
///
/// A Service may use the pool when its namespace is listed or selected (or neither list is
/// given), and its labels match one of the Service selectors (or none is given). A pool
/// with a `serviceAllocation` that does not match a Service is closed to that Service, even
/// when it asks for the pool or one of its addresses by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower is tried first; pools with a priority come before those without.
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    pub namespaces: Vec<String>,
    /// Namespace label selectors; any one matching admits the namespace.
    pub namespace_selectors: Vec<LabelSelector>,
    /// Service label selectors; any one matching admits the Service.
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether the Service may use a pool with this `serviceAllocation`.
    pub fn admits(&self, service: &ServiceRequest) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(&service.key.namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&service.namespace_labels));
        let service_ok = self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| s.matches(&service.labels));
        namespace_ok && service_ok
    }
}

/// Identity of a Service: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Transport protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpFamilyPolicy {
    /// One address, of the first family.
    #[default]
    SingleStack,
    /// One address per family when the pools have both, else one.
    PreferDualStack,
    /// One address per family, or none at all.
    RequireDualStack,
}

/// `spec.ipFamilyPolicy` with `spec.ipFamilies` (primary family first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyRequest {
    /// The policy.
    pub policy: IpFamilyPolicy,
    /// Families in order of preference; empty means "IPv4 first" (or the requested
    /// addresses' order when the Service asks for addresses).
    pub families: Vec<IpFamily>,
}

/// A Service's claim on addresses, in plain form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    /// Namespace and name.
    pub key: ServiceKey,
    /// The Service's labels (for `serviceSelectors`).
    pub labels: Labels,
    /// The labels of the Service's namespace (for `namespaceSelectors`).
    pub namespace_labels: Labels,
    /// Addresses asked for (`ferrolb.io/loadBalancerIPs` or `spec.loadBalancerIP`), at most
    /// one per family. When set, exactly these are assigned, or none.
    pub requested_ips: Vec<IpAddr>,
    /// Pool asked for by name (`ferrolb.io/address-pool`).
    pub requested_pool: Option<String>,
    /// `ferrolb.io/allow-shared-ip`; empty means no sharing.
    pub sharing_key: Option<String>,
    /// Ports the Service exposes; two Services sharing an address must not both use one.
    pub ports: Vec<(Protocol, u16)>,
    /// Address families wanted.
    pub families: FamilyRequest,
    /// `externalTrafficPolicy: Local`.
    pub external_traffic_policy_local: bool,
    /// `spec.selector`: with `Local`, Services sharing an address must select the same pods.
    pub pod_selector: Labels,
    /// Creation time (any monotonic unit, e.g. Unix seconds) used only to decide, at
    /// start-up, which of two Services illegally holding the same address keeps it: the older.
    pub created: i64,
}

impl ServiceRequest {
    /// A single-stack Service with no labels, ports, requests or sharing.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceRequest {
            key: ServiceKey::new(namespace, name),
            labels: Labels::new(),
            namespace_labels: Labels::new(),
            requested_ips: Vec::new(),
            requested_pool: None,
            sharing_key: None,
            ports: Vec::new(),
            families: FamilyRequest::default(),
            external_traffic_policy_local: false,
            pod_selector: Labels::new(),
            created: 0,
        }
    }

    /// Adds a Service label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a namespace label.
    pub fn namespace_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.namespace_labels.insert(key.into(), value.into());
        self
    }

    /// Asks for these addresses.
    pub fn requesting_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.requested_ips = ips.into_iter().collect();
        self
    }

    /// Asks for a pool by name.
    pub fn in_pool(mut self, pool: impl Into<String>) -> Self {
        self.requested_pool = Some(pool.into());
        self
    }

    /// Sets the sharing key.
    pub fn sharing(mut self, key: impl Into<String>) -> Self {
        self.sharing_key = Some(key.into());
        self
    }

    /// Adds a port.
    pub fn port(mut self, protocol: Protocol, port: u16) -> Self {
        self.ports.push((protocol, port));
        self
    }

    /// Sets policy and families.
    pub fn families(mut self, policy: IpFamilyPolicy, families: &[IpFamily]) -> Self {
        self.families = FamilyRequest {
            policy,
            families: families.to_vec(),
        };
        self
    }

    /// `externalTrafficPolicy: Local` with this pod selector.
    pub fn local(mut self, pod_selector: impl IntoIterator<Item = (String, String)>) -> Self {
        self.external_traffic_policy_local = true;
        self.pod_selector = pod_selector.into_iter().collect();
        self
    }

    /// Sets the creation time.
    pub fn created(mut self, created: i64) -> Self {
        self.created = created;
        self
    }

    /// The sharing key, with the empty string read as "no sharing".
    pub fn effective_sharing_key(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|k| !k.is_empty())
    }
}
