//! `zerohttp::h1::parse_request_head` on arbitrary bytes, with the default and two small
//! limit sets: never panics, and every result agrees with the input's prefixes and with the
//! head bytes alone (see `fuzz/src/checks.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check_parse_head(data);
});
