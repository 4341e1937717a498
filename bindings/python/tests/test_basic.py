"""Requests and responses with real clients: http.client, urllib, requests."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.request

import requests

import zerohttp

from conftest import CLIENT_TIMEOUT


def hello(request):
    request.respond(200, b"hello\n", {"Content-Type": "text/plain"})


def test_hello_urllib(server):
    server.handler = hello
    with urllib.request.urlopen(server.url + "/", timeout=CLIENT_TIMEOUT) as r:
        assert r.status == 200
        assert r.read() == b"hello\n"
        assert r.headers["Content-Type"] == "text/plain"
        assert r.headers["Content-Length"] == "6"


def test_hello_requests_and_keepalive(server):
    server.handler = hello
    with requests.Session() as s:
        for _ in range(20):
            r = s.get(server.url + "/x", timeout=CLIENT_TIMEOUT)
            assert r.status_code == 200 and r.content == b"hello\n"
    st = server.stats()
    assert st["requests"] == 20 and st["responses"] == 20
    assert st["connections_accepted"] == 1  # one keep-alive connection


def test_hello_http_client_http10_and_head(server):
    server.handler = hello
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    c.request("HEAD", "/")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Length") == "6" and r.read() == b""
    c.request("GET", "/")
    assert c.getresponse().read() == b"hello\n"
    c.close()
    # HTTP/1.0 over a raw socket: version reported, connection closed after the response.
    seen = []

    def h(request):
        seen.append(request.version)
        hello(request)

    server.handler = h
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"\r\n\r\nhello\n")
    assert seen == ["HTTP/1.0"]


def test_request_accessors(server):
    def h(request):
        request.respond(
            200,
            json.dumps(
                {
                    "method": request.method,
                    "target": request.target,
                    "path": request.path,
                    "query": request.query,
                    "version": request.version,
                    "headers": request.headers,
                    "x_one": request.header("X-ONE"),
                    "x_multi": request.header_all("x-multi"),
                    "missing": request.header("x-missing", "dflt"),
                    "peer": request.peer,
                    "body_length": request.body_length,
                    "body": request.body.decode(),
                }
            ),
            content_type="application/json",
        )

    server.handler = h
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    c.putrequest("GET", "/a/b%20c?x=1&y=%C3%A9", skip_accept_encoding=True)
    c.putheader("X-One", "1")
    c.putheader("X-Multi", "a")
    c.putheader("x-multi", "b")
    c.endheaders()
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    d = json.loads(r.read())
    local_port = c.sock.getsockname()[1]
    c.close()
    assert d["method"] == "GET"
    assert d["target"] == "/a/b%20c?x=1&y=%C3%A9"
    assert d["path"] == "/a/b%20c"
    assert d["query"] == "x=1&y=%C3%A9"
    assert d["version"] == "HTTP/1.1"
    assert d["x_one"] == "1" and d["x_multi"] == ["a", "b"] and d["missing"] == "dflt"
    assert [h for h in d["headers"] if h[0].lower().startswith("x-")] == [["X-One", "1"], ["X-Multi", "a"], ["x-multi", "b"]]
    assert ["Host", f"127.0.0.1:{server.port}"] in d["headers"]
    assert d["peer"] == f"127.0.0.1:{local_port}"
    assert d["body_length"] == 0 and d["body"] == ""

    server.handler = lambda req: req.respond(200, repr(req.query))
    assert requests.get(server.url + "/noquery", timeout=CLIENT_TIMEOUT).text == "None"
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    c.request("GET", "/q?")  # an empty query is "", not None
    assert c.getresponse().read() == b"''"
    c.close()


def test_post_body_echo(server):
    def echo(request):
        request.respond(
            200,
            request.body,
            [("X-Len", str(len(request.body))), ("X-Body-Length", str(request.body_length)), ("X-Method", request.method)],
        )

    server.handler = echo
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    r = requests.post(server.url + "/echo", data=payload, timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.content == payload
    assert r.headers["X-Len"] == str(len(payload)) and r.headers["X-Body-Length"] == str(len(payload))
    # A chunked upload (a generator body): body_length None, the decoded body complete.
    r = requests.put(server.url + "/echo", data=(payload[i : i + 10000] for i in range(0, len(payload), 10000)), timeout=CLIENT_TIMEOUT)
    assert r.status_code == 200 and r.content == payload
    assert r.headers["X-Body-Length"] == "None" and r.headers["X-Method"] == "PUT"
    # urllib with a small body.
    req = urllib.request.Request(server.url + "/echo", data=b"a=1&b=2", method="POST")
    with urllib.request.urlopen(req, timeout=CLIENT_TIMEOUT) as resp:
        assert resp.read() == b"a=1&b=2"


def test_response_builder_and_statuses(server, tmp_path):
    f = tmp_path / "part.txt"
    f.write_bytes(b"0123456789")

    def h(request):
        if request.path == "/built":
            resp = zerohttp.Response(201, headers={"X-A": "1"})
            resp.header("X-B", 2).add(b"head:").add("caf\u00e9:").add_file(str(f), 2, 5)
            resp.add_lent(bytearray(b":lent"))
            request.send(resp)
        elif request.path == "/204":
            request.respond(204)
        elif request.path == "/reject":
            request.reject(418)
        else:
            request.respond(404, "no such thing", content_type="text/plain; charset=utf-8")

    server.handler = h
    r = requests.get(server.url + "/built", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 201 and r.headers["X-A"] == "1" and r.headers["X-B"] == "2"
    assert r.content == "head:caf\u00e9:23456:lent".encode()
    r = requests.get(server.url + "/204", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 204 and r.content == b""
    r = requests.get(server.url + "/reject", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 418
    r = requests.get(server.url + "/nope", timeout=CLIENT_TIMEOUT)
    assert r.status_code == 404 and r.text == "no such thing"


def test_large_bytes_body_is_lent(server):
    big = bytes(range(256)) * (4 * 4096)  # 4 MiB bytes object: lent, not copied
    live_before = len(zerohttp._core._handles)
    server.handler = lambda req: req.respond(200, big)
    for _ in range(3):
        r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
        assert r.content == big
    # Every lent buffer was released by the engine (the release callback dropped its handle).
    from conftest import wait_for

    assert wait_for(lambda: len(zerohttp._core._handles) == live_before)
