//! The whole connection state machine: a real engine (one worker, short timeouts, small
//! limits, a pipeline window of 4) on 127.0.0.1, fed arbitrary byte streams with arbitrary
//! write splits. The responses must frame as HTTP/1.1, match what the pure codec predicts for
//! the whole stream, stop after `Connection: close`, and the server must close (a hang is a
//! crash). See `fuzz/src/checks.rs` for the input format and the oracle.
#![no_main]

use std::sync::Once;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // A panic on an engine worker thread (or the responder thread) must be a crash that
        // libFuzzer sees, not a silently dead thread.
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            prev(info);
            std::process::abort();
        }));
    });
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    // ZH_FUZZ_READ_TIMEOUT_MS lengthens the hang deadline (to tell a stall from a hang).
    let timeout = *TIMEOUT.get_or_init(|| {
        let ms = std::env::var("ZH_FUZZ_READ_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        Duration::from_millis(ms)
    });
    checks::run_connection_input(data, timeout);
});
