"""Shared fixtures: a running engine with a swappable handler, and the repository paths.

Run from the repository root (as `make test` does):
    ZEROHTTP_LIBRARY=$PWD/target/release/libzerohttp.so PYTHONPATH=bindings/python \
        build/venv/bin/pytest bindings/python/tests -q
"""

from __future__ import annotations

import os
import pathlib
import time

import pytest

import zerohttp

PKG_DIR = pathlib.Path(__file__).resolve().parents[1]  # bindings/python
REPO = PKG_DIR.parents[1]
HEADER = REPO / "include" / "zerohttp.h"

#: Client-side socket timeout for every request a test makes (seconds).
CLIENT_TIMEOUT = 20


class Server:
    """An engine on 127.0.0.1:<port> whose handler is `self.handler` (settable per test)."""

    def __init__(self, **engine_kwargs):
        self.handler = None
        self.errors: list[BaseException] = []
        self.engine = zerohttp.Engine(self._dispatch, **engine_kwargs)
        self.port = self.engine.listen("127.0.0.1:0")
        self.engine.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _dispatch(self, request):
        return self.handler(request)

    def stats(self):
        return self.engine.stats()

    def close(self):
        self.engine.close(grace=0.5)


@pytest.fixture
def server():
    """A running 2-worker engine; set `server.handler = fn` before making requests."""
    s = Server(threads=2)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def make_server():
    """Factory for engines with custom options (closed at the end of the test)."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("threads", 2)
        s = Server(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def wait_for(pred, timeout=10.0, interval=0.01):
    """Polls `pred()` until true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


@pytest.fixture(scope="session")
def library_path():
    return os.environ.get("ZEROHTTP_LIBRARY") or os.environ.get("ZEROHTTP_LIB") or zerohttp.library_path()
