//! Annotation and label names ferrolb reads and writes, in one place.
//!
//! The `ferrolb.io/` spellings are ours. The `metallb.io/` and older `metallb.universe.tf/`
//! spellings are honoured too, so Services can move over from MetalLB unchanged; when a
//! Service carries several spellings of one annotation, the ferrolb one wins, then
//! `metallb.io`, then `metallb.universe.tf` (see the `*_ANNOTATIONS` lists, in that order).

/// API group of the ferrolb custom resources.
pub const API_GROUP: &str = "ferrolb.io";
/// API version of the ferrolb custom resources.
pub const API_VERSION: &str = "v1alpha1";

/// Service annotation requesting specific addresses: a comma-separated list with at most one
/// address per IP family, e.g. `192.0.2.10,2001:db8::10`.
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";
/// MetalLB spelling of [`LOAD_BALANCER_IPS`].
pub const METALLB_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// Older MetalLB spelling of [`LOAD_BALANCER_IPS`].
pub const METALLB_LEGACY_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
/// Every spelling of the requested-addresses annotation, highest precedence first.
pub const LOAD_BALANCER_IPS_ANNOTATIONS: [&str; 3] = [
    LOAD_BALANCER_IPS,
    METALLB_LOAD_BALANCER_IPS,
    METALLB_LEGACY_LOAD_BALANCER_IPS,
];

/// Service annotation naming the `IPAddressPool` to allocate from.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// MetalLB spelling of [`ADDRESS_POOL`].
pub const METALLB_ADDRESS_POOL: &str = "metallb.io/address-pool";
/// Older MetalLB spelling of [`ADDRESS_POOL`].
pub const METALLB_LEGACY_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
/// Every spelling of the pool annotation, highest precedence first.
pub const ADDRESS_POOL_ANNOTATIONS: [&str; 3] = [
    ADDRESS_POOL,
    METALLB_ADDRESS_POOL,
    METALLB_LEGACY_ADDRESS_POOL,
];

/// Service annotation holding the sharing key: Services with the same non-empty key may share
/// an address when their ports do not clash.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// MetalLB spelling of [`ALLOW_SHARED_IP`].
pub const METALLB_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// Older MetalLB spelling of [`ALLOW_SHARED_IP`].
pub const METALLB_LEGACY_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
/// Every spelling of the sharing-key annotation, highest precedence first.
pub const ALLOW_SHARED_IP_ANNOTATIONS: [&str; 3] = [
    ALLOW_SHARED_IP,
    METALLB_ALLOW_SHARED_IP,
    METALLB_LEGACY_ALLOW_SHARED_IP,
];

/// Node label (Kubernetes well-known) that keeps a node from announcing any Service.
pub const EXCLUDE_FROM_EXTERNAL_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

/// Default `spec.loadBalancerClass` ferrolb handles (in addition to Services with no class).
pub const DEFAULT_LOAD_BALANCER_CLASS: &str = "ferrolb.io/ferrolb";

/// Field manager name for server-side apply by the controller.
pub const CONTROLLER_FIELD_MANAGER: &str = "ferrolb-controller";
/// Field manager name for server-side apply by the speaker.
pub const SPEAKER_FIELD_MANAGER: &str = "ferrolb-speaker";

/// The first annotation of `names` present in `annotations` (names in precedence order),
/// with the value; `None` if no spelling is present.
pub fn first_annotation<'a>(
    annotations: &'a std::collections::BTreeMap<String, String>,
    names: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    names
        .iter()
        .find_map(|n| annotations.get(*n).map(|v| (*n, v.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ferrolb_spelling_wins_over_metallb_ones() {
        let mut a = BTreeMap::new();
        a.insert(METALLB_LEGACY_ADDRESS_POOL.to_owned(), "old".to_owned());
        assert_eq!(
            first_annotation(&a, &ADDRESS_POOL_ANNOTATIONS),
            Some((METALLB_LEGACY_ADDRESS_POOL, "old"))
        );
        a.insert(METALLB_ADDRESS_POOL.to_owned(), "mid".to_owned());
        assert_eq!(
            first_annotation(&a, &ADDRESS_POOL_ANNOTATIONS),
            Some((METALLB_ADDRESS_POOL, "mid"))
        );
        a.insert(ADDRESS_POOL.to_owned(), "ours".to_owned());
        assert_eq!(
            first_annotation(&a, &ADDRESS_POOL_ANNOTATIONS),
            Some((ADDRESS_POOL, "ours"))
        );
        assert_eq!(first_annotation(&a, &ALLOW_SHARED_IP_ANNOTATIONS), None);
    }
}
