//! The ferrolb controller: hands out LoadBalancer IPs from address pools (DESIGN §3).
//!
//! - [`cli`]: the flags, each also an environment variable.
//! - [`leader`]: Lease leader election; [`leader::Leadership`] answers "may I write now?".
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`metrics`]: the `ferrolb_` metrics.
//! - [`translate`]: Services and pools into the allocator's plain inputs, pool status out.
//! - [`cache`]: one small parsed record per Service instead of the Service itself.
//! - [`reconciler`]: the allocation loop (watch caches, start-up reclaim, status writes,
//!   events).
//! - [`app`]: all of it wired into one replica; `main.rs` only parses flags.

pub mod app;
pub mod cache;
pub mod cli;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconciler;
pub mod translate;
