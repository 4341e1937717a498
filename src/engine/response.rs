//! A response as the application builds it: status, headers, and a body chain.
#![forbid(unsafe_code)]

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};

use crate::body::source::Source;
use crate::body::{Body, Chunk, FdChunk, FdKind, FileFd, FileRegion};
use crate::error::Error;
use crate::transfer;

/// Takes over a connection after a `101 Switching Protocols` (or a 2xx to CONNECT): called
/// once on the worker thread with `Some((fd, bytes the engine had already read))`, or with
/// `None` if the hand-off did not happen (the connection went away first).
pub type UpgradeFn = Box<dyn FnOnce(Option<(std::os::fd::OwnedFd, Bytes)>) + Send>;

/// Calls the upgrade function exactly once: with the connection, or with `None` when dropped.
pub(crate) struct Upgrade(Option<UpgradeFn>);

impl Upgrade {
    pub(crate) fn complete(mut self, fd: std::os::fd::OwnedFd, rest: Bytes) {
        if let Some(f) = self.0.take() {
            f(Some((fd, rest)));
        }
    }
}

impl Drop for Upgrade {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(None);
        }
    }
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgrade")
    }
}

/// A response under construction. The engine adds `Date`, `Content-Length` and `Connection`.
#[derive(Debug)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
    /// The application asked for `Connection: close`.
    pub(crate) close: bool,
    /// Hand the connection over once this response has left.
    pub(crate) upgrade: Option<Upgrade>,
}

impl Response {
    /// A response with `status` in 200..=999, or 101 (which needs [`Response::set_upgrade`]);
    /// other 1xx interim responses are the engine's business.
    pub fn new(status: u16) -> Result<Self, Error> {
        if !(200..=999).contains(&status) && status != 101 {
            return Err(Error::Invalid("status must be 101 or within 200..=999"));
        }
        Ok(Response { status, headers: Vec::new(), body: Body::new(), close: false, upgrade: None })
    }

    /// `101 Switching Protocols` that hands the connection to `f` once it has been sent (add
    /// the `Upgrade` header naming the protocol; the engine writes `Connection: upgrade`).
    pub fn switching_protocols(f: UpgradeFn) -> Response {
        Response { status: 101, headers: Vec::new(), body: Body::new(), close: false, upgrade: Some(Upgrade(Some(f))) }
    }

    /// Hands the connection to `f` after this response, which must answer a CONNECT with a
    /// 2xx status (else the hand-off does not happen and `f` gets `None`). Replaces the body.
    pub fn tunnel(mut self, f: UpgradeFn) -> Response {
        self.set_upgrade(f);
        self
    }

    /// Hands the connection to `f` once this response (a 101, or a 2xx to CONNECT) has left.
    /// The body is dropped: after the head the bytes belong to the new protocol.
    pub fn set_upgrade(&mut self, f: UpgradeFn) {
        self.body = Body::new();
        self.upgrade = Some(Upgrade(Some(f)));
    }

    /// A 101 without a hand-off would leave both sides speaking different protocols.
    pub(crate) fn check_sendable(&self) -> Result<(), Error> {
        if self.status == 101 && self.upgrade.is_none() {
            return Err(Error::Invalid("a 101 response needs an upgrade hand-off"));
        }
        Ok(())
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Total body length so far.
    pub fn body_len(&self) -> u64 {
        self.body.len()
    }

    /// Adds a header. Framing headers (`Content-Length`, `Transfer-Encoding`) belong to the
    /// engine and are refused; `Connection: close` is honoured (the engine writes the header).
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        let name = HeaderName::from_bytes(name).map_err(|_| Error::Header("invalid header name"))?;
        // A well-known value (`text/plain`, `application/json` …) is a static one: no copy.
        let value = match crate::static_file::content_type::well_known(value) {
            Some(v) => v,
            None => HeaderValue::from_bytes(value).map_err(|_| Error::Header("invalid header value"))?,
        };
        match special(&name, &value)? {
            Some(asks_close) => self.close |= asks_close,
            None => self.headers.push((name, value)),
        }
        Ok(())
    }

    /// Adds parsed headers as if each were given to [`Response::add_header`] in order (on an
    /// error the response is to be discarded, as after a failed `add_header`). Nothing is
    /// copied: into a response without headers the list itself moves.
    pub(crate) fn add_parsed_headers(&mut self, mut headers: Vec<(HeaderName, HeaderValue)>) -> Result<(), Error> {
        let mut connection = false;
        for (n, v) in &headers {
            if let Some(asks_close) = special(n, v)? {
                self.close |= asks_close;
                connection = true;
            }
        }
        if connection {
            headers.retain(|(n, _)| n != header::CONNECTION);
        }
        if self.headers.is_empty() {
            self.headers = headers;
        } else {
            self.headers.append(&mut headers);
        }
        Ok(())
    }

    /// Appends a copy of `data`.
    pub fn add_bytes(&mut self, data: &[u8]) {
        self.body.push(Chunk::Memory(Bytes::copy_from_slice(data)));
    }

    /// Appends memory without copying; whatever owns it is dropped when the bytes are sent
    /// or the response is discarded.
    pub fn add_memory(&mut self, data: Bytes) {
        self.body.push(Chunk::Memory(data));
    }

    /// Checks a file region against the file as it is now and returns its length
    /// (`len = None` means "to the end of the file").
    pub fn check_file_region(fd: i32, offset: u64, len: Option<u64>) -> Result<u64, Error> {
        if fd < 0 {
            return Err(Error::Invalid("negative file descriptor"));
        }
        let (size, regular) = transfer::file_size(fd)?;
        if !regular {
            return Err(Error::Invalid("file regions need a regular file"));
        }
        if offset > size {
            return Err(Error::Range("offset past the end of the file"));
        }
        match len {
            None => Ok(size - offset),
            Some(n) if n <= size - offset => Ok(n),
            Some(_) => Err(Error::Range("region past the end of the file")),
        }
    }

    /// Appends a file region checked by [`Response::check_file_region`]; it goes out by
    /// `sendfile`. An owned fd is closed once, when the region is done or discarded.
    pub fn add_file_checked(&mut self, fd: FileFd, offset: u64, len: u64) {
        self.body.push(Chunk::File(FileRegion { fd, offset, len }));
    }

    /// Checks and appends a file region in one step (an owned fd is closed on error).
    pub fn add_file(&mut self, fd: FileFd, offset: u64, len: Option<u64>) -> Result<(), Error> {
        let len = Self::check_file_region(fd.raw(), offset, len)?;
        self.add_file_checked(fd, offset, len);
        Ok(())
    }

    /// Appends a pipe or socket to read `len` bytes from (or, with `None`, until EOF: the
    /// response then goes chunked, or close-delimited for HTTP/1.0). Sent by `splice`. The fd
    /// is switched to non-blocking mode.
    pub fn add_fd(&mut self, fd: FileFd, len: Option<u64>) -> Result<(), Error> {
        let kind = Self::check_fd_source(fd.raw())?;
        self.body.push(Chunk::Fd(FdChunk { fd, kind, len, chunked: false }));
        Ok(())
    }

    /// Checks that `fd` is a pipe or socket and makes it non-blocking.
    pub fn check_fd_source(fd: i32) -> Result<FdKind, Error> {
        if fd < 0 {
            return Err(Error::Invalid("negative file descriptor"));
        }
        match transfer::fd_kind(fd)? {
            Some(kind) => {
                transfer::set_nonblocking(fd)?;
                Ok(kind)
            }
            None => Err(Error::Invalid("fd sources must be pipes or sockets (use a file region for files)")),
        }
    }

    /// Appends a source that produces the rest of this chunk over time.
    pub fn add_source(&mut self, source: Box<dyn Source>) {
        self.body.push(Chunk::Source(source));
    }

    /// A short text response used for errors and rejections.
    pub fn plain(status: u16) -> Response {
        let mut r = Response::new(status.clamp(200, 999)).unwrap_or_else(|_| Response::new(500).expect("500 is valid"));
        let reason = http::StatusCode::from_u16(r.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        let text = format!("{} {}\n", r.status, reason);
        r.headers.push((header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")));
        r.body.push(Chunk::Memory(Bytes::from(text)));
        r
    }
}

/// Framing headers are the engine's (an error); `Connection` is not kept, only whether it asks
/// to close: `Some(asks_close)`. `None`: an ordinary header.
fn special(name: &HeaderName, value: &HeaderValue) -> Result<Option<bool>, Error> {
    if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
        return Err(Error::Header("framing headers are generated by the engine"));
    }
    if name == header::CONNECTION {
        let asks_close = value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            .unwrap_or(false);
        return Ok(Some(asks_close));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_range_is_checked() {
        assert!(Response::new(199).is_err());
        assert!(Response::new(1000).is_err());
        assert!(Response::new(200).is_ok());
    }

    #[test]
    fn framing_headers_are_refused_and_close_is_noted() {
        let mut r = Response::new(200).unwrap();
        assert!(matches!(r.add_header(b"Content-Length", b"5"), Err(Error::Header(_))));
        assert!(matches!(r.add_header(b"transfer-encoding", b"chunked"), Err(Error::Header(_))));
        assert!(matches!(r.add_header(b"bad name", b"x"), Err(Error::Header(_))));
        assert!(matches!(r.add_header(b"X-A", b"a\r\nb"), Err(Error::Header(_))));
        r.add_header(b"Connection", b"close").unwrap();
        assert!(r.close);
        r.add_header(b"X-Ok", b"yes").unwrap();
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn well_known_and_other_values_are_kept_byte_for_byte() {
        let mut r = Response::new(200).unwrap();
        r.add_header(b"Content-Type", b"text/plain").unwrap();
        r.add_header(b"X-Kind", b"application/json").unwrap();
        r.add_header(b"Content-Type", b"text/plain; charset=x").unwrap();
        let values: Vec<&[u8]> = r.headers.iter().map(|(_, v)| v.as_bytes()).collect();
        assert_eq!(values, [&b"text/plain"[..], b"application/json", b"text/plain; charset=x"]);
        assert!(r.add_header(b"X-Bad", b"a\nb").is_err(), "a bad value is still refused");
    }

    #[test]
    fn parsed_headers_are_taken_like_added_ones() {
        let hv = HeaderValue::from_static;
        let mut r = Response::new(200).unwrap();
        r.add_parsed_headers(vec![(header::ETAG, hv("\"a\"")), (header::CONNECTION, hv("keep-alive, close")), (header::VARY, hv("x"))]).unwrap();
        assert!(r.close);
        assert_eq!(r.headers, vec![(header::ETAG, hv("\"a\"")), (header::VARY, hv("x"))]);
        r.add_parsed_headers(vec![(header::SERVER, hv("s"))]).unwrap();
        assert_eq!(r.headers.len(), 3, "appended after the ones there");
        assert!(matches!(r.add_parsed_headers(vec![(header::CONTENT_LENGTH, hv("1"))]), Err(Error::Header(_))));
    }
}
