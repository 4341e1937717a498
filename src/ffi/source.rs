//! Callback body sources: the caller's `poll_fn` produces the body piece by piece.

use std::ffi::c_void;

use bytes::{BufMut, BytesMut};

use crate::body::source::{Source, SourcePoll, SourceWaker};
use crate::body::{Chunk, FdChunk, FileRegion};
use crate::engine::Response;
use crate::ffi::response::{zh_release_fn, zh_response};
use crate::ffi::result::*;
use crate::ffi::stream::owned_or_borrowed;

/// `zh_chunk_out.kind`: `len` bytes were written into `buf`.
pub const ZH_CHUNK_BYTES: u32 = 0;
/// `zh_chunk_out.kind`: a file region `(fd, offset, fd_len)` (sendfile), `flags` may hold
/// `ZH_FD_CLOSE`.
pub const ZH_CHUNK_FILE: u32 = 1;
/// `zh_chunk_out.kind`: a pipe or socket to read `fd_len` bytes from (-1: until EOF) (splice).
pub const ZH_CHUNK_FD: u32 = 2;

/// `poll_fn` result: `*out` holds the next piece.
pub const ZH_POLL_READY: i32 = 0;
/// `poll_fn` result: nothing yet; call `zh_source_ready(out->source)` when there is.
pub const ZH_PENDING: i32 = 1;
/// `poll_fn` result: the body is complete.
pub const ZH_EOF: i32 = 2;

/// A callback source's wake-up handle. Thread-safe. Valid until the source's `release_fn` has
/// returned.
pub struct zh_source {
    waker: SourceWaker,
}

/// Filled in by a `poll_fn`. The engine sets `buf`, `buf_cap` and `source`; the callback sets
/// `kind` and the fields that kind uses.
#[repr(C)]
pub struct zh_chunk_out {
    /// In: an engine buffer of `buf_cap` bytes to write `ZH_CHUNK_BYTES` data into.
    pub buf: *mut u8,
    pub buf_cap: usize,
    /// Out: `ZH_CHUNK_BYTES` (default), `ZH_CHUNK_FILE` or `ZH_CHUNK_FD`.
    pub kind: u32,
    /// Out: bytes written into `buf` (`ZH_CHUNK_BYTES`; 0 is ignored).
    pub len: usize,
    /// Out: the descriptor for `ZH_CHUNK_FILE` / `ZH_CHUNK_FD`.
    pub fd: i32,
    /// Out: the file offset for `ZH_CHUNK_FILE`.
    pub offset: u64,
    /// Out: the region or fd length; -1 = to end of file / until EOF.
    pub fd_len: i64,
    /// Out: `ZH_FD_CLOSE` to give the descriptor to the engine.
    pub flags: u32,
    /// In: this source's handle, for `zh_source_ready` after returning `ZH_PENDING`.
    pub source: *mut zh_source,
}

/// Produces the next piece of a body: returns `ZH_POLL_READY` (with `*out` filled),
/// `ZH_PENDING`, `ZH_EOF`, or a negative value (an error: the connection is aborted). Runs on
/// the worker thread that owns the connection; must not block. `out` is valid for the call.
pub type zh_poll_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, out: *mut zh_chunk_out) -> i32>;

/// Bytes offered to a callback per poll.
const CALLBACK_BUF: usize = 64 * 1024;

struct CallbackSource {
    poll: unsafe extern "C" fn(*mut c_void, *mut zh_chunk_out) -> i32,
    release: zh_release_fn,
    userdata: *mut c_void,
    len: Option<u64>,
    buf: BytesMut,
    handle: *mut zh_source,
    waker: SourceWaker,
}

// SAFETY: zh_response_add_callback's contract: the callbacks and userdata may be used from the
// worker thread that ends up sending the response, and release from any thread. The handle is
// owned by this value and freed once in Drop.
unsafe impl Send for CallbackSource {}

impl Source for CallbackSource {
    fn len(&self) -> Option<u64> {
        self.len
    }

    fn poll(&mut self, _room: usize) -> SourcePoll {
        // Zero-length answers are skipped; a callback that never produces anything else fails.
        for _ in 0..64 {
            if self.buf.capacity() - self.buf.len() < CALLBACK_BUF {
                self.buf.reserve(CALLBACK_BUF);
            }
            let spare = self.buf.chunk_mut();
            let mut out = zh_chunk_out {
                buf: spare.as_mut_ptr(),
                buf_cap: spare.len(),
                kind: ZH_CHUNK_BYTES,
                len: 0,
                fd: -1,
                offset: 0,
                fd_len: -1,
                flags: 0,
                source: self.handle,
            };
            let cap = out.buf_cap;
            // SAFETY: the caller's poll function with its own userdata and a live zh_chunk_out
            // whose buffer has `buf_cap` writable bytes.
            let r = unsafe { (self.poll)(self.userdata, &mut out) };
            match r {
                ZH_PENDING => return SourcePoll::Pending,
                ZH_EOF => return SourcePoll::End(Vec::new()),
                ZH_POLL_READY => {}
                _ => return SourcePoll::Failed("the poll callback reported an error"),
            }
            match out.kind {
                ZH_CHUNK_BYTES => {
                    if out.len > cap {
                        return SourcePoll::Failed("the poll callback wrote past its buffer");
                    }
                    if out.len == 0 {
                        continue;
                    }
                    // SAFETY: the callback initialised `out.len <= buf_cap` bytes of the spare
                    // capacity it was given.
                    unsafe { self.buf.advance_mut(out.len) };
                    return SourcePoll::Chunk(Chunk::Memory(self.buf.split().freeze()));
                }
                ZH_CHUNK_FILE => {
                    let want = if out.fd_len == -1 { None } else { u64::try_from(out.fd_len).ok() };
                    if out.fd_len < -1 || out.flags & !crate::ffi::ZH_FD_CLOSE != 0 {
                        return SourcePoll::Failed("invalid file chunk from the poll callback");
                    }
                    return match Response::check_file_region(out.fd, out.offset, want) {
                        Ok(len) => SourcePoll::Chunk(Chunk::File(FileRegion { fd: owned_or_borrowed(out.fd, out.flags), offset: out.offset, len })),
                        Err(_) => SourcePoll::Failed("invalid file region from the poll callback"),
                    };
                }
                ZH_CHUNK_FD => {
                    if out.fd_len < -1 || out.flags & !crate::ffi::ZH_FD_CLOSE != 0 {
                        return SourcePoll::Failed("invalid fd chunk from the poll callback");
                    }
                    return match Response::check_fd_source(out.fd) {
                        Ok(kind) => {
                            let len = if out.fd_len == -1 { None } else { Some(out.fd_len as u64) };
                            SourcePoll::Chunk(Chunk::Fd(FdChunk { fd: owned_or_borrowed(out.fd, out.flags), kind, len, chunked: false }))
                        }
                        Err(_) => SourcePoll::Failed("invalid fd from the poll callback"),
                    };
                }
                _ => return SourcePoll::Failed("unknown chunk kind from the poll callback"),
            }
        }
        SourcePoll::Failed("the poll callback kept returning empty chunks")
    }

    fn waker(&self) -> &SourceWaker {
        &self.waker
    }
}

impl Drop for CallbackSource {
    fn drop(&mut self) {
        self.waker.detach();
        if let Some(f) = self.release {
            // SAFETY: the caller's release callback, called exactly once with its userdata.
            unsafe { f(self.userdata) }
        }
        // SAFETY: created by Box::into_raw in zh_response_add_callback, freed only here, after
        // release returned (the documented end of the handle's validity).
        drop(unsafe { Box::from_raw(self.handle) });
    }
}

/// Appends a callback source: `poll_fn(userdata, out)` is called on the worker thread whenever
/// the connection can take more, until it returns `ZH_EOF` (or an error, which aborts the
/// connection). `len` is the total it will produce, or -1 if unknown (the body then goes
/// chunked for HTTP/1.1, close-delimited for HTTP/1.0); a known length that is not met aborts
/// the connection. `release_fn(userdata)` (may be NULL) runs exactly once on every path: after
/// EOF, on abort, or when the response is freed or dropped. On an error return nothing is
/// taken and `release_fn` is not called.
#[unsafe(no_mangle)]
pub extern "C" fn zh_response_add_callback(resp: *mut zh_response, poll_fn: zh_poll_fn, release_fn: zh_release_fn, userdata: *mut c_void, len: i64) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let resp = try_mut!(resp);
        let Some(poll) = poll_fn else { return ZH_ERR_NULL };
        if len < -1 {
            return ZH_ERR_INVALID;
        }
        let waker = SourceWaker::new();
        let handle = Box::into_raw(Box::new(zh_source { waker: waker.clone() }));
        let source = CallbackSource {
            poll,
            release: release_fn,
            userdata,
            len: if len == -1 { None } else { Some(len as u64) },
            buf: BytesMut::new(),
            handle,
            waker,
        };
        crate::ffi::response::response_mut(resp).add_source(Box::new(source));
        ZH_OK
    })
}

/// Tells the engine that a source which returned `ZH_PENDING` has more: its `poll_fn` will be
/// called again on the worker thread. Thread-safe; valid until the source's `release_fn` has
/// returned.
#[unsafe(no_mangle)]
pub extern "C" fn zh_source_ready(source: *mut zh_source) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let s = try_ref!(source);
        s.waker.wake();
        ZH_OK
    })
}
