//! Request bodies straight into a file: `splice` socket → staging pipe → file, so payload bytes
//! never enter user space; bytes that already arrived with the head are written with `pwrite`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::stats::{bump, WorkerStats};
use crate::transfer::splice::PipePair;

/// What one sink step did.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkStep {
    /// This many payload bytes reached the file.
    Moved(u64),
    /// The socket has nothing right now.
    WouldBlock,
    /// The peer closed before the body was complete.
    Eof,
}

/// Writes `data` at `offset` of `fd` (all of it, or an error such as ENOSPC).
pub fn pwrite_all(fd: RawFd, data: &[u8], offset: u64, stats: &WorkerStats) -> io::Result<()> {
    pwrite_counted(fd, data, offset, &mut 0, stats)
}

/// [`pwrite_all`] that adds the bytes it wrote to `done`, also when it fails part-way: what
/// landed before the error is in the file and must be counted.
pub fn pwrite_counted(fd: RawFd, mut data: &[u8], mut offset: u64, done: &mut u64, stats: &WorkerStats) -> io::Result<()> {
    while !data.is_empty() {
        bump(&stats.syscalls_copy, 1);
        // SAFETY: `data` is a live slice; pwrite reads at most data.len() bytes from it.
        let n = unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), offset as libc::off_t) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        data = &data[n as usize..];
        offset += n as u64;
        *done += n as u64;
        bump(&stats.body_bytes_copied, n as u64);
    }
    Ok(())
}

/// Moves up to `max` body bytes from `sock` into `fd` at `*offset` through `pipe`.
pub fn splice_to_file(sock: RawFd, pipe: &PipePair, fd: RawFd, offset: &mut u64, max: u64, stats: &WorkerStats) -> io::Result<SinkStep> {
    let want = max.min(pipe.capacity() as u64) as usize;
    let staged = loop {
        bump(&stats.syscalls_splice, 1);
        // SAFETY: splice between descriptors we hold open, NULL offsets for socket and pipe.
        let n = unsafe {
            libc::splice(sock, std::ptr::null_mut(), pipe.write_fd(), std::ptr::null_mut(), want, libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE)
        };
        if n > 0 {
            break n as usize;
        }
        if n == 0 {
            return Ok(SinkStep::Eof);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(SinkStep::WouldBlock),
            _ => return Err(err),
        }
    };
    let mut left = staged;
    while left > 0 {
        let mut off = *offset as libc::loff_t;
        bump(&stats.syscalls_splice, 1);
        // SAFETY: `off` is a live local the kernel reads and advances; the pipe holds `left`
        // staged bytes; the file descriptor is the caller's, open for writing.
        let n = unsafe { libc::splice(pipe.read_fd(), std::ptr::null_mut(), fd, &mut off, left, libc::SPLICE_F_MOVE) };
        if n > 0 {
            left -= n as usize;
            *offset += n as u64;
            bump(&stats.body_bytes_spliced, n as u64);
            continue;
        }
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // The staged bytes cannot be delivered: the pipe is now dirty, the caller must drop it.
        return Err(err);
    }
    Ok(SinkStep::Moved(staged as u64))
}

/// Discards whatever is left in a pipe after a failed delivery.
pub fn pipe_is_clean(pipe: &PipePair) -> bool {
    let mut avail: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `avail`, a live local.
    let r = unsafe { libc::ioctl(pipe.read_fd(), libc::FIONREAD, &mut avail) };
    r == 0 && avail == 0
}

impl PipePair {
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read_end().as_raw_fd()
    }
    pub(crate) fn write_fd(&self) -> RawFd {
        self.write_end().as_raw_fd()
    }
}

/// One positional read into `buf` (for copying file regions to custom transports).
pub fn pread_into(fd: RawFd, buf: &mut [u8], offset: u64, stats: &WorkerStats) -> io::Result<usize> {
    loop {
        bump(&stats.syscalls_copy, 1);
        // SAFETY: `buf` is a live, initialised slice; pread writes at most buf.len() bytes.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}
