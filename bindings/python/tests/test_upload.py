"""Request bodies straight into a file from a head handler (splice socket -> pipe -> file)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import requests

import zerohttp

from conftest import CLIENT_TIMEOUT


def test_upload_to_file_by_splice(make_server, tmp_path):
    done = {}

    def on_head(req):
        if req.method != "PUT":
            return  # not claimed: buffered, then the main handler runs
        target = tmp_path / req.path.lstrip("/")

        def on_done(request, nbytes, error):
            done[request.path] = (nbytes, error, threading.current_thread().name)
            if error:
                request.respond(500, os.strerror(error))
            else:
                request.respond(201, f"stored {nbytes}\n", {"Location": request.path})

        req.body_to_file(str(target), on_done)

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(200, b"main handler: " + req.body)
    payload = os.urandom(8 * 1024 * 1024)
    r = requests.put(s.url + "/up.bin", data=payload, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 201, r.text
    assert r.text == f"stored {len(payload)}\n" and r.headers["Location"] == "/up.bin"
    assert (tmp_path / "up.bin").read_bytes() == payload
    assert done["/up.bin"][:2] == (len(payload), 0)
    st = s.stats()
    assert st["body_bytes_spliced"] > 0, st
    assert st["body_bytes_spliced"] + st["body_bytes_copied"] == len(payload), st
    # A POST is not claimed by the head handler: the main handler gets the buffered body.
    r = requests.post(s.url + "/other", data=b"buffered", timeout=CLIENT_TIMEOUT)
    assert r.text == "main handler: buffered"


def test_a_body_that_cannot_fit_is_refused_before_it_is_sent(make_server, tmp_path):
    """A Content-Length body's file range is reserved first: 4 EiB fails there (EFBIG on ext4,
    ENOSPC on tmpfs), on_done says so with 0 bytes, and no 100 Continue invites the body."""
    import errno
    import socket

    done = []

    def on_head(req):
        def on_done(request, nbytes, error):
            done.append((nbytes, error))
            request.respond(507, os.strerror(error))

        req.body_to_file(str(tmp_path / "huge.bin"), on_done)

    s = make_server(head_handler=on_head)
    with socket.create_connection(("127.0.0.1", s.port), timeout=CLIENT_TIMEOUT) as c:
        c.sendall(b"PUT /huge.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 4611686018427387904\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = b""
        while True:  # the connection closes after the answer
            b = c.recv(65536)
            if not b:
                break
            data += b
    assert data.startswith(b"HTTP/1.1 507 "), data
    assert done == [(0, errno.EFBIG)] or done == [(0, errno.ENOSPC)], done
    assert os.stat(tmp_path / "huge.bin").st_blocks == 0


def test_upload_into_fd_and_file_object_with_offset(make_server, tmp_path):
    path = tmp_path / "spool.bin"
    fobj = open(path, "w+b")
    fobj.write(b"HEADER--")
    fobj.flush()

    def on_head(req):
        req.body_to_file(fobj, lambda request, n, err: request.respond(200, str(n)), offset=8)

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(500)
    payload = b"0123456789" * 100000
    try:
        r = requests.post(s.url + "/", data=payload, timeout=CLIENT_TIMEOUT)
        assert r.text == str(len(payload))
        assert path.read_bytes() == b"HEADER--" + payload
        # Chunked uploads are de-framed by the engine (payload spliced or written by pwrite).
        fobj.truncate(0)
        before = s.stats()
        r = requests.post(s.url + "/", data=iter([payload[:300000], payload[300000:]]), timeout=CLIENT_TIMEOUT)
        assert r.text == str(len(payload))
        assert path.read_bytes()[8:] == payload
        after = s.stats()
        moved = lambda st: st["body_bytes_spliced"] + st["body_bytes_copied"]  # noqa: E731
        assert moved(after) - moved(before) == len(payload)
    finally:
        fobj.close()


def test_head_handler_answers_early(make_server):
    seen = []

    def on_head(req):
        seen.append((req.method, req.path, req.body_length, req.header("content-type")))
        if int(req.header("content-length", "0")) > 1000:
            req.reject(413)

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(200, b"got %d" % len(req.body))
    r = requests.post(s.url + "/big", data=b"x" * 5000, headers={"Content-Type": "a/b"}, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 413
    r = requests.post(s.url + "/small", data=b"x" * 10, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.text == "got 10"
    assert seen[0] == ("POST", "/big", 5000, "a/b")


def test_head_handler_misuse_and_exceptions(make_server, tmp_path, caplog):
    errors = {}

    def on_head(req):
        if req.path == "/raise":
            raise ValueError("boom in head handler")
        try:
            req.body
        except zerohttp.ZhError as e:
            errors["body"] = e.code
        if req.path == "/twice":
            req.body_to_file(str(tmp_path / "a"), lambda r, n, e: r.respond(200, b"once"))
            try:
                req.body_to_file(str(tmp_path / "b"), lambda r, n, e: None)
            except zerohttp.ZhError as e:
                errors["twice"] = e.code

    def handler(req):
        try:
            req.body_to_file(str(tmp_path / "c"), lambda r, n, e: None)
        except zerohttp.ZhError as e:
            errors["main"] = e.code
        req.respond(200, b"main")

    s = make_server(head_handler=on_head)
    s.handler = handler
    r = requests.post(s.url + "/raise", data=b"abc", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 500
    assert any("boom in head handler" in rec.getMessage() or (rec.exc_info and "boom" in str(rec.exc_info[1])) for rec in caplog.records)
    r = requests.post(s.url + "/twice", data=b"abc", timeout=CLIENT_TIMEOUT)
    assert r.text == "once"
    assert errors["twice"] == zerohttp.ZH_ERR_ALREADY_USED
    assert errors["body"] == zerohttp.ZH_ERR_STATE
    r = requests.post(s.url + "/main", data=b"abc", timeout=CLIENT_TIMEOUT)
    assert r.text == "main" and errors["main"] == zerohttp.ZH_ERR_STATE


def test_upload_on_done_exception_is_500(make_server, tmp_path):
    def on_head(req):
        def on_done(request, n, err):
            raise RuntimeError("on_done failed")

        req.body_to_file(str(tmp_path / "x"), on_done)

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(200)
    r = requests.post(s.url + "/", data=b"x" * 1000, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 500
    assert hashlib.sha256((tmp_path / "x").read_bytes()).digest() == hashlib.sha256(b"x" * 1000).digest()


def test_read_body_streaming_with_pause_and_resume(make_server):
    got = {}

    def on_head(req):
        pieces = []

        def on_data(request, chunk):
            pieces.append(chunk)
            if len(pieces) == 1:
                # Pause after the first piece; resume from another thread a bit later.
                threading.Timer(0.1, request.resume_body).start()
                return zerohttp.PENDING
            return None

        def on_end(request, total, error):
            body = b"".join(pieces)
            got["total"], got["error"], got["pieces"] = total, error, len(pieces)
            request.respond(200, hashlib.sha256(body).hexdigest())

        req.read_body(on_data, on_end)

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(500)
    payload = os.urandom(3 * 1024 * 1024)
    r = requests.post(s.url + "/", data=payload, timeout=CLIENT_TIMEOUT)
    assert r.text == hashlib.sha256(payload).hexdigest()
    assert got["total"] == len(payload) and got["error"] == 0 and got["pieces"] >= 2
    # Chunked request bodies arrive de-framed.
    r = requests.post(s.url + "/", data=iter([payload[:1000], payload[1000:]]), timeout=CLIENT_TIMEOUT)
    assert r.text == hashlib.sha256(payload).hexdigest()


def test_read_body_on_data_exception_is_500(make_server):
    def on_head(req):
        def on_data(request, chunk):
            raise RuntimeError("on_data failed")

        req.read_body(on_data, lambda request, total, error: request.respond(200, b"not reached"))

    s = make_server(head_handler=on_head)
    s.handler = lambda req: req.respond(200)
    r = requests.post(s.url + "/", data=b"x" * 100000, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 500
    # The engine stays healthy.
    s.engine.head_handler = lambda req: None
    assert requests.post(s.url + "/", data=b"abc", timeout=CLIENT_TIMEOUT).status_code == 200


def test_spooled_bodies(make_server, tmp_path):
    if {"zh_config_set_spool", "zh_request_body_fd"} & set(zerohttp.ffi.MISSING):
        pytest.fail(f"the loaded libzerohttp lacks {zerohttp.ffi.MISSING} (rebuild with cargo build --release)")
    seen = {}

    def handler(req):
        seen["spooled"] = req.body_spooled
        seen["fd"] = req.body_fd()
        n = req.copy_body_to(str(tmp_path / f"copy{req.path.strip('/')}"))
        req.respond(200, hashlib.sha256(req.body).hexdigest(), {"X-Copied": str(n)})

    s = make_server(spool_threshold=64 * 1024, spool_dir=str(tmp_path))
    s.handler = handler
    big = os.urandom(2 * 1024 * 1024)
    r = requests.post(s.url + "/1", data=big, timeout=CLIENT_TIMEOUT)
    assert r.text == hashlib.sha256(big).hexdigest() and r.headers["X-Copied"] == str(len(big))
    assert seen["spooled"] is True and seen["fd"][1] == len(big)
    assert (tmp_path / "copy1").read_bytes() == big
    small = b"tiny body"
    r = requests.post(s.url + "/2", data=small, timeout=CLIENT_TIMEOUT)
    assert r.text == hashlib.sha256(small).hexdigest() and r.headers["X-Copied"] == str(len(small))
    assert seen["spooled"] is False and seen["fd"] is None
    assert (tmp_path / "copy2").read_bytes() == small
