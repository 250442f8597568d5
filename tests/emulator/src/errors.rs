//! Kubernetes `Status` errors (spec E4).
//!
//! Kept private to the emulator so the HTTP layer can build every error the
//! apiserver would send, with the exact messages kube-rs and kubectl key on.

use serde_json::{Value, json};

/// One field-level cause of an error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub(crate) fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
    /// `FieldValueInvalid` with the apiserver's `Invalid value: X: msg` wording.
    pub(crate) fn invalid(field: &str, value: &Value, msg: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        Self::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {shown}: {msg}"),
        )
    }
    pub(crate) fn required(field: &str) -> Self {
        Self::new("FieldValueRequired", field, "Required value")
    }
    pub(crate) fn forbidden(field: &str, msg: &str) -> Self {
        Self::new("FieldValueForbidden", field, format!("Forbidden: {msg}"))
    }
    pub(crate) fn not_supported(field: &str, value: &Value, allowed: &[&str]) -> Self {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Self::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        )
    }
}

/// A failed API request rendered as a `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

/// `plural[.group]`, the resource spelling used in messages.
pub(crate) fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    fn with_details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(plural, group)),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }
    pub(crate) fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(plural, group)),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }
    pub(crate) fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict_msg(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub(crate) fn conflict_msg(group: &str, plural: &str, name: &str, msg: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {msg}",
                qualified(plural, group)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }
    pub(crate) fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let what = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let text: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if text.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", text[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", text.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        Self::new(422, "Invalid", message)
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }
    pub(crate) fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }
    pub(crate) fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", msg)
    }
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }
    pub(crate) fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "the server was unable to respond with a content type that the client supports",
        )
    }
    pub(crate) fn expired(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg)
    }
    pub(crate) fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
        )
    }
    pub(crate) fn too_large(msg: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", msg)
    }
    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Self::new(500, "InternalError", msg)
    }
    pub(crate) fn too_large_rv() -> Self {
        let mut e = Self::new(504, "Timeout", "Too large resource version");
        e.details = Some(
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        );
        e
    }
    /// An error with an arbitrary code; the reason follows the apiserver's
    /// mapping unless one is given.
    pub(crate) fn custom(
        code: u16,
        reason: Option<&str>,
        message: Option<&str>,
        retry_after: Option<u64>,
    ) -> Self {
        let default_reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        let reason = reason.unwrap_or(default_reason);
        let message = message
            .map(str::to_owned)
            .unwrap_or_else(|| format!("injected fault: {reason}"));
        let mut e = Self::new(code, reason, message);
        let mut details = json!({});
        if let Some(s) = retry_after {
            details["retryAfterSeconds"] = json!(s);
            e.retry_after = Some(s);
        }
        e.details = Some(details);
        e
    }
    /// The `Status` object for this error.
    pub(crate) fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        v["details"] = self.details.clone().unwrap_or_else(|| json!({}));
        v
    }
}

/// The `Status` a successful delete answers with.
pub(crate) fn success_status(group: &str, plural: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": plural, "uid": uid}
    })
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<ferrolb_apimachinery::ApiError> for ApiError {
    fn from(e: ferrolb_apimachinery::ApiError) -> Self {
        Self {
            code: e.code,
            reason: e.reason,
            message: e.message,
            details: e.details,
            retry_after: e.retry_after_seconds,
        }
    }
}

impl From<ferrolb_apimachinery::Cause> for Cause {
    fn from(c: ferrolb_apimachinery::Cause) -> Self {
        Self {
            reason: c.reason,
            message: c.message,
            field: c.field,
        }
    }
}
