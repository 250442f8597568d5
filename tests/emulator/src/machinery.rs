//! Thin adapters over `ferrolb-apimachinery` (selectors, patches, metadata
//! validation) in the shapes the store needs.

use ferrolb_apimachinery as am;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::{Builtin, ResourceInfo};

pub(crate) use am::selector::{FieldSelector, LabelSelector};

/// The field selector paths supported for a kind (E24).
pub(crate) fn supported_fields(info: &ResourceInfo) -> Vec<&'static str> {
    let mut v = vec!["metadata.name"];
    if info.namespaced {
        v.push("metadata.namespace");
    }
    match info.builtin {
        Builtin::Pod => v.extend(["spec.nodeName", "status.phase"]),
        Builtin::Node => v.push("spec.unschedulable"),
        Builtin::Secret => v.push("type"),
        _ => {}
    }
    v
}

/// RFC 7386 merge patch applied in place.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    am::patch::merge_patch(target, patch);
}

/// RFC 6902 JSON patch (E13): 400 malformed, 422 failed, 413 too many ops.
pub(crate) fn json_patch(doc: &Value, body: &[u8]) -> ApiResult<Value> {
    let ops: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = doc.clone();
    am::patch::json_patch(&mut out, &ops).map_err(|e| ApiError::from(e.to_api_error()))?;
    Ok(out)
}

/// Parses a JSON or YAML document.
pub(crate) fn parse_yaml_or_json(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| format!("error decoding YAML: {e}"))
}

/// Validates the kind-independent ObjectMeta rules and the name grammar (E11).
/// Services and Namespaces check their names in their kind validators.
pub(crate) fn validate_object_meta(info: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes: Vec<Cause> = match info.builtin {
        Builtin::Service | Builtin::Namespace => Vec::new(),
        _ => am::validation::validate_name(name, am::validation::NameRule::Dns1123Subdomain)
            .into_iter()
            .map(Cause::from)
            .collect(),
    };
    causes.extend(
        am::validation::validate_metadata(obj)
            .into_iter()
            .map(Cause::from),
    );
    causes
}

/// Drops empty metadata collections and null members so they are never stored (E3).
pub(crate) fn prune_empty_metadata(obj: &mut Value) {
    am::validation::prune_empty_metadata(obj);
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.retain(|_, v| !v.is_null());
        for f in ["generateName", "namespace"] {
            if m.get(f).and_then(Value::as_str) == Some("") {
                m.remove(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_null_on_absent_member() {
        let doc = json!({"metadata": {}});
        let p = br#"[{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["a/b"]}]"#;
        let out = json_patch(&doc, p).unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["a/b"]}}));
        let bad = br#"[{"op":"test","path":"/metadata","value":1}]"#;
        assert_eq!(json_patch(&doc, bad).unwrap_err().code, 422);
        assert_eq!(json_patch(&doc, b"{").unwrap_err().code, 400);
    }

    #[test]
    fn prune_drops_empty_collections_and_nulls() {
        let mut o = json!({"metadata": {"name": "a", "labels": {}, "finalizers": [], "annotations": null, "generateName": ""}});
        prune_empty_metadata(&mut o);
        assert_eq!(o, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn yaml_and_json_parse() {
        assert_eq!(parse_yaml_or_json("a: 1").unwrap(), json!({"a": 1}));
        assert_eq!(parse_yaml_or_json("{\"a\": 1}").unwrap(), json!({"a": 1}));
    }
}
