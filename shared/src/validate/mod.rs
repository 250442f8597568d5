//! Validation of ferrolb objects into parsed forms.
//!
//! Every `validate()` returns either the parsed object or *all* problems found, each with the
//! field path it concerns, so a user can fix a manifest in one go. The parsed forms
//! ([`ParsedPool`], [`ParsedPeer`], [`ParsedAdvertisement`]) are what the controller, the
//! speaker and the BGP engine consume; nothing downstream re-parses strings.

pub mod address;
pub mod bgp;
mod error;
mod objects;
mod overlap;
pub mod selector;
pub mod service;

pub use address::{AddressError, IpFamily, IpRange, ip_from_u128, ip_to_u128, parse_address_entry};
pub use bgp::{
    AS_TRANS, AsnError, BgpTimers, Community, CommunityError, DurationError, TimerError,
    parse_duration, validate_asn,
};
pub use error::{ConfigError, ConfigWarning, Problem, summarize};
pub use objects::{ParsedAdvertisement, ParsedPeer, ParsedPool, ParsedServiceAllocation, is_buggy};
pub use overlap::{PoolOverlap, find_pool_overlaps};
pub use selector::{ParsedSelector, Requirement, SelectorError, any_selector_matches};
pub use service::{LoadBalancerIpsError, parse_load_balancer_ips};
