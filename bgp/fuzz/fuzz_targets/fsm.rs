//! Arbitrary input sequences into the session state machine: it must not
//! panic and every message it emits must encode and decode
//! (`ferrolb_bgp::harness::check_fsm`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrolb_bgp::harness::check_fsm(data);
});
