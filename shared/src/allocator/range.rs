//! Address families and inclusive address ranges, the unit pools are made of.
//!
//! One implementation serves both validation and allocation: the types live in
//! [`crate::validate::address`] and are re-exported here under the allocator's names.

pub use crate::validate::address::{AddressError as RangeError, IpFamily, IpRange};
pub(crate) use crate::validate::address::{from_u128, to_u128};
