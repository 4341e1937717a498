//! `zerohttp::h1::ChunkedDecoder`: decoding in one call, in pieces split where the input's
//! first bytes say, and byte by byte with `step` must give the same payload, trailers and
//! done/error outcome (see `fuzz/src/checks.rs` for the input format).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    checks::check_chunked(data);
});
