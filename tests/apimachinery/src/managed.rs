//! Server-side apply field ownership (spec E15): `metadata.managedFields`.
//!
//! Follows the model of upstream's structured-merge-diff: every manager entry owns a
//! set of leaf paths (`fieldsV1`). An apply owns exactly the fields in its config,
//! prunes fields it applied before and no longer applies (unless someone else owns
//! them), and conflicts with other managers whose fields it would change. Other
//! writes (create, update, patch) take over the fields they change.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::{ListKind, apply_merge, item_key, list_kind};
use crate::status::ApiError;

/// The current time as RFC 3339 UTC whole seconds, the format of `managedFields[].time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One step of a field path, as encoded in `fieldsV1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A map member (`f:<name>`).
    Field(String),
    /// A keyed list item (`k:<canonical JSON object of the key fields>`).
    Key(String),
    /// A set list item (`v:<canonical JSON value>`).
    Value(String),
}

/// A path from the object root to an owned field.
pub type FieldPath = Vec<PathElement>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// Fields server-side apply never tracks (upstream's `stripMeta`).
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "generation",
    "managedFields",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn canonical(v: &Value) -> String {
    // serde_json's default map keeps keys sorted, which makes this canonical.
    v.to_string()
}

fn key_element(item: &Value, keys: &[&str]) -> PathElement {
    let vals = item_key(item, keys);
    let mut m = Map::new();
    for (k, v) in keys.iter().zip(vals) {
        m.insert((*k).to_string(), v);
    }
    PathElement::Key(canonical(&Value::Object(m)))
}

/// The set of paths `obj` sets, with upstream's list semantics for `kind` and without
/// the system fields apply ignores (`apiVersion`, `kind`, `metadata.name`, ...).
pub fn field_set(obj: &Value) -> FieldSet {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut out = FieldSet::new();
    let mut names = Vec::new();
    let mut path = Vec::new();
    walk(&kind, &mut names, &mut path, obj, &mut out);
    out
}

fn walk(kind: &str, names: &mut Vec<String>, path: &mut FieldPath, v: &Value, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() || path.is_empty() => {
            for (k, child) in m {
                if child.is_null() {
                    continue;
                }
                if path.is_empty() && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if names.len() == 1 && names[0] == "metadata" && STRIPPED_META.contains(&k.as_str())
                {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                names.push(k.clone());
                let before = out.len();
                walk(kind, names, path, child, out);
                // `metadata: {name: x}` alone owns nothing, not even `metadata`.
                if out.len() == before && names.len() == 1 && k == "metadata" {
                    out.remove(path.as_slice());
                }
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_kind(kind, names) {
            ListKind::Atomic => {
                out.insert(path.clone());
            }
            ListKind::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathElement::Value(canonical(item)));
                    out.insert(p);
                }
            }
            ListKind::Map(keys) => {
                for item in items {
                    path.push(key_element(item, &keys));
                    out.insert(path.clone());
                    names.push("[]".into());
                    if let Value::Object(_) = item {
                        walk(kind, names, path, item, out);
                    }
                    names.pop();
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn element_key(e: &PathElement) -> String {
    match e {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
    }
}

/// Encodes a field set as a `fieldsV1` trie.
pub fn fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for e in path {
            let child = node.entry(element_key(e)).or_insert_with(|| json!({}));
            let Value::Object(child_map) = child else {
                break;
            };
            node = child_map;
        }
    }
    // A member that also has children is marked with ".".
    fn mark(set: &FieldSet, prefix: &mut FieldPath, node: &mut Map<String, Value>) {
        for (k, child) in node.iter_mut() {
            let Some(e) = parse_element(k) else {
                continue;
            };
            prefix.push(e);
            if let Value::Object(cm) = child {
                let has_children = cm.keys().any(|k| k != ".");
                if has_children && set.contains(prefix.as_slice()) {
                    cm.insert(".".into(), json!({}));
                }
                mark(set, prefix, cm);
            }
            prefix.pop();
        }
    }
    let mut prefix = Vec::new();
    mark(set, &mut prefix, &mut root);
    Value::Object(root)
}

fn parse_element(k: &str) -> Option<PathElement> {
    if let Some(f) = k.strip_prefix("f:") {
        return Some(PathElement::Field(f.to_string()));
    }
    let canon = |s: &str| serde_json::from_str::<Value>(s).map(|v| canonical(&v)).ok();
    if let Some(key) = k.strip_prefix("k:") {
        return canon(key).map(PathElement::Key);
    }
    if let Some(v) = k.strip_prefix("v:") {
        return canon(v).map(PathElement::Value);
    }
    None
}

/// Decodes a `fieldsV1` trie into a field set (unknown element kinds are skipped).
pub fn set_from_fields_v1(v: &Value) -> FieldSet {
    fn rec(node: &Map<String, Value>, prefix: &mut FieldPath, out: &mut FieldSet) {
        for (k, child) in node {
            if k == "." {
                continue;
            }
            let Some(e) = parse_element(k) else {
                continue;
            };
            prefix.push(e);
            match child {
                Value::Object(cm) if !cm.is_empty() => {
                    if cm.contains_key(".") {
                        out.insert(prefix.clone());
                    }
                    rec(cm, prefix, out);
                }
                _ => {
                    out.insert(prefix.clone());
                }
            }
            prefix.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Value::Object(m) = v {
        rec(m, &mut Vec::new(), &mut out);
    }
    out
}

fn key_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| match item.get(k) {
        Some(x) => x == v,
        None => k == "protocol" && v.as_str() == Some("TCP"),
    })
}

fn parse_key(k: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(k) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The value at `path` in `obj`, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[PathElement]) -> Option<&'a Value> {
    let mut cur = obj;
    for e in path {
        cur = match (e, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get(f).filter(|v| !v.is_null())?,
            (PathElement::Key(k), Value::Array(a)) => {
                let key = parse_key(k)?;
                a.iter().find(|item| key_matches(item, &key))?
            }
            (PathElement::Value(v), Value::Array(a)) => {
                let want: Value = serde_json::from_str(v).ok()?;
                a.iter().find(|item| **item == want)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn remove_at(obj: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for e in parent_path {
        let next = match (e, cur) {
            (PathElement::Field(f), Value::Object(m)) => m.get_mut(f),
            (PathElement::Key(k), Value::Array(a)) => {
                let Some(key) = parse_key(k) else {
                    return;
                };
                a.iter_mut().find(|item| key_matches(item, &key))
            }
            (PathElement::Value(v), Value::Array(a)) => {
                let Ok(want) = serde_json::from_str::<Value>(v) else {
                    return;
                };
                a.iter_mut().find(|item| **item == want)
            }
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (PathElement::Key(k), Value::Array(a)) => {
            if let Some(key) = parse_key(k) {
                a.retain(|item| !key_matches(item, &key));
            }
        }
        (PathElement::Value(v), Value::Array(a)) => {
            if let Ok(want) = serde_json::from_str::<Value>(v) {
                a.retain(|item| *item != want);
            }
        }
        _ => {}
    }
}

/// Renders a path like upstream conflict messages: `.spec.ports[port=80,protocol="TCP"].name`.
pub fn format_path(path: &[PathElement]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            PathElement::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = parse_key(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Self {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: s("time"),
            subresource: v
                .get("subresource")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            set: set_from_fields_v1(v.get("fieldsV1").unwrap_or(&Value::Null)),
        }
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(&self.set),
        });
        if let (Some(s), Value::Object(m)) = (&self.subresource, &mut e) {
            m.insert("subresource".into(), Value::String(s.clone()));
        }
        e
    }

    fn is(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }
}

/// Parsed `metadata.managedFields` entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedFields {
    /// The raw entries, in stored order.
    pub entries: Vec<Value>,
}

impl ManagedFields {
    /// Reads `metadata.managedFields` from an object.
    pub fn from_object(obj: &Value) -> Self {
        let entries = obj
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Self { entries }
    }

    /// The fields owned by one entry (`operation` is `Apply` or `Update`).
    pub fn owned(&self, manager: &str, operation: &str, subresource: Option<&str>) -> FieldSet {
        self.entries
            .iter()
            .map(Entry::parse)
            .find(|e| e.is(manager, operation, subresource))
            .map(|e| e.set)
            .unwrap_or_default()
    }

    /// Managers (any operation) owning `path` exactly.
    pub fn owners_of(&self, path: &[PathElement]) -> Vec<String> {
        self.entries
            .iter()
            .map(Entry::parse)
            .filter(|e| e.set.contains(path))
            .map(|e| e.manager)
            .collect()
    }
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = if v.is_null() { json!({}) } else { v.clone() };
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        m.remove("managedFields");
    }
    v
}

/// Whether the field at `p` was added or changed. A list item's own path only tracks
/// its presence; changes inside it show up on its fields' paths.
fn differs(before: &Value, after: &Value, p: &[PathElement]) -> bool {
    match p.last() {
        Some(PathElement::Key(_) | PathElement::Value(_)) => {
            value_at(before, p).is_some() != value_at(after, p).is_some()
        }
        _ => value_at(before, p) != value_at(after, p),
    }
}

/// Compares two objects ignoring `managedFields[].time`, the E16 no-op test.
pub fn equal_ignoring_managed_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(Value::Array(entries)) = v
            .get_mut("metadata")
            .and_then(|m| m.get_mut("managedFields"))
        {
            for e in entries {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

fn has_prefix(path: &[PathElement], prefix: &[PathElement]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// Server-side apply with ownership, stamped with the current time. See
/// [`apply_with_ownership_at`].
pub fn apply_with_ownership(
    live: &Value,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    managed: &[Value],
) -> Result<(Value, Vec<Value>), ApiError> {
    apply_with_ownership_at(
        live,
        applied,
        manager,
        subresource,
        force,
        managed,
        &now_rfc3339(),
    )
}

/// Server-side apply with ownership (E15). `live` is the stored object (`{}` or null
/// when the apply creates it), `managed` its `managedFields`. Returns the merged object
/// (without `managedFields`) and the new `managedFields`, or 409 when `force` is false
/// and the apply would change fields other managers own.
///
/// Strip fields the endpoint ignores (e.g. `status` on a main resource with a status
/// subresource) from `applied` first, so the applier does not claim them.
pub fn apply_with_ownership_at(
    live: &Value,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    managed: &[Value],
    time: &str,
) -> Result<(Value, Vec<Value>), ApiError> {
    let live = without_managed_fields(live);
    let applied = without_managed_fields(applied);
    let mut entries: Vec<Entry> = managed.iter().map(Entry::parse).collect();
    let mine = entries
        .iter()
        .position(|e| e.is(manager, "Apply", subresource));
    let last_set = mine.map(|i| entries[i].set.clone()).unwrap_or_default();
    let new_set = field_set(&applied);

    let mut merged = apply_merge(&live, &applied);

    // Prune what this manager applied before and dropped now, unless it is still
    // owned by anyone (the applier's new config included).
    let mut dropped: Vec<&FieldPath> = last_set.difference(&new_set).collect();
    // Parents first: removing a list item removes the fields inside it too.
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        let owned_elsewhere = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != mine)
            .any(|(_, e)| e.set.iter().any(|q| has_prefix(q, p)))
            || new_set.iter().any(|q| has_prefix(q, p));
        if !owned_elsewhere {
            remove_at(&mut merged, p);
        }
    }

    // Conflicts: fields this apply adds or changes that another entry owns.
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| differs(&live, &merged, p))
        .cloned()
        .collect();
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        for p in e.set.intersection(&changed) {
            conflicts.push((i, p.clone()));
        }
    }
    if !force && !conflicts.is_empty() {
        let list: Vec<(String, String)> = conflicts
            .iter()
            .map(|(i, p)| (entries[*i].manager.clone(), format_path(p)))
            .collect();
        return Err(ApiError::apply_conflict(&list));
    }
    for (i, p) in &conflicts {
        entries[*i].set.remove(p);
    }
    // Fields that disappeared are owned by nobody.
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) == mine {
            continue;
        }
        e.set
            .retain(|p| value_at(&live, p).is_none() || value_at(&merged, p).is_some());
    }

    let api_version = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let noop = merged == live;
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if !noop || e.set != new_set || e.api_version != api_version {
                if !noop {
                    e.time = time.to_string();
                }
                e.set = new_set;
                e.api_version = api_version;
            }
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version,
            time: time.to_string(),
            subresource: subresource.map(String::from),
            set: new_set,
        }),
    }
    let out: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::to_json)
        .collect();
    Ok((merged, out))
}

/// Attributes a non-apply write (create when `old` is None, update, patch) to
/// `manager`: it takes over every field it added or changed, and fields it removed are
/// owned by nobody. Returns the new `managedFields`; an unchanged write returns
/// `managed` as it was.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    managed: &[Value],
    time: &str,
) -> Vec<Value> {
    let old = old.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let new = without_managed_fields(new);
    let mut entries: Vec<Entry> = managed.iter().map(Entry::parse).collect();
    let changed: FieldSet = field_set(&new)
        .into_iter()
        .filter(|p| differs(&old, &new, p))
        .collect();
    let gone = |p: &FieldPath| value_at(&old, p).is_some() && value_at(&new, p).is_none();
    let mine = entries
        .iter()
        .position(|e| e.is(manager, "Update", subresource));
    for (i, e) in entries.iter_mut().enumerate() {
        e.set.retain(|p| !gone(p));
        if Some(i) != mine {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match mine {
            Some(i) => {
                let e = &mut entries[i];
                e.set.extend(changed);
                e.time = time.to_string();
                e.api_version = api_version;
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version,
                time: time.to_string(),
                subresource: subresource.map(String::from),
                set: changed,
            }),
        }
    }
    entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::to_json)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-01-01T00:00:00Z";
    const T2: &str = "2026-01-01T00:00:05Z";

    fn pool(spec: Value) -> Value {
        json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
               "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn apply(
        live: &Value,
        applied: &Value,
        mgr: &str,
        force: bool,
        managed: &[Value],
    ) -> Result<(Value, Vec<Value>), ApiError> {
        apply_with_ownership_at(live, applied, mgr, None, force, managed, T1)
    }

    #[test]
    fn field_set_and_fields_v1_round_trip() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "labels": {"a": "1"}, "finalizers": ["x/y"]},
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "w"}, "ips": ["1"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let set = field_set(&obj);
        let v1 = fields_v1(&set);
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x/y\"": {}}},
                "f:spec": {
                    "f:ips": {},
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}}},
                    "f:selector": {"f:app": {}}
                },
                "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}
            })
        );
        assert_eq!(set_from_fields_v1(&v1), set);
        let port = set
            .iter()
            .find(|p| p.len() == 4 && p[3] == PathElement::Field("name".into()))
            .unwrap();
        assert_eq!(
            format_path(port),
            ".spec.ports[port=80,protocol=\"TCP\"].name"
        );
        assert_eq!(value_at(&obj, port), Some(&json!("http")));
        // Name-only metadata owns nothing.
        assert!(field_set(&json!({"metadata": {"name": "x"}})).is_empty());
    }

    #[test]
    fn e15_conflict_force_and_removal() {
        // A applies x=1.
        let (obj, mf) = apply(&json!({}), &pool(json!({"x": 1, "y": 1})), "a", false, &[]).unwrap();
        assert_eq!(obj["spec"], json!({"x": 1, "y": 1}));
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0]["manager"], "a");
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        assert_eq!(mf[0]["apiVersion"], "ferrolb.io/v1alpha1");
        assert_eq!(mf[0]["time"], T1);
        assert_eq!(mf[0]["fieldsV1"], json!({"f:spec": {"f:x": {}, "f:y": {}}}));
        // B applies x=2 without force: 409 naming .spec.x.
        let e = apply(&obj, &pool(json!({"x": 2})), "b", false, &mf).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.x"
        );
        let causes = &e.details.as_ref().unwrap()["causes"];
        assert_eq!(causes[0]["reason"], "FieldManagerConflict");
        assert_eq!(causes[0]["field"], ".spec.x");
        // B applies an equal value: shared ownership, no conflict.
        let (obj2, mf2) = apply(&obj, &pool(json!({"y": 1})), "b", false, &mf).unwrap();
        assert_eq!(obj2, without_managed_fields(&obj));
        assert_eq!(mf2.len(), 2);
        // A re-applies without y: y stays because B co-owns it; x is kept as applied.
        let (obj3, mf3) = apply(&obj2, &pool(json!({"x": 1})), "a", false, &mf2).unwrap();
        assert_eq!(obj3["spec"], json!({"x": 1, "y": 1}));
        // A re-applies without x: nobody else owns it, so it disappears.
        let (obj4, mf4) = apply(&obj3, &pool(json!({})), "a", false, &mf3).unwrap();
        assert_eq!(obj4["spec"], json!({"y": 1}));
        // A's entry now owns `.spec` only as an empty map; B still owns y.
        let mfs = ManagedFields {
            entries: mf4.clone(),
        };
        assert_eq!(
            mfs.owners_of(&[
                PathElement::Field("spec".into()),
                PathElement::Field("y".into())
            ]),
            ["b"]
        );
        // B forces x=2 over A (after A re-applies x).
        let (obj5, mf5) = apply(&obj4, &pool(json!({"x": 1})), "a", false, &mf4).unwrap();
        let (obj6, mf6) = apply(&obj5, &pool(json!({"x": 2, "y": 1})), "b", true, &mf5).unwrap();
        assert_eq!(obj6["spec"]["x"], 2);
        let mfs = ManagedFields { entries: mf6 };
        let x = [
            PathElement::Field("spec".into()),
            PathElement::Field("x".into()),
        ];
        assert_eq!(mfs.owners_of(&x), ["b"]);
    }

    #[test]
    fn update_takes_over_fields_and_apply_conflicts_with_it() {
        let (obj, mf) = apply(&json!({}), &pool(json!({"x": 1})), "a", false, &[]).unwrap();
        let mut edited = obj.clone();
        edited["spec"]["x"] = json!(5);
        edited["spec"]["z"] = json!(true);
        let mf2 = record_update(Some(&obj), &edited, "kubectl-edit", None, &mf, T2);
        let mfs = ManagedFields {
            entries: mf2.clone(),
        };
        assert_eq!(mfs.owned("a", "Apply", None), FieldSet::new());
        assert_eq!(mfs.owned("kubectl-edit", "Update", None).len(), 2);
        assert_eq!(mf2.len(), 1, "a's emptied entry is dropped");
        let e = apply(&edited, &pool(json!({"x": 1})), "a", false, &mf2).unwrap_err();
        assert!(
            e.message
                .contains("conflict with \"kubectl-edit\": .spec.x"),
            "{}",
            e.message
        );
        // A no-op update changes nothing.
        assert_eq!(
            record_update(Some(&edited), &edited, "other", None, &mf2, T2),
            mf2
        );
        // Create attributes everything.
        let mf3 = record_update(None, &edited, "creator", None, &[], T1);
        assert_eq!(
            mf3[0]["fieldsV1"],
            json!({"f:spec": {"f:x": {}, "f:z": {}}})
        );
        assert_eq!(mf3[0]["operation"], "Update");
    }

    #[test]
    fn status_conditions_by_type_and_subresource_entries() {
        let live = pool(json!({"x": 1}));
        let a = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p"},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let (obj, mf) =
            apply_with_ownership_at(&live, &a, "ctl", Some("status"), false, &[], T1).unwrap();
        assert_eq!(mf[0]["subresource"], "status");
        let b = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p"},
                       "status": {"conditions": [{"type": "Synced", "status": "True"}]}});
        let (obj, mf) =
            apply_with_ownership_at(&obj, &b, "other", Some("status"), false, &mf, T1).unwrap();
        assert_eq!(obj["status"]["conditions"].as_array().unwrap().len(), 2);
        // ctl drops its condition: only the Synced one remains.
        let empty = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "status": {"conditions": []}});
        let (obj, _) =
            apply_with_ownership_at(&obj, &empty, "ctl", Some("status"), false, &mf, T1).unwrap();
        assert_eq!(
            obj["status"]["conditions"],
            json!([{"type": "Synced", "status": "True"}])
        );
    }

    #[test]
    fn finalizer_set_and_noop_keeps_time() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a.io/f"]}});
        let (obj, mf) = apply(&live, &a, "a", false, &[]).unwrap();
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["b.io/f"]}});
        let (obj, mf) = apply(&obj, &b, "b", false, &mf).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["a.io/f", "b.io/f"]));
        let (obj2, mf2) = apply_with_ownership_at(&obj, &b, "b", None, false, &mf, T2).unwrap();
        assert_eq!(obj2, obj);
        assert_eq!(mf2, mf, "a no-op apply keeps managedFields, time included");
        let none = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let (obj3, _) = apply(&obj2, &none, "a", false, &mf2).unwrap();
        assert_eq!(obj3["metadata"]["finalizers"], json!(["b.io/f"]));
    }

    #[test]
    fn equality_ignores_only_managed_times() {
        let a = json!({"metadata": {"managedFields": [{"manager": "m", "time": T1}]}, "spec": {"x": 1}});
        let mut b = a.clone();
        b["metadata"]["managedFields"][0]["time"] = json!(T2);
        assert!(equal_ignoring_managed_times(&a, &b));
        b["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!equal_ignoring_managed_times(&a, &b));
    }

    #[test]
    fn service_ports_keyed_merge_with_owners() {
        let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                          "spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30000, "targetPort": 80}]}});
        let mf = record_update(None, &live, "alloc", None, &[], T1);
        let a = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                       "spec": {"ports": [{"port": 80, "name": "http"}]}});
        let (obj, _) = apply(&live, &a, "a", false, &mf).unwrap();
        assert_eq!(
            obj["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "nodePort": 30000, "targetPort": 80, "name": "http"}])
        );
        let clash = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                           "spec": {"ports": [{"port": 80, "nodePort": 30005}]}});
        let e = apply(&live, &clash, "a", false, &mf).unwrap_err();
        assert!(
            e.message
                .contains(".spec.ports[port=80,protocol=\"TCP\"].nodePort"),
            "{}",
            e.message
        );
    }
}
