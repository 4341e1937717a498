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

/// The static header value equal to `value`, if it is a well-known one: the candidates of its
/// length only, so an unknown value costs a comparison or two.
pub fn well_known(value: &[u8]) -> Option<HeaderValue> {
    let candidates: &[HeaderValue] = match value.len() {
        8 => &[TEXT_CSS],
        9 => &[TEXT_HTML, IMAGE_PNG, IMAGE_GIF, VIDEO_MP4, FONT_WOFF],
        10 => &[TEXT_PLAIN, IMAGE_JPEG, IMAGE_WEBP, IMAGE_AVIF, VIDEO_WEBM, FONT_WOFF2],
        12 => &[IMAGE_X_ICON],
        13 => &[IMAGE_SVG_XML],
        15 => &[TEXT_JAVASCRIPT, APPLICATION_PDF],
        16 => &[APPLICATION_JSON, APPLICATION_WASM],
        22 => &[APPLICATION_JAVASCRIPT],
        23 => &[TEXT_CSS_CHARSET_UTF_8],
        24 => &[APPLICATION_OCTET_STREAM, TEXT_HTML_CHARSET_UTF_8],
        25 => &[TEXT_PLAIN_CHARSET_UTF_8],
        30 => &[TEXT_JAVASCRIPT_CHARSET_UTF_8],
        _ => return None,
    };
    candidates.iter().find(|c| c.as_bytes() == value).cloned()
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
