//! Static file responses over 127.0.0.1, one test per RFC 9110 §13/§14 rule, against real
//! responses (the Rust entry point `static_file::respond_file` and the C one
//! `zh_respond_file`), plus agreement with `curl -r`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{connect, read_response, Resp};
use zerohttp::body::FileFd;
use zerohttp::config::Config;
use zerohttp::engine::Engine;
use zerohttp::h1::format_http_date;
use zerohttp::static_file::{self, FileInfo};

const SIZE: usize = 100_000;

struct Site {
    engine: Engine,
    port: u16,
    path: PathBuf,
    data: Vec<u8>,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn temp_file(tag: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("zh-static-{}-{tag}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    path
}

/// An engine answering every request with the file at `path` (text/plain, Cache-Control).
fn site(tag: &str) -> Site {
    site_with(tag, Config { threads: 2, ..Config::default() })
}

fn site_with(tag: &str, config: Config) -> Site {
    let data = content(SIZE);
    let path = temp_file(tag, &data);
    let p = path.clone();
    let (engine, port) = common::start_with(config, move |req| {
        let f: OwnedFd = std::fs::File::open(&p).unwrap().into();
        let mut info = FileInfo::default();
        info.set_content_type(b"text/plain").unwrap();
        info.add_header(b"Cache-Control", b"max-age=60").unwrap();
        static_file::respond_file(&req, FileFd::Owned(f), &info).unwrap();
    });
    Site { engine, port, path, data }
}

fn etag_of(path: &Path) -> String {
    let md = std::fs::metadata(path).unwrap();
    let ns = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
    format!("\"{:x}-{:x}-{:x}\"", md.ino(), md.size(), ns)
}

fn last_modified_of(path: &Path) -> String {
    let md = std::fs::metadata(path).unwrap();
    String::from_utf8(format_http_date(md.mtime() as u64).to_vec()).unwrap()
}

/// One request with extra header lines; the connection closes after it.
fn request(port: u16, method: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = connect(port);
    let mut raw = format!("{method} /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, &mut Vec::new(), method == "HEAD").expect("response")
}

fn get(port: u16, headers: &[(&str, &str)]) -> Resp {
    request(port, "GET", headers)
}

/// Header names in order, lowercased, without the engine's Date and Connection.
fn names(r: &Resp) -> Vec<String> {
    r.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).filter(|n| n != "date" && n != "connection").collect()
}

/// Parses a multipart/byteranges body into (Content-Range, part headers, bytes).
fn parse_multipart(r: &Resp) -> Vec<(String, Vec<(String, String)>, Vec<u8>)> {
    let ct = r.header("content-type").expect("content-type");
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").expect("multipart");
    let delim = format!("--{boundary}");
    let body = &r.body;
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes(), 0).expect("first delimiter");
    assert!(body[..pos].iter().all(|b| *b == b'\r' || *b == b'\n'), "preamble");
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            assert_eq!(&body[pos..], b"--\r\n", "close delimiter");
            break;
        }
        assert_eq!(&body[pos..pos + 2], b"\r\n");
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).expect("part head");
        let head = String::from_utf8(body[pos..head_end].to_vec()).unwrap();
        let headers: Vec<(String, String)> =
            head.split("\r\n").map(|l| l.split_once(": ").map(|(a, b)| (a.to_string(), b.to_string())).unwrap()).collect();
        let range = headers.iter().find(|(n, _)| n == "Content-Range").expect("part Content-Range").1.clone();
        let (a, b) = range.strip_prefix("bytes ").unwrap().split('/').next().unwrap().split_once('-').unwrap();
        let len = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        let data_start = head_end + 4;
        let data = body[data_start..data_start + len].to_vec();
        pos = data_start + len;
        assert_eq!(&body[pos..pos + 2], b"\r\n", "CRLF before the next delimiter");
        pos += 2;
        assert!(body[pos..].starts_with(delim.as_bytes()), "delimiter after part");
        parts.push((range, headers, data));
    }
    parts
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

#[test]
fn whole_file_200_with_validators() {
    let s = site("whole");
    let r = get(s.port, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, s.data);
    assert_eq!(names(&r), ["content-type", "accept-ranges", "etag", "last-modified", "cache-control", "content-length"]);
    assert_eq!(r.header("etag"), Some(etag_of(&s.path).as_str()));
    assert_eq!(r.header("last-modified"), Some(last_modified_of(&s.path).as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-length"), Some("100000"));
}

#[test]
fn single_range_forms_206() {
    let s = site("single");
    for (spec, a, b) in [("bytes=0-99", 0, 99), ("bytes=99000-", 99_000, 99_999), ("bytes=-500", 99_500, 99_999), ("bytes=5-999999", 5, 99_999)] {
        let r = get(s.port, &[("Range", spec)]);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {a}-{b}/{SIZE}").as_str()));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("content-length"), Some((b - a + 1).to_string().as_str()));
        assert_eq!(r.body, s.data[a..=b]);
        assert_eq!(r.header("etag"), Some(etag_of(&s.path).as_str()));
    }
}

#[test]
fn unsatisfiable_416_exact_headers() {
    let s = site("416");
    let r = get(s.port, &[("Range", "bytes=100000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(names(&r), ["content-range", "content-type", "content-length"]);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body, b"416 Range Not Satisfiable\n");
    assert_eq!(get(s.port, &[("Range", "bytes=-0")]).status, 416);
}

/// The stats once `n` more responses than in `before` are counted (the worker counts a
/// response after its last byte went out, so the client may have it a moment earlier).
fn stats_after(engine: &Engine, before: &zerohttp::stats::Snapshot, n: u64) -> zerohttp::stats::Snapshot {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let st = engine.stats();
        if st.responses >= before.responses + n || std::time::Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// GETs three ranges (10, 1000 and 100 bytes) as multipart/byteranges and checks every part;
/// returns the stats before and after.
fn multipart_three_parts(s: &Site) -> (zerohttp::stats::Snapshot, zerohttp::stats::Snapshot, Resp) {
    let before = s.engine.stats();
    let r = get(s.port, &[("Range", "bytes=0-9,50000-50999,-100")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), None);
    assert_eq!(r.header("content-length").unwrap().parse::<usize>().unwrap(), r.body.len());
    let parts = parse_multipart(&r);
    let want = [(0usize, 9usize), (50_000, 50_999), (99_900, 99_999)];
    assert_eq!(parts.len(), 3);
    for ((range, headers, data), (a, b)) in parts.iter().zip(want) {
        assert_eq!(range, &format!("bytes {a}-{b}/{SIZE}"));
        assert_eq!(headers[0], ("Content-Type".to_string(), "text/plain".to_string()));
        assert_eq!(data, &s.data[a..=b]);
    }
    let after = stats_after(&s.engine, &before, 1);
    (before, after, r)
}

#[test]
fn multipart_byteranges_by_sendfile() {
    // small_file_read_max 0: every part, however small, goes by sendfile.
    let s = site_with("multi", Config { threads: 2, small_file_read_max: 0, ..Config::default() });
    let (before, after, r) = multipart_three_parts(&s);
    assert_eq!(after.bytes_sendfile - before.bytes_sendfile, 10 + 1000 + 100, "file parts went by sendfile: {after:?}");
    assert_eq!(after.bytes_copy - before.bytes_copy, 0, "no file byte through user space: {after:?}");
    // The boundary is random per response.
    let r2 = get(s.port, &[("Range", "bytes=0-9,50000-50999")]);
    assert_ne!(r.header("content-type"), r2.header("content-type"));
    assert_eq!(parse_multipart(&r2).len(), 2);
}

#[test]
fn multipart_small_parts_go_with_the_head_by_default() {
    // The default small_file_read_max (4096): the three parts (1110 bytes together) are read
    // into the sendmsg of the head and part headers, counted as copied, none by sendfile.
    assert_eq!(Config::default().small_file_read_max, 4096);
    let s = site("multi-small");
    let (before, after, _) = multipart_three_parts(&s);
    assert_eq!(after.bytes_copy - before.bytes_copy, 10 + 1000 + 100, "{after:?}");
    assert_eq!(after.bytes_sendfile - before.bytes_sendfile, 0, "{after:?}");
    assert!(after.syscalls_copy - before.syscalls_copy >= 3, "one preadv2 per part: {after:?}");
}

#[test]
fn overlapping_ranges_coalesce_and_too_many_are_ignored() {
    let s = site("coalesce");
    let r = get(s.port, &[("Range", "bytes=0-499,100-199,400-999,0-999")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-999/100000"));
    assert_eq!(r.body, s.data[..1000]);
    let many: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 1000, i * 1000)).collect();
    let r = get(s.port, &[("Range", &format!("bytes={}", many.join(",")))]);
    assert_eq!((r.status, r.body.len()), (200, SIZE));
    let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{}", i * 1000, i * 1000)).collect();
    let r = get(s.port, &[("Range", &format!("bytes={}", sixteen.join(",")))]);
    assert_eq!((r.status, parse_multipart(&r).len()), (206, 16));
}

#[test]
fn invalid_range_is_ignored() {
    let s = site("invalid");
    for v in ["bytes=9-1", "lines=1-2", "bytes=x-y"] {
        let r = get(s.port, &[("Range", v)]);
        assert_eq!((r.status, r.body.len()), (200, SIZE), "{v}");
    }
}

#[test]
fn if_range_etag_and_date() {
    let s = site("ifrange");
    let tag = etag_of(&s.path);
    let lm = last_modified_of(&s.path);
    assert_eq!(get(s.port, &[("Range", "bytes=0-9"), ("If-Range", &tag)]).status, 206);
    assert_eq!(get(s.port, &[("Range", "bytes=0-9"), ("If-Range", &lm)]).status, 206);
    let weak = format!("W/{tag}");
    for v in ["\"stale\"", weak.as_str(), "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let r = get(s.port, &[("Range", "bytes=0-9"), ("If-Range", v)]);
        assert_eq!((r.status, r.body.len()), (200, SIZE), "{v}");
    }
}

#[test]
fn not_modified_304_exact_headers() {
    let s = site("304");
    let tag = etag_of(&s.path);
    let lm = last_modified_of(&s.path);
    let weak = format!("W/{tag}");
    for (h, v) in [("If-None-Match", tag.as_str()), ("If-None-Match", weak.as_str()), ("If-None-Match", "*"), ("If-Modified-Since", lm.as_str())] {
        let r = get(s.port, &[(h, v)]);
        assert_eq!(r.status, 304, "{h}: {v}");
        assert_eq!(names(&r), ["etag", "last-modified", "cache-control"], "{h}: {v}");
        assert_eq!(r.header("etag"), Some(tag.as_str()));
        assert_eq!(r.header("last-modified"), Some(lm.as_str()));
        assert!(r.body.is_empty());
    }
    assert_eq!(get(s.port, &[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(get(s.port, &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status, 200);
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(get(s.port, &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]).status, 200);
    // Not for other methods: If-Modified-Since ignored, a matching If-None-Match → 412.
    assert_eq!(request(s.port, "POST", &[("If-Modified-Since", &lm), ("Content-Length", "0")]).status, 200);
    assert_eq!(request(s.port, "POST", &[("If-None-Match", "*"), ("Content-Length", "0")]).status, 412);
}

#[test]
fn precondition_failed_412_exact_headers() {
    let s = site("412");
    let tag = etag_of(&s.path);
    let r = get(s.port, &[("If-Match", "\"other\"")]);
    assert_eq!(r.status, 412);
    assert_eq!(names(&r), ["content-type", "content-length"]);
    assert_eq!(r.body, b"412 Precondition Failed\n");
    assert_eq!(get(s.port, &[("If-Match", &format!("W/{tag}"))]).status, 412);
    assert_eq!(get(s.port, &[("If-Match", &tag)]).status, 200);
    assert_eq!(get(s.port, &[("If-Match", "*")]).status, 200);
    assert_eq!(get(s.port, &[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")]).status, 412);
    assert_eq!(get(s.port, &[("If-Unmodified-Since", &last_modified_of(&s.path))]).status, 200);
    // Preconditions before Range.
    assert_eq!(get(s.port, &[("If-Match", "\"other\""), ("Range", "bytes=0-1")]).status, 412);
}

#[test]
fn head_gets_get_headers_without_body() {
    let s = site("head");
    for range in [None, Some("bytes=10-19"), Some("bytes=0-0,10-10")] {
        let hs: Vec<(&str, &str)> = range.map(|r| vec![("Range", r)]).unwrap_or_default();
        let g = get(s.port, &hs);
        let mut c = connect(s.port);
        let mut raw = String::from("HEAD /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
        if let Some(r) = range {
            raw.push_str(&format!("Range: {r}\r\n"));
        }
        raw.push_str("\r\n");
        c.write_all(raw.as_bytes()).unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut all).unwrap();
        let head_end = find(&all, b"\r\n\r\n", 0).unwrap() + 4;
        assert_eq!(all.len(), head_end, "no body after a HEAD response");
        let h = read_response(&mut TcpStream::connect(("127.0.0.1", s.port)).map(|mut t| { t.write_all(raw.as_bytes()).unwrap(); t }).unwrap(), &mut Vec::new(), true).unwrap();
        assert_eq!(h.status, g.status);
        let strip = |r: &Resp| -> Vec<(String, String)> {
            r.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("date") && !n.eq_ignore_ascii_case("content-type")).cloned().collect()
        };
        assert_eq!(strip(&h), strip(&g), "{range:?}");
        if range.is_none_or(|r| !r.contains(',')) {
            assert_eq!(h.header("content-type"), g.header("content-type"));
        }
    }
}

#[test]
fn range_ignored_for_post() {
    let s = site("post");
    let r = request(s.port, "POST", &[("Range", "bytes=0-9"), ("Content-Length", "0")]);
    assert_eq!((r.status, r.body.len()), (200, SIZE));
}

#[test]
fn keep_alive_across_file_responses() {
    let s = site("keepalive");
    let mut c = connect(s.port);
    let tag = etag_of(&s.path);
    write!(
        c,
        "GET /f HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4,1000-1004\r\n\r\n\
         GET /f HTTP/1.1\r\nHost: t\r\nIf-None-Match: {tag}\r\n\r\n\
         GET /f HTTP/1.1\r\nHost: t\r\nRange: bytes=999999-\r\n\r\n\
         GET /f HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let a = read_response(&mut c, &mut buf, false).unwrap();
    assert_eq!((a.status, parse_multipart(&a).len()), (206, 2));
    assert_eq!(read_response(&mut c, &mut buf, false).unwrap().status, 304);
    assert_eq!(read_response(&mut c, &mut buf, false).unwrap().status, 416);
    let d = read_response(&mut c, &mut buf, false).unwrap();
    assert_eq!((d.status, d.body == s.data), (200, true));
}

#[test]
fn empty_file_and_non_regular_fd() {
    let path = temp_file("empty", b"");
    let p = path.clone();
    let (_engine, port) = common::start(1, move |req| {
        if req.head().path() == "/pipe" {
            let (r, _w) = std::io::pipe().unwrap();
            let res = static_file::respond_file(&req, FileFd::Owned(r.into()), &FileInfo::default());
            assert!(res.is_err());
            return;
        }
        let f: OwnedFd = std::fs::File::open(&p).unwrap().into();
        static_file::respond_file(&req, FileFd::Owned(f), &FileInfo::default()).unwrap();
    });
    let r = get(port, &[]);
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("0"), 0));
    let r = get(port, &[("Range", "bytes=0-")]);
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */0")));
    let r = common::get(port, "/pipe");
    assert_eq!(r.status, 500);
    std::fs::remove_file(&path).unwrap();
}

// ---- curl agreement -----------------------------------------------------------------------

fn curl(args: &[&str]) -> Option<(Vec<u8>, String)> {
    let out = std::process::Command::new("curl").args(["-s", "--max-time", "10", "-D", "/dev/stderr"]).args(args).output().ok()?;
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    // Header names lowercased (the engine writes them lowercase; HTTP names are case-insensitive).
    let head = String::from_utf8_lossy(&out.stderr)
        .replace('\r', "")
        .lines()
        .map(|l| match l.split_once(": ") {
            Some((n, v)) => format!("{}: {v}\n", n.to_ascii_lowercase()),
            None => format!("{l}\n"),
        })
        .collect();
    Some((out.stdout, head))
}

#[test]
fn curl_r_agrees() {
    let s = site("curl");
    let url = format!("http://127.0.0.1:{}/f", s.port);
    for (spec, a, b) in [("0-99", 0, 99), ("99990-", 99_990, 99_999), ("-7", 99_993, 99_999), ("500-", 500, 99_999)] {
        let Some((body, head)) = curl(&["-r", spec, &url]) else { return };
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert!(head.contains(&format!("content-range: bytes {a}-{b}/{SIZE}\n")), "{head}");
        assert_eq!(body, s.data[a..=b], "curl -r {spec}");
    }
    // Multipart through curl: parse what curl received.
    let Some((body, head)) = curl(&["-r", "0-9,1000-1009", &url]) else { return };
    let ct = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap().to_string();
    let r = Resp { status: 206, headers: vec![("Content-Type".into(), ct)], body, trailers: vec![] };
    let parts = parse_multipart(&r);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].2, s.data[0..10]);
    assert_eq!(parts[1].2, s.data[1000..1010]);
    // Conditional: curl -z (If-Modified-Since) and --etag-compare.
    let Some((body, head)) = curl(&["-z", &last_modified_of(&s.path), &url]) else { return };
    assert!(head.starts_with("HTTP/1.1 304") && body.is_empty(), "{head}");
    let etag_file = std::env::temp_dir().join(format!("zh-static-etag-{}", std::process::id()));
    std::fs::write(&etag_file, format!("{}\n", etag_of(&s.path))).unwrap();
    let Some((_, head)) = curl(&["--etag-compare", etag_file.to_str().unwrap(), &url]) else { return };
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    std::fs::remove_file(&etag_file).unwrap();
    let Some((body, head)) = curl(&["-r", "200000-", &url]) else { return };
    assert!(head.starts_with("HTTP/1.1 416") && head.contains("content-range: bytes */100000"), "{head}");
    assert_eq!(body, b"416 Range Not Satisfiable\n");
}

// ---- the C entry point ----------------------------------------------------------------------

mod c_api {
    use super::*;
    use std::ffi::{c_void, CString};
    use std::os::fd::IntoRawFd;
    use zerohttp::ffi::*;

    struct Ctx {
        path: CString,
        results: std::sync::Mutex<Vec<zh_result>>,
    }

    extern "C" fn handler(ud: *mut c_void, req: *mut zh_request) {
        // SAFETY (test): ud is the Ctx kept alive by the test until the engine is freed.
        let ctx = unsafe { &*(ud as *const Ctx) };
        let fd = std::fs::File::open(ctx.path.to_str().unwrap()).unwrap().into_raw_fd();
        let info = zh_file_info {
            struct_size: std::mem::size_of::<zh_file_info>() as u32,
            flags: 0,
            content_type: c"video/mp4".as_ptr(),
            etag: c"v1".as_ptr(),
            last_modified: 1_000_000_000,
            size: 1000,
            headers: std::ptr::null(),
            header_count: 0,
        };
        let path = unsafe { std::ffi::CStr::from_ptr(zh_request_path(req)) }.to_bytes().to_vec();
        let rc = match &path[..] {
            b"/null" => zh_respond_file(req, fd, ZH_FD_CLOSE, std::ptr::null()),
            b"/badflags" => zh_respond_file(req, fd, ZH_FD_CLOSE | 0x100, &info),
            _ => zh_respond_file(req, fd, ZH_FD_CLOSE, &info),
        };
        // A second hand-back is refused and takes nothing.
        let again = zh_respond_file(req, -1, 0, std::ptr::null());
        ctx.results.lock().unwrap().push(rc);
        ctx.results.lock().unwrap().push(again);
    }

    #[test]
    fn zh_respond_file_end_to_end() {
        let data = content(SIZE);
        let path = temp_file("capi", &data);
        let ctx = Arc::new(Ctx { path: CString::new(path.to_str().unwrap()).unwrap(), results: Default::default() });
        let mut engine: *mut zh_engine = std::ptr::null_mut();
        assert_eq!(zh_engine_new(std::ptr::null(), Some(handler), Arc::as_ptr(&ctx) as *mut c_void, &mut engine), ZH_OK);
        let mut port = 0u16;
        assert_eq!(zh_engine_listen(engine, c"127.0.0.1:0".as_ptr(), &mut port), ZH_OK);
        assert_eq!(zh_engine_start(engine), ZH_OK);

        // Caller-supplied size, ETag, Last-Modified and type.
        let r = get(port, &[]);
        assert_eq!((r.status, r.body.len()), (200, 1000));
        assert_eq!(r.header("etag"), Some("\"v1\""));
        assert_eq!(r.header("last-modified"), Some("Sun, 09 Sep 2001 01:46:40 GMT"));
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        let r = get(port, &[("Range", "bytes=-10")]);
        assert_eq!((r.status, r.header("content-range")), (206, Some("bytes 990-999/1000")));
        assert_eq!(r.body, data[990..1000]);
        let r = get(port, &[("Range", "bytes=0-0,998-"), ("If-Range", "\"v1\"")]);
        assert_eq!(parse_multipart(&r).iter().map(|p| p.2.clone()).collect::<Vec<_>>(), vec![data[0..1].to_vec(), data[998..1000].to_vec()]);
        assert_eq!(get(port, &[("If-None-Match", "\"v1\"")]).status, 304);
        // NULL info: everything from fstat.
        let r = common::get(port, "/null");
        assert_eq!((r.status, r.body.len(), r.header("etag")), (200, SIZE, Some(etag_of(&path).as_str())));
        // Bad flags: the request is answered 500, the fd taken.
        assert_eq!(common::get(port, "/badflags").status, 500);

        let results = ctx.results.lock().unwrap().clone();
        let (firsts, seconds): (Vec<_>, Vec<_>) = results.chunks(2).map(|c| (c[0], c[1])).unzip();
        assert_eq!(firsts, [ZH_OK, ZH_OK, ZH_OK, ZH_OK, ZH_OK, ZH_ERR_INVALID]);
        assert!(seconds.iter().all(|&r| r == ZH_ERR_ALREADY_USED));
        assert_eq!(zh_respond_file(std::ptr::null_mut(), 0, 0, std::ptr::null()), ZH_ERR_NULL);
        assert_eq!(zh_engine_shutdown(engine, 1000), ZH_OK);
        zh_engine_free(engine);
        std::fs::remove_file(&path).unwrap();
    }
}

// ---- Python's standard library as a second client ---------------------------------------------

/// `http.client` fetches a multipart/byteranges response and `email`'s MIME parser (RFC 2046)
/// splits it; the parts must equal the file's bytes.
#[test]
fn python_mime_parser_agrees() {
    let s = site("python");
    let script = r#"
import http.client, email, sys, hashlib
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/f", headers={"Range": "bytes=0-99,50000-50099,-10"})
r = c.getresponse()
body = r.read()
assert r.status == 206, r.status
msg = email.message_from_bytes(b"Content-Type: " + r.getheader("Content-Type").encode() + b"\r\n\r\n" + body)
assert msg.is_multipart()
for p in msg.get_payload():
    print(p["Content-Range"], hashlib.sha256(p.get_payload(decode=True)).hexdigest())
c.request("GET", "/f", headers={"Range": "bytes=10-19"})
r = c.getresponse()
print(r.status, r.getheader("Content-Range"), hashlib.sha256(r.read()).hexdigest())
"#;
    let out = match std::process::Command::new("python3").arg("-c").arg(script).arg(s.port.to_string()).output() {
        Ok(o) => o,
        Err(_) => return, // no python3: nothing to compare with
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sha = |b: &[u8]| -> String {
        let o = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(b)?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
    };
    let want = format!(
        "bytes 0-99/100000 {}\nbytes 50000-50099/100000 {}\nbytes 99990-99999/100000 {}\n206 bytes 10-19/100000 {}\n",
        sha(&s.data[0..100]),
        sha(&s.data[50_000..50_100]),
        sha(&s.data[99_990..]),
        sha(&s.data[10..20])
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}
