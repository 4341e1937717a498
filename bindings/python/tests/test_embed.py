"""Embedding: external-loop mode (threads=0) driven by selectors and asyncio, adopted
connections, inherited listening sockets, per-engine log/access hooks, and the protocol
upgrade hand-off (a minimal WebSocket echo, RFC 6455)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import logging
import os
import selectors
import socket
import struct
import threading
import time

import pytest

import zerohttp

from conftest import CLIENT_TIMEOUT, wait_for


def _get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if conn is None:
            c.close()


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def _in_thread(fn, *args):
    """Runs fn(*args) on a thread; returns (thread, result list, error list)."""
    out: list = []
    err: list = []

    def run():
        try:
            out.append(fn(*args))
        except BaseException as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out, err


# ---- external-loop mode --------------------------------------------------------------------


def test_external_loop_with_selectors_serves_and_is_woken_by_answers_from_other_threads():
    loop_thread = threading.get_ident()
    handler_threads = set()

    def handler(req):
        handler_threads.add(threading.get_ident())
        if req.path == "/late":
            # Answer from another thread after a while: that must wake the loop's select().
            def later():
                time.sleep(0.05)
                req.respond(200, b"late")

            threading.Thread(target=later, daemon=True).start()
        else:
            req.respond(200, f"hello {req.path}")

    engine = zerohttp.Engine(handler, threads=0)
    try:
        assert engine.external
        fd = engine.fileno()
        assert fd >= 0
        port = engine.listen("127.0.0.1:0")
        before = _tasks()

        done_r, done_w = socket.socketpair()  # the client thread says "done" through the loop
        late = []

        def client():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
                got = [_get(port, f"/x{i}", conn) for i in range(20)]
                t0 = time.monotonic()
                got.append(_get(port, "/late", conn))
                late.append(time.monotonic() - t0)
                conn.close()
                return got
            finally:
                done_w.send(b"x")

        t, out, err = _in_thread(client)
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ, "engine")
        sel.register(done_r, selectors.EVENT_READ, "done")
        start = time.monotonic()
        tasks_during = 0
        running = True
        while running:
            assert time.monotonic() - start < 30, "client did not finish"
            tasks_during = max(tasks_during, _tasks())
            nt = engine.next_timeout()
            # Long waits: only engine work (I/O, a wake-up from an answering thread) ends them.
            for key, _ in sel.select(5.0 if nt is None else min(nt, 5.0)):
                if key.data == "engine":
                    assert engine.step(0)
                else:
                    running = False
        t.join()
        sel.close()
        done_r.close()
        done_w.close()
        assert not err, err
        assert late and late[0] < 2.5, f"the answer from another thread did not wake the loop ({late})"
        assert out[0][:20] == [(200, f"hello /x{i}".encode()) for i in range(20)]
        assert out[0][20] == (200, b"late")
        assert handler_threads == {loop_thread}, "handlers run inside step(), on the loop's thread"
        # No engine threads: only the client thread (and the answering thread) came and went.
        assert tasks_during <= before + 2
        assert engine.stats()["requests"] == 21
        assert engine.next_timeout() is None or engine.next_timeout() >= 0
    finally:
        engine.close()
    assert engine.step() is False


def test_external_loop_with_asyncio_add_reader():
    def handler(req):
        if req.path == "/late":
            threading.Timer(0.03, lambda: req.respond(200, b"late from a thread")).start()
        else:
            req.respond(200, b"via asyncio " + req.path.encode())

    engine = zerohttp.Engine(handler, threads=0)
    port = engine.listen("127.0.0.1:0")

    async def main():
        loop = asyncio.get_running_loop()
        timer: list[asyncio.TimerHandle | None] = [None]

        def pump():
            engine.step(0)
            if timer[0] is not None:
                timer[0].cancel()
            nt = engine.next_timeout()
            timer[0] = None if nt is None else loop.call_later(nt, pump)

        loop.add_reader(engine.fileno(), pump)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(
                    loop.run_in_executor(None, _get, port, "/a"),
                    loop.run_in_executor(None, _get, port, "/b"),
                    loop.run_in_executor(None, _get, port, "/late"),
                ),
                timeout=15,
            )
        finally:
            loop.remove_reader(engine.fileno())
            if timer[0] is not None:
                timer[0].cancel()
        return results

    try:
        results = asyncio.run(main())
        assert results == [(200, b"via asyncio /a"), (200, b"via asyncio /b"), (200, b"late from a thread")]
    finally:
        engine.close()


def test_external_run_in_a_thread_and_close_from_another():
    engine = zerohttp.Engine(lambda req: req.respond(200, b"ok"), threads=0)
    port = engine.listen("127.0.0.1:0")
    t, _, err = _in_thread(engine.run)
    try:
        for _ in range(5):
            assert _get(port, "/") == (200, b"ok")
    finally:
        engine.close(grace=0.2)  # waits for the running step(), then shuts down here
    t.join(10)
    assert not t.is_alive() and not err, err
    assert engine.closed


def test_step_from_a_handler_is_refused():
    seen = []

    def handler(req):
        try:
            req.engine.step(0)
        except zerohttp.ZhError as e:
            seen.append(e.code)
        req.respond(200, b"x")

    engine = zerohttp.Engine(handler, threads=0)
    port = engine.listen("127.0.0.1:0")
    try:
        t, out, _ = _in_thread(_get, port, "/")
        while t.is_alive():
            engine.step(0.05)
        assert out == [(200, b"x")] and seen == [zerohttp.ZH_ERR_STATE]
    finally:
        engine.close()


# ---- adopt / listen_socket -------------------------------------------------------------------


def test_adopt_a_connection_accepted_by_python_with_bytes_already_read(server):
    server.handler = lambda req: req.respond(200, f"adopted {req.method} {req.path}")
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    host.settimeout(CLIENT_TIMEOUT)
    t, out, err = _in_thread(_get, host.getsockname()[1], "/sniffed")
    conn, _ = host.accept()
    conn.settimeout(CLIENT_TIMEOUT)
    first = b""
    while len(first) < 4:
        first += conn.recv(4 - len(first))
    assert first == b"GET "
    server.engine.adopt(conn, initial=first)
    assert conn.fileno() == -1, "the socket object is closed: the connection is the engine's"
    t.join(CLIENT_TIMEOUT)
    assert not err, err
    assert out == [(200, b"adopted GET /sniffed")]
    host.close()

    # Not a connected TCP socket: nothing is taken.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(zerohttp.ZhError) as ei:
        server.engine.adopt(udp)
    assert ei.value.code == zerohttp.ZH_ERR_INVALID
    assert udp.fileno() >= 0
    udp.close()


def test_adopt_into_an_external_loop():
    engine = zerohttp.Engine(lambda req: req.respond(200, req.body), threads=0)
    a, b = socket.socket(), socket.socket()
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    a.connect(host.getsockname())
    b, _ = host.accept()
    host.close()
    try:
        a.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        head = b.recv(3)
        engine.adopt(b, head)
        a.settimeout(0.01)
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            engine.step(0.01)
            try:
                chunk = a.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"\r\n\r\nhello"), got
    finally:
        a.close()
        engine.close()


def test_listen_socket():
    engine = zerohttp.Engine(lambda req: req.respond(200, b"inherited"), threads=2)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        port = engine.listen_socket(sock)
        assert port == sock.getsockname()[1] and port in engine.ports
        sock.close()  # ours; the engine serves through its own dup
        engine.start()
        for _ in range(10):
            assert _get(port, "/") == (200, b"inherited")
        # A socket that is not listening is refused and nothing is taken.
        unbound = socket.socket()
        with pytest.raises(zerohttp.ZhError) as ei:
            engine.listen_socket(unbound)
        assert ei.value.code == zerohttp.ZH_ERR_INVALID
        assert unbound.fileno() >= 0
        unbound.close()
    finally:
        engine.close()


# ---- hooks -----------------------------------------------------------------------------------


def test_access_and_log_hooks_are_per_engine():
    a_access, b_access, a_log, b_log = [], [], [], []
    handler = lambda req: req.respond(200, b"x")  # noqa: E731
    a = zerohttp.Engine(handler, threads=1, header_timeout=0.2, log=lambda lv, m: a_log.append((lv, m)), access_log=a_access.append)
    b = zerohttp.Engine(handler, threads=1, log=lambda lv, m: b_log.append((lv, m)), access_log=b_access.append)
    try:
        pa, pb = a.listen(), b.listen()
        a.start()
        b.start()
        assert _get(pa, "/one") == (200, b"x")
        assert _get(pb, "/two?q=1") == (200, b"x")
        # A slow head on A: a timeout that A (and only A) logs.
        s = socket.create_connection(("127.0.0.1", pa), timeout=CLIENT_TIMEOUT)
        s.sendall(b"GET / HT")
        while s.recv(4096):
            pass
        s.close()
        assert wait_for(lambda: a_log and len(a_access) >= 1 and len(b_access) >= 1, timeout=10)
        rec = a_access[0]
        assert rec["method"] == "GET" and rec["target"] == "/one" and rec["status"] == 200
        assert rec["strategy"] == "writev" and rec["bytes"] > 1
        assert rec["peer"].startswith("127.0.0.1:")
        assert rec["duration_us"] >= 0 and rec["duration"] == rec["duration_us"] / 1e6
        assert [(r["target"], r["status"]) for r in b_access] == [("/two?q=1", 200)]
        assert any(lv == zerohttp.ZH_LOG_INFO and "imeout" in m for lv, m in a_log), a_log
        assert not any("imeout" in m for _, m in b_log), b_log
        assert all(r["target"] != "/two?q=1" for r in a_access)
    finally:
        a.close()
        b.close()


def test_log_to_a_logger_and_a_raising_sink_is_contained(caplog):
    caplog.set_level(logging.DEBUG)

    def bad_access(record):
        raise RuntimeError("sink broke")

    engine = zerohttp.Engine(lambda req: req.respond(200, b"y"), threads=1, header_timeout=0.2,
                             log=logging.getLogger("zh.test.engine"), access_log=bad_access)
    try:
        port = engine.listen()
        engine.start()
        assert _get(port, "/") == (200, b"y")
        s = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
        s.sendall(b"GET / HT")
        while s.recv(4096):
            pass
        s.close()
        assert wait_for(lambda: any(r.name == "zh.test.engine" for r in caplog.records), timeout=10)
        assert any("access-log callback raised" in r.getMessage() for r in caplog.records)
        assert _get(port, "/again") == (200, b"y"), "the engine keeps serving"
    finally:
        engine.close()


# ---- upgrade hand-off: a minimal WebSocket echo ---------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def _recv_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed mid-frame")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def ws_read_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """One frame (no fragmentation): (opcode, unmasked payload)."""
    b0, b1 = _recv_exact(sock, buf, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", _recv_exact(sock, buf, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", _recv_exact(sock, buf, 8))
    mask = _recv_exact(sock, buf, 4) if b1 & 0x80 else None
    payload = _recv_exact(sock, buf, n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return b0 & 0x0F, payload


def ws_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + payload


def ws_echo(sock: socket.socket | None, initial: bytes, errors: list) -> None:
    """on_upgrade: echo frames on the handed-over socket, in a thread (must not block here)."""
    if sock is None:
        errors.append("hand-off did not happen")
        return

    def run():
        buf = bytearray(initial)
        try:
            with sock:
                sock.settimeout(CLIENT_TIMEOUT)
                while True:
                    opcode, payload = ws_read_frame(sock, buf)
                    if opcode == 0x8:  # close: answer it and stop
                        sock.sendall(ws_frame(0x8, payload))
                        return
                    sock.sendall(ws_frame(opcode, payload))  # server frames are not masked
        except EOFError:
            pass
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threading.Thread(target=run, daemon=True).start()


def _ws_handler(errors: list):
    def handler(req):
        if req.path == "/ws" and (req.header("Upgrade") or "").lower() == "websocket":
            key = req.header("Sec-WebSocket-Key")
            if not key or req.header("Sec-WebSocket-Version") != "13":
                req.respond(400, b"bad handshake")
                return
            req.upgrade(
                101,
                {"Upgrade": "websocket", "Sec-WebSocket-Accept": ws_accept(key)},
                on_upgrade=lambda sock, initial: ws_echo(sock, initial, errors),
            )
        else:
            req.respond(200, b"plain http")

    return handler


def _ws_handshake(port: int, extra: bytes = b"") -> tuple[socket.socket, bytearray, dict]:
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    s.sendall(
        (
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + extra
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"closed during the handshake: {bytes(buf)!r}"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101"), lines
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["sec-websocket-accept"] == ws_accept(key)
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"].lower() == "upgrade"
    assert "content-length" not in headers and "transfer-encoding" not in headers
    return s, bytearray(rest), headers


def test_websocket_echo_over_the_upgrade_hand_off(make_server):
    errors: list = []
    s = make_server(threads=1)
    s.handler = _ws_handler(errors)
    assert ws_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3

    sock, buf, _ = _ws_handshake(s.port)
    with sock:
        sock.sendall(ws_frame(0x1, b"hello", mask=os.urandom(4)))
        raw = _recv_exact(sock, buf, 7)
        assert raw == b"\x81\x05hello", raw  # FIN + text, unmasked, "hello"
        sock.sendall(ws_frame(0x8, b"\x03\xe8", mask=os.urandom(4)))
        assert ws_read_frame(sock, buf) == (0x8, b"\x03\xe8")
    assert not errors, errors

    # A frame sent together with the handshake reaches the new owner as `initial`.
    sock, buf, _ = _ws_handshake(s.port, extra=ws_frame(0x1, b"early bird", mask=b"abcd"))
    with sock:
        assert ws_read_frame(sock, buf) == (0x1, b"early bird")
    assert not errors, errors

    # The engine keeps serving plain HTTP on other connections.
    assert _get(s.port, "/") == (200, b"plain http")


def test_upgrade_that_cannot_happen_reports_none(make_server):
    told: list = []
    s = make_server(threads=1)

    def handler(req):
        if req.path == "/no101":
            # A 101 without an upgrade is refused, and the request can still be answered.
            with pytest.raises(zerohttp.ZhError) as ei:
                req.send(zerohttp.Response(101))
            assert ei.value.code == zerohttp.ZH_ERR_INVALID
            req.respond(200, b"still mine")
        else:
            # A 200 to a plain GET is no switch: the response goes out normally and on_upgrade
            # hears (None, b"").
            req.send(zerohttp.Response(200, b"normal").set_upgrade(lambda sock, initial: told.append((sock, initial))))

    s.handler = handler
    assert _get(s.port, "/") == (200, b"")  # the body of an upgrade response is dropped
    assert wait_for(lambda: told, timeout=5) == [(None, b"")]
    assert _get(s.port, "/no101") == (200, b"still mine")
    # An unsent response with an upgrade reports None when closed.
    r = zerohttp.Response(101).set_upgrade(lambda sock, initial: told.append(("closed", sock)))
    r.close()
    assert told[-1] == ("closed", None)


# ---- host transports -----------------------------------------------------------------------


def _waker(handle: zerohttp.Transport, sock: socket.socket, stop: threading.Event) -> threading.Thread:
    """The host's side: wakes the engine whenever the socket is readable (and now and then, for
    writes that were not ready)."""

    def run():
        sel = selectors.DefaultSelector()
        sel.register(sock.fileno(), selectors.EVENT_READ)
        try:
            while not stop.is_set() and not handle.closed.is_set():
                sel.select(0.005)
                handle.ready()
        finally:
            sel.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _read_response(c: socket.socket, buf: bytearray) -> tuple[str, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = c.recv(65536)
        assert chunk, bytes(buf)
        buf += chunk
    p = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:p]).decode("latin-1")
    n = int(next(line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-length:")))
    while len(buf) < p + n:
        chunk = c.recv(65536)
        assert chunk
        buf += chunk
    body = bytes(buf[p : p + n])
    del buf[: p + n]
    return head, body


def test_host_transport_over_a_socketpair(make_server, tmp_path):
    data = bytes(i % 241 for i in range(1_000_000))
    (tmp_path / "f").write_bytes(data)
    s = make_server(threads=1)
    s.handler = lambda req: req.respond_file(tmp_path / "f") if req.path == "/file" else req.respond(200, f"over transport {req.path} body {len(req.body)} from {req.peer}")
    ours, theirs = socket.socketpair()
    handle = s.engine.adopt_transport(zerohttp.SocketTransport(ours), peer="10.0.0.1:4433")
    stop = threading.Event()
    w = _waker(handle, ours, stop)
    try:
        theirs.settimeout(CLIENT_TIMEOUT)
        theirs.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        buf = bytearray()
        head, body = _read_response(theirs, buf)
        assert head.startswith("HTTP/1.1 200") and body == b"over transport /x body 3 from 10.0.0.1:4433"
        theirs.sendall(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n")
        _, body = _read_response(theirs, buf)
        assert body == data
        # File regions go through a pooled buffer (a transport cannot take sendfile); the
        # counter is bumped after the write, so the client may see the bytes first.
        assert wait_for(lambda: s.stats()["bytes_copy"] == len(data), timeout=5), s.stats()
        assert s.stats()["bytes_sendfile"] == 0
        theirs.close()  # the client leaves: the engine reads EOF and closes the transport once
        assert handle.closed.wait(10)
        assert ours.fileno() == -1
    finally:
        stop.set()
        w.join(5)


def test_host_transport_carries_tls_terminated_by_python_ssl(make_server, tmp_path):
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    s = make_server(threads=1)
    s.handler = lambda req: req.respond(200, f"secret {req.path} {req.peer}")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    port = lsock.getsockname()[1]

    def client():
        ctx = ssl.create_default_context(cafile=str(cert))
        c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=CLIENT_TIMEOUT)
        out = []
        for path in ("/a", "/b"):
            c.request("GET", path)
            r = c.getresponse()
            out.append((r.status, r.read()))
        c.close()
        return out

    t, out, err = _in_thread(client)
    lsock.settimeout(CLIENT_TIMEOUT)
    raw, addr = lsock.accept()
    lsock.close()
    raw.settimeout(CLIENT_TIMEOUT)
    tls = server_ctx.wrap_socket(raw, server_side=True)  # handshake here, blocking, then hand over
    handle = s.engine.adopt_transport(zerohttp.SocketTransport(tls), peer=f"{addr[0]}:{addr[1]}")
    stop = threading.Event()
    w = _waker(handle, tls, stop)
    try:
        t.join(CLIENT_TIMEOUT)
        assert not err, err
        peer = f"{addr[0]}:{addr[1]}"
        assert out == [[(200, f"secret /a {peer}".encode()), (200, f"secret /b {peer}".encode())]]
        assert handle.closed.wait(10), "the client closed: the engine closes the transport"
    finally:
        stop.set()
        w.join(5)


def test_wake_ends_a_step_that_waits_on_another_thread():
    engine = zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=0)
    try:
        engine.step(0)
        took = []

        def stepper():
            t0 = time.monotonic()
            engine.step(60)
            took.append(time.monotonic() - t0)

        t = threading.Thread(target=stepper)
        t.start()
        time.sleep(0.2)
        engine.wake()
        t.join(CLIENT_TIMEOUT)
        assert not t.is_alive() and took[0] < 30  # not the 60 s it was given
    finally:
        engine.close()
    with zerohttp.Engine(lambda r: None, threads=1) as threaded:
        with pytest.raises(zerohttp.ZhError) as e:
            threaded.wake()
        assert e.value.name == "ZH_ERR_STATE"
