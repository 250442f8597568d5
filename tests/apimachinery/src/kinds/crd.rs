//! CustomResourceDefinitions (spec E38): defaulting, validation including the
//! structural-schema rule, registration info and the status the server sets at once.

use serde_json::{Value, json};

use crate::status::Cause;
use crate::validation::{dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors};

/// What the emulator needs to serve a CRD's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdInfo {
    /// API group, e.g. `ferrolb.io`.
    pub group: String,
    /// Kind, e.g. `IPAddressPool`.
    pub kind: String,
    /// Plural resource name, e.g. `ipaddresspools`.
    pub plural: String,
    /// Singular name (defaults to the lower-cased kind).
    pub singular: String,
    /// List kind (defaults to `<Kind>List`).
    pub list_kind: String,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// True for `scope: Namespaced`.
    pub namespaced: bool,
    /// The versions in spec order.
    pub versions: Vec<CrdVersion>,
}

/// One entry of `spec.versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdVersion {
    /// Version name such as `v1alpha1`.
    pub name: String,
    /// Whether it is served.
    pub served: bool,
    /// Whether it is the storage version.
    pub storage: bool,
    /// Whether `subresources.status` is enabled.
    pub status_subresource: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// CRD defaults: `names.singular` (lower-cased kind), `names.listKind` (`<Kind>List`)
/// and `conversion.strategy: None`.
pub fn default_crd(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !kind.is_empty() {
            if names
                .get("singular")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

fn is_kind_name(s: &str) -> bool {
    // Kinds are CamelCase identifiers; upstream requires a DNS-1035 label when lower-cased.
    !s.is_empty() && dns1035_label_errors(&s.to_lowercase()).is_empty()
}

/// Validates a CRD (after [`default_crd`]): name is `<plural>.<group>`, names, scope,
/// versions (exactly one storage version) and structural schemas.
pub fn validate_crd(obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if group.is_empty() {
        c.push(Cause::required("spec.group", ""));
    } else {
        for m in dns1123_subdomain_errors(group) {
            c.push(Cause::invalid_value("spec.group", &spec["group"], &m));
        }
        if !group.contains('.') {
            c.push(Cause::invalid_value(
                "spec.group",
                &spec["group"],
                "should be a domain with at least one dot",
            ));
        }
    }
    if name != format!("{plural}.{group}") {
        c.push(Cause::invalid_value(
            "metadata.name",
            &obj["metadata"]["name"],
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    for (field, required) in [
        ("plural", true),
        // Defaulted from the kind when absent (see `default_crd`).
        ("singular", false),
        ("kind", true),
        ("listKind", false),
    ] {
        let v = names[field].as_str().unwrap_or("");
        let f = format!("spec.names.{field}");
        if v.is_empty() {
            if required {
                c.push(Cause::required(&f, ""));
            }
            continue;
        }
        let errs = if field == "kind" || field == "listKind" {
            if is_kind_name(v) {
                vec![]
            } else {
                vec![
                    "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"
                        .to_string(),
                ]
            }
        } else {
            dns1035_label_errors(v)
        };
        for m in errs {
            c.push(Cause::invalid_value(&f, &names[field], &m));
        }
    }
    if names["kind"] == names["listKind"] && !names["kind"].is_null() {
        c.push(Cause::invalid_value(
            "spec.names.listKind",
            &names["listKind"],
            "kind and listKind may not be the same",
        ));
    }
    for (i, s) in strings(&names["shortNames"]).iter().enumerate() {
        for m in dns1123_label_errors(s) {
            c.push(Cause::invalid_value(
                &format!("spec.names.shortNames[{i}]"),
                &json!(s),
                &m,
            ));
        }
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None | Some("") => c.push(Cause::required("spec.scope", "")),
        Some(s) => c.push(Cause::not_supported(
            "spec.scope",
            &json!(s),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        c.push(Cause::invalid(
            "spec.versions",
            "[]: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        c.push(Cause::invalid_value(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions.is_empty() && !versions.iter().any(|v| v["served"].as_bool() == Some(true)) {
        c.push(Cause::invalid_value(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have at least one version marked as served",
        ));
    }
    let mut seen = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vf = format!("spec.versions[{i}]");
        let vname = v["name"].as_str().unwrap_or("");
        if vname.is_empty() {
            c.push(Cause::required(&format!("{vf}.name"), ""));
        } else {
            for m in dns1035_label_errors(vname) {
                c.push(Cause::invalid_value(&format!("{vf}.name"), &v["name"], &m));
            }
            if seen.contains(&vname) {
                c.push(Cause::duplicate(&format!("{vf}.name"), &v["name"]));
            }
            seen.push(vname);
        }
        let schema = &v["schema"]["openAPIV3Schema"];
        let sf = format!("{vf}.schema.openAPIV3Schema");
        if schema.is_null() {
            c.push(Cause::required(&sf, "schemas are required"));
            continue;
        }
        match schema["type"].as_str() {
            Some("object") => {}
            None => c.push(Cause::required(
                &format!("{sf}.type"),
                "must not be empty at the root",
            )),
            Some(t) => c.push(Cause::not_supported(
                &format!("{sf}.type"),
                &json!(t),
                &["object"],
            )),
        }
        structural(schema, &sf, true, &mut c);
    }
    c
}

/// Checks the "every node has a type" rule of structural schemas.
fn structural(node: &Value, field: &str, root: bool, c: &mut Vec<Cause>) {
    let Some(obj) = node.as_object() else {
        c.push(Cause::invalid(field, "must be a schema object"));
        return;
    };
    let int_or_string = obj
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let preserve = obj
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let typed = obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    if !typed && !int_or_string && !preserve && !root {
        c.push(Cause::required(
            &format!("{field}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if int_or_string && typed {
        c.push(Cause::invalid(
            &format!("{field}.type"),
            "must be empty when x-kubernetes-int-or-string is true",
        ));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            structural(v, &format!("{field}.properties[{k}]"), false, c);
        }
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => structural(items, &format!("{field}.items"), false, c),
        Some(Value::Array(_)) => c.push(Cause::forbidden(
            &format!("{field}.items"),
            "items must be a schema object and not an array",
        )),
        _ => {}
    }
    if obj.get("type").and_then(Value::as_str) == Some("array") && obj.get("items").is_none() {
        c.push(Cause::required(
            &format!("{field}.items"),
            "must be specified",
        ));
    }
    if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
        structural(ap, &format!("{field}.additionalProperties"), false, c);
    }
}

/// Registration info from a (defaulted, valid) CRD.
pub fn crd_info(obj: &Value) -> Result<CrdInfo, Vec<Cause>> {
    let causes = validate_crd(obj);
    if !causes.is_empty() {
        return Err(causes);
    }
    let spec = &obj["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let kind = s(&names["kind"]);
    let singular = names["singular"]
        .as_str()
        .filter(|x| !x.is_empty())
        .map(String::from);
    let list_kind = names["listKind"]
        .as_str()
        .filter(|x| !x.is_empty())
        .map(String::from);
    let versions = spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| CrdVersion {
                    name: s(&v["name"]),
                    served: v["served"].as_bool().unwrap_or(false),
                    storage: v["storage"].as_bool().unwrap_or(false),
                    status_subresource: v["subresources"]["status"].is_object(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CrdInfo {
        group: s(&spec["group"]),
        plural: s(&names["plural"]),
        singular: singular.unwrap_or_else(|| kind.to_lowercase()),
        list_kind: list_kind.unwrap_or_else(|| format!("{kind}List")),
        kind,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        namespaced: spec["scope"].as_str() == Some("Namespaced"),
        versions,
    })
}

fn condition(existing: &Value, ty: &str, reason: &str, message: &str, now: &str) -> Value {
    let prev = existing["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"].as_str() == Some(ty)));
    // Keep the transition time when nothing changes, so re-writes stay no-ops (E16).
    let time = match prev {
        Some(p) if p["status"].as_str() == Some("True") => {
            p["lastTransitionTime"].as_str().unwrap_or(now).to_string()
        }
        _ => now.to_string(),
    };
    json!({
        "type": ty,
        "status": "True",
        "lastTransitionTime": time,
        "reason": reason,
        "message": message,
    })
}

/// The status the server sets at once: `acceptedNames`, `storedVersions` (old ones
/// kept) and `NamesAccepted`/`Established` conditions that are True.
pub fn crd_status(obj: &Value, now_rfc3339: &str) -> Value {
    let spec = &obj["spec"];
    let existing = &obj["status"];
    let mut names = spec["names"].clone();
    if let Some(n) = names.as_object_mut() {
        let kind = n
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if n.get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            n.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if n.get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            n.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let mut stored = strings(&existing["storedVersions"]);
    if let Some(vs) = spec["versions"].as_array() {
        for v in vs {
            if v["storage"].as_bool() == Some(true)
                && let Some(n) = v["name"].as_str()
                && !stored.iter().any(|s| s == n)
            {
                stored.push(n.to_string());
            }
        }
    }
    json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            condition(existing, "NamesAccepted", "NoConflicts", "no conflicts found", now_rfc3339),
            condition(existing, "Established", "InitialNamesAccepted", "the initial names have been accepted", now_rfc3339),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "ipaddresspools.ferrolb.io"},
            "spec": {
                "group": "ferrolb.io",
                "names": {"kind": "IPAddressPool", "plural": "ipaddresspools", "shortNames": ["ipp"], "categories": ["ferrolb"]},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {
                                "addresses": {"type": "array", "items": {"type": "string"}},
                                "port": {"x-kubernetes-int-or-string": true},
                                "extra": {"x-kubernetes-preserve-unknown-fields": true},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                            }},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        }
                    }}
                }]
            }
        })
    }

    #[test]
    fn valid_crd_info_and_defaults() {
        let mut c = crd();
        default_crd(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "ipaddresspool");
        assert_eq!(c["spec"]["names"]["listKind"], "IPAddressPoolList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        assert!(validate_crd(&c).is_empty(), "{:?}", validate_crd(&c));
        let info = crd_info(&c).unwrap();
        assert_eq!(info.group, "ferrolb.io");
        assert_eq!(info.kind, "IPAddressPool");
        assert_eq!(info.plural, "ipaddresspools");
        assert_eq!(info.singular, "ipaddresspool");
        assert_eq!(info.list_kind, "IPAddressPoolList");
        assert_eq!(info.short_names, ["ipp"]);
        assert_eq!(info.categories, ["ferrolb"]);
        assert!(info.namespaced);
        assert_eq!(
            info.versions,
            [CrdVersion {
                name: "v1alpha1".into(),
                served: true,
                storage: true,
                status_subresource: true
            }]
        );
    }

    #[test]
    fn undefaulted_crd_is_valid() {
        let c = crd();
        assert!(validate_crd(&c).is_empty(), "{:?}", validate_crd(&c));
        let info = crd_info(&c).unwrap();
        assert_eq!(info.singular, "ipaddresspool");
        assert_eq!(info.list_kind, "IPAddressPoolList");
        let cluster = {
            let mut c = crd();
            c["spec"]["scope"] = json!("Cluster");
            c
        };
        assert!(!crd_info(&cluster).unwrap().namespaced);
    }

    #[test]
    fn invalid_crds() {
        let mut rows: Vec<(Value, &str)> = Vec::new();
        let mut c = crd();
        c["metadata"]["name"] = json!("pools.ferrolb.io");
        rows.push((c, "metadata.name"));
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["bad"] = json!({"description": "untyped"});
        rows.push((
            c,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[bad].type",
        ));
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["addresses"]["items"] = json!({});
        rows.push((c, "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[addresses].items.type"));
        let mut c = crd();
        c["spec"]["versions"][0]["storage"] = json!(false);
        rows.push((c, "spec.versions"));
        let mut c = crd();
        c["spec"]["scope"] = json!("Global");
        rows.push((c, "spec.scope"));
        let mut c = crd();
        c["spec"]["versions"][0]["schema"] = Value::Null;
        rows.push((c, "spec.versions[0].schema.openAPIV3Schema"));
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["type"] = json!("string");
        rows.push((c, "spec.versions[0].schema.openAPIV3Schema.type"));
        for (mut c, field) in rows {
            default_crd(&mut c);
            let causes = validate_crd(&c);
            assert!(
                causes.iter().any(|x| x.field == field),
                "{field}: {causes:?}"
            );
            assert!(crd_info(&c).is_err());
        }
    }

    #[test]
    fn status_is_established_and_stable() {
        let mut c = crd();
        default_crd(&mut c);
        let st = crd_status(&c, "2026-01-01T00:00:00Z");
        assert_eq!(st["acceptedNames"]["kind"], "IPAddressPool");
        assert_eq!(st["acceptedNames"]["listKind"], "IPAddressPoolList");
        assert_eq!(st["storedVersions"], json!(["v1alpha1"]));
        let conds = st["conditions"].as_array().unwrap();
        for t in ["NamesAccepted", "Established"] {
            let cond = conds.iter().find(|x| x["type"] == t).unwrap();
            assert_eq!(cond["status"], "True");
        }
        c["status"] = st.clone();
        // A later update keeps the transition times and old stored versions.
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"].as_array_mut().unwrap().push(json!({"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}));
        let st2 = crd_status(&c, "2026-02-02T00:00:00Z");
        assert_eq!(st2["conditions"], st["conditions"]);
        assert_eq!(st2["storedVersions"], json!(["v1alpha1", "v1"]));
    }
}
