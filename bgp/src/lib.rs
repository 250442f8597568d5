//! ferrolb BGP engine: codec, session state machine and runtime.
//!
//! - [`codec`]: BGP-4 messages to and from bytes (RFC 4271, 4760, 6793,
//!   2918, 4724, 1997, 8092) with RFC 7606 error handling; no I/O.
//! - [`community`]: communities as operators write them (numbers, names, large).
//! - [`fsm`]: the session state machine (RFC 4271 §8) as a pure function
//!   from inputs to outputs; no I/O, no clock.
//! - [`runtime`]: one tokio task per peer around the two, with Adj-RIB-Out
//!   diffing; [`sys`] holds the TCP MD5 socket option (the only unsafe code).

pub mod codec;
pub mod community;
pub mod fsm;
pub mod runtime;
pub mod sys;

#[cfg(any(test, feature = "harness"))]
pub mod harness;
