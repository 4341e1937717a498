//! `zh_engine`: create, listen, run, shut down, free; and the C handler trampoline.

use std::ffi::c_void;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::engine::{Engine, HeadHandler, Request};
use crate::ffi::config::zh_config;
use crate::ffi::request::zh_request;
use crate::ffi::result::*;
use crate::ffi::{cstr_bytes, result_of, write_out};

/// An HTTP/1.1 server engine with its worker threads. Thread-safe: every `zh_engine_*` call
/// may come from any thread, except `zh_engine_shutdown` and `zh_engine_free`, which must not
/// be called from a handler. Create with `zh_engine_new`, free with `zh_engine_free`.
pub struct zh_engine {
    inner: Engine,
}

/// Called once per complete request (head and whole body), on the worker thread that owns the
/// connection, possibly on several workers at once. It must not block. From this call on the
/// application owns `req` until it hands it back exactly once with `zh_respond` or
/// `zh_request_reject` — from this thread, now, or from any thread later.
pub type zh_handler_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut zh_request)>;

struct CHandler {
    f: unsafe extern "C" fn(*mut c_void, *mut zh_request),
    userdata: *mut c_void,
}

// SAFETY: the documented contract of zh_engine_new is that the handler and its userdata may be
// used from every worker thread at once; the engine itself never dereferences `userdata`.
unsafe impl Send for CHandler {}
// SAFETY: see Send above: concurrent calls are part of the handler's documented contract.
unsafe impl Sync for CHandler {}

impl CHandler {
    /// The head stage: afterwards the request is either the application's (claimed or handed
    /// back) or comes back to the engine for buffering.
    fn call_head(&self, req: Request) -> Option<Request> {
        let ptr = Box::into_raw(Box::new(zh_request::new(req)));
        // SAFETY: the head handler given to zh_config_set_head_handler, with its userdata and a
        // fresh request pointer.
        unsafe { (self.f)(self.userdata, ptr) };
        // SAFETY: `ptr` stays allocated until it is handed back and its response has left,
        // which cannot happen before this worker returns to its loop.
        let cell = unsafe { &*ptr };
        if cell.request().handed_back() || cell.request().body_claimed() {
            return None;
        }
        // SAFETY: the application neither claimed nor handed back the request, so by the
        // documented contract it no longer uses `ptr`; we take the request back.
        Some(unsafe { Box::from_raw(ptr) }.into_request())
    }

    fn call(&self, req: Request) {
        let ptr = Box::into_raw(Box::new(zh_request::new(req)));
        // SAFETY: `f` is the non-NULL handler given to zh_engine_new, called with its own
        // userdata and a fresh request pointer whose ownership passes to the application.
        unsafe { (self.f)(self.userdata, ptr) }
    }
}

/// Creates an engine (threads are started by `zh_engine_start` or `zh_engine_run`).
/// `cfg` is copied; NULL means defaults. `handler` must not be NULL; `userdata` is passed to it
/// unchanged and must stay valid until `zh_engine_free` returns. On success `*out` owns the
/// engine: free with `zh_engine_free`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_new(cfg: *const zh_config, handler: zh_handler_fn, userdata: *mut c_void, out: *mut *mut zh_engine) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(f) = handler else { return ZH_ERR_NULL };
        if out.is_null() {
            return ZH_ERR_NULL;
        }
        // SAFETY: a non-NULL cfg comes from zh_config_new and is only read here.
        let (config, head, hooks) = match unsafe { cfg.as_ref() } {
            Some(c) => (c.config().clone(), c.head_handler(), c.hooks()),
            None => (Config::default(), None, Default::default()),
        };
        let h = CHandler { f, userdata };
        let head: Option<HeadHandler> = head.map(|(f, userdata)| {
            let hh = CHandler { f, userdata };
            Arc::new(move |req: Request| hh.call_head(req)) as HeadHandler
        });
        match Engine::with_options(config, Arc::new(move |req| h.call(req)), head, hooks) {
            Ok(engine) => {
                write_out(out, Box::into_raw(Box::new(zh_engine { inner: engine })));
                ZH_OK
            }
            Err(e) => result_of(Err(e)),
        }
    })
}

/// Listens on `addr` ("127.0.0.1:0", "[::1]:8080", "localhost:8080"), one `SO_REUSEPORT`
/// socket per worker; allowed before or after start. `bound_port_out` may be NULL; else it
/// receives the bound port (useful with port 0). `ZH_ERR_ADDR` if the address is not valid.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_listen(engine: *mut zh_engine, addr: *const std::ffi::c_char, bound_port_out: *mut u16) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        let Some(addr) = cstr_bytes(addr) else { return ZH_ERR_NULL };
        let Ok(addr) = std::str::from_utf8(addr) else { return ZH_ERR_ADDR };
        match engine.inner.listen(addr) {
            Ok(port) => {
                if !bound_port_out.is_null() {
                    write_out(bound_port_out, port);
                }
                ZH_OK
            }
            Err(e) => result_of(Err(e)),
        }
    })
}

/// Starts the worker threads and returns. A no-op while running; `ZH_ERR_STATE` after shutdown.
/// Worker threads block SIGPIPE; a vanished peer is an error on that connection only.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_start(engine: *mut zh_engine) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        result_of(engine.inner.start())
    })
}

/// Starts the engine if needed and blocks until `zh_engine_shutdown` (called on another
/// thread) has finished. `ZH_ERR_STATE` from a handler (it would wait for itself).
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_run(engine: *mut zh_engine) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        result_of(engine.inner.run())
    })
}

/// Graceful shutdown: stops accepting, closes idle connections at once, lets in-flight
/// responses finish for up to `grace_ms`, then closes every connection and waits for the
/// workers to exit. Requests the application still holds then get `ZH_ERR_CLOSED` from
/// `zh_respond` (which still frees them). Must not be called from a handler (`ZH_ERR_STATE`).
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_shutdown(engine: *mut zh_engine, grace_ms: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        result_of(engine.inner.shutdown(Duration::from_millis(grace_ms.into())))
    })
}

/// Shuts the engine down (grace 0) if it still runs, then frees it. NULL is ignored. Must not
/// be called from a handler: there it only tells the workers to stop and logs an error, and
/// the engine stays allocated until `zh_engine_free` is called again from another thread.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_free(engine: *mut zh_engine) {
    boundary!((), {
        if engine.is_null() {
            return;
        }
        // SAFETY: non-NULL pointers passed here come from zh_engine_new and are not yet freed.
        if !unsafe { &*engine }.inner.can_be_freed_here() {
            return;
        }
        // SAFETY: as above; this is the one place that frees it.
        drop(unsafe { Box::from_raw(engine) });
    })
}

pub(crate) fn engine_of(engine: &zh_engine) -> &Engine {
    &engine.inner
}

/// External-loop mode (`threads = 0`): writes the fd to poll for readability (an epoll fd,
/// level-triggered from the host's point of view: readable while there is work). `ZH_ERR_STATE`
/// when the engine runs its own threads.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_fd(engine: *const zh_engine, fd_out: *mut i32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        if fd_out.is_null() {
            return ZH_ERR_NULL;
        }
        match engine.inner.fd() {
            Ok(fd) => {
                write_out(fd_out, fd);
                ZH_OK
            }
            Err(e) => result_of(Err(e)),
        }
    })
}

/// External-loop mode: does all ready work (accepts, reads, handlers, writes, timers), waiting
/// for events at most `timeout_ms` (0: never blocks). Starts the engine on first use. Always call
/// it from the same thread (handlers run inside it); from a handler it returns `ZH_ERR_STATE`.
/// `ZH_ERR_CLOSED` once a shutdown has completed; `ZH_ERR_STATE` in threaded mode.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_step(engine: *mut zh_engine, timeout_ms: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        match engine.inner.step(Duration::from_millis(timeout_ms.into())) {
            Ok(true) => ZH_OK,
            Ok(false) => ZH_ERR_CLOSED,
            Err(e) => result_of(Err(e)),
        }
    })
}

/// External-loop mode: makes the `zh_engine_step` that is waiting for events return at once (or
/// the next one return without waiting). Callable from any thread and from a signal handler:
/// it is one `write(2)` to the engine's eventfd, with no lock and no allocation. The way to stop
/// a loop that steps with a long timeout: a SIGTERM handler sets a flag and calls this; the loop
/// tests the flag after each step, and a signal that lands between the test and the wait still
/// ends the wait. The engine must still be alive (clear the pointer the handler uses before
/// `zh_engine_free`). `ZH_ERR_STATE` in threaded mode.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_wake(engine: *const zh_engine) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        result_of(engine.inner.wake())
    })
}

/// External-loop mode: milliseconds until timers need a `zh_engine_step` (-1: none pending,
/// or NULL / threaded mode). Poll the engine fd with this as the timeout.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_next_timeout_ms(engine: *const zh_engine) -> i64 {
    boundary!(-1, {
        // SAFETY: a non-NULL engine pointer comes from zh_engine_new (contract).
        match unsafe { engine.as_ref() } {
            Some(e) => e.inner.next_timeout_ms(),
            None => -1,
        }
    })
}

/// Serves connections from `fd`, an already-bound listening TCP socket (e.g. inherited from a
/// supervisor). Takes ownership of `fd` (closed at engine shutdown) unless the result is
/// `ZH_ERR_NULL` or `ZH_ERR_INVALID` (not a listening TCP socket), where nothing is taken. The
/// fd is switched to non-blocking mode.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_listen_fd(engine: *mut zh_engine, fd: i32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        if fd < 0 {
            return ZH_ERR_INVALID;
        }
        match crate::transfer::stream_socket_state(fd) {
            Ok((true, true)) => {}
            Ok(_) => return ZH_ERR_INVALID,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return ZH_ERR_INVALID,
            Err(_) => return ZH_ERR_INVALID,
        }
        // SAFETY: getsockopt proved `fd` open; ownership moves to the engine on success only, so
        // on failure we give the number back without closing it.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let probe = std::net::TcpListener::from(owned);
        if probe.local_addr().is_err() {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(probe);
            return ZH_ERR_INVALID;
        }
        match engine.inner.listen_fd(std::os::fd::OwnedFd::from(probe)) {
            Ok(()) => ZH_OK,
            Err(e) => result_of(Err(e)),
        }
    })
}

/// Hands the engine an already-accepted TCP connection `fd`, with `len` bytes at `initial` that
/// the host already read from it (NULL/0: none; copied). Takes ownership of `fd` unless the
/// result is `ZH_ERR_NULL` or `ZH_ERR_INVALID` (not a connected TCP socket), where nothing is
/// taken; after shutdown (`ZH_ERR_STATE`) the fd is closed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_adopt_fd(engine: *mut zh_engine, fd: i32, initial: *const u8, len: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        if fd < 0 {
            return ZH_ERR_INVALID;
        }
        if initial.is_null() && len > 0 {
            return ZH_ERR_NULL;
        }
        match crate::transfer::stream_socket_state(fd) {
            Ok((true, false)) => {}
            _ => return ZH_ERR_INVALID,
        }
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: non-NULL with `len` readable bytes for this call (caller's contract).
            unsafe { std::slice::from_raw_parts(initial, len) }
        };
        // SAFETY: fstat proved `fd` open and a socket; ownership moves on success only.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let stream = std::net::TcpStream::from(owned);
        if stream.peer_addr().is_err() {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(stream);
            return ZH_ERR_INVALID;
        }
        match engine.inner.adopt(std::os::fd::OwnedFd::from(stream), bytes) {
            Ok(()) => ZH_OK,
            Err(e) => result_of(Err(e)),
        }
    })
}
