"""`pip install ./bindings/python` into a throwaway venv, then the example server from that
install serves a file that curl (or urllib, without curl) downloads byte-identical."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request

from conftest import CLIENT_TIMEOUT, PKG_DIR


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZEROHTTP_LIBRARY", "ZEROHTTP_LIB", "PYTHONHOME")}
    env.update(extra)
    return env


def test_pip_install_and_serve_a_file(tmp_path, library_path):
    # A copy of the source tree, so the build leaves nothing behind in the repository.
    src = tmp_path / "src"
    shutil.copytree(PKG_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache", "libzerohttp.so*"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    env = _clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    # Offline when the venv already has setuptools and wheel; else pip fetches them from PyPI
    # for an isolated build (the usual case).
    has_setuptools = subprocess.run([py, "-c", "import setuptools, wheel, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 61)"], env=env).returncode == 0
    cmd = [py, "-m", "pip", "install", "-q", "--no-deps"] + (["--no-build-isolation"] if has_setuptools else []) + [str(src)]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    # Imported from the venv's site-packages, not from the source tree.
    r = subprocess.run(
        [py, "-c", "import zerohttp; print(zerohttp.__file__); print(zerohttp.version())"],
        env=_clean_env(ZEROHTTP_LIBRARY=library_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    where, ver = r.stdout.split()
    assert where.startswith(str(venv)) and "site-packages" in where
    assert ver == "0.1.0"

    # The example server, run by the installed package.
    www = tmp_path / "www"
    www.mkdir()
    payload = os.urandom(4 * 1024 * 1024 + 123)
    (www / "data file.bin").write_bytes(payload)
    server = subprocess.Popen(
        # -X faulthandler: if it ever hangs on the way out, SIGABRT makes it print every
        # thread's Python stack (see the finally block below).
        [py, "-X", "faulthandler", str(PKG_DIR / "examples" / "serve_file.py"), str(www), "127.0.0.1:0"],
        env=_clean_env(ZEROHTTP_LIBRARY=library_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        m = re.search(r"on port (\d+)", line)
        assert m, (line, server.stderr.read() if server.poll() is not None else "")
        url = f"http://127.0.0.1:{m.group(1)}/data%20file.bin"
        out = tmp_path / "download.bin"
        curl = shutil.which("curl")
        if curl:
            subprocess.run([curl, "-sSf", "--max-time", str(CLIENT_TIMEOUT), "-o", str(out), url], check=True, timeout=CLIENT_TIMEOUT + 5)
        else:
            with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as resp:
                out.write_bytes(resp.read())
        assert out.read_bytes() == payload
        with urllib.request.urlopen(url.rsplit("/", 1)[0] + "/../etc/passwd", timeout=CLIENT_TIMEOUT) as resp:
            raise AssertionError(f"path escaped the root: {resp.status}")
    except urllib.error.HTTPError as e:
        assert e.code in (400, 404)
    finally:
        # SIGTERM, not SIGINT: whoever started this test may have started it with SIGINT
        # ignored (a shell without job control does that to background commands, and the
        # server inherits it), and then a SIGINT is lost. The example stops on SIGTERM through
        # the same KeyboardInterrupt path as on Ctrl-C.
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(30)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGABRT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            raise AssertionError("serve_file.py did not exit within 30 s of SIGTERM; its stderr "
                                 "(with every thread's stack):\n" + server.stderr.read()) from None
        finally:
            if server.poll() is None:
                server.kill()
    assert rc == 0, server.stderr.read()
