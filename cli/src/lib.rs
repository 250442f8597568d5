//! The `ferrolb` command line (also installed as the kubectl plugin `kubectl-ferrolb`).
//!
//! - [`explain`]: `ferrolb explain <namespace>/<service>` — for every node and every peer,
//!   whether the Service is announced (and with which route) or the stable reason why not,
//!   computed by the speaker's own decision function over the cluster's current objects.
//! - [`cli`]: flags, the kube client, exit codes.

pub mod cli;
pub mod explain;

pub use cli::{Cli, run};
