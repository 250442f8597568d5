//! Kind-specific defaulting and validation (spec E33–E38), delegated to
//! `ferrolb-apimachinery::kinds`, plus CRD registration info.

use ferrolb_apimachinery::kinds as am;
use serde_json::Value;

use crate::errors::Cause;
use crate::resources::{Builtin, ResourceInfo};

/// Cluster IP and node port allocation (E34).
pub(crate) type ServiceAllocator = am::ServiceAllocator;

/// Builds the allocator from the configured CIDRs (first IPv4, first IPv6).
pub(crate) fn new_allocator(cidrs: &[String]) -> Result<ServiceAllocator, String> {
    let v4 = cidrs
        .iter()
        .find(|c| !c.contains(':'))
        .map_or(am::DEFAULT_V4_CIDR, String::as_str);
    let v6 = cidrs.iter().find(|c| c.contains(':')).map(String::as_str);
    am::ServiceAllocator::new(v4, v6).map_err(|e| e.to_string())
}

fn conv(c: Vec<ferrolb_apimachinery::Cause>) -> Vec<Cause> {
    c.into_iter().map(Cause::from).collect()
}

/// Defaulting and kind validation of a create (`old` = None) or update.
/// Returns the causes of a 422; Service allocations are made only on success.
pub(crate) fn admit(
    alloc: &mut ServiceAllocator,
    info: &ResourceInfo,
    new: &mut Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    match info.builtin {
        Builtin::Namespace => {
            am::default_namespace(new);
            conv(am::validate_namespace(new))
        }
        Builtin::Service => {
            am::default_service_status(new);
            let c = am::validate_service_status(new);
            if !c.is_empty() {
                return conv(c);
            }
            match am::admit_service(new, old, alloc) {
                Ok(()) => Vec::new(),
                Err(c) => conv(c),
            }
        }
        Builtin::Secret => am::normalize_secret(new)
            .err()
            .map(conv)
            .unwrap_or_default(),
        Builtin::Lease => conv(am::validate_lease(new)),
        Builtin::Event => conv(am::validate_event(new, old)),
        Builtin::Crd => {
            am::default_crd(new);
            let c = am::validate_crd(new);
            if c.is_empty() {
                new["status"] = am::crd_status(new, &crate::store::now_rfc3339());
            }
            conv(c)
        }
        _ => Vec::new(),
    }
}

/// Undoes the allocations of an admitted write that is not stored (dry run).
pub(crate) fn undo(
    alloc: &mut ServiceAllocator,
    info: &ResourceInfo,
    new: &Value,
    old: Option<&Value>,
) {
    if info.builtin == Builtin::Service {
        alloc.undo(new, old);
    }
}

/// The served resources a CRD defines.
pub(crate) fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let Ok(ci) = am::crd_info(crd) else {
        return Vec::new();
    };
    let storage = ci
        .versions
        .iter()
        .find(|v| v.storage)
        .or(ci.versions.first())
        .map(|v| v.name.clone())
        .unwrap_or_default();
    ci.versions
        .iter()
        .filter(|v| v.served)
        .map(|v| ResourceInfo {
            group: ci.group.clone(),
            version: v.name.clone(),
            plural: ci.plural.clone(),
            singular: ci.singular.clone(),
            kind: ci.kind.clone(),
            list_kind: ci.list_kind.clone(),
            namespaced: ci.namespaced,
            status_subresource: v.status_subresource,
            short_names: ci.short_names.clone(),
            categories: ci.categories.clone(),
            create_keeps_status: false,
            generation: true,
            create_on_put: false,
            unconditional_update: false,
            delete_returns_object: false,
            builtin: Builtin::Custom,
            storage_version: storage.clone(),
        })
        .collect()
}
