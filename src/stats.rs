//! Per-worker counters. Each worker is the only writer of its own block, so increments are a
//! plain load + store (no locked instruction on the hot path); readers on other threads see
//! relaxed values, which is all a statistics snapshot needs.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one worker.
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct WorkerStats { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A plain copy of the counters, summed over workers.
        #[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot { $($(#[$doc])* pub $name: u64,)* }

        impl WorkerStats {
            /// Adds this worker's counters into `into`.
            pub fn add_to(&self, into: &mut Snapshot) {
                $(into.$name += self.$name.load(Ordering::Relaxed);)*
            }
        }
    };
}

counters! {
    connections_accepted, connections_active, connections_closed,
    requests, responses, bytes_received,
    /// Head and memory chunks sent by writev/sendmsg.
    bytes_writev,
    bytes_sendfile, bytes_splice, bytes_copy_file_range,
    /// Bytes that went through a user-space buffer: a zero-copy path was refused or forced
    /// off, or a small file region was read into the head's sendmsg
    /// (`Config::small_file_read_max`).
    bytes_copy,
    syscalls_writev, syscalls_sendfile, syscalls_splice, syscalls_copy_file_range, syscalls_copy,
    syscalls_read,
    fallbacks,
    errors_parse, errors_io, errors_timeout, errors_truncated, errors_limit,
    /// Request body bytes moved into a caller's fd by splice (socket → pipe → file).
    body_bytes_spliced,
    /// Request body bytes written into a caller's fd from user space (pwrite).
    body_bytes_copied,
    /// File ranges found outside the page cache and warmed on a helper thread.
    cold_offloads,
    /// Page-cache residency probes (cachestat) before sendfile.
    syscalls_probe,
    /// Files opened (and fstat-ed) for `respond_file_at`.
    file_opens,
    /// `respond_file_at` lookups answered from the open-file cache without a syscall.
    file_cache_hits,
    /// Cached open files checked with one fstatat after their validity interval (and kept).
    file_cache_revalidations,
}

/// Adds `n` to a counter owned by the calling worker (single writer: no atomic RMW needed).
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Subtracts `n` from a gauge owned by the calling worker.
#[inline]
pub fn drop_by(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_sub(n), Ordering::Relaxed);
}
