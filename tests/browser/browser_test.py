#!/usr/bin/env python3
"""A real browser against zh_static: headless chromium plays a video and downloads a big file.

    python3 tests/browser/browser_test.py [--zh-static PATH] [--artifacts DIR] [--big-mib N]
                                          [--timeout S] [--keep]

`make test-browser` runs it after `scripts/ensure-deps.sh --browser` (chromium + fonts). Steps:

 1. A temp www dir: index.html and clip.webm from this directory, big.bin (N MiB of random bytes).
 2. zh_static on a free 127.0.0.1 port, with ZH_ACCESS_LOG=<tmp>/access.log (examples-c/README.md).
 3. chromium --headless=new (--no-sandbox: we may be root) with a temp profile and
    --remote-debugging-port=0; the port is read from <profile>/DevToolsActivePort and the page is
    driven over the DevTools protocol (a minimal RFC 6455 client below: stdlib only).
 4. The page plays clip.webm (<video preload=auto>, seeks to 2.5 s on loadedmetadata), fetches
    big.bin?via=fetch counting the bytes, and fetches bytes 1000-1999 of clip.webm with a Range
    header; its state is read with Runtime.evaluate until the video has readyState >= 2 and a
    completed seek and both fetches are done (bounded by --timeout).
 5. A screenshot (Page.captureScreenshot), then a real download: the page's <a download> is
    clicked with Browser.setDownloadBehavior pointing at a temp dir, and the file that lands is
    compared with big.bin (size + SHA-256).
 6. chromium (Browser.close, then its process group) and zh_static (SIGTERM, expected exit 0) are
    stopped on every path, also on failure or Ctrl-C.
 7. Assertions on the page state (readyState, seek, duration, size, no media error, fetched
    byte count, the range probe's status/Content-Range/bytes) and on the access log: a 206 for
    the <video>'s /clip.webm, a 206 of 1000 body bytes for the probe, big.bin answered 200 twice
    (fetch + download) with head + exactly its size in bytes, / (index.html) 200, no 4xx/5xx
    other than a 404 for /favicon.ico.

Artifacts (kept on success and on failure) in --artifacts (default build/artifacts/browser):
screenshot.png, access.log, state.json (page state), network.json (the media/big.bin requests as
chromium reported them over CDP, with their Range headers), chromium.log, zh_static.log.
Exit status 0 when every check passed, 1 otherwise (each failed check is printed).
"""

import argparse
import base64
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHROMIUM_CANDIDATES = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser"]


class TestFailure(Exception):
    pass


def log(msg):
    print(f"browser-test: {msg}", flush=True)


# ---- a minimal websocket client (RFC 6455), enough for the DevTools protocol ------------------

class WebSocket:
    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, host, port, path, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\n"
            b"Host: " + f"{host}:{port}".encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.buf = b""
        self.partial = []
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise TestFailure("DevTools websocket: connection closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 101"):
            raise TestFailure(f"DevTools websocket handshake refused: {lines[0]!r}")
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
        headers = {ln.split(b":", 1)[0].strip().lower(): ln.split(b":", 1)[1].strip()
                   for ln in lines[1:] if b":" in ln}
        if headers.get(b"sec-websocket-accept") != accept:
            raise TestFailure("DevTools websocket: bad Sec-WebSocket-Accept")

    def _fill(self, n, deadline):
        """Waits until the buffer holds n bytes; consumes nothing (a timeout loses no data)."""
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError from None
            if not chunk:
                raise TestFailure("DevTools websocket closed by chromium")
            self.buf += chunk

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        # XOR with the mask, 4 bytes repeated, done as one big integer operation.
        m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big") if n else b""
        self.sock.settimeout(10)
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode())

    def recv_text(self, deadline):
        """One whole text message; raises TimeoutError at the deadline (resumable)."""
        while True:
            self._fill(2, deadline)
            b0, b1 = self.buf[0], self.buf[1]
            opcode, n, off = b0 & 0x0F, b1 & 0x7F, 2
            if n == 126:
                self._fill(4, deadline)
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._fill(10, deadline)
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            mask = None
            if b1 & 0x80:  # servers do not mask, but be lenient
                self._fill(off + 4, deadline)
                mask, off = self.buf[off:off + 4], off + 4
            self._fill(off + n, deadline)
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise TestFailure("DevTools websocket: chromium sent close")
            self.partial.append(payload)
            if b0 & 0x80:
                msg, self.partial = b"".join(self.partial), []
                return msg.decode()

    def close(self):
        try:
            self._send_frame(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """Commands with ids, events kept in a list; flat sessions (Target.attachToTarget)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, session=None, timeout=15.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send_text(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = json.loads(self.ws.recv_text(deadline))
            except TimeoutError:
                raise TestFailure(f"DevTools: no answer to {method} within {timeout:.0f} s") from None
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise TestFailure(f"DevTools: {method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def pump(self, seconds):
        """Collects events for up to `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                msg = json.loads(self.ws.recv_text(deadline))
                if "method" in msg:
                    self.events.append(msg)
        except TimeoutError:
            pass

    def evaluate(self, session, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                      session=session)
        if "exceptionDetails" in r:
            raise TestFailure(f"page script error in {expression!r}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")


# ---- processes ---------------------------------------------------------------------------------

try:
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None


def _die_with_parent():
    # Runs in the child before exec: SIGKILL it if this test process dies (no orphans even when
    # the test itself is SIGKILLed). 1 = PR_SET_PDEATHSIG.
    if _prctl is not None:
        _prctl(1, int(signal.SIGKILL), 0, 0, 0)


def start(argv, log_path, env=None, stdout=None):
    with open(log_path, "ab") as err:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or err, stderr=err,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)


def stop_group(proc, name, grace):
    """SIGTERM to the process group we created, SIGKILL after `grace` seconds. Returns rc."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {grace} s of SIGTERM: SIGKILL")
    # Whatever is left in the group (chromium's helpers) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) still there after SIGKILL")
    return proc.returncode


def kill_leftovers(marker, pgid, wait=5.0):
    """SIGKILLs what is left of chromium and waits (bounded) until it is gone: processes still in
    its process group `pgid`, and processes whose command line contains `marker` (our unique temp
    dir for chromium's profile and HOME), i.e. helpers that left the group (crashpad
    double-forks into its own session and names its database under HOME). Zombies are skipped."""
    deadline = time.monotonic() + wait
    reported = set()
    while True:
        alive = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if fields[0] == b"Z":
                continue
            if int(fields[2]) == pgid or marker.encode() in cmd:
                alive.append(int(pid))
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if pid not in reported:
                    reported.add(pid)
                    name = cmd.split(b"\0", 1)[0].decode(errors="replace") or "?"
                    log(f"killed a leftover chromium process: {name}[{pid}]")
        if not alive:
            return
        if time.monotonic() > deadline:
            raise TestFailure(f"chromium processes still alive {wait} s after SIGKILL: {alive}")
        time.sleep(0.1)


def find_chromium():
    for c in CHROMIUM_CANDIDATES:
        path = c if os.path.isabs(c) else shutil.which(c)
        if path and os.access(path, os.X_OK):
            return path
    raise TestFailure("chromium is not installed (looked for "
                      + ", ".join(CHROMIUM_CANDIDATES)
                      + "): run scripts/ensure-deps.sh --browser (Debian package `chromium`)")


def start_zh_static(binary, www, tmp):
    env = dict(os.environ, ZH_ACCESS_LOG=os.path.join(tmp, "access.log"))
    env.pop("ZH_EXAMPLE_STATS", None)
    proc = start([binary, "--listen", "127.0.0.1:0", "--threads", "2", www],
                 os.path.join(tmp, "zh_static.log"), env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            stop_group(proc, "zh_static", 2)
            raise TestFailure(f"zh_static printed no `listening on` line (got {line!r}); "
                              f"see {tmp}/zh_static.log")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            b = os.read(proc.stdout.fileno(), 1)
            if not b:
                continue
            line += b
    text = line.decode().strip()
    if not text.startswith("listening on http://127.0.0.1:"):
        stop_group(proc, "zh_static", 2)
        raise TestFailure(f"unexpected first line from zh_static: {text!r}")
    return proc, int(text.rsplit(":", 1)[1])


def start_chromium(binary, profile, tmp, timeout):
    argv = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--no-first-run", "--no-default-browser-check", "--no-proxy-server",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-features=Translate,MediaRouter,OptimizationHints",
        "--autoplay-policy=no-user-gesture-required", "--mute-audio",
        "--window-size=1000,900", "about:blank",
    ]
    # A private HOME: nothing lands in the real one (crashpad's database, dconf, caches).
    home = os.path.join(os.path.dirname(profile), "home")
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
               XDG_CACHE_HOME=os.path.join(home, ".cache"))
    proc = start(argv, os.path.join(tmp, "chromium.log"), env=env)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure(f"chromium exited with status {proc.returncode} before DevTools was "
                              f"up; last lines of its log:\n{tail(os.path.join(tmp, 'chromium.log'))}")
        try:
            with open(port_file) as f:
                lines = f.read().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/devtools/"):
                return proc, int(lines[0]), lines[1].strip()
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise TestFailure(f"chromium wrote no {port_file} within {timeout} s")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ---- the test ----------------------------------------------------------------------------------

def parse_access_log(path):
    entries = []
    with open(path) as f:
        for ln in f:
            parts = ln.split()
            if len(parts) < 4:
                continue
            entries.append({"method": parts[0], "target": parts[1], "status": int(parts[2]),
                            "bytes": int(parts[3]), "line": ln.rstrip("\n")})
    return entries


def run(args, tmp, checks, artifacts):
    www = os.path.join(tmp, "www")
    profile = os.path.join(tmp, "chromium", "profile")  # tmp/chromium/: profile and HOME
    downloads = os.path.join(tmp, "downloads")
    for d in (www, profile, downloads):
        os.makedirs(d)
    for name in ("index.html", "clip.webm"):
        shutil.copy(os.path.join(HERE, name), www)
    clip_size = os.path.getsize(os.path.join(www, "clip.webm"))
    big_size = args.big_mib * 1024 * 1024
    sha = hashlib.sha256()
    with open(os.path.join(www, "big.bin"), "wb") as f:
        for _ in range(args.big_mib):
            block = os.urandom(1024 * 1024)
            sha.update(block)
            f.write(block)
    big_sha = sha.hexdigest()

    zh = chrome = ws = None
    state = None
    try:
        zh, port = start_zh_static(args.zh_static, www, tmp)
        base = f"http://127.0.0.1:{port}"
        log(f"zh_static on {base}, www={www} (big.bin {args.big_mib} MiB, clip.webm {clip_size} B)")
        with urllib.request.urlopen(base + "/index.html", timeout=5) as r:  # server sanity
            if r.status != 200:
                raise TestFailure(f"GET /index.html with urllib: {r.status}")

        binary = find_chromium()
        t0 = time.monotonic()
        chrome, dport, dpath = start_chromium(binary, profile, tmp, 30)
        log(f"{binary} up in {time.monotonic() - t0:.1f} s, DevTools on 127.0.0.1:{dport}")
        ws = WebSocket("127.0.0.1", dport, dpath, timeout=10)
        cdp = DevTools(ws)
        version = cdp.call("Browser.getVersion")
        log(f"browser: {version.get('product')}")

        pages = [t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else \
            cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Network.enable", "Runtime.enable"):
            cdp.call(m, session=session)
        cdp.call("Browser.setDownloadBehavior",
                 {"behavior": "allowAndName", "downloadPath": downloads, "eventsEnabled": True})

        url = f"{base}/?size={big_size}"
        nav = cdp.call("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise TestFailure(f"Page.navigate {url}: {nav['errorText']}")

        # Poll the page state until the video has data and a seek completed and the fetch is done.
        # (An evaluate that races the navigation may fail: retried until the deadline.)
        deadline = time.monotonic() + args.timeout
        eval_error = None
        while True:
            try:
                text = cdp.evaluate(session, "JSON.stringify(window.zhState || null)")
                state, eval_error = (json.loads(text) if text else None), None
            except TestFailure as e:
                eval_error = str(e)
            if state and state.get("done"):
                break
            if time.monotonic() > deadline:
                checks.append((False, f"page state complete within {args.timeout} s "
                                      f"(last state: {json.dumps(state)}; {eval_error or ''})"))
                break
            cdp.pump(0.25)
        log(f"page state after {time.monotonic() - t0:.1f} s: video readyState="
            f"{state and state['video']['readyState']}, fetch bytes={state and state['fetch']['bytes']}")

        shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session=session)
        png = base64.b64decode(shot["data"])
        with open(os.path.join(artifacts, "screenshot.png"), "wb") as f:
            f.write(png)
        checks.append((png.startswith(b"\x89PNG") and len(png) > 1000,
                       f"screenshot saved ({len(png)} bytes PNG)"))

        # A real download through chromium's download manager.
        cdp.evaluate(session, "document.getElementById('dl').click(), true")
        dl_deadline = time.monotonic() + args.timeout
        done_event = None
        seen = 0
        while done_event is None and time.monotonic() < dl_deadline:
            cdp.pump(0.25)
            for ev in cdp.events[seen:]:
                if ev["method"] == "Browser.downloadProgress" and \
                        ev["params"].get("state") in ("completed", "canceled"):
                    done_event = ev["params"]
            seen = len(cdp.events)
        if done_event is None:
            checks.append((False, f"download finished within {args.timeout} s"))
        else:
            path = os.path.join(downloads, done_event["guid"])
            got = os.path.getsize(path) if os.path.exists(path) else -1
            digest = ""
            if got == big_size:
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                digest = h.hexdigest()
            checks.append((done_event["state"] == "completed",
                           f"download state is completed (got {done_event['state']})"))
            checks.append((got == big_size, f"downloaded file has {big_size} bytes (got {got})"))
            checks.append((digest == big_sha, "downloaded file is byte-identical to big.bin (SHA-256)"))

        # What chromium says it asked for (request headers as sent, incl. Range).
        reqs = {}
        for ev in cdp.events:
            p = ev.get("params", {})
            if ev["method"] == "Network.requestWillBeSent":
                reqs.setdefault(p["requestId"], {}).update(
                    url=p["request"]["url"], headers=p["request"].get("headers", {}))
            elif ev["method"] == "Network.requestWillBeSentExtraInfo":
                reqs.setdefault(p["requestId"], {})["sent_headers"] = p.get("headers", {})
            elif ev["method"] == "Network.responseReceived":
                reqs.setdefault(p["requestId"], {})["status"] = p["response"]["status"]
        network = []
        for r in reqs.values():
            if "url" not in r:
                continue
            hdrs = {k.lower(): v for k, v in {**r.get("headers", {}), **r.get("sent_headers", {})}.items()}
            network.append({"url": r["url"].replace(base, ""), "range": hdrs.get("range"),
                            "status": r.get("status")})
        with open(os.path.join(artifacts, "network.json"), "w") as f:
            json.dump(network, f, indent=1)
        for n in network:
            if "clip.webm" in n["url"] or "big.bin" in n["url"]:
                log(f"chromium (CDP): GET {n['url']} Range: {n['range']} -> {n['status']}")
    finally:
        if ws is not None:
            try:
                DevTools(ws).call("Browser.close", timeout=5)
            except (TestFailure, OSError):
                pass
            ws.close()
        if chrome is not None:
            try:
                chrome.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            stop_group(chrome, "chromium", 5)
            try:
                kill_leftovers(os.path.dirname(profile) + "/", chrome.pid)
            except TestFailure as e:
                checks.append((False, str(e)))
        zh_rc = stop_group(zh, "zh_static", 5)
        if zh is not None:
            checks.append((zh_rc == 0, f"zh_static exits 0 on SIGTERM (got {zh_rc})"))
        if state is not None:
            with open(os.path.join(artifacts, "state.json"), "w") as f:
                json.dump(state, f, indent=1)
        for name in ("access.log", "chromium.log", "zh_static.log"):
            if os.path.exists(os.path.join(tmp, name)):
                shutil.copy(os.path.join(tmp, name), artifacts)

    # ---- assertions ----
    if state:
        v, fe = state["video"], state["fetch"]
        checks.append((v["readyState"] >= 2, f"video.readyState >= 2 (got {v['readyState']})"))
        checks.append((v["seeked"] >= 1, f"video completed a seek (seeked events: {v['seeked']})"))
        checks.append((abs(v["currentTime"] - v["seekTarget"]) < 0.5,
                       f"video.currentTime near {v['seekTarget']} (got {v['currentTime']})"))
        checks.append((v["duration"] is not None and abs(v["duration"] - 4.0) < 0.2,
                       f"video.duration about 4 s (got {v['duration']})"))
        checks.append(((v["width"], v["height"]) == (320, 180),
                       f"video is 320x180 (got {v['width']}x{v['height']})"))
        checks.append((v["error"] is None, f"no media error (got {v['error']})"))
        checks.append((fe["error"] is None and fe["status"] == 200,
                       f"fetch(big.bin) answered 200 (status {fe['status']}, error {fe['error']})"))
        checks.append((fe["bytes"] == big_size,
                       f"fetch(big.bin) read {big_size} bytes (got {fe['bytes']}, "
                       f"Content-Length {fe['contentLength']}, {fe['ms']} ms)"))
        rg = state["range"]
        checks.append((rg["status"] == 206 and rg["contentRange"] == f"bytes 1000-1999/{clip_size}",
                       f"fetch(clip.webm, Range: bytes=1000-1999) answered 206 with Content-Range "
                       f"bytes 1000-1999/{clip_size} (got {rg['status']}, {rg['contentRange']}, "
                       f"error {rg['error']})"))
        checks.append((rg["bytes"] == 1000 and rg["matches"] is True,
                       f"... and its 1000 bytes are bytes 1000-1999 of the file "
                       f"(got {rg['bytes']} bytes, match {rg['matches']})"))
    else:
        checks.append((False, "page state was read"))

    access = os.path.join(tmp, "access.log")
    entries = parse_access_log(access) if os.path.exists(access) else []
    log(f"access log ({len(entries)} lines):")
    for e in entries:
        print("    " + e["line"], flush=True)
    path_of = lambda e: e["target"].split("?", 1)[0]
    clip = [e for e in entries if path_of(e) == "/clip.webm"]
    clip206 = [e for e in clip if e["status"] == 206]
    checks.append((all(e["bytes"] <= clip_size + 1024 for e in clip206),
                   "every 206 for /clip.webm sent at most the file plus a head"))
    media = [e for e in clip206 if e["target"] == "/clip.webm"]
    checks.append((len(media) >= 1,
                   f"the <video>'s requests (/clip.webm, no query) got at least one 206 "
                   f"({[(e['target'], e['status']) for e in clip]})"))
    probe = [e for e in clip206 if e["target"] == "/clip.webm?via=range"]
    checks.append((len(probe) == 1 and 1000 < probe[0]["bytes"] < 1000 + 1024,
                   f"the range probe got one 206 of 1000 body bytes + head "
                   f"(got {[e['bytes'] for e in probe]})"))
    checks.append((any(path_of(e) == "/" and e["status"] == 200 for e in entries),
                   "GET / (index.html) answered 200"))
    for via in ("fetch", "download"):
        big = [e for e in entries if e["target"] == f"/big.bin?via={via}"]
        ok = [e for e in big if e["status"] == 200 and 0 < e["bytes"] - big_size < 1024]
        checks.append((len(ok) == 1,
                       f"big.bin?via={via}: one 200 with {big_size} body bytes + head "
                       f"(got {[(e['status'], e['bytes']) for e in big]})"))
    bad = [e["line"] for e in entries if e["status"] >= 400
           and not (e["status"] == 404 and path_of(e) == "/favicon.ico")]
    checks.append((not bad, f"no 4xx/5xx except a /favicon.ico 404 (got {bad})"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zh-static", default=os.path.join(ROOT, "build/examples-c/zh_static"))
    ap.add_argument("--artifacts", default=os.path.join(ROOT, "build/artifacts/browser"))
    ap.add_argument("--big-mib", type=int, default=48)
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds for the page state, and again for the download")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    args = ap.parse_args()

    # SIGTERM/SIGHUP (make killed, CI cancelled) unwind through the cleanup like Ctrl-C does.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if not os.access(args.zh_static, os.X_OK):
        print(f"browser-test: FAIL: {args.zh_static} is not built (run `make examples`)",
              file=sys.stderr)
        return 1
    shutil.rmtree(args.artifacts, ignore_errors=True)
    os.makedirs(args.artifacts)
    tmp = tempfile.mkdtemp(prefix="zh-browser-")
    checks = []
    t0 = time.monotonic()
    try:
        run(args, tmp, checks, args.artifacts)
    except TestFailure as e:
        checks.append((False, str(e)))
    except KeyboardInterrupt as e:  # processes were stopped by run()'s cleanup
        print(f"browser-test: interrupted ({e or 'Ctrl-C'}): FAILED", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    failed = [msg for ok, msg in checks if not ok]
    for ok, msg in checks:
        print(f"  {'ok  ' if ok else 'FAIL'}  {msg}", flush=True)
    log(f"artifacts in {args.artifacts} ({time.monotonic() - t0:.1f} s)")
    if failed:
        print(f"browser-test: FAILED ({len(failed)} of {len(checks)} checks)", file=sys.stderr)
        return 1
    log(f"all {len(checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
