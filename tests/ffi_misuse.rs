//! C API calls a caller can get wrong, each answered with a code instead of a hang or an
//! abort: `zh_engine_run` from a handler, `zh_stream_end` with a huge count and NULL arrays,
//! trailers that must not be trailers, and a release callback that calls back into the stream
//! while `zh_stream_abort` runs.
mod common;

use std::ffi::{c_char, c_void};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::Mutex;

use zerohttp::ffi::*;

struct Ctx {
    engine: AtomicPtr<zh_engine>,
    results: Mutex<Vec<(&'static str, zh_result)>>,
}

fn start(handler: zh_handler_fn, ctx: &Ctx) -> (*mut zh_engine, u16) {
    let mut cfg: *mut zh_config = std::ptr::null_mut();
    assert_eq!(zh_config_new(&mut cfg), ZH_OK);
    assert_eq!(zh_config_set_threads(cfg, 1), ZH_OK);
    let mut engine: *mut zh_engine = std::ptr::null_mut();
    assert_eq!(zh_engine_new(cfg, handler, ctx as *const Ctx as *mut c_void, &mut engine), ZH_OK);
    zh_config_free(cfg);
    let mut port = 0u16;
    assert_eq!(zh_engine_listen(engine, c"127.0.0.1:0".as_ptr(), &mut port), ZH_OK);
    ctx.engine.store(engine, Ordering::SeqCst);
    assert_eq!(zh_engine_start(engine), ZH_OK);
    (engine, port)
}

fn exchange(port: u16, request: &[u8]) -> String {
    let mut s = common::connect(port);
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

fn ctx() -> Box<Ctx> {
    Box::new(Ctx { engine: AtomicPtr::new(std::ptr::null_mut()), results: Mutex::new(Vec::new()) })
}

fn ctx_of(ud: *mut c_void) -> &'static Ctx {
    // SAFETY (test): ud is the boxed Ctx each test keeps alive until its engine is freed.
    unsafe { &*(ud as *const Ctx) }
}

extern "C" fn runs_the_engine(ud: *mut c_void, req: *mut zh_request) {
    let ctx = ctx_of(ud);
    let rc = zh_engine_run(ctx.engine.load(Ordering::SeqCst));
    ctx.results.lock().unwrap().push(("run", rc));
    zh_request_reject(req, 503);
}

#[test]
fn zh_engine_run_from_a_handler_is_refused() {
    let ctx = ctx();
    let (engine, port) = start(Some(runs_the_engine), &ctx);
    assert!(exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 503"));
    assert_eq!(*ctx.results.lock().unwrap(), vec![("run", ZH_ERR_STATE)]);
    assert_eq!(zh_engine_shutdown(engine, 1000), ZH_OK);
    zh_engine_free(engine);
}

/// Answers `req` 200 with a stream body.
fn open_stream(req: *mut zh_request) -> *mut zh_stream {
    let mut head: *mut zh_response = std::ptr::null_mut();
    assert_eq!(zh_response_new(200, &mut head), ZH_OK);
    let mut s: *mut zh_stream = std::ptr::null_mut();
    assert_eq!(zh_respond_stream(req, head, &mut s), ZH_OK);
    s
}

extern "C" fn ends_streams_badly(ud: *mut c_void, req: *mut zh_request) {
    let ctx = ctx_of(ud);
    let s = open_stream(req);
    assert_eq!(zh_stream_add_bytes(s, b"body".as_ptr().cast(), 4), ZH_OK);
    let push = |what, rc| ctx.results.lock().unwrap().push((what, rc));
    // A count far beyond anything real with NULL arrays: refused before anything is reserved.
    push("huge n, NULL arrays", zh_stream_end(s, std::ptr::null(), std::ptr::null(), 1usize << 40));
    push("SIZE_MAX, NULL arrays", zh_stream_end(s, std::ptr::null(), std::ptr::null(), usize::MAX));
    let names: [*const c_char; 1] = [c"Content-Length".as_ptr()];
    let values: [*const c_char; 1] = [c"999".as_ptr()];
    push("Content-Length trailer", zh_stream_end(s, names.as_ptr(), values.as_ptr(), 1));
    let names: [*const c_char; 1] = [c"Transfer-Encoding".as_ptr()];
    push("Transfer-Encoding trailer", zh_stream_end(s, names.as_ptr(), values.as_ptr(), 1));
    // Nothing happened on those: the stream still ends properly.
    let names: [*const c_char; 1] = [c"X-Checksum".as_ptr()];
    let values: [*const c_char; 1] = [c"abc".as_ptr()];
    push("allowed trailer", zh_stream_end(s, names.as_ptr(), values.as_ptr(), 1));
}

#[test]
fn zh_stream_end_refuses_huge_counts_and_framing_trailers_and_takes_nothing() {
    let ctx = ctx();
    let (engine, port) = start(Some(ends_streams_badly), &ctx);
    let answer = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n");
    assert_eq!(
        *ctx.results.lock().unwrap(),
        vec![
            ("huge n, NULL arrays", ZH_ERR_NULL),
            ("SIZE_MAX, NULL arrays", ZH_ERR_NULL),
            ("Content-Length trailer", ZH_ERR_HEADER),
            ("Transfer-Encoding trailer", ZH_ERR_HEADER),
            ("allowed trailer", ZH_OK),
        ]
    );
    let lower = answer.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{answer}");
    assert!(lower.contains("\r\n0\r\nx-checksum: abc\r\n\r\n"), "{answer}");
    assert!(!lower.contains("content-length: 999"), "{answer}");
    assert_eq!(zh_engine_shutdown(engine, 1000), ZH_OK);
    zh_engine_free(engine);
}

static ABORTING: AtomicPtr<zh_stream> = AtomicPtr::new(std::ptr::null_mut());
static RELEASED_WITH_QUEUED: AtomicI32 = AtomicI32::new(-1);

unsafe extern "C" fn release_asks_the_stream(_ud: *mut c_void) {
    // Still allocated: zh_stream_abort has not returned yet.
    let queued = zh_stream_queued(ABORTING.load(Ordering::SeqCst));
    RELEASED_WITH_QUEUED.store(queued as i32, Ordering::SeqCst);
}

extern "C" fn aborts_a_lent_stream(ud: *mut c_void, req: *mut zh_request) {
    let ctx = ctx_of(ud);
    let s = open_stream(req);
    static LENT: &[u8] = b"lent";
    let rc = zh_stream_add_lent(s, LENT.as_ptr().cast(), LENT.len(), Some(release_asks_the_stream), std::ptr::null_mut());
    ABORTING.store(s, Ordering::SeqCst);
    zh_stream_abort(s); // hung here when the release ran under the stream's lock
    ctx.results.lock().unwrap().push(("abort returned", rc));
}

#[test]
fn a_release_callback_may_call_back_into_the_stream_during_zh_stream_abort() {
    let ctx = ctx();
    let (engine, port) = start(Some(aborts_a_lent_stream), &ctx);
    let _ = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(*ctx.results.lock().unwrap(), vec![("abort returned", ZH_OK)]);
    assert!(RELEASED_WITH_QUEUED.load(Ordering::SeqCst) >= 0, "the release callback did not run");
    assert_eq!(zh_engine_shutdown(engine, 1000), ZH_OK);
    zh_engine_free(engine);
}
