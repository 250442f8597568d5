//! API errors and their Kubernetes `Status` JSON form (spec E4).
//!
//! Message formats follow upstream apimachinery `errors` so that clients which
//! print or match on messages see what a real apiserver would send.

use serde_json::{Map, Value, json};

/// Reason of a field-level validation failure, as used in `details.causes[].reason`.
pub mod cause_reason {
    /// The value is not valid.
    pub const INVALID: &str = "FieldValueInvalid";
    /// A required value is missing.
    pub const REQUIRED: &str = "FieldValueRequired";
    /// The field may not be set (in this context).
    pub const FORBIDDEN: &str = "FieldValueForbidden";
    /// The value is not one of the supported values.
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    /// The value duplicates another one.
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    /// The value is too long.
    pub const TOO_LONG: &str = "FieldValueTooLong";
    /// Too many values.
    pub const TOO_MANY: &str = "FieldValueTooMany";
    /// The value could not be checked because of an internal problem.
    pub const INTERNAL: &str = "InternalError";
    /// A server-side apply conflict with another field manager.
    pub const FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";
}

/// One entry of `details.causes[]`: a field-level reason for an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason such as `FieldValueInvalid`.
    pub reason: String,
    /// The error body, e.g. `Invalid value: "x": must be ...`.
    pub message: String,
    /// The field path such as `metadata.labels` or `spec.ports[0].port`.
    pub field: String,
}

impl Cause {
    /// A cause with the given reason, message and field, taken verbatim.
    pub fn new(reason: &str, field: &str, message: &str) -> Self {
        Self {
            reason: reason.to_string(),
            message: message.to_string(),
            field: field.to_string(),
        }
    }

    /// `FieldValueInvalid` with message `Invalid value: <msg>`.
    ///
    /// Put the offending value first in `msg` when it should be shown, e.g.
    /// `0: must be specified for an update`; see [`Cause::invalid_value`] for
    /// the upstream value rendering.
    pub fn invalid(field: &str, msg: &str) -> Self {
        Self::new(
            cause_reason::INVALID,
            field,
            &format!("Invalid value: {msg}"),
        )
    }

    /// `FieldValueInvalid` with message `Invalid value: <value>: <detail>`, the value
    /// rendered like upstream (strings quoted, numbers bare, objects as `"object"`).
    pub fn invalid_value(field: &str, value: &Value, detail: &str) -> Self {
        let shown = render_value(value);
        if detail.is_empty() {
            Self::invalid(field, &shown)
        } else {
            Self::invalid(field, &format!("{shown}: {detail}"))
        }
    }

    /// `FieldValueRequired` with message `Required value` (plus `: <msg>` if any).
    pub fn required(field: &str, msg: &str) -> Self {
        Self::new(
            cause_reason::REQUIRED,
            field,
            &with_detail("Required value", msg),
        )
    }

    /// `FieldValueForbidden` with message `Forbidden: <msg>`.
    pub fn forbidden(field: &str, msg: &str) -> Self {
        Self::new(
            cause_reason::FORBIDDEN,
            field,
            &with_detail("Forbidden", msg),
        )
    }

    /// `FieldValueNotSupported`: `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let msg = format!(
            "Unsupported value: {}: supported values: {}",
            render_value(value),
            list.join(", ")
        );
        Self::new(cause_reason::NOT_SUPPORTED, field, &msg)
    }

    /// `FieldValueDuplicate`: `Duplicate value: <value>`.
    pub fn duplicate(field: &str, value: &Value) -> Self {
        let msg = format!("Duplicate value: {}", render_value(value));
        Self::new(cause_reason::DUPLICATE, field, &msg)
    }

    /// `FieldValueTooLong`: `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: &str, max: usize) -> Self {
        let msg = format!("Too long: may not be more than {max} bytes");
        Self::new(cause_reason::TOO_LONG, field, &msg)
    }

    /// `FieldValueTooMany`: `Too many: <n>: must have at most <max> items`.
    pub fn too_many(field: &str, n: usize, max: usize) -> Self {
        let msg = format!("Too many: {n}: must have at most {max} items");
        Self::new(cause_reason::TOO_MANY, field, &msg)
    }

    /// `InternalError` cause: `Internal error: <msg>`.
    pub fn internal(field: &str, msg: &str) -> Self {
        Self::new(
            cause_reason::INTERNAL,
            field,
            &with_detail("Internal error", msg),
        )
    }

    /// Upstream's `field: body` rendering used inside aggregate messages.
    pub fn display(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }

    /// The `details.causes[]` JSON entry.
    pub fn to_json(&self) -> Value {
        json!({ "reason": self.reason, "message": self.message, "field": self.field })
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// Renders a value for an error message like upstream's `field.Invalid` does.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// An API error as the apiserver would report it: HTTP code, reason, message, details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable `reason` such as `NotFound`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `details` object (name, group, kind, causes, ...), if any.
    pub details: Option<Value>,
    /// Seconds a client should wait before retrying; also sent as `Retry-After`.
    pub retry_after_seconds: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `resource` or `resource.group`, upstream's `GroupResource.String()`.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn name_details(resource_or_kind: &str, group: &str, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), Value::String(name.into()));
    }
    if !group.is_empty() {
        d.insert("group".into(), Value::String(group.into()));
    }
    if !resource_or_kind.is_empty() {
        d.insert("kind".into(), Value::String(resource_or_kind.into()));
    }
    Value::Object(d)
}

impl ApiError {
    /// A free-form error; used for fault injection.
    pub fn custom(code: u16, reason: &str, msg: &str) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: msg.to_string(),
            details: None,
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 NotFound: `<resource>[.<group>] "<name>" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        let msg = format!("{} {name:?} not found", qualified(resource, group));
        Self::custom(404, "NotFound", &msg).with_details(name_details(resource, group, name))
    }

    /// 404 for an unknown path or kind: "the server could not find the requested resource".
    pub fn not_found_path() -> Self {
        Self::custom(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 AlreadyExists: `<resource>[.<group>] "<name>" already exists`.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        let msg = format!("{} {name:?} already exists", qualified(resource, group));
        Self::custom(409, "AlreadyExists", &msg).with_details(name_details(resource, group, name))
    }

    /// 409 Conflict with the standard "object has been modified" message.
    pub fn conflict(resource: &str, group: &str, name: &str) -> Self {
        Self::conflict_msg(
            resource,
            group,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <resource>[.<group>] "<name>": <msg>`.
    pub fn conflict_msg(resource: &str, group: &str, name: &str, msg: &str) -> Self {
        let full = format!(
            "Operation cannot be fulfilled on {} {name:?}: {msg}",
            qualified(resource, group)
        );
        Self::custom(409, "Conflict", &full).with_details(name_details(resource, group, name))
    }

    /// 409 Conflict for a server-side apply that touches fields other managers own.
    ///
    /// `conflicts` holds `(manager, field path like ".spec.x")` pairs.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let n = conflicts.len();
        let plural = if n == 1 { "conflict" } else { "conflicts" };
        let mut by_mgr: Vec<(String, Vec<String>)> = Vec::new();
        for (m, f) in conflicts {
            match by_mgr.iter_mut().find(|(mm, _)| mm == m) {
                Some((_, fs)) => fs.push(f.clone()),
                None => by_mgr.push((m.clone(), vec![f.clone()])),
            }
        }
        let mut msg = format!("Apply failed with {n} {plural}:");
        for (m, fs) in &by_mgr {
            if fs.len() == 1 {
                msg.push_str(&format!(" conflict with {m:?}: {}", fs[0]));
            } else {
                msg.push_str(&format!(" conflicts with {m:?}:"));
                for f in fs {
                    msg.push_str(&format!("\n- {f}"));
                }
            }
        }
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({
                    "reason": cause_reason::FIELD_MANAGER_CONFLICT,
                    "message": format!("conflict with {m:?}"),
                    "field": f,
                })
            })
            .collect();
        Self::custom(409, "Conflict", &msg).with_details(json!({ "causes": causes }))
    }

    /// 422 Invalid: `<Kind>[.<group>] "<name>" is invalid: <field>: <msg>` (several
    /// causes are bracketed and comma-separated, as upstream aggregates them).
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qk = qualified(kind, group);
        let mut seen: Vec<String> = Vec::new();
        for c in &causes {
            let d = c.display();
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        let agg = match seen.len() {
            0 => String::new(),
            1 => seen[0].clone(),
            _ => format!("[{}]", seen.join(", ")),
        };
        let msg = if agg.is_empty() {
            format!("{qk} {name:?} is invalid")
        } else {
            format!("{qk} {name:?} is invalid: {agg}")
        };
        let mut details = name_details(kind, group, name);
        if let Value::Object(m) = &mut details {
            m.insert(
                "causes".into(),
                Value::Array(causes.iter().map(Cause::to_json).collect()),
            );
        }
        Self::custom(422, "Invalid", &msg).with_details(details)
    }

    /// 400 BadRequest.
    pub fn bad_request(msg: &str) -> Self {
        Self::custom(400, "BadRequest", msg)
    }

    /// 403 Forbidden with a bare message.
    pub fn forbidden(msg: &str) -> Self {
        Self::custom(403, "Forbidden", msg)
    }

    /// 403 Forbidden: `<resource>[.<group>] "<name>" is forbidden: <msg>`.
    pub fn forbidden_on(resource: &str, group: &str, name: &str, msg: &str) -> Self {
        let q = qualified(resource, group);
        let full = if name.is_empty() {
            format!("{q} is forbidden: {msg}")
        } else {
            format!("{q} {name:?} is forbidden: {msg}")
        };
        Self::custom(403, "Forbidden", &full).with_details(name_details(resource, group, name))
    }

    /// 403 for a create into a terminating namespace, worded as upstream admission does.
    pub fn namespace_terminating(resource: &str, group: &str, name: &str, ns: &str) -> Self {
        let msg = format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        );
        let mut e = Self::forbidden_on(resource, group, name, &msg);
        if let Some(Value::Object(d)) = &mut e.details {
            d.insert(
                "causes".into(),
                json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]),
            );
        }
        e
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(msg: &str) -> Self {
        Self::custom(405, "MethodNotAllowed", msg)
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(msg: &str) -> Self {
        Self::custom(406, "NotAcceptable", msg)
    }

    /// 410 with reason `Expired` (too old resourceVersion, expired continue token).
    pub fn expired(msg: &str) -> Self {
        Self::custom(410, "Expired", msg)
    }

    /// 410 with reason `Gone`.
    pub fn gone(msg: &str) -> Self {
        Self::custom(410, "Gone", msg)
    }

    /// 413 RequestEntityTooLarge.
    pub fn request_entity_too_large(msg: &str) -> Self {
        Self::custom(413, "RequestEntityTooLarge", msg)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(msg: &str) -> Self {
        Self::custom(415, "UnsupportedMediaType", msg)
    }

    /// 429 TooManyRequests with `details.retryAfterSeconds`.
    pub fn too_many_requests(msg: &str, retry_after_seconds: u64) -> Self {
        let mut e = Self::custom(429, "TooManyRequests", msg).with_details(json!({}));
        e.retry_after_seconds = Some(retry_after_seconds);
        e
    }

    /// 500 InternalError: `Internal error occurred: <msg>`.
    pub fn internal(msg: &str) -> Self {
        Self::custom(
            500,
            "InternalError",
            &format!("Internal error occurred: {msg}"),
        )
        .with_details(json!({ "causes": [{ "message": msg }] }))
    }

    /// 503 ServiceUnavailable.
    pub fn service_unavailable(msg: &str) -> Self {
        Self::custom(503, "ServiceUnavailable", msg)
    }

    /// 504 Timeout, optionally with `details.retryAfterSeconds`.
    pub fn timeout(msg: &str, retry_after: Option<u64>) -> Self {
        let mut e = Self::custom(504, "Timeout", msg).with_details(json!({}));
        e.retry_after_seconds = retry_after;
        e
    }

    /// 504 Timeout for a list at a resourceVersion the server has not reached (E21).
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        let mut e = Self::timeout(
            &format!("Too large resource version: {requested}, current: {current}"),
            Some(1),
        );
        e.details = Some(json!({
            "causes": [{
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }]
        }));
        e
    }

    /// 422 Invalid on ListOptions/PatchOptions/DeleteOptions (kind `ListOptions` etc.,
    /// group `meta.k8s.io`), as upstream reports parameter errors.
    pub fn invalid_options(kind: &str, causes: Vec<Cause>) -> Self {
        Self::invalid(kind, "meta.k8s.io", "", causes)
    }

    /// The full `Status` object for the response body.
    pub fn to_status(&self) -> Value {
        let mut details = match &self.details {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        let mut st = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // E4 asks for `details` on every error Status, even when empty.
        if let Value::Object(m) = &mut st {
            m.insert("details".into(), Value::Object(details));
        }
        st
    }
}

/// A `status: "Success"` Status, as answered by deletes of most kinds.
pub fn success_status(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rows() {
        struct Row {
            err: ApiError,
            code: u64,
            reason: &'static str,
            message: &'static str,
        }
        let rows = [
            Row {
                err: ApiError::not_found("services", "", "x"),
                code: 404,
                reason: "NotFound",
                message: "services \"x\" not found",
            },
            Row {
                err: ApiError::not_found("ipaddresspools", "ferrolb.io", "p"),
                code: 404,
                reason: "NotFound",
                message: "ipaddresspools.ferrolb.io \"p\" not found",
            },
            Row {
                err: ApiError::already_exists("leases", "coordination.k8s.io", "l"),
                code: 409,
                reason: "AlreadyExists",
                message: "leases.coordination.k8s.io \"l\" already exists",
            },
            Row {
                err: ApiError::conflict("services", "", "s"),
                code: 409,
                reason: "Conflict",
                message: "Operation cannot be fulfilled on services \"s\": the object has been modified; please apply your changes to the latest version and try again",
            },
            Row {
                err: ApiError::conflict_msg("services", "", "s", "Precondition failed: UID"),
                code: 409,
                reason: "Conflict",
                message: "Operation cannot be fulfilled on services \"s\": Precondition failed: UID",
            },
            Row {
                err: ApiError::bad_request("bad"),
                code: 400,
                reason: "BadRequest",
                message: "bad",
            },
            Row {
                err: ApiError::forbidden("no"),
                code: 403,
                reason: "Forbidden",
                message: "no",
            },
            Row {
                err: ApiError::method_not_allowed("m"),
                code: 405,
                reason: "MethodNotAllowed",
                message: "m",
            },
            Row {
                err: ApiError::not_acceptable("a"),
                code: 406,
                reason: "NotAcceptable",
                message: "a",
            },
            Row {
                err: ApiError::expired("old"),
                code: 410,
                reason: "Expired",
                message: "old",
            },
            Row {
                err: ApiError::gone("g"),
                code: 410,
                reason: "Gone",
                message: "g",
            },
            Row {
                err: ApiError::request_entity_too_large("big"),
                code: 413,
                reason: "RequestEntityTooLarge",
                message: "big",
            },
            Row {
                err: ApiError::unsupported_media_type("smp"),
                code: 415,
                reason: "UnsupportedMediaType",
                message: "smp",
            },
            Row {
                err: ApiError::too_many_requests("slow", 3),
                code: 429,
                reason: "TooManyRequests",
                message: "slow",
            },
            Row {
                err: ApiError::internal("boom"),
                code: 500,
                reason: "InternalError",
                message: "Internal error occurred: boom",
            },
            Row {
                err: ApiError::service_unavailable("u"),
                code: 503,
                reason: "ServiceUnavailable",
                message: "u",
            },
            Row {
                err: ApiError::timeout("t", Some(1)),
                code: 504,
                reason: "Timeout",
                message: "t",
            },
            Row {
                err: ApiError::custom(418, "Teapot", "t"),
                code: 418,
                reason: "Teapot",
                message: "t",
            },
        ];
        for r in rows {
            let s = r.err.to_status();
            assert_eq!(s["kind"], "Status");
            assert_eq!(s["apiVersion"], "v1");
            assert_eq!(s["metadata"], json!({}));
            assert_eq!(s["status"], "Failure");
            assert_eq!(s["code"], r.code, "{}", r.reason);
            assert_eq!(s["reason"], r.reason);
            assert_eq!(s["message"], r.message);
            assert!(s["details"].is_object(), "{}", r.reason);
        }
    }

    #[test]
    fn not_found_details_use_plural_and_omit_core_group() {
        let s = ApiError::not_found("services", "", "x").to_status();
        assert_eq!(s["details"], json!({"name": "x", "kind": "services"}));
        let s = ApiError::already_exists("ipaddresspools", "ferrolb.io", "p").to_status();
        assert_eq!(
            s["details"],
            json!({"name": "p", "group": "ferrolb.io", "kind": "ipaddresspools"})
        );
    }

    #[test]
    fn retry_after_lands_in_details() {
        let s = ApiError::too_many_requests("slow", 7).to_status();
        assert_eq!(s["details"]["retryAfterSeconds"], 7);
        let s = ApiError::too_large_resource_version(2000, 10).to_status();
        assert_eq!(s["code"], 504);
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        assert_eq!(
            s["details"]["causes"][0]["reason"],
            "ResourceVersionTooLarge"
        );
    }

    #[test]
    fn invalid_message_and_causes() {
        let e = ApiError::invalid(
            "Service",
            "",
            "web",
            vec![Cause::invalid_value(
                "metadata.labels",
                &json!("fd00::1"),
                "a valid label must be ...",
            )],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(
            s["message"],
            "Service \"web\" is invalid: metadata.labels: Invalid value: \"fd00::1\": a valid label must be ..."
        );
        assert_eq!(s["details"]["kind"], "Service");
        assert_eq!(s["details"]["name"], "web");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.labels");

        let e = ApiError::invalid(
            "IPAddressPool",
            "ferrolb.io",
            "p",
            vec![
                Cause::required("spec.a", ""),
                Cause::forbidden("spec.b", "nope"),
            ],
        );
        assert_eq!(
            e.message,
            "IPAddressPool.ferrolb.io \"p\" is invalid: [spec.a: Required value, spec.b: Forbidden: nope]"
        );
        assert_eq!(e.details.as_ref().unwrap()["group"], "ferrolb.io");
    }

    #[test]
    fn resource_version_required_message() {
        let e = ApiError::invalid(
            "Lease",
            "coordination.k8s.io",
            "l",
            vec![Cause::invalid(
                "metadata.resourceVersion",
                "0: must be specified for an update",
            )],
        );
        assert!(e.message.ends_with(
            "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        ));
    }

    #[test]
    fn apply_conflict_message() {
        let e = ApiError::apply_conflict(&[("a".into(), ".spec.x".into())]);
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.x"
        );
        let d = e.details.unwrap();
        assert_eq!(d["causes"][0]["reason"], "FieldManagerConflict");
        assert_eq!(d["causes"][0]["field"], ".spec.x");
        let e = ApiError::apply_conflict(&[
            ("a".into(), ".spec.x".into()),
            ("a".into(), ".spec.y".into()),
        ]);
        assert!(
            e.message
                .starts_with("Apply failed with 2 conflicts: conflicts with \"a\":")
        );
    }

    #[test]
    fn success_status_shape() {
        let s = success_status(json!({"name": "x", "kind": "services", "uid": "u"}));
        assert_eq!(s["status"], "Success");
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["details"]["uid"], "u");
    }
}
