//! An unclaimed body whose spool file fills up part-way is answered by the engine (413 past the
//! largest file, 507 for a full disk), not dropped with the connection. RLIMIT_FSIZE stands in
//! for a full disk (the write fails with EFBIG on the same path); it is per process, so this is
//! the only test in its binary.
mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerohttp::config::Config;
use zerohttp::engine::Response;

#[test]
fn a_spool_file_that_fills_up_gets_its_request_answered() {
    // SAFETY (test set-up): a failing write past the limit must be an error, not a signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = temp_dir("spool-full");
    let handled = Arc::new(AtomicUsize::new(0));
    let h2 = handled.clone();
    let config = Config { threads: 1, spool_threshold: Some(64 << 10), spool_dir: dir.clone(), ..Config::default() };
    let (engine, port) = start_with(config, move |req| {
        h2.fetch_add(1, Ordering::SeqCst);
        req.respond(Response::plain(200)).unwrap();
    });
    let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: libc::RLIM_INFINITY };
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY (test set-up): getrlimit/setrlimit with live locals.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut old), 0);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &libc::rlimit { rlim_max: old.rlim_max, ..limit }), 0);
    }
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = vec![5u8; 4 << 20];
    s.write_all(format!("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
    let _ = s.write_all(&body); // may fail part-way once the server gives up
    let r = read_response(&mut s, &mut Vec::new(), false);
    // SAFETY (test set-up): restores the limit read above.
    unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &old) };
    let r = r.expect("an answer, not a closed connection");
    assert_eq!(r.status, 413);
    assert_eq!(handled.load(Ordering::SeqCst), 0, "the handler never sees a body that did not arrive");
    engine.shutdown(Duration::ZERO).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
