//! RBAC rules from rendered manifests, and whether they authorize a recorded request.

use std::collections::BTreeSet;

use kube_emulator::JournalEntry;
use serde_json::Value;

/// One `PolicyRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources` (with `/subresource` where given).
    pub resources: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resourceNames`; empty means any name.
    pub resource_names: Vec<String>,
}

/// A request as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    /// Verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verb: String,
    /// API group (`""` = core).
    pub group: String,
    /// Resource plural, `/subresource` appended when there is one.
    pub resource: String,
    /// Namespace; `None` for cluster-scoped requests and all-namespace lists.
    pub namespace: Option<String>,
    /// Object name; for list and watch, the name a `metadata.name` field selector picks.
    pub name: Option<String>,
}

impl Request {
    /// The request a journal entry records; `None` for non-resource paths.
    pub fn from_journal(e: &JournalEntry) -> Option<Request> {
        if e.verb.is_empty() || e.resource.is_empty() {
            return None;
        }
        let resource = match &e.subresource {
            Some(s) => format!("{}/{s}", e.resource),
            None => e.resource.clone(),
        };
        let name = e.name.clone().or_else(|| {
            e.query_param("fieldSelector").and_then(|fs| {
                fs.split(',')
                    .find_map(|term| term.strip_prefix("metadata.name="))
                    .map(str::to_owned)
            })
        });
        Some(Request {
            verb: e.verb.clone(),
            group: e.group.clone(),
            resource,
            namespace: e.namespace.clone().filter(|n| !n.is_empty()),
            name,
        })
    }

    /// `(group, resource, verb)`, the unit the allow-list speaks in.
    pub fn permission(&self) -> Permission {
        (self.group.clone(), self.resource.clone(), self.verb.clone())
    }
}

/// `(api group, resource, verb)`.
pub type Permission = (String, String, String);

impl Rule {
    fn from_value(v: &Value) -> Rule {
        let strings = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Rule {
            api_groups: strings("apiGroups"),
            resources: strings("resources"),
            verbs: strings("verbs"),
            resource_names: strings("resourceNames"),
        }
    }

    /// Whether this rule authorizes `r` (namespace scoping is the caller's business).
    pub fn allows(&self, r: &Request) -> bool {
        let any = |list: &[String], x: &str| list.iter().any(|i| i == "*" || i == x);
        any(&self.api_groups, &r.group)
            && any(&self.resources, &r.resource)
            && any(&self.verbs, &r.verb)
            && (self.resource_names.is_empty()
                || r.name
                    .as_ref()
                    .is_some_and(|n| self.resource_names.contains(n)))
    }

    /// Every `(group, resource, verb)` this rule grants.
    pub fn permissions(&self) -> BTreeSet<Permission> {
        let mut out = BTreeSet::new();
        for g in &self.api_groups {
            for res in &self.resources {
                for v in &self.verbs {
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
        out
    }
}

/// Everything one ServiceAccount may do according to a set of manifests.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Rules from ClusterRoles bound with ClusterRoleBindings (any namespace).
    pub cluster: Vec<Rule>,
    /// Rules valid in one namespace (Roles, or ClusterRoles bound by a RoleBinding).
    pub namespaced: Vec<(String, Rule)>,
}

fn subject_matches(binding: &Value, sa_namespace: &str, sa_name: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    && s.get("name").and_then(Value::as_str) == Some(sa_name)
                    && s.get("namespace").and_then(Value::as_str) == Some(sa_namespace)
            })
        })
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn rules_of(role: &Value) -> Vec<Rule> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|rs| rs.iter().map(Rule::from_value).collect())
        .unwrap_or_default()
}

impl Grants {
    /// What the ServiceAccount `sa_namespace/sa_name` is granted by `manifests`.
    pub fn for_service_account(manifests: &[Value], sa_namespace: &str, sa_name: &str) -> Grants {
        let find_role = |kind: &str, name: &str, ns: Option<&str>| {
            manifests.iter().find(|m| {
                str_at(m, "/kind") == kind
                    && str_at(m, "/metadata/name") == name
                    && ns.is_none_or(|ns| str_at(m, "/metadata/namespace") == ns)
            })
        };
        let mut g = Grants::default();
        for b in manifests {
            if !subject_matches(b, sa_namespace, sa_name) {
                continue;
            }
            let role_kind = str_at(b, "/roleRef/kind");
            let role_name = str_at(b, "/roleRef/name");
            match str_at(b, "/kind") {
                "ClusterRoleBinding" => {
                    if let Some(role) = find_role("ClusterRole", role_name, None) {
                        g.cluster.extend(rules_of(role));
                    }
                }
                "RoleBinding" => {
                    let ns = str_at(b, "/metadata/namespace").to_owned();
                    let role = if role_kind == "ClusterRole" {
                        find_role("ClusterRole", role_name, None)
                    } else {
                        find_role("Role", role_name, Some(&ns))
                    };
                    if let Some(role) = role {
                        g.namespaced
                            .extend(rules_of(role).into_iter().map(|r| (ns.clone(), r)));
                    }
                }
                _ => {}
            }
        }
        g
    }

    /// Whether the grants authorize `r`.
    pub fn allows(&self, r: &Request) -> bool {
        self.cluster.iter().any(|rule| rule.allows(r))
            || self
                .namespaced
                .iter()
                .any(|(ns, rule)| r.namespace.as_deref() == Some(ns.as_str()) && rule.allows(r))
    }

    /// Every `(group, resource, verb)` granted anywhere.
    pub fn permissions(&self) -> BTreeSet<Permission> {
        self.cluster
            .iter()
            .chain(self.namespaced.iter().map(|(_, r)| r))
            .flat_map(Rule::permissions)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(
        verb: &str,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Request {
        Request {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        }
    }

    fn manifests() -> Vec<Value> {
        vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "c"},
                   "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "c"},
                   "roleRef": {"kind": "ClusterRole", "name": "c"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "lb"}]}),
            json!({"kind": "Role", "metadata": {"name": "r", "namespace": "lb"},
                   "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "resourceNames": ["ctl"], "verbs": ["get", "update"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "r", "namespace": "lb"},
                   "roleRef": {"kind": "Role", "name": "r"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "lb"}]}),
            // Bound to someone else: grants nothing to sa.
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "x"},
                   "roleRef": {"kind": "ClusterRole", "name": "c"},
                   "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "lb"}]}),
        ]
    }

    #[test]
    fn cluster_rules_apply_everywhere_and_roles_only_in_their_namespace() {
        let g = Grants::for_service_account(&manifests(), "lb", "sa");
        assert!(g.allows(&req("watch", "", "services", None, None)));
        assert!(g.allows(&req("list", "", "services", Some("a"), None)));
        assert!(!g.allows(&req("get", "", "services", None, Some("x"))));
        assert!(!g.allows(&req("list", "", "services/status", None, None)));
        assert!(g.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("lb"),
            Some("ctl")
        )));
        assert!(!g.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("other"),
            Some("ctl")
        )));
        assert!(!g.allows(&req(
            "update",
            "coordination.k8s.io",
            "leases",
            Some("lb"),
            Some("x")
        )));
        assert_eq!(g.permissions().len(), 4);
        assert!(
            Grants::for_service_account(&manifests(), "lb", "nobody")
                .permissions()
                .is_empty()
        );
    }
}
