//! Arbitrary bytes into the decoder: it must not panic, and whatever it
//! accepts must re-encode and decode to the same message
//! (`ferrolb_bgp::harness::check_decode`). First byte: codec options.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrolb_bgp::harness::check_decode(data);
});
