//! Static file responses done right: `Range` (single and multipart), conditional requests,
//! validators — RFC 9110 §13 (conditional requests) and §14 (range requests).
//!
//! The planner ([`plan_file_response`]) is pure: from the request head, the file's metadata and
//! the caller's choices it decides status, headers and a body made of file regions and small
//! memory parts. [`build_response`] turns a plan into a [`Response`] whose file parts go out by
//! `sendfile` (a multipart/byteranges body is a chain of memory part headers and file regions,
//! never copied through user space). [`respond_file`] does everything for a Rust handler;
//! `zh_respond_file` is the C entry point.
//!
//! Evaluation order (RFC 9110 §13.2.2):
//! 1. `If-Match` present: `*` or a strongly matching tag, else `412`.
//! 2. Otherwise `If-Unmodified-Since` (valid date, Last-Modified known): modified after the
//!    date → `412`.
//! 3. `If-None-Match` present: `*` or a weakly matching tag → `304` for GET/HEAD, `412` for
//!    other methods.
//! 4. Otherwise `If-Modified-Since` (GET/HEAD only, one valid date, Last-Modified known): not
//!    modified since → `304`.
//! 5. `Range` (GET and HEAD — HEAD gets the headers GET would get; other methods ignore it):
//!    with `If-Range` only when it matches (an entity-tag by strong comparison — a weak tag
//!    never matches —, or a date equal to Last-Modified); not the `bytes` unit, invalid syntax,
//!    several `Range` fields or more than [`range::MAX_RANGES`] range-specs → ignored (`200`);
//!    no satisfiable range → `416` with `Content-Range: bytes */size`; one range → `206` with
//!    `Content-Range`; several → overlapping or nearly adjacent ones coalesced
//!    ([`range::MERGE_GAP`]), then `206 multipart/byteranges` (or a single part if one is left).
//! 6. Otherwise `200` with the whole file.
//!
//! `200`/`206` carry `Accept-Ranges: bytes`, `ETag`, `Last-Modified`, the caller's
//! `Content-Type` and extra headers; `304` carries `ETag`, `Last-Modified` and the extra
//! headers (RFC 9110 §15.4.5: e.g. Cache-Control, Vary), no body; `412` and `416` carry a short
//! text body (and `416` its `Content-Range`), never the caller's extra headers (they may make an
//! error cacheable).
#![forbid(unsafe_code)]

pub mod content_type;
pub mod date;
pub mod etag;
/// cbindgen:ignore
pub mod range;
pub mod validators;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};

use crate::body::FileFd;
use crate::engine::{Request, Response};
use crate::error::Error;
use crate::h1::RequestHead;

pub use date::{parse_http_date, parse_http_date_at};
pub use etag::EntityTag;
pub use range::{ByteRange, RangeDecision};
pub use validators::Validators;

/// What the planner needs to know about the file (from `fstat`, possibly overridden by the
/// caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// The representation's length: the body of a `200` is bytes `0..size` of the file.
    pub size: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: u32,
    pub inode: u64,
    pub dev: u64,
}

impl From<crate::transfer::FileStat> for FileMeta {
    fn from(s: crate::transfer::FileStat) -> Self {
        FileMeta { size: s.size, mtime_secs: s.mtime_secs, mtime_nanos: s.mtime_nanos, inode: s.inode, dev: s.dev }
    }
}

/// How the `ETag` is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ETagChoice {
    /// Strong, generated from inode, size and mtime (nanoseconds).
    #[default]
    Generate,
    /// Generated, but marked weak (`W/`): for content that may change within one mtime tick, or
    /// that the caller transforms. Weak tags never satisfy `If-Match` or `If-Range`.
    GenerateWeak,
    /// This entity-tag, as it goes on the wire (see [`FileInfo::set_etag`]).
    Given(HeaderValue),
    /// No `ETag` at all (conditional requests then rely on Last-Modified only).
    None,
}

/// The caller's choices for one file response. `Default` is: no Content-Type, generated strong
/// ETag, Last-Modified from the file's mtime, no extra headers.
#[derive(Clone, Debug, Default)]
pub struct FileInfo {
    pub content_type: Option<HeaderValue>,
    pub etag: ETagChoice,
    /// Unix seconds; `None` = the file's mtime.
    pub last_modified: Option<i64>,
    /// No `Last-Modified` header (date conditions are then ignored, per RFC 9110 §13.1.3-4).
    pub no_last_modified: bool,
    /// Added to `200`, `206` and `304` responses.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl FileInfo {
    /// Sets the content type (a well-known value without copying it).
    pub fn set_content_type(&mut self, value: &[u8]) -> Result<(), Error> {
        let v = match content_type::well_known(value) {
            Some(v) => v,
            None => HeaderValue::from_bytes(value).map_err(|_| Error::Header("invalid Content-Type value"))?,
        };
        self.content_type = Some(v);
        Ok(())
    }

    /// Uses `value` as the ETag: a full entity-tag (`"v1"`, `W/"v1"`), or a bare opaque value
    /// (`v1`) which is quoted; `weak` adds `W/`. `Error::Header` if it cannot be an entity-tag.
    pub fn set_etag(&mut self, value: &[u8], weak: bool) -> Result<(), Error> {
        let tag = etag::normalize(value, weak).ok_or(Error::Header("invalid ETag value"))?;
        let v = HeaderValue::from_bytes(&tag).map_err(|_| Error::Header("invalid ETag value"))?;
        self.etag = ETagChoice::Given(v);
        Ok(())
    }

    /// Adds an extra header for `200`/`206`/`304`. Headers the planner writes itself
    /// (Content-Type, Content-Range, Accept-Ranges, ETag, Last-Modified) and framing headers
    /// are refused with `Error::Header`.
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        let name = HeaderName::from_bytes(name).map_err(|_| Error::Header("invalid header name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| Error::Header("invalid header value"))?;
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::LAST_MODIFIED,
        ]
        .contains(&name)
        {
            return Err(Error::Header("this header is written by the file responder"));
        }
        self.headers.push((name, value));
        Ok(())
    }
}

/// One piece of a planned body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyPart {
    /// Bytes `offset..offset + len` of the file.
    File { offset: u64, len: u64 },
    /// Small generated bytes (multipart delimiters and part headers, error texts).
    Memory(Bytes),
}

impl BodyPart {
    pub fn len(&self) -> u64 {
        match self {
            BodyPart::File { len, .. } => *len,
            BodyPart::Memory(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A planned body. Most responses have at most one part (a `200`, a single-range `206`, an
/// error text): those hold it inline, so planning them allocates no list; only a
/// multipart/byteranges body needs one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlanBody {
    /// No body (`304`, an empty file).
    #[default]
    Empty,
    One(BodyPart),
    /// A multipart/byteranges body: part headers and file regions, in order.
    Parts(Vec<BodyPart>),
}

impl PlanBody {
    /// The parts, in order.
    pub fn as_slice(&self) -> &[BodyPart] {
        match self {
            PlanBody::Empty => &[],
            PlanBody::One(p) => std::slice::from_ref(p),
            PlanBody::Parts(v) => v,
        }
    }
}

impl IntoIterator for PlanBody {
    type Item = BodyPart;
    type IntoIter = std::iter::Chain<std::option::IntoIter<BodyPart>, std::vec::IntoIter<BodyPart>>;

    fn into_iter(self) -> Self::IntoIter {
        let (one, many) = match self {
            PlanBody::Empty => (None, Vec::new()),
            PlanBody::One(p) => (Some(p), Vec::new()),
            PlanBody::Parts(v) => (None, v),
        };
        one.into_iter().chain(many)
    }
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePlan {
    pub status: u16,
    /// Private so that what [`build_response`] trusts cannot change after planning.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Some headers were copied from [`FileInfo::headers`], a public field that may hold
    /// anything (a framing header, `Connection`): those still need the response's checks. The
    /// planner's own headers never do.
    caller_headers: bool,
    pub body: PlanBody,
}

impl FilePlan {
    /// The body length (the `Content-Length` the engine will send, also for HEAD).
    pub fn body_len(&self) -> u64 {
        self.body.as_slice().iter().map(BodyPart::len).sum()
    }

    /// The headers, in the order they will be sent.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The first header `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Inputs that make the planner deterministic in tests.
#[derive(Clone, Debug)]
pub struct PlanContext {
    /// The current time, for two-digit years of obsolete RFC 850 dates.
    pub now: i64,
    /// The multipart boundary (1..=70 characters of the RFC 2046 bchars, not ending in space);
    /// empty: a random one is made when needed.
    pub boundary: String,
}

impl PlanContext {
    /// The clock and a random boundary (from the standard library's per-instance random hash
    /// keys: unpredictable per response without a RNG dependency or global state).
    pub fn new() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        PlanContext { now: now.as_secs() as i64, boundary: random_boundary(now) }
    }
}

/// The wall clock in unix seconds.
fn wall_clock_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}

fn random_boundary(now: std::time::Duration) -> String {
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u128(now.as_nanos());
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(a.finish());
    format!("zh{:016x}{:016x}", a.finish(), b.finish())
}

impl Default for PlanContext {
    fn default() -> Self {
        Self::new()
    }
}

/// `Accept-Ranges: bytes`, on every 200 and 206. A `const`: `HeaderValue::from_static` checks
/// its bytes when it runs, and at compile time that costs nothing per response.
const BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// A header value formatted in a stack buffer: one allocation (the value's own) instead of
/// three (`format!` grows its `String` once, then the value copies it). Only used for values
/// built from digits, the boundary and ASCII punctuation, at most ~110 bytes.
fn hv(args: std::fmt::Arguments) -> HeaderValue {
    let mut buf = [0u8; 128];
    let mut rest = &mut buf[..];
    let value = match std::io::Write::write_fmt(&mut rest, args) {
        Ok(()) => {
            let n = 128 - rest.len();
            HeaderValue::from_bytes(&buf[..n])
        }
        // Longer than the buffer: not with the values above, but correct anyway.
        Err(_) => HeaderValue::from_str(&std::fmt::format(args)),
    };
    value.unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn text_plan(status: u16, text: &'static str, content_range: Option<HeaderValue>) -> FilePlan {
    let mut headers = Vec::with_capacity(2);
    if let Some(v) = content_range {
        headers.push((header::CONTENT_RANGE, v));
    }
    headers.push((header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")));
    FilePlan { status, headers, caller_headers: false, body: PlanBody::One(BodyPart::Memory(Bytes::from_static(text.as_bytes()))) }
}

/// [`plan_file_response`] with an explicit clock and boundary.
pub fn plan_with(head: &RequestHead, meta: &FileMeta, info: &FileInfo, ctx: &PlanContext) -> FilePlan {
    plan_cached(head, meta, info, Some(ctx), None)
}

/// Decides the response to `head` for a file described by `meta` and `info`, with the current
/// time and a fresh random multipart boundary. See the module docs for the rules.
pub fn plan_file_response(head: &RequestHead, meta: &FileMeta, info: &FileInfo) -> FilePlan {
    plan_cached(head, meta, info, None, None)
}

/// [`plan_with`] with the file's validators already formatted (by the open-file cache): used
/// where they were made from `meta`, formatted here otherwise. `ctx` `None`: the wall clock,
/// read only when a date in a precondition or `If-Range` is parsed (most requests have none:
/// `clock_gettime` on every response showed in profiles), and a random multipart boundary.
pub fn plan_cached(head: &RequestHead, meta: &FileMeta, info: &FileInfo, ctx: Option<&PlanContext>, cached: Option<Validators>) -> FilePlan {
    let method = head.method();
    let get_or_head = *method == http::Method::GET || *method == http::Method::HEAD;
    let size = meta.size;

    // Validators: the cached ones where they describe this file, else formatted now.
    let (mut cached_etag, mut cached_lm) = match cached.and_then(|v| v.take_for(meta)) {
        Some((etag, lm)) => (Some(etag), lm),
        None => (None, None),
    };
    let etag_value: Option<HeaderValue> = match &info.etag {
        ETagChoice::Generate => Some(cached_etag.take().unwrap_or_else(|| validators::generated_etag(meta, false))),
        ETagChoice::GenerateWeak => Some(validators::generated_etag(meta, true)),
        ETagChoice::Given(v) => Some(v.clone()),
        ETagChoice::None => None,
    };
    // Without a precondition or Range field steps 1-5 below decide nothing (each looks its
    // fields up and finds none): skip them, and parsing the current tag they compare with.
    let conditional = head.has_conditional();
    // Only dates (obsolete two-digit years) need the current time: read once, and only for a
    // request with a precondition or Range field.
    let now = if conditional { ctx.map_or_else(wall_clock_secs, |c| c.now) } else { 0 };
    let current_tag = if conditional { etag_value.as_ref().and_then(|v| EntityTag::parse(v.as_bytes())) } else { None };
    let last_modified: Option<i64> =
        if info.no_last_modified { None } else { Some(info.last_modified.unwrap_or(meta.mtime_secs)).filter(|&t| t >= 0) };
    let lm_value = last_modified.map(|t| {
        let cached = if t == meta.mtime_secs { cached_lm.take() } else { None };
        cached.unwrap_or_else(|| validators::http_date(t))
    });

    // ETag, then Last-Modified. Taken by value where a plan is returned, once `current_tag`
    // (which borrows the ETag) is no longer used: a HeaderValue clone allocates. Pushed one by
    // one: extending from a flattened array of options cost ~150 instructions per response.
    let push_validators = |headers: &mut Vec<(HeaderName, HeaderValue)>, etag: Option<HeaderValue>, lm: Option<HeaderValue>| {
        if let Some(v) = etag {
            headers.push((header::ETAG, v));
        }
        if let Some(v) = lm {
            headers.push((header::LAST_MODIFIED, v));
        }
    };
    // Only a single field line with a valid date counts (RFC 9110 §13.1.3: "more than one
    // member" → ignore).
    let single_date = |name: &str| -> Option<i64> {
        let mut vals = head.header_values(name);
        let first = vals.next()?;
        if vals.next().is_some() {
            return None;
        }
        parse_http_date_at(first, now)
    };

    // 1-2: If-Match / If-Unmodified-Since → 412.
    if conditional {
        if let Some(list) = etag::TagList::parse(head.header_values("if-match")) {
            if !list.matches_strong(current_tag.as_ref()) {
                return text_plan(412, "412 Precondition Failed\n", None);
            }
        } else if let (Some(date), Some(lm)) = (single_date("if-unmodified-since"), last_modified) {
            if lm > date {
                return text_plan(412, "412 Precondition Failed\n", None);
            }
        }
    }

    // 3-4: If-None-Match / If-Modified-Since → 304 (or 412 for other methods).
    let not_modified = if !conditional {
        false
    } else if let Some(list) = etag::TagList::parse(head.header_values("if-none-match")) {
        if list.matches_weak(current_tag.as_ref()) {
            if !get_or_head {
                return text_plan(412, "412 Precondition Failed\n", None);
            }
            true
        } else {
            false
        }
    } else if get_or_head {
        matches!((single_date("if-modified-since"), last_modified), (Some(date), Some(lm)) if lm <= date)
    } else {
        false
    };
    if not_modified {
        let caller_headers = !info.headers.is_empty();
        let mut headers = Vec::with_capacity(2 + info.headers.len());
        push_validators(&mut headers, etag_value, lm_value);
        headers.extend(info.headers.iter().cloned());
        return FilePlan { status: 304, headers, caller_headers, body: PlanBody::Empty };
    }

    // 5: Range, unless If-Range says the client's copy is stale.
    let mut decision = RangeDecision::Ignore;
    if get_or_head && conditional {
        let mut ranges = head.header_values("range");
        if let (Some(value), None) = (ranges.next(), ranges.next()) {
            let if_range_ok = match head.header("if-range") {
                None => true,
                Some(v) => {
                    let v = v.trim_ascii();
                    if v.starts_with(b"\"") || v.starts_with(b"W/") {
                        EntityTag::parse(v).is_some_and(|t| current_tag.as_ref().is_some_and(|c| t.strong_eq(c)))
                    } else {
                        matches!((parse_http_date_at(v, now), last_modified), (Some(d), Some(lm)) if d == lm)
                    }
                }
            };
            if if_range_ok {
                decision = range::decide(value, size);
            }
        }
    }

    let caller_headers = !info.headers.is_empty();
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(6 + info.headers.len());
    match decision {
        RangeDecision::Unsatisfiable => {
            text_plan(416, "416 Range Not Satisfiable\n", Some(hv(format_args!("bytes */{size}"))))
        }
        RangeDecision::Ranges(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            if let Some(ct) = &info.content_type {
                headers.push((header::CONTENT_TYPE, ct.clone()));
            }
            headers.push((header::CONTENT_RANGE, hv(format_args!("bytes {}-{}/{size}", r.start, r.end))));
            headers.push((header::ACCEPT_RANGES, BYTES));
            push_validators(&mut headers, etag_value, lm_value);
            headers.extend(info.headers.iter().cloned());
            FilePlan { status: 206, headers, caller_headers, body: PlanBody::One(BodyPart::File { offset: r.start, len: r.len() }) }
        }
        RangeDecision::Ranges(ranges) => {
            let fresh;
            let given = ctx.map_or("", |c| c.boundary.as_str());
            let b = if given.is_empty() {
                fresh = random_boundary(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default());
                &fresh
            } else {
                given
            };
            headers.push((header::CONTENT_TYPE, hv(format_args!("multipart/byteranges; boundary={b}"))));
            headers.push((header::ACCEPT_RANGES, BYTES));
            push_validators(&mut headers, etag_value, lm_value);
            headers.extend(info.headers.iter().cloned());
            let ct = info.content_type.as_ref().map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned());
            let mut body = Vec::with_capacity(ranges.len() * 2 + 1);
            for (i, r) in ranges.iter().enumerate() {
                let mut part = String::with_capacity(128);
                if i > 0 {
                    part.push_str("\r\n");
                }
                part.push_str("--");
                part.push_str(b);
                part.push_str("\r\n");
                if let Some(ct) = &ct {
                    part.push_str("Content-Type: ");
                    part.push_str(ct);
                    part.push_str("\r\n");
                }
                part.push_str(&format!("Content-Range: bytes {}-{}/{size}\r\n\r\n", r.start, r.end));
                body.push(BodyPart::Memory(Bytes::from(part)));
                body.push(BodyPart::File { offset: r.start, len: r.len() });
            }
            body.push(BodyPart::Memory(Bytes::from(format!("\r\n--{b}--\r\n"))));
            FilePlan { status: 206, headers, caller_headers, body: PlanBody::Parts(body) }
        }
        RangeDecision::Ignore => {
            if let Some(ct) = &info.content_type {
                headers.push((header::CONTENT_TYPE, ct.clone()));
            }
            headers.push((header::ACCEPT_RANGES, BYTES));
            push_validators(&mut headers, etag_value, lm_value);
            headers.extend(info.headers.iter().cloned());
            let body = if size > 0 { PlanBody::One(BodyPart::File { offset: 0, len: size }) } else { PlanBody::Empty };
            FilePlan { status: 200, headers, caller_headers, body }
        }
    }
}

/// Turns a plan into a response whose file parts read from `fd` (by `sendfile`). An owned fd is
/// duplicated for every file part but the last (`dup`, so each region closes its own
/// descriptor); with no file part (304, 412, 416, empty file) it is closed right here. The
/// regions were planned against `FileMeta::size`; the caller makes sure the file is at least
/// that long (a file that shrinks later aborts the connection, as for any file region).
pub fn build_response(plan: FilePlan, fd: FileFd) -> Result<Response, Error> {
    let mut resp = Response::new(plan.status)?;
    // Already parsed: moved over, not printed and parsed again.
    if plan.caller_headers {
        resp.add_parsed_headers(plan.headers)?;
    } else {
        // Only the planner's own headers (Content-Type, Content-Range, Accept-Ranges, ETag,
        // Last-Modified): never a framing or `Connection` header, the only ones
        // `add_parsed_headers` looks for, and the response has none yet — so the list moves in
        // as it is, without looking at each header again.
        debug_assert!(plan.headers.iter().all(|(n, _)| ![header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(n)));
        debug_assert!(resp.headers.is_empty());
        resp.headers = plan.headers;
    }
    let files = plan.body.as_slice().iter().filter(|p| matches!(p, BodyPart::File { .. })).count();
    // Several parts share one descriptor instead of a dup per part.
    let fd = match fd {
        FileFd::Owned(o) if files > 1 => FileFd::Shared(Arc::new(o)),
        other => other,
    };
    let mut fd = Some(fd);
    let mut seen = 0;
    for part in plan.body {
        match part {
            BodyPart::Memory(b) => resp.add_memory(b),
            BodyPart::File { offset, len } => {
                seen += 1;
                let this = if seen == files {
                    fd.take().ok_or(Error::Invalid("file descriptor already used"))?
                } else {
                    match fd.as_ref() {
                        Some(FileFd::Owned(o)) => FileFd::Owned(o.try_clone()?),
                        Some(FileFd::Borrowed(raw)) => FileFd::Borrowed(*raw),
                        Some(FileFd::Shared(a)) => FileFd::Shared(a.clone()),
                        None => return Err(Error::Invalid("file descriptor already used")),
                    }
                };
                resp.add_file_checked(this, offset, len);
            }
        }
    }
    Ok(resp)
}

/// `fstat`s `fd` and checks it is a regular file; `size` (if given) overrides the file's size
/// but must not exceed it.
pub fn file_meta(fd: i32, size: Option<u64>) -> Result<FileMeta, Error> {
    if fd < 0 {
        return Err(Error::Invalid("negative file descriptor"));
    }
    meta_from_stat(crate::transfer::file_stat(fd)?, size)
}

/// [`FileMeta`] from an `fstat` result: a regular file, `size` (if given) at most its size.
pub fn meta_from_stat(st: crate::transfer::FileStat, size: Option<u64>) -> Result<FileMeta, Error> {
    if !st.is_regular {
        return Err(Error::Invalid("file responses need a regular file"));
    }
    let mut meta = FileMeta::from(st);
    if let Some(s) = size {
        if s > meta.size {
            return Err(Error::Range("size larger than the file"));
        }
        meta.size = s;
    }
    Ok(meta)
}

/// Answers `req` with the file behind `fd` per the module rules (`fstat` for the metadata).
/// An owned fd is closed on every path. The request is handed back even when the file is
/// unusable (not regular, `fstat` failed): then with a `500`, and the error is returned.
pub fn respond_file(req: &Request, fd: FileFd, info: &FileInfo) -> Result<(), Error> {
    respond_file_sized(req, fd, None, info)
}

/// [`respond_file`] with a caller-supplied size (at most the file's).
pub fn respond_file_sized(req: &Request, fd: FileFd, size: Option<u64>, info: &FileInfo) -> Result<(), Error> {
    let built = file_meta(fd.raw(), size).and_then(|meta| build_response(plan_file_response(req.head(), &meta, info), fd));
    match built {
        Ok(resp) => req.respond_ref(resp, None),
        Err(e) => {
            let _ = req.respond_ref(Response::plain(500), None);
            Err(e)
        }
    }
}

/// Why [`respond_file_at`] did not answer: the request is still the caller's to answer.
#[derive(Debug)]
pub enum OpenFailure {
    /// No such file (ENOENT, ENOTDIR, ENAMETOOLONG).
    NotFound,
    /// The path leads out of the directory (EXDEV, ELOOP), is not readable (EACCES, EPERM), or
    /// names something that is not a regular file or directory (FIFO, device, socket).
    Forbidden,
    /// A directory (a file server answers with its index or a redirect).
    Directory,
    /// Anything else: out of descriptors, I/O error, or the response could not be built
    /// (bad `size`, bad caller info).
    Other(Error),
}

fn failure_of(e: std::io::Error) -> OpenFailure {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => OpenFailure::NotFound,
        Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM) => OpenFailure::Forbidden,
        _ => OpenFailure::Other(Error::Io(e)),
    }
}

/// The response for the file at `path` beneath `dirfd`, like [`respond_file_sized`] would
/// build it, with the descriptor and its metadata from the worker's open-file cache
/// (`use_cache`): a cached file costs no `open`, `fstat` or `close`. On `Err` nothing was sent
/// and the request is still the caller's to answer.
pub fn file_at_response(req: &Request, dirfd: std::os::fd::RawFd, path: &std::ffi::CStr, use_cache: bool, size: Option<u64>, info: &FileInfo) -> Result<Response, OpenFailure> {
    let file = req.open_file_at(dirfd, path, use_cache).map_err(failure_of)?;
    if file.stat.is_dir {
        return Err(OpenFailure::Directory);
    }
    if !file.stat.is_regular {
        return Err(OpenFailure::Forbidden);
    }
    let meta = meta_from_stat(file.stat, size).map_err(OpenFailure::Other)?;
    let plan = plan_cached(req.head(), &meta, info, None, file.validators);
    build_response(plan, FileFd::Shared(file.fd)).map_err(OpenFailure::Other)
}

/// [`file_at_response`], then respond with it.
pub fn respond_file_at(req: &Request, dirfd: std::os::fd::RawFd, path: &std::ffi::CStr, use_cache: bool, size: Option<u64>, info: &FileInfo) -> Result<(), OpenFailure> {
    let resp = file_at_response(req, dirfd, path, use_cache, size, info)?;
    req.respond_ref(resp, None).map_err(OpenFailure::Other)
}

#[cfg(test)]
mod tests;
