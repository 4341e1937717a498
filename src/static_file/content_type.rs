//! Content-Type values that file servers send all the time, as static header values.
//!
//! A C caller passes its content type as a string on every call; copied into a `HeaderValue`
//! it cost an allocation, and handing that value to the response a second one (the first clone
//! of a copied `Bytes` moves it to a shared allocation). A value that is byte for byte one of
//! these is used as a `&'static` instead: validated here once, never copied, cloned for free.
#![forbid(unsafe_code)]

use http::HeaderValue;

/// The static header value equal to `value`, if it is a well-known one. A `match` on byte
/// strings compares lengths first, so an unknown value costs a few comparisons.
pub fn well_known(value: &[u8]) -> Option<HeaderValue> {
    let s: &'static str = match value {
        b"application/octet-stream" => "application/octet-stream",
        b"text/html; charset=utf-8" => "text/html; charset=utf-8",
        b"text/html" => "text/html",
        b"text/css; charset=utf-8" => "text/css; charset=utf-8",
        b"text/css" => "text/css",
        b"text/javascript; charset=utf-8" => "text/javascript; charset=utf-8",
        b"text/javascript" => "text/javascript",
        b"application/javascript" => "application/javascript",
        b"application/json" => "application/json",
        b"text/plain; charset=utf-8" => "text/plain; charset=utf-8",
        b"text/plain" => "text/plain",
        b"image/png" => "image/png",
        b"image/jpeg" => "image/jpeg",
        b"image/gif" => "image/gif",
        b"image/webp" => "image/webp",
        b"image/avif" => "image/avif",
        b"image/svg+xml" => "image/svg+xml",
        b"image/x-icon" => "image/x-icon",
        b"application/wasm" => "application/wasm",
        b"application/pdf" => "application/pdf",
        b"video/mp4" => "video/mp4",
        b"video/webm" => "video/webm",
        b"font/woff2" => "font/woff2",
        b"font/woff" => "font/woff",
        _ => return None,
    };
    Some(HeaderValue::from_static(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_matches_are_static() {
        assert_eq!(well_known(b"image/png").unwrap(), "image/png");
        assert_eq!(well_known(b"text/html; charset=utf-8").unwrap().as_bytes(), b"text/html; charset=utf-8");
        assert!(well_known(b"Image/PNG").is_none(), "sent as given: no case folding");
        assert!(well_known(b"image/png ").is_none());
        assert!(well_known(b"application/x-custom").is_none());
    }
}
