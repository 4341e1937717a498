"""Several engines in one process; run()/shutdown from another thread; stats."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

import zerohttp

from conftest import CLIENT_TIMEOUT


def test_two_engines_side_by_side():
    a = zerohttp.Engine(lambda r: r.respond(200, b"A" + r.path.encode()), threads=2)
    b = zerohttp.Engine(lambda r: r.respond(200, b"B" + r.path.encode()), threads=1)
    with a, b:
        pa, pb = a.listen(), b.listen()
        a.start()
        b.start()
        results = []

        def fetch(port, i):
            results.append(requests.get(f"http://127.0.0.1:{port}/{i}", timeout=CLIENT_TIMEOUT).text)

        threads = [threading.Thread(target=fetch, args=(p, i)) for i in range(10) for p in (pa, pb)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CLIENT_TIMEOUT)
        assert sorted(results) == sorted([f"A/{i}" for i in range(10)] + [f"B/{i}" for i in range(10)])
        assert a.stats()["requests"] == 10 and b.stats()["requests"] == 10
        # Closing one leaves the other serving.
        a.close()
        assert requests.get(f"http://127.0.0.1:{pb}/x", timeout=CLIENT_TIMEOUT).text == "B/x"
    assert a.closed and b.closed


def test_run_blocks_until_shutdown_from_another_thread():
    engine = zerohttp.Engine(lambda r: r.respond(200, b"running"), threads=1)
    port = engine.listen(("127.0.0.1", 0))
    runner = threading.Thread(target=engine.run)
    runner.start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT).text == "running"
        assert runner.is_alive()
    finally:
        engine.shutdown(grace=0.2)
        runner.join(CLIENT_TIMEOUT)
        engine.close()
    assert not runner.is_alive()


def test_listen_several_addresses_and_ipv6():
    with zerohttp.Engine(lambda r: r.respond(200, r.peer), threads=1) as engine:
        p1 = engine.listen("127.0.0.1:0")
        engine.start()
        try:
            p2 = engine.listen(("::1", 0))
        except zerohttp.ZhError:
            p2 = None  # no IPv6 loopback here
        assert requests.get(f"http://127.0.0.1:{p1}/", timeout=CLIENT_TIMEOUT).text.startswith("127.0.0.1:")
        if p2 is not None:
            assert requests.get(f"http://[::1]:{p2}/", timeout=CLIENT_TIMEOUT).text.startswith("[::1]:")
        assert engine.ports[0] == p1


def test_many_engines_created_and_freed():
    for _ in range(20):
        with zerohttp.Engine(lambda r: r.respond(200), threads=1) as e:
            port = e.listen()
            e.start()
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT).status_code == 200
    # No handle of any engine or response is left behind.
    assert len(zerohttp._core._handles) == 0


def _congestion(sock: socket.socket) -> str:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0", 1)[0].decode()


def test_tcp_congestion_reaches_the_listener():
    # reno: the algorithm every process may choose.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    default = _congestion(lsock)
    with zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=1, tcp_congestion="reno") as engine:
        port = engine.listen_socket(lsock)
        engine.start()
        assert _congestion(lsock) == "reno"
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=CLIENT_TIMEOUT).text == "ok"
    lsock.close()
    if default != "reno":
        with zerohttp.Engine(lambda r: r.respond(200, b"ok"), threads=1) as engine:
            other = socket.socket()
            other.bind(("127.0.0.1", 0))
            other.listen(16)
            engine.listen_socket(other)
            assert _congestion(other) == default
            other.close()


def test_tcp_congestion_refused_names():
    with pytest.raises(zerohttp.ZhError) as e:
        zerohttp.Engine(lambda r: None, threads=1, tcp_congestion="no-such-cc")
    assert e.value.name == "ZH_ERR_UNSUPPORTED"
    with pytest.raises(zerohttp.ZhError) as e:
        zerohttp.Engine(lambda r: None, threads=1, tcp_congestion="has space")
    assert e.value.name == "ZH_ERR_INVALID"
