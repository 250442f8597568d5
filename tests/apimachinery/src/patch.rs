//! Patches on stored JSON (spec E13, E14): RFC 7386 merge patch, RFC 6902 JSON
//! patch and the server-side-apply merge. Field ownership (E15) lives in
//! [`crate::managed`] and is re-exported here.

use serde_json::{Map, Value};

use crate::status::ApiError;

pub use crate::managed::{
    ManagedFields, apply_with_ownership, apply_with_ownership_at, record_update,
};

/// Upstream's limit on the number of operations in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 7386 merge patch: objects merge recursively, `null` deletes a
/// member, anything else (arrays included) replaces the target whole.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                merge_patch(slot, v);
            }
        }
    }
}

/// Why a patch could not be applied.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document itself is malformed (400 BadRequest).
    #[error("{0}")]
    Malformed(String),
    /// An operation could not be applied to the object (422).
    #[error("{0}")]
    Failed(String),
    /// The JSON patch has more than [`MAX_JSON_PATCH_OPERATIONS`] operations (413).
    #[error("The allowed operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {0}")]
    TooManyOperations(usize),
}

impl PatchError {
    /// The API error the apiserver answers with.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Failed(m) => ApiError::custom(422, "Invalid", m),
            PatchError::TooManyOperations(_) => {
                ApiError::request_entity_too_large(&self.to_string())
            }
        }
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        e.to_api_error()
    }
}

fn failed(msg: impl Into<String>) -> PatchError {
    PatchError::Failed(msg.into())
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
fn parse_pointer(p: &str) -> Result<Vec<String>, PatchError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(failed(format!(
            "invalid JSON pointer {p:?}: must start with '/'"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn array_index(tok: &str, len: usize, allow_end: bool) -> Result<usize, PatchError> {
    if allow_end && tok == "-" {
        return Ok(len);
    }
    let valid = !tok.is_empty()
        && tok.bytes().all(|b| b.is_ascii_digit())
        && (tok == "0" || !tok.starts_with('0'));
    let idx: usize = if valid { tok.parse().ok() } else { None }
        .ok_or_else(|| failed(format!("invalid array index {tok:?}")))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if idx > max || (!allow_end && len == 0) {
        return Err(failed(format!(
            "array index {idx} out of bounds (length {len})"
        )));
    }
    Ok(idx)
}

fn get<'a>(root: &'a Value, toks: &[String]) -> Option<&'a Value> {
    let mut cur = root;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get_mut<'a>(root: &'a mut Value, toks: &[String]) -> Result<&'a mut Value, PatchError> {
    let mut cur = root;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| failed(format!("doc is missing path: missing key {t:?}")))?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => {
                return Err(failed(format!(
                    "doc is missing path: {t:?} is not a container"
                )));
            }
        };
    }
    Ok(cur)
}

fn add(root: &mut Value, toks: &[String], value: Value) -> Result<(), PatchError> {
    let Some((last, parent)) = toks.split_last() else {
        *root = value;
        return Ok(());
    };
    match get_mut(root, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(failed(
            "add operation does not apply: parent is not a container",
        )),
    }
}

fn remove(root: &mut Value, toks: &[String]) -> Result<Value, PatchError> {
    let Some((last, parent)) = toks.split_last() else {
        return Err(failed(
            "remove operation does not apply: cannot remove the document root",
        ));
    };
    match get_mut(root, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| {
            failed(format!(
                "remove operation does not apply: doc is missing key {last:?}"
            ))
        }),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(failed(
            "remove operation does not apply: parent is not a container",
        )),
    }
}

/// Applies an RFC 6902 JSON patch (all six operations). Like Go's json-patch, a
/// `test` of an absent member passes when the expected value is `null` (E13).
/// The target is left unchanged when any operation fails.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let Value::Array(list) = ops else {
        return Err(PatchError::Malformed(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        ));
    };
    if list.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(list.len()));
    }
    if let Some(bad) = list.iter().find(|o| !o.is_object()) {
        return Err(PatchError::Malformed(format!(
            "json: cannot unmarshal {bad} into Go value of type jsonpatch.Operation"
        )));
    }
    let mut doc = target.clone();
    for op in list {
        apply_op(&mut doc, op)?;
    }
    *target = doc;
    Ok(())
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let path_of = |key: &str| -> Result<Vec<String>, PatchError> {
        match op.get(key) {
            Some(Value::String(p)) => parse_pointer(p),
            _ => Err(failed(format!("{kind} operation missing {key:?} field"))),
        }
    };
    let value = || -> Result<Value, PatchError> {
        op.get("value")
            .cloned()
            .ok_or_else(|| failed(format!("{kind} operation missing value")))
    };
    match kind {
        "add" => add(doc, &path_of("path")?, value()?),
        "remove" => remove(doc, &path_of("path")?).map(|_| ()),
        "replace" => {
            let path = path_of("path")?;
            let v = value()?;
            if path.is_empty() {
                *doc = v;
                return Ok(());
            }
            if get(doc, &path).is_none() {
                return Err(failed(format!(
                    "replace operation does not apply: doc is missing key: {}",
                    pointer_string(&path)
                )));
            }
            *get_mut(doc, &path)? = v;
            Ok(())
        }
        "move" => {
            let from = path_of("from")?;
            let path = path_of("path")?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err(failed("move operation: from is a prefix of path"));
            }
            let v = remove(doc, &from)?;
            add(doc, &path, v)
        }
        "copy" => {
            let from = path_of("from")?;
            let path = path_of("path")?;
            let v = get(doc, &from)
                .cloned()
                .ok_or_else(|| failed("copy operation does not apply: from is missing"))?;
            add(doc, &path, v)
        }
        "test" => {
            let path = path_of("path")?;
            let expected = op.get("value").cloned().unwrap_or(Value::Null);
            let ok = match get(doc, &path) {
                Some(actual) => json_eq(actual, &expected),
                None => expected.is_null(),
            };
            if ok {
                Ok(())
            } else {
                Err(failed(format!(
                    "testing value {} failed: test failed",
                    pointer_string(&path)
                )))
            }
        }
        other => Err(failed(format!("Unexpected kind: {other}"))),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as Go's
/// json-patch compares decoded values.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn pointer_string(toks: &[String]) -> String {
    toks.iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// How server-side apply treats a list at a given place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced whole.
    Atomic,
    /// A set of scalars: union of items.
    Set,
    /// A map keyed by these fields of each item (missing `protocol` reads as `TCP`).
    Map(Vec<&'static str>),
}

/// The list semantics used at `path` (member names from the root) of an object whose
/// root `kind` is `kind`.
pub fn list_kind(kind: &str, path: &[String]) -> ListKind {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["metadata", "finalizers"] => ListKind::Set,
        ["metadata", "ownerReferences"] => ListKind::Map(vec!["uid"]),
        ["spec", "ports"] if kind == "Service" => ListKind::Map(vec!["port", "protocol"]),
        [.., "conditions"] => ListKind::Map(vec!["type"]),
        _ => ListKind::Atomic,
    }
}

/// The key of a map-list item, with upstream's `protocol: TCP` default applied.
pub fn item_key(item: &Value, keys: &[&str]) -> Vec<Value> {
    keys.iter()
        .map(|k| match item.get(*k) {
            Some(v) => v.clone(),
            None if *k == "protocol" => Value::String("TCP".into()),
            None => Value::Null,
        })
        .collect()
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Server-side-apply merge without ownership: maps merge recursively, scalars are
/// replaced, lists are atomic except finalizers (set), ownerReferences (by uid),
/// any `conditions` list (by type) and Service `spec.ports` (by port and protocol).
/// A `null` in `applied` removes the key.
pub fn apply_merge(live: &Value, applied: &Value) -> Value {
    let kind = applied
        .get("kind")
        .or_else(|| live.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut path = Vec::new();
    merge_at(&kind, &mut path, live, applied)
}

fn merge_at(kind: &str, path: &mut Vec<String>, live: &Value, applied: &Value) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match l.get(k) {
                    Some(lv) => {
                        path.push(k.clone());
                        let m = merge_at(kind, path, lv, av);
                        path.pop();
                        m
                    }
                    None => strip_nulls(av),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match list_kind(kind, path) {
            ListKind::Atomic => strip_nulls(applied),
            ListKind::Set => {
                let mut out = l.clone();
                for item in a {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListKind::Map(keys) => {
                let mut out = l.clone();
                for item in a {
                    let key = item_key(item, &keys);
                    match out.iter().position(|x| item_key(x, &keys) == key) {
                        Some(i) => {
                            path.push("[]".into());
                            out[i] = merge_at(kind, path, &l[i], item);
                            path.pop();
                        }
                        None => out.push(strip_nulls(item)),
                    }
                }
                Value::Array(out)
            }
        },
        _ => strip_nulls(applied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        // The RFC 7386 appendix table.
        let rows = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in rows {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        }
    }

    fn jp(doc: Value, ops: Value) -> Result<Value, PatchError> {
        let mut d = doc;
        json_patch(&mut d, &ops)?;
        Ok(d)
    }

    #[test]
    fn json_patch_all_ops() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let rows = [
            (
                json!([{"op":"add","path":"/d","value":1}]),
                json!({"a":{"b":[1,2]},"c":"x","d":1}),
            ),
            (
                json!([{"op":"add","path":"/a/b/0","value":0}]),
                json!({"a":{"b":[0,1,2]},"c":"x"}),
            ),
            (
                json!([{"op":"add","path":"/a/b/-","value":3}]),
                json!({"a":{"b":[1,2,3]},"c":"x"}),
            ),
            (
                json!([{"op":"add","path":"/a/b/2","value":3}]),
                json!({"a":{"b":[1,2,3]},"c":"x"}),
            ),
            (
                json!([{"op":"remove","path":"/c"}]),
                json!({"a":{"b":[1,2]}}),
            ),
            (
                json!([{"op":"remove","path":"/a/b/0"}]),
                json!({"a":{"b":[2]},"c":"x"}),
            ),
            (
                json!([{"op":"replace","path":"/c","value":"y"}]),
                json!({"a":{"b":[1,2]},"c":"y"}),
            ),
            (
                json!([{"op":"move","from":"/c","path":"/a/c"}]),
                json!({"a":{"b":[1,2],"c":"x"}}),
            ),
            (
                json!([{"op":"copy","from":"/a/b","path":"/e"}]),
                json!({"a":{"b":[1,2]},"c":"x","e":[1,2]}),
            ),
            (json!([{"op":"test","path":"/c","value":"x"}]), doc.clone()),
            (
                json!([{"op":"test","path":"/missing","value":null}]),
                doc.clone(),
            ),
            (json!([{"op":"replace","path":"","value":{}}]), json!({})),
            (json!([]), doc.clone()),
        ];
        for (ops, want) in rows {
            assert_eq!(jp(doc.clone(), ops.clone()).unwrap(), want, "{ops}");
        }
    }

    #[test]
    fn json_patch_escaped_pointer() {
        let doc = json!({"metadata": {"annotations": {"ferrolb.io/x": "1", "a~b": "2"}}});
        let out = jp(
            doc,
            json!([
                {"op":"remove","path":"/metadata/annotations/ferrolb.io~1x"},
                {"op":"replace","path":"/metadata/annotations/a~0b","value":"3"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"annotations": {"a~b": "3"}}}));
    }

    #[test]
    fn kube_finalizer_first_add_passes() {
        // kube-runtime's finalizer() on an object without finalizers.
        let doc = json!({"metadata": {"name": "x"}});
        let ops = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["ferrolb.io/f"]}
        ]);
        let out = jp(doc, ops).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["ferrolb.io/f"]));
    }

    #[test]
    fn json_patch_failures_are_422_and_atomic() {
        let doc = json!({"a": 1, "l": [1]});
        for ops in [
            json!([{"op":"test","path":"/a","value":2}]),
            json!([{"op":"test","path":"/missing","value":1}]),
            json!([{"op":"remove","path":"/missing"}]),
            json!([{"op":"replace","path":"/missing","value":1}]),
            json!([{"op":"add","path":"/x/y","value":1}]),
            json!([{"op":"add","path":"/l/5","value":1}]),
            json!([{"op":"add","path":"/l/01","value":1}]),
            json!([{"op":"remove","path":"/l/1"}]),
            json!([{"op":"bogus","path":"/a"}]),
            json!([{"path":"/a"}]),
            json!([{"op":"add","path":"/b"}]),
            json!([{"op":"add","value":1}]),
            json!([{"op":"add","path":"a","value":1}]),
            json!([{"op":"move","from":"/l","path":"/l/0"}]),
            json!([{"op":"copy","from":"/nope","path":"/b"}]),
            json!([{"op":"add","path":"/b","value":1},{"op":"test","path":"/a","value":9}]),
        ] {
            let mut d = doc.clone();
            let e = json_patch(&mut d, &ops).unwrap_err();
            assert!(matches!(e, PatchError::Failed(_)), "{ops}: {e:?}");
            assert_eq!(e.to_api_error().code, 422);
            assert_eq!(d, doc, "document must be unchanged after failure");
        }
    }

    #[test]
    fn json_patch_malformed_and_too_many() {
        let mut d = json!({});
        let e = json_patch(&mut d, &json!({"op": "add"})).unwrap_err();
        assert!(matches!(e, PatchError::Malformed(_)));
        assert_eq!(e.to_api_error().code, 400);
        let e = json_patch(&mut d, &json!(["x"])).unwrap_err();
        assert_eq!(e.to_api_error().code, 400);
        let ops: Vec<Value> = (0..10_001)
            .map(|_| json!({"op":"test","path":"","value":{}}))
            .collect();
        let e = json_patch(&mut d, &Value::Array(ops)).unwrap_err();
        assert_eq!(e, PatchError::TooManyOperations(10_001));
        assert_eq!(e.to_api_error().code, 413);
        let ops: Vec<Value> = (0..10_000)
            .map(|_| json!({"op":"test","path":"","value":{}}))
            .collect();
        assert!(json_patch(&mut d, &Value::Array(ops)).is_ok());
    }

    #[test]
    fn apply_merge_maps_scalars_and_atomic_lists() {
        let live =
            json!({"kind": "X", "spec": {"a": 1, "b": {"c": 2}, "l": [1, 2]}, "status": {"s": 1}});
        let applied = json!({"kind": "X", "spec": {"a": 3, "b": {"d": 4}, "l": [3], "n": null}});
        let out = apply_merge(&live, &applied);
        assert_eq!(
            out,
            json!({"kind": "X", "spec": {"a": 3, "b": {"c": 2, "d": 4}, "l": [3]}, "status": {"s": 1}})
        );
        let out = apply_merge(&live, &json!({"spec": {"b": null}}));
        assert_eq!(out["spec"], json!({"a": 1, "l": [1, 2]}));
    }

    #[test]
    fn apply_merge_special_lists() {
        let live = json!({
            "kind": "Service",
            "metadata": {
                "finalizers": ["a"],
                "ownerReferences": [{"uid": "1", "name": "x"}]
            },
            "spec": {"ports": [{"port": 80, "name": "http", "nodePort": 30001}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "B", "status": "True"}]}
        });
        let applied = json!({
            "kind": "Service",
            "metadata": {
                "finalizers": ["b", "a"],
                "ownerReferences": [{"uid": "1", "name": "y"}, {"uid": "2", "name": "z"}]
            },
            "spec": {"ports": [
                {"port": 80, "protocol": "TCP", "name": "web"},
                {"port": 80, "protocol": "UDP", "name": "dns"}
            ]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let out = apply_merge(&live, &applied);
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "y"}, {"uid": "2", "name": "z"}])
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"port": 80, "name": "web", "nodePort": 30001, "protocol": "TCP"},
                {"port": 80, "protocol": "UDP", "name": "dns"}
            ])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "B", "status": "True"}])
        );
        // Ports of other kinds are atomic.
        let mut other = live.clone();
        other["kind"] = json!("Pod");
        let mut app = applied.clone();
        app["kind"] = json!("Pod");
        assert_eq!(
            apply_merge(&other, &app)["spec"]["ports"],
            applied["spec"]["ports"]
        );
    }
}
