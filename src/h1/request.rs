//! Request head parsing: framing of the head (lines, limits) is checked here, the grammar of
//! the request line and fields by httparse, and the semantics (Host, Content-Length,
//! Transfer-Encoding, Connection, target forms) on top.

use std::ffi::CStr;
use std::mem::MaybeUninit;

use super::syntax::{is_field_value_byte, is_ows, is_tchar, list_elements, trim_ows};
use super::{BodyFraming, Limits, ParseError, Version};

/// Bytes of one field's entry in the span table that opens the arena.
const FIELD_ENTRY: usize = 16;

/// Bytes of one string in the arena; the NUL follows at `start + len`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

/// A parsed request head.
///
/// Every string (method, target, path, query, field names and values) is stored
/// NUL-terminated in one owned arena, so the C API can hand out `const char *` valid for the
/// head's lifetime without allocating. The arena starts with the fields' spans (name start,
/// name length, value start, value length: four little-endian `u32` per field), so a head
/// costs one allocation. Immutable after parsing; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct RequestHead {
    method: http::Method,
    version: Version,
    arena: Box<[u8]>,
    method_s: Span,
    target: Span,
    path: Span,
    query: Option<Span>,
    /// Number of fields; their spans open the arena.
    fields: u32,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    /// The first `Expect` field is not `100-continue` (RFC 9110 §10.1.1: answer 417).
    expect_unmet: bool,
    /// An `Upgrade` field was sent.
    upgrade: bool,
    /// A field that can make a GET conditional or partial was sent.
    conditional: bool,
}

impl RequestHead {
    fn bytes(&self, s: Span) -> &[u8] {
        let start = s.start as usize;
        &self.arena[start..start + s.len as usize]
    }

    // Everything stored as &str was checked to be ASCII when parsed, so the fallback is
    // unreachable; it exists only because this module forbids `unsafe`.
    fn str(&self, s: Span) -> &str {
        std::str::from_utf8(self.bytes(s)).unwrap_or("")
    }

    // Interior NULs were rejected when parsing, so the fallback is unreachable.
    fn cstr(&self, s: Span) -> &CStr {
        CStr::from_bytes_with_nul(self.with_nul(s)).unwrap_or(c"")
    }

    /// `s` with its NUL: what the C API hands out as a `const char *`. Parsing put a NUL at
    /// the end of every span and rejected interior ones, so unlike [`RequestHead::cstr`] this
    /// does not scan the string again (the C accessors are called per request).
    fn with_nul(&self, s: Span) -> &[u8] {
        let start = s.start as usize;
        &self.arena[start..=start + s.len as usize]
    }

    pub fn method(&self) -> &http::Method {
        &self.method
    }
    /// The method as sent (methods are case-sensitive).
    pub fn method_cstr(&self) -> &CStr {
        self.cstr(self.method_s)
    }
    pub fn version(&self) -> Version {
        self.version
    }
    /// The request-target exactly as sent.
    pub fn target(&self) -> &str {
        self.str(self.target)
    }
    pub fn target_cstr(&self) -> &CStr {
        self.cstr(self.target)
    }
    /// The path: the target before the first `?`, not percent-decoded. For absolute-form the
    /// URI's path (`/` when empty); for asterisk-form `*`; for CONNECT the authority.
    pub fn path(&self) -> &str {
        self.str(self.path)
    }
    pub fn path_cstr(&self) -> &CStr {
        self.cstr(self.path)
    }
    /// The query after the first `?` (possibly empty); `None` when the target has no `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| self.str(q))
    }
    pub fn query_cstr(&self) -> Option<&CStr> {
        self.query.map(|q| self.cstr(q))
    }
    /// The method, target, path and query as NUL-terminated bytes, without the scan that
    /// building a `CStr` costs (see [`RequestHead::with_nul`]).
    pub(crate) fn method_with_nul(&self) -> &[u8] {
        self.with_nul(self.method_s)
    }
    pub(crate) fn target_with_nul(&self) -> &[u8] {
        self.with_nul(self.target)
    }
    pub(crate) fn path_with_nul(&self) -> &[u8] {
        self.with_nul(self.path)
    }
    pub(crate) fn query_with_nul(&self) -> Option<&[u8]> {
        self.query.map(|q| self.with_nul(q))
    }
    /// Like [`RequestHead::header_cstr`] and [`RequestHead::header_at_cstr`], NUL-terminated
    /// bytes without the rescan.
    pub(crate) fn header_with_nul(&self, name: &[u8]) -> Option<&[u8]> {
        self.find(name).map(|(_, v)| self.with_nul(v))
    }
    pub(crate) fn header_at_with_nul(&self, i: usize) -> Option<(&[u8], &[u8])> {
        (i < self.header_count())
            .then(|| self.field(i))
            .map(|(n, v)| (self.with_nul(n), self.with_nul(v)))
    }
    /// The spans of field `i` (< `fields`), from the table at the start of the arena.
    fn field(&self, i: usize) -> (Span, Span) {
        let at = i * FIELD_ENTRY;
        let word = |k: usize| {
            let b = &self.arena[at + 4 * k..at + 4 * k + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        (
            Span { start: word(0), len: word(1) },
            Span { start: word(2), len: word(3) },
        )
    }
    fn fields(&self) -> impl Iterator<Item = (Span, Span)> + '_ {
        (0..self.fields as usize).map(|i| self.field(i))
    }
    fn find(&self, name: &[u8]) -> Option<(Span, Span)> {
        self.fields()
            .find(|(n, _)| self.bytes(*n).eq_ignore_ascii_case(name))
    }
    /// First value of the named field (ASCII case-insensitive), OWS-trimmed.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.find(name.as_bytes()).map(|(_, v)| self.bytes(v))
    }
    pub fn header_cstr(&self, name: &[u8]) -> Option<&CStr> {
        self.find(name).map(|(_, v)| self.cstr(v))
    }
    /// All values of the named field, in order (a field may be sent several times).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields()
            .filter(move |(n, _)| self.bytes(*n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| self.bytes(v))
    }
    pub fn header_count(&self) -> usize {
        self.fields as usize
    }
    /// The i-th field: name as sent, value OWS-trimmed.
    pub fn header_at(&self, i: usize) -> Option<(&str, &[u8])> {
        (i < self.header_count())
            .then(|| self.field(i))
            .map(|(n, v)| (self.str(n), self.bytes(v)))
    }
    pub fn header_at_cstr(&self, i: usize) -> Option<(&CStr, &CStr)> {
        (i < self.header_count())
            .then(|| self.field(i))
            .map(|(n, v)| (self.cstr(n), self.cstr(v)))
    }
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }
    /// `Expect: 100-continue` was sent.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }
    /// The first `Expect` field asks for something other than `100-continue` (the same as
    /// `header("expect")` not being `100-continue`, known from parsing).
    pub fn expect_unmet(&self) -> bool {
        self.expect_unmet
    }
    /// An `Upgrade` field was sent (the same as `header("upgrade").is_some()`).
    pub fn has_upgrade(&self) -> bool {
        self.upgrade
    }
    /// One of `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, `Range`,
    /// `If-Range` was sent (without one, a file answer needs no precondition or range work).
    pub fn has_conditional(&self) -> bool {
        self.conditional
    }
    pub fn is_head(&self) -> bool {
        self.method == http::Method::HEAD
    }
}

fn bad(why: &'static str) -> ParseError {
    ParseError::BadRequest(why)
}

use super::syntax::find_byte;

fn find_lf(buf: &[u8]) -> Option<usize> {
    find_byte(buf, b'\n')
}

/// Where the head's lines are, once it is known to be complete.
struct HeadShape {
    /// Start of the request line (after skipped empty lines).
    start: usize,
    /// Request line without CRLF.
    line_end: usize,
    /// One past the final empty line's LF.
    end: usize,
    fields: usize,
}

/// Find the end of the head and enforce line terminators and limits, before any grammar.
/// Cheap (one pass looking for LF), so an engine may call it on every read.
fn scan_head(buf: &[u8], limits: &Limits) -> Result<Option<HeadShape>, ParseError> {
    // RFC 9112 §2.2: empty lines before the request line are ignored. They count towards
    // max_head_bytes so that an endless stream of CRLFs cannot be buffered forever.
    let mut start = 0;
    loop {
        if start > limits.max_head_bytes {
            return Err(ParseError::HeadersTooLarge);
        }
        match buf.get(start..start + 2) {
            Some(b"\r\n") => start += 2,
            Some([b'\r', _]) => return Err(bad("bare CR")),
            Some([b'\n', _]) => return Err(bad("bare LF")),
            Some(_) => break,
            None => match buf.get(start) {
                Some(b'\n') => return Err(bad("bare LF")),
                Some(b'\r') | None => return Ok(None),
                Some(_) => break,
            },
        }
    }

    let max_line = limits.max_request_line;
    let window = &buf[start
        ..buf
            .len()
            .min(start.saturating_add(max_line).saturating_add(2))];
    // The checks run in an order that does not depend on how the bytes were split: a strict
    // prefix of a head either waits for more or fails the way the whole head fails.
    // 1. Bytes that can never start a request (e.g. a TLS ClientHello) fail at once.
    // Only the bytes up to where the length limit is decided (index `max_line`) count, so a
    // longer prefix cannot turn a 414 into a 400.
    if window[..window.len().min(max_line + 1)]
        .iter()
        .take_while(|&&b| b != b' ' && b != b'\r' && b != b'\n')
        .any(|&b| !is_tchar(b))
    {
        return Err(bad("invalid method"));
    }
    // A method ended by CR or LF instead of SP can never become a request line; that is known
    // at the terminator, so it wins over a length limit only reached later.
    if let Some(i) = window.iter().position(|&b| b == b' ' || b == b'\r' || b == b'\n') {
        if window[i] != b' ' && i <= max_line {
            return Err(bad("invalid request line"));
        }
    }
    let Some(lf) = find_lf(window) else {
        // 2. Too long, whatever follows.
        let avail = buf.len() - start;
        if avail > max_line + 1 || (avail == max_line + 1 && buf[start + max_line] != b'\r') {
            return Err(ParseError::UriTooLong);
        }
        return if buf.len() > limits.max_head_bytes {
            Err(ParseError::HeadersTooLarge)
        } else {
            Ok(None)
        };
    };
    let lf = start + lf;
    let with_cr = lf > start && buf[lf - 1] == b'\r';
    if lf - start - usize::from(with_cr) > max_line {
        return Err(ParseError::UriTooLong);
    }
    // 3. Only CRLF ends a line.
    if !with_cr {
        return Err(bad("bare LF"));
    }
    let line_end = lf - 1;
    if line_end - start > max_line {
        return Err(ParseError::UriTooLong);
    }
    check_request_line(&buf[start..line_end])?;

    let limit = buf.len().min(limits.max_head_bytes);
    let mut pos = lf + 1;
    let mut fields = 0;
    loop {
        let Some(lf) = buf.get(pos..limit).and_then(find_lf) else {
            return if buf.len() > limits.max_head_bytes {
                Err(ParseError::HeadersTooLarge)
            } else {
                Ok(None)
            };
        };
        let lf = pos + lf;
        if lf == pos || buf[lf - 1] != b'\r' {
            return Err(bad("bare LF"));
        }
        if lf == pos + 1 {
            return Ok(Some(HeadShape {
                start,
                line_end,
                end: lf + 1,
                fields,
            }));
        }
        if is_ows(buf[pos]) {
            // Also covers whitespace between the request line and the first field (§2.2).
            return Err(bad("obs-fold"));
        }
        fields += 1;
        if fields > limits.max_headers {
            return Err(ParseError::HeadersTooLarge);
        }
        pos = lf + 1;
    }
}

/// `method SP request-target SP HTTP-version` with single spaces; the version is checked
/// here because httparse reports every non-1.x version as the same error, while a well-formed
/// but unsupported version deserves 505 rather than 400.
fn check_request_line(line: &[u8]) -> Result<(), ParseError> {
    // The usual line, `method SP target SP HTTP/1.x`, is known good without splitting the
    // target byte by byte: a word-at-a-time search for SP in it is enough.
    if let [rest @ .., b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1'] = line
        && let Some(sp) = find_byte(rest, b' ')
        && sp > 0
        && sp + 1 < rest.len()
        && find_byte(&rest[sp + 1..], b' ').is_none()
    {
        return Ok(());
    }
    check_request_line_parts(line)
}

/// `check_request_line` for any line: split at every SP.
fn check_request_line_parts(line: &[u8]) -> Result<(), ParseError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || target.is_empty() {
        return Err(bad("malformed request line"));
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(ParseError::VersionNotSupported)
        }
        _ => Err(bad("malformed HTTP version")),
    }
}

/// Parse one request head from the start of `buf`.
///
/// `Ok(None)`: incomplete; but once `buf` shows that a limit is exceeded the limit error is
/// returned without waiting for the rest (request line longer than `max_request_line` →
/// `UriTooLong`; head, counting skipped leading empty lines, longer than `max_head_bytes` or
/// more than `max_headers` fields → `HeadersTooLarge`).
/// `Ok(Some((head, consumed)))`: the head is `buf[..consumed]`, final empty line included.
///
/// Strictness (all 400 unless noted): only CRLF ends a line (see the module docs), so bare LF
/// → `BadRequest("bare LF")`; single SP between request-line parts; version `HTTP/d.d` other
/// than 1.0/1.1 → 505; request-target of visible ASCII only and without `#`, in the form its
/// method allows (origin; absolute with http/https, a non-empty host and no userinfo; `*` for
/// OPTIONS; `host:port` for CONNECT); exactly one Host in HTTP/1.1, at most one in 1.0, with
/// URI-authority characters only; Content-Length `1*DIGIT` (identical repeats merged);
/// Transfer-Encoding only in HTTP/1.1, never with Content-Length, `chunked` once and last
/// (other codings → 501); no obs-fold, no whitespace before a field's colon, no CTLs but HTAB
/// in values (obs-text is kept).
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let Some(shape) = scan_head(buf, limits)? else {
        return Ok(None);
    };
    let head = &buf[shape.start..shape.end];

    const STACK: usize = 32;
    // Uninitialized slots: zeroing 1 KiB per request showed up in profiles.
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if shape.fields <= STACK {
        &mut stack[..shape.fields]
    } else {
        heap = vec![MaybeUninit::uninit(); shape.fields];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(bad("malformed head")),
        Err(e) => {
            return Err(match e {
                httparse::Error::HeaderName => bad("invalid field name"),
                httparse::Error::HeaderValue => bad("invalid byte in field value"),
                httparse::Error::NewLine => bad("invalid line ending"),
                httparse::Error::Token => bad("invalid method or request-target"),
                httparse::Error::Version => bad("malformed HTTP version"),
                httparse::Error::TooManyHeaders => ParseError::HeadersTooLarge,
                httparse::Error::Status => bad("malformed request line"),
            });
        }
    }
    let (Some(method_s), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("malformed request line"));
    };
    debug_assert_eq!(
        shape.line_end - shape.start,
        method_s.len() + target.len() + 10
    );
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method =
        http::Method::from_bytes(method_s.as_bytes()).map_err(|_| bad("invalid method"))?;
    let (path, query) = split_target(&method, target.as_bytes())?;

    let fields = FieldFacts::collect(req.headers, version)?;
    let head = build(
        method,
        method_s,
        version,
        target,
        path,
        query,
        req.headers,
        fields,
        head,
    );
    Ok(Some((head, shape.end)))
}

/// Path and query of a request-target, validated for its form (RFC 9112 §3.2).
fn split_target<'t>(
    method: &http::Method,
    target: &'t [u8],
) -> Result<(&'t [u8], Option<&'t [u8]>), ParseError> {
    // httparse lets obs-text through; `#` never belongs in a request-target (no fragments).
    if !target.iter().all(|&b| b.is_ascii_graphic() && b != b'#') {
        return Err(bad("invalid byte in request-target"));
    }
    let split_query = |pq: &'t [u8]| match pq.iter().position(|&b| b == b'?') {
        Some(q) => (&pq[..q], Some(&pq[q + 1..])),
        None => (pq, None),
    };
    if *method == http::Method::CONNECT {
        return if is_authority(target) {
            Ok((target, None))
        } else {
            Err(bad("CONNECT requires authority-form"))
        };
    }
    if target.first() == Some(&b'/') {
        return Ok(split_query(target));
    }
    if target == b"*" {
        return if *method == http::Method::OPTIONS {
            Ok((target, None))
        } else {
            Err(bad("asterisk-form is only for OPTIONS"))
        };
    }
    // absolute-form: only the schemes this server can be the origin for.
    let rest = strip_prefix_ci(target, b"http://").or_else(|| strip_prefix_ci(target, b"https://"));
    let Some(rest) = rest else {
        return Err(bad("invalid request-target"));
    };
    let auth_end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; §4.2.4: userinfo is an error.
    if authority.is_empty() || !authority.iter().all(|&b| is_host_byte(b)) {
        return Err(bad("invalid authority in request-target"));
    }
    match split_query(&rest[auth_end..]) {
        (b"", q) => Ok((b"/", q)),
        pq => Ok(pq),
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Bytes allowed in `host [ ":" port ]`: reg-name / IP-literal / IPv4 (RFC 3986 §3.2.2).
/// Excludes `@` (userinfo), `/ ? #` and anything that is not visible ASCII.
const fn host_byte_rule(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
                | b':'
                | b'['
                | b']'
        )
}

/// `host_byte_rule` for every byte: a Host value is checked byte by byte on every request.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = host_byte_rule(b as u8);
        b += 1;
    }
    table
};

fn is_host_byte(b: u8) -> bool {
    HOST_BYTES[b as usize]
}

/// authority-form for CONNECT: `host ":" port`, both required.
fn is_authority(t: &[u8]) -> bool {
    let Some(colon) = t.iter().rposition(|&b| b == b':') else {
        return false;
    };
    let (host, port) = (&t[..colon], &t[colon + 1..]);
    !host.is_empty()
        && host.iter().all(|&b| is_host_byte(b))
        && !port.is_empty()
        && port.iter().all(u8::is_ascii_digit)
}

enum Field {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Upgrade,
    Conditional,
    Other,
}

/// Dispatch on length first: most fields are none of these, and one integer compare rejects them.
fn field_kind(name: &[u8]) -> Field {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        4 if is(b"host") => Field::Host,
        5 if is(b"range") => Field::Conditional,
        6 if is(b"expect") => Field::Expect,
        7 if is(b"upgrade") => Field::Upgrade,
        8 if is(b"if-match") || is(b"if-range") => Field::Conditional,
        10 if is(b"connection") => Field::Connection,
        13 if is(b"if-none-match") => Field::Conditional,
        14 if is(b"content-length") => Field::ContentLength,
        17 if is(b"transfer-encoding") => Field::TransferEncoding,
        17 if is(b"if-modified-since") => Field::Conditional,
        19 if is(b"if-unmodified-since") => Field::Conditional,
        _ => Field::Other,
    }
}

/// What the fields say about framing and connection management.
struct FieldFacts {
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    expect_unmet: bool,
    upgrade: bool,
    conditional: bool,
}

impl FieldFacts {
    fn collect(headers: &[httparse::Header<'_>], version: Version) -> Result<Self, ParseError> {
        let mut hosts = 0u32;
        let mut content_length: Option<u64> = None;
        let mut te_seen = false;
        let mut chunked_seen = false;
        let mut chunked_last = false;
        let mut other_coding = false;
        let mut close = false;
        let mut keep_alive_token = false;
        let mut expect_continue = false;
        let mut expect_seen = false;
        let mut expect_unmet = false;
        let mut upgrade = false;
        let mut conditional = false;

        for h in headers {
            let name = h.name.as_bytes();
            let value = trim_ows(h.value);
            // httparse admits exactly these bytes in a value (no NUL: the C API hands values
            // out as C strings); `httparse_admits_only_field_value_bytes` holds it to that.
            debug_assert!(value.iter().all(|&b| is_field_value_byte(b)));
            match field_kind(name) {
                Field::Host => {
                    hosts += 1;
                    if !value.iter().all(|&b| is_host_byte(b)) {
                        return Err(bad("invalid Host"));
                    }
                }
                Field::ContentLength => {
                    for el in list_elements(value) {
                        let n = parse_decimal(el).ok_or(bad("invalid Content-Length"))?;
                        if content_length.is_some_and(|prev| prev != n) {
                            return Err(bad("conflicting Content-Length"));
                        }
                        content_length = Some(n);
                    }
                }
                Field::TransferEncoding => {
                    te_seen = true;
                    for el in list_elements(value) {
                        if el.is_empty() {
                            return Err(bad("empty transfer-coding"));
                        }
                        let coding = trim_ows(el.split(|&b| b == b';').next().unwrap_or(el));
                        if coding.eq_ignore_ascii_case(b"chunked") {
                            if coding.len() != el.len() {
                                return Err(bad("chunked takes no parameters"));
                            }
                            if chunked_seen {
                                return Err(bad("chunked applied twice"));
                            }
                            chunked_seen = true;
                            chunked_last = true;
                        } else {
                            other_coding = true;
                            chunked_last = false;
                        }
                    }
                }
                Field::Connection => {
                    for el in list_elements(value) {
                        if el.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if el.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive_token = true;
                        }
                    }
                }
                Field::Expect => {
                    expect_continue |=
                        list_elements(value).any(|el| el.eq_ignore_ascii_case(b"100-continue"));
                    if !expect_seen {
                        expect_seen = true;
                        expect_unmet = !value.eq_ignore_ascii_case(b"100-continue");
                    }
                }
                Field::Upgrade => upgrade = true,
                Field::Conditional => conditional = true,
                Field::Other => {}
            }
        }

        match (version, hosts) {
            (_, 2..) => return Err(bad("multiple Host fields")),
            (Version::Http11, 0) => return Err(bad("missing Host")),
            _ => {}
        }
        let framing = if te_seen {
            if version == Version::Http10 {
                return Err(bad("Transfer-Encoding in HTTP/1.0"));
            }
            if content_length.is_some() {
                return Err(bad("Transfer-Encoding with Content-Length"));
            }
            if !chunked_last && chunked_seen {
                return Err(bad("chunked is not the final coding"));
            }
            if other_coding {
                return Err(ParseError::NotImplemented("transfer-coding"));
            }
            BodyFraming::Chunked
        } else if let Some(n) = content_length {
            BodyFraming::Length(n)
        } else {
            BodyFraming::None
        };
        let keep_alive = !close && (version == Version::Http11 || keep_alive_token);
        Ok(FieldFacts {
            framing,
            keep_alive,
            expect_continue,
            expect_unmet,
            upgrade,
            conditional,
        })
    }
}

/// 1*DIGIT without sign, space or overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[allow(clippy::too_many_arguments)]
fn build(
    method: http::Method,
    method_s: &str,
    version: Version,
    target: &str,
    path: &[u8],
    query: Option<&[u8]>,
    headers: &[httparse::Header<'_>],
    facts: FieldFacts,
    block: &[u8],
) -> RequestHead {
    // The arena is the span table, then the head block copied whole (one memcpy instead of
    // one per string), then the few strings that cannot be NUL-terminated in place. In the
    // block each string gets its NUL where its delimiter was: the SP after the method and the
    // target, the colon after a name, the OWS or CR after a trimmed value. A path that ends
    // before the target does (at `?`) is copied after the block; so is the `/` of an
    // absolute-form target without a path.
    let table = headers.len() * FIELD_ENTRY;
    let target_end = offset_in(block, target.as_bytes()).map(|o| o + target.len());
    let in_target = |s: &[u8]| offset_in(block, s).filter(|&o| Some(o + s.len()) == target_end);
    let path_at = in_target(path);
    let extra = if path_at.is_none() { path.len() + 1 } else { 0 };
    let mut arena = Vec::with_capacity(table + block.len() + extra);
    arena.resize(table, 0);
    arena.extend_from_slice(block);
    // Heads are bounded by Limits (far below 4 GiB), so u32 offsets cannot truncate.
    let span = |off: usize, len: usize| Span {
        start: (table + off) as u32,
        len: len as u32,
    };
    // A string inside the block ends at a delimiter that belongs to no string: NUL it.
    fn in_place(arena: &mut [u8], table: usize, block: &[u8], s: &[u8]) -> Option<Span> {
        let off = offset_in(block, s)?;
        let end = off + s.len();
        if end >= block.len() {
            return None;
        }
        arena[table + end] = 0;
        Some(Span {
            start: (table + off) as u32,
            len: s.len() as u32,
        })
    }
    fn push(arena: &mut Vec<u8>, s: &[u8]) -> Span {
        let span = Span {
            start: arena.len() as u32,
            len: s.len() as u32,
        };
        arena.extend_from_slice(s);
        arena.push(0);
        span
    }
    let place = |arena: &mut Vec<u8>, s: &[u8]| match in_place(arena, table, block, s) {
        Some(sp) => sp,
        None => push(arena, s),
    };
    let method_span = place(&mut arena, method_s.as_bytes());
    let target_span = place(&mut arena, target.as_bytes());
    let path_span = match path_at {
        Some(off) => span(off, path.len()),
        None => push(&mut arena, path),
    };
    let query_span = query.map(|q| match in_target(q) {
        Some(off) => span(off, q.len()),
        None => push(&mut arena, q),
    });
    for (i, h) in headers.iter().enumerate() {
        let n = place(&mut arena, h.name.as_bytes());
        let v = place(&mut arena, trim_ows(h.value));
        let entry = &mut arena[i * FIELD_ENTRY..(i + 1) * FIELD_ENTRY];
        for (k, w) in [n.start, n.len, v.start, v.len].into_iter().enumerate() {
            entry[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
    }
    RequestHead {
        method,
        version,
        arena: arena.into_boxed_slice(),
        method_s: method_span,
        target: target_span,
        path: path_span,
        query: query_span,
        fields: headers.len() as u32,
        framing: facts.framing,
        keep_alive: facts.keep_alive,
        expect_continue: facts.expect_continue,
        expect_unmet: facts.expect_unmet,
        upgrade: facts.upgrade,
        conditional: facts.conditional,
    }
}

/// Where `s` starts within `block`, if it is a slice of it (compared by address).
fn offset_in(block: &[u8], s: &[u8]) -> Option<usize> {
    let (b, p) = (block.as_ptr() as usize, s.as_ptr() as usize);
    (p >= b && p + s.len() <= b + block.len()).then(|| p - b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<(RequestHead, usize)>, ParseError> {
        parse_request_head(s, &Limits::default())
    }

    #[test]
    fn with_nul_accessors_match_the_cstr_ones() {
        for raw in [
            &b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n\r\n"[..],
            b"GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            b"OPTIONS * HTTP/1.0\r\n\r\n",
        ] {
            let h = ok(raw);
            assert_eq!(h.method_with_nul(), h.method_cstr().to_bytes_with_nul());
            assert_eq!(h.target_with_nul(), h.target_cstr().to_bytes_with_nul());
            assert_eq!(h.path_with_nul(), h.path_cstr().to_bytes_with_nul());
            assert_eq!(h.query_with_nul(), h.query_cstr().map(CStr::to_bytes_with_nul));
            assert_eq!(h.header_with_nul(b"HOST"), h.header_cstr(b"HOST").map(CStr::to_bytes_with_nul));
            for i in 0..=h.header_count() {
                let want = h.header_at_cstr(i).map(|(n, v)| (n.to_bytes_with_nul(), v.to_bytes_with_nul()));
                assert_eq!(h.header_at_with_nul(i), want);
            }
        }
    }

    fn ok(s: &[u8]) -> RequestHead {
        let (h, n) = parse(s)
            .unwrap_or_else(|e| panic!("{e} for {:?}", String::from_utf8_lossy(s)))
            .unwrap();
        assert_eq!(n, s.len());
        h
    }

    fn err(s: &[u8]) -> ParseError {
        match parse(s) {
            Err(e) => e,
            Ok(r) => panic!(
                "accepted {:?}: {:?}",
                String::from_utf8_lossy(s),
                r.map(|x| x.1)
            ),
        }
    }

    #[test]
    fn every_string_reads_back_whole_and_nul_terminated() {
        // Strings NUL-terminated inside the copied block, and those copied after it.
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("GET /a/b HTTP/1.1\r\nHost: h\r\n", "/a/b", "/a/b", None),
            ("GET /a?x=1&y HTTP/1.1\r\nHost: h\r\n", "/a?x=1&y", "/a", Some("x=1&y")),
            ("GET /a? HTTP/1.1\r\nHost: h\r\n", "/a?", "/a", Some("")),
            ("GET http://h HTTP/1.1\r\nHost: h\r\n", "http://h", "/", None),
            ("GET http://h?q HTTP/1.1\r\nHost: h\r\n", "http://h?q", "/", Some("q")),
            ("GET http://h/p/q HTTP/1.1\r\nHost: h\r\n", "http://h/p/q", "/p/q", None),
            ("GET http://h/p?q HTTP/1.1\r\nHost: h\r\n", "http://h/p?q", "/p", Some("q")),
            ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n", "h:443", "h:443", None),
            ("OPTIONS * HTTP/1.1\r\nHost: h\r\n", "*", "*", None),
        ];
        for &(line, target, path, query) in cases {
            let text = format!("{line}Empty:\r\nSpaced: \t v  w \t\r\nB:  \r\n\r\n");
            let h = ok(text.as_bytes());
            let method = line.split(' ').next().unwrap();
            assert_eq!((h.method_cstr().to_str().unwrap(), h.target(), h.path(), h.query()), (method, target, path, query), "{line:?}");
            assert_eq!(h.target_cstr().to_str().unwrap(), target);
            assert_eq!(h.path_cstr().to_str().unwrap(), path);
            assert_eq!(h.query_cstr().map(|q| q.to_str().unwrap()), query);
            let fields: Vec<(String, String)> = (0..h.header_count())
                .map(|i| {
                    let (n, v) = h.header_at_cstr(i).unwrap();
                    let (n2, v2) = h.header_at(i).unwrap();
                    assert_eq!((n.to_bytes(), v.to_bytes()), (n2.as_bytes(), v2));
                    (n.to_str().unwrap().to_string(), v.to_str().unwrap().to_string())
                })
                .collect();
            let want = [("Host", target.split('/').nth(2).filter(|_| target.starts_with("http")).unwrap_or(if method == "CONNECT" { "h:443" } else { "h" })), ("Empty", ""), ("Spaced", "v  w"), ("B", "")];
            assert_eq!(fields, want.map(|(n, v)| (n.to_string(), v.split('?').next().unwrap().to_string())), "{line:?}");
        }
    }

    fn req(headers: &str) -> Vec<u8> {
        format!("POST /p HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_bytes()
    }

    #[test]
    fn simple_get() {
        let h = ok(b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \t\r\n\r\n");
        assert_eq!(h.method(), http::Method::GET);
        assert_eq!(h.method_cstr(), c"GET");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.target(), "/a/b?x=1&y=2");
        assert_eq!(h.target_cstr(), c"/a/b?x=1&y=2");
        assert_eq!(h.path(), "/a/b");
        assert_eq!(h.path_cstr(), c"/a/b");
        assert_eq!(h.query(), Some("x=1&y=2"));
        assert_eq!(h.query_cstr(), Some(c"x=1&y=2"));
        assert_eq!(h.header("host"), Some(&b"example.com"[..]));
        assert_eq!(h.header("ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(h.header_cstr(b"accept"), Some(c"*/*"));
        assert_eq!(h.header("missing"), None);
        assert_eq!(h.header_cstr(b"missing"), None);
        assert_eq!(h.header_count(), 2);
        assert_eq!(h.header_at(0), Some(("Host", &b"example.com"[..])));
        assert_eq!(h.header_at_cstr(1), Some((c"Accept", c"*/*")));
        assert_eq!(h.header_at(2), None);
        assert_eq!(h.framing(), BodyFraming::None);
        assert!(h.keep_alive());
        assert!(!h.expect_continue());
        assert!(!h.is_head());
    }

    #[test]
    fn query_edge_cases() {
        let h = ok(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/a", Some("")));
        let h = ok(b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/a", Some("b?c")));
        let h = ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.path(), h.query(), h.query_cstr()), ("/", None, None));
        let h = ok(b"GET /%20x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.path(), "/%20x");
    }

    #[test]
    fn head_and_extension_methods() {
        assert!(ok(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").is_head());
        let h = ok(b"PURGE-ALL /x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.method().as_str(), "PURGE-ALL");
        assert_eq!(h.method_cstr(), c"PURGE-ALL");
        // methods are case-sensitive: "get" is an extension method, not GET
        assert_ne!(
            ok(b"get / HTTP/1.1\r\nHost: h\r\n\r\n").method(),
            http::Method::GET
        );
        assert_eq!(err(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
    }

    #[test]
    fn header_values_and_duplicates() {
        let h = ok(&req("X-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Obs: café\r\n"));
        assert_eq!(
            h.header_values("X-A").collect::<Vec<_>>(),
            vec![&b"1"[..], &b"2"[..]]
        );
        assert_eq!(h.header("x-a"), Some(&b"1"[..]));
        assert_eq!(h.header("x-empty"), Some(&b""[..]));
        assert_eq!(h.header_cstr(b"x-empty"), Some(c""));
        assert_eq!(h.header("x-obs"), Some("café".as_bytes()));
        assert_eq!(h.header_at(1), Some(("X-A", &b"1"[..])));
    }

    #[test]
    fn incomplete_then_complete() {
        let full = b"GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
        for i in 0..full.len() {
            assert_eq!(parse(&full[..i]).unwrap().map(|x| x.1), None, "prefix {i}");
        }
        assert_eq!(parse(full).unwrap().unwrap().1, full.len());
    }

    #[test]
    fn pipelined_consumed_is_exact() {
        let a = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let b = b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
        let mut buf = a.to_vec();
        buf.extend_from_slice(b);
        let (h1, n1) = parse(&buf).unwrap().unwrap();
        assert_eq!(n1, a.len());
        assert_eq!(h1.path(), "/1");
        let (h2, n2) = parse(&buf[n1..]).unwrap().unwrap();
        assert_eq!(n2, b.len() - 3);
        assert_eq!(h2.path(), "/2");
        assert_eq!(h2.framing(), BodyFraming::Length(3));
    }

    #[test]
    fn leading_empty_lines_skipped() {
        let s = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (h, n) = parse(s).unwrap().unwrap();
        assert_eq!(n, s.len());
        assert_eq!(h.path(), "/");
        assert_eq!(parse(b"\r\n").unwrap().map(|x| x.1), None);
        assert_eq!(parse(b"\r").unwrap().map(|x| x.1), None);
        assert_eq!(err(b"\n"), ParseError::BadRequest("bare LF"));
        assert_eq!(parse(b"\r\nGET").unwrap().map(|x| x.1), None);
        assert_eq!(err(b"\rX"), ParseError::BadRequest("bare CR"));
        // endless CRLFs cannot pin the buffer
        let flood = b"\r\n".repeat(9000);
        assert_eq!(err(&flood), ParseError::HeadersTooLarge);
    }

    #[test]
    fn bare_lf_rejected_everywhere() {
        assert_eq!(
            err(b"GET / HTTP/1.1\nHost: h\r\n\r\n"),
            ParseError::BadRequest("bare LF")
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\n\r\n"),
            ParseError::BadRequest("bare LF")
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\r\n\n"),
            ParseError::BadRequest("bare LF")
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\nHost: h\n\n"),
            ParseError::BadRequest("bare LF")
        );
        assert_eq!(
            err(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            ParseError::BadRequest("bare LF")
        );
        // detected before the head is complete
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\n"),
            ParseError::BadRequest("bare LF")
        );
    }

    #[test]
    fn bare_cr_rejected() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n").status(),
            400
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n").status(),
            400
        );
        assert_eq!(err(b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
        assert_eq!(err(b"GET\r").status(), 400);
    }

    #[test]
    fn versions() {
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").version(), Version::Http10);
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0", "HTTP/9.9"] {
            let s = format!("GET / {v}\r\nHost: h\r\n\r\n");
            assert_eq!(err(s.as_bytes()), ParseError::VersionNotSupported, "{v}");
            assert_eq!(err(s.as_bytes()).status(), 505);
        }
        for v in [
            "HTTP/1.10",
            "http/1.1",
            "HTTPS/1.1",
            "HTTP/1",
            "HTTP/1.x",
            "HTTP/11",
            "HTTP/1.1 ",
        ] {
            let s = format!("GET / {v}\r\nHost: h\r\n\r\n");
            assert_eq!(err(s.as_bytes()).status(), 400, "{v}");
        }
        // HTTP/0.9 simple request
        assert_eq!(err(b"GET /\r\n\r\n").status(), 400);
    }

    #[test]
    fn garbage_request_lines() {
        for s in [
            &b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(err(s).status(), 400, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\n\r\n"),
            ParseError::BadRequest("missing Host")
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            ParseError::BadRequest("multiple Host fields")
        );
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
            ParseError::BadRequest("multiple Host fields")
        );
        ok(b"GET / HTTP/1.0\r\n\r\n");
        ok(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"); // empty Host is allowed (RFC 9112 §3.2)
        ok(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHOST: a.b-c_d:80\r\n\r\n");
        for bad_host in ["a b", "a/b", "u@h", "h?x", "h#x", "caf\u{e9}"] {
            let s = format!("GET / HTTP/1.1\r\nHost: {bad_host}\r\n\r\n");
            assert_eq!(
                err(s.as_bytes()),
                ParseError::BadRequest("invalid Host"),
                "{bad_host}"
            );
        }
    }

    #[test]
    fn content_length() {
        assert_eq!(
            ok(&req("Content-Length: 10\r\n")).framing(),
            BodyFraming::Length(10)
        );
        assert_eq!(
            ok(&req("Content-Length: 0\r\n")).framing(),
            BodyFraming::Length(0)
        );
        assert_eq!(
            ok(&req("Content-Length: 007\r\n")).framing(),
            BodyFraming::Length(7)
        );
        assert_eq!(
            ok(&req("Content-Length: 18446744073709551615\r\n")).framing(),
            BodyFraming::Length(u64::MAX)
        );
        assert_eq!(
            ok(&req("Content-Length: 5\r\ncontent-length: 5\r\n")).framing(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok(&req("Content-Length: 5, 5,5\r\n")).framing(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok(&req("Content-Length:  5 \r\n")).framing(),
            BodyFraming::Length(5)
        );
        for v in [
            "Content-Length: -1\r\n",
            "Content-Length: +1\r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: a\r\n",
            "Content-Length:\r\n",
            "Content-Length: 5,\r\n",
            "Content-Length: ,5\r\n",
            "Content-Length: 1.0\r\n",
            "Content-Length: 18446744073709551616\r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            assert_eq!(
                err(&req(v)),
                ParseError::BadRequest("invalid Content-Length"),
                "{v}"
            );
        }
        for v in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
        ] {
            assert_eq!(
                err(&req(v)),
                ParseError::BadRequest("conflicting Content-Length"),
                "{v}"
            );
        }
    }

    #[test]
    fn transfer_encoding() {
        for v in [
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: CHUNKED\r\n",
            "transfer-encoding:  Chunked \r\n",
        ] {
            assert_eq!(ok(&req(v)).framing(), BodyFraming::Chunked, "{v}");
        }
        let cases: &[(&str, ParseError)] = &[
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                bad("Transfer-Encoding with Content-Length"),
            ),
            (
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                bad("Transfer-Encoding with Content-Length"),
            ),
            (
                "Transfer-Encoding: chunked, chunked\r\n",
                bad("chunked applied twice"),
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                bad("chunked applied twice"),
            ),
            (
                "Transfer-Encoding: chunked, gzip\r\n",
                bad("chunked is not the final coding"),
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n",
                ParseError::NotImplemented("transfer-coding"),
            ),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                ParseError::NotImplemented("transfer-coding"),
            ),
            (
                "Transfer-Encoding: gzip\r\n",
                ParseError::NotImplemented("transfer-coding"),
            ),
            (
                "Transfer-Encoding: identity\r\n",
                ParseError::NotImplemented("transfer-coding"),
            ),
            (
                "Transfer-Encoding: xchunked\r\n",
                ParseError::NotImplemented("transfer-coding"),
            ),
            (
                "Transfer-Encoding: chunked;q=1\r\n",
                bad("chunked takes no parameters"),
            ),
            ("Transfer-Encoding:\r\n", bad("empty transfer-coding")),
            (
                "Transfer-Encoding: chunked,\r\n",
                bad("empty transfer-coding"),
            ),
            (
                "Transfer-Encoding: ,chunked\r\n",
                bad("empty transfer-coding"),
            ),
        ];
        for (v, e) in cases {
            assert_eq!(&err(&req(v)), e, "{v}");
        }
        assert_eq!(err(&req("Transfer-Encoding: gzip\r\n")).status(), 501);
        assert_eq!(
            err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            bad("Transfer-Encoding in HTTP/1.0")
        );
        assert_eq!(
            err(b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"),
            bad("Transfer-Encoding in HTTP/1.0")
        );
        // smuggling classics: whitespace tricks in the field name or value
        assert_eq!(err(&req("Transfer-Encoding : chunked\r\n")).status(), 400);
        assert_eq!(err(&req(" Transfer-Encoding: chunked\r\n")).status(), 400);
        assert_eq!(err(&req("Transfer-Encoding:\x0bchunked\r\n")).status(), 400);
        assert_eq!(
            err(&req("Transfer-Encoding: chunked\r\n gzip\r\n")).status(),
            400
        );
        assert_eq!(
            err(&req(
                "Transfer_Encoding: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n"
            ))
            .status(),
            400
        );
    }

    #[test]
    fn field_syntax() {
        let cases: &[&str] = &[
            "X-A : v\r\n", // whitespace before colon
            "X-A\t: v\r\n",
            "X A: v\r\n", // invalid tchar
            "X(A): v\r\n",
            "X\"A: v\r\n",
            ": v\r\n", // empty name
            "NoColon\r\n",
            "X-A: a\r\n b\r\n", // obs-fold
            "X-A: a\r\n\tb\r\n",
            "X-A: a\x00b\r\n", // CTLs in values
            "X-A: a\x01b\r\n",
            "X-A: a\x1fb\r\n",
            "X-A: a\x7fb\r\n",
            "X-A: a\x0bb\r\n",
        ];
        for v in cases {
            assert_eq!(err(&req(v)).status(), 400, "{v:?}");
        }
        assert_eq!(err(&req("X-A: a\r\n b\r\n")), bad("obs-fold"));
        // whitespace before the first field line
        assert_eq!(err(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"), bad("obs-fold"));
        // HTAB inside and around values is fine and trimmed
        let h = ok(&req("X-A:\ta\tb\t\r\n"));
        assert_eq!(h.header("x-a"), Some(&b"a\tb"[..]));
    }

    #[test]
    fn target_forms() {
        let h = ok(b"GET http://example.com/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(
            (h.target(), h.path(), h.query()),
            ("http://example.com/a/b?q=1", "/a/b", Some("q=1"))
        );
        assert_eq!(h.path_cstr(), c"/a/b");
        let h = ok(b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", None));
        let h = ok(b"GET HTTPS://example.com:8443?x HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", Some("x")));
        let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.target(), h.path(), h.query()), ("*", "*", None));
        let h = ok(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!(
            (h.target(), h.path(), h.query()),
            ("example.com:443", "example.com:443", None)
        );
        ok(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");

        let rejected: &[&[u8]] = &[
            b"GET * HTTP/1.1",
            b"GET example.com:443 HTTP/1.1",
            b"CONNECT / HTTP/1.1",
            b"CONNECT example.com HTTP/1.1",
            b"CONNECT example.com:x HTTP/1.1",
            b"CONNECT :443 HTTP/1.1",
            b"CONNECT http://a:443/ HTTP/1.1",
            b"OPTIONS ** HTTP/1.1",
            b"GET a/b HTTP/1.1",
            b"GET ftp://h/x HTTP/1.1",
            b"GET http:///x HTTP/1.1",
            b"GET http://user@h/x HTTP/1.1",
            b"GET http:/h/x HTTP/1.1",
            b"GET /a#frag HTTP/1.1",
            b"GET /caf\xc3\xa9 HTTP/1.1",
            b"GET /\x80 HTTP/1.1",
            b"GET /a\x7f HTTP/1.1",
        ];
        for line in rejected {
            let mut s = line.to_vec();
            s.extend_from_slice(b"\r\nHost: h\r\n\r\n");
            assert_eq!(err(&s).status(), 400, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn connection_and_keep_alive() {
        let ka = |s: &[u8]| ok(s).keep_alive();
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n"
        ));
        assert!(ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: foo ,keep-alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn expect_continue() {
        assert!(ok(&req("Expect: 100-continue\r\nContent-Length: 3\r\n")).expect_continue());
        assert!(ok(&req("Expect: 100-Continue\r\n")).expect_continue());
        assert!(!ok(&req("Expect: 200-ok\r\n")).expect_continue());
        assert!(!ok(&req("")).expect_continue());
        // What the engine answers with 417: the first Expect field, whole, is not 100-continue.
        for (fields, unmet) in [
            ("", false),
            ("Expect: 100-continue\r\n", false),
            ("Expect:  100-CONTINUE \r\n", false),
            ("Expect: 200-ok\r\n", true),
            ("Expect: 100-continue, x\r\n", true),
            ("Expect: 100-continue\r\nExpect: x\r\n", false),
            ("Expect: x\r\nExpect: 100-continue\r\n", true),
        ] {
            let h = ok(&req(fields));
            assert_eq!(h.expect_unmet(), unmet, "{fields:?}");
            assert_eq!(h.expect_unmet(), h.header("expect").is_some_and(|v| !v.eq_ignore_ascii_case(b"100-continue")));
        }
        assert!(ok(&req("UPGRADE: x\r\n")).has_upgrade());
        assert!(!ok(&req("Upgrade-Insecure-Requests: 1\r\n")).has_upgrade());
        for name in ["If-Match", "if-none-match", "If-Modified-Since", "IF-UNMODIFIED-SINCE", "Range", "If-Range"] {
            assert!(ok(&req(&format!("{name}: x\r\n"))).has_conditional(), "{name}");
        }
        assert!(!ok(&req("Accept-Ranges: bytes\r\nIf-Matches: x\r\nContent-Range: x\r\n")).has_conditional());
    }

    #[test]
    fn request_line_limit() {
        let limits = Limits {
            max_request_line: 32,
            max_head_bytes: 1024,
            max_headers: 4,
        };
        // exactly at the limit: 32 bytes of line
        let line = format!("GET /{} HTTP/1.1", "a".repeat(32 - 14));
        assert_eq!(line.len(), 32);
        let s = format!("{line}\r\nHost: h\r\n\r\n");
        assert!(parse_request_head(s.as_bytes(), &limits).unwrap().is_some());
        // one over, complete
        let line = format!("GET /{} HTTP/1.1", "a".repeat(33 - 14));
        let s = format!("{line}\r\nHost: h\r\n\r\n");
        assert_eq!(
            parse_request_head(s.as_bytes(), &limits).err(),
            Some(ParseError::UriTooLong)
        );
        // incomplete and already too long
        let s = format!("GET /{}", "a".repeat(40));
        assert_eq!(
            parse_request_head(s.as_bytes(), &limits).err(),
            Some(ParseError::UriTooLong)
        );
        // incomplete, 33 bytes where the 33rd is CR: could still be a 32-byte line
        let s = format!("GET /{} HTTP/1.1\r", "a".repeat(18));
        assert_eq!(s.len(), 33);
        assert!(parse_request_head(s.as_bytes(), &limits).unwrap().is_none());
        let s = format!("GET /{} HTTP/1.1x", "a".repeat(18));
        assert_eq!(
            parse_request_head(s.as_bytes(), &limits).err(),
            Some(ParseError::UriTooLong)
        );
        // the default limit with a long but complete target
        let s = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000));
        assert_eq!(err(s.as_bytes()), ParseError::UriTooLong);
        assert_eq!(err(s.as_bytes()).status(), 414);
    }

    #[test]
    fn head_size_and_count_limits() {
        let limits = Limits {
            max_request_line: 64,
            max_head_bytes: 64,
            max_headers: 3,
        };
        let p = |s: &[u8]| parse_request_head(s, &limits);
        let s = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(p(s).unwrap().is_some());
        let s = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(p(s).err(), Some(ParseError::HeadersTooLarge));
        // too many fields detected before the head is complete
        let s = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
        assert_eq!(p(s).err(), Some(ParseError::HeadersTooLarge));
        // exactly max_head_bytes accepted, one more rejected
        let pad = 64 - b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
        let s = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(pad)
        );
        assert_eq!(s.len(), 64);
        assert_eq!(p(s.as_bytes()).unwrap().unwrap().1, 64);
        let s = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(pad + 1)
        );
        assert_eq!(p(s.as_bytes()).err(), Some(ParseError::HeadersTooLarge));
        // incomplete but already over
        let s = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "v".repeat(100));
        assert_eq!(p(s.as_bytes()).err(), Some(ParseError::HeadersTooLarge));
        // incomplete under the limit
        assert!(p(b"GET / HTTP/1.1\r\nHost: h\r\nX: vvv").unwrap().is_none());
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);

        // default limits: 101 fields
        let mut s = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..100 {
            s.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        s.extend_from_slice(b"\r\n");
        assert_eq!(err(&s), ParseError::HeadersTooLarge);
    }

    #[test]
    fn many_fields_use_heap_slots() {
        let mut s = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..98 {
            s.extend_from_slice(format!("X-{i}: v{i}\r\n").as_bytes());
        }
        s.extend_from_slice(b"\r\n");
        let h = ok(&s);
        assert_eq!(h.header_count(), 99);
        assert_eq!(h.header_at(98), Some(("X-97", &b"v97"[..])));
        assert_eq!(h.header_cstr(b"x-50"), Some(c"v50"));
    }

    #[test]
    fn no_headers_http10() {
        let h = ok(b"GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(h.header_count(), 0);
        assert_eq!(h.framing(), BodyFraming::None);
        let h = ok(b"POST /x HTTP/1.0\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(h.framing(), BodyFraming::Length(4));
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

    /// Mutated heads never panic; whenever a head parses, every prefix of it is "incomplete"
    /// and trailing bytes do not change what was consumed.
    #[test]
    fn mutations_and_prefix_consistency() {
        let bases: &[&[u8]] = &[
            b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            b"POST http://h/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PUT /u HTTP/1.0\r\nContent-Length: 10, 10\r\nExpect: 100-continue\r\n\r\n",
            b"\r\nOPTIONS * HTTP/1.1\r\nHost: [::1]\r\n\r\n",
        ];
        let interesting = [
            b'\r', b'\n', b' ', b'\t', b':', b',', 0, 0x7f, 0x80, b'0', b'?', b'#',
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut buf = bases[(rng.next() % bases.len() as u64) as usize].to_vec();
            for _ in 0..=(rng.next() % 3) {
                let at = (rng.next() % buf.len() as u64) as usize;
                let b = if rng.next() % 2 == 0 {
                    interesting[(rng.next() % interesting.len() as u64) as usize]
                } else {
                    rng.next() as u8
                };
                match rng.next() % 3 {
                    0 => buf[at] = b,
                    1 => buf.insert(at, b),
                    _ => {
                        buf.remove(at);
                    }
                }
            }
            if let Ok(Some((h, n))) = parse(&buf) {
                accepted += 1;
                for i in 0..n {
                    assert!(
                        matches!(parse(&buf[..i]), Ok(None)),
                        "{:?} prefix {i}",
                        String::from_utf8_lossy(&buf)
                    );
                }
                let mut more = buf[..n].to_vec();
                more.extend_from_slice(b"GET / HTTP/1.1\r\n");
                assert_eq!(parse(&more).unwrap().unwrap().1, n);
                // accessors hold together on whatever was accepted
                assert_eq!(h.target_cstr().to_bytes(), h.target().as_bytes());
                assert_eq!(h.path_cstr().to_bytes(), h.path().as_bytes());
                for i in 0..h.header_count() {
                    let (n1, v1) = h.header_at(i).unwrap();
                    let (n2, v2) = h.header_at_cstr(i).unwrap();
                    assert_eq!((n1.as_bytes(), v1), (n2.to_bytes(), v2.to_bytes()));
                }
            }
        }
        assert!(accepted > 100, "mutations too destructive: {accepted}");
    }

    /// Field values are not checked a second time after httparse (see `FieldFacts::collect`):
    /// every byte but CR and LF, alone and inside values short and long (httparse scans a
    /// value 32 bytes at a time where it can, the rest byte by byte), is accepted exactly when
    /// it is a field-value byte.
    #[test]
    fn httparse_admits_only_field_value_bytes() {
        for b in (0..=255u8).filter(|&b| b != b'\r' && b != b'\n') {
            for (before, after) in [(1, 1), (0, 5), (7, 24), (31, 1), (40, 40), (64, 3)] {
                let value: Vec<u8> = std::iter::repeat_n(b'v', before)
                    .chain([b])
                    .chain(std::iter::repeat_n(b'w', after))
                    .collect();
                let mut head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Test: ".to_vec();
                head.extend_from_slice(&value);
                head.extend_from_slice(b"\r\n\r\n");
                let parsed = parse(&head);
                if is_field_value_byte(b) {
                    let h = parsed.unwrap_or_else(|e| panic!("byte {b:#04x} at {before}: {e:?}")).unwrap().0;
                    assert_eq!(h.header("x-test"), Some(trim_ows(&value)));
                } else {
                    assert_eq!(parsed.err(), Some(ParseError::BadRequest("invalid byte in field value")), "byte {b:#04x} at {before}");
                }
            }
        }
    }

    /// The shortcut for the usual request line says yes only where splitting it would.
    #[test]
    fn request_line_shortcut_agrees_with_splitting() {
        let alphabet = b" GET/aHTP1.02";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut good_lines = 0;
        for _ in 0..200_000 {
            let len = 9 + (rng.next() % 12) as usize;
            let mut line: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
            if rng.next() % 2 == 0 {
                let tail = if rng.next() % 2 == 0 { b" HTTP/1.1" } else { b" HTTP/1.0" };
                line.splice(len - 9.., tail.iter().copied());
            }
            let full = check_request_line_parts(&line);
            assert_eq!(check_request_line(&line), full, "{:?}", String::from_utf8_lossy(&line));
            good_lines += usize::from(full.is_ok());
        }
        assert!(good_lines > 1_000, "too few good lines: {good_lines}");
        for good in [&b"GET / HTTP/1.1"[..], b"M /x?y HTTP/1.0", b"OPTIONS * HTTP/1.1"] {
            assert_eq!(check_request_line(good), Ok(()));
        }
        for bad_line in [&b"GET  / HTTP/1.1"[..], b" / HTTP/1.1", b"GET HTTP/1.1", b"GET / x HTTP/1.1", b"GET /  HTTP/1.1"] {
            assert!(check_request_line(bad_line).is_err(), "{:?}", String::from_utf8_lossy(bad_line));
        }
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RequestHead>();
    }
}
