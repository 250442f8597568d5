//! The announcement decision (DESIGN §4) as pure logic: which Service addresses this node
//! announces to which BGP peer, with which attributes, and a stable reason for every one it
//! does not announce.
//!
//! - [`Snapshot`] and its views ([`NodeView`], [`PoolView`], [`AdvertisementView`],
//!   [`PeerView`], [`ServiceView`] with [`EndpointView`]): what one speaker sees.
//! - [`decide`]: the rule, returning [`Decisions`] (per Service, address and peer an
//!   [`Outcome`]: [`Announcement`]s of [`Route`]s, or a [`Reason`]). [`Decider`] is the same
//!   rule prepared once for the node and configuration, deciding one Service at a time.
//! - [`desired_routes`]: the routes per session peer and prefix, merged across Services,
//!   which the speaker diffs against what it sent.
//! - [`explain`]: per address and peer, announced or why not, for `ferrolb explain`.
//!
//! # How the speaker drives it
//! The speaker prepares a [`Decider`] for its node and configuration on every run and
//! decides again only the Services whose Service or EndpointSlices changed (all of them
//! when the node or the configuration changed); its route table merges the per-Service
//! routes exactly as [`desired_routes`] does and sends each session only the prefixes
//! that changed. A lost API server connection changes nothing, so nothing is withdrawn.
//! [`ServiceDecision::is_announced`] flipping is what a Service event reports.

mod decide;
mod explain;
mod reason;
mod snapshot;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decide::{
    Announcement, Decider, Decisions, IpDecision, Outcome, PeerName, Route, ServiceDecision,
    decide, desired_routes,
};
pub use explain::{ExplainLine, Explanation, explain};
pub use reason::Reason;
pub use snapshot::{
    AdvertisementView, EndpointView, NodeView, PeerView, PoolView, ServiceView, Snapshot,
    TrafficPolicy,
};
