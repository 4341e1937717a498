//! `zh_response`: the builder a caller fills, then gives away to `zh_respond`.

use std::ffi::{c_char, c_void};

use bytes::Bytes;

use crate::ffi::stream::owned_or_borrowed;
use crate::engine::Response;
use crate::ffi::result::*;
use crate::ffi::{cstr_bytes, result_of, write_out};

/// A response under construction. Not thread-safe while being built (one thread at a time);
/// once given to `zh_respond` it belongs to the engine. Free with `zh_response_free` only if it
/// is never given to `zh_respond`.
pub struct zh_response {
    inner: Response,
}

/// Release callback for lent memory: called exactly once with its userdata, on any thread.
pub type zh_release_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Flag for `zh_response_add_file`: the engine closes the fd exactly once when it is done with
/// it (sent, aborted, or the response freed).
pub const ZH_FD_CLOSE: u32 = 1;
/// "No limit", for `zh_config_set_limits`' body limit.
pub const ZH_UNLIMITED: u64 = u64::MAX;

pub(crate) fn response_mut(r: &mut zh_response) -> &mut Response {
    &mut r.inner
}

pub(crate) fn take_response(resp: *mut zh_response) -> Option<Response> {
    if resp.is_null() {
        return None;
    }
    // SAFETY: non-NULL pointers passed to a taking call come from zh_response_new and are
    // taken once (documented contract).
    Some(unsafe { Box::from_raw(resp) }.inner)
}

/// Creates a response with `status` (200..=999, or 101 together with
/// `zh_response_set_upgrade`; else `ZH_ERR_INVALID`). On success `*out`
/// owns it: give it to `zh_respond`, or free it with `zh_response_free`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_new(status: u16, out: *mut *mut zh_response) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        if out.is_null() {
            return ZH_ERR_NULL;
        }
        match Response::new(status) {
            Ok(inner) => {
                write_out(out, Box::into_raw(Box::new(zh_response { inner })));
                ZH_OK
            }
            Err(e) => result_of(Err(e)),
        }
    })
}

/// Frees a response that was never given to `zh_respond`, releasing its chunks (lent memory
/// release callbacks run, `ZH_FD_CLOSE` fds are closed). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_free(resp: *mut zh_response) {
    boundary!((), { drop(take_response(resp)) })
}

/// Adds a header (copied). `ZH_ERR_HEADER` for an invalid name or value, and for the framing
/// headers `Content-Length` and `Transfer-Encoding`, which the engine writes. `Connection:
/// close` makes the engine close the connection after this response. `Date` replaces the
/// engine's.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_header(resp: *mut zh_response, name: *const c_char, value: *const c_char) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        let (Some(name), Some(value)) = (cstr_bytes(name), cstr_bytes(value)) else { return ZH_ERR_NULL };
        result_of(resp.inner.add_header(name, value))
    })
}

/// Appends a copy of `len` bytes at `ptr` to the body. `ptr` may be NULL only when `len` is 0.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_bytes(resp: *mut zh_response, ptr: *const c_void, len: usize) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        if len == 0 {
            return ZH_OK;
        }
        if ptr.is_null() {
            return ZH_ERR_NULL;
        }
        // SAFETY: non-NULL and the caller promises `len` readable bytes for this call.
        let data = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
        resp.inner.add_bytes(data);
        ZH_OK
    })
}

/// Memory lent by the caller; its release callback runs when the engine drops the bytes.
struct Lent {
    ptr: *const u8,
    len: usize,
    release: zh_release_fn,
    userdata: *mut c_void,
}

// SAFETY: zh_response_add_lent's contract: the memory stays valid and unchanged until release
// runs, which may happen on any thread, and release itself may be called from any thread.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: ptr is non-NULL (checked at creation) with `len` bytes that the caller keeps
        // valid and unchanged until release runs (contract of zh_response_add_lent).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(f) = self.release {
            // SAFETY: the caller-provided release callback, called exactly once with its own
            // userdata (Drop runs once).
            unsafe { f(self.userdata) }
        }
    }
}

/// Wraps lent memory (non-NULL `ptr`) so its release runs when the bytes are dropped. Without a
/// release there is nothing to run, so the bytes borrow the memory as static: no owner box.
pub(crate) fn lent_bytes(ptr: *const c_void, len: usize, release: zh_release_fn, userdata: *mut c_void) -> Bytes {
    if release.is_none() {
        // SAFETY: `ptr` is non-NULL (checked by the callers) with `len` readable bytes. The
        // contract of zh_response_add_lent / zh_stream_add_lent: the memory stays valid and
        // unchanged until `release` runs, and a NULL `release` means static memory, which never
        // stops being valid; so extending the borrow to 'static states that contract. The
        // engine reads these bytes only while it would have kept a `Lent` alive (both live in
        // the same chunk), so memory that merely outlives the response is never read later.
        let data: &'static [u8] = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
        return Bytes::from_static(data);
    }
    Bytes::from_owner(Lent { ptr: ptr.cast(), len, release, userdata })
}

/// Appends `len` bytes at `ptr` without copying. The memory must stay valid and unchanged
/// until `release(userdata)` runs — exactly once, on any thread: after the bytes are sent, when
/// the connection aborts, or when the response is freed (at once for `len` 0). `release` may be
/// NULL (static memory). On an error return nothing is taken and `release` is not called.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_lent(resp: *mut zh_response, ptr: *const c_void, len: usize, release: zh_release_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        if ptr.is_null() {
            return ZH_ERR_NULL;
        }
        resp.inner.add_memory(lent_bytes(ptr, len, release, userdata));
        ZH_OK
    })
}

/// Appends the file region `(fd, offset, len)`; it is sent by `sendfile`. `len` -1 means "to
/// the end of the file". The file is `fstat`ed now: a region past its end is `ZH_ERR_RANGE`, a
/// non-regular file `ZH_ERR_INVALID`. With `ZH_FD_CLOSE` the engine owns `fd` and closes it
/// exactly once; without it the caller keeps `fd` open until the response is done (the engine
/// never closes it). On an error return nothing is taken (the fd stays open). If the file
/// shrinks before it is sent, the connection is aborted (`errors_truncated` counts it).
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_file(resp: *mut zh_response, fd: i32, offset: u64, len: i64, flags: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        if flags & !ZH_FD_CLOSE != 0 || len < -1 {
            return ZH_ERR_INVALID;
        }
        let want = if len == -1 { None } else { Some(len as u64) };
        let len = match Response::check_file_region(fd, offset, want) {
            Ok(n) => n,
            Err(e) => return result_of(Err(e)),
        };
        resp.inner.add_file_checked(owned_or_borrowed(fd, flags), offset, len);
        ZH_OK
    })
}

/// Appends a pipe or socket to read `len` bytes from (-1: until EOF, which makes the body
/// chunked for HTTP/1.1 or close-delimited for HTTP/1.0); sent by `splice` (pipes straight to
/// the socket, sockets through an engine-owned pipe). The fd is switched to non-blocking mode.
/// `ZH_ERR_INVALID` if it is neither a pipe nor a socket. `ZH_FD_CLOSE`: the engine closes it
/// exactly once. On an error return nothing is taken. A source that ends before `len` bytes
/// aborts the connection.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_fd(resp: *mut zh_response, fd: i32, len: i64, flags: u32) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        if flags & !ZH_FD_CLOSE != 0 || len < -1 {
            return ZH_ERR_INVALID;
        }
        if let Err(e) = Response::check_fd_source(fd) {
            return result_of(Err(e));
        }
        let len = if len == -1 { None } else { Some(len as u64) };
        result_of(resp.inner.add_fd(owned_or_borrowed(fd, flags), len))
    })
}

/// Takes over a connection after a protocol switch: called exactly once on the worker thread,
/// with `fd` >= 0 (a descriptor of the connection that now belongs to the application, which
/// must close it) and the `len` bytes at `data` that the engine had already read after the
/// request (valid for the call), or with `fd` = -1 (data NULL) if the hand-off did not happen.
pub type zh_upgrade_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, fd: i32, data: *const u8, len: usize)>;

struct UpgradeCallback {
    f: unsafe extern "C" fn(*mut c_void, i32, *const u8, usize),
    userdata: *mut c_void,
}

// SAFETY: zh_response_set_upgrade documents that the callback runs once on a worker thread
// with its userdata; the engine never dereferences the userdata.
unsafe impl Send for UpgradeCallback {}

/// Makes `resp` a protocol switch: once it has been sent, the connection leaves the engine and
/// `on_upgrade(userdata, fd, data, len)` takes it over (see `zh_upgrade_fn`). Valid for a 101
/// (WebSocket or any `Upgrade`; add the `Upgrade` header, the engine writes `Connection:
/// upgrade`) and for a 2xx answering CONNECT; for anything else `on_upgrade` gets fd -1 after
/// the response was sent normally. The body is dropped. On an error return nothing is taken.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_set_upgrade(resp: *mut zh_response, on_upgrade: zh_upgrade_fn, userdata: *mut c_void) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        let Some(f) = on_upgrade else { return ZH_ERR_NULL };
        let cb = UpgradeCallback { f, userdata };
        resp.inner.set_upgrade(Box::new(move |taken| {
            let cb = &cb;
            match taken {
                Some((fd, rest)) => {
                    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
                    // SAFETY: the caller's callback with its userdata; ownership of `raw` moves
                    // to it; `rest` is alive for the call.
                    unsafe { (cb.f)(cb.userdata, raw, rest.as_ptr(), rest.len()) }
                }
                // SAFETY: as above, reporting that no hand-off happened.
                None => unsafe { (cb.f)(cb.userdata, -1, std::ptr::null(), 0) },
            }
        }));
        ZH_OK
    })
}
