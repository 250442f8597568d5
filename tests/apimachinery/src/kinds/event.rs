//! events.k8s.io/v1 Events (spec E37): strict create validation and immutability
//! on update, compared semantically like upstream's typed comparison.

use serde_json::{Map, Value};

use crate::status::Cause;
use crate::validation::qualified_name_errors;

/// Upstream's length limits.
const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
    }
}

/// Drops zero values recursively, so that an absent field, `null`, `""` and `0`
/// compare equal, as Go struct fields do.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !is_zero(v))
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn same_time(a: &Value, b: &Value) -> bool {
    match (parse_time(a), parse_time(b)) {
        // MicroTime keeps microseconds only.
        (Some(x), Some(y)) => x.as_microsecond() == y.as_microsecond(),
        _ => normalize(a) == normalize(b),
    }
}

fn str_len(v: &Value) -> usize {
    v.as_str().map_or(0, str::len)
}

/// Validates an events.k8s.io/v1 Event: create rules when `old` is None, plus the
/// immutable fields on update (E37).
pub fn validate_event(new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    let ns = new["metadata"]["namespace"].as_str().unwrap_or("");
    let regarding_ns = new["regarding"]["namespace"].as_str().unwrap_or("");
    if regarding_ns.is_empty() {
        if ns != "default" && ns != "kube-system" {
            c.push(Cause::invalid_value(
                "regarding.namespace",
                &Value::String(regarding_ns.into()),
                "does not match event.namespace",
            ));
        }
    } else if regarding_ns != ns {
        c.push(Cause::invalid_value(
            "regarding.namespace",
            &Value::String(regarding_ns.into()),
            "does not match event.namespace",
        ));
    }
    let rc = new["reportingController"].as_str().unwrap_or("");
    if rc.is_empty() {
        c.push(Cause::required("reportingController", ""));
    } else {
        for m in qualified_name_errors(rc) {
            c.push(Cause::invalid_value(
                "reportingController",
                &new["reportingController"],
                &m,
            ));
        }
    }
    let limits: [(&str, usize, bool); 4] = [
        ("reportingInstance", REPORTING_INSTANCE_MAX, true),
        ("action", ACTION_MAX, true),
        ("reason", REASON_MAX, true),
        ("note", NOTE_MAX, false),
    ];
    for (field, max, required) in limits {
        let len = str_len(&new[field]);
        if required && len == 0 {
            c.push(Cause::required(field, ""));
        }
        if len > max {
            c.push(Cause::invalid(
                field,
                &format!("\"\": can have at most {max} characters"),
            ));
        }
    }
    let series_changed = old.is_none_or(|o| normalize(&o["series"]) != normalize(&new["series"]));
    if series_changed && !new["series"].is_null() {
        let count = new["series"]["count"].as_i64().unwrap_or(0);
        if count < 2 {
            c.push(Cause::invalid("series.count", "\"\": should be at least 2"));
        }
        if parse_time(&new["series"]["lastObservedTime"]).is_none() {
            c.push(Cause::required("series.lastObservedTime", ""));
        }
    }
    match old {
        None => {
            if parse_time(&new["eventTime"]).is_none() {
                c.push(Cause::required("eventTime", ""));
            }
            let ty = new["type"].as_str().unwrap_or("");
            if ty != "Normal" && ty != "Warning" {
                c.push(Cause::invalid(
                    "type",
                    &format!("\"\": has invalid value: {ty}"),
                ));
            }
            for f in [
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
                "deprecatedSource",
            ] {
                if !is_zero(&new[f]) {
                    c.push(Cause::invalid(f, "\"\": needs to be unset"));
                }
            }
        }
        Some(o) => {
            for f in [
                "regarding",
                "related",
                "reason",
                "note",
                "action",
                "type",
                "reportingController",
                "reportingInstance",
                "deprecatedSource",
                "deprecatedCount",
            ] {
                if normalize(&new[f]) != normalize(&o[f]) {
                    c.push(Cause::invalid_value(f, &new[f], "field is immutable"));
                }
            }
            for f in [
                "eventTime",
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
            ] {
                if !same_time(&new[f], &o[f]) {
                    c.push(Cause::invalid_value(f, &new[f], "field is immutable"));
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.17f0a", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "type": "Normal",
            "reportingController": "ferrolb.io/controller",
            "reportingInstance": "controller-0",
            "action": "Allocate",
            "reason": "IPAllocated",
            "note": "assigned 10.0.0.1",
            "regarding": {"kind": "Service", "namespace": "default", "name": "web", "apiVersion": "v1", "uid": "u"}
        })
    }

    fn fields(c: Vec<Cause>) -> Vec<String> {
        c.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn create_table() {
        assert!(validate_event(&event(), None).is_empty());
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (json!({"eventTime": null}), vec!["eventTime"]),
            (json!({"type": "Info"}), vec!["type"]),
            (
                json!({"reportingController": "Ferro LB"}),
                vec!["reportingController"],
            ),
            (
                json!({"reportingController": null}),
                vec!["reportingController"],
            ),
            (json!({"reportingInstance": ""}), vec!["reportingInstance"]),
            (
                json!({"reportingInstance": "x".repeat(129)}),
                vec!["reportingInstance"],
            ),
            (json!({"action": null}), vec!["action"]),
            (json!({"reason": "r".repeat(129)}), vec!["reason"]),
            (json!({"note": "n".repeat(1025)}), vec!["note"]),
            (json!({"note": "n".repeat(1024)}), vec![]),
            (json!({"deprecatedCount": 3}), vec!["deprecatedCount"]),
            (
                json!({"deprecatedSource": {"component": "x"}}),
                vec!["deprecatedSource"],
            ),
            (
                json!({"series": {"count": 1, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
                vec!["series.count"],
            ),
            (
                json!({"series": {"count": 2}}),
                vec!["series.lastObservedTime"],
            ),
            (
                json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}}),
                vec![],
            ),
            (
                json!({"metadata": {"name": "x", "namespace": "other"}}),
                vec!["regarding.namespace"],
            ),
        ];
        for (patch, want) in rows {
            let mut e = event();
            crate::patch::merge_patch(&mut e, &patch);
            assert_eq!(fields(validate_event(&e, None)), want, "{patch}");
        }
    }

    #[test]
    fn cluster_scoped_regarding_needs_default_or_kube_system() {
        let mut e = event();
        e["regarding"] = json!({"kind": "Node", "name": "n1", "apiVersion": "v1"});
        assert!(validate_event(&e, None).is_empty());
        e["metadata"]["namespace"] = json!("kube-system");
        assert!(validate_event(&e, None).is_empty());
        e["metadata"]["namespace"] = json!("ferrolb");
        assert_eq!(fields(validate_event(&e, None)), ["regarding.namespace"]);
    }

    #[test]
    fn update_immutability_is_semantic() {
        let old = event();
        // The Recorder's series patch is allowed.
        let mut new = old.clone();
        new["series"] = json!({"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"});
        assert!(validate_event(&new, Some(&old)).is_empty());
        // Same instant in another spelling, and empty vs absent fields, are equal.
        let mut new = old.clone();
        new["eventTime"] = json!("2026-01-01T01:00:00+01:00");
        new["regarding"]["resourceVersion"] = json!("");
        new["related"] = Value::Null;
        assert!(
            validate_event(&new, Some(&old)).is_empty(),
            "{:?}",
            validate_event(&new, Some(&old))
        );
        for (f, v) in [
            ("note", json!("other")),
            ("reason", json!("Other")),
            ("action", json!("Other")),
            ("type", json!("Warning")),
            ("reportingController", json!("ferrolb.io/other")),
            ("reportingInstance", json!("other")),
            ("eventTime", json!("2026-01-01T00:00:00.000001Z")),
            ("related", json!({"kind": "Node", "name": "n"})),
        ] {
            let mut new = old.clone();
            new[f] = v;
            assert_eq!(fields(validate_event(&new, Some(&old))), [f], "{f}");
        }
        let mut new = old.clone();
        new["regarding"]["name"] = json!("other");
        assert_eq!(fields(validate_event(&new, Some(&old))), ["regarding"]);
    }
}
