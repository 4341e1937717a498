//! `zh_respond_file`: one call that answers a request with a file correctly — ranges
//! (single and multipart), conditional requests, validators — with zero copies.

use std::ffi::c_char;
use std::mem::{offset_of, size_of};

use crate::engine::Response;
use crate::ffi::request::{hand_back, zh_request};
use crate::ffi::response::ZH_FD_CLOSE;
use crate::ffi::result::*;
use crate::ffi::stream::owned_or_borrowed;
use crate::ffi::cstr_bytes;
use crate::static_file::{self, ETagChoice, FileInfo, OpenFailure};

/// `zh_file_info.flags`: mark the generated ETag weak (`W/"..."`), or add `W/` to the given
/// one. Weak tags still allow `304` (If-None-Match) but never satisfy `If-Match` or `If-Range`.
pub const ZH_FILE_WEAK_ETAG: u32 = 1;
/// `zh_file_info.flags`: send no `ETag`.
pub const ZH_FILE_NO_ETAG: u32 = 2;
/// `zh_file_info.flags`: send no `Last-Modified` (date conditions are then ignored).
pub const ZH_FILE_NO_LAST_MODIFIED: u32 = 4;

/// Optional details for `zh_respond_file`. Zero-initialise it, set `struct_size =
/// sizeof(zh_file_info)`, then the fields you need; `last_modified` and `size` must be set to
/// -1 for "from fstat" (0 means the epoch / an empty file). The struct only grows at the end:
/// fields past `struct_size` take their defaults. Everything is borrowed for the duration of
/// the call only (copied).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct zh_file_info {
    pub struct_size: u32,
    /// `ZH_FILE_*` flags.
    pub flags: u32,
    /// Content-Type value (e.g. "text/html; charset=utf-8"), or NULL for none.
    pub content_type: *const c_char,
    /// ETag: a full entity-tag (`"v1"` or `W/"v1"`) or a bare opaque value (`v1`, quoted for
    /// you); NULL = a strong tag generated from inode, size and mtime.
    pub etag: *const c_char,
    /// Last-Modified as unix seconds; -1 = the file's mtime.
    pub last_modified: i64,
    /// Bytes of the file that make up the representation (from offset 0); -1 = the file's size.
    /// Larger than the file is `ZH_ERR_RANGE`.
    pub size: i64,
    /// `header_count` extra headers as name/value pairs: `headers[2*i]` is a name,
    /// `headers[2*i+1]` its value. Sent with `200`, `206` and `304` (e.g. Cache-Control, Vary),
    /// not with `412`/`416`. Headers the call writes itself (Content-Type, Content-Range,
    /// Accept-Ranges, ETag, Last-Modified, framing) are `ZH_ERR_HEADER`.
    pub headers: *const *const c_char,
    pub header_count: usize,
}

/// The fields of a caller's `zh_file_info`, defaults where `struct_size` ends early.
fn read_info(p: *const zh_file_info) -> Result<zh_file_info, zh_result> {
    let mut out = zh_file_info {
        struct_size: size_of::<zh_file_info>() as u32,
        flags: 0,
        content_type: std::ptr::null(),
        etag: std::ptr::null(),
        last_modified: -1,
        size: -1,
        headers: std::ptr::null(),
        header_count: 0,
    };
    if p.is_null() {
        return Ok(out);
    }
    // SAFETY: non-NULL; the caller promises a readable zh_file_info of at least `struct_size`
    // bytes, and struct_size is its first field, so reading it is always in bounds.
    let declared = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    if declared < offset_of!(zh_file_info, flags) + size_of::<u32>() {
        return Err(ZH_ERR_INVALID);
    }
    macro_rules! field {
        ($f:ident) => {
            if declared >= offset_of!(zh_file_info, $f) + size_of_val(&out.$f) {
                // SAFETY: the field lies entirely within the `declared` bytes the caller made
                // readable; read_unaligned copies it without creating a reference.
                out.$f = unsafe { (&raw const (*p).$f).read_unaligned() };
            }
        };
    }
    field!(flags);
    field!(content_type);
    field!(etag);
    field!(last_modified);
    field!(size);
    field!(headers);
    field!(header_count);
    Ok(out)
}

/// Converts a `zh_file_info` into the planner's `FileInfo` and the size override.
fn to_file_info(i: &zh_file_info) -> Result<(FileInfo, Option<u64>), zh_result> {
    let known = ZH_FILE_WEAK_ETAG | ZH_FILE_NO_ETAG | ZH_FILE_NO_LAST_MODIFIED;
    if i.flags & !known != 0 || i.last_modified < -1 || i.size < -1 {
        return Err(ZH_ERR_INVALID);
    }
    let weak = i.flags & ZH_FILE_WEAK_ETAG != 0;
    let mut info = FileInfo::default();
    if let Some(ct) = cstr_bytes(i.content_type) {
        info.set_content_type(ct).map_err(|e| code_of(&e))?;
    }
    if i.flags & ZH_FILE_NO_ETAG != 0 {
        info.etag = ETagChoice::None;
    } else if let Some(tag) = cstr_bytes(i.etag) {
        info.set_etag(tag, weak).map_err(|e| code_of(&e))?;
    } else if weak {
        info.etag = ETagChoice::GenerateWeak;
    }
    info.no_last_modified = i.flags & ZH_FILE_NO_LAST_MODIFIED != 0;
    if i.last_modified >= 0 {
        info.last_modified = Some(i.last_modified);
    }
    if i.header_count > 0 {
        if i.headers.is_null() || i.header_count > 1024 {
            return Err(ZH_ERR_INVALID);
        }
        // SAFETY: non-NULL, and the caller promises 2 * header_count readable pointers.
        let pairs = unsafe { std::slice::from_raw_parts(i.headers, 2 * i.header_count) };
        for pair in pairs.chunks_exact(2) {
            let (Some(n), Some(v)) = (cstr_bytes(pair[0]), cstr_bytes(pair[1])) else { return Err(ZH_ERR_INVALID) };
            info.add_header(n, v).map_err(|e| code_of(&e))?;
        }
    }
    let size = (i.size >= 0).then_some(i.size as u64);
    Ok((info, size))
}

/// Answers `req` with the regular file `fd` (from offset 0), following RFC 9110 §13 and §14:
///
/// - `200` with the whole file, `Accept-Ranges: bytes`, `ETag` (strong, from inode, size and
///   mtime, unless `opt` says otherwise), `Last-Modified`, `opt->content_type`;
/// - `Range` (GET and HEAD only; HEAD gets GET's headers and no body): one range
///   (`bytes=a-b`, `a-`, `-n`) → `206` with `Content-Range`; several → `206
///   multipart/byteranges` (random boundary; the body is a chain of small memory part headers
///   and file regions, all sent by `sendfile`); none satisfiable → `416` whose
///   `Content-Range` is `bytes *` followed by `/` and the size. Overlapping or nearly adjacent
///   ranges (< 80 bytes apart) are coalesced; more than 16 ranges, another unit, several Range
///   fields or invalid syntax → the Range is ignored (`200`): no range-amplification. `If-Range` (strong ETag comparison — weak tags
///   never match — or a date equal to Last-Modified) decides whether Range is honoured.
/// - `If-Match` (strong) / `If-Unmodified-Since` → `412`; `If-None-Match` (weak, `*`) /
///   `If-Modified-Since` (only without If-None-Match, GET/HEAD only) → `304` with ETag and
///   Last-Modified and no body (`If-None-Match` matching a non-GET/HEAD request → `412`).
///
/// `opt` may be NULL (defaults) and is only read during the call. `flags`: `ZH_FD_CLOSE` = the
/// engine owns `fd` and closes it exactly once.
///
/// Ownership: `ZH_ERR_NULL` (`req` NULL) and `ZH_ERR_ALREADY_USED` take nothing. Every other
/// result means `req` was handed back (like `zh_respond`) and, with `ZH_FD_CLOSE`, `fd` was
/// taken: on errors about the file or `opt` (`ZH_ERR_INVALID`: negative fd, not a regular file,
/// bad flags or fields; `ZH_ERR_HEADER`: bad content type, ETag or extra header; `ZH_ERR_RANGE`:
/// `size` larger than the file; `ZH_ERR_IO`: fstat failed) the request is answered with `500`
/// and the fd is closed. Without `ZH_FD_CLOSE` the caller keeps `fd` open until the response has
/// left (use `ZH_FD_CLOSE`, it is simpler). Thread-safe: call it from any thread, like
/// `zh_respond`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_respond_file(req: *mut zh_request, fd: i32, flags: u32, opt: *const zh_file_info) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cell = try_ref!(req);
        if cell.request().handed_back() {
            return ZH_ERR_ALREADY_USED;
        }
        // From here on the request is handed back on every path and the fd is taken.
        let fail = |code: zh_result| -> zh_result {
            let _ = hand_back(req, Response::plain(500));
            code
        };
        if fd < 0 {
            return fail(ZH_ERR_INVALID);
        }
        let st = crate::transfer::file_stat(fd);
        if matches!(&st, Err(e) if e.raw_os_error() == Some(libc::EBADF)) {
            return fail(ZH_ERR_IO); // not an open fd: nothing to close
        }
        let file = owned_or_borrowed(fd, flags);
        let st = match st {
            Ok(st) => st,
            Err(_) => {
                drop(file);
                return fail(ZH_ERR_IO);
            }
        };
        if flags & !ZH_FD_CLOSE != 0 {
            drop(file);
            return fail(ZH_ERR_INVALID);
        }
        let (info, size) = match read_info(opt).and_then(|i| to_file_info(&i)) {
            Ok(v) => v,
            Err(code) => {
                drop(file);
                return fail(code);
            }
        };
        let built = static_file::meta_from_stat(st, size).and_then(|meta| {
            let plan = static_file::plan_file_response(cell.request().head(), &meta, &info);
            static_file::build_response(plan, file)
        });
        match built {
            Ok(resp) => hand_back(req, resp),
            Err(e) => fail(code_of(&e)),
        }
    })
}

/// `zh_respond_file_at` flags: open the file now and keep nothing (bypass the open-file cache
/// for this call, e.g. for a file that is being written).
pub const ZH_FILE_AT_NO_CACHE: u32 = 1;

/// Answers `req` with the regular file at `path` beneath the directory `dirfd`, exactly like
/// `zh_respond_file` (ranges, conditional requests, validators, `sendfile`), with the file
/// opened and `fstat`ed through the worker's open-file cache (`zh_config_set_file_cache`): a
/// file asked for again within the validity interval costs no `open`, `fstat` or `close`.
///
/// `path` is relative to `dirfd` (leading slashes are skipped, so a decoded URL path works)
/// and is resolved without ever leaving `dirfd`: `..`, absolute symlinks and `/proc` magic
/// links that would escape are refused by the kernel (`openat2` with `RESOLVE_BENEATH`;
/// before Linux 5.6 by checking where the opened file really is). `dirfd` may be an `O_PATH`
/// directory fd and must stay open while the engine runs (cache entries are keyed by the
/// number). `flags`: `ZH_FILE_AT_NO_CACHE` or 0. `opt` as for `zh_respond_file`.
///
/// `ZH_OK`: the request was handed back. On every error it was NOT handed back and the
/// caller answers it (e.g. 404/403/301): `ZH_ERR_NOT_FOUND` (no such file),
/// `ZH_ERR_FORBIDDEN` (escapes `dirfd`, not readable, or a FIFO/device/socket),
/// `ZH_ERR_IS_DIRECTORY`, `ZH_ERR_IO` (e.g. out of descriptors), `ZH_ERR_INVALID` (bad flags
/// or `opt`, `dirfd` < 0), `ZH_ERR_HEADER`, `ZH_ERR_RANGE` (`opt->size` larger than the
/// file), `ZH_ERR_NULL` (`req` or `path` NULL), `ZH_ERR_ALREADY_USED`, and `ZH_ERR_CLOSED`
/// (the connection is gone: the request is then handed back, as with `zh_respond`).
/// Thread-safe: call it from any thread, like `zh_respond`.
#[unsafe(no_mangle)]
pub extern "C" fn zh_respond_file_at(req: *mut zh_request, dirfd: i32, path: *const c_char, flags: u32, opt: *const zh_file_info) -> zh_result {
    boundary!(ZH_ERR_PANIC, {
        let cell = try_ref!(req);
        if path.is_null() {
            return ZH_ERR_NULL;
        }
        if cell.request().handed_back() {
            return ZH_ERR_ALREADY_USED;
        }
        if dirfd < 0 || flags & !ZH_FILE_AT_NO_CACHE != 0 {
            return ZH_ERR_INVALID;
        }
        let (info, size) = match read_info(opt).and_then(|i| to_file_info(&i)) {
            Ok(v) => v,
            Err(code) => return code,
        };
        // SAFETY: non-NULL; the caller promises a NUL-terminated string readable during the call.
        let path = unsafe { std::ffi::CStr::from_ptr(path) };
        let use_cache = flags & ZH_FILE_AT_NO_CACHE == 0;
        let resp = match static_file::file_at_response(cell.request(), dirfd, path, use_cache, size, &info) {
            Ok(resp) => resp,
            Err(OpenFailure::NotFound) => return ZH_ERR_NOT_FOUND,
            Err(OpenFailure::Forbidden) => return ZH_ERR_FORBIDDEN,
            Err(OpenFailure::Directory) => return ZH_ERR_IS_DIRECTORY,
            Err(OpenFailure::Other(e)) => return code_of(&e),
        };
        hand_back(req, resp)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_struct_sizes_take_defaults() {
        let mut i = read_info(std::ptr::null()).unwrap();
        assert_eq!((i.last_modified, i.size, i.flags), (-1, -1, 0));
        i.flags = ZH_FILE_NO_ETAG;
        i.size = 5;
        i.struct_size = (offset_of!(zh_file_info, flags) + 4) as u32;
        let r = read_info(&i).unwrap();
        assert_eq!((r.flags, r.size), (ZH_FILE_NO_ETAG, -1));
        i.struct_size = 4;
        assert_eq!(read_info(&i).unwrap_err(), ZH_ERR_INVALID);
        i.struct_size = size_of::<zh_file_info>() as u32;
        assert_eq!(read_info(&i).unwrap().size, 5);
    }

    #[test]
    fn info_conversion() {
        let mut i = read_info(std::ptr::null()).unwrap();
        i.content_type = c"text/html".as_ptr();
        i.etag = c"v7".as_ptr();
        i.flags = ZH_FILE_WEAK_ETAG;
        let names = [c"Cache-Control".as_ptr(), c"no-cache".as_ptr()];
        i.headers = names.as_ptr();
        i.header_count = 1;
        let (info, size) = to_file_info(&i).unwrap();
        assert_eq!(size, None);
        assert_eq!(info.etag, ETagChoice::Given(http::HeaderValue::from_static("W/\"v7\"")));
        assert_eq!(info.headers.len(), 1);
        i.flags = 0x80;
        assert_eq!(to_file_info(&i).unwrap_err(), ZH_ERR_INVALID);
        i.flags = 0;
        i.etag = c"a b".as_ptr();
        assert_eq!(to_file_info(&i).unwrap_err(), ZH_ERR_HEADER);
        i.etag = std::ptr::null();
        let bad = [c"ETag".as_ptr(), c"\"x\"".as_ptr()];
        i.headers = bad.as_ptr();
        assert_eq!(to_file_info(&i).unwrap_err(), ZH_ERR_HEADER);
        i.headers = std::ptr::null();
        assert_eq!(to_file_info(&i).unwrap_err(), ZH_ERR_INVALID);
        i.header_count = 0;
        i.size = -2;
        assert_eq!(to_file_info(&i).unwrap_err(), ZH_ERR_INVALID);
    }
}
