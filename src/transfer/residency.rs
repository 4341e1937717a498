//! Is a file range in the page cache? Asked before `sendfile` so a cold range is warmed on a
//! helper thread instead of stalling the event loop in a disk read. Uses `cachestat(2)`
//! (Linux 6.5+), which reports residency without reading any data.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::stats::{bump, WorkerStats};

/// cachestat(2) has the same number on every Linux architecture (the unified table).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// What a residency probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Residency {
    Cached,
    Cold,
    /// The kernel cannot tell (no cachestat): treat as cached, and stop asking.
    Unknown,
}

/// Whether every page of `[offset, offset + len)` of `fd` is in the page cache.
pub fn probe(fd: RawFd, offset: u64, len: u64, stats: &WorkerStats) -> Residency {
    if len == 0 {
        return Residency::Cached;
    }
    let range = CachestatRange { off: offset, len };
    let mut cs = Cachestat::default();
    bump(&stats.syscalls_probe, 1);
    // SAFETY: cachestat reads `range` and writes `cs`, both live locals of the layout the
    // kernel expects; flags must be 0. It reads no file data.
    let r = unsafe { libc::syscall(SYS_CACHESTAT, fd, &range as *const CachestatRange, &mut cs as *mut Cachestat, 0u32) };
    if r != 0 {
        return Residency::Unknown;
    }
    let page = 4096u64;
    let first = offset / page;
    let last = (offset + len - 1) / page;
    if cs.nr_cache > last - first { Residency::Cached } else { Residency::Cold }
}

/// A descriptor of its own for a helper thread, so closing the original (the connection went
/// away) cannot leave the helper reading a reused fd number.
pub fn dup_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor number; the result is checked and owned by us.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `r` was just created by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Brings `[offset, offset + len)` into the page cache, blocking (run on a helper thread), and
/// returns only once the pages are readable. `readahead` merely starts the reads: its pages are
/// in the cache (and counted by `cachestat`) while their I/O is still in flight, so a `sendfile`
/// on the event loop right after it would wait for the disk after all. Sending the range to
/// `/dev/null` waits for every page without copying it anywhere; where that is refused, the
/// range is read through a scratch buffer instead.
pub fn warm(fd: RawFd, offset: u64, len: u64) {
    // SAFETY: readahead on a descriptor we own; no memory is passed.
    unsafe { libc::readahead(fd, offset as libc::off64_t, len as usize) };
    if wait_readable(fd, offset, len).is_ok() {
        return;
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        // SAFETY: `buf` has `want` initialised bytes; pread writes at most that many.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), want, at as libc::off_t) };
        if n <= 0 {
            return;
        }
        at += n as u64;
    }
}

thread_local! {
    /// The helper thread's `/dev/null`, opened once.
    static DEV_NULL: Option<std::fs::File> = std::fs::OpenOptions::new().write(true).open("/dev/null").ok();
}

/// `sendfile` of the range into `/dev/null`: returns when every page of it has been read in.
fn wait_readable(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    DEV_NULL.with(|null| {
        let Some(null) = null else { return Err(io::Error::from(io::ErrorKind::NotFound)) };
        let mut off = offset as libc::off_t;
        let end = (offset + len) as libc::off_t;
        while off < end {
            // SAFETY: sendfile between two descriptors we hold open; `off` is a live local the
            // kernel reads and advances. No user memory is involved.
            let n = unsafe { libc::sendfile(std::os::fd::AsRawFd::as_raw_fd(null), fd, &mut off, (end - off) as usize) };
            if n == 0 {
                return Ok(()); // end of file
            }
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(err);
            }
        }
        Ok(())
    })
}

/// Drops a file's clean pages from the page cache (`posix_fadvise(DONTNEED)`), e.g. to test
/// or benchmark the cold path. Dirty pages must be written back first (`File::sync_all`).
pub fn evict(fd: RawFd) -> io::Result<()> {
    // SAFETY: posix_fadvise on a descriptor number with constant advice; no memory passed.
    let r = unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 { Err(io::Error::from_raw_os_error(r)) } else { Ok(()) }
}
