//! Turns API objects into the allocator's plain inputs and back: which Services are ours,
//! what a Service asks for, what its status shows, a pool's configuration and status.
//! Pure functions; the reconciler does the I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_shared::allocator::{
    FamilyRequest, IpFamily, IpFamilyPolicy, Labels, PoolConfig, PoolStats, Protocol,
    ServiceAllocation, ServiceKey, ServiceRequest,
};
use ferrolb_shared::constants::{
    ADDRESS_POOL_ANNOTATIONS, ALLOW_SHARED_IP_ANNOTATIONS, DEFAULT_LOAD_BALANCER_CLASS,
    LOAD_BALANCER_IPS_ANNOTATIONS, first_annotation,
};
use ferrolb_shared::crd::{
    CONDITION_OVERLAPS, CONDITION_VALID, IPAddressPool, IPAddressPoolStatus, REASON_ACCEPTED,
    REASON_INVALID_SPEC, REASON_NO_OVERLAP, REASON_OVERLAPS_POOL, set_condition,
};
use ferrolb_shared::validate::{ConfigError, ParsedPool, parse_load_balancer_ips, summarize};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Reason of the `Valid=False` condition on a pool whose name another pool already uses.
pub const REASON_DUPLICATE_NAME: &str = "DuplicateName";

/// Which Services this controller handles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassFilter {
    /// `--lb-class`; `None`: Services with no class, or with ferrolb's default class.
    pub lb_class: Option<String>,
}

impl ClassFilter {
    /// Whether the class of a `LoadBalancer` Service is ours. Services of other classes
    /// belong to another implementation and are never touched, status included.
    pub fn class_is_ours(&self, svc: &Service) -> bool {
        let class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref());
        match (&self.lb_class, class) {
            (Some(ours), Some(theirs)) => ours == theirs,
            (Some(_), None) => false,
            (None, None) => true,
            (None, Some(theirs)) => theirs == DEFAULT_LOAD_BALANCER_CLASS,
        }
    }

    /// Whether we must give the Service addresses: `type: LoadBalancer` of our class.
    pub fn wants_address(&self, svc: &Service) -> bool {
        is_load_balancer(svc) && self.class_is_ours(svc)
    }
}

/// `spec.type == LoadBalancer`.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// Namespace and name of a Service.
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

/// The addresses `status.loadBalancer.ingress[].ip` shows, in order; `ipMode` and
/// hostnames are ignored (API servers add `ipMode: VIP` on their own).
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Why a Service's own settings are unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The requested-addresses annotation (or `spec.loadBalancerIP`) does not parse.
    #[error("{source_name}: {message}")]
    InvalidRequestedIps {
        /// Annotation or field name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

impl RequestError {
    /// Stable reason for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::InvalidRequestedIps { .. } => "InvalidRequestedIPs",
        }
    }
}

fn parse_policy(policy: Option<&str>) -> IpFamilyPolicy {
    match policy {
        Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
        _ => IpFamilyPolicy::SingleStack,
    }
}

fn parse_family(family: &str) -> Option<IpFamily> {
    match family {
        "IPv4" => Some(IpFamily::V4),
        "IPv6" => Some(IpFamily::V6),
        _ => None,
    }
}

fn parse_protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// What the Service asks the allocator for. `namespace_labels` are the labels of its
/// namespace (for `namespaceSelectors`).
///
/// A Service whose requested addresses do not parse still gets a request (asking for no
/// particular address) along with the error: the controller then keeps the addresses it
/// holds legitimately, reports the error, and hands out nothing new.
pub fn service_request(
    svc: &Service,
    namespace_labels: &Labels,
) -> (ServiceRequest, Option<RequestError>) {
    match strict_service_request(svc, namespace_labels) {
        Ok(r) => (r, None),
        Err(e) => {
            let mut lenient = svc.clone();
            if let Some(a) = lenient.metadata.annotations.as_mut() {
                for name in LOAD_BALANCER_IPS_ANNOTATIONS {
                    a.remove(name);
                }
            }
            if let Some(s) = lenient.spec.as_mut() {
                s.load_balancer_ip = None;
            }
            match strict_service_request(&lenient, namespace_labels) {
                Ok(r) => (r, Some(e)),
                // Unreachable: without requested addresses nothing else can fail.
                Err(_) => (
                    ServiceRequest::new(
                        svc.metadata.namespace.clone().unwrap_or_default(),
                        svc.metadata.name.clone().unwrap_or_default(),
                    ),
                    Some(e),
                ),
            }
        }
    }
}

/// [`service_request`] that fails on unparsable requested addresses.
pub fn strict_service_request(
    svc: &Service,
    namespace_labels: &Labels,
) -> Result<ServiceRequest, RequestError> {
    let key = service_key(svc);
    let empty = BTreeMap::new();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec = svc.spec.clone().unwrap_or_default();
    let requested_ips = match first_annotation(annotations, &LOAD_BALANCER_IPS_ANNOTATIONS) {
        Some((name, value)) => {
            parse_load_balancer_ips(value).map_err(|e| RequestError::InvalidRequestedIps {
                source_name: name.to_owned(),
                message: e.to_string(),
            })?
        }
        None => match spec.load_balancer_ip.as_deref().map(str::trim) {
            Some(ip) if !ip.is_empty() => {
                vec![ip.parse().map_err(|_| RequestError::InvalidRequestedIps {
                    source_name: "spec.loadBalancerIP".to_owned(),
                    message: format!("{ip:?} is not an IP address"),
                })?]
            }
            _ => Vec::new(),
        },
    };
    let requested_pool = first_annotation(annotations, &ADDRESS_POOL_ANNOTATIONS)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let sharing_key = first_annotation(annotations, &ALLOW_SHARED_IP_ANNOTATIONS)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty());
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            u16::try_from(p.port)
                .ok()
                .map(|port| (parse_protocol(p.protocol.as_deref()), port))
        })
        .collect();
    let families = FamilyRequest {
        policy: parse_policy(spec.ip_family_policy.as_deref()),
        families: spec
            .ip_families
            .iter()
            .flatten()
            .filter_map(|f| parse_family(f))
            .collect(),
    };
    let created = svc
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    // The pods matter only to the sharing rule under `Local`; an empty map costs nothing,
    // a one-entry one half a KiB per Service per copy.
    let pod_selector = if local && sharing_key.is_some() {
        spec.selector.unwrap_or_default()
    } else {
        Labels::new()
    };
    Ok(ServiceRequest {
        key,
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        namespace_labels: namespace_labels.clone(),
        requested_ips,
        requested_pool,
        sharing_key,
        ports,
        families,
        external_traffic_policy_local: local,
        pod_selector,
        created,
    })
}

/// The allocator's view of a validated pool, named `name`.
pub fn pool_config(name: &str, parsed: &ParsedPool) -> PoolConfig {
    PoolConfig {
        name: name.to_owned(),
        ranges: parsed.ranges.clone(),
        auto_assign: parsed.auto_assign,
        avoid_buggy_ips: parsed.avoid_buggy_ips,
        allocation: parsed.allocation.as_ref().map(|a| ServiceAllocation {
            priority: a.priority,
            namespaces: a.namespaces.iter().cloned().collect(),
            namespace_selectors: a.namespace_selectors.clone(),
            service_selectors: a.service_selectors.clone(),
        }),
    }
}

/// How a pool object fared when the configuration was assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolVerdict {
    /// In use; `overlaps` names the pools it overlaps (empty when none).
    Active {
        /// Other pools sharing addresses with this one.
        overlaps: Vec<String>,
        /// Address counts.
        stats: PoolStats,
    },
    /// The spec failed validation.
    Invalid(Vec<ConfigError>),
    /// Another pool (in another namespace) already uses this name.
    DuplicateName,
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// The status a pool should show, starting from the one it shows (so condition transition
/// times move only on transitions). Returns `None` when nothing would change.
pub fn desired_pool_status(
    pool: &IPAddressPool,
    verdict: &PoolVerdict,
) -> Option<IPAddressPoolStatus> {
    let current = pool.status.clone().unwrap_or_default();
    let mut next = current.clone();
    let generation = pool.metadata.generation;
    match verdict {
        PoolVerdict::Active { overlaps, stats } => {
            set_condition(
                &mut next.conditions,
                condition(
                    CONDITION_VALID,
                    true,
                    REASON_ACCEPTED,
                    String::new(),
                    generation,
                ),
            );
            let overlap = if overlaps.is_empty() {
                condition(
                    CONDITION_OVERLAPS,
                    false,
                    REASON_NO_OVERLAP,
                    String::new(),
                    generation,
                )
            } else {
                condition(
                    CONDITION_OVERLAPS,
                    true,
                    REASON_OVERLAPS_POOL,
                    format!(
                        "shares addresses with pool(s) {}; the shared addresses are not assigned",
                        overlaps.join(", ")
                    ),
                    generation,
                )
            };
            set_condition(&mut next.conditions, overlap);
            next.set_counts(
                ferrolb_shared::validate::IpFamily::V4,
                stats.ipv4.in_use,
                stats.ipv4.available,
            );
            next.set_counts(
                ferrolb_shared::validate::IpFamily::V6,
                stats.ipv6.in_use,
                stats.ipv6.available,
            );
        }
        PoolVerdict::Invalid(errors) => {
            set_condition(
                &mut next.conditions,
                condition(
                    CONDITION_VALID,
                    false,
                    REASON_INVALID_SPEC,
                    summarize(errors),
                    generation,
                ),
            );
            next.set_counts(ferrolb_shared::validate::IpFamily::V4, 0, 0);
            next.set_counts(ferrolb_shared::validate::IpFamily::V6, 0, 0);
        }
        PoolVerdict::DuplicateName => {
            set_condition(
                &mut next.conditions,
                condition(
                    CONDITION_VALID,
                    false,
                    REASON_DUPLICATE_NAME,
                    "another IPAddressPool (in another namespace) already uses this name; this one is ignored".to_owned(),
                    generation,
                ),
            );
            next.set_counts(ferrolb_shared::validate::IpFamily::V4, 0, 0);
            next.set_counts(ferrolb_shared::validate::IpFamily::V6, 0, 0);
        }
    }
    (next != current).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn lb(annotations: serde_json::Value, spec_extra: serde_json::Value) -> Service {
        let mut spec = json!({"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]});
        if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            for (k, v) in extra {
                s.insert(k.clone(), v.clone());
            }
        }
        svc(json!({
            "metadata": {"name": "web", "namespace": "prod", "annotations": annotations,
                         "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec,
        }))
    }

    #[test]
    fn class_filter_table() {
        let with_class = |c: Option<&str>, ty: &str| {
            let mut spec = json!({"type": ty});
            if let Some(c) = c {
                spec["loadBalancerClass"] = json!(c);
            }
            svc(json!({"metadata": {"name": "a", "namespace": "d"}, "spec": spec}))
        };
        let default = ClassFilter::default();
        let custom = ClassFilter {
            lb_class: Some("example.com/lb".into()),
        };
        let rows = [
            (None, "LoadBalancer", true, false),
            (
                Some(DEFAULT_LOAD_BALANCER_CLASS),
                "LoadBalancer",
                true,
                false,
            ),
            (Some("example.com/lb"), "LoadBalancer", false, true),
            (Some("other.io/lb"), "LoadBalancer", false, false),
            (None, "ClusterIP", false, false),
            (None, "NodePort", false, false),
        ];
        for (class, ty, by_default, by_custom) in rows {
            let s = with_class(class, ty);
            assert_eq!(
                default.wants_address(&s),
                by_default,
                "{class:?} {ty} default"
            );
            assert_eq!(custom.wants_address(&s), by_custom, "{class:?} {ty} custom");
        }
    }

    #[test]
    fn request_reads_annotations_in_precedence_order() {
        let s = lb(
            json!({
                "metallb.universe.tf/loadBalancerIPs": "192.0.2.9",
                "metallb.io/loadBalancerIPs": "192.0.2.10, 2001:db8::10",
                "metallb.io/address-pool": "blue",
                "metallb.universe.tf/allow-shared-ip": "k",
            }),
            json!({"loadBalancerIP": "192.0.2.99", "externalTrafficPolicy": "Local",
                   "selector": {"app": "web"}, "ipFamilyPolicy": "PreferDualStack",
                   "ipFamilies": ["IPv6", "IPv4"]}),
        );
        let ns = Labels::from([("team".to_owned(), "a".to_owned())]);
        let r = strict_service_request(&s, &ns).unwrap();
        assert_eq!(r.key, ServiceKey::new("prod", "web"));
        assert_eq!(
            r.requested_ips,
            vec![
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
        assert_eq!(r.requested_pool.as_deref(), Some("blue"));
        assert_eq!(r.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.ports, vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)]);
        assert_eq!(r.families.policy, IpFamilyPolicy::PreferDualStack);
        assert_eq!(r.families.families, vec![IpFamily::V6, IpFamily::V4]);
        assert!(r.external_traffic_policy_local);
        assert_eq!(r.pod_selector.get("app").map(String::as_str), Some("web"));
        assert_eq!(r.namespace_labels, ns);
        assert_eq!(r.created, 1_767_225_600);

        let ours = lb(
            json!({"ferrolb.io/loadBalancerIPs": "192.0.2.1", "metallb.io/loadBalancerIPs": "192.0.2.2",
                   "ferrolb.io/address-pool": "red"}),
            json!({}),
        );
        let r = strict_service_request(&ours, &Labels::new()).unwrap();
        assert_eq!(
            r.requested_ips,
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.requested_pool.as_deref(), Some("red"));
        assert_eq!(r.sharing_key, None);
    }

    #[test]
    fn spec_load_balancer_ip_is_used_without_annotation() {
        let s = lb(json!({}), json!({"loadBalancerIP": "198.51.100.7"}));
        let (r, e) = service_request(&s, &Labels::new());
        assert_eq!(e, None);
        assert_eq!(
            r.requested_ips,
            vec!["198.51.100.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.families.policy, IpFamilyPolicy::SingleStack);
        let bad = lb(json!({}), json!({"loadBalancerIP": "lb.example"}));
        let (r, e) = service_request(&bad, &Labels::new());
        let e = e.unwrap();
        assert!(r.requested_ips.is_empty());
        assert_eq!(r.ports.len(), 2);
        assert_eq!(e.reason(), "InvalidRequestedIPs");
        assert!(e.to_string().contains("spec.loadBalancerIP"), "{e}");
    }

    #[test]
    fn invalid_annotation_is_an_error_naming_the_annotation() {
        let s = lb(
            json!({"ferrolb.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
            json!({}),
        );
        let e = strict_service_request(&s, &Labels::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ferrolb.io/loadBalancerIPs: two IPv4"),
            "{e}"
        );
    }

    #[test]
    fn status_ips_ignore_ip_mode_and_hostnames() {
        let s = svc(json!({
            "metadata": {"name": "a", "namespace": "d"},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example"}, {"ip": "2001:db8::1"}
            ]}}
        }));
        assert_eq!(
            status_ips(&s),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(status_ips(&svc(json!({"metadata": {"name": "a"}}))).is_empty());
    }

    fn pool(v: serde_json::Value) -> IPAddressPool {
        serde_json::from_value(json!({
            "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": "ferrolb-system", "generation": 3},
            "spec": v,
        }))
        .unwrap()
    }

    #[test]
    fn pool_config_keeps_ranges_flags_and_selectors() {
        let p = pool(json!({
            "addresses": ["192.0.2.0/30", "2001:db8::1-2001:db8::4"],
            "autoAssign": false, "avoidBuggyIPs": true,
            "serviceAllocation": {"priority": 5, "namespaces": ["prod"],
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                "serviceSelectors": [{"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}]}
        }));
        let cfg = pool_config("p", &p.validate().unwrap());
        assert_eq!(cfg.ranges.len(), 2);
        assert_eq!(cfg.ranges[0].size(), 4);
        assert!(!cfg.auto_assign);
        assert!(cfg.avoid_buggy_ips);
        let a = cfg.allocation.unwrap();
        assert_eq!(a.priority, Some(5));
        assert_eq!(a.namespaces, vec!["prod".to_owned()]);
        let req = ServiceRequest::new("prod", "s").namespace_label("team", "a");
        assert!(a.admits(&req));
        assert!(!a.admits(&req.clone().label("tier", "db")));
        assert!(!a.admits(&ServiceRequest::new("dev", "s")));
    }

    #[test]
    fn pool_status_conditions_and_counts() {
        let p = pool(json!({"addresses": ["192.0.2.0/30"]}));
        let mut stats = PoolStats::default();
        stats.ipv4.in_use = 1;
        stats.ipv4.available = 3;
        let active = PoolVerdict::Active {
            overlaps: vec![],
            stats,
        };
        let st = desired_pool_status(&p, &active).unwrap();
        assert_eq!((st.assigned_ipv4, st.available_ipv4), (1, 3));
        let valid = st
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_VALID)
            .unwrap();
        assert_eq!(
            (valid.status.as_str(), valid.observed_generation),
            ("True", Some(3))
        );
        // Same inputs against the written status: nothing to write (no resync churn).
        let mut written = p.clone();
        written.status = Some(st);
        assert_eq!(desired_pool_status(&written, &active), None);
        // Overlap flips the condition.
        let st = desired_pool_status(
            &written,
            &PoolVerdict::Active {
                overlaps: vec!["q".into()],
                stats,
            },
        )
        .unwrap();
        let ov = st
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_OVERLAPS)
            .unwrap();
        assert_eq!(ov.status, "True");
        assert!(ov.message.contains("q"));
        // Invalid spec.
        let bad = pool(json!({"addresses": ["192.0.2.0/33"]}));
        let errors = bad.validate().unwrap_err();
        let st = desired_pool_status(&bad, &PoolVerdict::Invalid(errors)).unwrap();
        let valid = st
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_VALID)
            .unwrap();
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_str()),
            ("False", REASON_INVALID_SPEC)
        );
        assert!(
            valid.message.contains("spec.addresses[0]"),
            "{}",
            valid.message
        );
    }
}
