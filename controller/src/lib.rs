//! The ferrolb controller: hands out LoadBalancer IPs from address pools.
//!
//! Built in the controller issue; this crate holds the workspace slot until then.
