//! Response framing decisions (RFC 9112 §6.3, RFC 9110 §6.4.1) and head serialization.

use bytes::BytesMut;

use super::Version;
use super::syntax::fmt_u64;

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 peers only).
    Chunked,
    /// Body ends when the connection closes (HTTP/1.0 peer, unknown length): keep-alive must be off.
    CloseDelimited,
    /// Neither header; no body bytes follow.
    NoBody,
}

fn status_forbids_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Decide framing for a response to a request with the given method/version.
///
/// 1xx, 204 and 304 → `NoBody` (204/1xx must not carry Content-Length, RFC 9110 §8.6; for 304
/// the caller passes `Length` itself if it wants to echo the representation's length).
/// HEAD → the headers the GET would have had: `Length(n)` when known, `Chunked` for an
/// HTTP/1.1 peer when unknown; for an HTTP/1.0 peer an unknown-length HEAD gets `NoBody`
/// rather than `CloseDelimited`, since nothing follows the head and closing would be wasted.
/// Otherwise: `Length(n)` when known, else `Chunked` (1.1) or `CloseDelimited` (1.0).
pub fn response_framing(
    request_is_head: bool,
    request_version: Version,
    status: u16,
    body_len: Option<u64>,
) -> ResponseFraming {
    if status_forbids_body(status) {
        return ResponseFraming::NoBody;
    }
    match (body_len, request_version) {
        (Some(n), _) => ResponseFraming::Length(n),
        (None, Version::Http11) => ResponseFraming::Chunked,
        (None, Version::Http10) if request_is_head => ResponseFraming::NoBody,
        (None, Version::Http10) => ResponseFraming::CloseDelimited,
    }
}

/// Whether body bytes are written at all (false for HEAD, 1xx, 204, 304).
pub fn response_has_body(request_is_head: bool, status: u16) -> bool {
    !request_is_head && !status_forbids_body(status)
}

/// Append a response head to `out`:
/// `HTTP/1.1 {status} {reason}`, `Date` (unless `headers` has one), the caller's headers as
/// given, the framing header, the `Connection` header when it differs from the version's
/// default, and the empty line.
///
/// The caller validates `headers` (and keeps Content-Length / Transfer-Encoding /
/// Connection out of them: those come from `framing` and `keep_alive`). `status` is expected
/// in 100..=999; an unknown code gets the reason "Unknown".
pub fn write_response_head(
    out: &mut BytesMut,
    status: u16,
    headers: &[(http::HeaderName, http::HeaderValue)],
    framing: ResponseFraming,
    keep_alive: bool,
    request_version: Version,
    date: &[u8],
) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    // One pass over the headers: whether the caller sent a Date, and the size to reserve.
    let mut has_date = false;
    let mut need = 9 + 3 + 1 + reason.len() + 2 + 2;
    for (n, v) in headers {
        has_date |= n == http::header::DATE;
        need += n.as_str().len() + 2 + v.len() + 2;
    }
    if !has_date {
        need += 6 + date.len() + 2;
    }
    need += 48; // framing + Connection, worst case
    // One reservation up front: the per-request path should not grow the Vec repeatedly.
    out.reserve(need);

    let mut num = [0u8; 20];
    // The status line's fixed parts in one piece: "HTTP/1.1 " and a three-digit status (all
    // a Response can carry) formatted in place, then the space.
    match status {
        100..=999 => {
            let d = |k: u16| b'0' + (status / k % 10) as u8;
            out.extend_from_slice(&[b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'1', b' ', d(100), d(10), d(1), b' ']);
        }
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(fmt_u64(u64::from(status), &mut num));
            out.extend_from_slice(b" ");
        }
    }
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !has_date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    for (n, v) in headers {
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(fmt_u64(n, &mut num));
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        ResponseFraming::CloseDelimited | ResponseFraming::NoBody => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if request_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResponseFraming::*;
    use Version::*;
    use http::{HeaderName, HeaderValue};

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn framing_table() {
        assert_eq!(response_framing(false, Http11, 200, Some(5)), Length(5));
        assert_eq!(response_framing(false, Http11, 200, Some(0)), Length(0));
        assert_eq!(response_framing(false, Http11, 200, None), Chunked);
        assert_eq!(response_framing(false, Http10, 200, None), CloseDelimited);
        assert_eq!(response_framing(false, Http10, 200, Some(7)), Length(7));
        // HEAD: the headers GET would have
        assert_eq!(
            response_framing(true, Http11, 200, Some(1234)),
            Length(1234)
        );
        assert_eq!(response_framing(true, Http11, 200, None), Chunked);
        assert_eq!(response_framing(true, Http10, 200, None), NoBody);
        assert_eq!(response_framing(true, Http10, 200, Some(3)), Length(3));
        // bodiless statuses
        for st in [100, 101, 103, 199, 204, 304] {
            for head in [false, true] {
                for v in [Http10, Http11] {
                    assert_eq!(response_framing(head, v, st, Some(10)), NoBody, "{st}");
                    assert_eq!(response_framing(head, v, st, None), NoBody, "{st}");
                }
            }
        }
        assert_eq!(response_framing(false, Http11, 205, Some(0)), Length(0));
        assert_eq!(response_framing(false, Http11, 404, Some(9)), Length(9));
    }

    #[test]
    fn has_body() {
        assert!(response_has_body(false, 200));
        assert!(response_has_body(false, 404));
        assert!(!response_has_body(true, 200));
        assert!(!response_has_body(false, 204));
        assert!(!response_has_body(false, 304));
        assert!(!response_has_body(false, 100));
        assert!(!response_has_body(false, 101));
    }

    fn head(
        status: u16,
        headers: &[(HeaderName, HeaderValue)],
        framing: ResponseFraming,
        ka: bool,
        v: Version,
    ) -> String {
        let mut out = BytesMut::from(&b"prefix|"[..]);
        write_response_head(&mut out, status, headers, framing, ka, v, DATE);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn serialize_exact() {
        let hs = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            ),
            (
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            ),
        ];
        assert_eq!(
            head(200, &hs, Length(12), true, Http11),
            "prefix|HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             content-type: text/plain\r\nx-a: 1\r\nContent-Length: 12\r\n\r\n"
        );
        assert_eq!(
            head(404, &[], Chunked, false, Http11),
            "prefix|HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], CloseDelimited, false, Http10),
            "prefix|HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], Length(0), true, Http10),
            "prefix|HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head(204, &[], NoBody, true, Http11),
            "prefix|HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        assert_eq!(
            head(799, &[], NoBody, true, Http11),
            "prefix|HTTP/1.1 799 Unknown\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], Length(u64::MAX), true, Http11),
            "prefix|HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 18446744073709551615\r\n\r\n"
        );
    }

    #[test]
    fn status_line_digits() {
        for (st, line) in [(101, "HTTP/1.1 101 Switching Protocols\r\n"), (200, "HTTP/1.1 200 OK\r\n"), (999, "HTTP/1.1 999 Unknown\r\n"), (42, "HTTP/1.1 42 Unknown\r\n"), (1000, "HTTP/1.1 1000 Unknown\r\n")] {
            assert!(head(st, &[], NoBody, true, Http11).starts_with(&format!("prefix|{line}")), "{st}");
        }
    }

    #[test]
    fn caller_date_wins() {
        let hs = [(
            http::header::DATE,
            HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"),
        )];
        assert_eq!(
            head(500, &hs, Length(0), true, Http11),
            "prefix|HTTP/1.1 500 Internal Server Error\r\ndate: Mon, 01 Jan 2001 00:00:00 GMT\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }
}
