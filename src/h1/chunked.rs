//! Chunked transfer coding (RFC 9112 §7.1): an incremental, zero-copy decoder for request
//! bodies and the few byte strings needed to encode responses.

use std::ops::Range;

use super::syntax::{is_tchar, parse_field_line};
use super::{Limits, ParseError};

/// Where the decoder is within the chunked grammar. Extension states are spelled out because
/// input may stop after any byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// chunk-size digits; `any` once at least one HEXDIG was read.
    Size {
        any: bool,
    },
    /// BWS inside a chunk-ext: only more BWS, `;`, or (after a name) `=` may follow.
    ExtWs {
        eq_allowed: bool,
    },
    /// After `;`: BWS, then the first tchar of the name.
    ExtNameStart,
    ExtName,
    /// After `=`: BWS, then a token or a quoted-string.
    ExtValStart,
    ExtValToken,
    ExtValQuoted,
    ExtValQuotedPair,
    /// After a closing quote: CR, `;` or BWS.
    ExtAfterQuoted,
    /// CR of the chunk-size line seen.
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Start of a trailer field line, or of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerEndLf,
    Done,
}

/// Incremental chunked-body decoder. Chunk extensions are checked for syntax and ignored;
/// trailer fields are collected, bounded by `max_head_bytes` / `max_headers`. A chunk-size
/// line (with extensions) may be at most `max_request_line` bytes. Only CRLF ends a line.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    max_line: usize,
    max_trailer_bytes: usize,
    max_trailers: usize,
    trailer_bytes: usize,
    line: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
    seen: u64,
}

/// One result of [`ChunkedDecoder::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkedStep {
    /// `consumed` input bytes were used; `data` is a range *within the input slice* of payload
    /// bytes (may be empty). `consumed == 0` means more input is needed.
    Progress { consumed: usize, data: Range<usize> },
    /// The final chunk and trailers are complete; `consumed` input bytes were used in this
    /// call. Bytes after them belong to the next request.
    Done { consumed: usize },
}

fn bad(why: &'static str) -> ParseError {
    ParseError::BadRequest(why)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl ChunkedDecoder {
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size { any: false },
            size: 0,
            line_len: 0,
            max_line: limits.max_request_line,
            max_trailer_bytes: limits.max_head_bytes,
            max_trailers: limits.max_headers,
            trailer_bytes: 0,
            line: Vec::new(),
            trailers: Vec::new(),
            seen: 0,
        }
    }

    /// Trailer fields (name as sent, value OWS-trimmed), complete once `Done` was returned.
    pub fn trailers(&self) -> &[(String, Vec<u8>)] {
        &self.trailers
    }

    /// Payload bytes decoded so far.
    pub fn body_bytes_seen(&self) -> u64 {
        self.seen
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes left in the current chunk while the decoder is inside chunk data; a
    /// caller may move them without looking at them (e.g. `splice` into a file) and report it
    /// with [`ChunkedDecoder::skip_data`].
    pub fn data_remaining(&self) -> Option<u64> {
        match self.state {
            State::Data { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Accounts for `n` payload bytes of the current chunk that were consumed elsewhere.
    /// `n` must not exceed [`ChunkedDecoder::data_remaining`].
    pub fn skip_data(&mut self, n: u64) {
        if let State::Data { remaining } = self.state {
            let n = n.min(remaining);
            self.seen += n;
            self.state = if n == remaining { State::DataCr } else { State::Data { remaining: remaining - n } };
        }
    }

    /// Decode as far as possible from `input` without copying, returning at most one payload
    /// range. Callers loop on `input[consumed..]` while `consumed > 0` and not `Done`.
    /// After a payload range, decoding continues through framing bytes but stops before the
    /// next payload byte and before the byte that would complete the body, so `Done` always
    /// comes from its own call.
    pub fn step(&mut self, input: &[u8]) -> Result<ChunkedStep, ParseError> {
        let mut i = 0;
        let mut data = 0..0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data { remaining } => {
                    if !data.is_empty() {
                        break;
                    }
                    let n = remaining.min((input.len() - i) as u64);
                    data = i..i + n as usize;
                    i += n as usize;
                    self.seen += n;
                    self.state = if n == remaining {
                        State::DataCr
                    } else {
                        State::Data {
                            remaining: remaining - n,
                        }
                    };
                }
                State::TrailerEndLf if !data.is_empty() => break,
                State::TrailerLine => {
                    // Bulk copy: trailer lines are the one place we must buffer.
                    let rest = &input[i..];
                    let room = self.max_trailer_bytes.saturating_sub(self.trailer_bytes);
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(lf) if lf < room => {
                            self.line.extend_from_slice(&rest[..lf]);
                            self.trailer_bytes += lf + 1;
                            i += lf + 1;
                            self.finish_trailer_line()?;
                        }
                        None if rest.len() <= room => {
                            self.line.extend_from_slice(rest);
                            self.trailer_bytes += rest.len();
                            i = input.len();
                        }
                        _ => return Err(ParseError::HeadersTooLarge),
                    }
                }
                _ => {
                    self.byte(input[i])?;
                    i += 1;
                }
            }
        }
        if self.state == State::Done && data.is_empty() {
            Ok(ChunkedStep::Done { consumed: i })
        } else {
            Ok(ChunkedStep::Progress { consumed: i, data })
        }
    }

    /// Decode everything possible from `input`, appending payload to `out`.
    /// Returns (bytes of `input` consumed, body complete).
    pub fn decode_into(
        &mut self,
        input: &[u8],
        out: &mut bytes::BytesMut,
    ) -> Result<(usize, bool), ParseError> {
        let mut total = 0;
        loop {
            let rest = &input[total..];
            match self.step(rest)? {
                ChunkedStep::Progress { consumed, data } => {
                    out.extend_from_slice(&rest[data]);
                    total += consumed;
                    if consumed == 0 {
                        return Ok((total, false));
                    }
                }
                ChunkedStep::Done { consumed } => return Ok((total + consumed, true)),
            }
        }
    }

    fn size_line_byte(&mut self) -> Result<(), ParseError> {
        self.line_len += 1;
        // line_len includes the CR; the limit, like the request line's, excludes CRLF.
        if self.line_len > self.max_line.saturating_add(1) {
            return Err(bad("chunk-size line too long"));
        }
        Ok(())
    }

    /// Advance one framing byte (never called in `Data`, `TrailerLine` or `Done`).
    fn byte(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        let ext_err = || bad("invalid chunk extension");
        let in_size_line = matches!(
            self.state,
            Size { .. }
                | ExtWs { .. }
                | ExtNameStart
                | ExtName
                | ExtValStart
                | ExtValToken
                | ExtValQuoted
                | ExtValQuotedPair
                | ExtAfterQuoted
        );
        if in_size_line {
            self.size_line_byte()?;
        }
        self.state = match self.state {
            Size { any } => match (hex_val(b), b) {
                (Some(d), _) => {
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .ok_or(bad("chunk size overflow"))?;
                    Size { any: true }
                }
                _ if !any => return Err(bad("invalid chunk size")),
                (None, b'\r') => SizeLf,
                (None, b';') => ExtNameStart,
                (None, b' ' | b'\t') => ExtWs { eq_allowed: false },
                _ => return Err(bad("invalid chunk size")),
            },
            ExtWs { eq_allowed } => match b {
                b' ' | b'\t' => ExtWs { eq_allowed },
                b';' => ExtNameStart,
                b'=' if eq_allowed => ExtValStart,
                _ => return Err(ext_err()),
            },
            ExtNameStart => match b {
                b' ' | b'\t' => ExtNameStart,
                _ if is_tchar(b) => ExtName,
                _ => return Err(ext_err()),
            },
            ExtName => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                b'=' => ExtValStart,
                b' ' | b'\t' => ExtWs { eq_allowed: true },
                _ if is_tchar(b) => ExtName,
                _ => return Err(ext_err()),
            },
            ExtValStart => match b {
                b' ' | b'\t' => ExtValStart,
                b'"' => ExtValQuoted,
                _ if is_tchar(b) => ExtValToken,
                _ => return Err(ext_err()),
            },
            ExtValToken => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                b' ' | b'\t' => ExtWs { eq_allowed: false },
                _ if is_tchar(b) => ExtValToken,
                _ => return Err(ext_err()),
            },
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            ExtValQuoted => match b {
                b'"' => ExtAfterQuoted,
                b'\\' => ExtValQuotedPair,
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtValQuoted,
                _ => return Err(ext_err()),
            },
            ExtValQuotedPair => match b {
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtValQuoted,
                _ => return Err(ext_err()),
            },
            ExtAfterQuoted => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                b' ' | b'\t' => ExtWs { eq_allowed: false },
                _ => return Err(ext_err()),
            },
            SizeLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in chunk-size line"));
                }
                let size = std::mem::take(&mut self.size);
                self.line_len = 0;
                if size == 0 {
                    TrailerStart
                } else {
                    Data { remaining: size }
                }
            }
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(bad("missing CRLF after chunk data")),
            },
            DataLf => match b {
                b'\n' => Size { any: false },
                _ => return Err(bad("missing CRLF after chunk data")),
            },
            TrailerStart => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.max_trailer_bytes {
                    return Err(ParseError::HeadersTooLarge);
                }
                match b {
                    b'\r' => TrailerEndLf,
                    b'\n' => return Err(bad("bare LF")),
                    _ => {
                        self.line.clear();
                        self.line.push(b);
                        TrailerLine
                    }
                }
            }
            TrailerEndLf => match b {
                b'\n' => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > self.max_trailer_bytes {
                        return Err(ParseError::HeadersTooLarge);
                    }
                    Done
                }
                _ => return Err(bad("bare CR in trailer section")),
            },
            Data { .. } | TrailerLine | Done => return Err(bad("decoder misuse")),
        };
        Ok(())
    }

    /// `self.line` holds a trailer line up to (not including) its LF.
    fn finish_trailer_line(&mut self) -> Result<(), ParseError> {
        let Some(line) = self.line.strip_suffix(b"\r") else {
            return Err(bad("bare LF"));
        };
        let (name, value) = parse_field_line(line).map_err(bad)?;
        if self.trailers.len() >= self.max_trailers {
            return Err(ParseError::HeadersTooLarge);
        }
        // parse_field_line accepted a token, which is ASCII.
        let name = String::from_utf8_lossy(name).into_owned();
        self.trailers.push((name, value.to_vec()));
        self.state = State::TrailerStart;
        Ok(())
    }
}

/// A chunk-size line (`{hex}\r\n`) in a stack buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLine {
    buf: [u8; 18],
    len: u8,
}

impl AsRef<[u8]> for ChunkLine {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The chunk-size line for a data chunk of `len` bytes. `len` must not be 0: a zero-size chunk
/// is the last chunk (use [`LAST_CHUNK`]).
pub fn chunk_size_line(len: u64) -> ChunkLine {
    debug_assert!(len != 0, "a zero-length chunk would end the body");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - len.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut buf = [0u8; 18];
    for (i, slot) in buf[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((len >> shift) & 0xf) as usize];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    ChunkLine {
        buf,
        len: (digits + 2) as u8,
    }
}

/// Follows each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Whether a field may be sent as a trailer. RFC 9110 §6.5.1: fields needed before the content
/// can be processed — framing, routing, connection control, the content's format — must not be
/// generated in trailers; a recipient would have acted on the header section already.
pub fn allowed_in_trailers(name: &http::HeaderName) -> bool {
    use http::header;
    ![
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TRAILER,
        header::HOST,
        header::CONNECTION,
        header::TE,
        header::UPGRADE,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
    ]
    .contains(name)
        && name.as_str() != "keep-alive"
}

/// Append the last chunk followed by trailer fields (syntax already validated by the caller)
/// and the final CRLF. Fields that must not be trailers ([`allowed_in_trailers`]) are left
/// out, whichever body produced them. With no trailers this is exactly [`LAST_CHUNK`].
pub fn write_last_chunk(out: &mut Vec<u8>, trailers: &[(http::HeaderName, http::HeaderValue)]) {
    out.extend_from_slice(b"0\r\n");
    for (n, v) in trailers.iter().filter(|(n, _)| allowed_in_trailers(n)) {
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn limits() -> Limits {
        Limits::default()
    }

    /// Decode `input` in one go; returns (payload, consumed, done).
    fn whole(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ParseError> {
        let mut d = ChunkedDecoder::new(&limits());
        let mut out = BytesMut::new();
        let (n, done) = d.decode_into(input, &mut out)?;
        Ok((out.to_vec(), n, done))
    }

    /// Feed `input` split at the given cut points, emulating a connection buffer: unconsumed
    /// bytes stay and new ones are appended.
    fn split_feed(
        input: &[u8],
        cuts: &[usize],
        d: &mut ChunkedDecoder,
    ) -> Result<(Vec<u8>, usize), ParseError> {
        let mut out = BytesMut::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0;
        let mut prev = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[prev..cut]);
            prev = cut;
            let (n, done) = d.decode_into(&buf, &mut out)?;
            buf.drain(..n);
            total += n;
            if done {
                return Ok((out.to_vec(), total));
            }
        }
        Err(ParseError::BadRequest("test: not done"))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n6;name=val;flag\r\n world\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: abc\r\nX-B:  two words \r\n\r\n";
    const PAYLOAD: &[u8] = b"hello worldabcdefghijklmnopqrstuvwxyz";

    #[test]
    fn decode_whole() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut d = ChunkedDecoder::new(&limits());
        let mut out = BytesMut::new();
        let (n, done) = d.decode_into(&input, &mut out).unwrap();
        assert!(done);
        assert!(d.is_done());
        assert_eq!(n, BODY.len());
        assert_eq!(&out[..], PAYLOAD);
        assert_eq!(d.body_bytes_seen(), PAYLOAD.len() as u64);
        assert_eq!(
            d.trailers(),
            &[
                ("X-Sum".to_string(), b"abc".to_vec()),
                ("X-B".to_string(), b"two words".to_vec())
            ]
        );
        // after Done nothing more is consumed
        assert_eq!(d.step(b"more").unwrap(), ChunkedStep::Done { consumed: 0 });
    }

    #[test]
    fn step_returns_ranges_within_input() {
        let mut d = ChunkedDecoder::new(&limits());
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
        let s1 = d.step(input).unwrap();
        // framing after the data is consumed too, up to the next payload byte
        assert_eq!(
            s1,
            ChunkedStep::Progress {
                consumed: 11,
                data: 3..6
            }
        );
        let s2 = d.step(&input[11..]).unwrap();
        assert_eq!(
            s2,
            ChunkedStep::Progress {
                consumed: 8,
                data: 0..2
            }
        );
        // the byte completing the body comes alone as Done when payload preceded it
        let s3 = d.step(&input[19..]).unwrap();
        assert_eq!(s3, ChunkedStep::Done { consumed: 1 });
        assert_eq!(&input[20..], b"NEXT");
        // need-more-input
        let mut d = ChunkedDecoder::new(&limits());
        assert_eq!(
            d.step(b"").unwrap(),
            ChunkedStep::Progress {
                consumed: 0,
                data: 0..0
            }
        );
        assert_eq!(
            d.step(b"a").unwrap(),
            ChunkedStep::Progress {
                consumed: 1,
                data: 0..0
            }
        );
        assert_eq!(
            d.step(b"").unwrap(),
            ChunkedStep::Progress {
                consumed: 0,
                data: 0..0
            }
        );
        assert_eq!(
            d.step(b"\r\nxyz").unwrap(),
            ChunkedStep::Progress {
                consumed: 5,
                data: 2..5
            }
        );
        assert_eq!(d.body_bytes_seen(), 3);
    }

    #[test]
    fn empty_body() {
        assert_eq!(whole(b"0\r\n\r\n").unwrap(), (vec![], 5, true));
        assert_eq!(whole(b"000\r\n\r\n").unwrap(), (vec![], 7, true));
        let mut d = ChunkedDecoder::new(&limits());
        assert_eq!(
            d.step(b"0\r\n\r\n").unwrap(),
            ChunkedStep::Done { consumed: 5 }
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut d = ChunkedDecoder::new(&limits());
        let mut out = Vec::new();
        for (i, b) in BODY.iter().enumerate() {
            let one = [*b];
            match d.step(&one).unwrap() {
                ChunkedStep::Progress { consumed, data } => {
                    assert_eq!(consumed, 1, "byte {i}");
                    out.extend_from_slice(&one[data]);
                }
                ChunkedStep::Done { consumed } => {
                    assert_eq!(consumed, 1);
                    assert_eq!(i, BODY.len() - 1);
                }
            }
        }
        assert!(d.is_done());
        assert_eq!(out, PAYLOAD);
        assert_eq!(d.trailers().len(), 2);
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_splits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let ext_body: &[u8] = b"4 ; a = b ; c=\"q\\\"x y\" ;d\r\nwiki\r\n5;e=\"\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;z\r\nT: 1\r\n\r\n";
        for input in [BODY, ext_body] {
            let expect = whole(input).unwrap();
            for _ in 0..500 {
                let mut cuts: Vec<usize> = (0..(rng.next() % 8))
                    .map(|_| (rng.next() % input.len() as u64) as usize)
                    .collect();
                cuts.sort_unstable();
                let mut d = ChunkedDecoder::new(&limits());
                let (out, n) = split_feed(input, &cuts, &mut d).unwrap();
                assert_eq!((out, n), (expect.0.clone(), input.len()), "cuts {cuts:?}");
                assert_eq!(
                    d.trailers(),
                    ChunkedDecoder::new(&limits()).tap(input).trailers()
                );
            }
        }
        assert_eq!(whole(ext_body).unwrap().0, b"wikipedia in\r\n\r\nchunks.");
    }

    impl ChunkedDecoder {
        fn tap(mut self, input: &[u8]) -> Self {
            self.decode_into(input, &mut BytesMut::new()).unwrap();
            self
        }
    }

    /// Mutated bodies never panic, and feeding byte by byte gives exactly the result of
    /// feeding everything at once (same payload, same error, same end).
    #[test]
    fn mutations_incremental_equals_whole() {
        let interesting = [
            b'\r', b'\n', b' ', b'\t', b';', b'=', b'"', b'\\', b':', 0, b'0', b'f',
        ];
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..5_000 {
            let mut input = BODY.to_vec();
            for _ in 0..=(rng.next() % 2) {
                let at = (rng.next() % input.len() as u64) as usize;
                let b = interesting[(rng.next() % interesting.len() as u64) as usize];
                match rng.next() % 3 {
                    0 => input[at] = b,
                    1 => input.insert(at, b),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            let whole = whole(&input).map(|(p, n, done)| (p, if done { n } else { usize::MAX }));
            let mut d = ChunkedDecoder::new(&limits());
            let mut out = BytesMut::new();
            let mut bytewise: Result<((), usize), ParseError> = Ok(((), usize::MAX));
            for i in 0..input.len() {
                match d.decode_into(&input[i..=i], &mut out) {
                    Err(e) => {
                        bytewise = Err(e);
                        break;
                    }
                    Ok((1, true)) => {
                        bytewise = Ok(((), i + 1));
                        break;
                    }
                    Ok((1, false)) => {}
                    Ok(other) => panic!("byte not consumed: {other:?}"),
                }
            }
            let bytewise = bytewise.map(|(_, n)| (out.to_vec(), n));
            match (&whole, &bytewise) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&input)),
                (Err(a), Err(b)) => assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&input)),
                _ => panic!(
                    "{whole:?} vs {bytewise:?} for {:?}",
                    String::from_utf8_lossy(&input)
                ),
            }
        }
    }

    #[test]
    fn extensions_accepted() {
        for line in [
            "3;a\r\n",
            "3;a=b\r\n",
            "3 ;a\r\n",
            "3\t;\ta\t=\tb\r\n",
            "3;a=\"\"\r\n",
            "3;a=\"x;y=z\\\\\"\r\n",
            "3;a=\"x\" ;b\r\n",
            "3;a;b;c=d\r\n",
            "3;a=b ;c\r\n",
            "003\r\n",
            "3;a=\"caf\u{e9}\"\r\n",
        ] {
            let input = format!("{line}abc\r\n0\r\n\r\n");
            assert_eq!(whole(input.as_bytes()).unwrap().0, b"abc", "{line:?}");
        }
    }

    #[test]
    fn malformed_rejected() {
        let cases: &[&[u8]] = &[
            b"\r\nabc\r\n0\r\n\r\n", // empty size
            b"g\r\n",                // non-hex
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"+3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n", // leading space
            b"3 \r\nabc\r\n0\r\n\r\n", // trailing BWS without extension
            b"3\nabc\r\n0\r\n\r\n",    // bare LF
            b"3\rabc\r\n0\r\n\r\n",    // bare CR
            b"3;\r\nabc\r\n0\r\n\r\n", // empty ext name
            b"3;=b\r\nabc\r\n0\r\n\r\n",
            b"3;a=\r\nabc\r\n0\r\n\r\n", // empty ext value
            b"3;a b\r\nabc\r\n0\r\n\r\n",
            b"3;a=b c\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"x\r\nabc\r\n0\r\n\r\n", // unterminated quote hits CR
            b"3;a=\"x\"y\r\nabc\r\n0\r\n\r\n",
            b"3;a=b=c\r\nabc\r\n0\r\n\r\n",
            b"3;a\x00\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n", // data longer than size
            b"3\r\nabc\n0\r\n\r\n",    // bare LF after data
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\r\r\n0\r\n\r\n",
            b"3\r\nab\r\n0\r\n\r\n", // data shorter: CRLF eaten as data, then garbage
            b"0\r\n\n",              // bare LF ending the trailer section
            b"0\r\n\rX",
            b"0\r\nX: 1\n\r\n",    // bare LF after a trailer
            b"0\r\nX : 1\r\n\r\n", // whitespace before colon
            b"0\r\n X: 1\r\n\r\n", // obs-fold
            b"0\r\nX: 1\r\n\tmore\r\n\r\n",
            b"0\r\nX: a\x00b\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nNoColon\r\n\r\n",
            b"0\r\nX(Y): 1\r\n\r\n",
        ];
        for input in cases {
            let r = whole(input);
            assert!(
                matches!(r, Err(ParseError::BadRequest(_))),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn size_overflow() {
        assert_eq!(whole(b"ffffffffffffffff\r\n").unwrap(), (vec![], 18, false));
        assert_eq!(
            whole(b"10000000000000000\r\n"),
            Err(ParseError::BadRequest("chunk size overflow"))
        );
        assert_eq!(
            whole(b"00000000000000000000000000000001\r\nx\r\n0\r\n\r\n")
                .unwrap()
                .0,
            b"x"
        );
    }

    #[test]
    fn size_line_limit() {
        let l = Limits {
            max_request_line: 16,
            max_head_bytes: 64,
            max_headers: 2,
        };
        // 16 bytes of size line (CRLF not counted) is fine
        let mut d = ChunkedDecoder::new(&l);
        let ok = b"1;aaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n";
        assert!(d.decode_into(ok, &mut BytesMut::new()).unwrap().1);
        let mut d = ChunkedDecoder::new(&l);
        let long = b"1;aaaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n";
        assert_eq!(
            d.decode_into(long, &mut BytesMut::new()),
            Err(ParseError::BadRequest("chunk-size line too long"))
        );
        // endless leading zeros / extension bytes fed slowly are cut off too
        let mut d = ChunkedDecoder::new(&l);
        let mut r = Ok(ChunkedStep::Done { consumed: 0 });
        for _ in 0..100 {
            r = d.step(b"0");
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(ParseError::BadRequest("chunk-size line too long")));
    }

    #[test]
    fn trailer_limits() {
        let l = Limits {
            max_request_line: 16,
            max_head_bytes: 32,
            max_headers: 2,
        };
        let run = |input: &[u8]| {
            let mut d = ChunkedDecoder::new(&l);
            d.decode_into(input, &mut BytesMut::new())
                .map(|r| (r, d.trailers().len()))
        };
        assert_eq!(run(b"0\r\nA: 1\r\nB: 2\r\n\r\n"), Ok(((17, true), 2)));
        assert_eq!(
            run(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(ParseError::HeadersTooLarge)
        );
        // trailer section: exactly 32 bytes (incl. final CRLF) ok, 33 rejected
        let t = |n: usize| format!("0\r\nA: {}\r\n\r\n", "v".repeat(n));
        assert!(run(t(32 - 7).as_bytes()).unwrap().0.1);
        assert_eq!(run(t(32 - 6).as_bytes()), Err(ParseError::HeadersTooLarge));
        // an unterminated trailer line cannot grow without bound
        let mut d = ChunkedDecoder::new(&l);
        d.step(b"0\r\nA: ").unwrap();
        let mut r = Ok(ChunkedStep::Done { consumed: 0 });
        for _ in 0..100 {
            r = d.step(b"vvvv");
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(ParseError::HeadersTooLarge));
    }

    #[test]
    fn large_chunk_streams_without_buffering() {
        let mut d = ChunkedDecoder::new(&limits());
        assert_eq!(
            d.step(b"100000\r\n").unwrap(),
            ChunkedStep::Progress {
                consumed: 8,
                data: 0..0
            }
        );
        let block = vec![7u8; 4096];
        let mut seen = 0;
        while seen < 0x100000 {
            match d.step(&block).unwrap() {
                ChunkedStep::Progress { consumed, data } => {
                    assert_eq!(data, 0..consumed);
                    seen += consumed;
                }
                ChunkedStep::Done { .. } => panic!(),
            }
        }
        assert_eq!(d.body_bytes_seen(), 0x100000);
        assert_eq!(
            d.step(b"\r\n0\r\n\r\nX").unwrap(),
            ChunkedStep::Done { consumed: 7 }
        );
    }

    #[test]
    fn encoder_helpers() {
        assert_eq!(chunk_size_line(1).as_ref(), b"1\r\n");
        assert_eq!(chunk_size_line(15).as_ref(), b"f\r\n");
        assert_eq!(chunk_size_line(16).as_ref(), b"10\r\n");
        assert_eq!(chunk_size_line(4096).as_ref(), b"1000\r\n");
        assert_eq!(chunk_size_line(0xdead_beef).as_ref(), b"deadbeef\r\n");
        assert_eq!(chunk_size_line(u64::MAX).as_ref(), b"ffffffffffffffff\r\n");
        let line = chunk_size_line(300);
        let copy = line;
        assert_eq!(line, copy);
        assert_eq!(CHUNK_END, b"\r\n");
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
        let mut out = Vec::new();
        write_last_chunk(&mut out, &[]);
        assert_eq!(out, LAST_CHUNK);
        out.clear();
        write_last_chunk(
            &mut out,
            &[(
                http::HeaderName::from_static("x-checksum"),
                http::HeaderValue::from_static("abc"),
            )],
        );
        assert_eq!(out, b"0\r\nx-checksum: abc\r\n\r\n");

        // round trip through the decoder
        let mut wire = Vec::new();
        for part in [&b"hello"[..], &[b'x'; 300][..], b"!"] {
            wire.extend_from_slice(chunk_size_line(part.len() as u64).as_ref());
            wire.extend_from_slice(part);
            wire.extend_from_slice(CHUNK_END);
        }
        write_last_chunk(
            &mut wire,
            &[(
                http::HeaderName::from_static("t"),
                http::HeaderValue::from_static("1"),
            )],
        );
        let (payload, n, done) = whole(&wire).unwrap();
        assert!(done);
        assert_eq!(n, wire.len());
        assert_eq!(payload.len(), 306);
    }

    /// Whatever body produced them (a stream, a custom source), fields that must not be
    /// trailers never reach the wire.
    #[test]
    fn fields_that_must_not_be_trailers_are_left_out() {
        let v = http::HeaderValue::from_static("1");
        let mut out = Vec::new();
        write_last_chunk(
            &mut out,
            &[
                (http::header::CONTENT_LENGTH, v.clone()),
                (http::HeaderName::from_static("x-a"), v.clone()),
                (http::header::TRANSFER_ENCODING, v.clone()),
                (http::HeaderName::from_static("keep-alive"), v.clone()),
                (http::header::HOST, v.clone()),
                (http::HeaderName::from_static("x-b"), v.clone()),
            ],
        );
        assert_eq!(out, b"0\r\nx-a: 1\r\nx-b: 1\r\n\r\n");
        for allowed in ["x-checksum", "server-timing", "etag"] {
            assert!(allowed_in_trailers(&http::HeaderName::from_static(allowed)), "{allowed}");
        }
    }

    #[test]
    fn payload_moved_elsewhere_can_be_skipped() {
        let mut d = ChunkedDecoder::new(&limits());
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(d.step(&input[..3]).unwrap(), ChunkedStep::Progress { consumed: 3, data: 0..0 });
        assert_eq!(d.data_remaining(), Some(10));
        d.skip_data(4);
        assert_eq!(d.data_remaining(), Some(6));
        d.skip_data(6);
        assert_eq!(d.data_remaining(), None);
        assert_eq!(d.step(&input[13..]).unwrap(), ChunkedStep::Done { consumed: 7 });
        assert_eq!(d.body_bytes_seen(), 10);
    }
}
