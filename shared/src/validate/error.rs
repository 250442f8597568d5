//! The error reported for one bad field, with its path.

use std::fmt;

use super::address::AddressError;
use super::bgp::{AsnError, CommunityError, DurationError, TimerError};
use super::selector::SelectorError;

/// One problem in a ferrolb object, located by its field path (`spec.addresses[2]`).
///
/// Validation returns every problem it finds, so a user fixes a manifest in one round trip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigError {
    /// Field path in the object, JSON style: `spec.communities[1]`.
    pub path: String,
    /// What is wrong there.
    #[source]
    pub problem: Problem,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, problem: impl Into<Problem>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A pool address entry is malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// An autonomous system number is not usable.
    #[error(transparent)]
    Asn(#[from] AsnError),
    /// A duration string is malformed.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// BGP timers contradict each other or the RFC.
    #[error(transparent)]
    Timer(#[from] TimerError),
    /// A community string is malformed.
    #[error(transparent)]
    Community(#[from] CommunityError),
    /// A label selector is malformed.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A required list is empty.
    #[error("must not be empty")]
    Empty,
    /// Two address entries of the same pool share addresses.
    #[error("{range} overlaps entry {other_index} ({other}) of the same pool")]
    OverlapWithinPool {
        /// The shared addresses.
        range: String,
        /// Index of the other entry in `addresses`.
        other_index: usize,
        /// The other entry as written.
        other: String,
    },
    /// A string that must be an IP address is not one.
    #[error("{value:?} is not an IP address")]
    InvalidIp {
        /// The value as written.
        value: String,
    },
    /// An IP address that cannot identify a single peer (unspecified, multicast, broadcast).
    #[error("{value} cannot be a peer or source address (unspecified, multicast or broadcast)")]
    UnusableIp {
        /// The address.
        value: String,
    },
    /// Source and peer addresses are of different families.
    #[error("source address {source_address} and peer address {peer} are of different IP families")]
    FamilyMismatch {
        /// The source address.
        source_address: String,
        /// The peer address.
        peer: String,
    },
    /// A router ID that is not a usable IPv4 address.
    #[error("{value:?} is not a valid router ID (a non-zero IPv4 address)")]
    InvalidRouterId {
        /// The value as written.
        value: String,
    },
    /// A TCP port outside 1..=65535.
    #[error("port {value} is outside 1..=65535")]
    PortOutOfRange {
        /// The value as written.
        value: i32,
    },
    /// A LOCAL_PREF outside 32 bits.
    #[error("localPref {value} is outside 0..=4294967295")]
    LocalPrefOutOfRange {
        /// The value as written.
        value: i64,
    },
    /// An aggregation length outside the family's range.
    #[error("aggregation length {value} is outside 0..={max}")]
    AggregationOutOfRange {
        /// The configured length.
        value: i32,
        /// 32 or 128.
        max: u8,
    },
    /// An aggregation length shorter than a pool CIDR's prefix: the aggregate would cover
    /// addresses outside the pool.
    #[error(
        "aggregation length {length} is shorter than the prefix length {prefix} of {cidr} in \
         pool {pool:?}; the route would cover addresses outside the pool"
    )]
    AggregationTooShort {
        /// The configured length.
        length: u8,
        /// The pool.
        pool: String,
        /// The CIDR (part of a pool entry) with the longer prefix.
        cidr: String,
        /// Its prefix length.
        prefix: u8,
    },
    /// A Kubernetes object name that does not follow the naming rules.
    #[error("{value:?} is not a valid {what}: {reason}")]
    InvalidName {
        /// The value as written.
        value: String,
        /// What kind of name (namespace, Secret name, ...).
        what: &'static str,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The same value appears twice in a list where that is surely a mistake.
    #[error("duplicate entry {value:?}")]
    Duplicate {
        /// The repeated value.
        value: String,
    },
}

/// Something accepted but probably not what the user meant; reported as a Warning event or a
/// condition message, never as a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Field path in the object.
    pub path: String,
    /// Explanation for the user.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins errors into one line, e.g. for a condition message.
pub fn summarize(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
