//! `zh_transport`: connections over a byte stream the host provides (TLS it terminates, …).

use std::ffi::{c_char, c_void};
use std::io;

use crate::body::source::SourceWaker;
use crate::ffi::engine::{engine_of, zh_engine};
use crate::ffi::result::*;
use crate::ffi::{cstr_bytes, result_of, write_out};
use crate::transfer::Transport;

/// The host's handle for one adopted transport: tells the engine the transport is ready
/// again. Thread-safe; valid until the transport's `close` callback has returned.
pub struct zh_transport {
    waker: SourceWaker,
}

/// One slice of a gathered write.
#[repr(C)]
pub struct zh_iovec {
    pub base: *const u8,
    pub len: usize,
}

/// Returned by transport callbacks: not ready now; the host calls `zh_transport_ready` later.
pub const ZH_TRANSPORT_AGAIN: isize = -1;
/// Returned by transport callbacks: the stream failed; the connection is closed.
pub const ZH_TRANSPORT_ERROR: isize = -2;

/// Reads up to `len` bytes into `buf`: returns the count, 0 at end of stream,
/// `ZH_TRANSPORT_AGAIN` or `ZH_TRANSPORT_ERROR`. Called on the worker thread.
pub type zh_transport_read_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, buf: *mut u8, len: usize) -> isize>;
/// Writes as much of the `count` slices as it can: returns the bytes taken,
/// `ZH_TRANSPORT_AGAIN` or `ZH_TRANSPORT_ERROR`. Called on the worker thread.
pub type zh_transport_writev_fn = Option<unsafe extern "C" fn(userdata: *mut c_void, iov: *const zh_iovec, count: usize) -> isize>;
/// Optional: the engine will write no more (e.g. send TLS close_notify).
pub type zh_transport_shutdown_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;
/// The engine is done with the transport: release it (close the TLS session and socket).
/// Called exactly once.
pub type zh_transport_close_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

struct CTransport {
    read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize,
    writev: unsafe extern "C" fn(*mut c_void, *const zh_iovec, usize) -> isize,
    shutdown: zh_transport_shutdown_fn,
    close: zh_transport_close_fn,
    userdata: *mut c_void,
    handle: *mut zh_transport,
    /// Cleared when adoption failed: then nothing was taken and `close` must not run.
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

// SAFETY: zh_engine_adopt_transport documents that the callbacks run on the engine's worker
// thread with their userdata; the handle is owned by this value and freed once in Drop.
unsafe impl Send for CTransport {}

fn outcome(r: isize) -> io::Result<usize> {
    match r {
        n if n >= 0 => Ok(n as usize),
        ZH_TRANSPORT_AGAIN => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        _ => Err(io::Error::other("the host transport reported an error")),
    }
}

impl Transport for CTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the host's read callback with its userdata and a live writable buffer.
        let r = unsafe { (self.read)(self.userdata, buf.as_mut_ptr(), buf.len()) };
        outcome(r).map(|n| n.min(buf.len()))
    }

    fn write_vectored(&mut self, bufs: &[&[u8]]) -> io::Result<usize> {
        let iov: Vec<zh_iovec> = bufs.iter().map(|b| zh_iovec { base: b.as_ptr(), len: b.len() }).collect();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        // SAFETY: the host's write callback with its userdata and slices alive for the call.
        let r = unsafe { (self.writev)(self.userdata, iov.as_ptr(), iov.len()) };
        outcome(r).map(|n| n.min(total))
    }

    fn shutdown_write(&mut self) {
        if let Some(f) = self.shutdown {
            // SAFETY: the host's optional shutdown callback with its userdata.
            unsafe { f(self.userdata) }
        }
    }
}

impl Drop for CTransport {
    fn drop(&mut self) {
        let armed = self.armed.load(std::sync::atomic::Ordering::Acquire);
        if let Some(f) = self.close.filter(|_| armed) {
            // SAFETY: the host's close callback, exactly once (Drop runs once).
            unsafe { f(self.userdata) }
        }
        // SAFETY: created by Box::into_raw in zh_engine_adopt_transport; freed only here, after
        // close returned (the end of the handle's documented validity).
        let handle = unsafe { Box::from_raw(self.handle) };
        handle.waker.detach();
    }
}

/// Serves one connection over a host-provided byte stream — TLS the host terminates (OpenSSL,
/// rustls-ffi), or anything else. The engine calls `read`/`writev` on a worker thread; when one
/// returns `ZH_TRANSPORT_AGAIN` the host calls `zh_transport_ready(*out)` once its side can go
/// on (e.g. its socket became readable or writable). File and pipe chunks are copied through a
/// pooled buffer (a transport cannot take `sendfile`). `peer` ("ip:port", may be NULL) is what
/// `zh_request_peer_addr` reports. On success `close(userdata)` runs exactly once when the engine
/// is done; `*out` stays valid until then. On an error nothing is taken and no callback runs.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_adopt_transport(
    engine: *mut zh_engine,
    read: zh_transport_read_fn,
    writev: zh_transport_writev_fn,
    shutdown: zh_transport_shutdown_fn,
    close: zh_transport_close_fn,
    userdata: *mut c_void,
    peer: *const c_char,
    out: *mut *mut zh_transport,
) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        let (Some(read), Some(writev)) = (read, writev) else { return ZH_ERR_NULL };
        if out.is_null() {
            return ZH_ERR_NULL;
        }
        let peer = match cstr_bytes(peer) {
            None => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            Some(b) => match std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()) {
                Some(a) => a,
                None => return ZH_ERR_ADDR,
            },
        };
        let waker = SourceWaker::new();
        let handle = Box::into_raw(Box::new(zh_transport { waker: waker.clone() }));
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let t = CTransport { read, writev, shutdown, close, userdata, handle, armed: armed.clone() };
        // The worker attaches the waker to the connection; the host's handle shares it.
        match engine_of(engine).adopt_transport_with(Box::new(t), peer, waker) {
            Ok(()) => {
                write_out(out, handle);
                ZH_OK
            }
            Err((e, t)) => {
                // Not taken: free our handle without calling the host's close.
                armed.store(false, std::sync::atomic::Ordering::Release);
                drop(t);
                result_of(Err(e))
            }
        }
    })
}

/// The transport's side is ready again (after `ZH_TRANSPORT_AGAIN`): the engine retries reading
/// and writing on its worker. Thread-safe; valid until the transport's `close` has returned.
#[unsafe(no_mangle)]
pub extern "C" fn zh_transport_ready(t: *mut zh_transport) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let t = try_ref!(t);
        t.waker.wake();
        ZH_OK
    })
}
