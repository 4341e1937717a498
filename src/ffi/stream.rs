//! `zh_stream`: a response body fed over time, from any thread.

use std::ffi::{c_char, c_void};
use std::os::fd::{FromRawFd, OwnedFd};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::body::source::{stream, StreamError, StreamHandle};
use crate::body::{Chunk, FdChunk, FileFd, FileRegion};
use crate::engine::Response;
use crate::ffi::request::{hand_back_with, zh_request};
use crate::ffi::response::{lent_bytes, take_response, zh_release_fn, zh_response, ZH_FD_CLOSE};
use crate::ffi::result::*;
use crate::ffi::{cstr_bytes, result_of, write_out};

/// The producer's handle of a streaming response. Thread-safe: every `zh_stream_*` call may
/// come from any thread (calls on one stream are serialised by the engine). Owned by the
/// application from `zh_respond_stream` until `zh_stream_end` or `zh_stream_abort` frees it.
pub struct zh_stream {
    handle: StreamHandle,
}

/// Called on the worker thread when a stream's queue drains below its low-water mark.
pub type zh_drain_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

fn stream_err(e: StreamError) -> zh_result {
    match e {
        StreamError::Closed => ZH_ERR_CLOSED,
        StreamError::Ended => ZH_ERR_STATE,
    }
}

/// Answers `req` with `head` (status, headers, and any chunks already added) followed by a body
/// that `*out` feeds over time; the body goes chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
/// Takes `head` always; hands `req` back like `zh_respond` (same results). On success `*out`
/// is owned by the caller until `zh_stream_end` / `zh_stream_abort`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_respond_stream(req: *mut zh_request, head: *mut zh_response, out: *mut *mut zh_stream) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let head = take_response(head);
        if req.is_null() || out.is_null() {
            return ZH_ERR_NULL;
        }
        let Some(mut head) = head else { return ZH_ERR_NULL };
        let (handle, source) = stream(None);
        head.add_source(Box::new(source));
        match hand_back_with(req, head) {
            ZH_OK => {
                write_out(out, Box::into_raw(Box::new(zh_stream { handle })));
                ZH_OK
            }
            code => code,
        }
    })
}

fn stream_ref<'a>(s: *const zh_stream) -> Option<&'a StreamHandle> {
    // SAFETY: a non-NULL stream pointer is valid until zh_stream_end/_abort (contract).
    unsafe { s.as_ref() }.map(|s| &s.handle)
}

/// Queues a copy of `len` bytes. `ZH_ERR_CLOSED` if the connection is gone, `ZH_ERR_STATE`
/// after `zh_stream_end`; on any error nothing is taken.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_add_bytes(s: *mut zh_stream, ptr: *const c_void, len: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(h) = stream_ref(s) else { return ZH_ERR_NULL };
        if len == 0 {
            return ZH_OK;
        }
        if ptr.is_null() {
            return ZH_ERR_NULL;
        }
        // SAFETY: non-NULL with `len` readable bytes for this call (caller's contract).
        let data = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
        match h.push_with(|| Chunk::Memory(Bytes::copy_from_slice(data))) {
            Ok(()) => ZH_OK,
            Err(e) => stream_err(e),
        }
    })
}

/// Queues lent memory (zero-copy), as `zh_response_add_lent`: `release(userdata)` runs
/// exactly once when the engine is done with it; on an error return it is not called.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_add_lent(s: *mut zh_stream, ptr: *const c_void, len: usize, release: zh_release_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(h) = stream_ref(s) else { return ZH_ERR_NULL };
        if ptr.is_null() {
            return ZH_ERR_NULL;
        }
        match h.push_with(|| Chunk::Memory(lent_bytes(ptr, len, release, userdata))) {
            Ok(()) => ZH_OK,
            Err(e) => stream_err(e),
        }
    })
}

/// Queues a file region, as `zh_response_add_file` (sendfile; `len` -1 = to EOF; with
/// `ZH_FD_CLOSE` the engine closes `fd` once). On an error return nothing is taken.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_add_file(s: *mut zh_stream, fd: i32, offset: u64, len: i64, flags: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(h) = stream_ref(s) else { return ZH_ERR_NULL };
        if flags & !ZH_FD_CLOSE != 0 || len < -1 {
            return ZH_ERR_INVALID;
        }
        let len = match Response::check_file_region(fd, offset, if len == -1 { None } else { Some(len as u64) }) {
            Ok(n) => n,
            Err(e) => return result_of(Err(e)),
        };
        let r = h.push_with(|| {
            Chunk::File(FileRegion { fd: owned_or_borrowed(fd, flags), offset, len })
        });
        match r {
            Ok(()) => ZH_OK,
            Err(e) => stream_err(e),
        }
    })
}

/// Queues a pipe or socket to read `len` bytes from, or until EOF with `len` -1; sent by
/// `splice`. The fd is switched to non-blocking mode. `ZH_FD_CLOSE` as for files.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_add_fd(s: *mut zh_stream, fd: i32, len: i64, flags: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(h) = stream_ref(s) else { return ZH_ERR_NULL };
        if flags & !ZH_FD_CLOSE != 0 || len < -1 {
            return ZH_ERR_INVALID;
        }
        let kind = match Response::check_fd_source(fd) {
            Ok(k) => k,
            Err(e) => return result_of(Err(e)),
        };
        let len = if len == -1 { None } else { Some(len as u64) };
        match h.push_with(|| Chunk::Fd(FdChunk { fd: owned_or_borrowed(fd, flags), kind, len, chunked: false })) {
            Ok(()) => ZH_OK,
            Err(e) => stream_err(e),
        }
    })
}

pub(crate) fn owned_or_borrowed(fd: i32, flags: u32) -> FileFd {
    if flags & ZH_FD_CLOSE != 0 {
        // SAFETY: the caller checked `fd` is open (fstat) and, with ZH_FD_CLOSE, transfers its
        // ownership to the engine (documented), so this is its only owner.
        FileFd::Owned(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        FileFd::Borrowed(fd)
    }
}

/// Bytes queued on the stream and not yet taken by the connection (0 for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_queued(s: *const zh_stream) -> u64 {
    boundary!(0, { stream_ref(s).map_or(0, |h| h.queued()) })
}

/// Whether the connection behind the stream is gone (1) or still there (0); 1 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_is_closed(s: *const zh_stream) -> bool {
    boundary!(true, { stream_ref(s).is_none_or(|h| h.is_closed()) })
}

struct DrainCallback {
    f: unsafe extern "C" fn(*mut c_void),
    userdata: *mut c_void,
}

// SAFETY: zh_stream_on_drain documents that the callback runs on a worker thread with its
// userdata; the engine never dereferences the userdata itself.
unsafe impl Send for DrainCallback {}

/// Backpressure: calls `on_drain(userdata)` on the worker thread whenever the queued bytes
/// fall below `low_mark` after having reached it. Replaces an earlier registration. The
/// callback must not block; it may call `zh_stream_add_*`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_on_drain(s: *mut zh_stream, low_mark: u64, on_drain: zh_drain_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let Some(h) = stream_ref(s) else { return ZH_ERR_NULL };
        let Some(f) = on_drain else { return ZH_ERR_NULL };
        let cb = DrainCallback { f, userdata };
        h.on_drain(
            low_mark,
            Box::new(move || {
                let cb = &cb;
                // SAFETY: the caller's callback with its own userdata, as registered.
                unsafe { (cb.f)(cb.userdata) }
            }),
        );
        ZH_OK
    })
}

/// Ends the body, with `n` trailer fields (`names[i]: values[i]`, sent for chunked responses;
/// `n` 0 allows NULL arrays). Frees the stream handle — except on `ZH_ERR_NULL` or
/// `ZH_ERR_HEADER` (an invalid trailer, or a field that must not be one: framing, `Host`,
/// connection control, `Content-Type`/`-Encoding`/`-Range`), where nothing happened. `ZH_ERR_CLOSED`: the
/// connection is gone (the handle is freed anyway).
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_end(s: *mut zh_stream, names: *const *const c_char, values: *const *const c_char, n: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        if s.is_null() {
            return ZH_ERR_NULL;
        }
        if n > 0 && (names.is_null() || values.is_null()) {
            return ZH_ERR_NULL;
        }
        // `n` is the caller's word: the list grows as fields are read, not by a reservation
        // of `n` up front (a wrong `n` must not become a huge allocation).
        let mut trailers = Vec::new();
        for i in 0..n {
            // SAFETY: the caller promises `n` readable pointers in each array.
            let (np, vp) = unsafe { (*names.add(i), *values.add(i)) };
            let (Some(nb), Some(vb)) = (cstr_bytes(np), cstr_bytes(vp)) else { return ZH_ERR_NULL };
            let (Ok(name), Ok(value)) = (HeaderName::from_bytes(nb), HeaderValue::from_bytes(vb)) else {
                return ZH_ERR_HEADER;
            };
            if !crate::h1::allowed_in_trailers(&name) {
                return ZH_ERR_HEADER;
            }
            trailers.push((name, value));
        }
        // SAFETY: non-NULL, from zh_respond_stream, freed exactly once here.
        let s = unsafe { Box::from_raw(s) };
        match s.handle.end(trailers) {
            Ok(()) => ZH_OK,
            Err(e) => stream_err(e),
        }
    })
}

/// Aborts the response (the connection is closed without completing the body) and frees the
/// handle. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn zh_stream_abort(s: *mut zh_stream) {
    boundary!((), {
        if !s.is_null() {
            // SAFETY: non-NULL, from zh_respond_stream, freed exactly once here.
            let s = unsafe { Box::from_raw(s) };
            s.handle.abort();
        }
    })
}
