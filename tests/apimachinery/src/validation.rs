//! Generic object metadata validation (spec E11, E12): names, labels, annotations,
//! finalizers and ownerReferences, with upstream's field paths and messages.

use serde_json::{Map, Value};

use crate::status::Cause;

/// Which name grammar a kind uses for `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Dns1123Subdomain,
    /// RFC 1035 label: Services.
    Dns1035Label,
    /// RFC 1123 label: Namespaces.
    Dns1123Label,
    /// Path segment: anything but `.`/`..` and without `/` or `%`.
    Path,
}

/// Maximum length of a label value and of a qualified name's name part.
pub const MAX_LABEL_LEN: usize = 63;
/// Maximum length of an RFC 1123 subdomain.
pub const MAX_SUBDOMAIN_LEN: usize = 253;
/// Maximum total size of all annotations (keys plus values).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn max_len_msg(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Problems with `s` as a label value (empty list = valid).
pub fn label_value_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > MAX_LABEL_LEN {
        errs.push(max_len_msg(MAX_LABEL_LEN));
    }
    if !s.is_empty() && !is_name_part(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            is_alnum(f)
                && is_alnum(l)
                && b.iter()
                    .all(|&c| is_alnum(c) || c == b'-' || c == b'_' || c == b'.')
        }
        _ => false,
    }
}

/// Problems with `s` as a qualified name (`[prefix/]name`), used for label keys,
/// annotation keys and finalizers.
pub fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for m in dns1123_subdomain_errors(prefix) {
                    errs.push(format!("prefix part {m}"));
                }
            }
            name
        }
        _ => {
            errs.push(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            );
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > MAX_LABEL_LEN {
        errs.push(format!("name part {}", max_len_msg(MAX_LABEL_LEN)));
    }
    if !name.is_empty() && !is_name_part(name) {
        errs.push(QUALIFIED_NAME_MSG.to_string());
    }
    errs
}

fn is_dns_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            (if first_alpha {
                f.is_ascii_lowercase()
            } else {
                is_lower_alnum(f)
            }) && is_lower_alnum(l)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Problems with `s` as an RFC 1123 subdomain.
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > MAX_SUBDOMAIN_LEN {
        errs.push(max_len_msg(MAX_SUBDOMAIN_LEN));
    }
    if !s.split('.').all(|l| is_dns_label(l, false)) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Problems with `s` as an RFC 1123 label.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > MAX_LABEL_LEN {
        errs.push(max_len_msg(MAX_LABEL_LEN));
    }
    if !is_dns_label(s, false) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with `s` as an RFC 1035 label.
pub fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > MAX_LABEL_LEN {
        errs.push(max_len_msg(MAX_LABEL_LEN));
    }
    if !is_dns_label(s, true) {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with `s` as a path segment name.
pub fn path_segment_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s == "." || s == ".." {
        errs.push(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    match rule {
        NameRule::Dns1123Subdomain => dns1123_subdomain_errors(name),
        NameRule::Dns1035Label => dns1035_label_errors(name),
        NameRule::Dns1123Label => dns1123_label_errors(name),
        NameRule::Path => path_segment_errors(name),
    }
}

/// Validates `metadata.name`; an empty name is `Required`.
pub fn validate_name(name: &str, rule: NameRule) -> Vec<Cause> {
    validate_name_at(name, rule, "metadata.name")
}

/// Like [`validate_name`] for a name found at another field path.
pub fn validate_name_at(name: &str, rule: NameRule, field: &str) -> Vec<Cause> {
    if name.is_empty() {
        return vec![Cause::required(field, "name or generateName is required")];
    }
    name_errors(name, rule)
        .into_iter()
        .map(|m| Cause::invalid_value(field, &Value::String(name.into()), &m))
        .collect()
}

/// Validates a map of labels (keys qualified names, values label values) at `field`.
pub fn validate_labels(labels: &Map<String, Value>, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (k, v) in labels {
        for m in qualified_name_errors(k) {
            causes.push(Cause::invalid_value(field, &Value::String(k.clone()), &m));
        }
        match v {
            Value::String(s) => {
                for m in label_value_errors(s) {
                    causes.push(Cause::invalid_value(field, v, &m));
                }
            }
            _ => causes.push(Cause::invalid_value(
                field,
                v,
                "label values must be strings",
            )),
        }
    }
    causes
}

/// Validates everything in `metadata` that does not depend on the kind: labels,
/// annotations, finalizers and ownerReferences.
pub fn validate_metadata(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(meta) = obj.get("metadata") else {
        return causes;
    };
    if !meta.is_object() {
        causes.push(Cause::invalid("metadata", "metadata must be an object"));
        return causes;
    }
    match meta.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => causes.extend(validate_labels(l, "metadata.labels")),
        Some(_) => causes.push(Cause::invalid(
            "metadata.labels",
            "must be a map of strings",
        )),
    }
    match meta.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            let mut total = 0usize;
            for (k, v) in a {
                for m in qualified_name_errors(&k.to_ascii_lowercase()) {
                    causes.push(Cause::invalid_value(
                        "metadata.annotations",
                        &Value::String(k.clone()),
                        &m,
                    ));
                }
                total += k.len();
                match v {
                    Value::String(s) => total += s.len(),
                    _ => causes.push(Cause::invalid_value(
                        "metadata.annotations",
                        v,
                        "annotation values must be strings",
                    )),
                }
            }
            if total > MAX_ANNOTATIONS_BYTES {
                causes.push(Cause::new(
                    crate::status::cause_reason::TOO_LONG,
                    "metadata.annotations",
                    &format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
                ));
            }
        }
        Some(_) => causes.push(Cause::invalid(
            "metadata.annotations",
            "must be a map of strings",
        )),
    }
    match meta.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(fs)) => {
            let mut has_orphan = false;
            let mut has_fg = false;
            for f in fs {
                let Some(s) = f.as_str() else {
                    causes.push(Cause::invalid_value(
                        "metadata.finalizers",
                        f,
                        "finalizers must be strings",
                    ));
                    continue;
                };
                has_orphan |= s == "orphan";
                has_fg |= s == "foregroundDeletion";
                for m in qualified_name_errors(s) {
                    causes.push(Cause::invalid_value("metadata.finalizers", f, &m));
                }
            }
            if has_orphan && has_fg {
                causes.push(Cause::invalid_value(
                    "metadata.finalizers",
                    &Value::Array(fs.clone()),
                    "finalizer orphan and foregroundDeletion cannot be both set",
                ));
            }
        }
        Some(_) => causes.push(Cause::invalid(
            "metadata.finalizers",
            "must be a list of strings",
        )),
    }
    match meta.get("ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(refs)) => causes.extend(validate_owner_references(refs)),
        Some(_) => causes.push(Cause::invalid("metadata.ownerReferences", "must be a list")),
    }
    causes
}

fn validate_owner_references(refs: &[Value]) -> Vec<Cause> {
    const F: &str = "metadata.ownerReferences";
    let mut causes = Vec::new();
    let mut controllers = Vec::new();
    for r in refs {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        if s("apiVersion").is_empty() {
            causes.push(Cause::invalid(
                &format!("{F}.apiVersion"),
                "\"\": version must not be empty",
            ));
        }
        if s("kind").is_empty() {
            causes.push(Cause::invalid(
                &format!("{F}.kind"),
                "\"\": kind must not be empty",
            ));
        }
        if s("name").is_empty() {
            causes.push(Cause::invalid(
                &format!("{F}.name"),
                "\"\": name must not be empty",
            ));
        }
        if s("uid").is_empty() {
            causes.push(Cause::invalid(
                &format!("{F}.uid"),
                "\"\": uid must not be empty",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", s("kind"), s("name")));
        }
    }
    if controllers.len() > 1 {
        causes.push(Cause::invalid_value(
            F,
            &Value::Array(refs.to_vec()),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    causes
}

/// Metadata rules of an update (E12): `name`, `namespace`, `uid`, `creationTimestamp`,
/// `deletionTimestamp` and `deletionGracePeriodSeconds` are immutable, and no finalizer
/// may be added once the object is being deleted. The resourceVersion precondition is
/// left to the caller.
pub fn validate_metadata_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let nm = &new["metadata"];
    let om = &old["metadata"];
    let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let (n, o) = (&nm[f], &om[f]);
        if n != o && !(blank(n) && blank(o)) {
            causes.push(Cause::invalid_value(
                &format!("metadata.{f}"),
                n,
                "field is immutable",
            ));
        }
    }
    if !blank(&om["deletionTimestamp"]) {
        let old_f: Vec<&str> = om["finalizers"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut extra: Vec<&str> = nm["finalizers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|f| !old_f.contains(f))
                    .collect()
            })
            .unwrap_or_default();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    causes
}

/// Whether a write changes the object outside `metadata` (and outside `status` when
/// the kind has a status subresource), which bumps `metadata.generation` (E18).
pub fn spec_changed(old: &Value, new: &Value, status_subresource: bool) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        if status_subresource {
            m.remove("status");
        }
        m.retain(|_, v| !v.is_null());
        m
    };
    strip(old) != strip(new)
}

/// Alphabet upstream uses for generated name suffixes (no vowels, no confusable digits).
pub const GENERATE_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Makes a name from `generateName`: the prefix cut to 58 bytes plus 5 random
/// characters. `rand` supplies randomness so callers can seed it (F11).
pub fn generate_name(prefix: &str, rand: &mut impl FnMut() -> u64) -> String {
    let mut cut = prefix.len().min(58);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + 5);
    out.push_str(&prefix[..cut]);
    let n = GENERATE_NAME_ALPHABET.len() as u64;
    for _ in 0..5 {
        let idx = (rand() % n) as usize;
        out.push(char::from(GENERATE_NAME_ALPHABET[idx]));
    }
    out
}

/// Drops null or empty `finalizers`, `labels`, `annotations`, `ownerReferences` and
/// `managedFields` from `metadata`, which the apiserver never stores (E3).
pub fn prune_empty_metadata(obj: &mut Value) {
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    for key in [
        "finalizers",
        "labels",
        "annotations",
        "ownerReferences",
        "managedFields",
    ] {
        let empty = match meta.get(key) {
            Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(m)) => m.is_empty(),
            _ => false,
        };
        if empty {
            meta.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules_table() {
        let rows: &[(&str, NameRule, bool)] = &[
            ("web", NameRule::Dns1123Subdomain, true),
            ("a.b-c.d", NameRule::Dns1123Subdomain, true),
            ("A", NameRule::Dns1123Subdomain, false),
            ("-a", NameRule::Dns1123Subdomain, false),
            ("a..b", NameRule::Dns1123Subdomain, false),
            ("1abc", NameRule::Dns1123Subdomain, true),
            ("1abc", NameRule::Dns1035Label, false),
            ("abc-1", NameRule::Dns1035Label, true),
            ("a.b", NameRule::Dns1035Label, false),
            ("a.b", NameRule::Dns1123Label, false),
            ("kube-system", NameRule::Dns1123Label, true),
            ("Anything:Goes.1", NameRule::Path, true),
            ("a/b", NameRule::Path, false),
            ("..", NameRule::Path, false),
            ("a%b", NameRule::Path, false),
        ];
        for (name, rule, ok) in rows {
            let c = validate_name(name, *rule);
            assert_eq!(c.is_empty(), *ok, "{name} {rule:?}: {c:?}");
            if !ok {
                assert_eq!(c[0].field, "metadata.name");
                assert_eq!(c[0].reason, "FieldValueInvalid");
            }
        }
        let long = "a".repeat(64);
        assert!(!validate_name(&long, NameRule::Dns1035Label).is_empty());
        assert!(validate_name(&long, NameRule::Dns1123Subdomain).is_empty());
        let very_long = "a".repeat(254);
        assert!(!validate_name(&very_long, NameRule::Dns1123Subdomain).is_empty());
        let c = validate_name("", NameRule::Dns1123Subdomain);
        assert_eq!(c[0].reason, "FieldValueRequired");
    }

    #[test]
    fn ipv6_label_value_is_invalid() {
        let obj = json!({"metadata": {"labels": {"ip": "fd00::1"}}});
        let c = validate_metadata(&obj);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "metadata.labels");
        assert!(
            c[0].message
                .starts_with("Invalid value: \"fd00::1\": a valid label")
        );
    }

    #[test]
    fn label_table() {
        let rows: &[(&str, &str, bool)] = &[
            ("app", "web", true),
            ("app", "", true),
            ("ferrolb.io/pool", "a_b.c-d", true),
            ("app", "-x", false),
            ("app", "x-", false),
            ("app", &"v".repeat(64), false),
            ("app", &"v".repeat(63), true),
            ("Bad_Prefix/x", "v", false),
            ("/x", "v", false),
            ("a/b/c", "v", false),
            ("", "v", false),
            ("k8s.io/", "v", false),
        ];
        for (k, v, ok) in rows {
            let obj = json!({"metadata": {"labels": {*k: *v}}});
            assert_eq!(validate_metadata(&obj).is_empty(), *ok, "{k}={v}");
        }
    }

    #[test]
    fn annotations_size_and_keys() {
        let big = "x".repeat(MAX_ANNOTATIONS_BYTES);
        let obj = json!({"metadata": {"annotations": {"a": big}}});
        let c = validate_metadata(&obj);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason, "FieldValueTooLong");
        let ok = "x".repeat(MAX_ANNOTATIONS_BYTES - 1);
        assert!(validate_metadata(&json!({"metadata": {"annotations": {"a": ok}}})).is_empty());
        // Upper-case keys are fine for annotations (checked lower-cased).
        let obj = json!({"metadata": {"annotations": {"Example.COM/Key": "v"}}});
        assert!(validate_metadata(&obj).is_empty());
        let obj = json!({"metadata": {"annotations": {"bad key": "v"}}});
        assert_eq!(validate_metadata(&obj)[0].field, "metadata.annotations");
    }

    #[test]
    fn finalizers_and_owner_refs() {
        let obj = json!({"metadata": {"finalizers": ["ferrolb.io/finalizer", "kubernetes"]}});
        assert!(validate_metadata(&obj).is_empty());
        let obj = json!({"metadata": {"finalizers": ["not a name"]}});
        assert_eq!(validate_metadata(&obj)[0].field, "metadata.finalizers");
        let obj = json!({"metadata": {"finalizers": ["orphan", "foregroundDeletion"]}});
        assert_eq!(validate_metadata(&obj).len(), 1);

        let good = json!({"apiVersion": "v1", "kind": "Service", "name": "a", "uid": "1", "controller": true});
        let obj = json!({"metadata": {"ownerReferences": [good]}});
        assert!(validate_metadata(&obj).is_empty());
        let obj = json!({"metadata": {"ownerReferences": [{"kind": "Service"}]}});
        let fields: Vec<String> = validate_metadata(&obj)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid"
            ]
        );
        let other = json!({"apiVersion": "v1", "kind": "Node", "name": "b", "uid": "2", "controller": true});
        let obj = json!({"metadata": {"ownerReferences": [good, other]}});
        let c = validate_metadata(&obj);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].message
                .contains("Only one reference can have Controller set to true")
        );
    }

    #[test]
    fn metadata_update_rules() {
        let old = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u1",
            "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x.io/a"]}});
        assert!(validate_metadata_update(&old, &old).is_empty());
        for (f, v) in [
            ("name", json!("b")),
            ("namespace", json!("other")),
            ("uid", json!("u2")),
            ("deletionTimestamp", json!("2026-01-01T00:00:01Z")),
        ] {
            let mut new = old.clone();
            new["metadata"][f] = v;
            let c = validate_metadata_update(&new, &old);
            assert_eq!(c.len(), 1, "{f}");
            assert_eq!(c[0].field, format!("metadata.{f}"));
            assert!(c[0].message.ends_with("field is immutable"));
        }
        let mut deleting = old.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
        let mut new = deleting.clone();
        new["metadata"]["finalizers"] = json!(["x.io/a", "x.io/b"]);
        let c = validate_metadata_update(&new, &deleting);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason, "FieldValueForbidden");
        assert!(c[0].message.contains("no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x.io/b\"}"));
        // Removing finalizers while deleting is fine, and clearing the deletion stamp is not.
        let mut new = deleting.clone();
        new["metadata"]["finalizers"] = json!([]);
        assert!(validate_metadata_update(&new, &deleting).is_empty());
        let mut new = deleting.clone();
        new["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionTimestamp");
        assert_eq!(
            validate_metadata_update(&new, &deleting)[0].field,
            "metadata.deletionTimestamp"
        );
    }

    #[test]
    fn spec_changed_ignores_metadata_and_status_subresource() {
        let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"s": 1}});
        let mut new = old.clone();
        new["metadata"]["labels"]["a"] = json!("2");
        assert!(!spec_changed(&old, &new, true));
        new["status"]["s"] = json!(2);
        assert!(!spec_changed(&old, &new, true));
        assert!(spec_changed(&old, &new, false));
        new["spec"]["x"] = json!(2);
        assert!(spec_changed(&old, &new, true));
    }

    #[test]
    fn generate_name_shape() {
        let mut n = 0u64;
        let mut rand = || {
            n += 1;
            n
        };
        let a = generate_name("ferrolb-", &mut rand);
        let b = generate_name("ferrolb-", &mut rand);
        assert_ne!(a, b);
        assert!(a.starts_with("ferrolb-"));
        assert_eq!(a.len(), 13);
        assert!(a[8..].bytes().all(|c| GENERATE_NAME_ALPHABET.contains(&c)));
        let long = generate_name(&"p".repeat(100), &mut rand);
        assert_eq!(long.len(), 63);
        assert!(long.starts_with(&"p".repeat(58)));
    }

    #[test]
    fn prune_drops_empty_collections_only() {
        let mut obj = json!({"metadata": {
            "name": "x", "finalizers": [], "labels": {}, "annotations": null,
            "ownerReferences": [], "managedFields": [], "generation": 0
        }});
        prune_empty_metadata(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "x", "generation": 0}}));
        let mut obj = json!({"metadata": {"finalizers": ["a"], "labels": {"a": "b"}}});
        let before = obj.clone();
        prune_empty_metadata(&mut obj);
        assert_eq!(obj, before);
    }
}
