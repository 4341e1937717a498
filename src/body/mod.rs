//! What a body is: a chain of chunks that need not be bytes in memory.
//!
//! A [`Chunk`] is either memory (`Bytes`, which also carries memory lent by a C caller: its
//! owner runs the release callback when the last reference drops) or a file region that the
//! transfer layer sends with `sendfile`. Dropping a chunk releases what it holds exactly once:
//! lent memory through its owner, an owned fd by closing it.
#![forbid(unsafe_code)]

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
}

impl FileFd {
    /// The raw descriptor, for syscalls.
    pub fn raw(&self) -> RawFd {
        match self {
            FileFd::Owned(fd) => fd.as_raw_fd(),
            FileFd::Borrowed(fd) => *fd,
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

/// One piece of a body.
#[derive(Debug)]
pub enum Chunk {
    Memory(Bytes),
    File(FileRegion),
}

impl Chunk {
    /// Bytes still to be sent from this chunk.
    pub fn remaining(&self) -> u64 {
        match self {
            Chunk::Memory(b) => b.len() as u64,
            Chunk::File(r) => r.len,
        }
    }
}

/// An ordered chain of chunks with its total length.
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Chunk>,
    len: u64,
}

impl Body {
    pub fn new() -> Self {
        Body::default()
    }

    /// Appends a chunk; empty chunks are dropped at once (releasing what they hold).
    pub fn push(&mut self, chunk: Chunk) {
        let n = chunk.remaining();
        if n == 0 {
            return;
        }
        self.len += n;
        self.chunks.push_back(chunk);
    }

    /// Total bytes of the chain.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunks, in order, for the connection's send queue.
    pub fn into_chunks(self) -> VecDeque<Chunk> {
        self.chunks
    }

    /// The chunks, in order, without taking them.
    pub fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.chunks.iter()
    }
}

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
        assert_eq!(chunks.iter().map(Chunk::remaining).sum::<u64>(), 105);
    }
}
