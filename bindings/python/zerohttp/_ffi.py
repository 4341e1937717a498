"""The C ABI of libzerohttp, one-to-one: loader, constants, structs, callback types, and
``argtypes``/``restype`` for every ``zh_*`` function in ``include/zerohttp.h``.

Nothing Pythonic lives here; see :mod:`zerohttp._core` for the API built on top.

The library is loaded lazily, on the first call of :func:`lib`, from (first match wins):

1. the environment variable ``ZEROHTTP_LIBRARY`` (or ``ZEROHTTP_LIB``): a path to the ``.so``;
2. a library bundled in this package's directory (``libzerohttp.so*``);
3. the system: ``ctypes.util.find_library("zerohttp")``, then ``libzerohttp.so.0``.

The library is opened with :class:`ctypes.CDLL`, so **every call releases the GIL** while it
runs in C (``zh_engine_shutdown`` and ``zh_engine_free`` may block waiting for worker threads,
which may need the GIL to finish a Python handler).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_ssize_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)

# ---- constants (mirrors of the header's #defines; tests/test_ffi.py checks them) -----------

ZH_LOG_ERROR = 1
ZH_LOG_WARN = 2
ZH_LOG_INFO = 3
ZH_LOG_DEBUG = 4
ZH_FILE_WEAK_ETAG = 1
ZH_FILE_NO_ETAG = 2
ZH_FILE_NO_LAST_MODIFIED = 4
ZH_FD_CLOSE = 1
ZH_FILE_AT_NO_CACHE = 1
ZH_UNLIMITED = 2**64 - 1
ZH_VERSION_MAJOR = 0
ZH_VERSION_MINOR = 1
ZH_VERSION_PATCH = 0
ZH_VERSION_NUMBER = (ZH_VERSION_MAJOR << 16) | (ZH_VERSION_MINOR << 8) | ZH_VERSION_PATCH
ZH_HTTP_1_0 = 10
ZH_HTTP_1_1 = 11
ZH_CHUNK_BYTES = 0
ZH_CHUNK_FILE = 1
ZH_CHUNK_FD = 2
ZH_POLL_READY = 0
ZH_PENDING = 1
ZH_EOF = 2
ZH_TRANSPORT_AGAIN = -1
ZH_TRANSPORT_ERROR = -2

ZH_OK = 0
ZH_ERR_NULL = 1
ZH_ERR_INVALID = 2
ZH_ERR_ALREADY_USED = 3
ZH_ERR_CLOSED = 4
ZH_ERR_IO = 5
ZH_ERR_PANIC = 6
ZH_ERR_NOT_FOUND = 7
ZH_ERR_RANGE = 8
ZH_ERR_STATE = 9
ZH_ERR_ADDR = 10
ZH_ERR_HEADER = 11
ZH_ERR_UNSUPPORTED = 12
ZH_ERR_TRUNCATED = 13
ZH_ERR_FORBIDDEN = 14
ZH_ERR_IS_DIRECTORY = 15

#: result code -> its macro name ("ZH_ERR_CLOSED"), for messages.
RESULT_NAMES = {v: k for k, v in list(globals().items()) if k.startswith(("ZH_OK", "ZH_ERR_"))}

# ---- types ---------------------------------------------------------------------------------

zh_result = c_uint32


class zh_chunk_out(Structure):
    """``struct zh_chunk_out``: filled in by a ``zh_poll_fn``."""

    _fields_ = [
        ("buf", POINTER(c_uint8)),
        ("buf_cap", c_size_t),
        ("kind", c_uint32),
        ("len", c_size_t),
        ("fd", c_int32),
        ("offset", c_uint64),
        ("fd_len", c_int64),
        ("flags", c_uint32),
        ("source", c_void_p),
    ]


class zh_stats(Structure):
    """``struct zh_stats``: engine counters (append-only; ``struct_size`` first)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("connections_accepted", c_uint64),
        ("connections_active", c_uint64),
        ("connections_closed", c_uint64),
        ("requests", c_uint64),
        ("responses", c_uint64),
        ("bytes_received", c_uint64),
        ("bytes_writev", c_uint64),
        ("bytes_sendfile", c_uint64),
        ("bytes_splice", c_uint64),
        ("bytes_copy_file_range", c_uint64),
        ("bytes_copy", c_uint64),
        ("syscalls_writev", c_uint64),
        ("syscalls_sendfile", c_uint64),
        ("syscalls_splice", c_uint64),
        ("syscalls_copy_file_range", c_uint64),
        ("syscalls_copy", c_uint64),
        ("syscalls_read", c_uint64),
        ("fallbacks", c_uint64),
        ("errors_parse", c_uint64),
        ("errors_io", c_uint64),
        ("errors_timeout", c_uint64),
        ("errors_truncated", c_uint64),
        ("errors_limit", c_uint64),
        ("body_bytes_spliced", c_uint64),
        ("body_bytes_copied", c_uint64),
        ("cold_offloads", c_uint64),
        ("syscalls_probe", c_uint64),
        ("file_opens", c_uint64),
        ("file_cache_hits", c_uint64),
        ("file_cache_revalidations", c_uint64),
    ]


class zh_file_info(Structure):
    """``struct zh_file_info``: options of ``zh_respond_file`` (``struct_size`` first)."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("content_type", c_char_p),
        ("etag", c_char_p),
        ("last_modified", c_int64),
        ("size", c_int64),
        ("headers", POINTER(c_char_p)),
        ("header_count", c_size_t),
    ]


class zh_access_record(Structure):
    """``struct zh_access_record``: one finished response, handed to a ``zh_access_fn``."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("status", c_uint16),
        ("method", c_char_p),
        ("target", c_char_p),
        ("bytes", c_uint64),
        ("duration_us", c_uint64),
        ("strategy", c_char_p),
        ("peer", c_char_p),
    ]


class zh_iovec(Structure):
    """``struct zh_iovec``: one slice of a transport's gathered write."""

    _fields_ = [("base", c_void_p), ("len", c_size_t)]


# Callback types, named after the header's typedefs. Opaque handles (zh_request *, ...) and
# userdata are c_void_p: Python sees them as int (or None for NULL).
zh_handler_fn = CFUNCTYPE(None, c_void_p, c_void_p)
zh_head_handler_fn = CFUNCTYPE(None, c_void_p, c_void_p)
zh_body_done_fn = CFUNCTYPE(None, c_void_p, c_void_p, c_uint64, c_int32)
zh_body_data_fn = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_void_p, c_size_t)
zh_release_fn = CFUNCTYPE(None, c_void_p)
zh_poll_fn = CFUNCTYPE(c_int32, c_void_p, POINTER(zh_chunk_out))
zh_drain_fn = CFUNCTYPE(None, c_void_p)
zh_log_fn = CFUNCTYPE(None, c_void_p, c_int32, c_char_p)
zh_access_fn = CFUNCTYPE(None, c_void_p, POINTER(zh_access_record))
zh_upgrade_fn = CFUNCTYPE(None, c_void_p, c_int32, c_void_p, c_size_t)
zh_transport_read_fn = CFUNCTYPE(c_ssize_t, c_void_p, c_void_p, c_size_t)
zh_transport_writev_fn = CFUNCTYPE(c_ssize_t, c_void_p, POINTER(zh_iovec), c_size_t)
zh_transport_shutdown_fn = CFUNCTYPE(None, c_void_p)
zh_transport_close_fn = CFUNCTYPE(None, c_void_p)

_p = c_void_p  # any opaque handle: zh_config *, zh_engine *, zh_request *, ...
_pp = POINTER(c_void_p)  # out-pointer for a handle

#: name -> (restype, argtypes) for every function of include/zerohttp.h, in header order.
FUNCTIONS = {
    "zh_config_new": (zh_result, [_pp]),
    "zh_config_free": (None, [_p]),
    "zh_config_set_threads": (zh_result, [_p, c_uint32]),
    "zh_config_set_limits": (zh_result, [_p, c_size_t, c_size_t, c_size_t, c_uint64]),
    "zh_config_set_timeouts": (zh_result, [_p, c_uint32, c_uint32, c_uint32]),
    "zh_config_set_max_connections": (zh_result, [_p, c_uint32]),
    "zh_config_set_body_read_timeout": (zh_result, [_p, c_uint32]),
    "zh_config_set_force_copy": (zh_result, [_p, c_bool]),
    "zh_config_set_head_handler": (zh_result, [_p, zh_head_handler_fn, c_void_p]),
    "zh_config_set_disk_threads": (zh_result, [_p, c_uint32]),
    "zh_config_set_spool": (zh_result, [_p, c_uint64, c_char_p]),
    "zh_config_set_file_cache": (zh_result, [_p, c_uint32, c_uint32]),
    "zh_config_set_small_file_read_max": (zh_result, [_p, c_size_t]),
    "zh_config_set_tcp_congestion": (zh_result, [_p, c_char_p]),
    "zh_config_set_log": (zh_result, [_p, zh_log_fn, c_void_p]),
    "zh_config_set_access_log": (zh_result, [_p, zh_access_fn, c_void_p]),
    "zh_engine_new": (zh_result, [_p, zh_handler_fn, c_void_p, _pp]),
    "zh_engine_listen": (zh_result, [_p, c_char_p, POINTER(c_uint16)]),
    "zh_engine_start": (zh_result, [_p]),
    "zh_engine_run": (zh_result, [_p]),
    "zh_engine_shutdown": (zh_result, [_p, c_uint32]),
    "zh_engine_free": (None, [_p]),
    "zh_engine_fd": (zh_result, [_p, POINTER(c_int32)]),
    "zh_engine_step": (zh_result, [_p, c_uint32]),
    "zh_engine_next_timeout_ms": (c_int64, [_p]),
    "zh_engine_wake": (zh_result, [_p]),
    "zh_engine_listen_fd": (zh_result, [_p, c_int32]),
    "zh_engine_adopt_fd": (zh_result, [_p, c_int32, c_void_p, c_size_t]),
    "zh_respond_file": (zh_result, [_p, c_int32, c_uint32, POINTER(zh_file_info)]),
    "zh_respond_file_at": (zh_result, [_p, c_int32, c_char_p, c_uint32, POINTER(zh_file_info)]),
    "zh_respond": (zh_result, [_p, _p]),
    "zh_request_reject": (zh_result, [_p, c_uint16]),
    "zh_request_method": (c_char_p, [_p]),
    "zh_request_target": (c_char_p, [_p]),
    "zh_request_path": (c_char_p, [_p]),
    "zh_request_query": (c_char_p, [_p]),
    "zh_request_version": (c_uint32, [_p]),
    "zh_request_header": (c_char_p, [_p, c_char_p]),
    "zh_request_header_count": (c_size_t, [_p]),
    "zh_request_header_at": (zh_result, [_p, c_size_t, POINTER(c_char_p), POINTER(c_char_p)]),
    "zh_request_body_length": (c_int64, [_p]),
    "zh_request_body_bytes": (zh_result, [_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "zh_request_peer_addr": (zh_result, [_p, c_char_p, c_size_t]),
    "zh_request_trailer": (c_char_p, [_p, c_char_p]),
    "zh_request_trailer_count": (c_size_t, [_p]),
    "zh_request_trailer_at": (zh_result, [_p, c_size_t, POINTER(c_char_p), POINTER(c_char_p)]),
    "zh_request_body_to_fd": (zh_result, [_p, c_int32, c_uint64, zh_body_done_fn, c_void_p]),
    "zh_request_body_fd": (zh_result, [_p, POINTER(c_int32), POINTER(c_uint64)]),
    "zh_request_body_copy_to_fd": (zh_result, [_p, c_int32, c_uint64, POINTER(c_uint64)]),
    "zh_request_body_read": (zh_result, [_p, zh_body_data_fn, zh_body_done_fn, c_void_p]),
    "zh_request_body_resume": (zh_result, [_p]),
    "zh_response_new": (zh_result, [c_uint16, _pp]),
    "zh_response_free": (None, [_p]),
    "zh_response_add_header": (zh_result, [_p, c_char_p, c_char_p]),
    "zh_response_add_bytes": (zh_result, [_p, c_void_p, c_size_t]),
    "zh_response_add_lent": (zh_result, [_p, c_void_p, c_size_t, zh_release_fn, c_void_p]),
    "zh_response_add_file": (zh_result, [_p, c_int32, c_uint64, c_int64, c_uint32]),
    "zh_response_add_fd": (zh_result, [_p, c_int32, c_int64, c_uint32]),
    "zh_response_set_upgrade": (zh_result, [_p, zh_upgrade_fn, c_void_p]),
    "zh_version": (c_char_p, []),
    "zh_result_str": (c_char_p, [zh_result]),
    "zh_response_add_callback": (zh_result, [_p, zh_poll_fn, zh_release_fn, c_void_p, c_int64]),
    "zh_source_ready": (zh_result, [_p]),
    "zh_engine_stats": (zh_result, [_p, POINTER(zh_stats)]),
    "zh_respond_stream": (zh_result, [_p, _p, _pp]),
    "zh_stream_add_bytes": (zh_result, [_p, c_void_p, c_size_t]),
    "zh_stream_add_lent": (zh_result, [_p, c_void_p, c_size_t, zh_release_fn, c_void_p]),
    "zh_stream_add_file": (zh_result, [_p, c_int32, c_uint64, c_int64, c_uint32]),
    "zh_stream_add_fd": (zh_result, [_p, c_int32, c_int64, c_uint32]),
    "zh_stream_queued": (c_uint64, [_p]),
    "zh_stream_is_closed": (c_bool, [_p]),
    "zh_stream_on_drain": (zh_result, [_p, c_uint64, zh_drain_fn, c_void_p]),
    "zh_stream_end": (zh_result, [_p, POINTER(c_char_p), POINTER(c_char_p), c_size_t]),
    "zh_stream_abort": (None, [_p]),
    "zh_engine_adopt_transport": (
        zh_result,
        [_p, zh_transport_read_fn, zh_transport_writev_fn, zh_transport_shutdown_fn, zh_transport_close_fn, c_void_p, c_char_p, _pp],
    ),
    "zh_transport_ready": (zh_result, [_p]),
}

# ---- loading -------------------------------------------------------------------------------

ENV_VARS = ("ZEROHTTP_LIBRARY", "ZEROHTTP_LIB")
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


class LibraryNotFound(ImportError):
    """No libzerohttp could be found or loaded (the message lists every place tried)."""


def candidates() -> list[tuple[str, str]]:
    """The places the loader tries, in order, as ``(how, path_or_name)`` pairs."""
    out = []
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            out.append((f"${var}", value))
    for path in sorted(glob.glob(os.path.join(_PKG_DIR, "libzerohttp.so*"))):
        out.append(("bundled", path))
    found = ctypes.util.find_library("zerohttp")
    if found:
        out.append(("find_library", found))
    out.append(("system", "libzerohttp.so.0"))
    return out


def _bind(cdll: ctypes.CDLL) -> list[str]:
    """Sets argtypes/restype on every function of FUNCTIONS; returns the names missing from
    the library (an older library than these bindings)."""
    missing = []
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    return missing


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path: str | None = None
MISSING: list[str] = []


def lib() -> ctypes.CDLL:
    """The loaded and bound library (loaded on first use; see the module docs for the order)."""
    global _lib, _lib_path, MISSING
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for how, path in candidates():
            if how.startswith("$") and not os.path.exists(path):
                # An explicit override that does not exist is an error, not a hint.
                raise LibraryNotFound(f"zerohttp: {how[1:]}={path!r} does not exist")
            try:
                cdll = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"  {how}: {path}: {e}")
                if how.startswith("$"):
                    raise LibraryNotFound(f"zerohttp: cannot load {how[1:]}={path!r}: {e}") from e
                continue
            if not hasattr(cdll, "zh_version"):
                tried.append(f"  {how}: {path}: not libzerohttp (no zh_version)")
                continue
            MISSING = _bind(cdll)
            _lib, _lib_path = cdll, path
            return cdll
        raise LibraryNotFound(
            "zerohttp: libzerohttp not found. Set ZEROHTTP_LIBRARY=/path/to/libzerohttp.so "
            "(e.g. target/release/libzerohttp.so after `cargo build --release`), put the "
            "library next to the zerohttp package, or install it system-wide. Tried:\n"
            + "\n".join(tried)
        )


def library_path() -> str:
    """The path or name the library was loaded from."""
    lib()
    assert _lib_path is not None
    return _lib_path
