//! Pipe and socket sources: `splice` straight to the socket (pipe sources), or through the
//! connection's own staging pipe (socket sources, and chunked framing, which must know a
//! piece's size before its bytes go out). Falls back to `read` + `send` where splice is
//! refused.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use bytes::Bytes;

use crate::body::{Chunk, FdKind};
use crate::h1;
use crate::stats::{bump, WorkerStats};

/// Most bytes moved per splice call.
const SPLICE_STEP: usize = 1 << 20;
/// Staging pipe size asked for (the kernel caps it at /proc/sys/fs/pipe-max-size).
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A connection's staging pipe, created on first use and reused.
#[derive(Debug)]
pub struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl PipePair {
    pub fn new() -> io::Result<PipePair> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a live 2-element array that pipe2 fills on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a pipe we own; failure just leaves the default size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let capacity = if size > 0 { size as usize } else { 64 * 1024 };
        Ok(PipePair { read, write, capacity })
    }

    /// Bytes the pipe holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn read_end(&self) -> &OwnedFd {
        &self.read
    }

    pub(crate) fn write_end(&self) -> &OwnedFd {
        &self.write
    }
}

/// How an fd step ended without moving bytes.
pub(crate) enum FdStall {
    /// The socket is full.
    Socket,
    /// The source has nothing yet: wait for it to become readable.
    Source(RawFd),
    Truncated,
    Refused,
    Io(io::Error),
}

fn splice(from: RawFd, to: RawFd, len: usize, stats: &WorkerStats) -> io::Result<usize> {
    loop {
        bump(&stats.syscalls_splice, 1);
        // SAFETY: splice with NULL offsets on descriptors we hold open; no memory is passed.
        let n = unsafe {
            libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE)
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Whether `fd` has data (or EOF) to read right now.
fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one live pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Whether the socket has room right now.
fn writable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one live pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP))
}

/// Moves bytes of the fd chunk at the front of `chain`. Returns bytes written to the socket.
pub(crate) fn send_fd(
    sock: RawFd,
    chain: &mut VecDeque<Chunk>,
    pipe: &mut Option<PipePair>,
    splice_refused: bool,
    copy_buf: &mut Vec<u8>,
    stats: &WorkerStats,
) -> Result<u64, FdStall> {
    let Some(Chunk::Fd(chunk)) = chain.front_mut() else { unreachable!("front is an fd chunk") };
    let want = chunk.len.map_or(SPLICE_STEP, |n| n.min(SPLICE_STEP as u64) as usize);
    if want == 0 {
        chain.pop_front();
        return Ok(0);
    }
    let src = chunk.fd.raw();
    if splice_refused {
        return copy_piece(chain, want, copy_buf, stats);
    }
    if chunk.kind == FdKind::Pipe && !chunk.chunked {
        // Straight from the source pipe into the socket. EAGAIN does not say which end was not
        // ready, so ask both: waiting on the wrong one would never wake up.
        for _ in 0..8 {
            match splice(src, sock, want, stats) {
                Ok(0) => return finish_at_eof(chain),
                Ok(n) => {
                    bump(&stats.bytes_splice, n as u64);
                    advance(chain, n as u64);
                    return Ok(n as u64);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => match (readable_now(src), writable_now(sock)) {
                    (false, _) => return Err(FdStall::Source(src)),
                    (true, false) => return Err(FdStall::Socket),
                    // Both ready now (the pipe was refilled meanwhile): try again.
                    (true, true) => continue,
                },
                Err(e) if refused(&e) => return Err(FdStall::Refused),
                Err(e) => return Err(FdStall::Io(e)),
            }
        }
        return Err(FdStall::Source(src));
    }
    // Stage a piece in our pipe, then queue it (framed if chunked) ahead of the source.
    if pipe.is_none() {
        *pipe = Some(PipePair::new().map_err(FdStall::Io)?);
    }
    let p = pipe.as_ref().expect("created above");
    match splice(src, p.write.as_raw_fd(), want.min(p.capacity), stats) {
        Ok(0) => finish_at_eof(chain),
        Ok(n) => {
            let chunked = matches!(chain.front(), Some(Chunk::Fd(c)) if c.chunked);
            advance(chain, n as u64);
            let mut ahead = vec![Chunk::Piped(n as u64)];
            if chunked {
                ahead.insert(0, Chunk::Memory(Bytes::copy_from_slice(h1::chunk_size_line(n as u64).as_ref())));
                ahead.push(Chunk::Memory(Bytes::from_static(h1::CHUNK_END)));
            }
            for c in ahead.into_iter().rev() {
                chain.push_front(c);
            }
            Ok(0)
        }
        // Our pipe is empty whenever we stage, so EAGAIN means the source has nothing.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(FdStall::Source(src)),
        Err(e) if refused(&e) => Err(FdStall::Refused),
        Err(e) => Err(FdStall::Io(e)),
    }
}

/// Sends staged bytes from the pipe to the socket.
pub(crate) fn send_piped(sock: RawFd, chain: &mut VecDeque<Chunk>, pipe: &Option<PipePair>, stats: &WorkerStats) -> Result<u64, FdStall> {
    let Some(Chunk::Piped(n)) = chain.front_mut() else { unreachable!("front is staged data") };
    let Some(p) = pipe.as_ref() else { return Err(FdStall::Io(io::Error::other("staged data without a pipe"))) };
    match splice(p.read.as_raw_fd(), sock, (*n).min(SPLICE_STEP as u64) as usize, stats) {
        Ok(0) => Err(FdStall::Io(io::Error::other("staging pipe ran dry"))),
        Ok(k) => {
            bump(&stats.bytes_splice, k as u64);
            *n -= k as u64;
            if *n == 0 {
                chain.pop_front();
            }
            Ok(k as u64)
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(FdStall::Socket),
        Err(e) => Err(FdStall::Io(e)),
    }
}

fn advance(chain: &mut VecDeque<Chunk>, n: u64) {
    if let Some(Chunk::Fd(c)) = chain.front_mut() {
        if let Some(len) = c.len.as_mut() {
            *len -= n;
            if *len == 0 {
                chain.pop_front();
            }
        }
    }
}

fn finish_at_eof(chain: &mut VecDeque<Chunk>) -> Result<u64, FdStall> {
    match chain.front() {
        Some(Chunk::Fd(c)) if c.len.is_some_and(|n| n > 0) => Err(FdStall::Truncated),
        _ => {
            chain.pop_front();
            Ok(0)
        }
    }
}

/// Copy fallback: read a piece into memory and queue it (framed if chunked) ahead.
pub(super) fn copy_piece(chain: &mut VecDeque<Chunk>, want: usize, buf: &mut Vec<u8>, stats: &WorkerStats) -> Result<u64, FdStall> {
    let Some(Chunk::Fd(c)) = chain.front() else { unreachable!() };
    let src = c.fd.raw();
    let chunked = c.chunked;
    let want = want.min(64 * 1024);
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let n = loop {
        bump(&stats.syscalls_copy, 1);
        // SAFETY: `buf` has at least `want` initialised bytes; read writes at most `want`.
        let n = unsafe { libc::read(src, buf.as_mut_ptr().cast(), want) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Err(FdStall::Source(src)),
            _ => return Err(FdStall::Io(err)),
        }
    };
    if n == 0 {
        return finish_at_eof(chain);
    }
    // Counted here, where the bytes entered user space; the memory send counts them again.
    bump(&stats.bytes_copy, n as u64);
    advance(chain, n as u64);
    let data = Chunk::Memory(Bytes::copy_from_slice(&buf[..n]));
    let mut ahead = vec![data];
    if chunked {
        ahead.insert(0, Chunk::Memory(Bytes::copy_from_slice(h1::chunk_size_line(n as u64).as_ref())));
        ahead.push(Chunk::Memory(Bytes::from_static(h1::CHUNK_END)));
    }
    for c in ahead.into_iter().rev() {
        chain.push_front(c);
    }
    Ok(0)
}
