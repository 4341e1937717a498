//! Reading from a socket straight into the connection's `BytesMut`, without zero-filling.

use std::io;
use std::os::fd::RawFd;

use bytes::{BufMut, BytesMut};

use crate::stats::{bump, WorkerStats};

/// What one `recv` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvOutcome {
    /// `n` bytes arrived; `drained` when fewer than asked for came, i.e. the socket's receive
    /// queue was empty at that moment (a later arrival raises a new edge).
    Data { n: usize, drained: bool },
    Eof,
    WouldBlock,
}

/// One `recv` of at most `max` bytes appended to `buf`.
pub fn recv_into(fd: RawFd, buf: &mut BytesMut, max: usize, stats: &WorkerStats) -> io::Result<RecvOutcome> {
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    let spare = buf.chunk_mut();
    let len = spare.len().min(max);
    loop {
        bump(&stats.syscalls_read, 1);
        // SAFETY: `spare` points to at least `len` writable bytes owned by `buf`; recv writes at
        // most `len` bytes there and does not keep the pointer.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, 0) };
        if n > 0 {
            let n = n as usize;
            // SAFETY: the kernel initialised exactly `n` bytes of the spare capacity.
            unsafe { buf.advance_mut(n) };
            bump(&stats.bytes_received, n as u64);
            return Ok(RecvOutcome::Data { n, drained: n < len });
        }
        if n == 0 {
            return Ok(RecvOutcome::Eof);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Ok(RecvOutcome::WouldBlock),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
}
