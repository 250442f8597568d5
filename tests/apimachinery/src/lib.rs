//! Pure Kubernetes API machinery used by the emulator: selectors, patches, validation.
//!
//! Everything here works on `serde_json::Value` objects and does no I/O, so the
//! emulator can call it inside its critical section (spec E10) and tests can table-drive it.

pub mod kinds;
pub mod managed;
pub mod patch;
pub mod selector;
pub mod status;
pub mod validation;

pub use status::{ApiError, Cause, success_status};
