//! `zh_stats`: counters that show which kernel path carried the bytes.

use crate::ffi::engine::{engine_of, zh_engine};
use crate::ffi::result::*;

/// Engine counters, summed over workers. Set `struct_size = sizeof(zh_stats)` before calling
/// `zh_engine_stats`; the struct only grows at the end, and the engine fills only the fields
/// that fit in `struct_size`, so old programs keep working with newer libraries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct zh_stats {
    pub struct_size: u32,
    pub connections_accepted: u64,
    /// Connections open right now.
    pub connections_active: u64,
    pub connections_closed: u64,
    /// Request heads parsed (including ones answered with an error).
    pub requests: u64,
    /// Responses fully sent.
    pub responses: u64,
    pub bytes_received: u64,
    /// Head and memory chunks sent by `sendmsg`/`writev`.
    pub bytes_writev: u64,
    /// File regions sent by `sendfile`.
    pub bytes_sendfile: u64,
    pub bytes_splice: u64,
    pub bytes_copy_file_range: u64,
    /// Bytes copied through user space: because a zero-copy path was refused or forced off
    /// (file regions: pread + send; pipe/socket sources: read, then sent as memory, so those
    /// bytes also appear in `bytes_writev`), and small file regions read on purpose into the
    /// head's `sendmsg` (`zh_config_set_small_file_read_max`, default 4096; not in
    /// `bytes_writev`). File bytes of a response are `bytes_sendfile + bytes_copy`.
    pub bytes_copy: u64,
    pub syscalls_writev: u64,
    pub syscalls_sendfile: u64,
    pub syscalls_splice: u64,
    pub syscalls_copy_file_range: u64,
    pub syscalls_copy: u64,
    pub syscalls_read: u64,
    /// Times a zero-copy path was refused by the kernel and a fallback taken.
    pub fallbacks: u64,
    /// Malformed requests (answered 400/501/505 and closed).
    pub errors_parse: u64,
    pub errors_io: u64,
    pub errors_timeout: u64,
    /// File regions that turned out shorter than promised (connection aborted).
    pub errors_truncated: u64,
    /// Requests over a limit (413/414/431).
    pub errors_limit: u64,
    /// Request body bytes moved into a caller's fd by `splice` (socket → pipe → file).
    pub body_bytes_spliced: u64,
    /// Request body bytes written into a caller's fd from user space (`pwrite`): bytes that
    /// arrived together with the head, and chunked bodies.
    pub body_bytes_copied: u64,
    /// File ranges that were not in the page cache and were read in by a helper thread, so
    /// the event loop never waited for the disk.
    pub cold_offloads: u64,
    /// Page-cache residency probes (`cachestat`) made before `sendfile`.
    pub syscalls_probe: u64,
    /// Files opened (and `fstat`ed) by `zh_respond_file_at`.
    pub file_opens: u64,
    /// `zh_respond_file_at` calls answered from the open-file cache without a syscall.
    pub file_cache_hits: u64,
    /// Cached files checked with one `fstatat` after their validity interval, and kept.
    pub file_cache_revalidations: u64,
}

/// Fills `*out` with the engine's counters, up to `out->struct_size` bytes.
/// `ZH_ERR_INVALID` if `struct_size` is less than 16: the `struct_size` field, its padding and
/// the first counter.
#[unsafe(no_mangle)]
pub extern "C" fn zh_engine_stats(engine: *const zh_engine, out: *mut zh_stats) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let engine = try_ref!(engine);
        if out.is_null() {
            return ZH_ERR_NULL;
        }
        // SAFETY: non-NULL; the caller promises at least the struct_size field is readable.
        let size = unsafe { out.cast::<u32>().read_unaligned() } as usize;
        if size < std::mem::size_of::<u64>() * 2 {
            return ZH_ERR_INVALID;
        }
        let s = engine_of(engine).stats();
        let full = zh_stats {
            struct_size: size as u32,
            connections_accepted: s.connections_accepted,
            connections_active: s.connections_active,
            connections_closed: s.connections_closed,
            requests: s.requests,
            responses: s.responses,
            bytes_received: s.bytes_received,
            bytes_writev: s.bytes_writev,
            bytes_sendfile: s.bytes_sendfile,
            bytes_splice: s.bytes_splice,
            bytes_copy_file_range: s.bytes_copy_file_range,
            bytes_copy: s.bytes_copy,
            syscalls_writev: s.syscalls_writev,
            syscalls_sendfile: s.syscalls_sendfile,
            syscalls_splice: s.syscalls_splice,
            syscalls_copy_file_range: s.syscalls_copy_file_range,
            syscalls_copy: s.syscalls_copy,
            syscalls_read: s.syscalls_read,
            fallbacks: s.fallbacks,
            errors_parse: s.errors_parse,
            errors_io: s.errors_io,
            errors_timeout: s.errors_timeout,
            errors_truncated: s.errors_truncated,
            errors_limit: s.errors_limit,
            body_bytes_spliced: s.body_bytes_spliced,
            body_bytes_copied: s.body_bytes_copied,
            cold_offloads: s.cold_offloads,
            syscalls_probe: s.syscalls_probe,
            file_opens: s.file_opens,
            file_cache_hits: s.file_cache_hits,
            file_cache_revalidations: s.file_cache_revalidations,
        };
        let n = size.min(std::mem::size_of::<zh_stats>());
        // SAFETY: `full` is a live local of size_of::<zh_stats>() >= n bytes; the caller
        // promised `out` has `struct_size` >= n writable bytes; the regions cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping((&full as *const zh_stats).cast::<u8>(), out.cast::<u8>(), n) };
        ZH_OK
    })
}
