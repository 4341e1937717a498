//! Invariant checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! corpus replay test of the main crate (`tests/fuzz_corpus_replay.rs`). Both include this
//! file with `#[path = ...] mod checks;`, so there is exactly one copy of every check.
//!
//! Every check panics (assert!) when an invariant is broken; libFuzzer turns that into a
//! crash, the replay test into a failure.
//!
//! Input formats (the first bytes of an input steer how the rest is fed):
//! - `parse_head`: the whole input is the byte stream handed to `parse_request_head`.
//! - `chunked`: byte 0 = `k | limits << 6`: `k = byte0 & 7` split lengths follow (one byte
//!   each, 0 = "1"); the remaining bytes are the chunked body stream. Bit 6 selects small
//!   limits.
//! - `connection`: byte 0 = `k | read_sel << 4 | sleep << 6 | rsplit << 7`: `k = byte0 & 15`
//!   write-piece lengths follow (one byte each, length `b % 128 + 1`); the rest is the byte
//!   stream the client sends (pieces first, then the remainder in one write). `read_sel`
//!   picks the client's read size, `sleep` sleeps 300 µs between pieces, `rsplit` makes the
//!   client read whatever is available after every piece.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::{Engine, Request, Response};
use zerohttp::h1::{
    BodyFraming, ChunkedDecoder, ChunkedStep, Limits, ParseError, RequestHead, Version,
    parse_request_head,
};

// ---------------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------------

/// The limit sets every head input is checked with.
pub fn head_limits() -> [Limits; 3] {
    [
        Limits::default(),
        Limits {
            max_request_line: 64,
            max_head_bytes: 128,
            max_headers: 4,
        },
        Limits {
            max_request_line: 100,
            max_head_bytes: 300,
            max_headers: 10,
        },
    ]
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Everything observable about a parsed head, for equality checks.
#[derive(Debug, PartialEq, Eq)]
pub struct HeadSummary {
    method: Vec<u8>,
    target: String,
    path: String,
    query: Option<String>,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
    is_head: bool,
}

pub fn summary(h: &RequestHead) -> HeadSummary {
    HeadSummary {
        method: h.method_cstr().to_bytes().to_vec(),
        target: h.target().to_string(),
        path: h.path().to_string(),
        query: h.query().map(str::to_string),
        version: h.version(),
        headers: (0..h.header_count())
            .map(|i| {
                let (n, v) = h.header_at(i).expect("header_at within header_count");
                (n.to_string(), v.to_vec())
            })
            .collect(),
        framing: h.framing(),
        keep_alive: h.keep_alive(),
        expect_continue: h.expect_continue(),
        is_head: h.is_head(),
    }
}

/// Facts every accepted head must satisfy, whatever the input.
fn check_accepted_head(h: &RequestHead, n: usize, lim: &Limits, data: &[u8]) {
    assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
    assert!(n <= lim.max_head_bytes, "accepted head of {n} bytes > max_head_bytes {}", lim.max_head_bytes);
    assert!(data[..n].ends_with(b"\r\n\r\n"), "head does not end with CRLFCRLF");
    assert!(h.header_count() <= lim.max_headers, "more fields than max_headers");
    // Same bytes through the C-string accessors (one arena, NUL-terminated).
    let m = h.method_cstr().to_bytes();
    assert!(!m.is_empty() && m.iter().all(|&b| is_tchar(b)), "method {m:?}");
    assert_eq!(h.method().as_str().as_bytes(), m);
    assert_eq!(h.target_cstr().to_bytes(), h.target().as_bytes());
    assert_eq!(h.path_cstr().to_bytes(), h.path().as_bytes());
    assert_eq!(h.query_cstr().map(|q| q.to_bytes()), h.query().map(str::as_bytes));
    assert!(h.target().bytes().all(|b| b.is_ascii_graphic() && b != b'#'), "target {:?}", h.target());
    assert!(
        h.target().len() + m.len() + 10 <= lim.max_request_line,
        "request line longer than max_request_line"
    );
    let mut hosts = 0;
    let mut cl_values: Vec<&[u8]> = Vec::new();
    let mut te = false;
    for i in 0..h.header_count() {
        let (name, value) = h.header_at(i).expect("in range");
        let (cn, cv) = h.header_at_cstr(i).expect("in range");
        assert_eq!(cn.to_bytes(), name.as_bytes());
        assert_eq!(cv.to_bytes(), value);
        assert!(!name.is_empty() && name.bytes().all(is_tchar), "field name {name:?}");
        assert!(
            value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
            "CTL in field value {value:?}"
        );
        assert!(
            !value.first().is_some_and(|&b| b == b' ' || b == b'\t')
                && !value.last().is_some_and(|&b| b == b' ' || b == b'\t'),
            "field value not OWS-trimmed {value:?}"
        );
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            cl_values.push(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
        }
    }
    match h.version() {
        Version::Http11 => assert_eq!(hosts, 1, "HTTP/1.1 head accepted with {hosts} Host fields"),
        Version::Http10 => assert!(hosts <= 1, "HTTP/1.0 head accepted with {hosts} Host fields"),
    }
    match h.framing() {
        BodyFraming::Chunked => {
            assert!(te, "chunked framing without Transfer-Encoding");
            assert!(cl_values.is_empty(), "Transfer-Encoding and Content-Length both accepted");
            assert_eq!(h.version(), Version::Http11, "Transfer-Encoding accepted in HTTP/1.0");
        }
        BodyFraming::Length(v) => {
            assert!(!te, "Transfer-Encoding present but framing is Length");
            assert!(!cl_values.is_empty(), "Length framing without Content-Length");
            for cl in &cl_values {
                for el in cl.split(|&b| b == b',') {
                    let el = trim(el);
                    assert!(!el.is_empty() && el.iter().all(u8::is_ascii_digit), "CL element {el:?}");
                    let parsed = std::str::from_utf8(el).ok().and_then(|s| s.parse::<u64>().ok());
                    assert_eq!(parsed, Some(v), "Content-Length element {el:?} vs framing {v}");
                }
            }
        }
        BodyFraming::None => {
            assert!(!te && cl_values.is_empty(), "framing None but CL/TE present");
        }
    }
    if h.version() == Version::Http10 {
        assert!(h.framing() != BodyFraming::Chunked);
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A bounded set of prefix lengths `< len` worth checking: all of them for short inputs;
/// otherwise the ends, line boundaries and an even spread.
fn prefix_points(data: &[u8], len: usize) -> Vec<usize> {
    if len <= 96 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..12).chain(len - 12..len).collect();
    let mut lines = 0;
    for (i, &b) in data[..len].iter().enumerate() {
        if b == b'\n' || b == b'\r' {
            for p in [i, i + 1] {
                if p < len {
                    v.push(p);
                }
            }
            lines += 1;
            if lines >= 48 {
                break;
            }
        }
    }
    for k in 1..16 {
        v.push(len * k / 16);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// KNOWN DIVERGENCE (found by this fuzzer; reproducers `fuzz/artifacts-found/parse_head-prefix-*`):
/// while the request line has no LF yet, `scan_head` fails early with `400` ("invalid method"
/// or "bare CR") on a non-tchar byte before the first SP; once the line is complete (or over
/// the limit) other checks come first. So the same bytes get a different status depending on
/// how they were split into reads:
///   `G@T / HTTP/2.0\r\n`             whole → 505, prefix `G@` → 400
///   `G@T /` + 60 × `a` (no CRLF)      whole → 414 (max_request_line 64), prefix `G@` → 400
///   `G@T /` + 8189 × `a` (no CRLF)    the same with the default limits (8 KiB line)
///   `G\0T / HTTP/1.1\r\n`            whole → incomplete (method grammar is checked only
///                                     once the head is complete), prefix `G\0` → 400
///   65 × `a` + `\n`                  whole → 400 bare LF, prefix of 65 bytes → 414 (the
///                                     window looks 2 bytes past max_request_line for the LF)
///   8193 × `a` + `\n`                the same with the default limits
/// Both answers reject and close, so message boundaries are not affected, but the status
/// depends on TCP segmentation. Tolerated here: a prefix's error may differ from the whole input's
/// error in status (never error vs. accepted), and a prefix may fail early with 400 where the
/// whole is still incomplete so fuzzing can go on; run with `ZH_FUZZ_STRICT=1` to check a fix of `src/h1/request.rs`
/// makes the early check agree with the complete-line verdict.
pub fn tolerate_early_400() -> bool {
    strictness_off()
}

/// The divergences these tolerances were written for are fixed (split-independent statuses in
/// `scan_head`, answers kept on a half-close inside a body), so checks are strict by default;
/// `ZH_FUZZ_LENIENT=1` turns the old tolerances back on.
fn strictness_off() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| std::env::var_os("ZH_FUZZ_LENIENT").is_some_and(|v| v == "1"))
}

fn is_early_fail(e: &ParseError) -> bool {
    matches!(e, ParseError::BadRequest("invalid method" | "bare CR"))
}

/// Target 1: `parse_request_head` never panics; a result is consistent with every prefix
/// (what the engine sees when input arrives in pieces) and with the head bytes alone.
pub fn check_parse_head(data: &[u8]) {
    for lim in head_limits() {
        check_parse_head_with(data, &lim);
    }
}

pub fn check_parse_head_with(data: &[u8], lim: &Limits) {
    let full = parse_request_head(data, lim);
    match &full {
        Ok(Some((h, n))) => {
            let n = *n;
            check_accepted_head(h, n, lim, data);
            let want = summary(h);
            // The head bytes alone give the same head.
            match parse_request_head(&data[..n], lim) {
                Ok(Some((h2, n2))) => {
                    assert_eq!(n2, n, "head alone consumed differently");
                    assert_eq!(summary(&h2), want, "head alone parsed differently");
                }
                other => panic!("head alone: {other:?}, whole input: Ok(Some(.., {n}))"),
            }
            // Strict prefixes are incomplete, never an error (a split must not change the verdict).
            for m in prefix_points(data, n) {
                match parse_request_head(&data[..m], lim) {
                    Ok(None) => {}
                    other => panic!(
                        "prefix of {m} bytes of an accepted {n}-byte head gave {:?}",
                        other.map(|o| o.map(|(h, n)| (summary(&h), n)))
                    ),
                }
            }
            // More bytes after the head change nothing.
            for extra in [1usize, 7, 64] {
                let m = (n + extra).min(data.len());
                if m > n {
                    match parse_request_head(&data[..m], lim) {
                        Ok(Some((h2, n2))) => {
                            assert_eq!(n2, n);
                            assert_eq!(summary(&h2), want);
                        }
                        other => panic!("head + {} bytes gave {other:?}", m - n),
                    }
                }
            }
        }
        Ok(None) => {
            for m in prefix_points(data, data.len()) {
                match parse_request_head(&data[..m], lim) {
                    Ok(None) => {}
                    Err(e2) if tolerate_early_400() && is_early_fail(&e2) => {}
                    other => panic!(
                        "whole input incomplete but its {m}-byte prefix gave {:?}",
                        other.map(|o| o.map(|(h, n)| (summary(&h), n)))
                    ),
                }
            }
        }
        Err(e) => {
            let status = e.status();
            assert!(matches!(status, 400 | 414 | 431 | 501 | 505), "head error status {status}");
            for m in prefix_points(data, data.len()) {
                match parse_request_head(&data[..m], lim) {
                    Ok(None) => {}
                    Err(e2) if e2.status() == status => {}
                    Err(_) if tolerate_early_400() => {} // any error: see the note above
                    other => panic!(
                        "whole input gave {e:?} but its {m}-byte prefix gave {:?}",
                        other.map(|o| o.map(|(h, n)| (summary(&h), n)))
                    ),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies
// ---------------------------------------------------------------------------------------------

pub fn chunk_limits(small: bool) -> Limits {
    if small {
        Limits {
            max_request_line: 16,
            max_head_bytes: 64,
            max_headers: 2,
        }
    } else {
        Limits::default()
    }
}

/// How a chunked stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Body complete: total input bytes used, payload, trailers.
    Done {
        used: usize,
        payload: Vec<u8>,
        trailers: Vec<(String, Vec<u8>)>,
    },
    /// Input ended first: payload decoded so far.
    Incomplete { payload: Vec<u8> },
    /// Status of the error (payload before an error may differ between feeds).
    Error { status: u16 },
}

/// Decodes `input` in one `decode_into` call.
pub fn chunked_whole(input: &[u8], lim: &Limits) -> ChunkOutcome {
    let mut dec = ChunkedDecoder::new(lim);
    let mut out = BytesMut::new();
    match dec.decode_into(input, &mut out) {
        Err(e) => ChunkOutcome::Error { status: e.status() },
        Ok((used, true)) => {
            assert!(used <= input.len());
            assert!(dec.is_done());
            assert_eq!(dec.body_bytes_seen(), out.len() as u64);
            ChunkOutcome::Done {
                used,
                payload: out.to_vec(),
                trailers: dec.trailers().to_vec(),
            }
        }
        Ok((used, false)) => {
            assert!(!dec.is_done());
            // The engine keeps the unconsumed rest and waits for more input: a decoder that
            // stops short without being done would hang it.
            assert_eq!(used, input.len(), "decoder stopped at {used} of {} without finishing", input.len());
            assert_eq!(dec.body_bytes_seen(), out.len() as u64);
            ChunkOutcome::Incomplete { payload: out.to_vec() }
        }
    }
}

/// Feeds `input` as the engine does: pieces appended to a buffer, `decode_into` on the
/// buffer, consumed bytes dropped from its front.
pub fn chunked_split(input: &[u8], splits: &[usize], lim: &Limits) -> ChunkOutcome {
    let mut dec = ChunkedDecoder::new(lim);
    let mut out = BytesMut::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut used_total = 0;
    let mut pos: usize = 0;
    let mut cuts: Vec<usize> = splits.to_vec();
    cuts.push(usize::MAX);
    for cut in cuts {
        let end = pos.saturating_add(cut).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        match dec.decode_into(&buf, &mut out) {
            Err(e) => return ChunkOutcome::Error { status: e.status() },
            Ok((used, done)) => {
                buf.drain(..used);
                used_total += used;
                if done {
                    return ChunkOutcome::Done {
                        used: used_total,
                        payload: out.to_vec(),
                        trailers: dec.trailers().to_vec(),
                    };
                }
            }
        }
        if pos == input.len() {
            break;
        }
    }
    ChunkOutcome::Incomplete { payload: out.to_vec() }
}

/// Feeds one byte at a time through `step`, keeping what it has not consumed.
/// Also returns the payload decoded before an error (the most any feed can have seen).
pub fn chunked_bytewise(input: &[u8], lim: &Limits) -> (ChunkOutcome, usize) {
    let mut dec = ChunkedDecoder::new(lim);
    let mut out: Vec<u8> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut used_total = 0;
    for &b in input {
        pending.push(b);
        loop {
            match dec.step(&pending) {
                Err(e) => return (ChunkOutcome::Error { status: e.status() }, out.len()),
                Ok(ChunkedStep::Progress { consumed, data }) => {
                    assert!(consumed <= pending.len());
                    assert!(data.end <= consumed && data.start <= data.end, "data range {data:?} outside consumed {consumed}");
                    out.extend_from_slice(&pending[data]);
                    pending.drain(..consumed);
                    used_total += consumed;
                    if consumed == 0 || pending.is_empty() {
                        break;
                    }
                }
                Ok(ChunkedStep::Done { consumed }) => {
                    assert!(consumed <= pending.len());
                    used_total += consumed;
                    assert!(dec.is_done());
                    let n = out.len();
                    return (
                        ChunkOutcome::Done {
                            used: used_total,
                            payload: out,
                            trailers: dec.trailers().to_vec(),
                        },
                        n,
                    );
                }
            }
        }
    }
    let n = out.len();
    (ChunkOutcome::Incomplete { payload: out }, n)
}

/// Splits a `chunked` fuzz input into (limits, split lengths, stream).
pub fn chunked_plan(data: &[u8]) -> (Limits, Vec<usize>, &[u8]) {
    let Some((&b0, rest)) = data.split_first() else {
        return (chunk_limits(false), Vec::new(), data);
    };
    let k = ((b0 & 7) as usize).min(rest.len());
    let splits = rest[..k].iter().map(|&b| (b as usize).max(1)).collect();
    (chunk_limits(b0 & 0x40 != 0), splits, &rest[k..])
}

/// Target 2: whole, split and byte-by-byte decoding agree.
pub fn check_chunked(data: &[u8]) {
    let (lim, splits, stream) = chunked_plan(data);
    let whole = chunked_whole(stream, &lim);
    let split = chunked_split(stream, &splits, &lim);
    let (bytewise, _) = chunked_bytewise(stream, &lim);
    assert_eq!(whole, split, "whole vs split {splits:?}");
    assert_eq!(whole, bytewise, "whole vs byte-by-byte");
    // Ones-and-rest split as well: the classic "first byte alone" read.
    if stream.len() > 1 {
        assert_eq!(whole, chunked_split(stream, &[1], &lim), "whole vs [1] split");
    }
    if let ChunkOutcome::Done { used, .. } = &whole {
        // The body ends where it ends: extra bytes after it are not consumed, and the
        // stream cut at `used` decodes to the same thing.
        assert_eq!(chunked_whole(&stream[..*used], &lim), whole, "body alone differs");
    }
}

// ---------------------------------------------------------------------------------------------
// Whole connections against a real engine
// ---------------------------------------------------------------------------------------------

/// Size of the file whose regions some responses carry.
const FILE_LEN: usize = 5000;
const BIG_LEN: usize = 70_000;
pub const CONN_MAX_BODY: u64 = 1024;

pub fn conn_limits() -> Limits {
    Limits {
        max_request_line: 256,
        max_head_bytes: 1024,
        max_headers: 16,
    }
}

pub fn conn_config() -> Config {
    Config {
        threads: 1,
        limits: conn_limits(),
        max_body: Some(CONN_MAX_BODY),
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        max_pipeline: 4,
        ..Config::default()
    }
}

fn file_data() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| (0..FILE_LEN).map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz\n"[i % 37]).collect())
}

fn big_data() -> &'static Bytes {
    static DATA: OnceLock<Bytes> = OnceLock::new();
    DATA.get_or_init(|| Bytes::from((0..BIG_LEN).map(|i| (i % 251) as u8).collect::<Vec<u8>>()))
}

/// One piece of a planned response body.
#[derive(Debug, Clone)]
enum Part {
    Echo,
    Text(String),
    File { off: usize, len: usize, owned: bool },
    Big,
}

/// What the test handler does with a request; computed identically by the handler and by
/// the oracle that predicts the responses.
#[derive(Debug, Clone)]
pub struct Plan {
    status: u16,
    headers: Vec<(String, String)>,
    parts: Vec<Part>,
    close: bool,
    drop: bool,
    is_async: bool,
    /// Answered from the responder thread after 30 ms.
    slow: bool,
}

fn plan_for(method: &[u8], path: &str, body_len: usize, header_count: usize, trailers: usize) -> Plan {
    let status = if path.contains("204") {
        204
    } else if path.contains("304") {
        304
    } else if path.contains("nf") {
        404
    } else {
        200
    };
    let mut headers = vec![
        ("X-Method".to_string(), String::from_utf8_lossy(method).into_owned()),
        ("X-Fields".to_string(), header_count.to_string()),
        ("X-Body".to_string(), body_len.to_string()),
    ];
    if trailers > 0 {
        headers.push(("X-Trailers".to_string(), trailers.to_string()));
    }
    let mut parts = vec![Part::Echo, Part::Text(format!("|{path}|"))];
    if path.contains("file") || path.contains("own") {
        let off = (path.len() * 131) % FILE_LEN;
        let len = ((path.len() * 977) % 3000).min(FILE_LEN - off);
        parts.push(Part::File { off, len, owned: path.contains("own") });
        parts.push(Part::Text("-".into()));
    }
    if path.contains("big") {
        parts.push(Part::Big);
    }
    Plan {
        status,
        headers,
        parts,
        close: path.contains("close"),
        drop: path.contains("drop"),
        is_async: path.contains("async") || path.contains("slow"),
        slow: path.contains("slow"),
    }
}

fn plan_body(plan: &Plan, echo: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in &plan.parts {
        match p {
            Part::Echo => v.extend_from_slice(echo),
            Part::Text(t) => v.extend_from_slice(t.as_bytes()),
            Part::File { off, len, .. } => v.extend_from_slice(&file_data()[*off..*off + *len]),
            Part::Big => v.extend_from_slice(big_data()),
        }
    }
    v
}

fn build_response(plan: &Plan, req: &Request, file: &std::fs::File) -> Response {
    let mut r = Response::new(plan.status).expect("status");
    for (n, v) in &plan.headers {
        r.add_header(n.as_bytes(), v.as_bytes()).expect("header");
    }
    if plan.close {
        r.add_header(b"Connection", b"close").expect("connection");
    }
    for p in &plan.parts {
        match p {
            Part::Echo => r.add_memory(req.body().clone()),
            Part::Text(t) => r.add_bytes(t.as_bytes()),
            Part::File { off, len, owned } => {
                let fd = if *owned {
                    FileFd::Owned(OwnedFd::from(file.try_clone().expect("dup")))
                } else {
                    FileFd::Borrowed(file.as_raw_fd())
                };
                r.add_file(fd, *off as u64, Some(*len as u64)).expect("file region");
            }
            Part::Big => r.add_memory(big_data().clone()),
        }
    }
    r
}

pub struct Server {
    pub engine: Engine,
    pub port: u16,
    pub execs: std::sync::atomic::AtomicU64,
}

/// The process-wide engine the connection checks talk to.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("zerohttp-fuzz-{}.bin", std::process::id()));
        std::fs::write(&path, file_data()).expect("write temp file");
        let file = Arc::new(std::fs::File::open(&path).expect("open temp file"));
        let _ = std::fs::remove_file(&path);

        // Answers from another thread, as an application with its own executor would.
        let (tx, rx) = mpsc::channel::<(Request, Plan)>();
        let file2 = file.clone();
        std::thread::Builder::new()
            .name("fuzz-responder".into())
            .spawn(move || {
                for (req, plan) in rx {
                    if plan.slow {
                        std::thread::sleep(Duration::from_millis(30));
                    }
                    if plan.drop {
                        drop(req);
                        continue;
                    }
                    let resp = build_response(&plan, &req, &file2);
                    let _ = req.respond(resp);
                }
            })
            .expect("responder thread");
        let tx = Mutex::new(tx);

        let handler = move |req: Request| {
            let h = req.head();
            let plan = plan_for(
                h.method_cstr().to_bytes(),
                h.path(),
                req.body().len(),
                h.header_count(),
                req.trailers().len(),
            );
            if plan.is_async {
                let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send((req, plan));
            } else if plan.drop {
                drop(req);
            } else {
                let resp = build_response(&plan, &req, &file);
                let _ = req.respond(resp);
            }
        };
        let engine = Engine::new(conn_config(), Arc::new(handler)).expect("engine");
        let port = engine.listen("127.0.0.1:0").expect("listen");
        engine.start().expect("start");
        Server { engine, port, execs: Default::default() }
    })
}

/// One response the oracle expects.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Acceptable statuses (several when the engine may legitimately decide either way).
    statuses: Vec<u16>,
    /// Expected body bytes; `None` = not predicted (error responses).
    body: Option<Vec<u8>>,
    /// Answer to HEAD (no body bytes, Content-Length of the GET).
    head: bool,
    closes: bool,
}

/// Predicts the responses to `stream` (sent in full, then half-closed) using only the pure
/// codec: the engine must frame the stream exactly as `parse_request_head` + the chunked
/// decoder do on the whole input, however the bytes were split.
/// Also returns whether the last expected responses may be missing (known divergences).
pub fn expected_responses(stream: &[u8]) -> (Vec<Expected>, bool) {
    let lim = conn_limits();
    let mut out = Vec::new();
    // The stream ends inside a request body (see tolerate_eof_mid_body).
    let mut eof_in_body = false;
    let mut pos = 0;
    let err = |statuses: Vec<u16>| Expected { statuses, body: None, head: false, closes: true };
    while pos < stream.len() {
        let head = match parse_request_head(&stream[pos..], &lim) {
            Err(e) => {
                // See tolerate_early_400: the engine may have judged a prefix.
                let mut statuses = vec![e.status()];
                if tolerate_early_400() {
                    prefix_error_statuses(&stream[pos..], &lim, &mut statuses);
                }
                out.push(err(statuses));
                break;
            }
            Ok(None) => {
                // Incomplete at EOF: no answer, unless the engine judged a prefix (see
                // tolerate_early_400), in which case it may have sent that error.
                let mut statuses = Vec::new();
                if tolerate_early_400() {
                    prefix_error_statuses(&stream[pos..], &lim, &mut statuses);
                }
                if !statuses.is_empty() {
                    out.push(err(statuses));
                    eof_in_body = true; // i.e. the last expected response may be missing
                }
                break;
            }
            Ok(Some((h, n))) => {
                pos += n;
                h
            }
        };
        if head.header("expect").is_some_and(|v| !v.eq_ignore_ascii_case(b"100-continue")) {
            out.push(err(vec![417]));
            break;
        }
        let (body, trailers) = match head.framing() {
            BodyFraming::None => (Vec::new(), 0),
            BodyFraming::Length(n) => {
                if n > CONN_MAX_BODY {
                    out.push(err(vec![413]));
                    break;
                }
                let n = n as usize;
                if stream.len() - pos < n {
                    eof_in_body = true;
                    break; // EOF inside the body: nothing to answer
                }
                pos += n;
                (stream[pos - n..pos].to_vec(), 0)
            }
            BodyFraming::Chunked => {
                let rest = &stream[pos..];
                match chunked_whole(rest, &lim) {
                    ChunkOutcome::Error { status } => {
                        let (_, before) = chunked_bytewise(rest, &lim);
                        if before as u64 > CONN_MAX_BODY {
                            out.push(err(vec![status, 413]));
                        } else {
                            out.push(err(vec![status]));
                        }
                        break;
                    }
                    ChunkOutcome::Incomplete { payload } => {
                        if payload.len() as u64 > CONN_MAX_BODY {
                            out.push(err(vec![413]));
                        } else {
                            eof_in_body = true;
                        }
                        break;
                    }
                    ChunkOutcome::Done { used, payload, trailers } => {
                        if payload.len() as u64 > CONN_MAX_BODY {
                            out.push(err(vec![413]));
                            break;
                        }
                        pos += used;
                        (payload, trailers.len())
                    }
                }
            }
        };
        let method = head.method_cstr().to_bytes();
        let plan = plan_for(method, head.path(), body.len(), head.header_count(), trailers);
        // The engine reads nothing after CONNECT (the bytes after it would be a tunnel).
        let closes = !head.keep_alive() || method == b"CONNECT" || plan.close || plan.drop;
        if plan.drop {
            out.push(Expected {
                statuses: vec![500],
                body: Some(b"500 Internal Server Error\n".to_vec()),
                head: head.is_head(),
                closes,
            });
        } else {
            out.push(Expected {
                statuses: vec![plan.status],
                body: Some(plan_body(&plan, &body)),
                head: head.is_head(),
                closes,
            });
        }
        if closes {
            break;
        }
    }
    (out, eof_in_body)
}

/// KNOWN BUG (found by this fuzzer; reproducers `fuzz/artifacts-found/connection-eof-in-body-*`):
/// when the peer half-closes inside a request body while earlier, complete requests are still
/// waiting for their (asynchronous) responses, `Conn::after_send` in `src/engine/conn.rs`
/// (`if self.read_eof && !matches!(self.reading, Reading::Head | Reading::Stopped) { return
/// Next::Close(CloseReason::Done) }`) closes the connection at once, and the responses to the
/// complete requests are never sent. (A half-close inside a request *head* waits for them.)
/// Tolerated here — only in that situation, only as missing trailing responses, never as a
/// truncated one — so fuzzing can go on; run with `ZH_FUZZ_STRICT=1` to check a fix.
pub fn tolerate_eof_mid_body() -> bool {
    strictness_off()
}

/// Adds the statuses `parse_request_head` gives for prefixes of `rest` (bounded: past
/// `max_head_bytes` every verdict is a limit error anyway).
fn prefix_error_statuses(rest: &[u8], lim: &Limits, statuses: &mut Vec<u16>) {
    let end = rest.len().min(lim.max_head_bytes + 3);
    for m in 1..end {
        if let Err(e2) = parse_request_head(&rest[..m], lim) {
            if !statuses.contains(&e2.status()) {
                statuses.push(e2.status());
            }
        }
    }
}

/// A response as read back from the socket.
#[derive(Debug)]
pub struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses `bytes` as a sequence of HTTP/1.1 responses, checking each against the oracle.
/// Panics on anything that does not frame, or that disagrees with `expect`.
pub fn check_responses(bytes: &[u8], expect: &[Expected], strict: bool, may_stop_early: bool) {
    let mut pos = 0;
    let mut idx = 0;
    let ctx = |pos: usize| String::from_utf8_lossy(&bytes[..bytes.len().min(pos + 200)]).into_owned();
    while pos < bytes.len() {
        let Some(end) = bytes[pos..].windows(4).position(|w| w == b"\r\n\r\n") else {
            panic!("truncated response head at {pos}: {:?}", ctx(pos));
        };
        let head = std::str::from_utf8(&bytes[pos..pos + end]).unwrap_or_else(|_| panic!("non-UTF-8 head {:?}", ctx(pos)));
        pos += end + 4;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        assert!(status_line.starts_with("HTTP/1.1 ") && status_line.len() >= 13, "status line {status_line:?}");
        assert_eq!(&status_line[12..13], " ", "status line {status_line:?}");
        let status: u16 = status_line[9..12].parse().unwrap_or_else(|_| panic!("status line {status_line:?}"));
        assert!((100..=999).contains(&status), "status {status}");
        let mut headers = Vec::new();
        for l in lines {
            let (n, v) = l.split_once(": ").unwrap_or_else(|| panic!("header line {l:?}"));
            assert!(!n.is_empty() && n.bytes().all(is_tchar), "header name {n:?}");
            assert!(v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)), "header value {v:?}");
            headers.push((n.to_string(), v.to_string()));
        }
        let count = |name: &str| headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
        assert!(count("content-length") <= 1 && count("transfer-encoding") <= 1 && count("connection") <= 1);
        assert!(count("content-length") == 0 || count("transfer-encoding") == 0, "CL and TE in a response");
        if (100..200).contains(&status) {
            assert_eq!(status, 100, "unexpected interim response");
            assert!(headers.is_empty(), "100 Continue with fields");
            continue;
        }
        let mut got = Got { status, headers, body: Vec::new() };
        let exp = expect.get(idx);
        if strict {
            let exp = exp.unwrap_or_else(|| {
                panic!("response #{idx} ({status}) not expected; expected {} responses: {expect:?}\nreceived: {:?}",
                    expect.len(), String::from_utf8_lossy(bytes))
            });
            assert!(
                exp.statuses.contains(&status),
                "response #{idx}: status {status}, expected {:?}\nreceived: {:?}",
                exp.statuses,
                String::from_utf8_lossy(bytes)
            );
        }
        let no_body = exp.is_some_and(|e| e.head) || got.header("x-method") == Some("HEAD") || status == 204 || status == 304;
        let cl = got.header("content-length").map(|v| v.parse::<usize>().unwrap_or_else(|_| panic!("CL {v:?}")));
        let connect_2xx = got.header("x-method") == Some("CONNECT") && (200..300).contains(&status);
        if status == 204 || status == 304 || connect_2xx {
            // RFC 9110 §9.3.6: a 2xx to CONNECT carries no framing; what follows is a tunnel
            // (here: the engine closes, since the handler does not take the connection).
            assert!(cl.is_none() && got.header("transfer-encoding").is_none(), "framing header on {status}");
        } else if got.header("transfer-encoding").is_some() {
            assert_eq!(got.header("transfer-encoding"), Some("chunked"));
            if !no_body {
                let mut dec = ChunkedDecoder::new(&Limits::default());
                let mut out = BytesMut::new();
                let (used, done) = dec.decode_into(&bytes[pos..], &mut out).expect("response chunked framing");
                assert!(done, "truncated chunked response body");
                pos += used;
                got.body = out.to_vec();
            }
        } else {
            let cl = cl.unwrap_or_else(|| panic!("response without framing: {head:?}"));
            if !no_body {
                assert!(bytes.len() - pos >= cl, "truncated body: {} of {cl} bytes\nreceived: {:?}", bytes.len() - pos, ctx(0));
                got.body = bytes[pos..pos + cl].to_vec();
                pos += cl;
            }
        }
        let closes = got.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if strict {
            let exp = exp.expect("checked above");
            if let Some(body) = &exp.body {
                if exp.head {
                    assert_eq!(cl, Some(body.len()), "HEAD response Content-Length");
                } else if status != 204 && status != 304 && !connect_2xx {
                    assert!(got.body == *body, "response #{idx} body {:?}, expected {:?}",
                        String::from_utf8_lossy(&got.body), String::from_utf8_lossy(body));
                }
            }
            assert_eq!(closes, exp.closes, "response #{idx}: Connection: close = {closes}, expected {}", exp.closes);
        }
        idx += 1;
        if closes {
            assert_eq!(pos, bytes.len(), "{} bytes after a Connection: close response", bytes.len() - pos);
        }
    }
    if strict && !(may_stop_early && idx < expect.len()) {
        assert_eq!(idx, expect.len(), "got {idx} responses, expected {}: {expect:?}\nreceived: {:?}",
            expect.len(), String::from_utf8_lossy(bytes));
    }
}

/// How the client feeds one connection input.
#[derive(Debug)]
pub struct ConnPlan<'a> {
    pub pieces: Vec<&'a [u8]>,
    pub read_size: usize,
    pub sleep: bool,
    pub read_between: bool,
    pub stream: &'a [u8],
}

pub fn conn_plan(data: &[u8]) -> ConnPlan<'_> {
    let Some((&b0, rest)) = data.split_first() else {
        return ConnPlan { pieces: Vec::new(), read_size: 65536, sleep: false, read_between: false, stream: data };
    };
    let k = ((b0 & 15) as usize).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let mut pieces = Vec::new();
    let mut pos = 0;
    for &s in sizes {
        let n = (s as usize % 128) + 1;
        let end = (pos + n).min(stream.len());
        if end > pos {
            pieces.push(&stream[pos..end]);
        }
        pos = end;
    }
    if pos < stream.len() {
        pieces.push(&stream[pos..]);
    }
    ConnPlan {
        pieces,
        read_size: [65536, 1500, 97, 4096][((b0 >> 4) & 3) as usize],
        sleep: b0 & 0x40 != 0,
        read_between: b0 & 0x80 != 0,
        stream,
    }
}

/// Reads what is available right now without blocking.
fn read_available(s: &mut TcpStream, got: &mut Vec<u8>) {
    let _ = s.set_nonblocking(true);
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let _ = s.set_nonblocking(false);
}

/// Target 3: one connection, fed as the input's plan says; the responses must frame, match
/// the oracle, and the server must close.
pub fn check_connection(data: &[u8], port: u16, read_timeout: Duration) {
    let plan = conn_plan(data);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(read_timeout)).expect("timeout");
    s.set_write_timeout(Some(read_timeout)).expect("timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut write_failed = false;
    for (i, piece) in plan.pieces.iter().enumerate() {
        if let Err(e) = s.write_all(piece) {
            // The server may close after an error response; what it sent is checked below.
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "write failed: {e}"
            );
            write_failed = true;
            break;
        }
        if i + 1 < plan.pieces.len() {
            if plan.sleep {
                std::thread::sleep(Duration::from_micros(300));
            }
            if plan.read_between {
                read_available(&mut s, &mut got);
            }
        }
    }
    let write_time = started.elapsed();
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = vec![0u8; plan.read_size];
    let mut reset = false;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "HANG: no EOF from the server within {read_timeout:?}; received so far {:?}; plan {plan:?}",
                    String::from_utf8_lossy(&got)
                );
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                reset = true;
                break;
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
    let (expect, eof_in_body) = expected_responses(plan.stream);
    // A stall longer than the header-read deadline may legitimately end in 408 instead.
    let timing_ok = write_time < Duration::from_millis(150);
    let strict = timing_ok && !write_failed;
    assert!(!reset || !strict, "connection reset by the server; received {:?}; expected {expect:?}", String::from_utf8_lossy(&got));
    check_responses(&got, &expect, strict, eof_in_body && tolerate_eof_mid_body());
}

/// Leak checks between inputs: the engine must have closed every connection, and the
/// process must not accumulate fds.
pub fn check_server_idle(srv: &Server) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let st = srv.engine.stats();
        if st.connections_active == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "connections still active after 3 s: {st:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let n = dir.count();
        assert!(n < 256, "{n} open fds: descriptor leak?");
    }
}

/// Runs one connection input against the process-wide engine, with periodic leak checks.
pub fn run_connection_input(data: &[u8], read_timeout: Duration) {
    let srv = server();
    check_connection(data, srv.port, read_timeout);
    let n = srv.execs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n % 512 == 511 {
        check_server_idle(srv);
    }
}

