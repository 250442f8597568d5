//! The ferrolb speaker: announces this node's eligible Service IPs to upstream routers over
//! BGP (DESIGN §4), and withdraws them the moment the node or the Service's endpoints stop
//! qualifying.
//!
//! - [`cli`]: flags (each also an environment variable).
//! - [`watch`]: reflectors for Services, EndpointSlices, this Node, the ferrolb objects and
//!   only the Secrets peers reference.
//! - [`views`]: cached objects → the decision's views; invalid objects keep their last valid
//!   version.
//! - [`table`]: what each Service contributes and the merged routes per peer, updated one
//!   Service at a time (pure).
//! - [`sessions`]: one BGP session per peer selecting this node: its full route set when it
//!   starts, then only the routes that change.
//! - [`app`]: the debounced decision loop, start-up and shutdown (on SIGTERM: withdraw
//!   and Cease, or a graceful-restart close where both sides agreed to it).
//! - [`events`]: an event on a Service only when its announcement from this node starts or
//!   stops.
//! - [`metrics`], [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`status`]: the node's `SpeakerStatus` object (sessions, state, prefixes, last
//!   error), written on change and at most once a second.
//!
//! The decision itself is `ferrolb_shared::announce::decide`, pure and tested there.

pub mod app;
pub mod cli;
pub mod events;
pub mod http;
pub mod metrics;
pub mod sessions;
pub mod status;
pub mod table;
pub mod views;
pub mod watch;
