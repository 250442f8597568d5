//! The resource catalogue (spec E8, E38): which kinds exist, where they are
//! served and which per-kind traits the write paths branch on.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The built-in kind a resource is, for kind-specific defaulting and validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    Node,
    Service,
    Pod,
    ConfigMap,
    Secret,
    EndpointSlice,
    Lease,
    Event,
    Crd,
    /// A custom resource served because of a CRD.
    Custom,
}

/// Everything the server needs to know about one served resource version.
#[derive(Debug, Clone)]
pub(crate) struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Create keeps a client-provided `status` (Node).
    pub create_keeps_status: bool,
    /// `metadata.generation` is tracked.
    pub generation: bool,
    /// PUT on a missing object creates it.
    pub create_on_put: bool,
    /// PUT without `metadata.resourceVersion` is allowed.
    pub unconditional_update: bool,
    /// DELETE answers with the object instead of a Status.
    pub delete_returns_object: bool,
    pub builtin: Builtin,
    /// For custom resources: the storage version (objects are stored with it).
    pub storage_version: String,
}

impl ResourceInfo {
    /// The storage key shared by every version of the resource.
    pub(crate) fn skey(&self) -> String {
        storage_key(&self.group, &self.plural)
    }
    /// `group/version`, or `version` for the core group.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// `plural` or `plural.group`.
pub(crate) fn storage_key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    b: Builtin,
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
) -> ResourceInfo {
    let singular = kind.to_lowercase();
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular,
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        status_subresource: status,
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        categories: Vec::new(),
        create_keeps_status: false,
        generation: false,
        create_on_put: false,
        unconditional_update: true,
        delete_returns_object: false,
        builtin: b,
        storage_version: version.into(),
    }
}

/// The built-in kinds of spec E8.
pub(crate) fn builtins() -> Vec<ResourceInfo> {
    let mut v = Vec::new();
    let mut ns = builtin(
        Builtin::Namespace,
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        true,
        &["ns"],
    );
    ns.delete_returns_object = true;
    v.push(ns);
    let mut node = builtin(
        Builtin::Node,
        "",
        "v1",
        "nodes",
        "Node",
        false,
        true,
        &["no"],
    );
    node.create_keeps_status = true;
    v.push(node);
    let mut svc = builtin(
        Builtin::Service,
        "",
        "v1",
        "services",
        "Service",
        true,
        true,
        &["svc"],
    );
    svc.create_on_put = true;
    svc.categories = vec!["all".into()];
    v.push(svc);
    let mut pod = builtin(Builtin::Pod, "", "v1", "pods", "Pod", true, true, &["po"]);
    pod.delete_returns_object = true;
    pod.categories = vec!["all".into()];
    v.push(pod);
    v.push(builtin(
        Builtin::ConfigMap,
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        true,
        false,
        &["cm"],
    ));
    v.push(builtin(
        Builtin::Secret,
        "",
        "v1",
        "secrets",
        "Secret",
        true,
        false,
        &[],
    ));
    let mut eps = builtin(
        Builtin::EndpointSlice,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
        &[],
    );
    eps.create_on_put = true;
    v.push(eps);
    let mut lease = builtin(
        Builtin::Lease,
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        &[],
    );
    lease.create_on_put = true;
    lease.unconditional_update = false;
    v.push(lease);
    let mut ev = builtin(
        Builtin::Event,
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        false,
        &["ev"],
    );
    ev.create_on_put = true;
    v.push(ev);
    let mut crd = builtin(
        Builtin::Crd,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        &["crd", "crds"],
    );
    crd.generation = true;
    crd.unconditional_update = false;
    v.push(crd);
    v
}

/// Routing table: `(group, version, plural)` → resource.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registry {
    pub by_gvr: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
}

impl Registry {
    pub(crate) fn with_builtins() -> Self {
        let mut r = Self::default();
        for info in builtins() {
            r.insert(info);
        }
        r
    }
    pub(crate) fn insert(&mut self, info: ResourceInfo) {
        self.by_gvr.insert(
            (
                info.group.clone(),
                info.version.clone(),
                info.plural.clone(),
            ),
            Arc::new(info),
        );
    }
    pub(crate) fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }
    /// Removes every version of a resource (CRD deletion).
    pub(crate) fn remove_skey(&mut self, skey: &str) {
        self.by_gvr.retain(|_, i| i.skey() != skey);
    }
    /// Finds the resource for an `apiVersion` + `kind` pair (fixtures).
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.by_gvr
            .values()
            .find(|i| i.group == group && i.version == version && i.kind == kind)
            .cloned()
    }
    /// `(group, versions)` in a stable order for `/apis`.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (g, v, _) in self.by_gvr.keys() {
            if g.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(og, _)| og == g) {
                Some((_, vs)) => {
                    if !vs.contains(v) {
                        vs.push(v.clone());
                    }
                }
                None => out.push((g.clone(), vec![v.clone()])),
            }
        }
        out
    }
    /// Resources served at `group/version`.
    pub(crate) fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.by_gvr
            .values()
            .filter(|i| i.group == group && i.version == version)
            .cloned()
            .collect()
    }
}
