"""File bodies: sendfile from a path, an fd or a file object; the bytes never pass through
Python (stats prove it)."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

import zerohttp

from conftest import CLIENT_TIMEOUT, wait_for

SIZE = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(SIZE >> 20):
            f.write(bytes([i]) + block[1:])
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_32mib_file_by_sendfile(server, big_file):
    server.handler = lambda req: req.respond_file(str(big_file))
    want = _sha(big_file.read_bytes())
    h = hashlib.sha256()
    n = 0
    with requests.get(server.url + "/big.bin", stream=True, timeout=CLIENT_TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Content-Type"] == "application/octet-stream"
        for chunk in r.iter_content(1 << 20):
            h.update(chunk)
            n += len(chunk)
    assert n == SIZE and h.hexdigest() == want
    st = server.stats()
    assert st["bytes_sendfile"] >= SIZE, st
    assert st["bytes_copy"] == 0, st


def test_file_from_fd_and_file_object(server, big_file):
    with open(big_file, "rb") as fobj:
        fd = os.open(big_file, os.O_RDONLY)
        try:
            def h(req):
                if req.path == "/fd":
                    req.respond_file(fd, offset=1000, length=5000, headers={"X-Src": "fd"})
                else:
                    req.respond_file(fobj, length=4096, content_type="x/y")

            server.handler = h
            data = big_file.read_bytes()
            r = requests.get(server.url + "/fd", timeout=CLIENT_TIMEOUT)
            assert r.content == data[1000:6000] and r.headers["X-Src"] == "fd"
            r = requests.get(server.url + "/obj", timeout=CLIENT_TIMEOUT)
            assert r.content == data[:4096] and r.headers["Content-Type"] == "x/y"
            # The caller's fd and file object stay open and usable (the engine got dups).
            assert os.pread(fd, 4, 0) == data[:4]
            assert fobj.read(4) == data[:4]
        finally:
            os.close(fd)


def test_file_errors_raise_zherror(server, tmp_path):
    small = tmp_path / "small.txt"
    small.write_bytes(b"abc")
    results = {}

    def h(req):
        try:
            req.respond_file(str(small), offset=10)  # past the end
        except zerohttp.ZhError as e:
            results["range"] = e.code
        try:
            req.respond_file(str(tmp_path / "missing"))
        except FileNotFoundError:
            results["missing"] = True
        try:
            req.respond_file(str(tmp_path))  # a directory is not a regular file
        except (zerohttp.ZhError, IsADirectoryError) as e:
            results["dir"] = getattr(e, "code", "oserror")
        req.respond(200, b"still here")

    server.handler = h
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.content == b"still here"
    assert results["range"] == zerohttp.ZH_ERR_RANGE
    assert results["missing"] is True
    assert results["dir"] in (zerohttp.ZH_ERR_INVALID, "oserror")


def test_force_copy_path_counts_copies(make_server, big_file):
    s = make_server(force_copy=True)
    s.handler = lambda req: req.respond_file(str(big_file), length=1 << 20)
    r = requests.get(s.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.content == big_file.read_bytes()[: 1 << 20]
    st = s.stats()
    assert st["bytes_copy"] >= 1 << 20 and st["bytes_sendfile"] == 0


def test_small_file_read_max(make_server, tmp_path):
    """Files up to small_file_read_max (default 4096) go with the head in one sendmsg, counted
    in bytes_copy; small_file_read_max=0 sends them by sendfile."""
    data = os.urandom(4096)
    f = tmp_path / "small.bin"
    f.write_bytes(data)
    for kwargs, copied, sent in (({}, 4096, 0), ({"small_file_read_max": 0}, 0, 4096), ({"small_file_read_max": 4095}, 0, 4096)):
        s = make_server(threads=1, **kwargs)
        s.handler = lambda req: req.respond_file(str(f))
        r = requests.get(s.url + "/", timeout=CLIENT_TIMEOUT)
        assert r.content == data
        assert wait_for(lambda: s.stats()["responses"] >= 1, timeout=5)
        st = s.stats()
        assert (st["bytes_copy"], st["bytes_sendfile"]) == (copied, sent), (kwargs, st)
    with pytest.raises(ValueError):
        zerohttp.Engine(small_file_read_max=-1)
    with pytest.raises(zerohttp.ZhError) as e:
        zerohttp.Engine(small_file_read_max=(1 << 20) + 1)
    assert e.value.code == zerohttp.ZH_ERR_INVALID


def test_serve_file_ranges_and_conditionals(server, tmp_path):
    if "zh_respond_file" in zerohttp.ffi.MISSING:
        pytest.fail("the loaded libzerohttp lacks zh_respond_file (rebuild with cargo build --release)")
    f = tmp_path / "page.html"
    body = b"<html>" + b"x" * 10000 + b"</html>"
    f.write_bytes(body)
    server.handler = lambda req: req.serve_file(str(f), headers={"Cache-Control": "max-age=60"})
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.content == body
    assert r.headers["Content-Type"] == "text/html" and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "max-age=60"
    etag = r.headers["ETag"]
    r = requests.get(server.url + "/", headers={"Range": "bytes=6-9"}, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 206 and r.content == body[6:10]
    assert r.headers["Content-Range"] == f"bytes 6-9/{len(body)}"
    r = requests.get(server.url + "/", headers={"If-None-Match": etag}, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 304 and r.content == b""
    r = requests.get(server.url + "/", headers={"Range": f"bytes={len(body) + 5}-"}, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 416
    server.handler = lambda req: req.serve_file(str(f), etag="v1", content_type="text/plain")
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.headers["ETag"] == '"v1"' and r.headers["Content-Type"] == "text/plain"
