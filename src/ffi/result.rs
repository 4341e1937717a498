//! Result codes (stable numbers; a retired number stays reserved), version, descriptions.

use std::ffi::c_char;

use crate::error::Error;

/// Result of a fallible call: `ZH_OK` (0) or one of the `ZH_ERR_*` codes. Read it as an
/// integer; new codes may be added.
pub type zh_result = u32;

/// Success.
pub const ZH_OK: zh_result = 0;
/// A required pointer argument was NULL.
pub const ZH_ERR_NULL: zh_result = 1;
/// An argument is outside what the call accepts.
pub const ZH_ERR_INVALID: zh_result = 2;
/// The request was already handed back (responded to or rejected).
pub const ZH_ERR_ALREADY_USED: zh_result = 3;
/// The connection or engine is gone; everything passed in was still released.
pub const ZH_ERR_CLOSED: zh_result = 4;
/// An operating-system call failed.
pub const ZH_ERR_IO: zh_result = 5;
/// An internal panic was caught at the API boundary.
pub const ZH_ERR_PANIC: zh_result = 6;
/// No such header or item.
pub const ZH_ERR_NOT_FOUND: zh_result = 7;
/// Index, buffer size or file region out of range.
pub const ZH_ERR_RANGE: zh_result = 8;
/// Not allowed in the engine's current state.
pub const ZH_ERR_STATE: zh_result = 9;
/// The address could not be parsed or resolved.
pub const ZH_ERR_ADDR: zh_result = 10;
/// Header name or value invalid, or reserved for the engine.
pub const ZH_ERR_HEADER: zh_result = 11;
/// Not supported (yet).
pub const ZH_ERR_UNSUPPORTED: zh_result = 12;
/// A file turned out shorter than the region promised.
pub const ZH_ERR_TRUNCATED: zh_result = 13;
/// Not allowed: the path leads out of its directory, is not readable, or is not a regular file.
pub const ZH_ERR_FORBIDDEN: zh_result = 14;
/// The path names a directory.
pub const ZH_ERR_IS_DIRECTORY: zh_result = 15;

/// ABI major version: the soname is `libzerohttp.so.<ZH_VERSION_MAJOR>`.
pub const ZH_VERSION_MAJOR: u32 = 0;
pub const ZH_VERSION_MINOR: u32 = 1;
pub const ZH_VERSION_PATCH: u32 = 0;
/// The version as one comparable number: `(MAJOR << 16) | (MINOR << 8) | PATCH`.
pub const ZH_VERSION_NUMBER: u32 = (ZH_VERSION_MAJOR << 16) | (ZH_VERSION_MINOR << 8) | ZH_VERSION_PATCH;

/// HTTP/1.0, as returned by `zh_request_version`.
pub const ZH_HTTP_1_0: u32 = 10;
/// HTTP/1.1, as returned by `zh_request_version`.
pub const ZH_HTTP_1_1: u32 = 11;

pub(crate) fn code_of(e: &Error) -> zh_result {
    match e {
        Error::Invalid(_) => ZH_ERR_INVALID,
        Error::AlreadyUsed => ZH_ERR_ALREADY_USED,
        Error::Closed => ZH_ERR_CLOSED,
        Error::Io(_) => ZH_ERR_IO,
        Error::Range(_) => ZH_ERR_RANGE,
        Error::State(_) => ZH_ERR_STATE,
        Error::Addr(_) => ZH_ERR_ADDR,
        Error::Header(_) => ZH_ERR_HEADER,
        Error::Unsupported(_) => ZH_ERR_UNSUPPORTED,
    }
}

pub(crate) fn result_of(r: Result<(), Error>) -> zh_result {
    match r {
        Ok(()) => ZH_OK,
        Err(e) => code_of(&e),
    }
}

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a static NUL-terminated string, e.g. "0.1.0". Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

fn describe(code: zh_result) -> &'static str {
    match code {
        ZH_OK => "ok\0",
        ZH_ERR_NULL => "a required pointer argument was NULL\0",
        ZH_ERR_INVALID => "invalid argument\0",
        ZH_ERR_ALREADY_USED => "the request was already handed back\0",
        ZH_ERR_CLOSED => "the connection or engine is closed\0",
        ZH_ERR_IO => "an operating-system call failed\0",
        ZH_ERR_PANIC => "internal panic caught at the API boundary\0",
        ZH_ERR_NOT_FOUND => "not found\0",
        ZH_ERR_RANGE => "out of range\0",
        ZH_ERR_STATE => "not allowed in the engine's current state\0",
        ZH_ERR_ADDR => "bad address\0",
        ZH_ERR_HEADER => "invalid or reserved header\0",
        ZH_ERR_UNSUPPORTED => "not supported\0",
        ZH_ERR_TRUNCATED => "file shorter than the region promised\0",
        ZH_ERR_FORBIDDEN => "forbidden: outside the directory, not readable or not a regular file\0",
        ZH_ERR_IS_DIRECTORY => "is a directory\0",
        _ => "unknown result code\0",
    }
}

/// A static NUL-terminated description of `code` (also of unknown codes). Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn zh_result_str(code: zh_result) -> *const c_char {
    describe(code).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_packs_the_parts() {
        assert_eq!(ZH_VERSION_NUMBER >> 16, ZH_VERSION_MAJOR);
        assert_eq!((ZH_VERSION_NUMBER >> 8) & 0xff, ZH_VERSION_MINOR);
        assert_eq!(ZH_VERSION_NUMBER & 0xff, ZH_VERSION_PATCH);
    }

    #[test]
    fn version_constants_match_the_crate() {
        assert_eq!(ZH_VERSION_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
        assert_eq!(ZH_VERSION_MINOR.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
        assert_eq!(ZH_VERSION_PATCH.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
    }

    #[test]
    fn every_code_has_its_own_text() {
        let mut seen = std::collections::HashSet::new();
        for code in ZH_OK..=ZH_ERR_IS_DIRECTORY {
            let s = describe(code);
            assert!(s.ends_with('\0'));
            assert!(seen.insert(s), "duplicate text for {code}");
        }
        assert_eq!(describe(999), "unknown result code\0");
    }
}
