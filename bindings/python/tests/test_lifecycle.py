"""Engine lifecycle edge cases: the last reference dropped on a thread that runs handlers, a
Request whose construction fails, shutdown of an external loop stepping on another thread,
and calls on a closed engine."""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time

import pytest

import zerohttp
from zerohttp import _core

from conftest import CLIENT_TIMEOUT


def _status_line(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return s.recv(200).split(b"\r\n")[0]


def _refused_within(port: int, seconds: float) -> bool:
    """True once nothing listens on `port` any more (the engine was closed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def test_engine_dropped_last_on_its_own_worker_is_closed():
    # The handler's frame holds the engine when the main thread drops its reference, so the
    # engine is finalized on the worker, after the callback scope ended. Closing it there is
    # refused; before the fix it was freed anyway and its worker went on serving 503s.
    holding, release = threading.Event(), threading.Event()

    def handler(req):
        engine = req.engine  # keeps the engine alive in this frame
        holding.set()
        release.wait(CLIENT_TIMEOUT)
        req.respond(200, b"ok")
        del engine

    engine = zerohttp.Engine(handler, threads=1)
    port = engine.listen("127.0.0.1:0")
    engine.start()
    got = []
    client = threading.Thread(target=lambda: got.append(_status_line(port)))
    client.start()
    assert holding.wait(CLIENT_TIMEOUT)
    closed = []
    orig_close = _core.Engine.close

    def traced_close(self, grace=None):
        closed.append(threading.current_thread().name)
        return orig_close(self, grace)

    _core.Engine.close = traced_close
    try:
        del engine
        gc.collect()
        release.set()
        client.join(CLIENT_TIMEOUT)
        assert got == [b"HTTP/1.1 200 OK"]
        assert _refused_within(port, 10), "the engine still listens after its last reference went"
    finally:
        _core.Engine.close = orig_close
    assert closed == ["zerohttp-close"]
    for t in threading.enumerate():
        if t.name == "zerohttp-close":
            t.join(CLIENT_TIMEOUT)


def test_engine_collected_inside_a_callback_is_closed():
    # An engine in a reference cycle becomes garbage; the cyclic GC then runs inside another
    # engine's handler. Before the fix __del__ skipped the close there and nothing closed it.
    class Site:
        def __init__(self):
            self.engine = zerohttp.Engine(self.handle, threads=1)
            self.port = self.engine.listen("127.0.0.1:0")
            self.engine.start()

        def handle(self, req):
            req.respond(200, b"site")

    was_enabled = gc.isenabled()
    gc.disable()  # the collection must happen in the handler below, not before
    try:
        site = Site()
        port = site.port
        assert _status_line(port) == b"HTTP/1.1 200 OK"
        del site  # Site -> Engine -> bound method -> Site: cyclic garbage now

        def collector(req):
            req.respond(200, str(gc.collect()).encode())

        with zerohttp.Engine(collector, threads=1) as other:
            p2 = other.listen("127.0.0.1:0")
            other.start()
            assert _status_line(p2) == b"HTTP/1.1 200 OK"
        assert _refused_within(port, 10), "the collected engine still listens"
    finally:
        if was_enabled:
            gc.enable()


def test_a_request_whose_construction_fails_is_answered_once(monkeypatch):
    # If Request.__init__ raises after it took the pointer, the trampoline answers the raw
    # pointer with 500; the half-made object (kept alive by the logged traceback for as long
    # as a log handler keeps the record) must not answer it again from __del__, by which time
    # the C request may be freed.
    rejects = []
    real_lib = _core._ffi.lib()

    class CountingLib:
        def __getattr__(self, name):
            return getattr(real_lib, name)

        def zh_request_reject(self, req, status):
            rejects.append(status)
            return real_lib.zh_request_reject(req, status)

        def zh_request_peer_addr(self, req, buf, n):  # the last step of building a Request
            if len(half_made) == 1:
                raise MemoryError("stands in for anything raised while the request is built")
            return real_lib.zh_request_peer_addr(req, buf, n)

    half_made = []
    real_init = _core.Request.__init__

    def failing_init(self, engine, ptr, head=False):
        half_made.append(self)
        real_init(self, engine, ptr, head)

    monkeypatch.setattr(_core.Request, "__init__", failing_init)
    monkeypatch.setattr(_core._ffi, "lib", lambda: CountingLib())
    with zerohttp.Engine(lambda r: r.respond(200, b"fine"), threads=1) as engine:
        port = engine.listen("127.0.0.1:0")
        engine.start()
        assert _status_line(port) == b"HTTP/1.1 500 Internal Server Error"
        assert _status_line(port) == b"HTTP/1.1 200 OK"
        assert half_made[0]._ptr is None, "the half-made request still holds the C pointer"
        half_made[0].__del__()  # what the collector does once the record goes
        assert _status_line(port) == b"HTTP/1.1 200 OK"
    assert rejects == [500], rejects


def test_shutdown_of_an_external_loop_stepping_on_another_thread_is_prompt():
    engine = zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=0)
    engine.listen("127.0.0.1:0")
    loops = []

    def loop():
        while engine.step(4.0):  # a long wait per step, as a host loop might use
            loops.append(1)

    stepper = threading.Thread(target=loop)
    stepper.start()
    time.sleep(0.3)  # the stepper is inside zh_engine_step, waiting
    t = time.monotonic()
    engine.shutdown(grace=0)
    took = time.monotonic() - t
    stepper.join(CLIENT_TIMEOUT)
    engine.close()
    assert not stepper.is_alive()
    assert took < 2.0, f"shutdown waited {took:.2f} s for the stepping thread"


def test_adopting_a_transport_on_a_closed_engine_leaves_no_handle():
    engine = zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=1)
    engine.close()
    before = len(_core._handles)
    with pytest.raises(zerohttp.ZhError):
        engine.adopt_transport(object())
    assert len(_core._handles) == before


def test_close_on_another_thread_waits_for_calls_in_c(monkeypatch):
    # A method reads the handle, lets the GIL go for the C call, and another thread's close()
    # must not free the engine in between (before: a use after free, a crash in stats()).
    events = []
    real_lib = _core._ffi.lib()
    in_stats = threading.Event()

    class SlowLib:
        def __getattr__(self, name):
            return getattr(real_lib, name)

        def zh_engine_stats(self, ptr, st):
            in_stats.set()
            time.sleep(0.3)  # the window, made wide
            events.append("stats returned")
            return real_lib.zh_engine_stats(ptr, st)

        def zh_engine_free(self, ptr):
            events.append("free")
            return real_lib.zh_engine_free(ptr)

    engine = zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=1)
    engine.listen("127.0.0.1:0")
    engine.start()
    monkeypatch.setattr(_core._ffi, "lib", lambda: SlowLib())
    got = []
    poller = threading.Thread(target=lambda: got.append(engine.stats()))
    poller.start()
    assert in_stats.wait(CLIENT_TIMEOUT)
    engine.close()
    poller.join(CLIENT_TIMEOUT)
    assert events == ["stats returned", "free"]
    assert got and got[0]["requests"] == 0
    with pytest.raises(zerohttp.ZhError):
        engine.stats()


def test_ctrl_c_during_an_external_loop_handler_stops_run_after_the_answer():
    # Ctrl-C while a handler runs inside step() on the main thread: before, the
    # KeyboardInterrupt was raised in the handler, taken for its error (500, logged) and
    # run() went on.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # we may run with it ignored
    try:
        def handler(req):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # lines of Python: where a pending signal is raised
                pass
            req.respond(200, b"answered")

        engine = zerohttp.Engine(handler, threads=0)
        port = engine.listen("127.0.0.1:0")
        got = []
        client = threading.Thread(target=lambda: got.append(_status_line(port)))
        client.start()
        guard = threading.Timer(10, engine.shutdown)  # bounds the test if run() goes on
        guard.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                engine.run()
        finally:
            guard.cancel()
            client.join(CLIENT_TIMEOUT)
            engine.close()
        assert got == [b"HTTP/1.1 200 OK"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, old)
