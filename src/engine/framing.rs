//! Puts a response body on the wire format: raw (Content-Length or close-delimited) or chunked
//! transfer coding, for static chunks at queue time and for source output as it is produced.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::Bytes;

use crate::body::source::{Source, SourcePoll, SourceWaker, Trailers};
use crate::body::{Body, Chunk};
use crate::h1;

fn size_line(n: u64) -> Chunk {
    Chunk::Memory(Bytes::copy_from_slice(h1::chunk_size_line(n).as_ref()))
}

fn crlf() -> Chunk {
    Chunk::Memory(Bytes::from_static(h1::CHUNK_END))
}

fn last_chunk(trailers: &Trailers) -> Chunk {
    if trailers.is_empty() {
        return Chunk::Memory(Bytes::from_static(h1::LAST_CHUNK));
    }
    let mut v = Vec::with_capacity(64);
    h1::write_last_chunk(&mut v, trailers);
    Chunk::Memory(Bytes::from(v))
}

/// Appends `body` to `out` in wire format. With `chunked`, each known-length chunk is framed,
/// unknown-length fd chunks frame each piece as they are read, sources are wrapped so their
/// output is framed, and the last chunk ends the body (a trailing source sends it itself, with
/// its trailers). Without `chunked`, sources are wrapped to check they produce what they said.
pub(crate) fn frame_body(body: Body, chunked: bool, out: &mut VecDeque<Chunk>) {
    let chunks = body.into_chunks();
    let count = chunks.len();
    let mut last_is_source = false;
    for (i, chunk) in chunks.enumerate() {
        let last = i + 1 == count;
        match chunk {
            Chunk::Source(inner) => {
                last_is_source = last;
                let declared = inner.len();
                out.push_back(Chunk::Source(Box::new(Framed::new(inner, chunked, last, declared))));
            }
            Chunk::Fd(mut f) if chunked && f.len.is_none() => {
                f.chunked = true;
                out.push_back(Chunk::Fd(f));
            }
            c if chunked => {
                let n = c.remaining();
                if n > 0 {
                    out.push_back(size_line(n));
                    out.push_back(c);
                    out.push_back(crlf());
                }
            }
            c => out.push_back(c),
        }
    }
    if chunked && !last_is_source {
        out.push_back(last_chunk(&Vec::new()));
    }
}

/// A source whose output is framed for the response it belongs to.
pub(crate) struct Framed {
    inner: Box<dyn Source>,
    chunked: bool,
    /// The body ends with this source: it sends the last chunk and trailers.
    last: bool,
    declared: Option<u64>,
    produced: u64,
    ahead: VecDeque<Chunk>,
    done: bool,
}

impl Framed {
    fn new(inner: Box<dyn Source>, chunked: bool, last: bool, declared: Option<u64>) -> Self {
        Framed { inner, chunked, last, declared, produced: 0, ahead: VecDeque::new(), done: false }
    }
}

impl Source for Framed {
    fn len(&self) -> Option<u64> {
        self.declared
    }

    fn poll(&mut self, room: usize) -> SourcePoll {
        loop {
            if let Some(c) = self.ahead.pop_front() {
                return SourcePoll::Chunk(c);
            }
            if self.done {
                return SourcePoll::End(Vec::new());
            }
            match self.inner.poll(room) {
                SourcePoll::Chunk(c) => {
                    if matches!(c, Chunk::Source(_) | Chunk::Piped(_) | Chunk::End) {
                        return SourcePoll::Failed("a source produced a chunk kind it may not");
                    }
                    let n = c.remaining();
                    if let Some(d) = self.declared {
                        if !c.len_known() {
                            return SourcePoll::Failed("an unknown-length piece in a body of known length");
                        }
                        self.produced += n;
                        if self.produced > d {
                            return SourcePoll::Failed("a source produced more bytes than it declared");
                        }
                    }
                    match c {
                        Chunk::Fd(mut f) if f.len.is_none() => {
                            f.chunked = self.chunked;
                            return SourcePoll::Chunk(Chunk::Fd(f));
                        }
                        _ if n == 0 => continue,
                        c if self.chunked => {
                            self.ahead.push_back(c);
                            self.ahead.push_back(crlf());
                            return SourcePoll::Chunk(size_line(n));
                        }
                        c => return SourcePoll::Chunk(c),
                    }
                }
                SourcePoll::Pending => return SourcePoll::Pending,
                SourcePoll::Failed(why) => return SourcePoll::Failed(why),
                SourcePoll::End(trailers) => {
                    if self.declared.is_some_and(|d| d != self.produced) {
                        return SourcePoll::Failed("a source ended before the length it declared");
                    }
                    self.done = true;
                    if self.chunked && self.last {
                        return SourcePoll::Chunk(last_chunk(&trailers));
                    }
                }
            }
        }
    }

    fn waker(&self) -> &SourceWaker {
        self.inner.waker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::source::stream;

    fn bytes_of(out: &mut VecDeque<Chunk>) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(c) = out.pop_front() {
            match c {
                Chunk::Memory(b) => v.extend_from_slice(&b),
                Chunk::Source(mut s) => loop {
                    match s.poll(1 << 20) {
                        SourcePoll::Chunk(Chunk::Memory(b)) => v.extend_from_slice(&b),
                        SourcePoll::End(_) => break,
                        other => panic!("unexpected {:?}", matches!(other, SourcePoll::Pending)),
                    }
                },
                other => panic!("unexpected {other:?}"),
            }
        }
        v
    }

    #[test]
    fn static_chunks_are_framed_and_terminated() {
        let mut body = Body::new();
        body.push(Chunk::Memory(Bytes::from_static(b"hello")));
        body.push(Chunk::Memory(Bytes::from_static(b" world!")));
        let mut out = VecDeque::new();
        frame_body(body, true, &mut out);
        assert_eq!(bytes_of(&mut out), b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n");
    }

    #[test]
    fn a_trailing_stream_sends_the_last_chunk_with_trailers() {
        let (h, src) = stream(None);
        h.push(Chunk::Memory(Bytes::from_static(b"abc"))).unwrap();
        h.end(vec![(http::HeaderName::from_static("x-sum"), http::HeaderValue::from_static("7"))]).unwrap();
        let mut body = Body::new();
        body.push(Chunk::Memory(Bytes::from_static(b"12")));
        body.push(Chunk::Source(Box::new(src)));
        let mut out = VecDeque::new();
        frame_body(body, true, &mut out);
        assert_eq!(bytes_of(&mut out), b"2\r\n12\r\n3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n");
    }

    #[test]
    fn a_known_length_source_that_falls_short_fails() {
        let (h, src) = stream(Some(10));
        h.push(Chunk::Memory(Bytes::from_static(b"abc"))).unwrap();
        h.end(Vec::new()).unwrap();
        let mut f = Framed::new(Box::new(src), false, true, Some(10));
        assert!(matches!(f.poll(100), SourcePoll::Chunk(_)));
        assert!(matches!(f.poll(100), SourcePoll::Failed(_)));
    }
}
