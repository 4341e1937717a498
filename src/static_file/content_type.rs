//! Content-Type values that file servers send all the time, as static header values.
//!
//! A C caller passes its content type as a string on every call; copied into a `HeaderValue`
//! it cost an allocation, and handing that value to the response a second one (the first clone
//! of a copied `Bytes` moves it to a shared allocation). A value that is byte for byte one of
//! these is used as a `&'static` instead: never copied, cloned for free. They are `const`s:
//! `HeaderValue::from_static` checks its bytes when it runs, so at compile time it costs nothing.
#![forbid(unsafe_code)]

use http::HeaderValue;

const APPLICATION_OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const TEXT_HTML_CHARSET_UTF_8: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html");
const TEXT_CSS_CHARSET_UTF_8: HeaderValue = HeaderValue::from_static("text/css; charset=utf-8");
const TEXT_CSS: HeaderValue = HeaderValue::from_static("text/css");
const TEXT_JAVASCRIPT_CHARSET_UTF_8: HeaderValue = HeaderValue::from_static("text/javascript; charset=utf-8");
const TEXT_JAVASCRIPT: HeaderValue = HeaderValue::from_static("text/javascript");
const APPLICATION_JAVASCRIPT: HeaderValue = HeaderValue::from_static("application/javascript");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT_PLAIN_CHARSET_UTF_8: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
const IMAGE_PNG: HeaderValue = HeaderValue::from_static("image/png");
const IMAGE_JPEG: HeaderValue = HeaderValue::from_static("image/jpeg");
const IMAGE_GIF: HeaderValue = HeaderValue::from_static("image/gif");
const IMAGE_WEBP: HeaderValue = HeaderValue::from_static("image/webp");
const IMAGE_AVIF: HeaderValue = HeaderValue::from_static("image/avif");
const IMAGE_SVG_XML: HeaderValue = HeaderValue::from_static("image/svg+xml");
const IMAGE_X_ICON: HeaderValue = HeaderValue::from_static("image/x-icon");
const APPLICATION_WASM: HeaderValue = HeaderValue::from_static("application/wasm");
const APPLICATION_PDF: HeaderValue = HeaderValue::from_static("application/pdf");
const VIDEO_MP4: HeaderValue = HeaderValue::from_static("video/mp4");
const VIDEO_WEBM: HeaderValue = HeaderValue::from_static("video/webm");
const FONT_WOFF2: HeaderValue = HeaderValue::from_static("font/woff2");
const FONT_WOFF: HeaderValue = HeaderValue::from_static("font/woff");

/// The static header value equal to `value`, if it is a well-known one. A `match` on the bytes:
/// the compiler dispatches on the length first, so an unknown value costs a comparison or two,
/// and only the value that matched is built (a table of `HeaderValue`s would build and drop all
/// of its candidates on every call: `Bytes` has a destructor, so such a table is not promoted to
/// a static).
pub fn well_known(value: &[u8]) -> Option<HeaderValue> {
    Some(match value {
        b"text/css" => TEXT_CSS,
        b"text/html" => TEXT_HTML,
        b"image/png" => IMAGE_PNG,
        b"image/gif" => IMAGE_GIF,
        b"video/mp4" => VIDEO_MP4,
        b"font/woff" => FONT_WOFF,
        b"text/plain" => TEXT_PLAIN,
        b"image/jpeg" => IMAGE_JPEG,
        b"image/webp" => IMAGE_WEBP,
        b"image/avif" => IMAGE_AVIF,
        b"video/webm" => VIDEO_WEBM,
        b"font/woff2" => FONT_WOFF2,
        b"image/x-icon" => IMAGE_X_ICON,
        b"image/svg+xml" => IMAGE_SVG_XML,
        b"text/javascript" => TEXT_JAVASCRIPT,
        b"application/pdf" => APPLICATION_PDF,
        b"application/json" => APPLICATION_JSON,
        b"application/wasm" => APPLICATION_WASM,
        b"application/javascript" => APPLICATION_JAVASCRIPT,
        b"text/css; charset=utf-8" => TEXT_CSS_CHARSET_UTF_8,
        b"application/octet-stream" => APPLICATION_OCTET_STREAM,
        b"text/html; charset=utf-8" => TEXT_HTML_CHARSET_UTF_8,
        b"text/plain; charset=utf-8" => TEXT_PLAIN_CHARSET_UTF_8,
        b"text/javascript; charset=utf-8" => TEXT_JAVASCRIPT_CHARSET_UTF_8,
        _ => return None,
    })
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

    #[test]
    fn every_constant_is_found_by_its_own_bytes() {
        for v in [
            APPLICATION_OCTET_STREAM, TEXT_HTML_CHARSET_UTF_8, TEXT_HTML, TEXT_CSS_CHARSET_UTF_8, TEXT_CSS,
            TEXT_JAVASCRIPT_CHARSET_UTF_8, TEXT_JAVASCRIPT, APPLICATION_JAVASCRIPT, APPLICATION_JSON,
            TEXT_PLAIN_CHARSET_UTF_8, TEXT_PLAIN, IMAGE_PNG, IMAGE_JPEG, IMAGE_GIF, IMAGE_WEBP, IMAGE_AVIF,
            IMAGE_SVG_XML, IMAGE_X_ICON, APPLICATION_WASM, APPLICATION_PDF, VIDEO_MP4, VIDEO_WEBM, FONT_WOFF2,
            FONT_WOFF,
        ] {
            let found = well_known(v.as_bytes()).unwrap_or_else(|| panic!("{v:?} not found"));
            assert_eq!(found, v);
            let mut longer = v.as_bytes().to_vec();
            longer.push(b'x');
            assert!(well_known(&longer).is_none(), "{v:?} with a byte more");
        }
    }
}
