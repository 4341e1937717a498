//! `zh_request`: read-only accessors, and handing the request back.

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crate::engine::{Keep, Request, Response};
use crate::ffi::response::{take_response, zh_response};
use crate::ffi::result::*;
use crate::ffi::{cstr_bytes, result_of, write_out};
use crate::h1::{BodyFraming, Version};

/// One request with its whole body. The application owns it from the handler call until it
/// hands it back exactly once (`zh_respond` or `zh_request_reject`), from any thread.
/// Accessors only read immutable data and may be called from any thread while the request is
/// owned; every pointer they return is valid until the request is handed back.
pub struct zh_request {
    req: Request,
    /// Shares of the allocation: the application's (after the hand-back: the response's, until
    /// it has left), plus one per claimed-body callback that may still be called with this
    /// pointer. The last share frees it, so `on_data` / `on_end` after an early answer still
    /// get a live request. When the application's share is the only one at the hand-back, the
    /// response keeps the allocation itself and the count is no longer read (see
    /// [`app_share`]).
    holders: AtomicUsize,
}

impl zh_request {
    pub(crate) fn new(req: Request) -> Self {
        zh_request { req, holders: AtomicUsize::new(1) }
    }

    pub(crate) fn request(&self) -> &Request {
        &self.req
    }

    pub(crate) fn into_request(self) -> Request {
        self.req
    }
}

/// One share of a `zh_request` allocation (see `zh_request::holders`); the last one dropped
/// frees it. Created by [`hold`] for a body callback, and for the application's share at a
/// hand-back that comes while a body callback still holds one (see [`app_share`]).
struct Holder(*mut zh_request);

// SAFETY: the pointee is only freed through the shared counter (whichever thread drops the
// last share); until then every share may pass the pointer on from any thread.
unsafe impl Send for Holder {}

impl Holder {
    fn ptr(&self) -> *mut zh_request {
        self.0
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // SAFETY: this share keeps the allocation alive until the decrement below.
        let cell = unsafe { &*self.0 };
        if cell.holders.fetch_sub(1, Ordering::Release) == 1 {
            // Every other share's uses happen before this free.
            fence(Ordering::Acquire);
            // SAFETY: created by Box::into_raw in the handler trampoline; this was the last
            // share, so nothing else refers to it any more.
            drop(unsafe { Box::from_raw(self.0) });
        }
    }
}

/// A further share of `req` for a body callback (the caller owns the request, so it is live).
fn hold(req: *mut zh_request) -> Holder {
    // SAFETY: non-NULL (checked by the callers) and owned by the application right now.
    unsafe { &*req }.holders.fetch_add(1, Ordering::Relaxed);
    Holder(req)
}

/// The application's share of `req` as it passes to the response at the hand-back. Usually it
/// is the only share (no body callback was registered, or every one has run): then the
/// allocation itself becomes the response's keep, which costs no allocation (a `Box<T>` turns
/// into a `Box<dyn Any>` in place). Only while a body callback still holds a share does the
/// hand-back box a counted [`Holder`].
fn app_share(req: *mut zh_request) -> Keep {
    // SAFETY: checked non-NULL by the callers; the application owns it until this hand-back.
    let cell = unsafe { &*req };
    // Shares are only added by `hold`, from the owner's own calls before this hand-back (a body
    // claim after it is refused), so a count of 1 seen here cannot grow any more. Acquire: the
    // body callbacks' uses (on the worker) happen before a free that follows here.
    if cell.holders.load(Ordering::Acquire) == 1 {
        // SAFETY: created by Box::into_raw in the handler trampoline, and this is the last
        // share: from now on only the response's keep refers to it, and frees it once dropped.
        return unsafe { Box::from_raw(req) };
    }
    Box::new(Holder(req))
}

/// Hands the request back with `resp` (the request pointer is checked non-NULL by the caller).
pub(crate) fn hand_back_with(req: *mut zh_request, resp: Response) -> zh_result {
    hand_back(req, resp)
}

/// Hands the request back with `resp`. The link is taken under the request's lock, so only one
/// of several racing hand-backs wins.
pub(crate) fn hand_back(req: *mut zh_request, resp: Response) -> zh_result {
    // SAFETY: checked non-NULL by the callers; valid until handed back (documented contract).
    let cell = unsafe { &*req };
    if let Err(e) = resp.check_sendable() {
        return code_of(&e);
    }
    let Some(link) = cell.req.take_link() else { return ZH_ERR_ALREADY_USED };
    match link.respond(resp, Some(app_share(req))) {
        Ok(()) => ZH_OK,
        Err(e) => code_of(&e),
    }
}

/// Sends `resp` as the answer to `req`. Always takes `resp` (freed on every error). Hands `req`
/// back unless the result is `ZH_ERR_NULL`, `ZH_ERR_ALREADY_USED` or `ZH_ERR_INVALID` (a 101
/// without `zh_response_set_upgrade`); after that `req` must not
/// be used (a second hand-back that comes before the response has left is detected and returns
/// `ZH_ERR_ALREADY_USED`). Thread-safe: call it from any thread. `ZH_ERR_CLOSED`: the peer or
/// engine is gone; everything was freed anyway.
#[unsafe(no_mangle)]
pub extern "C" fn zh_respond(req: *mut zh_request, resp: *mut zh_response) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = take_response(resp);
        if req.is_null() {
            return ZH_ERR_NULL;
        }
        let Some(resp) = resp else { return ZH_ERR_NULL };
        hand_back(req, resp)
    })
}

/// Hands `req` back with a minimal response: `status` (200..=999) and its reason phrase as a
/// text body. `ZH_ERR_INVALID` (request not handed back) for a status outside that range.
/// Thread-safe, like `zh_respond`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_reject(req: *mut zh_request, status: u16) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        if req.is_null() {
            return ZH_ERR_NULL;
        }
        if !(200..=999).contains(&status) {
            return ZH_ERR_INVALID;
        }
        hand_back(req, Response::plain(status))
    })
}

fn request<'a>(req: *const zh_request) -> Option<&'a Request> {
    // SAFETY: a non-NULL request pointer is valid while the application owns it (contract).
    unsafe { req.as_ref() }.map(|c| &c.req)
}

/// A string of the request head as C sees it: `s` ends with its NUL (the `*_with_nul`
/// accessors of `RequestHead`), so no `CStr` needs to be built (and the string scanned) per call.
fn c_ptr(s: &[u8]) -> *const c_char {
    debug_assert_eq!(s.last(), Some(&0));
    s.as_ptr().cast()
}

/// The method as sent ("GET"), NUL-terminated; NULL if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_method(req: *const zh_request) -> *const c_char {
    boundary!(ptr::null(), { request(req).map_or(ptr::null(), |r| c_ptr(r.head().method_with_nul())) })
}

/// The request target as sent ("/a/b?x=1"); NULL if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_target(req: *const zh_request) -> *const c_char {
    boundary!(ptr::null(), { request(req).map_or(ptr::null(), |r| c_ptr(r.head().target_with_nul())) })
}

/// The path part of the target ("/a/b"), not percent-decoded; NULL if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_path(req: *const zh_request) -> *const c_char {
    boundary!(ptr::null(), { request(req).map_or(ptr::null(), |r| c_ptr(r.head().path_with_nul())) })
}

/// The query after the first '?' ("x=1"), or NULL when the target has none (or `req` is NULL).
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_query(req: *const zh_request) -> *const c_char {
    boundary!(ptr::null(), {
        request(req).and_then(|r| r.head().query_with_nul()).map_or(ptr::null(), c_ptr)
    })
}

/// `ZH_HTTP_1_0` or `ZH_HTTP_1_1`; 0 if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_version(req: *const zh_request) -> u32 {
    boundary!(0, {
        match request(req).map(|r| r.head().version()) {
            Some(Version::Http10) => ZH_HTTP_1_0,
            Some(Version::Http11) => ZH_HTTP_1_1,
            None => 0,
        }
    })
}

/// The first value of header `name` (ASCII case-insensitive), NUL-terminated, or NULL when
/// absent (or an argument is NULL).
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_header(req: *const zh_request, name: *const c_char) -> *const c_char {
    boundary!(ptr::null(), {
        let (Some(r), Some(name)) = (request(req), cstr_bytes(name)) else { return ptr::null() };
        r.head().header_with_nul(name).map_or(ptr::null(), c_ptr)
    })
}

/// Number of header fields, in the order received; 0 if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_header_count(req: *const zh_request) -> usize {
    boundary!(0, { request(req).map_or(0, |r| r.head().header_count()) })
}

/// Header field `index` (0-based): name as sent and value, both NUL-terminated.
/// `ZH_ERR_RANGE` if `index >= zh_request_header_count(req)`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_header_at(req: *const zh_request, index: usize, name_out: *mut *const c_char, value_out: *mut *const c_char) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if name_out.is_null() || value_out.is_null() {
            return ZH_ERR_NULL;
        }
        match r.head().header_at_with_nul(index) {
            Some((n, v)) => {
                write_out(name_out, c_ptr(n));
                write_out(value_out, c_ptr(v));
                ZH_OK
            }
            None => ZH_ERR_RANGE,
        }
    })
}

/// The body length announced by Content-Length (0 without a body), or -1 for a chunked body
/// (whose decoded length `zh_request_body_bytes` gives); -1 if `req` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_length(req: *const zh_request) -> i64 {
    boundary!(-1, {
        match request(req).map(|r| r.head().framing()) {
            Some(BodyFraming::None) => 0,
            Some(BodyFraming::Length(n)) => i64::try_from(n).unwrap_or(i64::MAX),
            Some(BodyFraming::Chunked) | None => -1,
        }
    })
}

/// The whole request body (buffered before the handler runs). `*data_out` is valid until the
/// request is handed back; for an empty body it is a valid non-NULL pointer and `*len_out` 0.
/// `ZH_ERR_STATE` if the body was spooled to a file (see `zh_config_set_spool`): use
/// `zh_request_body_fd` or `zh_request_body_copy_to_fd` then.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_bytes(req: *const zh_request, data_out: *mut *const u8, len_out: *mut usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if data_out.is_null() || len_out.is_null() {
            return ZH_ERR_NULL;
        }
        if r.body_spooled().is_some() {
            return ZH_ERR_STATE;
        }
        let body = r.body();
        let data = if body.is_empty() { ptr::NonNull::<u8>::dangling().as_ptr().cast_const() } else { body.as_ptr() };
        write_out(data_out, data);
        write_out(len_out, body.len());
        ZH_OK
    })
}

/// Writes the peer address ("127.0.0.1:5000" or "[::1]:5000"), NUL-terminated, into `buf` of
/// `cap` bytes. `ZH_ERR_RANGE` (nothing written) if it does not fit.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_peer_addr(req: *const zh_request, buf: *mut c_char, cap: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if buf.is_null() {
            return ZH_ERR_NULL;
        }
        let text = r.peer_addr().to_string();
        if text.len() + 1 > cap {
            return ZH_ERR_RANGE;
        }
        // SAFETY: `buf` has `cap` >= len + 1 writable bytes (caller's contract), `text` is a
        // live String; the regions cannot overlap.
        unsafe {
            ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        ZH_OK
    })
}

/// The first trailer field `name` of a chunked request body (ASCII case-insensitive), or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_trailer(req: *const zh_request, name: *const c_char) -> *const c_char {
    boundary!(ptr::null(), {
        let (Some(r), Some(name)) = (request(req), cstr_bytes(name)) else { return ptr::null() };
        r.trailer(name).map_or(ptr::null(), |v| v.as_ptr())
    })
}

/// Number of trailer fields (0 without a chunked body, or if `req` is NULL).
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_trailer_count(req: *const zh_request) -> usize {
    boundary!(0, { request(req).map_or(0, |r| r.trailers().len()) })
}

/// Trailer field `index` (0-based): name and value, NUL-terminated, valid while `req` is
/// owned. `ZH_ERR_RANGE` if `index >= zh_request_trailer_count(req)`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_trailer_at(req: *const zh_request, index: usize, name_out: *mut *const c_char, value_out: *mut *const c_char) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if name_out.is_null() || value_out.is_null() {
            return ZH_ERR_NULL;
        }
        match r.trailers().get(index) {
            Some((n, v)) => {
                write_out(name_out, n.as_ptr());
                write_out(value_out, v.as_ptr());
                ZH_OK
            }
            None => ZH_ERR_RANGE,
        }
    })
}

/// Reports a claimed body: `bytes` written or delivered (also on error: what arrived is kept),
/// `error` 0 when the body is complete, else an errno value saying why it ended early:
///
/// | `error` | why |
/// |---|---|
/// | `ETIMEDOUT` | a timeout closed the connection: the client sent no body bytes for the body read timeout (`zh_config_set_body_read_timeout`) while the engine waited for them, or a response to it stalled past the send timeout |
/// | `EPROTO` | malformed chunked framing (the client is answered 400 and the connection closed) |
/// | `EMSGSIZE` | a chunked body grew past the body limit of `zh_config_set_limits` (413, connection closed; a Content-Length over it is refused before the head handler) |
/// | `ECONNRESET` | the client closed (FIN) or reset the connection before the body was complete |
/// | `ECANCELED` | engine shutdown (`zh_engine_shutdown`, `zh_engine_free`) closed the connection |
/// | `ECONNABORTED` | the engine closed the connection for another reason (e.g. a response source failed, or a file shrank while it was being sent) |
/// | any other | the errno of the system call that failed: the socket's (`EPIPE`, `ECONNRESET`, `ETIMEDOUT` from TCP …) or, for `zh_request_body_to_fd`, the file write's (`ENOSPC`, `EFBIG`, `EDQUOT`, `EIO` …) |
///
/// Called once, on the worker thread, with the request the body belongs to; the application
/// still owns `req` and must hand it back (typically by responding right here; after an error
/// the connection is gone or closing, and the hand-back may return `ZH_ERR_CLOSED`).
/// An application may also answer before the body is complete (a 413 from the first
/// `on_data`, a 202 right after `zh_request_body_to_fd`): the body is still read to its end
/// and `on_data` / `on_end` / `on_done` still get `req`, valid for each call however long ago
/// the answer left (a second hand-back returns `ZH_ERR_ALREADY_USED`). When a claimed body
/// turns out malformed or too large and the request is not answered yet, the engine answers it
/// (400 / 413, connection closed) and a later hand-back is accepted but not sent.
pub type zh_body_done_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut zh_request, bytes: u64, error: i32)>;

/// The errno `zh_body_done_fn` reports for `e` (table above). The engine ends bodies with OS
/// errors, so this is `raw_os_error()`; the match covers an error made from a kind alone.
fn body_errno(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    e.raw_os_error().unwrap_or(match e.kind() {
        K::TimedOut => libc::ETIMEDOUT,
        K::InvalidData => libc::EPROTO,
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe => libc::ECONNRESET,
        _ => libc::ECONNABORTED,
    })
}

struct BodyDone {
    f: unsafe extern "C" fn(*mut c_void, *mut zh_request, u64, i32),
    userdata: *mut c_void,
    /// Keeps the request alive for the call, even if it was answered and the answer has left.
    req: Holder,
}

// SAFETY: zh_request_body_to_fd documents that on_done runs on a worker thread with its
// userdata; the request is kept alive by the share in `req` and only passed through.
unsafe impl Send for BodyDone {}

/// From the head handler only: writes the request body into `fd` (a regular file, opened for
/// writing) starting at `offset` — Content-Length bodies by `splice` socket → pipe → file, so
/// the payload never enters user space; chunked bodies de-framed here and written with
/// `pwrite`. A Content-Length body of 1 MiB or more has its range reserved ahead of the writes
/// (`fallocate` with `FALLOC_FL_KEEP_SIZE`, 64 MiB at a time: blocks allocated, the file's size
/// unchanged). One that cannot fit — more than the filesystem's free space plus what the file
/// already holds, past 2^63 bytes, or a first 64 MiB the filesystem refuses (`ENOSPC`, `EFBIG`,
/// `EDQUOT`) — is reported to `on_done` before a byte of it is read and no `100 Continue` is
/// sent (a client that waits for one never sends the body); the answer is the connection's
/// last, and what the client sends meanwhile is read away after it. A later window refused
/// (a quota, a filesystem's own file-size limit) ends the body then, as a failed write would.
/// If the body ends early, the blocks reserved past the end of the file are given back (a
/// truncate to the file's current size, skipped when something past the body's bytes was
/// written meanwhile). `on_done(userdata, req, bytes, error)`
/// runs exactly once; `bytes` counts every byte that reached the file. The fd is borrowed: the
/// engine never closes it. `ZH_ERR_STATE` outside the head handler, `ZH_ERR_ALREADY_USED` if
/// the body was already claimed or the request already answered, `ZH_ERR_INVALID` for a
/// non-regular file; on an error nothing is taken and `on_done` is not called.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_to_fd(req: *mut zh_request, fd: i32, offset: u64, on_done: zh_body_done_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        let Some(f) = on_done else { return ZH_ERR_NULL };
        if fd < 0 {
            return ZH_ERR_INVALID;
        }
        let done = BodyDone { f, userdata, req: hold(req) };
        let cb: crate::engine::OnBodyDone = Box::new(move |bytes, error| {
            let done = &done;
            let err = error.as_ref().map_or(0, body_errno);
            // SAFETY: the application's callback with its userdata and its own request pointer.
            unsafe { (done.f)(done.userdata, done.req.ptr(), bytes, err) }
        });
        result_of(r.body_to_fd(crate::body::FileFd::Borrowed(fd), offset, cb))
    })
}

/// Receives a piece of a streamed request body (valid for the call), on the worker thread, in
/// arrival order. Return 0 for more, or `ZH_PENDING` to pause reading the socket until
/// `zh_request_body_resume(req)` (backpressure: the client is slowed by TCP flow control).
pub type zh_body_data_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, req: *mut zh_request, data: *const u8, len: usize) -> i32>;

struct BodyData {
    f: unsafe extern "C" fn(*mut c_void, *mut zh_request, *const u8, usize) -> i32,
    userdata: *mut c_void,
    /// As in `BodyDone`.
    req: Holder,
}

// SAFETY: as for BodyDone: run on the worker thread with the caller's userdata; the request
// is kept alive by the share in `req` and only passed through.
unsafe impl Send for BodyData {}

/// From the head handler only: delivers the request body to `on_data` piece by piece as it
/// arrives (chunked framing removed), then calls `on_end(userdata, req, total, error)` exactly
/// once (error 0 on success, else an errno from the table at `zh_body_done_fn`: `ETIMEDOUT`,
/// `EPROTO`, `EMSGSIZE`, `ECONNRESET`, `ECANCELED` …); after an `on_data` that returned
/// `ZH_PENDING`, nothing — not even `on_end` — runs until `zh_request_body_resume`. A chunked
/// body's trailer fields are readable with `zh_request_trailer*` from `on_end` on.
///
/// Timeouts follow who is being waited for. While the engine waits for body bytes from the
/// client, the body read timeout (`zh_config_set_body_read_timeout`) runs: a client that sends
/// nothing for that long is dropped and `on_end` gets `ETIMEDOUT`. While the reader is paused
/// (from an `on_data` that returned `ZH_PENDING` until `zh_request_body_resume`), the engine
/// waits for the application and no timeout runs, however long the pause: the client is only
/// held back by TCP flow control, and the application decides how long that lasts (an
/// application that never resumes keeps the connection until it answers the request or the
/// engine shuts down; the engine does not read the socket meanwhile, so a client that leaves
/// during a pause is noticed after the resume). After a resume the body read timeout counts
/// afresh from the resume. Once `on_end` has run, the time the application takes to answer
/// is not limited either. The application still owes the response
/// (typically from `on_end`). `ZH_ERR_STATE` outside the head handler, `ZH_ERR_ALREADY_USED` if the body was
/// already claimed or the request already answered; on an error nothing is taken and no callback runs.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_read(req: *mut zh_request, on_data: zh_body_data_fn, on_end: zh_body_done_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        let (Some(data_f), Some(end_f)) = (on_data, on_end) else { return ZH_ERR_NULL };
        let data = BodyData { f: data_f, userdata, req: hold(req) };
        let end = BodyDone { f: end_f, userdata, req: hold(req) };
        let on_data: crate::engine::OnBodyData = Box::new(move |bytes: &[u8]| {
            let d = &data;
            // SAFETY: the caller's callback with its userdata, its request, and a slice valid
            // for the duration of the call.
            let r = unsafe { (d.f)(d.userdata, d.req.ptr(), bytes.as_ptr(), bytes.len()) };
            if r == crate::ffi::ZH_PENDING { crate::engine::ReadFlow::Pause } else { crate::engine::ReadFlow::More }
        });
        let on_end: crate::engine::OnBodyDone = Box::new(move |bytes, error| {
            let e = &end;
            let err = error.as_ref().map_or(0, body_errno);
            // SAFETY: the caller's callback with its userdata and its own request pointer.
            unsafe { (e.f)(e.userdata, e.req.ptr(), bytes, err) }
        });
        result_of(r.body_read(on_data, on_end))
    })
}

/// Resumes a streamed body read that `on_data` paused with `ZH_PENDING`. Thread-safe; a no-op
/// once the request was handed back.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_resume(req: *mut zh_request) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        r.body_resume();
        ZH_OK
    })
}

/// The spool file holding the request body, when it was larger than the spool threshold: `*fd_out`
/// (owned by the engine, valid until the request is handed back; read it with `pread`, its file
/// position is unspecified) and `*len_out`. `ZH_ERR_NOT_FOUND` if the body is in memory.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_fd(req: *const zh_request, fd_out: *mut i32, len_out: *mut u64) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if fd_out.is_null() || len_out.is_null() {
            return ZH_ERR_NULL;
        }
        match r.body_spooled() {
            Some((file, len)) => {
                write_out(fd_out, std::os::fd::AsRawFd::as_raw_fd(file));
                write_out(len_out, len);
                ZH_OK
            }
            None => ZH_ERR_NOT_FOUND,
        }
    })
}

/// Copies the whole body into `fd` at `offset` (the fd is borrowed): a spooled body inside the
/// kernel by `copy_file_range` (falling back to `sendfile`, then `pread`/`pwrite`, e.g. across
/// filesystems), a body in memory by `pwrite`. `*copied_out` (may be NULL) gets the byte count.
#[unsafe(no_mangle)]
pub extern "C" fn zh_request_body_copy_to_fd(req: *const zh_request, fd: i32, offset: u64, copied_out: *mut u64) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(r) = request(req) else { return ZH_ERR_NULL };
        if fd < 0 {
            return ZH_ERR_INVALID;
        }
        match r.body_copy_to_fd(fd, offset) {
            Ok(n) => {
                if !copied_out.is_null() {
                    write_out(copied_out, n);
                }
                ZH_OK
            }
            Err(e) => code_of(&e),
        }
    })
}
