//! Engine configuration: limits, timeouts, threads. Validated once, then shared read-only.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::error::Error;
use crate::h1::Limits;

/// Settings of one engine. Copied into the engine at creation; later changes do not affect it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads, each with its own event loop. 0 = external-loop mode: no thread is
    /// created; the host polls [`crate::engine::Engine::fd`] and calls `step`.
    pub threads: usize,
    /// Request line / header section limits.
    pub limits: Limits,
    /// Largest request body buffered or accepted; `None` = unlimited.
    pub max_body: Option<u64>,
    /// Deadline for a whole request head, from its first byte (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a send may make no progress (a client that stops reading is dropped).
    pub send_timeout: Duration,
    /// How long reading a request body may make no progress. Runs only while the engine waits
    /// for the client's bytes: not while a streamed reader is paused, and afresh from a resume.
    pub body_read_timeout: Duration,
    /// Connections one worker accepts at most; further ones are closed at once.
    pub max_connections_per_worker: usize,
    /// Requests parsed ahead of their responses on one connection (bounds pipelining memory).
    pub max_pipeline: usize,
    /// Never use sendfile/splice: copy through user space (for tests and for comparing paths).
    pub force_copy: bool,
    /// Threads that read cold file ranges into the page cache so workers never block on the
    /// disk. 0 turns residency probing off (sendfile may then wait for the disk).
    pub disk_threads: usize,
    /// Request bodies larger than this are written to an anonymous file in `spool_dir`
    /// (splice) instead of memory; `None` keeps every body in memory.
    pub spool_threshold: Option<u64>,
    /// Where spool files live (`O_TMPFILE`, so nothing is ever left behind).
    pub spool_dir: std::path::PathBuf,
    /// Open files each worker keeps for `respond_file_at` (0: open, fstat and close on every
    /// request). Each entry holds one descriptor.
    pub file_cache_entries: usize,
    /// How long a cached open file is trusted before one `fstatat` checks it is unchanged.
    pub file_cache_valid: Duration,
    /// Memory bodies of at most this many bytes are copied into the response head's buffer
    /// (one slice); larger ones go as their own slices of the same `sendmsg`. At most 1 MiB.
    /// Default 2048; not critical: both ways are one `sendmsg` (BENCHMARKS.md).
    pub inline_body_max: usize,
    /// File regions of at most this many bytes that directly follow memory in the send queue
    /// are read (`preadv2` with `RWF_NOWAIT`: only when already in the page cache) into a
    /// per-worker buffer and sent in the head's `sendmsg`, instead of `sendmsg(MSG_MORE)` +
    /// `sendfile`. 0 = never (file bytes stay out of user space). At most 1 MiB. The bytes
    /// are counted in `bytes_copy`, the reads in `syscalls_copy`. Default 4096, the measured
    /// best: 5–20% less server CPU per request than `sendmsg(MSG_MORE)` + `sendfile` up to
    /// 4 KiB, level at 8 KiB, dearer from 16 KiB (BENCHMARKS.md, "Thresholds chosen").
    pub small_file_read_max: usize,
    /// TCP congestion control set on every listening socket the engine listens on (accepted
    /// connections inherit it); `None` leaves the system default. Into a same-host peer a
    /// non-pacing algorithm (`cubic`, `reno`) spares the timers `bbr` paces with (BENCHMARKS.md).
    pub tcp_congestion: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            limits: Limits::default(),
            max_body: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            max_connections_per_worker: 10_000,
            max_pipeline: 32,
            force_copy: false,
            disk_threads: 2,
            spool_threshold: None,
            spool_dir: std::env::temp_dir(),
            file_cache_entries: 256,
            file_cache_valid: Duration::from_secs(1),
            inline_body_max: 2048,
            small_file_read_max: 4096,
            tcp_congestion: None,
        }
    }
}

impl Config {
    /// Checks the settings as a whole; the engine refuses a config that fails this.
    pub fn validate(&self) -> Result<(), Error> {
        if self.threads > 1024 {
            return Err(Error::Invalid("threads must be at most 1024"));
        }
        if self.limits.max_request_line < 64 {
            return Err(Error::Invalid("max_request_line must be at least 64"));
        }
        if self.limits.max_head_bytes < self.limits.max_request_line {
            return Err(Error::Invalid("max_header_bytes must be at least max_request_line"));
        }
        if self.limits.max_headers == 0 || self.limits.max_headers > 10_000 {
            return Err(Error::Invalid("max_headers must be within 1..=10000"));
        }
        if self.max_connections_per_worker == 0 {
            return Err(Error::Invalid("max_connections must be at least 1"));
        }
        if self.disk_threads > 64 {
            return Err(Error::Invalid("disk_threads must be at most 64"));
        }
        if self.file_cache_entries > 1_000_000 {
            return Err(Error::Invalid("file_cache_entries must be at most 1000000"));
        }
        if self.file_cache_entries > 0 && self.file_cache_valid.is_zero() {
            return Err(Error::Invalid("file_cache_valid must be positive when the cache is on"));
        }
        if self.inline_body_max > 1 << 20 {
            return Err(Error::Invalid("inline_body_max must be at most 1048576"));
        }
        if self.small_file_read_max > 1 << 20 {
            return Err(Error::Invalid("small_file_read_max must be at most 1048576"));
        }
        if let Some(name) = &self.tcp_congestion
            && (name.is_empty() || name.len() > 15 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(Error::Invalid("tcp_congestion must be 1..=15 characters of [A-Za-z0-9_-]"));
        }
        if self.max_pipeline == 0 {
            return Err(Error::Invalid("max_pipeline must be at least 1"));
        }
        Ok(())
    }
}
