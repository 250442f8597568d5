//! Pieces shared by the three CRDs: conditions, Secret references, schema helpers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Condition type set on every ferrolb object: `True` when the spec passed validation and is
/// in use, `False` (with the problems in `message`) when it was rejected.
pub const CONDITION_VALID: &str = "Valid";
/// Condition type set on an [`IPAddressPool`](super::IPAddressPool) that overlaps another pool.
/// Overlapping pools are rejected as a whole: never hand out one address twice.
pub const CONDITION_OVERLAPS: &str = "Overlaps";

/// Reason for `Valid=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason for `Valid=False`: the spec itself is wrong (see the message for field paths).
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Reason for `Overlaps=True`: the pool shares addresses with another pool.
pub const REASON_OVERLAPS_POOL: &str = "OverlapsPool";
/// Reason for `Overlaps=False`.
pub const REASON_NO_OVERLAP: &str = "NoOverlap";

/// The `status.conditions` list of a ferrolb object, one entry per condition type.
pub type Conditions = Vec<Condition>;

/// Schema for a `conditions` list: Kubernetes `Condition` objects merged by `type`
/// (`x-kubernetes-list-type: map`), so server-side apply from several writers keeps each
/// condition separate.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "description": "Current state of the object, one entry per condition type.",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// Reference to a key of a Kubernetes Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret; defaults to the namespace of the referring object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key inside the Secret's data holding the value.
    #[serde(default = "default_secret_key")]
    pub key: String,
}

fn default_secret_key() -> String {
    "password".to_owned()
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Puts `new` into `conditions`, replacing the entry of the same type.
///
/// `lastTransitionTime` is kept from the old entry when the status did not change, so that
/// it records transitions rather than resyncs. Returns whether anything changed, so a
/// reconciler writes status (and emits events) only on real changes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            if *old == new {
                return false;
            }
            *old = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cond(status: &str, reason: &str, at_secs: i64, generation: i64) -> Condition {
        Condition {
            type_: CONDITION_VALID.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(at_secs).unwrap()),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        assert!(set_condition(
            &mut conditions,
            cond("True", REASON_ACCEPTED, 100, 1)
        ));
        // Same content later: nothing to write.
        assert!(!set_condition(
            &mut conditions,
            cond("True", REASON_ACCEPTED, 200, 1)
        ));
        assert_eq!(
            conditions[0].last_transition_time,
            cond("True", "", 100, 1).last_transition_time
        );
        // New generation, same status: written, transition time kept.
        assert!(set_condition(
            &mut conditions,
            cond("True", REASON_ACCEPTED, 300, 2)
        ));
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(
            conditions[0].last_transition_time,
            cond("True", "", 100, 1).last_transition_time
        );
        // Flip: transition time moves.
        assert!(set_condition(
            &mut conditions,
            cond("False", REASON_INVALID_SPEC, 400, 3)
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].last_transition_time,
            cond("False", "", 400, 3).last_transition_time
        );
        let overlaps = Condition {
            type_: CONDITION_OVERLAPS.to_owned(),
            ..cond("False", REASON_NO_OVERLAP, 400, 3)
        };
        assert!(set_condition(&mut conditions, overlaps));
        assert_eq!(conditions.len(), 2);
        assert_eq!(
            find_condition(&conditions, CONDITION_OVERLAPS)
                .unwrap()
                .reason,
            REASON_NO_OVERLAP
        );
        assert!(find_condition(&conditions, "Other").is_none());
    }
}
