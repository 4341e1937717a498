"""The Pythonic API: :class:`Engine`, :class:`Request`, :class:`Response`, :class:`Stream`.

Threads and the GIL
-------------------
The engine's worker threads are native threads that run **without the GIL**: parsing, sending
files by ``sendfile``, splicing request bodies into files, timers — none of it touches Python.
A worker takes the GIL only to call Python code: handlers, head handlers, body-done, drain and
poll callbacks, and release callbacks of lent memory (ctypes ``CFUNCTYPE`` callbacks acquire it
on entry and release it on return). Every call *into* the library releases the GIL
(:class:`ctypes.CDLL`). So Python handlers on several workers run one at a time, while bytes
already handed to the engine keep flowing. Handlers must not block: answer later from another
thread instead (every ``respond*`` method and every :class:`Stream` method is thread-safe).

Callbacks never let an exception cross into C: an exception in a handler is logged on the
``zerohttp`` logger and the request is answered 500 (if it was not answered yet); an exception
in any other callback is logged and handled as documented there.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import mimetypes
import os
import signal
import socket
import sys
import threading
import weakref
import atexit
from ctypes import byref, c_char_p, c_size_t, c_uint16, c_void_p
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

from . import _ffi
from ._ffi import (
    ZH_ERR_ALREADY_USED,
    ZH_ERR_CLOSED,
    ZH_ERR_STATE,
    ZH_FD_CLOSE,
    ZH_HTTP_1_0,
    ZH_HTTP_1_1,
    ZH_UNLIMITED,
)

log = logging.getLogger("zerohttp")

Headers = Union[Mapping[str, str], Sequence[tuple[str, str]], None]
FileLike = Union[str, "os.PathLike[str]", int, Any]

#: Bodies at least this large are lent to the engine (zero-copy, ``zh_*_add_lent``) instead
#: of copied; the bytes object is kept alive until the engine releases it.
LEND_THRESHOLD = 64 * 1024

#: Returned by a :meth:`Response.add_callback` producer: nothing yet, call ``source.ready()``.
PENDING = object()


# ---- errors --------------------------------------------------------------------------------


class ZhError(Exception):
    """A ``zh_result`` other than ``ZH_OK``: ``code`` is the number, ``message`` the library's
    ``zh_result_str(code)``, ``name`` the macro name (``"ZH_ERR_CLOSED"``), ``call`` the C
    function (or Python operation) that failed, ``detail`` what the binding knows beyond the
    code (for misuse it detects itself, e.g. answering a request twice)."""

    def __init__(self, code: int, message: str | None = None, call: str | None = None, detail: str | None = None):
        self.code = int(code)
        if message is None:
            message = result_str(self.code)
        self.message = message
        self.call = call
        self.detail = detail
        self.name = _ffi.RESULT_NAMES.get(self.code, f"zh_result {self.code}")
        where = f"{call}: " if call else ""
        more = f": {detail}" if detail else ""
        super().__init__(self.code, f"{where}{message} ({self.name}){more}")

    def __str__(self) -> str:
        return self.args[1]


class ClosedError(ZhError):
    """``ZH_ERR_CLOSED``: the peer (or the engine) is gone; what was passed in was freed."""


def result_str(code: int) -> str:
    """``zh_result_str(code)`` as a str."""
    return _ffi.lib().zh_result_str(code).decode("utf-8", "replace")


def _check(code: int, call: str) -> None:
    if code != 0:
        raise (ClosedError if code == ZH_ERR_CLOSED else ZhError)(code, None, call)


def version() -> str:
    """The library's version string, ``zh_version()``."""
    return _ffi.lib().zh_version().decode()


# ---- handles: userdata for C is an integer key into this table -----------------------------
#
# C gets a small integer as `void *userdata`, never a Python object address: a late or
# duplicate call with a key that was already dropped finds nothing and does nothing.


class _Handles:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = itertools.count(1)
        self._items: dict[int, Any] = {}

    def add(self, obj: Any) -> int:
        with self._lock:
            key = next(self._next)
            self._items[key] = obj
            return key

    def get(self, key: int | None) -> Any:
        return self._items.get(key) if key else None

    def pop(self, key: int | None) -> Any:
        if not key:
            return None
        with self._lock:
            return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


_handles = _Handles()
_tls = threading.local()


def _in_callback() -> bool:
    return getattr(_tls, "depth", 0) > 0


def _on_foreign_thread() -> bool:
    """True on a thread that Python's threading did not start: an engine's worker thread
    (between callbacks, e.g. while a handler's frame is being torn down)."""
    return isinstance(threading.current_thread(), threading._DummyThread)  # noqa: SLF001


class _SigintAfterStep:
    """While an external-loop step runs on the main thread, Ctrl-C is held back and raised as
    ``KeyboardInterrupt`` once the step has returned. Raised where Python checks for it — at
    the first line of a handler the step calls — it would be taken for the handler's own
    error (answered 500 and logged, and the loop goes on) or escape the callback before its
    ``try`` (ctypes prints "Exception ignored" and the request is never answered). Only
    Python's own SIGINT handler is replaced, and only on the main thread; inside an armed
    scope (``run()`` arms one for its whole loop) a nested one does nothing."""

    def __init__(self) -> None:
        self.armed = False
        self.hit = False

    def _note(self, signum: int, frame: Any) -> None:
        self.hit = True

    def __enter__(self) -> "_SigintAfterStep":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._note)
            self.armed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.armed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if self.hit and exc[0] is None:
                raise KeyboardInterrupt


class _CallbackScope:
    def __enter__(self) -> None:
        _tls.depth = getattr(_tls, "depth", 0) + 1

    def __exit__(self, *exc: Any) -> None:
        _tls.depth -= 1


# ---- the trampolines: one per callback type, alive for the life of the process -------------


def _engine_of(ud: int | None) -> "Engine | None":
    ref = _handles.get(ud)
    return ref() if ref is not None else None


def _reject_raw(req_ptr: int, status: int) -> None:
    try:
        _ffi.lib().zh_request_reject(req_ptr, status)
    except BaseException:  # noqa: BLE001 - nothing may cross into C
        pass


def _handler_entry(ud: int | None, req_ptr: int | None) -> None:
    request = None
    try:
        with _CallbackScope():
            engine = _engine_of(ud)
            if engine is None or not req_ptr:
                if req_ptr:
                    _reject_raw(req_ptr, 503)
                return
            request = Request(engine, req_ptr)
            handler = engine.handler
            if handler is None:
                log.error("zerohttp: no handler set on %r; answering 500", engine)
                request.reject(500)
                return
            handler(request)
    except ClosedError:
        log.debug("zerohttp: peer went away while handling %r", request)
    except BaseException:  # noqa: BLE001 - never let an exception cross into C
        try:
            log.exception("zerohttp: handler raised; answering 500 to %r", request)
            if request is not None:
                request._fail(500)
            elif req_ptr:
                _reject_raw(req_ptr, 500)
        except BaseException:  # noqa: BLE001
            pass


def _head_handler_entry(ud: int | None, req_ptr: int | None) -> None:
    request = None
    try:
        with _CallbackScope():
            engine = _engine_of(ud)
            if engine is None or not req_ptr or engine.head_handler is None:
                return  # the engine buffers the body and calls the main handler
            request = Request(engine, req_ptr, head=True)
            try:
                engine.head_handler(request)
            except ClosedError:
                log.debug("zerohttp: peer went away in the head handler of %r", request)
            except BaseException:  # noqa: BLE001
                log.exception("zerohttp: head handler raised; answering 500 to %r", request)
                if not request._claimed:
                    request._fail(500)
                else:
                    request._failed_in_head = True
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: head handler trampoline failed")
        except BaseException:  # noqa: BLE001
            pass
    finally:
        if request is not None:
            request._end_head_stage()


class _BodyClaim:
    """A claimed request body (body_to_file or read_body), keyed in _handles until on_done."""

    def __init__(self, request: "Request", on_data: Any, on_done: Any, fd: int | None) -> None:
        self.request = request
        self.on_data = on_data
        self.on_done = on_done
        self.fd = fd
        self.failed = False


def _body_data_entry(ud: int | None, req_ptr: int | None, data: int | None, n: int) -> int:
    try:
        with _CallbackScope():
            claim = _handles.get(ud)
            if claim is None or claim.failed:
                return 0  # discard
            try:
                r = claim.on_data(claim.request, ctypes.string_at(data, n) if n else b"")
            except BaseException:  # noqa: BLE001
                claim.failed = True
                if not isinstance(sys.exc_info()[1], ClosedError):
                    log.exception("zerohttp: read_body on_data raised; answering 500 to %r", claim.request)
                claim.request._fail(500)
                return 0
            return _ffi.ZH_PENDING if r is PENDING else 0
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: body-data trampoline failed")
        except BaseException:  # noqa: BLE001
            pass
        return 0


def _body_done_entry(ud: int | None, req_ptr: int | None, nbytes: int, error: int) -> None:
    try:
        with _CallbackScope():
            claim = _handles.pop(ud)
            if claim is None:
                return
            request = claim.request
            if claim.fd is not None:
                try:
                    os.close(claim.fd)
                except OSError:
                    pass
            if claim.failed:
                return
            if req_ptr and request._ptr is not None and request._ptr != req_ptr:
                request._ptr = req_ptr  # the request the body belongs to (same one, by contract)
            try:
                claim.on_done(request, nbytes, error)
            except ClosedError:
                log.debug("zerohttp: peer went away in on_done for %r", request)
            except BaseException:  # noqa: BLE001
                log.exception("zerohttp: body on_done raised; answering 500 to %r", request)
                request._fail(500)
            else:
                if request._failed_in_head:
                    request._fail(500)
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: body-done trampoline failed")
        except BaseException:  # noqa: BLE001
            pass


def _release_entry(ud: int | None) -> None:
    try:
        obj = _handles.pop(ud)
        if isinstance(obj, _CallbackSource):
            obj._released()
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: release callback failed")
        except BaseException:  # noqa: BLE001
            pass


def _drain_entry(ud: int | None) -> None:
    try:
        with _CallbackScope():
            cb = _handles.get(ud)
            if cb is not None:
                cb()
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: drain callback raised")
        except BaseException:  # noqa: BLE001
            pass


def _poll_entry(ud: int | None, out_p: Any) -> int:
    try:
        with _CallbackScope():
            src = _handles.get(ud)
            if src is None:
                return -1
            return src._poll(out_p.contents)
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: body producer raised; aborting the connection")
        except BaseException:  # noqa: BLE001
            pass
        return -1


def _log_entry(ud: int | None, level: int, msg: bytes | None) -> None:
    try:
        with _CallbackScope():
            engine = _engine_of(ud)
            sink = None if engine is None else engine._log_sink
            if sink is not None:
                sink(int(level), (msg or b"").decode("utf-8", "replace"))
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: log callback raised")
        except BaseException:  # noqa: BLE001
            pass


def _record_dict(rec: Any) -> dict[str, Any]:
    """A ``zh_access_record`` as a dict, reading only the fields inside ``struct_size`` (an
    older library sends a shorter struct)."""
    size = rec.struct_size
    out: dict[str, Any] = {}
    for name, ftype in _ffi.zh_access_record._fields_:
        if name == "struct_size":
            continue
        field = getattr(_ffi.zh_access_record, name)
        if field.offset + field.size > size:
            break
        v = getattr(rec, name)
        out[name] = _dec(v) if ftype is c_char_p else v
    if "duration_us" in out:
        out["duration"] = out["duration_us"] / 1e6
    return out


def _access_entry(ud: int | None, rec_p: Any) -> None:
    try:
        with _CallbackScope():
            engine = _engine_of(ud)
            sink = None if engine is None else engine._access_sink
            if sink is not None and rec_p:
                sink(_record_dict(rec_p.contents))
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: access-log callback raised")
        except BaseException:  # noqa: BLE001
            pass


def _upgrade_entry(ud: int | None, fd: int, data: int | None, n: int) -> None:
    sock = None
    try:
        with _CallbackScope():
            cb = _handles.pop(ud)
            initial = ctypes.string_at(data, n) if (n and data) else b""
            if fd >= 0:
                try:
                    sock = socket.socket(fileno=fd)
                except BaseException:
                    os.close(fd)
                    raise
                sock.setblocking(True)  # the engine's fd was non-blocking; hand over a plain socket
            if cb is None:
                if sock is not None:
                    sock.close()
                return
            cb(sock, initial)
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: on_upgrade raised; closing the connection")
            if sock is not None:
                sock.close()
        except BaseException:  # noqa: BLE001
            pass


def _transport_read_entry(ud: int | None, buf: int | None, n: int) -> int:
    try:
        with _CallbackScope():
            t = _handles.get(ud)
            if t is None or not buf:
                return _ffi.ZH_TRANSPORT_ERROR
            return t._read(buf, n)
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: transport read raised; closing the connection")
        except BaseException:  # noqa: BLE001
            pass
        return _ffi.ZH_TRANSPORT_ERROR


def _transport_writev_entry(ud: int | None, iov: Any, count: int) -> int:
    try:
        with _CallbackScope():
            t = _handles.get(ud)
            if t is None:
                return _ffi.ZH_TRANSPORT_ERROR
            data = b"".join(ctypes.string_at(iov[i].base, iov[i].len) for i in range(count) if iov[i].len)
            return t._write(data)
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: transport write raised; closing the connection")
        except BaseException:  # noqa: BLE001
            pass
        return _ffi.ZH_TRANSPORT_ERROR


def _transport_shutdown_entry(ud: int | None) -> None:
    try:
        with _CallbackScope():
            t = _handles.get(ud)
            fn = None if t is None else getattr(t.transport, "shutdown", None)
            if fn is not None:
                fn()
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: transport shutdown raised")
        except BaseException:  # noqa: BLE001
            pass


def _transport_close_entry(ud: int | None) -> None:
    try:
        with _CallbackScope():
            t = _handles.pop(ud)
            if t is not None:
                t._closed_by_engine()
    except BaseException:  # noqa: BLE001
        try:
            log.exception("zerohttp: transport close raised")
        except BaseException:  # noqa: BLE001
            pass


_HANDLER = _ffi.zh_handler_fn(_handler_entry)
_HEAD_HANDLER = _ffi.zh_head_handler_fn(_head_handler_entry)
_BODY_DONE = _ffi.zh_body_done_fn(_body_done_entry)
_BODY_DATA = _ffi.zh_body_data_fn(_body_data_entry)
_RELEASE = _ffi.zh_release_fn(_release_entry)
_DRAIN = _ffi.zh_drain_fn(_drain_entry)
_POLL = _ffi.zh_poll_fn(_poll_entry)
_LOG = _ffi.zh_log_fn(_log_entry)
_ACCESS = _ffi.zh_access_fn(_access_entry)
_UPGRADE = _ffi.zh_upgrade_fn(_upgrade_entry)
_T_READ = _ffi.zh_transport_read_fn(_transport_read_entry)
_T_WRITEV = _ffi.zh_transport_writev_fn(_transport_writev_entry)
_T_SHUTDOWN = _ffi.zh_transport_shutdown_fn(_transport_shutdown_entry)
_T_CLOSE = _ffi.zh_transport_close_fn(_transport_close_entry)

#: ``ZH_LOG_*`` level -> :mod:`logging` level, for ``Engine(log=a_logger)``.
LOG_LEVELS = {
    _ffi.ZH_LOG_ERROR: logging.ERROR,
    _ffi.ZH_LOG_WARN: logging.WARNING,
    _ffi.ZH_LOG_INFO: logging.INFO,
    _ffi.ZH_LOG_DEBUG: logging.DEBUG,
}


# ---- helpers -------------------------------------------------------------------------------


def _enc(s: str | bytes, what: str) -> bytes:
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str or bytes, not {type(s).__name__}")
    return s.encode("latin-1")


def _dec(b: bytes | None) -> str | None:
    return None if b is None else b.decode("latin-1")


def _header_items(headers: Headers) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(memoryview(data))


def _open_fd(file: FileLike, *, write: bool = False) -> tuple[int, str | None]:
    """A new fd of our own for `file` (a path, an fd or a file object): opened, or dup'ed so
    the caller keeps theirs. Returns (fd, path or None)."""
    if isinstance(file, (str, bytes, os.PathLike)):
        flags = os.O_CLOEXEC | (os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY)
        return os.open(file, flags, 0o644), os.fsdecode(file)
    if isinstance(file, int):
        return os.dup(file), None
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError("expected a path, an fd or a file object with fileno()")
    flush = getattr(file, "flush", None)
    if flush is not None:
        flush()
    return os.dup(fileno()), getattr(file, "name", None) if isinstance(getattr(file, "name", None), str) else None


def _file_info(content_type, etag, last_modified, size, weak_etag, no_etag, no_last_modified, headers):
    """A ``zh_file_info`` and the objects that must outlive the call using it."""
    info = _ffi.zh_file_info()
    info.struct_size = ctypes.sizeof(_ffi.zh_file_info)
    info.flags = (
        (_ffi.ZH_FILE_WEAK_ETAG if weak_etag else 0)
        | (_ffi.ZH_FILE_NO_ETAG if no_etag else 0)
        | (_ffi.ZH_FILE_NO_LAST_MODIFIED if no_last_modified else 0)
    )
    info.content_type = None if content_type is None else _enc(content_type, "content_type")
    info.etag = None if etag is None else _enc(etag, "etag")
    info.last_modified = -1 if last_modified is None else int(last_modified)
    info.size = -1 if size is None else int(size)
    flat = [_enc(x if isinstance(x, (str, bytes)) else str(x), "header") for kv in _header_items(headers) for x in kv]
    arr = (c_char_p * max(len(flat), 1))(*flat)
    info.headers = ctypes.cast(arr, ctypes.POINTER(c_char_p))
    info.header_count = len(flat) // 2
    return info, (arr, flat)


def _lend(data: Any) -> tuple[int, int, Any]:
    """(address, length, keepalive) of a buffer to lend to the engine without copying."""
    if isinstance(data, bytes):
        return ctypes.cast(c_char_p(data), c_void_p).value or 0, len(data), data
    view = memoryview(data)
    if view.readonly or not view.c_contiguous:
        b = view.tobytes()
        return ctypes.cast(c_char_p(b), c_void_p).value or 0, len(b), b
    arr = (ctypes.c_char * view.nbytes).from_buffer(view)
    return ctypes.addressof(arr), view.nbytes, (view, arr)


def _check_tcp_socket(fd: int, *, listening: bool, call: str) -> Any:
    """Checks in Python what the library's check misses (it takes any socket it can ask a
    local address of, e.g. UDP or not listening): a TCP socket that listens (or does not).
    Returns its local address. ``ZhError`` ``ZH_ERR_INVALID`` otherwise; nothing is taken."""
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        raise ZhError(_ffi.ZH_ERR_INVALID, None, detail=f"not a socket: {e}", call=call) from None
    try:
        stype = probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        accepting = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        family = probe.family
        addr = probe.getsockname()
    except OSError as e:
        raise ZhError(_ffi.ZH_ERR_INVALID, None, detail=f"not a usable socket: {e}", call=call) from None
    finally:
        probe.close()
    if family not in (socket.AF_INET, socket.AF_INET6) or stype != socket.SOCK_STREAM:
        raise ZhError(_ffi.ZH_ERR_INVALID, None, detail="not a TCP socket", call=call)
    if bool(accepting) != listening:
        what = "not a listening TCP socket (call listen() first)" if listening else "a listening socket, not a connection"
        raise ZhError(_ffi.ZH_ERR_INVALID, None, detail=what, call=call)
    return addr


# ---- Engine --------------------------------------------------------------------------------

_live_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _ms(seconds: float | None, what: str) -> int:
    if seconds is None:
        return 0
    ms = int(round(seconds * 1000))
    if ms <= 0 or ms > 0xFFFFFFFF:
        raise ValueError(f"{what} must be > 0 seconds (got {seconds!r})")
    return ms


class Engine:
    """An HTTP/1.1 server engine (``zh_engine``) with its worker threads.

    ``handler(request)`` is called once per complete request (head and whole body) on a worker
    thread, holding the GIL. It answers with ``request.respond(...)`` and friends, now or
    later from any thread. Timeouts are in seconds; ``None`` keeps the library default.
    ``head_handler(request)``, if given, runs when a head that announces a body is complete,
    before the body is read: it may answer at once, claim the body with
    :meth:`Request.body_to_file`, or do nothing (the body is then buffered and ``handler``
    runs).

    Use it as a context manager, or call :meth:`close` (shutdown + free). ``close`` must not
    be called from a handler. An engine still open at interpreter exit is closed by ``atexit``.

    ``threads=0`` selects external-loop mode: the engine starts no thread; your loop watches
    :meth:`fileno` for readability (``selectors``, ``asyncio``'s ``loop.add_reader``) and calls
    :meth:`step` when it is readable or :meth:`next_timeout` has passed. Handlers then run
    inside :meth:`step`, on your loop's thread.

    ``log(level, message)`` receives the engine's log messages (``level`` is one of
    ``ZH_LOG_ERROR``..``ZH_LOG_DEBUG``; a :class:`logging.Logger` works too) and
    ``access_log(record)`` one dict per finished response (``status``, ``method``, ``target``,
    ``bytes``, ``duration_us``, ``duration``, ``strategy``, ``peer``); both per engine, both
    called on worker threads (inside :meth:`step` in external-loop mode) and must not block.

    ``file_cache=(entries, valid_seconds)`` sizes each worker's open-file cache used by
    :meth:`Request.serve_file_at` (``entries=0`` turns it off; default 256 entries trusted 1 s).

    ``small_file_read_max`` (bytes, default 4096, at most 1 MiB): a file region up to this size
    right after the response head is read (only if already in the page cache) and sent with the
    head in one ``sendmsg`` instead of by ``sendfile`` — measured cheaper for small files;
    those bytes count in ``stats()["bytes_copy"]``. ``0``: file bytes always go by ``sendfile``.

    ``tcp_congestion`` (e.g. ``"cubic"``, ``"reno"``): the TCP congestion control of every
    listener, inherited by the connections it accepts (default: the system's). Spares clients on
    the same host the per-connection pacing timers of ``bbr``. An unknown or not permitted name
    raises :class:`ZhError` (``ZH_ERR_UNSUPPORTED``) here.
    """

    def __init__(
        self,
        handler: Callable[["Request"], Any] | None = None,
        *,
        threads: int | None = None,
        max_body: int | None = None,
        max_request_line: int | None = None,
        max_header_bytes: int | None = None,
        max_headers: int | None = None,
        header_timeout: float | None = None,
        idle_timeout: float | None = None,
        send_timeout: float | None = None,
        body_timeout: float | None = None,
        max_connections: int | None = None,
        force_copy: bool = False,
        disk_threads: int | None = None,
        spool_threshold: int | None = None,
        spool_dir: str | None = None,
        file_cache: "tuple[int, float] | None" = None,
        small_file_read_max: int | None = None,
        tcp_congestion: str | None = None,
        head_handler: Callable[["Request"], Any] | None = None,
        log: "Callable[[int, str], Any] | logging.Logger | None" = None,
        access_log: Callable[[dict[str, Any]], Any] | None = None,
        shutdown_grace: float = 1.0,
    ) -> None:
        lib = _ffi.lib()
        self._ptr: int | None = None
        self._uid = _handles.add(weakref.ref(self))
        self.handler = handler
        self._head_handler = head_handler
        self._has_head_handler = head_handler is not None
        self.shutdown_grace = shutdown_grace
        self._lock = threading.Lock()
        # Calls into C with the engine's handle, counted so that close() on another thread
        # frees it only after they returned (see _use).
        self._calls = 0
        self._freeing = False
        self._calls_done = threading.Condition()
        self._stopped = threading.Event()
        self._started = False
        self.ports: list[int] = []
        self.external = threads == 0
        # External-loop mode: step() and shutdown/free never overlap (the library refuses a
        # shutdown while another thread is inside zh_engine_step).
        self._step_lock = threading.Lock()
        self._stop_requested = threading.Event()
        if isinstance(log, logging.Logger):
            logger = log
            log = lambda level, msg: logger.log(LOG_LEVELS.get(level, logging.INFO), "%s", msg)  # noqa: E731
        self._log_sink = log
        self._access_sink = access_log

        cfg = c_void_p()
        _check(lib.zh_config_new(byref(cfg)), "zh_config_new")
        try:
            if threads is not None:
                _check(lib.zh_config_set_threads(cfg, threads), "zh_config_set_threads")
            if any(v is not None for v in (max_body, max_request_line, max_header_bytes, max_headers)):
                body = ZH_UNLIMITED if max_body is None else int(max_body)
                _check(
                    lib.zh_config_set_limits(
                        cfg, max_request_line or 0, max_header_bytes or 0, max_headers or 0, body
                    ),
                    "zh_config_set_limits",
                )
            if any(v is not None for v in (header_timeout, idle_timeout, send_timeout)):
                _check(
                    lib.zh_config_set_timeouts(
                        cfg,
                        _ms(header_timeout, "header_timeout"),
                        _ms(idle_timeout, "idle_timeout"),
                        _ms(send_timeout, "send_timeout"),
                    ),
                    "zh_config_set_timeouts",
                )
            if body_timeout is not None:
                _check(
                    lib.zh_config_set_body_read_timeout(cfg, _ms(body_timeout, "body_timeout")),
                    "zh_config_set_body_read_timeout",
                )
            if max_connections is not None:
                _check(lib.zh_config_set_max_connections(cfg, max_connections), "zh_config_set_max_connections")
            if disk_threads is not None:
                _check(lib.zh_config_set_disk_threads(cfg, disk_threads), "zh_config_set_disk_threads")
            if file_cache is not None:
                entries, valid = file_cache
                _check(lib.zh_config_set_file_cache(cfg, int(entries), _ms(valid, "file_cache")), "zh_config_set_file_cache")
            if small_file_read_max is not None:
                if small_file_read_max < 0:
                    raise ValueError("small_file_read_max must not be negative")
                _check(
                    lib.zh_config_set_small_file_read_max(cfg, int(small_file_read_max)),
                    "zh_config_set_small_file_read_max",
                )
            if tcp_congestion is not None:
                _check(lib.zh_config_set_tcp_congestion(cfg, tcp_congestion.encode()), "zh_config_set_tcp_congestion")
            if spool_threshold is not None or spool_dir is not None:
                threshold = ZH_UNLIMITED if spool_threshold is None else int(spool_threshold)
                _check(
                    lib.zh_config_set_spool(cfg, threshold, None if spool_dir is None else os.fsencode(spool_dir)),
                    "zh_config_set_spool",
                )
            if force_copy:
                _check(lib.zh_config_set_force_copy(cfg, True), "zh_config_set_force_copy")
            if head_handler is not None:
                _check(lib.zh_config_set_head_handler(cfg, _HEAD_HANDLER, self._uid), "zh_config_set_head_handler")
            if log is not None:
                _check(lib.zh_config_set_log(cfg, _LOG, self._uid), "zh_config_set_log")
            if access_log is not None:
                _check(lib.zh_config_set_access_log(cfg, _ACCESS, self._uid), "zh_config_set_access_log")
            eng = c_void_p()
            _check(lib.zh_engine_new(cfg, _HANDLER, self._uid, byref(eng)), "zh_engine_new")
            self._ptr = eng.value
        except BaseException:
            _handles.pop(self._uid)
            raise
        finally:
            lib.zh_config_free(cfg)
        _live_engines.add(self)

    # -- properties

    @property
    def head_handler(self) -> Callable[["Request"], Any] | None:
        return self._head_handler

    @head_handler.setter
    def head_handler(self, fn: Callable[["Request"], Any] | None) -> None:
        if not self._has_head_handler:
            raise ZhError(ZH_ERR_STATE, None, detail="a head handler can only be replaced if one was given to Engine()", call="head_handler")
        self._head_handler = fn

    @property
    def closed(self) -> bool:
        return self._ptr is None

    @property
    def log(self) -> "Callable[[int, str], Any] | None":
        """The log sink (replaceable while running if one was given to ``Engine()``)."""
        return self._log_sink

    @log.setter
    def log(self, fn: "Callable[[int, str], Any] | None") -> None:
        self._log_sink = fn

    @property
    def access_log(self) -> Callable[[dict[str, Any]], Any] | None:
        """The access-log sink (replaceable while running if one was given to ``Engine()``)."""
        return self._access_sink

    @access_log.setter
    def access_log(self, fn: Callable[[dict[str, Any]], Any] | None) -> None:
        self._access_sink = fn

    @contextlib.contextmanager
    def _use(self) -> Iterator[int]:
        """The engine's C handle for the calls made inside the block. close() on another thread
        waits until every such block has ended before it frees the engine: a handle read and
        then used after the GIL was let go could otherwise be freed in between."""
        with self._calls_done:
            ptr = self._ptr
            if ptr is None or self._freeing:
                raise ZhError(ZH_ERR_STATE, None, detail="engine is closed", call="Engine")
            self._calls += 1
        try:
            yield ptr
        finally:
            with self._calls_done:
                self._calls -= 1
                if self._calls == 0:
                    self._calls_done.notify_all()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else ("running" if self._started else "new")
        return f"<zerohttp.Engine {state} ports={self.ports}>"

    # -- lifecycle

    def listen(self, addr: str | tuple[str, int] = "127.0.0.1:0") -> int:
        """Listens on ``addr`` (``"127.0.0.1:0"``, ``"[::1]:8080"`` or ``(host, port)``); returns
        the bound port. Allowed before or after :meth:`start`."""
        if isinstance(addr, tuple):
            host, port = addr
            addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        port = c_uint16()
        with self._use() as ptr:
            code = _ffi.lib().zh_engine_listen(ptr, addr.encode(), byref(port))
        _check(code, "zh_engine_listen")
        self.ports.append(port.value)
        return port.value

    def listen_socket(self, sock: "socket.socket | int") -> int:
        """Serves connections from an already-bound, listening TCP socket (a
        :class:`socket.socket` or an fd), e.g. one inherited from a supervisor or made with
        options the engine does not set itself (``zh_engine_listen_fd``). The engine gets a
        ``dup`` of the fd (closed at shutdown); yours stays open and is yours to close — the two
        share the open file, which the engine switches to non-blocking mode. Returns the port."""
        fd = sock if isinstance(sock, int) else sock.fileno()
        bound = _check_tcp_socket(fd, listening=True, call="zh_engine_listen_fd")
        with self._use() as ptr:
            own = os.dup(fd)
            code = _ffi.lib().zh_engine_listen_fd(ptr, own)
        if code in (_ffi.ZH_ERR_NULL, _ffi.ZH_ERR_INVALID):
            os.close(own)  # nothing taken
        _check(code, "zh_engine_listen_fd")
        p = bound[1] if isinstance(bound, tuple) and len(bound) >= 2 else 0
        self.ports.append(p)
        return p

    def adopt(self, sock: "socket.socket | int", initial: bytes = b"") -> None:
        """Hands the engine an accepted TCP connection with ``initial``, the bytes you already
        read from it (e.g. while sniffing the protocol), which the engine parses first
        (``zh_engine_adopt_fd``). A :class:`socket.socket` is detached on success (the
        connection is the engine's now; the object is closed), an int fd is taken as is. On
        :class:`ZhError` ``ZH_ERR_INVALID`` (not a connected TCP socket) nothing is taken.
        Thread-safe."""
        data = _as_bytes(initial)
        _check_tcp_socket(sock if isinstance(sock, int) else sock.fileno(), listening=False, call="zh_engine_adopt_fd")
        if isinstance(sock, int):
            with self._use() as ptr:
                code = _ffi.lib().zh_engine_adopt_fd(ptr, sock, data or None, len(data))
            _check(code, "zh_engine_adopt_fd")
            return
        with self._use() as ptr:
            own = os.dup(sock.fileno())
            code = _ffi.lib().zh_engine_adopt_fd(ptr, own, data or None, len(data))
        if code in (_ffi.ZH_ERR_NULL, _ffi.ZH_ERR_INVALID):
            os.close(own)  # nothing taken; the socket stays the caller's
        else:
            sock.close()  # taken (or, after shutdown, closed by the engine): ours must go too
        _check(code, "zh_engine_adopt_fd")

    def adopt_transport(self, transport: Any, peer: str | None = None) -> "Transport":
        """Serves one connection over a byte stream you provide (``zh_engine_adopt_transport``)
        — typically TLS you terminate with :mod:`ssl` — instead of a socket the engine owns.
        ``transport`` has ``read(n) -> bytes`` (``b""`` at the end of the stream),
        ``write(data) -> int`` (bytes taken), optional ``shutdown()`` (no more writes, e.g.
        send close_notify) and ``close()`` (the engine is done: release it; called once);
        ``read``/``write`` return ``None`` — or raise :class:`BlockingIOError` or an
        ``ssl.SSLWant*Error`` — when not ready now, and then you call ``ready()`` on the
        returned :class:`Transport` once your side can go on (your socket became readable or
        writable). Any other exception closes the connection. They run on a worker thread and
        must not block; :class:`SocketTransport` adapts a (TLS) socket. ``peer``
        (``"ip:port"``) is what ``request.peer`` reports. File and pipe bodies are copied (no
        ``sendfile`` through a transport)."""
        with self._use() as ptr:  # a closed engine raises here, before a handle is registered
            handle = Transport(transport)
            key = _handles.add(handle)
            out = c_void_p()
            code = _ffi.lib().zh_engine_adopt_transport(
                ptr, _T_READ, _T_WRITEV, _T_SHUTDOWN, _T_CLOSE, key,
                None if peer is None else _enc(peer, "peer"), byref(out),
            )
        if code != 0:
            _handles.pop(key)
            _check(code, "zh_engine_adopt_transport")
        with handle._lock:
            if not handle.closed.is_set():
                handle._ptr = out.value
                if handle._early_ready:  # ready() came before we knew the handle
                    _ffi.lib().zh_transport_ready(handle._ptr)
        return handle

    # -- external-loop mode (threads=0)

    def fileno(self) -> int:
        """External-loop mode: the engine's epoll fd, readable while there is work
        (``zh_engine_fd``). Register it with ``selectors`` or ``loop.add_reader`` and call
        :meth:`step` when it is readable. ``ZhError`` ``ZH_ERR_STATE`` in threaded mode."""
        fd = ctypes.c_int32()
        with self._use() as ptr:
            code = _ffi.lib().zh_engine_fd(ptr, byref(fd))
        _check(code, "zh_engine_fd")
        return fd.value

    def step(self, timeout: float = 0.0) -> bool:
        """External-loop mode: does all ready work — accepts, reads, handlers (which run
        here, on this thread), writes, timers — waiting for events at most ``timeout`` seconds
        (0: never blocks; the GIL is released while waiting). Starts the engine on first use.
        Returns False once the engine was shut down. Call it from one thread only, and never
        from a handler. On the main thread, Ctrl-C during a step is raised as
        ``KeyboardInterrupt`` when the step returns, after the handlers it ran."""
        if _in_callback():
            raise ZhError(ZH_ERR_STATE, None, detail="step() must not be called from a handler", call="zh_engine_step")
        ms = 0 if not timeout or timeout <= 0 else max(1, min(int(timeout * 1000 + 0.999), 0xFFFFFFFF))
        if self._stop_requested.is_set():
            return False  # shutdown() waits for the step lock: do not take it again first
        with _SigintAfterStep(), self._step_lock:
            ptr = self._ptr
            if ptr is None:
                return False
            self._started = True
            code = _ffi.lib().zh_engine_step(ptr, ms)
        if code == ZH_ERR_CLOSED:
            self._stopped.set()
            return False
        _check(code, "zh_engine_step")
        return True

    def wake(self) -> None:
        """External-loop mode: makes a :meth:`step` that is waiting (on another thread) return
        now, or the next one return without waiting (``zh_engine_wake``); the way to stop a
        loop that steps with a long timeout. ``ZhError`` ``ZH_ERR_STATE`` in threaded mode."""
        with self._use() as ptr:
            code = _ffi.lib().zh_engine_wake(ptr)
        _check(code, "zh_engine_wake")

    def next_timeout(self) -> float | None:
        """External-loop mode: seconds until timers need a :meth:`step` (``None``: no timer
        pending, or threaded mode). Use it as the timeout of your ``select``."""
        try:
            with self._use() as ptr:
                ms = _ffi.lib().zh_engine_next_timeout_ms(ptr)
        except ZhError:
            return None  # closed
        return None if ms < 0 else ms / 1000.0

    def start(self) -> "Engine":
        """Starts the worker threads and returns (a no-op while running)."""
        with self._use() as ptr:
            code = _ffi.lib().zh_engine_start(ptr)
        _check(code, "zh_engine_start")
        self._started = True
        return self

    def run(self) -> None:
        """Starts the engine and blocks until :meth:`shutdown` or :meth:`close` is called from
        another thread. Unlike ``zh_engine_run`` the wait happens in Python, so Ctrl-C works:
        ``KeyboardInterrupt`` shuts the engine down (grace ``shutdown_grace``) and propagates.
        In external-loop mode it is a minimal loop of its own: :meth:`step` on this thread until
        :meth:`shutdown`."""
        if self.external:
            # Ctrl-C is held back for the whole loop, not swapped in and out around every step
            # (two sigaction calls each): each step is followed by a look at the note.
            with _SigintAfterStep() as sigint:
                try:
                    while not self._stop_requested.is_set():
                        t = self.next_timeout()
                        if not self.step(0.1 if t is None else min(0.1, t)):
                            break
                        if sigint.hit:
                            raise KeyboardInterrupt
                except KeyboardInterrupt:
                    self.shutdown()
                    raise
            return
        self.start()
        try:
            while not self._stopped.wait(0.25):
                pass
        except KeyboardInterrupt:
            self.shutdown()
            raise

    def shutdown(self, grace: float | None = None) -> None:
        """Graceful shutdown (``zh_engine_shutdown``): stop accepting, finish in-flight
        responses for up to ``grace`` seconds (default ``shutdown_grace``), close the rest.
        Requests still held afterwards get :class:`ClosedError` from ``respond``."""
        if _in_callback():
            raise ZhError(ZH_ERR_STATE, None, detail="shutdown() must not be called from a handler", call="zh_engine_shutdown")
        self._stop_requested.set()
        if self.external:
            try:
                self.wake()  # a step() waiting on another thread returns now
            except ZhError:
                pass  # closed already
        grace = self.shutdown_grace if grace is None else grace
        ms = max(0, min(int(grace * 1000), 0xFFFFFFFF))
        # External-loop mode: wait for a step() running on another thread to return; the
        # library then finishes the shutdown on this thread (handlers run here meanwhile).
        with self._step_lock:
            ptr = self._ptr
            if ptr is None:
                return
            try:
                code = _ffi.lib().zh_engine_shutdown(ptr, ms)
                if code not in (0, ZH_ERR_STATE):
                    _check(code, "zh_engine_shutdown")
            finally:
                self._stopped.set()

    def close(self, grace: float | None = None) -> None:
        """Shuts down (see :meth:`shutdown`) and frees the engine. Idempotent. Must not be
        called from a handler."""
        if _in_callback():
            raise ZhError(ZH_ERR_STATE, None, detail="close() must not be called from a handler", call="zh_engine_free")
        with self._lock:
            if self._ptr is None:
                return
            try:
                if self._started:
                    self.shutdown(grace)
            finally:
                with self._calls_done:
                    self._freeing = True
                    while self._calls:
                        self._calls_done.wait()
                with self._step_lock:
                    ptr, self._ptr = self._ptr, None
                    _ffi.lib().zh_engine_free(ptr)
                self._stopped.set()
                _handles.pop(self._uid)
                _live_engines.discard(self)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # The last reference can go on a thread that runs handlers: one of this engine's
        # workers (a handler's frame held it) or any thread inside a callback (the cyclic GC
        # runs wherever it allocates). A shutdown there is refused, and freeing the engine
        # anyway would leave its workers serving with nobody to stop them. A thread of its
        # own closes it instead: this object lives until then, and the interpreter waits for
        # that thread before it exits.
        try:
            if self._ptr is None:
                return
            if _in_callback() or _on_foreign_thread():
                threading.Thread(target=self.close, args=(0,), name="zerohttp-close").start()
            else:
                self.close(0)
        except BaseException:  # noqa: BLE001
            pass

    # -- observing

    def stats(self) -> dict[str, int]:
        """``zh_engine_stats`` as a dict: ``{"requests": ..., "bytes_sendfile": ..., ...}``
        (every field of ``zh_stats`` but ``struct_size``)."""
        st = _ffi.zh_stats()
        st.struct_size = ctypes.sizeof(_ffi.zh_stats)
        with self._use() as ptr:
            code = _ffi.lib().zh_engine_stats(ptr, byref(st))
        _check(code, "zh_engine_stats")
        return {name: getattr(st, name) for name, _ in _ffi.zh_stats._fields_ if name != "struct_size"}


# ---- Request -------------------------------------------------------------------------------


class Request:
    """One request (``zh_request``), handed to ``handler(request)``.

    The head (``method``, ``target``, ``path``, ``query``, ``version``, ``headers``, ``peer``)
    is copied into Python when the object is made, so it stays readable forever. ``body``
    is read on first access and cached; reading it for the first time after the request was
    answered raises :class:`ZhError` (``ZH_ERR_ALREADY_USED``).

    Answer **exactly once**, from any thread, with :meth:`respond`, :meth:`respond_file`,
    :meth:`respond_stream`, :meth:`respond_iter`, :meth:`send` or :meth:`reject`. A second
    answer raises :class:`ZhError` with code ``ZH_ERR_ALREADY_USED`` (detected in Python, so
    it is safe even after the first response has left and the C request is freed).
    """

    def __init__(self, engine: Engine, ptr: int, head: bool = False) -> None:
        lib = _ffi.lib()
        self.engine = engine
        # Set last: if anything below raises, the caller answers the raw pointer itself, and
        # this half-made object's __del__ must not answer it a second time (by then it may be
        # freed).
        self._ptr: int | None = None
        self._lock = threading.Lock()
        self._head_stage = head
        self._claimed = False
        self._failed_in_head = False
        self._body: bytes | None = None
        self.method: str = _dec(lib.zh_request_method(ptr)) or ""
        self.target: str = _dec(lib.zh_request_target(ptr)) or ""
        self.path: str = _dec(lib.zh_request_path(ptr)) or ""
        self.query: str | None = _dec(lib.zh_request_query(ptr))
        v = lib.zh_request_version(ptr)
        self.version: str = {ZH_HTTP_1_0: "HTTP/1.0", ZH_HTTP_1_1: "HTTP/1.1"}.get(v, f"HTTP/?{v}")
        self.body_length: int | None = None
        n = lib.zh_request_body_length(ptr)
        self.body_length = None if n < 0 else n  # None: chunked
        name, value = c_char_p(), c_char_p()
        headers = []
        for i in range(lib.zh_request_header_count(ptr)):
            _check(lib.zh_request_header_at(ptr, i, byref(name), byref(value)), "zh_request_header_at")
            headers.append((_dec(name.value) or "", _dec(value.value) or ""))
        self.headers: list[tuple[str, str]] = headers
        buf = ctypes.create_string_buffer(128)
        _check(lib.zh_request_peer_addr(ptr, buf, len(buf)), "zh_request_peer_addr")
        self.peer: str = buf.value.decode()
        self._trailers: list[tuple[str, str]] | None = None
        self._ptr = ptr

    def __repr__(self) -> str:
        return f"<zerohttp.Request {self.method} {self.target} from {self.peer}>"

    # -- reading

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def answered(self) -> bool:
        """Whether the request was handed back (answered, rejected, or passed on by a head
        handler that did not claim it)."""
        return self._ptr is None

    def _live(self, what: str) -> int:
        ptr = self._ptr
        if ptr is None:
            raise ZhError(ZH_ERR_ALREADY_USED, None, detail="the request was already answered", call=what)
        return ptr

    @property
    def body(self) -> bytes:
        """The whole request body (buffered by the engine before the handler ran)."""
        if self._body is None:
            with self._lock:
                if self._body is None:
                    if self._head_stage:
                        raise ZhError(ZH_ERR_STATE, None, detail="the body is not read yet in a head handler", call="Request.body")
                    ptr = self._live("zh_request_body_bytes")
                    spooled = self._spool_fd(ptr)
                    if spooled is not None:  # a large body spooled to a file: read it in
                        fd, n = spooled
                        parts, off = [], 0
                        while off < n:
                            part = os.pread(fd, min(n - off, 1 << 20), off)
                            if not part:
                                raise ZhError(_ffi.ZH_ERR_TRUNCATED, None, detail="spool file shorter than the body", call="Request.body")
                            parts.append(part)
                            off += len(part)
                        self._body = b"".join(parts)
                    else:
                        data, n = c_void_p(), c_size_t()
                        _check(_ffi.lib().zh_request_body_bytes(ptr, byref(data), byref(n)), "zh_request_body_bytes")
                        self._body = ctypes.string_at(data.value, n.value) if n.value else b""
        return self._body

    @staticmethod
    def _spool_fd(ptr: int) -> tuple[int, int] | None:
        lib = _ffi.lib()
        if "zh_request_body_fd" in _ffi.MISSING:
            return None
        fd, n = ctypes.c_int32(), ctypes.c_uint64()
        code = lib.zh_request_body_fd(ptr, byref(fd), byref(n))
        if code == _ffi.ZH_ERR_NOT_FOUND:
            return None
        _check(code, "zh_request_body_fd")
        return fd.value, n.value

    @property
    def body_spooled(self) -> bool:
        """Whether the body was spooled to a file (``Engine(spool_threshold=...)``) instead
        of memory; then prefer :meth:`body_fd` / :meth:`copy_body_to` over ``body``."""
        with self._lock:
            return self._spool_fd(self._live("zh_request_body_fd")) is not None

    def body_fd(self) -> tuple[int, int] | None:
        """``(fd, length)`` of the spool file holding the body (read it with ``os.pread``; the
        fd is the engine's, valid until the request is answered), or None for a body in
        memory."""
        with self._lock:
            return self._spool_fd(self._live("zh_request_body_fd"))

    def copy_body_to(self, file: FileLike, offset: int = 0) -> int:
        """Copies the whole body into ``file`` (path, fd or file object) at ``offset``; a
        spooled body stays in the kernel (``copy_file_range``). Returns the byte count."""
        fd, _ = _open_fd(file, write=True)
        try:
            with self._lock:
                ptr = self._live("zh_request_body_copy_to_fd")
                n = ctypes.c_uint64()
                _check(_ffi.lib().zh_request_body_copy_to_fd(ptr, fd, offset, byref(n)), "zh_request_body_copy_to_fd")
                return n.value
        finally:
            os.close(fd)

    @property
    def trailers(self) -> list[tuple[str, str]]:
        """Trailer fields of a chunked request body (read on first access)."""
        if self._trailers is None:
            with self._lock:
                if self._trailers is None:
                    lib = _ffi.lib()
                    ptr = self._live("zh_request_trailer_count")
                    name, value = c_char_p(), c_char_p()
                    out = []
                    for i in range(lib.zh_request_trailer_count(ptr)):
                        _check(lib.zh_request_trailer_at(ptr, i, byref(name), byref(value)), "zh_request_trailer_at")
                        out.append((_dec(name.value) or "", _dec(value.value) or ""))
                    self._trailers = out
        return self._trailers

    def trailer(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self.trailers:
            if k.lower() == lname:
                return v
        return default

    # -- answering (every one of these hands the request back exactly once)

    def _take(self, call: str) -> int:
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                raise ZhError(ZH_ERR_ALREADY_USED, None, detail="the request was already answered", call=call)
            self._ptr = None
            return ptr

    def send(self, response: "Response") -> None:
        """Answers with a :class:`Response` (``zh_respond``); the response is consumed."""
        if not isinstance(response, Response):
            raise TypeError("send() takes a zerohttp.Response")
        try:
            ptr = self._take("zh_respond")
        except BaseException:
            response.close()
            raise
        code = _ffi.lib().zh_respond(ptr, response._give())
        if code == _ffi.ZH_ERR_INVALID:  # e.g. a 101 without an upgrade: not handed back
            self._ptr = ptr
        _check(code, "zh_respond")

    def upgrade(
        self,
        status: int = 101,
        headers: Headers = None,
        *,
        on_upgrade: Callable[["socket.socket | None", bytes], Any],
    ) -> None:
        """Answers with a protocol switch (``zh_response_set_upgrade``): ``status`` 101 (add
        the ``Upgrade`` header; the engine writes ``Connection: upgrade``) or a 2xx answering
        ``CONNECT``. Once the response has left, the connection leaves the engine and
        ``on_upgrade(sock, initial)`` runs once on the worker: ``sock`` is a blocking
        :class:`socket.socket` that is now yours (close it), ``initial`` the bytes the engine
        had already read past the request. If the hand-off did not happen (the client went
        away, or the status cannot switch) it gets ``(None, b"")``. It must not block: hand the
        socket to a thread or your event loop."""
        resp = Response(status, headers=headers)
        try:
            resp.set_upgrade(on_upgrade)
        except BaseException:
            resp.close()
            raise
        self.send(resp)

    def respond(self, status: int = 200, body: Any = b"", headers: Headers = None, *, content_type: str | None = None) -> None:
        """Answers with ``status``, ``headers`` (a dict or a list of pairs) and ``body``
        (bytes-like, or str sent as UTF-8). Large bytes bodies are lent, not copied.
        Raises :class:`ClosedError` if the peer is gone (everything was freed anyway)."""
        self.send(Response(status, body, headers, content_type=content_type))

    def respond_file(
        self,
        file: FileLike,
        offset: int = 0,
        length: int = -1,
        *,
        status: int = 200,
        headers: Headers = None,
        content_type: str | None = None,
    ) -> None:
        """Answers with a file region sent by ``sendfile``: ``file`` is a path, an ``os`` fd or
        a file object (fd and file object stay the caller's: the engine gets a ``dup``).
        ``length`` -1 means to the end of the file. ``Content-Type`` is guessed from a path
        unless given."""
        resp = Response(status, headers=headers, content_type=content_type)
        try:
            path = resp.add_file(file, offset, length)
            if content_type is None and path and not resp._has_content_type:
                guessed = mimetypes.guess_type(path)[0]
                if guessed:
                    resp.header("Content-Type", guessed)
        except BaseException:
            resp.close()
            raise
        self.send(resp)

    def serve_file(
        self,
        file: FileLike,
        *,
        content_type: str | None = None,
        etag: str | None = None,
        last_modified: int | float | None = None,
        size: int | None = None,
        weak_etag: bool = False,
        no_etag: bool = False,
        no_last_modified: bool = False,
        headers: Headers = None,
    ) -> None:
        """Answers with a whole file the way a static file server does (``zh_respond_file``):
        ``200`` with ``ETag``/``Last-Modified``/``Accept-Ranges``, ``206`` for ``Range`` (also
        multipart), ``304``/``412`` for conditional requests, ``416`` — all decided by the
        engine, the bytes sent by ``sendfile``. ``file`` as in :meth:`respond_file`;
        ``content_type`` is guessed from a path unless given; ``etag``/``last_modified``
        (unix seconds)/``size`` default to the file's own; ``headers`` go with 200/206/304.
        Errors about the file or options still answer the request (500) and raise."""
        lib = _ffi.lib()
        if not hasattr(lib, "zh_respond_file") or "zh_respond_file" in _ffi.MISSING:
            raise ZhError(_ffi.ZH_ERR_UNSUPPORTED, None, detail="this libzerohttp has no zh_respond_file", call="zh_respond_file")
        fd, path = _open_fd(file)
        try:
            if content_type is None and path:
                content_type = mimetypes.guess_type(path)[0]
            info, keep = _file_info(content_type, etag, last_modified, size, weak_etag, no_etag, no_last_modified, headers)
            ptr = self._take("zh_respond_file")
        except BaseException:
            os.close(fd)
            raise
        code = lib.zh_respond_file(ptr, fd, ZH_FD_CLOSE, byref(info))
        del keep
        if code in (_ffi.ZH_ERR_NULL, ZH_ERR_ALREADY_USED):
            os.close(fd)  # nothing taken
        _check(code, "zh_respond_file")

    def serve_file_at(
        self,
        dir_fd: int,
        path: str | bytes,
        *,
        cache: bool = True,
        content_type: str | None = None,
        etag: str | None = None,
        last_modified: int | float | None = None,
        size: int | None = None,
        weak_etag: bool = False,
        no_etag: bool = False,
        no_last_modified: bool = False,
        headers: Headers = None,
    ) -> None:
        """Like :meth:`serve_file` for the file at ``path`` beneath the directory ``dir_fd``
        (``zh_respond_file_at``): opened without ever leaving ``dir_fd`` (``..`` and escaping
        symlinks are refused), through the worker's open-file cache (``cache=False`` bypasses
        it), so a repeated request costs no open/fstat/close. When the file cannot be served
        the request is NOT answered and this raises: ``FileNotFoundError``,
        ``PermissionError`` (escapes, unreadable, FIFO/device), ``IsADirectoryError``, or
        :class:`ZhError` — answer it yourself (404, 403, index page …)."""
        lib = _ffi.lib()
        if content_type is None:
            content_type = mimetypes.guess_type(os.fsdecode(path))[0]
        info, keep = _file_info(content_type, etag, last_modified, size, weak_etag, no_etag, no_last_modified, headers)
        ptr = self._take("zh_respond_file_at")
        flags = 0 if cache else _ffi.ZH_FILE_AT_NO_CACHE
        code = lib.zh_respond_file_at(ptr, dir_fd, os.fsencode(path), flags, byref(info))
        del keep
        if code in (_ffi.ZH_OK, _ffi.ZH_ERR_CLOSED):
            _check(code, "zh_respond_file_at")
            return
        self._ptr = ptr  # not handed back: still ours to answer
        errors = {
            _ffi.ZH_ERR_NOT_FOUND: FileNotFoundError,
            _ffi.ZH_ERR_FORBIDDEN: PermissionError,
            _ffi.ZH_ERR_IS_DIRECTORY: IsADirectoryError,
        }
        if code in errors:
            raise errors[code](os.fsdecode(path))
        _check(code, "zh_respond_file_at")

    def reject(self, status: int = 500) -> None:
        """Answers with a minimal ``status`` response (``zh_request_reject``)."""
        ptr = self._take("zh_request_reject")
        code = _ffi.lib().zh_request_reject(ptr, status)
        if code == _ffi.ZH_ERR_INVALID:  # not handed back
            self._ptr = ptr
        _check(code, "zh_request_reject")

    def respond_stream(self, status: int = 200, headers: Headers = None, *, content_type: str | None = None, response: "Response | None" = None) -> "Stream":
        """Answers with a head now and a body written over time through the returned
        :class:`Stream` (chunked for HTTP/1.1, close-delimited for HTTP/1.0). ``response``
        may be a prepared :class:`Response` whose chunks go first."""
        resp = response if response is not None else Response(status, headers=headers, content_type=content_type)
        try:
            ptr = self._take("zh_respond_stream")
        except BaseException:
            resp.close()
            raise
        out = c_void_p()
        _check(_ffi.lib().zh_respond_stream(ptr, resp._give(), byref(out)), "zh_respond_stream")
        return Stream(self.engine, out.value)

    def respond_iter(
        self,
        status: int = 200,
        iterable: Iterable[Any] = (),
        headers: Headers = None,
        *,
        content_type: str | None = None,
        high_water: int = 1 << 20,
    ) -> "Stream":
        """Streams ``iterable`` (e.g. a generator of bytes/str chunks) as the body, pulled by a
        new thread so the handler returns at once. The thread waits while more than
        ``high_water`` bytes are queued (backpressure), stops early if the client goes away
        (closing a generator), and aborts the response if the iterable raises.
        ``stream.join()`` waits for the thread."""
        stream = self.respond_stream(status, headers, content_type=content_type)
        t = threading.Thread(target=stream._pump, args=(iterable, high_water), name="zerohttp-iter", daemon=True)
        stream._thread = t
        t.start()
        return stream

    def body_to_file(self, file: FileLike, on_done: Callable[["Request", int, int], Any], offset: int = 0) -> None:
        """Head handler only: writes the request body into ``file`` (a path — created or
        truncated —, an ``os`` fd, or a file object) from ``offset``, by ``splice`` (socket →
        pipe → file) so it never enters Python. ``on_done(request, nbytes, error)`` runs once
        on a worker thread when the body is complete (``error`` 0) or failed (an errno value);
        the request is still to be answered — typically right there. A caller's fd or file
        object is ``dup``'ed: keep it or close it, the engine writes through its own copy.
        A Content-Length body of 1 MiB or more has its range reserved ahead of the writes
        (``fallocate``, 64 MiB at a time): one larger than the filesystem's free space, or
        whose first window is refused, reaches ``on_done`` (``ENOSPC``, ``EDQUOT``, ``EFBIG``)
        before a byte of it is read (a client waiting for ``100 Continue`` never sends it)."""
        ptr = self._live("zh_request_body_to_fd")
        if not self._head_stage:
            raise ZhError(ZH_ERR_STATE, None, detail="body_to_file() only works in a head handler", call="zh_request_body_to_fd")
        fd, _ = _open_fd(file, write=True)
        key = _handles.add(_BodyClaim(self, None, on_done, fd))
        code = _ffi.lib().zh_request_body_to_fd(ptr, fd, offset, _BODY_DONE, key)
        if code != 0:
            _handles.pop(key)
            os.close(fd)
            _check(code, "zh_request_body_to_fd")
        self._claimed = True

    def read_body(self, on_data: Callable[["Request", bytes], Any], on_end: Callable[["Request", int, int], Any]) -> None:
        """Head handler only: streams the request body (``zh_request_body_read``).
        ``on_data(request, chunk)`` runs on the worker for each piece as it arrives (chunked
        framing removed); returning :data:`PENDING` pauses reading the socket (the client is
        slowed by TCP flow control) until :meth:`resume_body`. ``on_end(request, total,
        error)`` runs once at the end (``error`` 0 or an errno); answer there or later. An
        exception in ``on_data`` answers 500 at once and drops the rest of the body."""
        ptr = self._live("zh_request_body_read")
        if not self._head_stage:
            raise ZhError(ZH_ERR_STATE, None, detail="read_body() only works in a head handler", call="zh_request_body_read")
        key = _handles.add(_BodyClaim(self, on_data, on_end, None))
        code = _ffi.lib().zh_request_body_read(ptr, _BODY_DATA, _BODY_DONE, key)
        if code != 0:
            _handles.pop(key)
            _check(code, "zh_request_body_read")
        self._claimed = True

    def resume_body(self) -> None:
        """Resumes a :meth:`read_body` that ``on_data`` paused with :data:`PENDING`. Any
        thread; a no-op once the request was answered."""
        with self._lock:
            if self._ptr is not None:
                _check(_ffi.lib().zh_request_body_resume(self._ptr), "zh_request_body_resume")

    # -- internals

    def _fail(self, status: int) -> None:
        """Best-effort answer after an exception: only if nobody answered yet."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            _reject_raw(ptr, status)

    def __del__(self) -> None:
        # A request nobody can answer any more (every reference dropped) would leave its
        # client waiting forever: answer 500 and say so.
        try:
            if self._ptr is not None and not self._head_stage:
                log.warning("zerohttp: %r was dropped without an answer; answering 500", self)
                self._fail(500)
        except BaseException:  # noqa: BLE001
            pass

    def _end_head_stage(self) -> None:
        self._head_stage = False
        if not self._claimed:
            # Neither claimed nor answered: the engine takes the request back (and will call
            # the main handler with a new one). This pointer is dead now.
            self._ptr = None


# ---- host transports -----------------------------------------------------------------------

_AGAIN_ERRORS: tuple[type[BaseException], ...] = (BlockingIOError, InterruptedError)
try:
    import ssl as _ssl

    _AGAIN_ERRORS += (_ssl.SSLWantReadError, _ssl.SSLWantWriteError)
except ImportError:  # pragma: no cover - Python without ssl
    pass


class Transport:
    """The handle of an adopted transport (:meth:`Engine.adopt_transport`): :meth:`ready`
    after a ``read``/``write`` was not ready; ``closed`` is an :class:`threading.Event` set once
    the engine has called ``close()``. Thread-safe."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._lock = threading.Lock()
        self._ptr: int | None = None
        self._rest = b""
        self._early_ready = False
        self.closed = threading.Event()

    def ready(self) -> None:
        """Your side can go on: the engine retries reading and writing (``zh_transport_ready``).
        A no-op once the transport was closed."""
        with self._lock:
            if self._ptr is None:
                self._early_ready = not self.closed.is_set()
            else:
                _check(_ffi.lib().zh_transport_ready(self._ptr), "zh_transport_ready")

    def _read(self, buf: int, n: int) -> int:
        if not self._rest:
            try:
                data = self.transport.read(n)
            except _AGAIN_ERRORS:
                return _ffi.ZH_TRANSPORT_AGAIN
            if data is None:
                return _ffi.ZH_TRANSPORT_AGAIN
            if not data:
                return 0
            self._rest = _as_bytes(data)
        k = min(n, len(self._rest))
        ctypes.memmove(buf, self._rest, k)
        self._rest = self._rest[k:]
        return k

    def _write(self, data: bytes) -> int:
        if not data:
            return 0
        try:
            r = self.transport.write(data)
        except _AGAIN_ERRORS:
            return _ffi.ZH_TRANSPORT_AGAIN
        if r is None:
            return _ffi.ZH_TRANSPORT_AGAIN
        return int(r)

    def _closed_by_engine(self) -> None:
        with self._lock:
            self._ptr = None
        try:
            close = getattr(self.transport, "close", None)
            if close is not None:
                close()
        finally:
            self.closed.set()


class SocketTransport:
    """Adapts a socket — plain or :class:`ssl.SSLSocket` (handshake done) — to
    :meth:`Engine.adopt_transport`: switched to non-blocking, ``read``/``write`` map
    ``recv``/``send`` (``None`` when it would block), ``shutdown`` shuts the write side of a
    plain socket, ``close`` closes it. You still watch ``sock`` for readability/writability and
    call ``ready()`` on the returned :class:`Transport`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)

    def read(self, n: int) -> bytes | None:
        try:
            return self.sock.recv(n)
        except _AGAIN_ERRORS:
            return None

    def write(self, data: bytes) -> int | None:
        try:
            return self.sock.send(data)
        except _AGAIN_ERRORS:
            return None

    def shutdown(self) -> None:
        if type(self.sock) is socket.socket:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


# ---- Response ------------------------------------------------------------------------------


class Response:
    """A response under construction (``zh_response``): status, headers and a chain of body
    chunks — bytes (copied, or lent when large), lent buffers (zero-copy), file regions
    (``sendfile``), pipes/sockets (``splice``) and producer callbacks. Give it to
    :meth:`Request.send` (which consumes it) or :meth:`close` it. Not thread-safe while built.
    """

    def __init__(self, status: int = 200, body: Any = None, headers: Headers = None, *, content_type: str | None = None) -> None:
        out = c_void_p()
        _check(_ffi.lib().zh_response_new(status, byref(out)), "zh_response_new")
        self._ptr: int | None = out.value
        self.status = status
        self._has_content_type = False
        try:
            for k, v in _header_items(headers):
                self.header(k, v)
            if content_type is not None:
                self.header("Content-Type", content_type)
            if body is not None:
                self.add(body)
        except BaseException:
            self.close()
            raise

    def _live(self, call: str) -> int:
        if self._ptr is None:
            raise ZhError(ZH_ERR_ALREADY_USED, None, detail="the response was already sent or closed", call=call)
        return self._ptr

    def _give(self) -> int:
        ptr = self._live("zh_respond")
        self._ptr = None
        return ptr

    def header(self, name: str, value: str | int) -> "Response":
        """Adds a header (``Content-Length`` and ``Transfer-Encoding`` are the engine's)."""
        if isinstance(value, int):
            value = str(value)
        _check(
            _ffi.lib().zh_response_add_header(self._live("zh_response_add_header"), _enc(name, "header name"), _enc(value, "header value")),
            "zh_response_add_header",
        )
        if name.lower() == "content-type":
            self._has_content_type = True
        return self

    add_header = header

    def add(self, data: Any) -> "Response":
        """Appends bytes (str is sent as UTF-8): copied, or lent when ``LEND_THRESHOLD`` or more."""
        data = _as_bytes(data)
        if len(data) >= LEND_THRESHOLD:
            return self.add_lent(data)
        _check(_ffi.lib().zh_response_add_bytes(self._live("zh_response_add_bytes"), data, len(data)), "zh_response_add_bytes")
        return self

    def add_lent(self, data: Any) -> "Response":
        """Appends a buffer without copying (``zh_response_add_lent``): the object is kept alive
        until the engine releases it and must not be modified meanwhile."""
        ptr = self._live("zh_response_add_lent")
        addr, n, keep = _lend(data)
        key = _handles.add(keep)
        code = _ffi.lib().zh_response_add_lent(ptr, addr, n, _RELEASE, key)
        if code != 0:
            _handles.pop(key)
            _check(code, "zh_response_add_lent")
        return self

    def add_file(self, file: FileLike, offset: int = 0, length: int = -1) -> str | None:
        """Appends a file region (``sendfile``) from a path, an ``os`` fd or a file object; the
        engine owns a fresh fd (opened or ``dup``'ed) and closes it. Returns the path if known."""
        ptr = self._live("zh_response_add_file")
        fd, path = _open_fd(file)
        code = _ffi.lib().zh_response_add_file(ptr, fd, offset, length, ZH_FD_CLOSE)
        if code != 0:
            os.close(fd)  # nothing taken on error
            _check(code, "zh_response_add_file")
        return path

    def add_fd(self, fd: int, length: int = -1, *, close: bool = False) -> "Response":
        """Appends a pipe or socket to read ``length`` bytes from (-1: until EOF), by ``splice``.
        With ``close=True`` the engine owns ``fd``; else it is ``dup``'ed (yours stays open).
        The fd is switched to non-blocking mode."""
        ptr = self._live("zh_response_add_fd")
        own = fd if close else os.dup(fd)
        code = _ffi.lib().zh_response_add_fd(ptr, own, length, ZH_FD_CLOSE)
        if code != 0:
            if not close:
                os.close(own)
            _check(code, "zh_response_add_fd")
        return self

    def add_callback(self, producer: Callable[[int], Any], length: int = -1) -> "Source":
        """Appends a body produced on demand (``zh_response_add_callback``).
        ``producer(max_len)`` runs on the worker thread (must not block) and returns bytes
        (longer than ``max_len`` is fine: the rest is kept for the next call), ``None`` or
        ``b""`` at the end, or :data:`PENDING` when it has nothing yet — then call
        ``source.ready()`` (any thread) on the returned :class:`Source` when it has. An
        exception aborts the connection. ``length``: the total, or -1 if unknown."""
        ptr = self._live("zh_response_add_callback")
        src = _CallbackSource(producer)
        key = _handles.add(src)
        code = _ffi.lib().zh_response_add_callback(ptr, _POLL, _RELEASE, key, length)
        if code != 0:
            _handles.pop(key)
            _check(code, "zh_response_add_callback")
        return src

    def set_upgrade(self, on_upgrade: Callable[["socket.socket | None", bytes], Any]) -> "Response":
        """Makes this response a protocol switch; see :meth:`Request.upgrade`.
        ``on_upgrade(sock_or_None, initial_bytes)`` runs exactly once: with the connection,
        or with ``None`` if it did not happen (also when the response is closed unsent)."""
        ptr = self._live("zh_response_set_upgrade")
        key = _handles.add(on_upgrade)
        code = _ffi.lib().zh_response_set_upgrade(ptr, _UPGRADE, key)
        if code != 0:
            _handles.pop(key)
            _check(code, "zh_response_set_upgrade")
        return self

    def close(self) -> None:
        """Frees an unsent response (``zh_response_free``); a no-op once sent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            _ffi.lib().zh_response_free(ptr)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:  # noqa: BLE001
            pass


class Source:
    """The handle of a :meth:`Response.add_callback` body: :meth:`ready` wakes the engine
    after the producer returned :data:`PENDING`. Thread-safe."""

    def ready(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _CallbackSource(Source):
    def __init__(self, producer: Callable[[int], Any]) -> None:
        self.producer = producer
        self._lock = threading.Lock()
        self._source: int | None = None
        self._rest = b""
        self._done = False
        self.released = threading.Event()

    def ready(self) -> None:
        with self._lock:
            if self._source is not None:
                _check(_ffi.lib().zh_source_ready(self._source), "zh_source_ready")

    def _released(self) -> None:
        with self._lock:
            self._source = None
        self.released.set()

    def _poll(self, out: Any) -> int:
        with self._lock:
            self._source = out.source
        if not self._rest:
            if self._done:
                return _ffi.ZH_EOF
            r = self.producer(out.buf_cap)
            if r is PENDING:
                return _ffi.ZH_PENDING
            if r is None or len(r) == 0:
                self._done = True
                return _ffi.ZH_EOF
            self._rest = _as_bytes(r)
        n = min(len(self._rest), out.buf_cap)
        ctypes.memmove(out.buf, self._rest, n)
        self._rest = self._rest[n:]
        out.kind = _ffi.ZH_CHUNK_BYTES
        out.len = n
        return _ffi.ZH_POLL_READY


# ---- Stream --------------------------------------------------------------------------------


class Stream:
    """The producer's handle of a streaming response (``zh_stream``). Every method is
    thread-safe. End it with :meth:`end` (optionally with trailers) or :meth:`abort`; as a
    context manager it ends on success and aborts on an exception. Writes to a vanished
    client raise :class:`ClosedError`."""

    def __init__(self, engine: Engine, ptr: int) -> None:
        self.engine = engine
        self._ptr: int | None = ptr
        self._lock = threading.RLock()
        self._drain_key: int | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _live(self, call: str) -> int:
        if self._ptr is None:
            raise ZhError(ZH_ERR_STATE, None, detail="the stream was already ended or aborted", call=call)
        return self._ptr

    def write(self, data: Any) -> None:
        """Queues bytes (str as UTF-8): copied, or lent when large."""
        data = _as_bytes(data)
        if not data:
            return
        with self._lock:
            ptr = self._live("zh_stream_add_bytes")
            if len(data) >= LEND_THRESHOLD:
                addr, n, keep = _lend(data)
                key = _handles.add(keep)
                code = _ffi.lib().zh_stream_add_lent(ptr, addr, n, _RELEASE, key)
                if code != 0:
                    _handles.pop(key)
                _check(code, "zh_stream_add_lent")
            else:
                _check(_ffi.lib().zh_stream_add_bytes(ptr, data, len(data)), "zh_stream_add_bytes")

    def write_file(self, file: FileLike, offset: int = 0, length: int = -1) -> None:
        """Queues a file region (``sendfile``) from a path, fd or file object (own fd, closed
        by the engine)."""
        with self._lock:
            ptr = self._live("zh_stream_add_file")
            fd, _ = _open_fd(file)
            code = _ffi.lib().zh_stream_add_file(ptr, fd, offset, length, ZH_FD_CLOSE)
            if code != 0:
                os.close(fd)
                _check(code, "zh_stream_add_file")

    def write_fd(self, fd: int, length: int = -1, *, close: bool = False) -> None:
        """Queues a pipe or socket (``splice``); as :meth:`Response.add_fd`."""
        with self._lock:
            ptr = self._live("zh_stream_add_fd")
            own = fd if close else os.dup(fd)
            code = _ffi.lib().zh_stream_add_fd(ptr, own, length, ZH_FD_CLOSE)
            if code != 0:
                if not close:
                    os.close(own)
                _check(code, "zh_stream_add_fd")

    @property
    def queued(self) -> int:
        """Bytes queued and not yet taken by the connection (0 once ended)."""
        with self._lock:
            return 0 if self._ptr is None else _ffi.lib().zh_stream_queued(self._ptr)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (or the stream ended)."""
        with self._lock:
            return True if self._ptr is None else bool(_ffi.lib().zh_stream_is_closed(self._ptr))

    def on_drain(self, low_mark: int, callback: Callable[[], Any]) -> None:
        """Calls ``callback()`` on the worker thread whenever the queue falls below
        ``low_mark`` after having reached it (must not block). Replaces an earlier one."""
        with self._lock:
            ptr = self._live("zh_stream_on_drain")
            key = _handles.add(callback)
            code = _ffi.lib().zh_stream_on_drain(ptr, low_mark, _DRAIN, key)
            if code != 0:
                _handles.pop(key)
                _check(code, "zh_stream_on_drain")
            _handles.pop(self._drain_key)
            self._drain_key = key

    def end(self, trailers: Headers = None) -> None:
        """Ends the body, with optional trailer fields (sent for chunked responses)."""
        items = _header_items(trailers)
        n = len(items)
        names = (c_char_p * max(n, 1))(*[_enc(k, "trailer name") for k, _ in items])
        values = (c_char_p * max(n, 1))(*[_enc(str(v), "trailer value") for _, v in items])
        with self._lock:
            ptr = self._live("zh_stream_end")
            code = _ffi.lib().zh_stream_end(ptr, names, values, n)
            if code not in (_ffi.ZH_ERR_NULL, _ffi.ZH_ERR_HEADER):
                self._finish()
            _check(code, "zh_stream_end")

    def abort(self) -> None:
        """Aborts the response (the connection closes mid-body) and frees the handle."""
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            self._finish()
            _ffi.lib().zh_stream_abort(ptr)

    def _finish(self) -> None:
        self._ptr = None
        _handles.pop(self._drain_key)
        self._drain_key = None

    def __del__(self) -> None:
        # A stream dropped without end() would leave its client waiting: abort it.
        try:
            if self._ptr is not None:
                log.warning("zerohttp: a Stream was dropped without end(); aborting the response")
                self.abort()
        except BaseException:  # noqa: BLE001
            pass

    def join(self, timeout: float | None = None) -> bool:
        """For :meth:`Request.respond_iter`: waits for the feeding thread; True if it ended."""
        t = self._thread
        if t is None:
            return True
        t.join(timeout)
        return not t.is_alive()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self._ptr is None:
            return
        if exc_type is None:
            try:
                self.end()
            except ClosedError:
                pass
        else:
            self.abort()

    def _pump(self, iterable: Iterable[Any], high_water: int) -> None:
        drained = threading.Event()
        it = iter(iterable)
        try:
            self.on_drain(high_water, drained.set)
            for chunk in it:
                data = _as_bytes(chunk)
                if not data:
                    continue
                while True:
                    drained.clear()
                    if self.closed or self.queued < high_water:
                        break
                    drained.wait(0.05)
                self.write(data)
            self.end()
        except ClosedError as e:
            self.error = e
            log.debug("zerohttp: client went away during respond_iter")
            self.abort()
        except BaseException as e:  # noqa: BLE001
            self.error = e
            log.exception("zerohttp: respond_iter body raised; aborting the response")
            self.abort()
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:  # noqa: BLE001
                    log.exception("zerohttp: closing the respond_iter iterable failed")


# ---- process exit --------------------------------------------------------------------------


@atexit.register
def _close_all_engines() -> None:
    for engine in list(_live_engines):
        try:
            engine.close(0)
        except BaseException:  # noqa: BLE001
            pass


__all__ = [
    "ClosedError",
    "Engine",
    "LOG_LEVELS",
    "PENDING",
    "Request",
    "Response",
    "SocketTransport",
    "Source",
    "Stream",
    "Transport",
    "ZhError",
    "result_str",
    "version",
]
