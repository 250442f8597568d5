//! The ferrolb speaker: announces Service IPs to upstream routers over BGP.
//!
//! Built in the speaker issue; this crate holds the workspace slot until then.
