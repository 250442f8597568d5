//! Per-kind defaulting and validation: Services (E34), Leases (E36), events.k8s.io
//! Events (E37), Secrets (E35), Namespaces (E33) and CustomResourceDefinitions (E38).

mod crd;
mod event;
mod service;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::Cause;
use crate::validation::{NameRule, qualified_name_errors, validate_name};

pub use crd::{CrdInfo, CrdVersion, crd_info, crd_status, default_crd, validate_crd};
pub use event::validate_event;
pub use service::{
    AllocatorError, DEFAULT_V4_CIDR, DEFAULT_V6_CIDR, ServiceAllocator, admit_service,
    default_service, default_service_status, validate_service, validate_service_status,
};

/// Validates a coordination.k8s.io/v1 Lease (E36).
pub fn validate_lease(obj: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let spec = &obj["spec"];
    let dur = &spec["leaseDurationSeconds"];
    if !dur.is_null() && dur.as_i64().is_none_or(|d| d <= 0) {
        c.push(Cause::invalid_value(
            "spec.leaseDurationSeconds",
            dur,
            "must be greater than 0",
        ));
    }
    let tr = &spec["leaseTransitions"];
    if !tr.is_null() && tr.as_i64().is_none_or(|t| t < 0) {
        c.push(Cause::invalid_value(
            "spec.leaseTransitions",
            tr,
            "must be greater than or equal to 0",
        ));
    }
    let strategy = spec["strategy"].as_str().unwrap_or("");
    if !strategy.is_empty() {
        for m in qualified_name_errors(strategy) {
            c.push(Cause::invalid_value("spec.strategy", &spec["strategy"], &m));
        }
    }
    let preferred = spec["preferredHolder"].as_str().unwrap_or("");
    if !preferred.is_empty() && strategy.is_empty() {
        c.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    c
}

/// Validates a Namespace: the name is an RFC 1123 label.
pub fn validate_namespace(obj: &Value) -> Vec<Cause> {
    validate_name(
        obj["metadata"]["name"].as_str().unwrap_or(""),
        NameRule::Dns1123Label,
    )
}

/// Namespace defaults: `spec.finalizers: [kubernetes]` and `status.phase: Active`
/// (unless already set, e.g. Terminating).
pub fn default_namespace(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let spec = o.entry("spec").or_insert_with(|| json!({}));
    if let Some(s) = spec.as_object_mut()
        && s.get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        s.insert("finalizers".into(), json!(["kubernetes"]));
    }
    let status = o.entry("status").or_insert_with(|| json!({}));
    if let Some(s) = status.as_object_mut()
        && s.get("phase")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        s.insert("phase".into(), json!("Active"));
    }
}

/// Upstream's limit on the total size of a Secret's or ConfigMap's data.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

fn is_config_map_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && !k.starts_with("..")
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Secret handling (E35): `stringData` is base64-encoded into `data` (winning over
/// `data` on equal keys) and dropped; `data` values must be valid base64; keys must be
/// valid config keys; `type` defaults to `Opaque`.
pub fn normalize_secret(obj: &mut Value) -> Result<(), Vec<Cause>> {
    let mut c = Vec::new();
    let Some(o) = obj.as_object_mut() else {
        return Err(vec![Cause::invalid("", "object must be a JSON object")]);
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let mut data: Map<String, Value> = match o.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            c.push(Cause::invalid("data", "must be a map of base64 strings"));
            Map::new()
        }
    };
    for (k, v) in &data {
        let ok = v.as_str().is_some_and(|s| engine.decode(s).is_ok());
        if !ok {
            c.push(Cause::invalid(
                &format!("data[{k}]"),
                "illegal base64 data: must be a base64-encoded string",
            ));
        }
    }
    match o.remove("stringData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(sd)) => {
            for (k, v) in sd {
                match v.as_str() {
                    Some(s) => {
                        data.insert(k, Value::String(engine.encode(s)));
                    }
                    None => c.push(Cause::invalid(
                        &format!("stringData[{k}]"),
                        "must be a string",
                    )),
                }
            }
        }
        Some(_) => c.push(Cause::invalid("stringData", "must be a map of strings")),
    }
    let mut total = 0usize;
    for (k, v) in &data {
        if !is_config_map_key(k) {
            c.push(Cause::invalid_value(
                &format!("data[{k}]"),
                &Value::String(k.clone()),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
        total += v
            .as_str()
            .and_then(|s| engine.decode(s).ok())
            .map_or(0, |b| b.len());
    }
    if total > MAX_SECRET_BYTES {
        c.push(Cause::too_long("data", MAX_SECRET_BYTES));
    }
    if !data.is_empty() {
        o.insert("data".into(), Value::Object(data));
    }
    if o.get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        o.insert("type".into(), json!("Opaque"));
    }
    if c.is_empty() { Ok(()) } else { Err(c) }
}

/// Secret update rules: `type` is immutable, and an `immutable: true` Secret keeps its
/// `data` and may not be made mutable again.
pub fn validate_secret_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    if new["type"] != old["type"] {
        c.push(Cause::invalid_value(
            "type",
            &new["type"],
            "field is immutable",
        ));
    }
    if old["immutable"].as_bool() == Some(true) {
        if new["immutable"].as_bool() != Some(true) {
            c.push(Cause::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if new["data"] != old["data"] {
            c.push(Cause::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_table() {
        let rows = [
            (
                json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
                vec![],
            ),
            (json!({"spec": {}}), vec![]),
            (
                json!({"spec": {"leaseDurationSeconds": 0}}),
                vec!["spec.leaseDurationSeconds"],
            ),
            (
                json!({"spec": {"leaseDurationSeconds": -1}}),
                vec!["spec.leaseDurationSeconds"],
            ),
            (
                json!({"spec": {"leaseTransitions": -1}}),
                vec!["spec.leaseTransitions"],
            ),
            (json!({"spec": {"leaseTransitions": 0}}), vec![]),
            (
                json!({"spec": {"preferredHolder": "b"}}),
                vec!["spec.preferredHolder"],
            ),
            (
                json!({"spec": {"preferredHolder": "b", "strategy": "OldestEmulationVersion"}}),
                vec![],
            ),
        ];
        for (obj, fields) in rows {
            let got: Vec<String> = validate_lease(&obj).into_iter().map(|c| c.field).collect();
            assert_eq!(got, fields, "{obj}");
        }
    }

    #[test]
    fn namespace_defaults_and_names() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        default_namespace(&mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert!(validate_namespace(&ns).is_empty());
        assert!(!validate_namespace(&json!({"metadata": {"name": "a.b"}})).is_empty());
        let mut term = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        default_namespace(&mut term);
        assert_eq!(term["status"]["phase"], "Terminating");
    }

    #[test]
    fn secret_string_data_merges_into_data() {
        let mut s = json!({
            "metadata": {"name": "s"},
            "data": {"a": "YQ==", "b": "b2xk"},
            "stringData": {"b": "new", "c": "x y"}
        });
        normalize_secret(&mut s).unwrap();
        assert_eq!(s["data"], json!({"a": "YQ==", "b": "bmV3", "c": "eCB5"}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
        let mut t = json!({"type": "kubernetes.io/tls"});
        normalize_secret(&mut t).unwrap();
        assert_eq!(t["type"], "kubernetes.io/tls");
        assert!(t.get("data").is_none());
    }

    #[test]
    fn secret_update_rules() {
        let old = json!({"type": "Opaque", "data": {"a": "YQ=="}});
        let mut new = old.clone();
        new["data"]["a"] = json!("Yg==");
        assert!(validate_secret_update(&new, &old).is_empty());
        new["type"] = json!("kubernetes.io/tls");
        assert_eq!(validate_secret_update(&new, &old)[0].field, "type");
        let mut frozen = old.clone();
        frozen["immutable"] = json!(true);
        let mut new = frozen.clone();
        new["data"]["a"] = json!("Yg==");
        new["immutable"] = json!(false);
        let fields: Vec<String> = validate_secret_update(&new, &frozen)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["immutable", "data"]);
    }

    #[test]
    fn secret_rejects_bad_base64_and_keys() {
        let mut s = json!({"data": {"a": "not base64!"}});
        let c = normalize_secret(&mut s).unwrap_err();
        assert_eq!(c[0].field, "data[a]");
        let mut s = json!({"stringData": {"bad/key": "v"}});
        let c = normalize_secret(&mut s).unwrap_err();
        assert_eq!(c[0].field, "data[bad/key]");
        let mut s = json!({"data": {"big": base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_SECRET_BYTES + 1])}});
        let c = normalize_secret(&mut s).unwrap_err();
        assert_eq!(c[0].reason, "FieldValueTooLong");
    }
}
