//! ferrolb's lab and end-to-end tests, built from the same pieces.
//!
//! A [`Lab`] is a small emulated cluster in network namespaces of its own: the kube emulator
//! (in this process, reachable inside the lab at `10.0.0.2:6443`), two `ferrolb-controller`
//! replicas, one `ferrolb-speaker` per node namespace, and a real router (BIRD or FRR)
//! that every node peers with. The lab does what a kubelet and the EndpointSlice
//! controller would (Nodes, Ready conditions, EndpointSlices) through a kube client, and
//! reads what the router holds. See [`topology`] for the addresses.
//!
//! Everything is cleaned up when the [`Lab`] is dropped (processes by pid, then the
//! namespaces), on Ctrl-C/SIGTERM ([`lab::install_signal_cleanup`]), and, for labs left
//! by a test process that was killed outright, by the next lab that starts.

pub mod apiserver;
pub mod bins;
pub mod cluster;
pub mod demo;
pub mod lab;
pub mod procs;
pub mod router;
pub mod sys;
pub mod topology;

pub use cluster::{Cluster, TrafficPolicy};
pub use lab::{Lab, LabConfig};
pub use router::{RoutePath, RouterKind};
pub use topology::Port;

use std::time::Duration;

/// Everything that can go wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("{command}: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// Entering a network namespace failed.
    #[error("entering network namespace {ns}: {detail}")]
    Netns {
        /// The namespace.
        ns: String,
        /// Why.
        detail: String,
    },
    /// Something the lab needs is not there (root, a router, a binary).
    #[error("{0}")]
    Missing(String),
    /// Starting, signalling or stopping a process failed.
    #[error("process: {0}")]
    Process(String),
    /// The API server or a request to it failed.
    #[error("API: {0}")]
    Api(String),
    /// The router's answer was not what was expected.
    #[error("router: {0}")]
    Router(String),
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        after: Duration,
        /// The last error seen while polling.
        last_error: Option<String>,
    },
}
