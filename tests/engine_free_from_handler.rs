//! `zh_engine_free` called from one of the engine's own handlers (a misuse the C API
//! documents): the engine stops instead of being freed under the worker (in external-loop
//! mode: under the step) that runs the handler, an error is logged, and a second
//! `zh_engine_free` from another thread frees it. The same for a Rust `Engine` dropped in its
//! handler: its workers stop.
mod common;

use std::ffi::{c_char, c_void, CStr};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zerohttp::ffi::*;

struct Ctx {
    engine: AtomicPtr<zh_engine>,
    logs: Mutex<Vec<String>>,
}

extern "C" fn frees_its_engine(ud: *mut c_void, req: *mut zh_request) {
    // SAFETY (test): ud is the Ctx the test keeps alive until the engine is freed.
    let ctx = unsafe { &*(ud as *const Ctx) };
    assert_eq!(zh_request_reject(req, 503), ZH_OK);
    zh_engine_free(ctx.engine.load(Ordering::SeqCst));
}

extern "C" fn keep_log(ud: *mut c_void, _level: i32, msg: *const c_char) {
    // SAFETY (test): as above; msg is a NUL-terminated string valid for this call.
    let (ctx, msg) = unsafe { (&*(ud as *const Ctx), CStr::from_ptr(msg)) };
    ctx.logs.lock().unwrap().push(msg.to_string_lossy().into_owned());
}

fn engine(threads: u32, ctx: &Ctx) -> (*mut zh_engine, u16) {
    let ud = ctx as *const Ctx as *mut c_void;
    let mut cfg: *mut zh_config = std::ptr::null_mut();
    assert_eq!(zh_config_new(&mut cfg), ZH_OK);
    assert_eq!(zh_config_set_threads(cfg, threads), ZH_OK);
    assert_eq!(zh_config_set_log(cfg, Some(keep_log), ud), ZH_OK);
    let mut engine: *mut zh_engine = std::ptr::null_mut();
    assert_eq!(zh_engine_new(cfg, Some(frees_its_engine), ud, &mut engine), ZH_OK);
    zh_config_free(cfg);
    let mut port = 0u16;
    assert_eq!(zh_engine_listen(engine, c"127.0.0.1:0".as_ptr(), &mut port), ZH_OK);
    ctx.engine.store(engine, Ordering::SeqCst);
    (engine, port)
}

fn send_request(port: u16) -> TcpStream {
    let mut s = common::connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

fn refused_within(port: u16, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn logged_the_misuse(ctx: &Ctx) -> bool {
    ctx.logs.lock().unwrap().iter().any(|m| m.contains("(zh_engine_free called from a handler)"))
}

#[test]
fn threaded_engine_freed_from_its_handler_stops_and_is_freed_later() {
    let ctx = Box::new(Ctx { engine: AtomicPtr::new(std::ptr::null_mut()), logs: Mutex::new(Vec::new()) });
    let (engine, port) = engine(1, &ctx);
    assert_eq!(zh_engine_start(engine), ZH_OK);
    let mut s = send_request(port);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer); // the connection closes with the engine
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{:?}", String::from_utf8_lossy(&answer));
    assert!(refused_within(port, Duration::from_secs(10)), "the engine still listens");
    assert!(logged_the_misuse(&ctx));
    // Still allocated: shutting it down and freeing it from here works.
    assert_eq!(zh_engine_shutdown(engine, 0), ZH_OK);
    zh_engine_free(engine);
}

#[test]
fn external_loop_engine_freed_from_its_handler_ends_the_loop_and_is_freed_later() {
    let ctx = Box::new(Ctx { engine: AtomicPtr::new(std::ptr::null_mut()), logs: Mutex::new(Vec::new()) });
    let (engine, port) = engine(0, &ctx);
    let client = std::thread::spawn(move || {
        let mut s = send_request(port);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        answer
    });
    let t = Instant::now();
    let mut last = ZH_OK;
    while last == ZH_OK && t.elapsed() < Duration::from_secs(10) {
        last = zh_engine_step(engine, 50);
    }
    assert_eq!(last, ZH_ERR_CLOSED, "the loop did not end");
    let answer = client.join().unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{:?}", String::from_utf8_lossy(&answer));
    assert!(logged_the_misuse(&ctx));
    assert_eq!(zh_engine_step(engine, 0), ZH_ERR_CLOSED);
    zh_engine_free(engine);
}

#[test]
fn a_rust_engine_dropped_in_its_handler_stops_serving() {
    let slot: Arc<Mutex<Option<zerohttp::engine::Engine>>> = Arc::new(Mutex::new(None));
    let in_handler = slot.clone();
    let (engine, port) = common::start(1, move |req| {
        let mut r = zerohttp::engine::Response::new(200).unwrap();
        r.add_bytes(b"last");
        req.respond(r).unwrap();
        drop(in_handler.lock().unwrap().take()); // the engine is dropped on its worker
    });
    *slot.lock().unwrap() = Some(engine);
    let r = common::get(port, "/");
    assert_eq!((r.status, &r.body[..]), (200, &b"last"[..]));
    assert!(slot.lock().unwrap().is_none());
    assert!(refused_within(port, Duration::from_secs(10)), "the dropped engine's worker still listens");
}
