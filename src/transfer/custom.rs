//! Custom transports: the host supplies read and write (e.g. TLS it terminates itself). Every
//! chunk kind still works, copied through a pooled buffer — the last row of the strategy table.

use std::collections::VecDeque;
use std::io;

use bytes::BytesMut;

use crate::body::Chunk;
use crate::stats::{bump, WorkerStats};
use crate::transfer::recv::RecvOutcome;
use crate::transfer::send::{consume_memory, PathMemory, SendError, SendReport, Sent};
use crate::transfer::splice::{copy_piece, FdStall};

/// A byte stream the host provides instead of a socket. Both calls are non-blocking: they
/// return `ErrorKind::WouldBlock` when the host's side is not ready, and the host then tells
/// the engine when it is (see `Engine::adopt_transport`).
pub trait Transport: Send {
    /// Reads into `buf`; `Ok(0)` is end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes as much of the gathered `bufs` as it can; returns the bytes taken.
    fn write_vectored(&mut self, bufs: &[&[u8]]) -> io::Result<usize>;
    /// The engine will write no more (before closing after a final response).
    fn shutdown_write(&mut self) {}
}

/// Slices gathered per write.
const MAX_SLICES: usize = 16;
const COPY_BUF: usize = 64 * 1024;

/// One read from the transport appended to `buf` (the buffer's tail is zeroed first: no
/// uninitialised memory is handed to foreign code).
pub fn recv_via(t: &mut dyn Transport, buf: &mut BytesMut, max: usize, stats: &WorkerStats) -> io::Result<RecvOutcome> {
    let start = buf.len();
    buf.resize(start + max, 0);
    bump(&stats.syscalls_read, 1);
    let r = t.read(&mut buf[start..]);
    match r {
        Ok(0) => {
            buf.truncate(start);
            Ok(RecvOutcome::Eof)
        }
        Ok(n) => {
            let n = n.min(max);
            buf.truncate(start + n);
            bump(&stats.bytes_received, n as u64);
            Ok(RecvOutcome::Data { n, drained: false })
        }
        Err(e) => {
            buf.truncate(start);
            if e.kind() == io::ErrorKind::WouldBlock { Ok(RecvOutcome::WouldBlock) } else { Err(e) }
        }
    }
}

/// Like `send_chain`, through a transport: memory gathered, file regions and fd sources read
/// into a pooled buffer and written.
pub fn send_chain_via(t: &mut dyn Transport, chain: &mut VecDeque<Chunk>, stats: &WorkerStats, paths: &mut PathMemory) -> SendReport {
    let mut total = 0u64;
    let mut ends = 0usize;
    macro_rules! report {
        ($outcome:expr) => {
            return SendReport { bytes: total, ends, outcome: $outcome }
        };
    }
    loop {
        match chain.front_mut() {
            None => report!(Ok(Sent::All)),
            Some(Chunk::End) => {
                chain.pop_front();
                ends += 1;
            }
            Some(Chunk::Source(_)) => report!(Ok(Sent::Source)),
            Some(Chunk::Piped(_)) => report!(Err(SendError::Io(io::Error::other("staged pipe data on a custom transport")))),
            Some(Chunk::Fd(c)) => {
                let want = c.len.map_or(COPY_BUF, |n| n.min(COPY_BUF as u64) as usize);
                match copy_piece(chain, want, paths.copy_buf_mut(), stats) {
                    Ok(_) => {}
                    Err(FdStall::Source(fd)) => report!(Ok(Sent::SourceBlocked(fd))),
                    Err(FdStall::Truncated) => report!(Err(SendError::Truncated)),
                    Err(FdStall::Io(e)) => report!(Err(SendError::Io(e))),
                    Err(FdStall::Socket) | Err(FdStall::Refused) => report!(Ok(Sent::Blocked)),
                }
            }
            Some(Chunk::File(r)) => {
                let buf = paths.copy_buf_mut();
                if buf.len() < COPY_BUF {
                    buf.resize(COPY_BUF, 0);
                }
                let want = (r.len.min(COPY_BUF as u64)) as usize;
                let got = match crate::transfer::pread_into(r.fd.raw(), &mut buf[..want], r.offset, stats) {
                    Ok(0) => report!(Err(SendError::Truncated)),
                    Ok(n) => n,
                    Err(e) => report!(Err(SendError::Io(e))),
                };
                match t.write_vectored(&[&buf[..got]]) {
                    Ok(n) => {
                        let n = n as u64;
                        bump(&stats.bytes_copy, n);
                        r.offset += n;
                        r.len -= n;
                        total += n;
                        if r.len == 0 {
                            chain.pop_front();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => report!(Ok(Sent::Blocked)),
                    Err(e) => report!(Err(SendError::Io(e))),
                }
            }
            Some(Chunk::Memory(_)) => {
                let mut slices: Vec<&[u8]> = Vec::with_capacity(MAX_SLICES);
                for c in chain.iter() {
                    match c {
                        Chunk::End => {}
                        Chunk::Memory(b) if slices.len() < MAX_SLICES => slices.push(b),
                        _ => break,
                    }
                }
                bump(&stats.syscalls_writev, 1);
                match t.write_vectored(&slices) {
                    Ok(n) => {
                        bump(&stats.bytes_writev, n as u64);
                        total += n as u64;
                        drop(slices);
                        consume_memory(chain, n, &mut ends);
                        if n == 0 {
                            report!(Ok(Sent::Blocked));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => report!(Ok(Sent::Blocked)),
                    Err(e) => report!(Err(SendError::Io(e))),
                }
            }
        }
    }
}
