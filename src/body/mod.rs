//! What a body is: a chain of chunks that need not be bytes in memory.
//!
//! A [`Chunk`] is either memory (`Bytes`, which also carries memory lent by a C caller: its
//! owner runs the release callback when the last reference drops) or a file region that the
//! transfer layer sends with `sendfile`. Dropping a chunk releases what it holds exactly once:
//! lent memory through its owner, an owned fd by closing it.
#![forbid(unsafe_code)]

pub mod source;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use bytes::Bytes;

/// The file descriptor behind a file region.
#[derive(Debug)]
pub enum FileFd {
    /// The engine closes it when the region is done or dropped (`ZH_FD_CLOSE`).
    Owned(OwnedFd),
    /// The caller keeps it open for as long as the response lives and closes it itself.
    Borrowed(RawFd),
    /// Shared with the engine's file cache (and other responses): closed when the last
    /// holder lets go.
    Shared(std::sync::Arc<OwnedFd>),
}

impl FileFd {
    /// The raw descriptor, for syscalls.
    pub fn raw(&self) -> RawFd {
        match self {
            FileFd::Owned(fd) => fd.as_raw_fd(),
            FileFd::Borrowed(fd) => *fd,
            FileFd::Shared(fd) => fd.as_raw_fd(),
        }
    }
}

/// `len` bytes of a file starting at `offset`; both advance as bytes are sent.
#[derive(Debug)]
pub struct FileRegion {
    pub fd: FileFd,
    pub offset: u64,
    pub len: u64,
}

impl FileRegion {
    pub fn new(fd: FileFd, offset: u64, len: u64) -> Self {
        FileRegion { fd, offset, len }
    }
}

/// What kind of descriptor an fd chunk reads from: it decides the splice path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// `splice` pipe → socket directly.
    Pipe,
    /// `splice` socket → engine pipe → socket.
    Socket,
}

/// A pipe or socket to read the body from, `len` bytes or (None) until EOF.
#[derive(Debug)]
pub struct FdChunk {
    pub fd: FileFd,
    pub kind: FdKind,
    pub len: Option<u64>,
    /// Each piece read goes out as one chunk of chunked transfer coding (set by the engine
    /// when the response is chunked).
    pub chunked: bool,
}

/// One piece of a body.
pub enum Chunk {
    Memory(Bytes),
    File(FileRegion),
    Fd(FdChunk),
    /// Produces further chunks on demand (callbacks, streams).
    Source(Box<dyn source::Source>),
    /// Bytes already moved into the connection's staging pipe (made by the transfer layer).
    Piped(u64),
    /// Zero bytes: the end of one response in a connection's send queue. The transfer layer
    /// counts the ends it passes, so the engine learns which responses have fully left.
    End,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chunk::Memory(b) => f.debug_tuple("Memory").field(&b.len()).finish(),
            Chunk::File(r) => f.debug_tuple("File").field(r).finish(),
            Chunk::Fd(c) => f.debug_tuple("Fd").field(c).finish(),
            Chunk::Source(s) => f.debug_tuple("Source").field(&s.len()).finish(),
            Chunk::Piped(n) => f.debug_tuple("Piped").field(n).finish(),
            Chunk::End => f.write_str("End"),
        }
    }
}

impl Chunk {
    /// Bytes still to be sent from this chunk, as far as known (0 for an unknown length).
    pub fn remaining(&self) -> u64 {
        match self {
            Chunk::Memory(b) => b.len() as u64,
            Chunk::File(r) => r.len,
            Chunk::Fd(c) => c.len.unwrap_or(0),
            Chunk::Source(s) => s.len().unwrap_or(0),
            Chunk::Piped(n) => *n,
            Chunk::End => 0,
        }
    }

    /// Whether the chunk's length is known before sending it.
    pub fn len_known(&self) -> bool {
        match self {
            Chunk::Memory(_) | Chunk::File(_) | Chunk::Piped(_) | Chunk::End => true,
            Chunk::Fd(c) => c.len.is_some(),
            Chunk::Source(s) => s.len().is_some(),
        }
    }
}

/// An ordered chain of chunks with its total length.
///
/// Most bodies are one chunk (a file region, a buffer): that one is kept inline, so building
/// such a response allocates no queue.
#[derive(Debug, Default)]
pub struct Body {
    first: Option<Chunk>,
    /// The chunks after `first` (empty while `first` is None).
    rest: VecDeque<Chunk>,
    len: u64,
    /// Some chunk's length is unknown: the body goes chunked (or close-delimited).
    unknown: bool,
}

impl Body {
    pub fn new() -> Self {
        Body::default()
    }

    /// Appends a chunk; empty chunks are dropped at once (releasing what they hold).
    pub fn push(&mut self, chunk: Chunk) {
        let n = chunk.remaining();
        if !chunk.len_known() {
            self.unknown = true;
        } else if n == 0 {
            return;
        }
        self.len += n;
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// Total bytes of the chain, counting unknown-length chunks as 0.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The total length if every chunk's length is known.
    pub fn known_len(&self) -> Option<u64> {
        if self.unknown { None } else { Some(self.len) }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn chunk_count(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// The chunks, in order, for the connection's send queue.
    pub fn into_chunks(self) -> impl ExactSizeIterator<Item = Chunk> {
        let Body { first, rest, .. } = self;
        First { first, rest: rest.into_iter() }
    }

    /// The chunks, in order, without taking them.
    pub fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.first.iter().chain(self.rest.iter())
    }
}

/// `Body::into_chunks`: the inline chunk, then the queued ones (a named type because `Chain`
/// does not know its exact length).
struct First {
    first: Option<Chunk>,
    rest: std::collections::vec_deque::IntoIter<Chunk>,
}

impl Iterator for First {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        self.first.take().or_else(|| self.rest.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.first.is_some()) + self.rest.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for First {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_chunks_are_not_kept() {
        let mut b = Body::new();
        b.push(Chunk::Memory(Bytes::new()));
        b.push(Chunk::Memory(Bytes::from_static(b"abc")));
        assert_eq!(b.len(), 3);
        assert_eq!(b.chunk_count(), 1);
    }

    #[test]
    fn lengths_add_up_across_kinds() {
        let mut b = Body::new();
        b.push(Chunk::Memory(Bytes::from_static(b"12345")));
        b.push(Chunk::File(FileRegion { fd: FileFd::Borrowed(-1), offset: 10, len: 100 }));
        assert_eq!(b.len(), 105);
        let chunks = b.into_chunks();
        assert_eq!(chunks.map(|c| c.remaining()).sum::<u64>(), 105);
    }
}
