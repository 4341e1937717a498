//! The C ABI: opaque handles, result codes, the panic boundary and pointer checks. No protocol
//! or I/O logic lives here: every export converts its arguments and calls one safe function.
//!
//! Conventions (see CONVENTIONS.md): fallible calls return `zh_result`; outputs go through
//! trailing out-pointers written only on success; a NULL where a pointer is required is
//! `ZH_ERR_NULL`; a panic never crosses the boundary.
#![allow(non_camel_case_types)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]

/// Runs an export's body, turning a panic into `$fallback`.
macro_rules! boundary {
    ($fallback:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $fallback,
        }
    };
}

/// `&T` from a `*const T`/`*mut T`, or return `ZH_ERR_NULL` from the enclosing function.
macro_rules! try_ref {
    ($p:expr) => {
        // SAFETY: the caller promises a non-NULL pointer came from this library's matching
        // `_new` and has not been freed (the documented contract of every export); NULL is
        // caught here.
        match unsafe { $crate::ffi::as_const($p).as_ref() } {
            Some(r) => r,
            None => return $crate::ffi::result::ZH_ERR_NULL,
        }
    };
}

/// `&mut T` from a `*mut T`, or return `ZH_ERR_NULL`.
macro_rules! try_mut {
    ($p:expr) => {
        // SAFETY: as for try_ref; handles documented as not thread-safe are used by one
        // thread at a time, so no other reference to the object exists during the call.
        match unsafe { $p.as_mut() } {
            Some(r) => r,
            None => return $crate::ffi::result::ZH_ERR_NULL,
        }
    };
}

pub mod config;
pub mod engine;
pub mod file;
pub mod request;
pub mod response;
pub mod result;
pub mod source;
pub mod stats;
pub mod stream;
pub mod transport;

pub use config::*;
pub use engine::*;
pub use file::*;
pub use request::*;
pub use response::*;
pub use result::*;
pub use source::*;
pub use stats::*;
pub use stream::*;
pub use transport::*;

/// Lets `try_ref!` take both `*const T` and `*mut T`.
#[inline]
pub(crate) fn as_const<T>(p: *const T) -> *const T {
    p
}

/// Writes `value` through an out-pointer (checked non-NULL by the caller).
pub(crate) use result::result_of;

pub(crate) fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: every caller checks `out` for NULL first; the C caller promises it points to
    // writable memory for a T.
    unsafe { out.write(value) }
}

/// Reads a NUL-terminated C string as bytes, or `None` for NULL.
pub(crate) fn cstr_bytes<'a>(p: *const std::ffi::c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string alive for the call.
    Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
}
