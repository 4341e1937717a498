"""Errors: exceptions in handlers become 500s, misuse raises ZhError with the library's code."""

from __future__ import annotations

import logging
import threading

import pytest
import requests

import zerohttp
from zerohttp import ffi

from conftest import CLIENT_TIMEOUT, wait_for


def test_exception_in_handler_is_500_and_logged(server, caplog):
    def h(req):
        if req.path == "/boom":
            raise KeyError("kaboom")
        req.respond(200, b"fine")

    server.handler = h
    with caplog.at_level(logging.ERROR, logger="zerohttp"):
        r = requests.get(server.url + "/boom", timeout=CLIENT_TIMEOUT)
        assert r.status_code == 500
        assert wait_for(lambda: any(rec.exc_info and isinstance(rec.exc_info[1], KeyError) for rec in caplog.records))
    rec = next(rec for rec in caplog.records if rec.exc_info)
    assert rec.name == "zerohttp" and "/boom" in rec.getMessage()
    # The engine keeps serving, on the same keep-alive connection too.
    with requests.Session() as sess:
        assert sess.get(server.url + "/boom", timeout=CLIENT_TIMEOUT).status_code == 500
        assert sess.get(server.url + "/ok", timeout=CLIENT_TIMEOUT).text == "fine"


def test_exception_after_responding_keeps_the_response(server, caplog):
    def h(req):
        req.respond(200, b"answered")
        raise RuntimeError("after the answer")

    server.handler = h
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.content == b"answered"


def test_double_respond_raises_already_used(server):
    seen = {}

    def h(req):
        req.respond(200, b"first")
        for name, call in [
            ("respond", lambda: req.respond(200, b"second")),
            ("reject", lambda: req.reject(500)),
            ("stream", lambda: req.respond_stream(200)),
            ("file", lambda: req.respond_file(__file__)),
            ("send", lambda: req.send(zerohttp.Response(200))),
        ]:
            try:
                call()
            except zerohttp.ZhError as e:
                seen[name] = (e.code, e.name, e.message)
        try:
            req.body  # never read before answering: the C request is gone now
        except zerohttp.ZhError as e:
            seen["body"] = (e.code,)
        assert req.answered and req.method == "GET"  # the head stays readable

    server.handler = h
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.content == b"first"
    assert wait_for(lambda: len(seen) == 6)
    for name in ("respond", "reject", "stream", "file", "send"):
        assert seen[name][0] == zerohttp.ZH_ERR_ALREADY_USED, (name, seen[name])
        assert seen[name][1] == "ZH_ERR_ALREADY_USED"
        assert seen[name][2] == zerohttp.result_str(zerohttp.ZH_ERR_ALREADY_USED)
    assert seen["body"][0] == zerohttp.ZH_ERR_ALREADY_USED


def test_library_detects_double_hand_back(server):
    """The C library's own check: a second zh_respond before the response has left (still
    inside the handler, on the worker, so it cannot have left) is ZH_ERR_ALREADY_USED."""
    codes = []

    def h(req):
        lib = ffi.lib()
        ptr = req._ptr
        for _ in range(2):
            resp = ctypes_new_response(lib)
            codes.append(lib.zh_respond(ptr, resp))
        req._ptr = None

    server.handler = h
    assert requests.get(server.url + "/", timeout=CLIENT_TIMEOUT).status_code == 200
    assert codes == [zerohttp.ZH_OK, zerohttp.ZH_ERR_ALREADY_USED]


def ctypes_new_response(lib):
    import ctypes

    out = ctypes.c_void_p()
    assert lib.zh_response_new(200, ctypes.byref(out)) == 0
    return out.value


def test_misuse_raises_zherror(server):
    seen = {}

    def h(req):
        for name, call in [
            ("status", lambda: req.respond(42)),
            ("framing_header", lambda: req.respond(200, b"x", {"Content-Length": "1"})),
            ("bad_header", lambda: req.respond(200, b"x", {"Bad Name": "v"})),
            ("reject_status", lambda: req.reject(99)),
            ("close_in_handler", lambda: req.engine.close()),
        ]:
            try:
                call()
            except zerohttp.ZhError as e:
                seen[name] = e.code
        req.respond(200, b"ok")  # none of the above handed the request back

    server.handler = h
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.content == b"ok"
    assert seen == {
        "status": zerohttp.ZH_ERR_INVALID,
        "framing_header": zerohttp.ZH_ERR_HEADER,
        "bad_header": zerohttp.ZH_ERR_HEADER,
        "reject_status": zerohttp.ZH_ERR_INVALID,
        "close_in_handler": zerohttp.ZH_ERR_STATE,
    }


def test_engine_misuse():
    # threads=0 is external-loop mode (tests/test_embed.py); threaded engines have no loop fd.
    zerohttp.Engine(threads=0).close()
    with zerohttp.Engine(threads=1) as threaded:
        with pytest.raises(zerohttp.ZhError) as ei:
            threaded.fileno()
        assert ei.value.code == zerohttp.ZH_ERR_STATE
        with pytest.raises(zerohttp.ZhError) as ei:
            threaded.step()
        assert ei.value.code == zerohttp.ZH_ERR_STATE
        assert threaded.next_timeout() is None
    with pytest.raises(zerohttp.ZhError) as ei:
        zerohttp.Engine(threads=100000)
    assert ei.value.code == zerohttp.ZH_ERR_INVALID
    engine = zerohttp.Engine(lambda r: r.respond(200), threads=1)
    with pytest.raises(zerohttp.ZhError) as ei:
        engine.listen("not an address")
    assert ei.value.code == zerohttp.ZH_ERR_ADDR and "zh_engine_listen" in str(ei.value)
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(zerohttp.ZhError) as ei:
        engine.listen("127.0.0.1:0")
    assert ei.value.code == zerohttp.ZH_ERR_STATE
    with pytest.raises(zerohttp.ZhError):
        engine.stats()
    with pytest.raises(zerohttp.ZhError) as ei:
        zerohttp.Response(1000)
    assert ei.value.code == zerohttp.ZH_ERR_INVALID


def test_limits_and_missing_handler(make_server):
    s = make_server(max_body=100)
    s.handler = lambda req: req.respond(200, b"%d" % len(req.body))
    assert requests.post(s.url + "/", data=b"x" * 100, timeout=CLIENT_TIMEOUT).text == "100"
    assert requests.post(s.url + "/", data=b"x" * 101, timeout=CLIENT_TIMEOUT).status_code == 413
    assert s.stats()["errors_limit"] == 1
    s.handler = None
    assert requests.get(s.url + "/", timeout=CLIENT_TIMEOUT).status_code == 500


def test_respond_after_shutdown_is_closed_error():
    held = []
    got = threading.Event()

    def h(req):
        held.append(req)
        got.set()

    engine = zerohttp.Engine(h, threads=1)
    port = engine.listen()
    engine.start()
    t = threading.Thread(target=lambda: _swallow(lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT)))
    t.start()
    assert got.wait(CLIENT_TIMEOUT)
    engine.shutdown(grace=0.1)
    with pytest.raises(zerohttp.ClosedError) as ei:
        held[0].respond(200, b"too late")
    assert ei.value.code == zerohttp.ZH_ERR_CLOSED
    engine.close()
    t.join(CLIENT_TIMEOUT)


def _swallow(fn):
    try:
        fn()
    except Exception:
        pass


def test_dropped_request_and_stream_are_answered(server, caplog):
    def h(req):
        if req.path == "/stream":
            st = req.respond_stream(200)
            st.write(b"partial")
            del st  # dropped without end(): aborted, the client sees a cut body
        # /drop: return without answering and keep no reference

    server.handler = h
    with caplog.at_level(logging.WARNING, logger="zerohttp"):
        r = requests.get(server.url + "/drop", timeout=CLIENT_TIMEOUT)
        assert r.status_code == 500
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(server.url + "/stream", timeout=CLIENT_TIMEOUT).content
    assert any("dropped without an answer" in rec.getMessage() for rec in caplog.records)
    assert any("dropped without end()" in rec.getMessage() for rec in caplog.records)
