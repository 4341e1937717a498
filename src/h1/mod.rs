//! HTTP/1.1 codec: pure and I/O-free (DESIGN.md, layer `h1`).
//!
//! Everything here works on byte slices handed in by the engine and returns decisions or
//! bytes to write; nothing touches a socket, a clock or a global. That keeps the parts that
//! face hostile input (request heads, chunked bodies) unit-testable byte by byte.
//!
//! Strictness policy: this engine may sit behind or in front of other HTTP implementations,
//! so every place where RFC 9112 lets a recipient be lenient is resolved towards rejecting
//! the message (request smuggling lives in the disagreements between lenient parsers).
//! In particular **only CRLF terminates a line**: a bare LF anywhere in a request head, a
//! chunk-size line, the CRLF after chunk data or a trailer section is a 400. RFC 9112 §2.2
//! merely permits (MAY) accepting bare LF, and front-ends that do not would frame the
//! message differently from us.
#![forbid(unsafe_code)]

mod chunked;
mod date;
mod error;
mod request;
mod response;
mod syntax;

pub use chunked::{
    CHUNK_END, ChunkLine, ChunkedDecoder, ChunkedStep, LAST_CHUNK, allowed_in_trailers,
    chunk_size_line, write_last_chunk,
};
pub use date::{DateCache, format_http_date};
pub use error::ParseError;
pub use request::{RequestHead, parse_request_head};
pub use response::{ResponseFraming, response_framing, response_has_body, write_response_head};

/// HTTP version of a request. Responses are always written as HTTP/1.1 (RFC 9110 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// Bounds on what a peer may make us buffer while reading a head (or chunk metadata).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request line (method, target, version; CRLF not counted) → 414 past it.
    /// Also bounds a chunk-size line including its extensions.
    pub max_request_line: usize,
    /// Longest head including the request line and the final empty line → 431 past it.
    /// Also bounds a chunked body's trailer section.
    pub max_head_bytes: usize,
    /// Most header fields (or trailer fields) → 431 past it.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head_bytes: 16384,
            max_headers: 100,
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length and no Transfer-Encoding: no body.
    None,
    /// Content-Length as sent; `Length(0)` is reported as such.
    Length(u64),
    Chunked,
}
