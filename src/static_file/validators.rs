//! A file's default validator header values, formatted once per opened file.
//!
//! The generated `ETag` (inode, size, mtime) and `Last-Modified` (mtime) of a file only change
//! when its metadata does, so the open-file cache formats them when it opens the file and keeps
//! them with the entry: a cache hit then costs two reference-count increments instead of ~750
//! instructions of hex and date formatting and two allocations per response. The entry is
//! replaced (and these formatted again) whenever a revalidation sees another device, inode,
//! size or mtime, so a changed file never goes out with stale validators.
#![forbid(unsafe_code)]

use http::HeaderValue;

use super::{etag, FileMeta};
use crate::h1::format_http_date;

/// The strong generated `ETag` and the `Last-Modified` of one version of a file, and the
/// metadata they were made from (a request planned against other metadata — a caller's `size`
/// override, say — formats its own).
#[derive(Clone, Debug)]
pub struct Validators {
    inode: u64,
    size: u64,
    mtime_secs: i64,
    mtime_nanos: u32,
    etag: HeaderValue,
    /// `None` for an mtime before the epoch (no `Last-Modified` is sent then).
    last_modified: Option<HeaderValue>,
}

impl Validators {
    /// Formats the validators of `meta`.
    pub fn of(meta: &FileMeta) -> Validators {
        Validators {
            inode: meta.inode,
            size: meta.size,
            mtime_secs: meta.mtime_secs,
            mtime_nanos: meta.mtime_nanos,
            etag: generated_etag(meta, false),
            last_modified: (meta.mtime_secs >= 0).then(|| http_date(meta.mtime_secs)),
        }
    }

    /// The ETag and the Last-Modified (of the mtime), moved out, if these were made from
    /// `meta` (the device is part of neither value).
    pub(super) fn take_for(self, meta: &FileMeta) -> Option<(HeaderValue, Option<HeaderValue>)> {
        let same = (self.inode, self.size, self.mtime_secs, self.mtime_nanos) == (meta.inode, meta.size, meta.mtime_secs, meta.mtime_nanos);
        same.then_some((self.etag, self.last_modified))
    }
}

/// The generated entity-tag of `meta` as a header value.
pub(super) fn generated_etag(meta: &FileMeta, weak: bool) -> HeaderValue {
    let mut buf = [0u8; etag::GENERATED_MAX];
    let n = etag::generate_into(&mut buf, meta.inode, meta.size, meta.mtime_secs, meta.mtime_nanos, weak);
    HeaderValue::from_bytes(&buf[..n]).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// An IMF-fixdate header value; `secs` must not be negative.
pub(super) fn http_date(secs: i64) -> HeaderValue {
    HeaderValue::from_bytes(&format_http_date(secs as u64)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
impl Validators {
    /// The ETag bytes, if these describe `meta`.
    pub(crate) fn take_for_test(self, meta: &FileMeta) -> Option<Vec<u8>> {
        self.take_for(meta).map(|(etag, _)| etag.as_bytes().to_vec())
    }
}
