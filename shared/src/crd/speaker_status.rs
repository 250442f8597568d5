//! `SpeakerStatus`: one object per node, written by that node's speaker, showing its BGP
//! sessions. One object per node (not per Service per node) keeps the object count flat
//! however many Services there are; per-Service answers come from `ferrolb explain`.

// Clippy mistakes repeated `type_ = ...` inside separate `printcolumn(...)` entries of the
// `#[kube]` attribute for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::conditions_schema;

/// Condition type on a [`SpeakerStatus`]: `True` when every BGP session of the node is
/// Established (or the node has none), `False` naming the sessions that are not.
pub const CONDITION_SESSIONS_ESTABLISHED: &str = "SessionsEstablished";
/// Reason for `SessionsEstablished=True` when every session is up.
pub const REASON_ALL_ESTABLISHED: &str = "AllEstablished";
/// Reason for `SessionsEstablished=True` when no `BGPPeer` selects the node.
pub const REASON_NO_SESSIONS: &str = "NoSessions";
/// Reason for `SessionsEstablished=False`.
pub const REASON_SESSIONS_DOWN: &str = "SessionsDown";

/// Identifies the node a `SpeakerStatus` reports on. The object is named after the node too;
/// the field is there for printer columns and selectors.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "SpeakerStatus",
    plural = "speakerstatuses",
    singular = "speakerstatus",
    namespaced,
    status = "SpeakerStatusStatus",
    derive = "PartialEq",
    shortname = "spst",
    category = "ferrolb",
    doc = "The BGP sessions of one node as its ferrolb speaker sees them: state, uptime, prefixes and UPDATEs sent, last error. Written by the speaker on change; one object per node, named after the node.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(
        name = "Established",
        type_ = "integer",
        json_path = ".status.sessionsEstablished"
    ),
    printcolumn(name = "Sessions", type_ = "integer", json_path = ".status.sessions"),
    printcolumn(
        name = "Prefixes",
        type_ = "integer",
        json_path = ".status.prefixesAdvertised"
    ),
    printcolumn(
        name = "Service IPs",
        type_ = "integer",
        json_path = ".status.announcedServiceIPs"
    ),
    printcolumn(name = "Updated", type_ = "date", json_path = ".status.lastUpdateTime")
)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatusSpec {
    /// Name of the Node whose speaker writes this object.
    pub node_name: String,
}

/// What one node's speaker reports about its BGP sessions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatusStatus {
    /// Sessions of this node that are Established.
    #[serde(default)]
    pub sessions_established: i32,
    /// Sessions this node holds: one per `BGPPeer` whose `nodeSelectors` select it.
    #[serde(default)]
    pub sessions: i32,
    /// Prefixes currently advertised, summed over the sessions.
    #[serde(default)]
    pub prefixes_advertised: i64,
    /// Service addresses this node announces to at least one peer.
    #[serde(default, rename = "announcedServiceIPs")]
    pub announced_service_ips: i64,
    /// One entry per session, by peer name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "peers_schema")]
    pub peers: Vec<PeerSessionStatus>,
    /// When the speaker last wrote this status. The speaker writes only when something
    /// else in the status changed, so an old time on a running node means nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// `SessionsEstablished` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The BGP session of this node with one `BGPPeer`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerSessionStatus {
    /// Name of the `BGPPeer`.
    pub name: String,
    /// The peer's IP address.
    pub address: String,
    /// The peer's TCP port.
    pub port: i32,
    /// BGP finite state machine state (RFC 4271 §8).
    pub state: SessionState,
    /// When the current session became Established; absent while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_since: Option<Time>,
    /// Prefixes currently advertised to the peer.
    #[serde(default)]
    pub prefixes_advertised: i64,
    /// UPDATE messages sent to the peer in the current session.
    #[serde(default)]
    pub updates_sent: i64,
    /// When the last UPDATE of the current session was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_sent_time: Option<Time>,
    /// The last error of this peer's sessions: a NOTIFICATION sent or received (code,
    /// subcode and their names), a failed connection attempt, a closed transport, or why
    /// the session cannot be configured (e.g. its password Secret is unreadable). Kept
    /// after the session recovers, so a flap can still be diagnosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// BGP session state (RFC 4271 §8.2.2).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SessionState {
    /// Not started, or waiting before the next connection attempt.
    #[default]
    Idle,
    /// Connecting to the peer.
    Connect,
    /// Waiting for the peer to connect, or to retry.
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Up: routes flow.
    Established,
}

impl SessionState {
    /// The state's name as shown in the status, e.g. `OpenSent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `peers` list is a map keyed by peer name, so each entry merges separately.
fn peers_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<PeerSessionStatus>();
    json_schema!({
        "description": "One entry per session, by peer name.",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_with_camel_case_names() {
        let status = SpeakerStatusStatus {
            sessions_established: 1,
            sessions: 2,
            prefixes_advertised: 3,
            announced_service_ips: 3,
            peers: vec![PeerSessionStatus {
                name: "tor-a".into(),
                address: "192.0.2.1".into(),
                port: 179,
                state: SessionState::OpenSent,
                established_since: None,
                prefixes_advertised: 0,
                updates_sent: 0,
                last_update_sent_time: None,
                last_error: Some("connect: connection refused".into()),
            }],
            last_update_time: None,
            conditions: Vec::new(),
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["announcedServiceIPs"], 3);
        assert_eq!(v["sessionsEstablished"], 1);
        assert_eq!(v["peers"][0]["state"], "OpenSent");
        assert_eq!(v["peers"][0]["lastError"], "connect: connection refused");
        assert!(v["peers"][0].get("establishedSince").is_none());
        let back: SpeakerStatusStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, status);
        assert_eq!(SessionState::OpenConfirm.to_string(), "OpenConfirm");
    }
}
