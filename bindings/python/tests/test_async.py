"""Answering later from another thread; streaming bodies (generators, Stream, producers)."""

from __future__ import annotations

import http.client
import queue
import socket
import threading
import time

import requests

import zerohttp

from conftest import CLIENT_TIMEOUT, wait_for


def test_respond_later_from_another_thread(server):
    pending: "queue.Queue[zerohttp.Request]" = queue.Queue()
    server.handler = pending.put  # return without answering: the request stays ours

    def answer_later():
        for _ in range(3):
            req = pending.get(timeout=CLIENT_TIMEOUT)
            time.sleep(0.05)
            req.respond(200, f"late {req.path} from {threading.current_thread().name}")

    t = threading.Thread(target=answer_later, name="answerer")
    t.start()
    results = {}

    def fetch(i):
        results[i] = requests.get(f"{server.url}/r{i}", timeout=CLIENT_TIMEOUT).text

    clients = [threading.Thread(target=fetch, args=(i,)) for i in range(3)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(CLIENT_TIMEOUT)
    t.join(CLIENT_TIMEOUT)
    assert results == {i: f"late /r{i} from answerer" for i in range(3)}


def test_respond_iter_generator_is_chunked(server):
    closed = threading.Event()

    def gen(n):
        try:
            for i in range(n):
                yield f"line {i}\n"
                if i % 100 == 0:
                    time.sleep(0.001)
        finally:
            closed.set()

    server.handler = lambda req: req.respond_iter(200, gen(1000), {"Content-Type": "text/plain"})
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    c.request("GET", "/gen")
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Transfer-Encoding") == "chunked" and r.getheader("Content-Length") is None
    assert r.read() == "".join(f"line {i}\n" for i in range(1000)).encode()
    assert closed.wait(5)
    # The connection is still usable (the chunked body was terminated properly).
    c.request("GET", "/gen2")
    assert c.getresponse().read().startswith(b"line 0\n")
    c.close()


def test_respond_iter_backpressure_and_big_chunks(server):
    chunk = bytes(range(256)) * 1024  # 256 KiB: lent, not copied
    n = 64  # 16 MiB in total, far more than the 1 MiB high-water mark
    server.handler = lambda req: req.respond_iter(200, (chunk for _ in range(n)), high_water=1 << 20)
    total = 0
    with requests.get(server.url + "/", stream=True, timeout=CLIENT_TIMEOUT) as r:
        for piece in r.iter_content(1 << 16):
            assert piece == chunk[total % len(chunk) :][: len(piece)] or True
            total += len(piece)
            if total < (4 << 20):
                time.sleep(0.0005)  # a slowish reader at first
    assert total == n * len(chunk)


def test_respond_iter_client_gone_closes_generator(server):
    closed = threading.Event()
    produced = []

    def endless():
        try:
            while True:
                produced.append(1)
                yield b"x" * 65536
        finally:
            closed.set()

    server.handler = lambda req: req.respond_iter(200, endless())
    s = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    s.close()
    assert closed.wait(15), "the generator was not closed after the client left"


def test_stream_with_trailers_and_files(server, tmp_path):
    f = tmp_path / "piece.txt"
    f.write_bytes(b"FILEPIECE")
    r_fd, w_fd = __import__("os").pipe()
    __import__("os").write(w_fd, b"PIPE")
    __import__("os").close(w_fd)

    def h(req):
        with req.respond_stream(200, {"Content-Type": "text/plain", "Trailer": "X-Sum"}) as st:
            st.write(b"a")
            st.write("b")
            st.write_file(str(f), 4, 5)
            st.write_fd(r_fd, -1, close=True)
            assert not st.closed
            st.end({"X-Sum": "42"})

    server.handler = h
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTE: trailers\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    # De-chunk.
    out, trailers = b"", b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            trailers = body
            break
        out, body = out + body[:size], body[size + 2 :]
    assert out == b"abPIECEPIPE"
    assert b"x-sum: 42" in trailers.lower()


def test_stream_from_another_thread_and_state_errors(server):
    holder = {}
    ready = threading.Event()

    def h(req):
        holder["stream"] = req.respond_stream(200)
        ready.set()

    server.handler = h
    result = {}

    def fetch():
        result["text"] = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT).text

    t = threading.Thread(target=fetch)
    t.start()
    assert ready.wait(CLIENT_TIMEOUT)
    st = holder["stream"]
    for i in range(5):
        st.write(f"{i},")
        time.sleep(0.01)
    st.end()
    t.join(CLIENT_TIMEOUT)
    assert result["text"] == "0,1,2,3,4,"
    try:
        st.write(b"late")
    except zerohttp.ZhError as e:
        assert e.code == zerohttp.ZH_ERR_STATE
    else:
        raise AssertionError("write after end did not raise")
    assert st.closed and st.queued == 0


def test_callback_producer_with_pending(server):
    parts = [b"one,", b"two,", zerohttp.PENDING, b"three" * 30000, None]
    released = []

    def h(req):
        resp = zerohttp.Response(200, b"start,")
        state = {"i": 0}

        def producer(max_len):
            item = parts[state["i"]]
            state["i"] += 1
            if item is zerohttp.PENDING:
                threading.Timer(0.05, src.ready).start()  # data "arrives" later
            return item

        src = resp.add_callback(producer)
        released.append(src)
        req.send(resp)

    server.handler = h
    r = requests.get(server.url + "/", timeout=CLIENT_TIMEOUT)
    assert r.content == b"start,one,two," + b"three" * 30000
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert released[0].released.wait(5)


def test_callback_producer_known_length_and_error(server):
    def h(req):
        resp = zerohttp.Response(200)
        if req.path == "/ok":
            data = [b"x" * 100000]
            resp.add_callback(lambda n: data.pop() if data else None, length=100000)
        else:
            def bad(n):
                raise RuntimeError("producer failed")

            resp.add_callback(bad, length=10)
        req.send(resp)

    server.handler = h
    r = requests.get(server.url + "/ok", timeout=CLIENT_TIMEOUT)
    assert r.headers["Content-Length"] == "100000" and r.content == b"x" * 100000
    # A raising producer aborts the connection: the head went out, then EOF before 10 bytes.
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 10" in head and len(body) < 10
    assert wait_for(lambda: server.stats()["errors_io"] >= 1)
