//! IP address allocation for LoadBalancer Services (DESIGN §3), as pure logic.
//!
//! - [`PoolIndex`]: the free-address index of one pool; O(log n) allocate, take, release,
//!   memory independent of pool size (a `/64` is one tree entry).
//! - [`Allocator`]: all pools and Services; pool order, `serviceAllocation`, `autoAssign`,
//!   requested addresses, sharing, dual-stack, overlaps, pool shrink, start-up reclaim.
//! - [`Refusal`]: why a Service gets no address, with a stable reason string.
//!
//! The inputs ([`PoolConfig`], [`ServiceRequest`]) are plain types: the controller
//! translates CRDs and Services into them, so this module does not depend on API types.
//!
//! # How the controller drives it
//! 1. On start, once the caches are synced: [`Allocator::set_pools`] with every valid pool,
//!    then [`Allocator::reclaim_all`] with every Service of ours and the addresses in its
//!    status. Refused addresses are reported (Warning event) and stay reserved for that
//!    Service until its status no longer shows them.
//! 2. For each Service to reconcile: [`Allocator::allocate`]. On `Ok`, write `ips` to the
//!    status when `changed` (Normal event); on `Err`, write [`Allocator::assigned`] (what it
//!    may keep, usually nothing) and emit a Warning with [`Refusal::reason`] and
//!    [`Refusal::message`]. After every successful status write (or when a watch shows the
//!    status), call [`Allocator::commit`] so retired addresses become free.
//! 3. Service deleted, or no longer a LoadBalancer of ours: [`Allocator::release`]. When
//!    that (or a commit) frees addresses, retry [`Allocator::pending`] Services.
//! 4. Pools changed: [`Allocator::set_pools`]; set `Overlaps` conditions from
//!    [`PoolsReport::overlaps_of`], emit Warnings for [`PoolsReport::displaced`] and
//!    reconcile those Services and the [`Allocator::pending`] ones. Pool status counts come from
//!    [`Allocator::pool_stats`].

mod engine;
mod index;
mod pools;
mod range;
mod refusal;
mod selector;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use engine::{
    Allocation, Allocator, Displaced, PoolStats, PoolsReport, Reclaim, sharing_conflict,
};
pub use index::{FamilyStats, PoolIndex, TakeError};
pub use pools::PoolOverlap;
pub use range::{IpFamily, IpRange, RangeError};
pub use refusal::{Refusal, SharingConflict};
pub use selector::{LabelRequirement, LabelSelector, Labels};
pub use types::{
    FamilyRequest, IpFamilyPolicy, PoolConfig, Protocol, ServiceAllocation, ServiceKey,
    ServiceRequest,
};
