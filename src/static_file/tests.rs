//! The planner, rule by rule (RFC 9110 §13, §14), without sockets.

use super::*;
use crate::h1::{parse_request_head, Limits};

const SIZE: u64 = 10_000;
const MTIME: i64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT
const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
const AFTER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

fn meta() -> FileMeta {
    FileMeta { size: SIZE, mtime_secs: MTIME, mtime_nanos: 123, inode: 42, dev: 1 }
}

fn etag() -> String {
    etag::generate(42, SIZE, MTIME, 123, false)
}

fn head(method: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut raw = format!("{method} /f HTTP/1.1\r\nHost: x\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    parse_request_head(raw.as_bytes(), &Limits::default()).unwrap().unwrap().0
}

fn ctx() -> PlanContext {
    PlanContext { now: 1_750_000_000, boundary: "BOUNDARY".into() }
}

fn info() -> FileInfo {
    let mut i = FileInfo::default();
    i.set_content_type(b"text/plain").unwrap();
    i
}

fn plan(method: &str, headers: &[(&str, &str)]) -> FilePlan {
    plan_with(&head(method, headers), &meta(), &info(), &ctx())
}

fn get(headers: &[(&str, &str)]) -> FilePlan {
    plan("GET", headers)
}

fn hdr<'a>(p: &'a FilePlan, name: &str) -> Option<&'a str> {
    p.headers().iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, v)| v.to_str().unwrap())
}

fn names(p: &FilePlan) -> Vec<&str> {
    p.headers().iter().map(|(n, _)| n.as_str()).collect()
}

fn whole() -> Vec<BodyPart> {
    vec![BodyPart::File { offset: 0, len: SIZE }]
}

#[test]
fn plain_get_is_200_with_validators() {
    let p = get(&[]);
    assert_eq!(p.status, 200);
    // One part: held inline, no list allocated.
    assert_eq!(p.body, PlanBody::One(whole()[0].clone()));
    assert_eq!(names(&p), ["content-type", "accept-ranges", "etag", "last-modified"]);
    assert_eq!(hdr(&p, "etag"), Some(etag().as_str()));
    assert_eq!(hdr(&p, "last-modified"), Some(LM));
    assert_eq!(hdr(&p, "accept-ranges"), Some("bytes"));
}

#[test]
fn head_plans_the_same_as_get() {
    assert_eq!(plan("HEAD", &[]), get(&[]));
    assert_eq!(plan("HEAD", &[("Range", "bytes=0-9")]), get(&[("Range", "bytes=0-9")]));
}

#[test]
fn empty_file_is_200_without_body_parts() {
    let m = FileMeta { size: 0, ..meta() };
    let p = plan_with(&head("GET", &[]), &m, &info(), &ctx());
    assert_eq!((p.status, p.body_len(), &p.body), (200, 0, &PlanBody::Empty));
}

#[test]
fn single_ranges_of_each_form() {
    for (spec, start, end) in [("bytes=0-499", 0, 499), ("bytes=9500-", 9500, 9999), ("bytes=-500", 9500, 9999), ("bytes=9990-20000", 9990, 9999)] {
        let p = get(&[("Range", spec)]);
        assert_eq!(p.status, 206, "{spec}");
        assert_eq!(p.body, PlanBody::One(BodyPart::File { offset: start, len: end - start + 1 }));
        assert_eq!(hdr(&p, "content-range"), Some(format!("bytes {start}-{end}/{SIZE}").as_str()));
        assert_eq!(hdr(&p, "content-type"), Some("text/plain"));
        assert_eq!(hdr(&p, "etag"), Some(etag().as_str()));
        assert_eq!(hdr(&p, "last-modified"), Some(LM));
    }
}

#[test]
fn unsatisfiable_is_416_with_star_content_range() {
    let p = get(&[("Range", "bytes=10000-")]);
    assert_eq!(p.status, 416);
    assert_eq!(names(&p), ["content-range", "content-type"]);
    assert_eq!(hdr(&p, "content-range"), Some("bytes */10000"));
    assert_eq!(hdr(&p, "content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(p.body.as_slice(), vec![BodyPart::Memory(Bytes::from_static(b"416 Range Not Satisfiable\n"))]);
    let empty = FileMeta { size: 0, ..meta() };
    let p = plan_with(&head("GET", &[("Range", "bytes=0-")]), &empty, &info(), &ctx());
    assert_eq!((p.status, hdr(&p, "content-range")), (416, Some("bytes */0")));
}

#[test]
fn invalid_foreign_or_repeated_range_is_ignored() {
    for r in ["bytes=5-1", "bytes=x", "items=0-1", "bytes=0-1,junk"] {
        let p = get(&[("Range", r)]);
        assert_eq!((p.status, p.body.as_slice()), (200, whole().as_slice()), "{r}");
    }
    let p = get(&[("Range", "bytes=0-1"), ("Range", "bytes=5-6")]);
    assert_eq!(p.status, 200);
}

#[test]
fn multipart_byteranges_body_is_a_chain_of_memory_and_file_parts() {
    let p = get(&[("Range", "bytes=0-9,5000-5009,-10")]);
    assert_eq!(p.status, 206);
    assert_eq!(hdr(&p, "content-type"), Some("multipart/byteranges; boundary=BOUNDARY"));
    assert_eq!(hdr(&p, "content-range"), None);
    let mem = |s: &str| BodyPart::Memory(Bytes::from(s.to_string()));
    assert_eq!(
        p.body,
        PlanBody::Parts(vec![
            mem("--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/10000\r\n\r\n"),
            BodyPart::File { offset: 0, len: 10 },
            mem("\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 5000-5009/10000\r\n\r\n"),
            BodyPart::File { offset: 5000, len: 10 },
            mem("\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 9990-9999/10000\r\n\r\n"),
            BodyPart::File { offset: 9990, len: 10 },
            mem("\r\n--BOUNDARY--\r\n"),
        ])
    );
    // Without a content type, parts carry Content-Range only.
    let p = plan_with(&head("GET", &[("Range", "bytes=0-0,100-100")]), &meta(), &FileInfo::default(), &ctx());
    assert_eq!(p.body.as_slice()[0], mem("--BOUNDARY\r\nContent-Range: bytes 0-0/10000\r\n\r\n"));
}

#[test]
fn overlapping_ranges_coalesce_to_a_single_part() {
    let p = get(&[("Range", "bytes=0-500,100-200,400-999")]);
    assert_eq!(p.status, 206);
    assert_eq!(hdr(&p, "content-range"), Some("bytes 0-999/10000"));
    assert_eq!(p.body.as_slice(), vec![BodyPart::File { offset: 0, len: 1000 }]);
}

#[test]
fn too_many_ranges_are_ignored() {
    let many: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 200, i * 200)).collect();
    let p = get(&[("Range", &format!("bytes={}", many.join(",")))]);
    assert_eq!((p.status, p.body.as_slice()), (200, whole().as_slice()));
}

#[test]
fn range_is_ignored_for_other_methods() {
    let p = plan("POST", &[("Range", "bytes=0-1")]);
    assert_eq!(p.status, 200);
}

#[test]
fn if_range_with_the_current_strong_etag_honours_range() {
    let p = get(&[("Range", "bytes=0-9"), ("If-Range", &etag())]);
    assert_eq!(p.status, 206);
}

#[test]
fn if_range_with_another_or_weak_etag_sends_the_whole_file() {
    let weak = format!("W/{}", etag());
    for v in ["\"other\"", weak.as_str(), "garbage"] {
        let p = get(&[("Range", "bytes=0-9"), ("If-Range", v)]);
        assert_eq!((p.status, p.body.as_slice()), (200, whole().as_slice()), "{v}");
    }
    // A weak current ETag never matches either.
    let mut i = info();
    i.etag = ETagChoice::GenerateWeak;
    let cur = etag::generate(42, SIZE, MTIME, 123, true);
    let p = plan_with(&head("GET", &[("Range", "bytes=0-9"), ("If-Range", &cur)]), &meta(), &i, &ctx());
    assert_eq!(p.status, 200);
}

#[test]
fn if_range_with_a_date_must_equal_last_modified() {
    assert_eq!(get(&[("Range", "bytes=0-9"), ("If-Range", LM)]).status, 206);
    assert_eq!(get(&[("Range", "bytes=0-9"), ("If-Range", "Tuesday, 14-Nov-23 22:13:20 GMT")]).status, 206);
    assert_eq!(get(&[("Range", "bytes=0-9"), ("If-Range", AFTER)]).status, 200);
    assert_eq!(get(&[("Range", "bytes=0-9"), ("If-Range", BEFORE)]).status, 200);
}

#[test]
fn if_range_false_also_skips_416() {
    assert_eq!(get(&[("Range", "bytes=20000-"), ("If-Range", "\"other\"")]).status, 200);
}

#[test]
fn if_none_match_weak_comparison_gives_304() {
    let weak = format!("W/{}", etag());
    for v in [etag(), weak, "*".into(), format!("\"a\", {}", etag())] {
        let p = get(&[("If-None-Match", &v)]);
        assert_eq!(p.status, 304, "{v}");
        assert_eq!(names(&p), ["etag", "last-modified"]);
        assert!(p.body.as_slice().is_empty());
    }
    assert_eq!(get(&[("If-None-Match", "\"other\"")]).status, 200);
    assert_eq!(plan("HEAD", &[("If-None-Match", &etag())]).status, 304);
}

#[test]
fn if_none_match_for_other_methods_is_412() {
    assert_eq!(plan("POST", &[("If-None-Match", "*")]).status, 412);
    assert_eq!(plan("DELETE", &[("If-None-Match", &etag())]).status, 412);
    assert_eq!(plan("POST", &[("If-None-Match", "\"x\"")]).status, 200);
}

#[test]
fn if_modified_since() {
    assert_eq!(get(&[("If-Modified-Since", LM)]).status, 304);
    assert_eq!(get(&[("If-Modified-Since", AFTER)]).status, 304);
    assert_eq!(get(&[("If-Modified-Since", BEFORE)]).status, 200);
    assert_eq!(get(&[("If-Modified-Since", "Tue Nov 14 22:13:20 2023")]).status, 304);
    // Invalid dates, two field lines, and methods other than GET/HEAD: ignored.
    assert_eq!(get(&[("If-Modified-Since", "yesterday")]).status, 200);
    assert_eq!(get(&[("If-Modified-Since", LM), ("If-Modified-Since", LM)]).status, 200);
    assert_eq!(plan("POST", &[("If-Modified-Since", LM)]).status, 200);
    assert_eq!(plan("HEAD", &[("If-Modified-Since", LM)]).status, 304);
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    // A non-matching If-None-Match means If-Modified-Since is not evaluated (RFC 9110 §13.1.3).
    assert_eq!(get(&[("If-None-Match", "\"other\""), ("If-Modified-Since", LM)]).status, 200);
    assert_eq!(get(&[("If-None-Match", &etag()), ("If-Modified-Since", BEFORE)]).status, 304);
}

#[test]
fn if_match_strong_comparison_or_412() {
    assert_eq!(get(&[("If-Match", &etag())]).status, 200);
    assert_eq!(get(&[("If-Match", "*")]).status, 200);
    assert_eq!(get(&[("If-Match", &format!("\"x\", {}", etag()))]).status, 200);
    let p = get(&[("If-Match", "\"other\"")]);
    assert_eq!(p.status, 412);
    assert_eq!(names(&p), ["content-type"]);
    assert_eq!(p.body.as_slice(), vec![BodyPart::Memory(Bytes::from_static(b"412 Precondition Failed\n"))]);
    assert_eq!(get(&[("If-Match", &format!("W/{}", etag()))]).status, 412);
    // Without an ETag only `*` matches.
    let mut i = info();
    i.etag = ETagChoice::None;
    assert_eq!(plan_with(&head("GET", &[("If-Match", "\"x\"")]), &meta(), &i, &ctx()).status, 412);
    assert_eq!(plan_with(&head("GET", &[("If-Match", "*")]), &meta(), &i, &ctx()).status, 200);
}

#[test]
fn if_unmodified_since() {
    assert_eq!(get(&[("If-Unmodified-Since", LM)]).status, 200);
    assert_eq!(get(&[("If-Unmodified-Since", AFTER)]).status, 200);
    assert_eq!(get(&[("If-Unmodified-Since", BEFORE)]).status, 412);
    assert_eq!(get(&[("If-Unmodified-Since", "junk")]).status, 200);
    // If-Match present: If-Unmodified-Since is not evaluated.
    assert_eq!(get(&[("If-Match", &etag()), ("If-Unmodified-Since", BEFORE)]).status, 200);
}

#[test]
fn preconditions_come_before_ranges() {
    assert_eq!(get(&[("If-Match", "\"no\""), ("Range", "bytes=0-1")]).status, 412);
    assert_eq!(get(&[("If-None-Match", &etag()), ("Range", "bytes=0-1")]).status, 304);
    assert_eq!(get(&[("If-None-Match", &etag()), ("Range", "bytes=20000-")]).status, 304);
    assert_eq!(get(&[("If-Match", &etag()), ("Range", "bytes=0-1")]).status, 206);
}

#[test]
fn date_conditions_are_ignored_without_last_modified() {
    let mut i = info();
    i.no_last_modified = true;
    let p = plan_with(&head("GET", &[("If-Modified-Since", LM)]), &meta(), &i, &ctx());
    assert_eq!(p.status, 200);
    assert_eq!(hdr(&p, "last-modified"), None);
    let p = plan_with(&head("GET", &[("If-Unmodified-Since", BEFORE)]), &meta(), &i, &ctx());
    assert_eq!(p.status, 200);
    let p = plan_with(&head("GET", &[("Range", "bytes=0-1"), ("If-Range", LM)]), &meta(), &i, &ctx());
    assert_eq!(p.status, 200);
}

#[test]
fn caller_supplied_validators_and_headers() {
    let mut i = info();
    i.set_etag(b"v1", false).unwrap();
    i.last_modified = Some(0);
    i.add_header(b"Cache-Control", b"max-age=60").unwrap();
    let p = plan_with(&head("GET", &[]), &meta(), &i, &ctx());
    assert_eq!(hdr(&p, "etag"), Some("\"v1\""));
    assert_eq!(hdr(&p, "last-modified"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert_eq!(hdr(&p, "cache-control"), Some("max-age=60"));
    let p = plan_with(&head("GET", &[("If-None-Match", "\"v1\"")]), &meta(), &i, &ctx());
    assert_eq!(p.status, 304);
    assert_eq!(names(&p), ["etag", "last-modified", "cache-control"]);
    let p = plan_with(&head("GET", &[("If-Match", "\"v2\"")]), &meta(), &i, &ctx());
    assert_eq!((p.status, hdr(&p, "cache-control")), (412, None));
    let p = plan_with(&head("GET", &[("Range", "bytes=0-1,5-6,100-101")]), &meta(), &i, &ctx());
    assert_eq!((p.status, hdr(&p, "cache-control")), (206, Some("max-age=60")));
    assert!(i.add_header(b"ETag", b"\"x\"").is_err());
    assert!(i.add_header(b"Content-Length", b"1").is_err());
    assert!(i.set_etag(b"a b", false).is_err());
    // A weak caller tag is sent as given and fails If-Match / If-Range.
    i.set_etag(b"v1", true).unwrap();
    let p = plan_with(&head("GET", &[("If-Match", "W/\"v1\"")]), &meta(), &i, &ctx());
    assert_eq!((p.status, hdr(&p, "etag").map(str::to_string)), (412, None));
    let p = plan_with(&head("GET", &[("If-None-Match", "\"v1\"")]), &meta(), &i, &ctx());
    assert_eq!((p.status, hdr(&p, "etag")), (304, Some("W/\"v1\"")));
}

#[test]
fn negative_mtime_gets_no_last_modified() {
    let m = FileMeta { mtime_secs: -5, ..meta() };
    let p = plan_with(&head("GET", &[]), &m, &info(), &ctx());
    assert_eq!(hdr(&p, "last-modified"), None);
    assert!(hdr(&p, "etag").is_some());
}

#[test]
fn random_boundaries_differ_per_response() {
    let a = PlanContext::new().boundary;
    let b = PlanContext::new().boundary;
    assert_ne!(a, b);
    assert!(a.len() <= 70 && a.bytes().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn build_response_dups_owned_fds_per_region() {
    use std::os::fd::OwnedFd;
    let f: OwnedFd = std::fs::File::open("/proc/self/exe").unwrap().into();
    let p = get(&[("Range", "bytes=0-0,1000-1000,2000-2000")]);
    let len = p.body_len();
    let resp = build_response(p, FileFd::Owned(f)).unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.body_len(), len);
    let p304 = get(&[("If-None-Match", "*")]);
    let f: OwnedFd = std::fs::File::open("/proc/self/exe").unwrap().into();
    let resp = build_response(p304, FileFd::Owned(f)).unwrap();
    assert_eq!((resp.status(), resp.body_len()), (304, 0));
}

#[test]
fn cached_validators_give_the_same_plan_and_are_not_used_for_other_metadata() {
    let cases: &[&[(&str, &str)]] = &[&[], &[("If-None-Match", "\"nope\"")], &[("Range", "bytes=0-9"), ("If-Range", LM)]];
    for headers in cases {
        let h = head("GET", headers);
        let cached = plan_cached(&h, &meta(), &info(), Some(&ctx()), Some(Validators::of(&meta())));
        assert_eq!(cached, plan_with(&h, &meta(), &info(), &ctx()));
    }
    // Validators of another version of the file (or a size override) are ignored.
    for other in [FileMeta { size: SIZE + 1, ..meta() }, FileMeta { mtime_nanos: 7, ..meta() }, FileMeta { inode: 43, ..meta() }] {
        let p = plan_cached(&head("GET", &[]), &meta(), &info(), Some(&ctx()), Some(Validators::of(&other)));
        assert_eq!(p.header(&header::ETAG).unwrap().as_bytes(), etag().as_bytes());
    }
    let newer = FileMeta { mtime_secs: MTIME + 1, ..meta() };
    let p = plan_cached(&head("GET", &[]), &meta(), &info(), Some(&ctx()), Some(Validators::of(&newer)));
    assert_eq!(p.header(&header::LAST_MODIFIED).unwrap().as_bytes(), LM.as_bytes());
    // A caller's Last-Modified wins over the cached one.
    let mut i = info();
    i.last_modified = Some(MTIME - 1);
    let p = plan_cached(&head("GET", &[]), &meta(), &i, Some(&ctx()), Some(Validators::of(&meta())));
    assert_eq!(p.header(&header::LAST_MODIFIED).unwrap().as_bytes(), BEFORE.as_bytes());
}

#[test]
fn build_response_checks_caller_headers_only() {
    let fd = || FileFd::Borrowed(0);
    // The planner's own headers move in unchanged.
    let p = get(&[]);
    let want = p.headers().to_vec();
    let resp = build_response(p, fd()).unwrap();
    assert_eq!((resp.headers.as_slice(), resp.close), (want.as_slice(), false));
    // FileInfo::headers is a public field, not limited to what add_header accepts: still
    // checked like Response::add_header (framing refused, Connection noted and dropped).
    let mut i = info();
    i.headers.push((header::CONNECTION, HeaderValue::from_static("close")));
    i.headers.push((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    let resp = build_response(plan_with(&head("GET", &[]), &meta(), &i, &ctx()), fd()).unwrap();
    assert!(resp.close);
    assert!(resp.headers.iter().all(|(n, _)| n != header::CONNECTION));
    assert!(resp.headers.iter().any(|(n, _)| n == header::CACHE_CONTROL));
    for framing in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING] {
        let mut i = info();
        i.headers.push((framing, HeaderValue::from_static("1")));
        for h in [&[][..], &[("If-None-Match", "*")], &[("Range", "bytes=0-0")], &[("Range", "bytes=0-0,5-5")]] {
            let p = plan_with(&head("GET", h), &meta(), &i, &ctx());
            assert!(matches!(build_response(p, fd()), Err(Error::Header(_))), "{h:?}");
        }
    }
}

#[test]
fn formatted_values_of_any_length() {
    assert_eq!(hv(format_args!("bytes {}-{}/{}", 0, u64::MAX - 1, u64::MAX)).as_bytes(), format!("bytes 0-{}/{}", u64::MAX - 1, u64::MAX).as_bytes());
    let long = "b".repeat(200);
    assert_eq!(hv(format_args!("x={long}")).as_bytes(), format!("x={long}").as_bytes());
    let b70 = "B".repeat(70);
    let p = plan_with(&head("GET", &[("Range", "bytes=0-0,100-100")]), &meta(), &info(), &PlanContext { boundary: b70.clone(), ..ctx() });
    assert_eq!(hdr(&p, "content-type"), Some(format!("multipart/byteranges; boundary={b70}").as_str()));
}
