//! Sending a chain of chunks to a non-blocking socket.
//!
//! Consecutive memory chunks go out in one `sendmsg` (gathered, `MSG_NOSIGNAL`, and `MSG_MORE`
//! when a file region follows so head and file data share segments). File regions go by
//! `sendfile`; where the kernel refuses it (EINVAL/ENOSYS/EOPNOTSUPP) the refusal is remembered
//! in [`PathMemory`] and the region is copied through a pooled buffer with `pread` + `send`.
//! A file that ends before its region does is an error, never padding and never a hang.
//!
//! Small-file path (`Config::small_file_read_max`, default 4096; 0 turns it off): a file
//! region of at most that many bytes that follows memory in the queue is read with
//! `preadv2(RWF_NOWAIT)` into a per-worker buffer and goes out in the same `sendmsg` as the
//! memory before it (measured cheaper than `sendfile` up to 4 KiB: BENCHMARKS.md). `RWF_NOWAIT`
//! means the read never waits for the disk: a region not wholly in the page cache (or a read
//! that fails or comes up short) is simply not gathered and takes the usual route (probe,
//! `sendfile`), which also reports the error or the truncation. Those bytes are counted in
//! `bytes_copy` (they went through user space) and the reads in `syscalls_copy`;
//! `bytes_writev` keeps counting only memory bytes.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use bytes::Buf;

use crate::body::{Chunk, FileFd};
use crate::stats::{bump, WorkerStats};
use crate::transfer::residency::{self, Residency};
use crate::transfer::splice::{self, FdStall, PipePair};
use crate::transfer::warm_memo::WarmMemo;

/// At most this many slices per `sendmsg`; well under IOV_MAX (1024 on Linux).
const MAX_IOV: usize = 64;
/// One `sendfile` call moves at most this much on a connection whose congestion control paces
/// (`bbr`: with no `fq` qdisc TCP paces each socket with its own timer). Smaller calls measured
/// faster *and* cheaper into such a loopback socket: one connection downloading 1 GiB, 4
/// alternations (BENCHMARKS.md, 2026-11-29) went 3.1-3.5 GB/s at 300-311 ms of server CPU per
/// GiB with 1 MiB calls, 4.1-4.5 GB/s at 209-221 ms with 256 KiB calls, with no change for 16
/// connections on 1 MiB files. lighttpd sends 256 KiB per call too. The kernel caps a call at
/// 0x7ffff000 bytes.
const SENDFILE_CALL_MAX: u64 = 256 << 10;
/// The same for a connection that does not pace (`cubic`, `reno`): 1 MiB files to 16
/// connections over loopback with `reno`, 5 alternations, cost 119 against 143 us of server CPU
/// per file with 1 MiB against 256 KiB calls (a whole file per call, so one `sendfile` per
/// response); a 1 GiB download was level (median 0.13 against 0.15 s/GB, 6 alternations,
/// spread larger than that).
const SENDFILE_CALL_MAX_UNPACED: u64 = 1 << 20;
/// A file rest this small goes with the call before it (see [`sendfile_count`]); room for a
/// response head's worth of bytes, which is what such a rest usually is.
const SENDFILE_TAIL_MAX: u64 = 16 << 10;
/// Size of the copy-fallback buffer.
const COPY_BUF: usize = 64 * 1024;

/// Which zero-copy paths the kernel refused for this kind of destination; a refused path is
/// never tried again (one per worker, for TCP sockets).
#[derive(Debug, Default)]
pub struct PathMemory {
    sendfile_refused: bool,
    splice_refused: bool,
    /// Ask the page cache before sendfile (set from the config).
    probe_cold: bool,
    copy_buf: Vec<u8>,
    /// File regions up to this many bytes may be read into `small_buf` and sent with the
    /// memory before them (0 = off; from the config).
    small_file_max: usize,
    /// `preadv2(RWF_NOWAIT)` is not supported here: the small-file path is off for good.
    small_file_refused: bool,
    /// Where small file regions are read (allocated on first use, `small_file_max` bytes).
    small_buf: Vec<u8>,
    /// Ranges of cached files found in the page cache moments ago, for all connections.
    warm_memo: WarmMemo,
}

/// Per-connection transfer state: the staging pipe and what is known of a file's page cache.
///
/// A cold file streams best when the disk pool reads the next window while the current one is
/// sent: sending from a window the pool brought in asks for the following one (`prefetch`,
/// handed to the pool by the connection), one window ahead at most. Until the pool reports
/// back, that range is neither probed nor sent: its pages are in the cache (and counted by
/// `cachestat`) before their reads complete, so a `sendfile` there would wait for the disk.
#[derive(Debug, Default)]
pub struct ConnPaths {
    pub(crate) pipe: Option<PipePair>,
    /// This byte range of this fd was found in the page cache.
    warm: Range,
    /// The range the disk pool is reading in for this connection.
    reading: Range,
    /// The last range the disk pool finished for this connection.
    pooled: Range,
    /// A read-ahead for the connection to hand to the disk pool.
    prefetch: Range,
    /// The socket's congestion control does not pace: `sendfile` calls may be larger.
    unpaced: bool,
}

impl ConnPaths {
    /// Says whether the socket's congestion control leaves it unpaced (see [`crate::transfer::paces`]).
    pub fn set_unpaced(&mut self, unpaced: bool) {
        self.unpaced = unpaced;
    }

    pub fn unpaced(&self) -> bool {
        self.unpaced
    }

    /// Records that `[from, to)` of `fd` is in the page cache.
    pub fn mark_warm(&mut self, fd: RawFd, from: u64, to: u64) {
        self.warm = Some((fd, from, to));
    }

    /// The disk pool is reading `[from, to)` of `fd` in (a cold range or a read-ahead).
    pub fn mark_reading(&mut self, fd: RawFd, from: u64, to: u64) {
        self.reading = Some((fd, from, to));
    }

    /// The disk pool finished `[from, to)` of `fd`: its pages can be sent without waiting.
    /// A read this connection no longer waits for (replaced by another, or forgotten with the
    /// chunks that asked for it, see [`ConnPaths::forget_files`]) says nothing about whatever
    /// file that fd number names now: ignored (the page cache is asked again when it matters).
    pub fn pool_done(&mut self, fd: RawFd, from: u64, to: u64) {
        if self.reading != Some((fd, from, to)) {
            return;
        }
        self.reading = None;
        self.warm = Some((fd, from, to));
        self.pooled = Some((fd, from, to));
    }

    /// Every chunk these ranges were learned for has left. Ranges are keyed by fd number, and a
    /// closed fd's number comes back for the next file opened: a range kept past its chunks
    /// could make a cold file look cached and block the worker in `sendfile`.
    pub fn forget_files(&mut self) {
        self.warm = None;
        self.reading = None;
        self.pooled = None;
        self.prefetch = None;
    }

    /// The read-ahead the connection should submit now, if any (see the type's docs).
    pub fn take_prefetch(&mut self) -> Option<(RawFd, u64, u64)> {
        self.prefetch.take()
    }

    /// The submission failed: nothing is being read after all.
    pub fn prefetch_refused(&mut self) {
        self.reading = None;
    }
}

/// (fd, from, to): a byte range of a file.
type Range = Option<(RawFd, u64, u64)>;

/// Whether `offset` of `fd` lies in `range`.
fn covers(range: &Range, fd: RawFd, offset: u64) -> bool {
    matches!(*range, Some((f, from, to)) if f == fd && offset >= from && offset < to)
}

/// `to`, or less: a range still being read in by the disk pool looks cached too, so a warm range
/// starting at `offset` stops short of it.
fn short_of_reading(reading: &Range, fd: RawFd, offset: u64, to: u64) -> u64 {
    match *reading {
        Some((f, from, _)) if f == fd && from > offset => to.min(from),
        _ => to,
    }
}

/// Bytes probed before sendfile when the large window is not all cached.
const PROBE_WINDOW: u64 = 2 << 20;
/// Bytes probed at once first (one cachestat covers a whole hot file or a large part).
const PROBE_WINDOW_LARGE: u64 = 64 << 20;
/// Bytes a disk-pool thread reads in for a cold range.
const WARM_WINDOW: u64 = 8 << 20;

impl PathMemory {
    /// Marks sendfile as refused (a config knob and tests use this to force the copy path).
    pub fn refuse_sendfile(&mut self) {
        self.sendfile_refused = true;
    }

    /// Marks splice as refused (forces the read + send path for pipe and socket sources).
    pub fn refuse_splice(&mut self) {
        self.splice_refused = true;
    }

    pub(crate) fn copy_buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.copy_buf
    }

    /// Whether splice may be tried (not refused by the kernel, not forced off).
    pub fn splice_allowed(&self) -> bool {
        !self.splice_refused
    }

    /// Probe page-cache residency before each sendfile window, reporting cold ranges.
    pub fn probe_cold(&mut self, on: bool) {
        self.probe_cold = on;
    }

    /// Read file regions of at most `max` bytes into the sendmsg of the memory before them
    /// (0 = never; see the module docs).
    pub fn small_file_read_max(&mut self, max: usize) {
        self.small_file_max = max;
    }
}

/// How far a send got.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The chain is empty.
    All,
    /// The socket would block; wait for writability.
    Blocked,
    /// The front chunk is a source: the engine must poll it for concrete chunks.
    Source,
    /// A pipe/socket source has nothing yet: wait for this fd to become readable.
    SourceBlocked(RawFd),
    /// The file range at the front is not in the page cache: warm it off the event loop,
    /// then send again.
    Cold { fd: RawFd, offset: u64, len: u64 },
    /// The disk pool is already reading the range at the front in: send again when it is done.
    DiskBusy,
    /// `budget` bytes went out (a file call may add a rest of at most 16 KiB) and the socket
    /// would take more: let other connections have a turn first (the socket stays writable,
    /// so no event will come: the caller re-queues).
    Budget,
}

/// Why a send stopped for good; the connection must be closed.
#[derive(Debug)]
pub enum SendError {
    Io(io::Error),
    /// A file region ended early (the file shrank after it was submitted).
    Truncated,
}

/// Bytes written by one call, response ends passed, and how it ended.
#[derive(Debug)]
pub struct SendReport {
    pub bytes: u64,
    /// `Chunk::End` markers passed: that many responses have fully left.
    pub ends: usize,
    pub outcome: Result<Sent, SendError>,
}

/// Writes as much of `chain` to `fd` as the socket takes, dropping chunks as they complete
/// (which releases lent memory and closes owned fds).
pub fn send_chain(fd: RawFd, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, paths: &mut PathMemory, conn: &mut ConnPaths, budget: u64) -> SendReport {
    let pipe = &mut conn.pipe;
    let mut total = 0u64;
    let mut ends = 0usize;
    macro_rules! report {
        ($outcome:expr) => {
            return SendReport { bytes: total, ends, outcome: $outcome }
        };
    }
    loop {
        let step = match chain.front() {
            None => report!(Ok(Sent::All)),
            Some(Chunk::End) => {
                chain.pop_front();
                ends += 1;
                continue;
            }
            Some(Chunk::Source(_)) => report!(Ok(Sent::Source)),
            Some(Chunk::Fd(_)) => match splice::send_fd(fd, chain, pipe, paths.splice_refused, &mut paths.copy_buf, stats) {
                Ok(n) => Ok(n),
                Err(stall) => match stall {
                    FdStall::Refused => {
                        paths.splice_refused = true;
                        bump(&stats.fallbacks, 1);
                        continue;
                    }
                    FdStall::Source(src) => report!(Ok(Sent::SourceBlocked(src))),
                    other => Err(StepError::from(other)),
                },
            },
            Some(Chunk::Piped(_)) => splice::send_piped(fd, chain, pipe, stats).map_err(StepError::from),
            Some(Chunk::Memory(_)) => send_memory(fd, chain, stats, &mut ends, paths),
            Some(Chunk::File(r)) if paths.probe_cold && covers(&conn.reading, r.fd.raw(), r.offset) => report!(Ok(Sent::DiskBusy)),
            Some(Chunk::File(r)) if paths.probe_cold && !covers(&conn.warm, r.fd.raw(), r.offset) => {
                let (rfd, offset) = (r.fd.raw(), r.offset);
                // A cached file another request just found in the page cache is not asked again.
                let shared = match &r.fd {
                    FileFd::Shared(a) => Some((a, Instant::now())),
                    _ => None,
                };
                if let Some((from, to)) = shared.and_then(|(a, now)| paths.warm_memo.lookup(a, offset, now)) {
                    conn.warm = Some((rfd, from, short_of_reading(&conn.reading, rfd, offset, to)));
                    continue;
                }
                // One probe over a large window keeps sendfile calls large for hot files; when
                // that window is not all cached, a small one decides whether to send or warm.
                let big = r.len.min(PROBE_WINDOW_LARGE);
                let small = r.len.min(PROBE_WINDOW);
                let mut found = residency::probe(rfd, offset, big, stats);
                let mut len = big;
                if found == Residency::Cold && small < big {
                    found = residency::probe(rfd, offset, small, stats);
                    len = small;
                }
                match found {
                    Residency::Cached => {
                        let end = short_of_reading(&conn.reading, rfd, offset, offset + len);
                        conn.warm = Some((rfd, offset, end));
                        if let Some((a, now)) = shared {
                            paths.warm_memo.remember(a, offset, end, now);
                        }
                        continue;
                    }
                    Residency::Cold => report!(Ok(Sent::Cold { fd: rfd, offset, len: r.len.min(WARM_WINDOW) })),
                    Residency::Unknown => {
                        paths.probe_cold = false;
                        continue;
                    }
                }
            }
            Some(Chunk::File(r)) if !paths.sendfile_refused => {
                if paths.probe_cold {
                    ask_read_ahead(&mut conn.reading, &mut conn.prefetch, &conn.pooled, r);
                }
                let call_max = if conn.unpaced { SENDFILE_CALL_MAX_UNPACED } else { SENDFILE_CALL_MAX };
                match send_file(fd, chain, stats, if paths.probe_cold { conn.warm } else { None }, total, budget, call_max) {
                    Err(StepError::Refused) => {
                        paths.sendfile_refused = true;
                        bump(&stats.fallbacks, 1);
                        continue;
                    }
                    other => other,
                }
            }
            Some(Chunk::File(_)) => copy_file(fd, chain, stats, &mut paths.copy_buf),
        };
        match step {
            Ok(n) => {
                total += n;
                if total >= budget && !chain.is_empty() {
                    report!(Ok(Sent::Budget));
                }
            }
            Err(StepError::WouldBlock) => report!(Ok(Sent::Blocked)),
            Err(StepError::Truncated) => report!(Err(SendError::Truncated)),
            Err(StepError::Io(e)) => report!(Err(SendError::Io(e))),
            Err(StepError::Refused) => unreachable!("refusals are handled where they occur"),
        }
    }
}

enum StepError {
    WouldBlock,
    Truncated,
    Refused,
    Io(io::Error),
}

impl From<FdStall> for StepError {
    fn from(s: FdStall) -> Self {
        match s {
            FdStall::Socket => StepError::WouldBlock,
            FdStall::Truncated => StepError::Truncated,
            FdStall::Refused => StepError::Refused,
            FdStall::Io(e) => StepError::Io(e),
            FdStall::Source(_) => unreachable!("handled by the caller"),
        }
    }
}

fn classify(err: io::Error) -> Option<StepError> {
    match err.raw_os_error() {
        Some(libc::EINTR) => None,
        Some(libc::EAGAIN) => Some(StepError::WouldBlock),
        _ => Some(StepError::Io(err)),
    }
}

/// Drops `n` sent bytes from the front of the chain's memory chunks (and file regions gathered
/// by the small-file path), counting the response ends passed on the way. Returns how many of
/// the `n` bytes were file bytes.
pub(super) fn consume_memory(chain: &mut VecDeque<Chunk>, mut n: usize, ends: &mut usize) -> u64 {
    let mut file_bytes = 0u64;
    while n > 0 {
        match chain.front_mut() {
            Some(Chunk::End) => {
                chain.pop_front();
                *ends += 1;
            }
            Some(Chunk::Memory(b)) if b.len() <= n => {
                n -= b.len();
                chain.pop_front();
            }
            Some(Chunk::Memory(b)) => {
                b.advance(n);
                n = 0;
            }
            Some(Chunk::File(r)) => {
                let k = r.len.min(n as u64);
                file_bytes += k;
                n -= k as usize;
                r.offset += k;
                r.len -= k;
                if r.len == 0 {
                    chain.pop_front();
                }
            }
            _ => unreachable!("consumed more bytes than the gathered chunks hold"),
        }
    }
    file_bytes
}

fn send_memory(fd: RawFd, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, ends: &mut usize, paths: &mut PathMemory) -> Result<u64, StepError> {
    // Only the first `count` entries are ever read; zeroing all 64 showed in profiles.
    let mut iov = [const { std::mem::MaybeUninit::<libc::iovec>::uninit() }; MAX_IOV];
    let mut count = 0;
    let mut more = false;
    let budget = if paths.small_file_refused { 0 } else { paths.small_file_max };
    if budget > 0 && paths.small_buf.len() < budget {
        paths.small_buf.resize(budget, 0);
    }
    // One raw pointer for every read into and slice of `small_buf`; it is not resized below.
    let small_base = paths.small_buf.as_mut_ptr();
    let mut small_used = 0usize;
    for chunk in chain.iter() {
        match chunk {
            // Pipelined responses go out together: gather across response ends.
            Chunk::End => {}
            Chunk::Memory(b) if count < MAX_IOV => {
                iov[count].write(libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() });
                count += 1;
            }
            // A small, cached file region right after memory joins the same sendmsg.
            Chunk::File(r) if budget > 0 && count > 0 && count < MAX_IOV && r.len > 0 && r.len <= (budget - small_used) as u64 => {
                let len = r.len as usize;
                // SAFETY: `small_used + len <= budget <= small_buf.len()`, so the target lies
                // inside `small_buf`, which is neither moved nor resized while `iov` is in use.
                let dst = unsafe { small_base.add(small_used) };
                match read_cached(r.fd.raw(), dst, len, r.offset, stats) {
                    Cached::Whole => {
                        iov[count].write(libc::iovec { iov_base: dst.cast(), iov_len: len });
                        count += 1;
                        small_used += len;
                    }
                    Cached::Unsupported => {
                        paths.small_file_refused = true;
                        more = true;
                        break;
                    }
                    Cached::No => {
                        more = true;
                        break;
                    }
                }
            }
            // Cork only before data that is ready to follow at once; a source may go quiet, and
            // corked bytes would then wait for the kernel's 200 ms cork timer.
            Chunk::Memory(_) | Chunk::File(_) | Chunk::Piped(_) => {
                more = true;
                break;
            }
            Chunk::Fd(_) | Chunk::Source(_) => break,
        }
    }
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header that we then fill.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `iovec` and `MaybeUninit<iovec>` have the same layout; the kernel reads `count` of them.
    msg.msg_iov = iov.as_mut_ptr().cast::<libc::iovec>();
    msg.msg_iovlen = count;
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    loop {
        bump(&stats.syscalls_writev, 1);
        // One buffer (a head with its small body inlined, the usual keep-alive answer) goes by
        // send(2): the kernel then skips importing a msghdr and an iovec array.
        let n = if count == 1 {
            // SAFETY: iov[0] was written above (count is 1) and points into a `Bytes` held by
            // `chain` or into `small_buf`, neither touched until the call returns; send only
            // reads its `iov_len` bytes.
            let first = unsafe { iov[0].assume_init() };
            // SAFETY: see above: `first` describes live memory that nothing writes meanwhile.
            unsafe { libc::send(fd, first.iov_base, first.iov_len, flags) }
        } else {
            // SAFETY: the first `count` iovecs (all that `msg` names) were written above; each
            // points into a `Bytes` held by `chain` or into `small_buf`, neither touched until
            // the call returns; `msg` points at `iov`, alive for the whole call. sendmsg only
            // reads.
            unsafe { libc::sendmsg(fd, &msg, flags) }
        };
        if n >= 0 {
            let n = n as usize;
            let file_bytes = consume_memory(chain, n, ends);
            bump(&stats.bytes_writev, n as u64 - file_bytes);
            bump(&stats.bytes_copy, file_bytes);
            return Ok(n as u64);
        }
        if let Some(e) = classify(io::Error::last_os_error()) {
            return Err(e);
        }
    }
}

/// What a page-cache-only read of a small file region found.
enum Cached {
    /// All `len` bytes were read.
    Whole,
    /// Not (all) in the page cache, short, or failed: send the region the usual way.
    No,
    /// The kernel or filesystem does not do `RWF_NOWAIT` reads.
    Unsupported,
}

/// Reads `len` bytes at `offset` of `fd` into `dst` only if they are in the page cache.
fn read_cached(fd: RawFd, dst: *mut u8, len: usize, offset: u64, stats: &WorkerStats) -> Cached {
    let iov = libc::iovec { iov_base: dst.cast(), iov_len: len };
    bump(&stats.syscalls_copy, 1);
    // SAFETY: the caller guarantees `dst` is valid for writes of `len` bytes and not otherwise
    // borrowed; `iov` is a live local. preadv2 writes at most `len` bytes there.
    let n = unsafe { libc::preadv2(fd, &iov, 1, offset as libc::off_t, libc::RWF_NOWAIT) };
    if n >= 0 && n as usize == len {
        return Cached::Whole;
    }
    if n < 0 {
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => return Cached::Unsupported,
            _ => {}
        }
    }
    Cached::No
}

/// Sending from a window the pool brought in: have the next window of the region read in
/// meanwhile (one at a time).
fn ask_read_ahead(reading: &mut Range, prefetch: &mut Range, pooled: &Range, r: &crate::body::FileRegion) {
    let fd = r.fd.raw();
    if reading.is_some() || prefetch.is_some() || !covers(pooled, fd, r.offset) {
        return;
    }
    let Some((_, _, next)) = *pooled else { return };
    let end = r.offset + r.len;
    if next < end {
        let range = (fd, next, end.min(next + WARM_WINDOW));
        *prefetch = Some(range);
        *reading = Some(range);
    }
}

/// Bytes to ask of one `sendfile` for a region of `len` bytes, `turn_sent` of the turn's
/// `budget` bytes already out:
/// - at most to the next multiple of `call_max` ([`SENDFILE_CALL_MAX`] or
///   [`SENDFILE_CALL_MAX_UNPACED`]) in the turn (a loopback socket takes megabytes per call,
///   time other connections on this worker would wait) and at most the budget's rest. The
///   first call after a head is so shortened by the head's length, and the calls after it start
///   on `call_max` boundaries of the stream: with the calls 229 bytes off those boundaries a
///   1 GiB download measured 2.7 against 3.3 GB/s (median of 8 alternations) at 0.37 against
///   0.30 s of server CPU per GiB;
/// - the whole rest when no more than [`SENDFILE_TAIL_MAX`] would be left, instead of a tiny
///   call of its own a whole turn later (a 1 MiB file after a 229-byte head left its last 229
///   bytes so); a turn passes its budget by that much at most;
/// - at most `limit`, the part known to be in the page cache.
fn sendfile_count(len: u64, limit: u64, turn_sent: u64, budget: u64, call_max: u64) -> usize {
    let room = (call_max - turn_sent % call_max).min(budget.saturating_sub(turn_sent).max(1));
    let count = if len.saturating_sub(room) <= SENDFILE_TAIL_MAX { len } else { room };
    count.min(limit) as usize
}

#[allow(clippy::too_many_arguments)]
fn send_file(fd: RawFd, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, warm: Range, turn_sent: u64, budget: u64, call_max: u64) -> Result<u64, StepError> {
    let Some(Chunk::File(region)) = chain.front_mut() else { unreachable!() };
    // When probing, send no further than the range known to be cached.
    let limit = match warm {
        Some((_, _, to)) => to.saturating_sub(region.offset).max(1),
        None => u64::MAX,
    };
    let count = sendfile_count(region.len, limit, turn_sent, budget, call_max);
    let mut offset = region.offset as libc::off_t;
    loop {
        bump(&stats.syscalls_sendfile, 1);
        // SAFETY: `offset` is a live local the kernel updates; both descriptors are plain ints
        // (a closed one yields EBADF). sendfile does not keep any pointer.
        let n = unsafe { libc::sendfile(fd, region.fd.raw(), &mut offset, count) };
        if n > 0 {
            let n = n as u64;
            bump(&stats.bytes_sendfile, n);
            region.offset += n;
            region.len -= n;
            if region.len == 0 {
                chain.pop_front();
            }
            return Ok(n);
        }
        if n == 0 {
            return Err(StepError::Truncated);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => return Err(StepError::Refused),
            _ => {
                if let Some(e) = classify(err) {
                    return Err(e);
                }
            }
        }
    }
}

fn copy_file(fd: RawFd, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, buf: &mut Vec<u8>) -> Result<u64, StepError> {
    let Some(Chunk::File(region)) = chain.front_mut() else { unreachable!() };
    if buf.len() < COPY_BUF {
        buf.resize(COPY_BUF, 0);
    }
    let want = (region.len.min(COPY_BUF as u64)) as usize;
    let got = loop {
        bump(&stats.syscalls_copy, 1);
        // SAFETY: `buf` has at least `want` initialised bytes; pread writes at most `want` there.
        let n = unsafe { libc::pread(region.fd.raw(), buf.as_mut_ptr().cast(), want, region.offset as libc::off_t) };
        if n > 0 {
            break n as usize;
        }
        if n == 0 {
            return Err(StepError::Truncated);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(StepError::Io(err));
        }
    };
    loop {
        bump(&stats.syscalls_copy, 1);
        // SAFETY: the first `got` bytes of `buf` were filled by pread; send only reads them.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), got, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            let n = n as u64;
            bump(&stats.bytes_copy, n);
            region.offset += n;
            region.len -= n;
            if region.len == 0 {
                chain.pop_front();
            }
            return Ok(n);
        }
        if let Some(e) = classify(io::Error::last_os_error()) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{FileFd, FileRegion};
    use bytes::Bytes;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    fn temp_file(len: usize) -> (std::fs::File, Vec<u8>) {
        let path = std::env::temp_dir().join(format!("zh-send-{}-{len}-{:?}", std::process::id(), std::thread::current().id()));
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(&data).unwrap();
        std::fs::remove_file(&path).unwrap();
        (f, data)
    }

    fn drain(mut peer: UnixStream) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            peer.read_to_end(&mut out).unwrap();
            out
        })
    }

    fn run_to_end(fd: RawFd, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, paths: &mut PathMemory) -> Result<u64, SendError> {
        let mut total = 0;
        let mut pipe = ConnPaths::default();
        loop {
            // A small budget: every test that sends through here also crosses turn limits.
            let r = send_chain(fd, chain, stats, paths, &mut pipe, 64 * 1024);
            assert!(r.bytes <= 64 * 1024 + 16 * 1024, "a turn stays near its budget: {}", r.bytes);
            total += r.bytes;
            match r.outcome {
                Ok(Sent::All) => return Ok(total),
                Ok(Sent::Budget) => {}
                Ok(Sent::Blocked) | Ok(Sent::SourceBlocked(_)) | Ok(Sent::Cold { .. }) | Ok(Sent::DiskBusy) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Ok(Sent::Source) => panic!("sources are expanded by the engine"),
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn the_pool_reads_one_window_ahead_and_its_range_waits() {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let w = WARM_WINDOW;
        let (file, data) = temp_file(3 * w as usize - 100);
        let fd = file.as_raw_fd();
        let mut chain = VecDeque::new();
        chain.push_back(Chunk::File(FileRegion { fd: FileFd::Owned(OwnedFd::from(file)), offset: 0, len: 3 * w - 100 }));
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        paths.probe_cold(true);
        let mut conn = ConnPaths::default();
        // Sends until something other than a full socket or a used-up turn stops it.
        let mut step = |chain: &mut VecDeque<Chunk>, conn: &mut ConnPaths| loop {
            match send_chain(ours.as_raw_fd(), chain, &stats, &mut paths, conn, 1 << 20).outcome {
                Ok(Sent::Blocked) | Ok(Sent::Budget) => std::thread::sleep(std::time::Duration::from_millis(1)),
                other => return other.unwrap(),
            }
        };
        let front = |chain: &VecDeque<Chunk>| match chain.front() {
            Some(Chunk::File(r)) => r.offset,
            _ => u64::MAX,
        };

        // The pool is reading the first window: nothing is probed or sent (its pages may be
        // cached already but unread).
        conn.mark_reading(fd, 0, w);
        assert_eq!(step(&mut chain, &mut conn), Sent::DiskBusy);
        assert_eq!(front(&chain), 0);
        assert_eq!(stats.syscalls_probe.load(std::sync::atomic::Ordering::Relaxed), 0);

        // Done: sending from it asks for the next window, once, and stops where that begins.
        conn.pool_done(fd, 0, w);
        assert_eq!(step(&mut chain, &mut conn), Sent::DiskBusy);
        assert_eq!(front(&chain), w);
        assert_eq!(conn.take_prefetch(), Some((fd, w, 2 * w)));
        assert_eq!(conn.take_prefetch(), None);

        // The last window is shorter: the read-ahead ends with the region.
        conn.pool_done(fd, w, 2 * w);
        assert_eq!(step(&mut chain, &mut conn), Sent::DiskBusy);
        assert_eq!(conn.take_prefetch(), Some((fd, 2 * w, 3 * w - 100)));
        conn.pool_done(fd, 2 * w, 3 * w - 100);
        assert_eq!(step(&mut chain, &mut conn), Sent::All);
        assert_eq!(conn.take_prefetch(), None, "nothing after the region's end");
        drop(ours);
        assert!(reader.join().unwrap() == data, "bytes differ");
    }

    #[test]
    fn ranges_are_forgotten_with_their_chunks() {
        let mut conn = ConnPaths::default();
        conn.set_unpaced(true);
        conn.mark_reading(40, 0, 4096);
        conn.pool_done(40, 0, 4096);
        assert!(covers(&conn.warm, 40, 0) && covers(&conn.pooled, 40, 0));
        conn.mark_reading(40, 4096, 8192);
        conn.forget_files();
        assert_eq!((conn.warm, conn.reading, conn.pooled, conn.prefetch), (None, None, None, None));
        assert!(conn.unpaced(), "what the socket is like stays");
        // The read that was in flight reports back after the connection moved on: fd 40 may be
        // another file by now.
        conn.pool_done(40, 4096, 8192);
        assert_eq!((conn.warm, conn.pooled), (None, None));
        // A read replaced by a newer one is ignored too; the newer one counts.
        conn.mark_reading(7, 0, 100);
        conn.mark_reading(8, 0, 100);
        conn.pool_done(7, 0, 100);
        assert_eq!(conn.warm, None);
        conn.pool_done(8, 0, 100);
        assert!(covers(&conn.warm, 8, 0) && conn.reading.is_none());
    }

    #[test]
    fn one_sendfile_call_moves_at_most_256_kib() {
        let gib = 1u64 << 30;
        let (call, turn) = (256usize << 10, 1u64 << 20);
        let count = |len, limit, sent, budget| sendfile_count(len, limit, sent, budget, SENDFILE_CALL_MAX);
        assert_eq!(count(gib, u64::MAX, 0, turn), call);
        assert_eq!(count(gib, 5000, 0, turn), 5000, "the cached part");
        assert_eq!(count(300, u64::MAX, 0, turn), 300, "the region");
        assert_eq!(count(gib, u64::MAX, turn - 1000, turn), 1000, "the turn's rest");
        // After a 229-byte head the first call ends on the stream's next 256 KiB boundary…
        assert_eq!(count(gib, u64::MAX, 229, turn), call - 229);
        assert_eq!(count(gib, u64::MAX, call as u64, turn), call);
        // …and a 1 MiB file's last call takes the head's worth of rest along.
        let last = turn - (call as u64 - 229) - 2 * call as u64;
        assert_eq!(count(last, u64::MAX, 229 + turn - last, turn), last as usize);
        assert_eq!(count(call as u64 + (16 << 10), u64::MAX, 0, turn), call + (16 << 10), "a rest up to 16 KiB");
        assert_eq!(count(call as u64 + (16 << 10) + 1, u64::MAX, 0, turn), call, "a larger rest is a call of its own");
    }

    #[test]
    fn an_unpaced_connection_sends_a_1_mib_file_in_one_call() {
        let (mib, turn) = (1u64 << 20, 1u64 << 20);
        let count = |len, limit, sent, budget| sendfile_count(len, limit, sent, budget, SENDFILE_CALL_MAX_UNPACED);
        assert_eq!(count(mib, u64::MAX, 229, turn), mib as usize, "the head's share goes along");
        assert_eq!(count(1 << 30, u64::MAX, 0, turn), mib as usize);
        assert_eq!(count(1 << 30, u64::MAX, 229, turn), (mib - 229) as usize, "to the turn's end");
        assert_eq!(count(1 << 30, 5000, 0, turn), 5000, "the cached part");
    }

    /// A file rest smaller than a head goes out in the same turn as the rest of its response,
    /// even past the budget; a larger one waits for the next turn. Before, the budget cut left
    /// the head's share of every 1 MiB response for a tiny `sendfile` one turn later.
    #[test]
    fn a_small_rest_goes_with_its_turn_and_a_large_one_waits() {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let (file, data) = temp_file(5771 + 20_000);
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        let mut conn = ConnPaths::default();
        let head = |chain: &mut VecDeque<Chunk>| chain.push_back(Chunk::Memory(Bytes::from_static(&[b'h'; 229])));
        let mut chain = VecDeque::new();
        head(&mut chain);
        let file = std::sync::Arc::new(OwnedFd::from(file));
        chain.push_back(Chunk::File(FileRegion { fd: FileFd::Shared(file.clone()), offset: 0, len: 5771 }));
        let r = send_chain(ours.as_raw_fd(), &mut chain, &stats, &mut paths, &mut conn, 1000);
        assert!(matches!(r.outcome, Ok(Sent::All)), "{:?}", r.outcome);
        assert_eq!(r.bytes, 6000, "the 5,000-byte rest past the budget went with its turn");
        head(&mut chain);
        chain.push_back(Chunk::File(FileRegion { fd: FileFd::Shared(file), offset: 5771, len: 20_000 }));
        let r = send_chain(ours.as_raw_fd(), &mut chain, &stats, &mut paths, &mut conn, 1000);
        assert!(matches!(r.outcome, Ok(Sent::Budget)), "{:?}", r.outcome);
        assert_eq!(r.bytes, 1000, "a 19,229-byte rest waits for the next turn");
        let n = run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths).unwrap();
        assert_eq!(n, 19_229);
        drop(ours);
        let got = reader.join().unwrap();
        assert_eq!(&got[..229], &[b'h'; 229][..]);
        assert_eq!(&got[229..6000], &data[..5771]);
        assert_eq!(&got[6000..6229], &[b'h'; 229][..]);
        assert_eq!(&got[6229..], &data[5771..]);
    }

    #[test]
    fn memory_and_file_chunks_arrive_in_order() {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let (file, data) = temp_file(300_000);
        let mut chain = VecDeque::new();
        chain.push_back(Chunk::Memory(Bytes::from_static(b"head|")));
        chain.push_back(Chunk::File(FileRegion { fd: FileFd::Owned(OwnedFd::from(file)), offset: 10, len: 200_000 }));
        chain.push_back(Chunk::Memory(Bytes::from_static(b"|tail")));
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        let n = run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths).unwrap();
        drop(ours);
        let got = reader.join().unwrap();
        let mut want = b"head|".to_vec();
        want.extend_from_slice(&data[10..200_010]);
        want.extend_from_slice(b"|tail");
        assert_eq!(n as usize, want.len());
        assert!(got == want, "bytes differ");
        assert_eq!(stats.bytes_sendfile.load(std::sync::atomic::Ordering::Relaxed), 200_000);
        assert_eq!(stats.bytes_copy.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn small_file_regions_join_the_memory_sendmsg() {
        // Many heads + small files + ends in one chain, against a socket that takes only part
        // of it at a time: sends stop inside memory and inside gathered file bytes, and the
        // rest of a region then goes by sendfile. The bytes must be exactly the chain's.
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let (file, data) = temp_file(5000);
        let file = std::sync::Arc::new(OwnedFd::from(file));
        let mut chain = VecDeque::new();
        let mut want = Vec::new();
        let mut file_total = 0u64;
        for i in 0..400usize {
            let head = format!("head {i}|");
            let (off, len) = (i % 97, 1 + (i * 37) % 4000);
            want.extend_from_slice(head.as_bytes());
            want.extend_from_slice(&data[off..off + len]);
            file_total += len as u64;
            chain.push_back(Chunk::Memory(Bytes::from(head)));
            chain.push_back(Chunk::File(FileRegion { fd: FileFd::Shared(file.clone()), offset: off as u64, len: len as u64 }));
            chain.push_back(Chunk::End);
        }
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        paths.small_file_read_max(4096);
        let n = run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths).unwrap();
        drop(ours);
        let got = reader.join().unwrap();
        assert_eq!(n as usize, want.len());
        assert!(got == want, "bytes differ");
        let copied = stats.bytes_copy.load(std::sync::atomic::Ordering::Relaxed);
        let sent = stats.bytes_sendfile.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(copied + sent, file_total);
        assert!(copied > file_total / 2, "most file bytes go with the heads: {copied} of {file_total}");
        assert_eq!(stats.bytes_writev.load(std::sync::atomic::Ordering::Relaxed) + file_total, want.len() as u64);
    }

    #[test]
    fn copy_fallback_sends_the_same_bytes() {
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let (file, data) = temp_file(150_000);
        let mut chain = VecDeque::new();
        chain.push_back(Chunk::File(FileRegion { fd: FileFd::Borrowed(file.as_raw_fd()), offset: 0, len: 150_000 }));
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        paths.refuse_sendfile();
        run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths).unwrap();
        drop(ours);
        assert!(reader.join().unwrap() == data);
        assert_eq!(stats.bytes_copy.load(std::sync::atomic::Ordering::Relaxed), 150_000);
        assert_eq!(stats.bytes_sendfile.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn a_short_file_is_an_error_not_a_hang() {
        for refuse in [false, true] {
            let (ours, peer) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            let reader = drain(peer);
            let (file, _) = temp_file(1000);
            let mut chain = VecDeque::new();
            chain.push_back(Chunk::File(FileRegion { fd: FileFd::Borrowed(file.as_raw_fd()), offset: 0, len: 5000 }));
            let stats = WorkerStats::default();
            let mut paths = PathMemory::default();
            if refuse {
                paths.refuse_sendfile();
            }
            let r = run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths);
            assert!(matches!(r, Err(SendError::Truncated)), "refuse={refuse}: {r:?}");
            drop(ours);
            assert_eq!(reader.join().unwrap().len(), 1000);
        }
    }

    #[test]
    fn a_closed_peer_is_epipe_not_a_signal() {
        let (ours, peer) = UnixStream::pair().unwrap();
        drop(peer);
        let mut chain = VecDeque::new();
        chain.push_back(Chunk::Memory(Bytes::from_static(b"x")));
        let r = send_chain(ours.as_raw_fd(), &mut chain, &WorkerStats::default(), &mut PathMemory::default(), &mut ConnPaths::default(), u64::MAX);
        assert!(matches!(r.outcome, Err(SendError::Io(ref e)) if e.raw_os_error() == Some(libc::EPIPE)));
    }

    fn fd_chunk(fd: OwnedFd, kind: crate::body::FdKind, len: Option<u64>, chunked: bool) -> Chunk {
        Chunk::Fd(crate::body::FdChunk { fd: FileFd::Owned(fd), kind, len, chunked })
    }

    fn pipe_with(data: &'static [u8]) -> OwnedFd {
        let (mut w, r) = UnixStream::pair().unwrap();
        // A socketpair stands in for "a socket upstream"; for a real pipe use std's pipe.
        w.write_all(data).unwrap();
        drop(w);
        r.set_nonblocking(true).unwrap();
        OwnedFd::from(r)
    }

    fn os_pipe_with(data: &[u8]) -> OwnedFd {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(data).unwrap();
        drop(w);
        OwnedFd::from(r)
    }

    #[test]
    fn pipe_and_socket_sources_go_by_splice() {
        for (kind, chunked, want) in [
            (crate::body::FdKind::Pipe, false, &b"hello pipe"[..]),
            (crate::body::FdKind::Pipe, true, &b"a\r\nhello pipe\r\n"[..]),
            (crate::body::FdKind::Socket, false, &b"hello pipe"[..]),
        ] {
            let src = if kind == crate::body::FdKind::Pipe { os_pipe_with(b"hello pipe") } else { pipe_with(b"hello pipe") };
            let (ours, peer) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            let reader = drain(peer);
            let mut chain = VecDeque::new();
            chain.push_back(fd_chunk(src, kind, None, chunked));
            chain.push_back(Chunk::End);
            let stats = WorkerStats::default();
            let mut paths = PathMemory::default();
            let mut pipe = ConnPaths::default();
            let mut ends = 0;
            loop {
                let r = send_chain(ours.as_raw_fd(), &mut chain, &stats, &mut paths, &mut pipe, u64::MAX);
                ends += r.ends;
                match r.outcome.unwrap() {
                    Sent::All => break,
                    _ => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
            drop(ours);
            assert_eq!(reader.join().unwrap(), want, "{kind:?} chunked={chunked}");
            assert_eq!(ends, 1);
            assert_eq!(stats.bytes_splice.load(std::sync::atomic::Ordering::Relaxed), 10, "{kind:?}");
        }
    }

    #[test]
    fn a_refused_splice_falls_back_to_copying() {
        let src = os_pipe_with(b"copy me");
        let (ours, peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let reader = drain(peer);
        let mut chain = VecDeque::new();
        chain.push_back(fd_chunk(src, crate::body::FdKind::Pipe, Some(7), false));
        let stats = WorkerStats::default();
        let mut paths = PathMemory::default();
        paths.refuse_splice();
        run_to_end(ours.as_raw_fd(), &mut chain, &stats, &mut paths).unwrap();
        drop(ours);
        assert_eq!(reader.join().unwrap(), b"copy me");
        assert_eq!(stats.bytes_splice.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn a_pipe_that_ends_early_is_truncation() {
        let src = os_pipe_with(b"short");
        let (ours, _peer) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut chain = VecDeque::new();
        chain.push_back(fd_chunk(src, crate::body::FdKind::Pipe, Some(100), false));
        let r = run_to_end(ours.as_raw_fd(), &mut chain, &WorkerStats::default(), &mut PathMemory::default());
        assert!(matches!(r, Err(SendError::Truncated)), "{r:?}");
    }
}
