"""serve_file_at: files beneath a directory fd through the worker's open-file cache; the
request stays ours when the file cannot be served."""

from __future__ import annotations

import os
import time

import requests

from conftest import CLIENT_TIMEOUT


def _tree(tmp_path):
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "page.html").write_text("<p>hello</p>")
    (tmp_path / "secret").write_text("outside")
    os.symlink("../secret", www / "escape")
    return www, os.open(www, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _handler(dir_fd):
    def handle(req):
        try:
            req.serve_file_at(dir_fd, req.path)
        except FileNotFoundError:
            req.respond(404, b"missing\n")
        except PermissionError:
            req.respond(403, b"forbidden\n")
        except IsADirectoryError:
            req.respond(301, b"", headers={"Location": req.path + "/"})
    return handle


def test_cached_files_cost_one_open(make_server, tmp_path):
    www, dir_fd = _tree(tmp_path)
    try:
        s = make_server(threads=1, file_cache=(16, 60.0))
        s.handler = _handler(dir_fd)
        for _ in range(4):
            r = requests.get(s.url + "/page.html", timeout=CLIENT_TIMEOUT)
            assert r.status_code == 200 and r.text == "<p>hello</p>"
            assert r.headers["Content-Type"] == "text/html"
        r = requests.get(s.url + "/page.html", headers={"Range": "bytes=3-7"}, timeout=CLIENT_TIMEOUT)
        assert r.status_code == 206 and r.text == "hello"
        st = s.stats()
        assert (st["file_opens"], st["file_cache_hits"]) == (1, 4), st
    finally:
        os.close(dir_fd)


def test_failures_leave_the_request_to_the_caller(make_server, tmp_path):
    www, dir_fd = _tree(tmp_path)
    try:
        s = make_server(threads=1)
        s.handler = _handler(dir_fd)
        got = {p: requests.get(s.url + p, allow_redirects=False, timeout=CLIENT_TIMEOUT).status_code
               for p in ("/missing", "/escape", "/sub", "/page.html")}
        assert got == {"/missing": 404, "/escape": 403, "/sub": 301, "/page.html": 200}
    finally:
        os.close(dir_fd)


def test_a_changed_file_is_seen_after_the_interval(make_server, tmp_path):
    www, dir_fd = _tree(tmp_path)
    try:
        s = make_server(threads=1, file_cache=(16, 0.2))
        s.handler = _handler(dir_fd)
        assert requests.get(s.url + "/page.html", timeout=CLIENT_TIMEOUT).text == "<p>hello</p>"
        (www / "new.html").write_text("<p>changed</p>")
        os.rename(www / "new.html", www / "page.html")
        time.sleep(0.3)
        assert requests.get(s.url + "/page.html", timeout=CLIENT_TIMEOUT).text == "<p>changed</p>"
        assert s.stats()["file_opens"] == 2
    finally:
        os.close(dir_fd)
