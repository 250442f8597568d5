//! Codec errors. A [`DecodeError`] always carries the NOTIFICATION that
//! RFC 4271 §6 (as revised by RFC 7606) says to send before closing.

use super::notification::Notification;

/// A received message that requires the session to be reset.
///
/// `reason` is a short stable string for logs; `notification` is what to send
/// to the peer before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {notification})")]
pub struct DecodeError {
    /// What was wrong, for humans.
    pub reason: &'static str,
    /// The NOTIFICATION to send.
    pub notification: Notification,
}

impl DecodeError {
    pub(crate) fn new(
        reason: &'static str,
        code: u8,
        subcode: u8,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            reason,
            notification: Notification::new(code, subcode, data),
        }
    }
}

/// A message we were asked to send cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would exceed the 4096-octet limit (RFC 4271 §4.1).
    #[error("message of {len} octets exceeds the {max}-octet limit")]
    MessageTooLong {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A path attribute value is longer than 65535 octets.
    #[error("path attribute {type_code} is {len} octets, more than 65535")]
    AttributeTooLong {
        /// Attribute type code.
        type_code: u8,
        /// Value length.
        len: usize,
    },
    /// A capability value is longer than 255 octets.
    #[error("capability {code} is {len} octets, more than 255")]
    CapabilityTooLong {
        /// Capability code.
        code: u8,
        /// Value length.
        len: usize,
    },
    /// The OPEN optional parameters exceed 65535 octets even in the RFC 9072 format.
    #[error("OPEN optional parameters are {len} octets, too long")]
    OptionalParametersTooLong {
        /// Encoded length.
        len: usize,
    },
    /// A prefix does not belong to the address family it is encoded in.
    #[error("prefix {prefix} does not belong to {family}")]
    PrefixFamilyMismatch {
        /// The prefix.
        prefix: ipnet::IpNet,
        /// The family of the field or attribute.
        family: super::Family,
    },
    /// An MP_REACH_NLRI next hop does not suit its address family.
    #[error("next hop {next_hop:?} does not suit {family}")]
    NextHopFamilyMismatch {
        /// The next hop.
        next_hop: super::NextHop,
        /// The family.
        family: super::Family,
    },
    /// Prefixes of a family are to be announced but no next hop was given.
    #[error("no next hop for {0} announcements")]
    MissingNextHop(super::Family),
    /// The shared attributes leave no room for even one prefix.
    #[error("path attributes are {len} octets: no room for NLRI in a {max}-octet message")]
    AttributesTooLong {
        /// Encoded attributes length.
        len: usize,
        /// Message size limit.
        max: usize,
    },
    /// The builder manages this attribute itself (NEXT_HOP, MP_REACH_NLRI,
    /// MP_UNREACH_NLRI); pass next hops through the builder instead.
    #[error("attribute type {0} is managed by the UPDATE builder")]
    ManagedAttribute(u8),
}
