//! NOTIFICATION messages (RFC 4271 §4.5) and the error codes they carry.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

/// Error codes (RFC 4271 §4.5, RFC 7313 for code 7).
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    /// Connection Not Synchronized: the marker is not all ones.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length; data is the offending length field.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type; data is the offending type octet.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open {
    /// Unspecific: a recognised optional parameter is malformed.
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number; data is the highest version we support.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492); data lists the capabilities.
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute; data is the missing type code.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm {
    /// Unspecified error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 §4).
pub mod cease {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown (data may hold a shutdown communication, RFC 8203).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
}

/// A NOTIFICATION message: sent before closing the connection on any error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (see [`code`]).
    pub code: u8,
    /// Error subcode, meaning depends on `code`.
    pub subcode: u8,
    /// Diagnostic data, meaning depends on code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        Self {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// Hold Timer Expired (4/0), RFC 4271 §6.5.
    pub fn hold_timer_expired() -> Self {
        Self::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// Finite State Machine Error (5/x), RFC 6608.
    pub fn fsm_error(subcode: u8) -> Self {
        Self::new(code::FSM, subcode, Vec::new())
    }

    /// Cease (6/x) without data, RFC 4486.
    pub fn cease(subcode: u8) -> Self {
        Self::new(code::CEASE, subcode, Vec::new())
    }

    /// Administrative Shutdown (6/2) carrying a shutdown communication
    /// (RFC 8203: one length octet then UTF-8, at most 255 octets; longer text
    /// is cut at a character boundary so the data stays valid UTF-8).
    pub fn administrative_shutdown(reason: &str) -> Self {
        let mut end = reason.len().min(255);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let text = &reason.as_bytes()[..end];
        let mut data = Vec::with_capacity(text.len() + 1);
        if !text.is_empty() {
            data.push(text.len() as u8);
            data.extend_from_slice(text);
        }
        Self::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// The shutdown communication of a 6/2 or 6/4 NOTIFICATION (RFC 8203), if
    /// present and well formed.
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(*len))?;
        std::str::from_utf8(text).ok()
    }

    /// A stable, human readable name of the code/subcode pair, for logs and
    /// metrics labels.
    pub fn name(&self) -> &'static str {
        match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "header/connection-not-synchronized"
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => "header/bad-message-length",
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => "header/bad-message-type",
            (code::MESSAGE_HEADER, _) => "header",
            (code::OPEN, open::UNSUPPORTED_VERSION) => "open/unsupported-version",
            (code::OPEN, open::BAD_PEER_AS) => "open/bad-peer-as",
            (code::OPEN, open::BAD_BGP_IDENTIFIER) => "open/bad-bgp-identifier",
            (code::OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "open/unsupported-optional-parameter"
            }
            (code::OPEN, open::UNACCEPTABLE_HOLD_TIME) => "open/unacceptable-hold-time",
            (code::OPEN, open::UNSUPPORTED_CAPABILITY) => "open/unsupported-capability",
            (code::OPEN, _) => "open",
            (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST) => "update/malformed-attribute-list",
            (code::UPDATE, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "update/unrecognized-well-known-attribute"
            }
            (code::UPDATE, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "update/missing-well-known-attribute"
            }
            (code::UPDATE, update::ATTRIBUTE_FLAGS_ERROR) => "update/attribute-flags-error",
            (code::UPDATE, update::ATTRIBUTE_LENGTH_ERROR) => "update/attribute-length-error",
            (code::UPDATE, update::INVALID_ORIGIN) => "update/invalid-origin",
            (code::UPDATE, update::INVALID_NEXT_HOP) => "update/invalid-next-hop",
            (code::UPDATE, update::OPTIONAL_ATTRIBUTE_ERROR) => "update/optional-attribute-error",
            (code::UPDATE, update::INVALID_NETWORK_FIELD) => "update/invalid-network-field",
            (code::UPDATE, update::MALFORMED_AS_PATH) => "update/malformed-as-path",
            (code::UPDATE, _) => "update",
            (code::HOLD_TIMER_EXPIRED, _) => "hold-timer-expired",
            (code::FSM, _) => "fsm-error",
            (code::CEASE, cease::MAX_PREFIXES) => "cease/max-prefixes",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "cease/administrative-shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "cease/peer-deconfigured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "cease/administrative-reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "cease/connection-rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "cease/other-configuration-change",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "cease/connection-collision-resolution"
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => "cease/out-of-resources",
            (code::CEASE, _) => "cease",
            (code::ROUTE_REFRESH, _) => "route-refresh",
            _ => "unknown",
        }
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }

    /// Decodes the body (after the header). The header check guarantees at
    /// least two octets; anything shorter is still handled without panicking.
    pub(crate) fn decode_body(body: &[u8]) -> Option<Self> {
        match body {
            [code, subcode, data @ ..] => Some(Self::new(*code, *subcode, data.to_vec())),
            _ => None,
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.code, self.subcode, self.name())?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_and_is_truncated_on_char_boundary() {
        let n = Notification::administrative_shutdown("maintenance");
        assert_eq!(n.data[0], 11);
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        let long = "é".repeat(200); // 400 octets
        let n = Notification::administrative_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
        assert_eq!(
            n.to_string().split(' ').nth(1),
            Some("(cease/administrative-shutdown):")
        );
    }

    #[test]
    fn empty_shutdown_reason_sends_no_data() {
        assert!(Notification::administrative_shutdown("").data.is_empty());
    }
}
