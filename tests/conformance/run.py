#!/usr/bin/env python3
"""HTTP/1.1 conformance suite for zerohttp: raw request bytes against zh_echo over loopback.

    python3 tests/conformance/run.py [-v] [-k SUBSTRING] [CASEFILE ...]

Starts `build/examples-c/zh_echo --listen 127.0.0.1:0 --threads 2` (override the binary with
ZH_ECHO=path; ZH_ECHO_ADDR=host:port tests an already running server instead), reads
`listening on http://ADDR` from its stdout, runs every case of tests/conformance/*.txt on a
fresh connection, prints one line per failing case and a final `N passed, M failed`. The exit
status is non-zero on any failure. Plain python3, no third-party modules.

tests/conformance/pending/ holds cases where the engine does not (yet) do what the RFC
requires; they are not loaded by default (see pending/README.md).

Case file format: blocks of `key: value` lines, separated by blank lines; `#` starts a comment
line. Every response with status >= 400 must also carry `Connection: close`.

    id:      unique name
    rfc:     section the case checks, e.g. `9112 §6.3`
    send:    request bytes in escaped notation: \\r \\n \\t \\0 \\v \\f \\xHH \\\\, \\s (a space,
             handy at either end), `${N*TEXT}` (TEXT repeated N times; no nesting).
             Several `send:` lines are concatenated.
    split:   optional. `lines`: each `send:` line is written separately, 50 ms apart;
             an integer N: the bytes are written N at a time, 10 ms apart.
    expect:  one entry per expected response, in order; an entry may be a set `400|501`;
             `N*E` stands for N copies of entry E.
    conn:    `close` (EOF right after the expected responses) or `keep` (a further
             `GET / HTTP/1.1` on the same connection gets a 200).
    shutdown: optional. `write`: half-close (SHUT_WR) after the last write.
    head:    optional. 1-based positions of responses to HEAD requests (no body is read).
    body:    optional. Expected body (escaped) of the last expected response;
             `body@K:` for position K.
    note:    optional free text (why the expectation is what it is).
    header:  optional, repeatable. `Name: value` must be present with exactly that value (name
             case-insensitive); `Name` alone: present; `!Name`: absent. `header@K:` for
             position K, otherwise the last expected response.
"""

import glob
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASE_TIMEOUT = 2.0


class CaseError(Exception):
    pass


# ---- case files ----------------------------------------------------------------------------

_ESC = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "\\": b"\\", "v": b"\x0b",
        "f": b"\x0c", "s": b" "}


def unescape(text):
    """Escaped notation → bytes. `\\s` is an explicit space (useful at either end of a line).
    Non-ASCII characters are sent as UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text):
                raise ValueError("dangling backslash")
            n = text[i + 1]
            if n == "x":
                out += bytes([int(text[i + 2:i + 4], 16)])
                i += 4
                continue
            if n not in _ESC:
                raise ValueError("unknown escape \\" + n)
            out += _ESC[n]
            i += 2
            continue
        if c == "$" and text.startswith("${", i):
            end = text.index("}", i)
            count, _, rep = text[i + 2:end].partition("*")
            out += unescape(rep) * int(count)
            i = end + 1
            continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def parse_positions(v):
    return {int(p) for p in re.split(r"[,\s]+", v.strip()) if p}


def load_cases(paths):
    cases = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        cur = None
        for lineno, raw in enumerate(lines + [""], 1):
            line = raw.rstrip("\n")
            if line.strip() == "":
                if cur is not None:
                    cases.append(finish_case(cur, path))
                    cur = None
                continue
            if line.lstrip().startswith("#"):
                continue
            key, sep, val = line.partition(":")
            if not sep:
                raise SystemExit(f"{path}:{lineno}: expected `key: value`, got {line!r}")
            key = key.strip()
            val = val[1:] if val.startswith(" ") else val
            if cur is None:
                cur = {"_where": f"{path}:{lineno}", "send": [], "header": [], "body": {}}
            pos = None
            if "@" in key:
                key, _, p = key.partition("@")
                pos = int(p)
            if key == "send":
                cur["send"].append(val)
            elif key == "header":
                cur["header"].append((pos, val.strip()))
            elif key == "body":
                cur["body"][pos] = val
            elif key in ("id", "rfc", "expect", "conn", "split", "head", "shutdown", "note"):
                cur[key] = val.strip()
            else:
                raise SystemExit(f"{path}:{lineno}: unknown key {key!r}")
    ids = set()
    for c in cases:
        if c["id"] in ids:
            raise SystemExit(f"{c['_where']}: duplicate id {c['id']}")
        ids.add(c["id"])
    return cases


def finish_case(cur, path):
    where = cur["_where"]
    for k in ("id", "rfc", "expect", "conn"):
        if k not in cur:
            raise SystemExit(f"{where}: case without `{k}:`")
    if not cur["send"]:
        raise SystemExit(f"{where}: case without `send:`")
    if cur["conn"] not in ("close", "keep"):
        raise SystemExit(f"{where}: conn must be close or keep")
    try:
        pieces = [unescape(s) for s in cur["send"]]
    except (ValueError, IndexError) as e:
        raise SystemExit(f"{where}: bad escape: {e}")
    expect = []
    for entry in cur["expect"].split():
        times, star, entry = entry.rpartition("*") if "*" in entry else ("1", "", entry)
        expect += [{int(s) for s in entry.split("|")}] * int(times)
    n = len(expect)
    body = {}
    for pos, v in cur["body"].items():
        body[pos if pos is not None else n] = unescape(v)
    headers = [(pos if pos is not None else n, v) for pos, v in cur["header"]]
    split = cur.get("split")
    if split is None:
        writes = [b"".join(pieces)]
    elif split == "lines":
        writes = pieces
    else:
        whole = b"".join(pieces)
        k = int(split)
        writes = [whole[i:i + k] for i in range(0, len(whole), k)]
    return {
        "id": cur["id"], "rfc": cur["rfc"], "expect": expect, "conn": cur["conn"],
        "writes": writes, "delay": 0.05 if split == "lines" else 0.01,
        "head": parse_positions(cur.get("head", "")), "body": body, "headers": headers,
        "where": where, "shutdown": cur.get("shutdown") == "write",
    }


# ---- a small, strict-enough HTTP/1.1 response reader ----------------------------------------

class Conn:
    def __init__(self, addr, deadline):
        self.deadline = deadline
        self.sock = socket.create_connection(addr, timeout=CASE_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False

    def remaining(self):
        return self.deadline - time.monotonic()

    def fill(self):
        """Reads more bytes into buf; False on EOF (or reset). Raises CaseError on timeout."""
        if self.eof:
            return False
        left = self.remaining()
        if left <= 0:
            raise CaseError("timeout")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise CaseError("timeout")
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def read_until(self, marker):
        while marker not in self.buf:
            if not self.fill():
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request):
        """One response as (status, headers list, body); None on EOF before a full head."""
        head = self.read_until(b"\r\n\r\n")
        if head is None:
            if self.buf:
                raise CaseError(f"EOF inside a response head: {self.buf[:80]!r}")
            return None
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: .*)?$", lines[0])
        if not m:
            raise CaseError(f"bad status line {lines[0][:80]!r}")
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or name != name.strip() or not name:
                raise CaseError(f"bad response header line {ln[:80]!r}")
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        hmap = {}
        for n, v in headers:
            hmap.setdefault(n, []).append(v)
        if len(hmap.get("content-length", [])) > 1:
            raise CaseError("response with several Content-Length fields")
        if "content-length" in hmap and "transfer-encoding" in hmap:
            raise CaseError("response with both Content-Length and Transfer-Encoding")
        if head_request or status < 200 or status in (204, 304):
            return status, headers, b""
        te = ",".join(hmap.get("transfer-encoding", [])).lower()
        if te:
            if te.replace(" ", "") != "chunked":
                raise CaseError(f"response Transfer-Encoding {te!r}")
            body = b""
            while True:
                line = self.read_until(b"\r\n")
                if line is None:
                    raise CaseError("EOF inside a chunked response body")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n")
                        if t is None:
                            raise CaseError("EOF inside response trailers")
                        if t == b"\r\n":
                            break
                    return status, headers, body
                data = self.read_exact(size + 2)
                if data is None or data[-2:] != b"\r\n":
                    raise CaseError("bad chunk in response")
                body += data[:-2]
        if "content-length" in hmap:
            n = int(hmap["content-length"][0])
            body = self.read_exact(n)
            if body is None:
                raise CaseError(f"EOF inside a {n}-byte response body")
            return status, headers, body
        while self.fill():
            pass
        body, self.buf = self.buf, b""
        return status, headers, body


def check_headers(case, pos, headers):
    errs = []
    for p, spec in case["headers"]:
        if p != pos:
            continue
        if spec.startswith("!"):
            name = spec[1:].strip().lower()
            if any(n == name for n, _ in headers):
                errs.append(f"response {pos} has {name}")
            continue
        name, sep, value = spec.partition(":")
        name = name.strip().lower()
        got = [v for n, v in headers if n == name]
        if not got:
            errs.append(f"response {pos} lacks {name}")
        elif sep and value.strip() not in got:
            errs.append(f"response {pos} {name}: {got} != {value.strip()!r}")
    return errs


def fmt_expect(expect):
    return " ".join("|".join(str(s) for s in sorted(e)) for e in expect)


def check_persistence(c, case, got):
    """close: EOF (or reset) right after the expected responses; keep: a follow-up GET works."""
    if case["conn"] == "close":
        if c.buf:
            return f"statuses ok {got}; expected close, got extra bytes {c.buf[:60]!r}"
        try:
            more = c.fill()
        except CaseError:
            return f"statuses ok {got}; expected close, connection still open after {CASE_TIMEOUT}s"
        if more or c.buf:
            return f"statuses ok {got}; expected close, got extra bytes {c.buf[:60]!r}"
        return None
    if c.eof:
        return f"statuses ok {got}; expected keep-alive, connection closed"
    if c.buf:
        return f"statuses ok {got}; unexpected extra bytes {c.buf[:60]!r}"
    if not c.send(b"GET /keep-check HTTP/1.1\r\nHost: x\r\n\r\n"):
        return f"statuses ok {got}; expected keep-alive, send failed"
    r = c.read_response(False)
    if r is None:
        return f"statuses ok {got}; expected keep-alive, EOF on the follow-up GET"
    if r[0] != 200:
        return f"statuses ok {got}; follow-up GET got {r[0]}"
    return None


def run_case(addr, case):
    """Returns None when the case passes, else a description of what happened."""
    deadline = time.monotonic() + CASE_TIMEOUT
    c = Conn(addr, deadline)
    got = []
    errs = []
    try:
        for i, w in enumerate(case["writes"]):
            if i:
                time.sleep(case["delay"])
            if not c.send(w):
                break
        if case["shutdown"]:
            c.sock.shutdown(socket.SHUT_WR)
        n = len(case["expect"])
        for pos in range(1, n + 1):
            r = c.read_response(pos in case["head"])
            if r is None:
                break
            status, headers, body = r
            got.append(status)
            if status not in case["expect"][pos - 1]:
                continue
            if pos in case["body"] and body != case["body"][pos]:
                errs.append(f"response {pos} body {body[:60]!r} != {case['body'][pos][:60]!r}")
            errs += check_headers(case, pos, headers)
            if status >= 400 and not any(h == ("connection", "close") for h in headers):
                errs.append(f"error response {pos} ({status}) without Connection: close")
        if len(got) < n:
            what = "reset" if c.reset else ("EOF" if c.eof else "?")
            return f"statuses {fmt_expect(case['expect'])} expected, got {got} then {what}"
        if any(s not in e for s, e in zip(got, case["expect"])):
            return f"statuses {fmt_expect(case['expect'])} expected, got {got}"
        conn_err = check_persistence(c, case, got)
        if conn_err:
            errs.insert(0, conn_err)
    except CaseError as e:
        return f"statuses {fmt_expect(case['expect'])} expected, got {got} then {e}"
    finally:
        c.sock.close()
    if errs:
        return "; ".join(errs)
    return None


# ---- server lifecycle ------------------------------------------------------------------------

def start_server():
    exe = os.environ.get("ZH_ECHO") or os.path.join(ROOT, "build", "examples-c", "zh_echo")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"run.py: {exe} is not an executable (build it: make examples)")
    proc = subprocess.Popen([exe, "--listen", "127.0.0.1:0", "--threads", "2"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = b""
    end = time.monotonic() + 10
    while not line.endswith(b"\n"):
        left = end - time.monotonic()
        r, _, _ = select.select([proc.stdout], [], [], max(left, 0))
        if not r:
            proc.kill()
            raise SystemExit("run.py: zh_echo did not print its address within 10 s")
        ch = os.read(proc.stdout.fileno(), 1)
        if not ch:
            raise SystemExit(f"run.py: zh_echo exited ({proc.wait()}) before listening")
        line += ch
    m = re.search(rb"listening on http://([^\s:]+):(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"run.py: unexpected first line from zh_echo: {line!r}")
    return proc, (m.group(1).decode(), int(m.group(2)))


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "zh_echo did not exit within 10 s of SIGTERM (killed)"
    if rc != 0:
        return f"zh_echo exited with status {rc} after SIGTERM"
    return None


def main(argv):
    verbose = False
    only = None
    files = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "-v":
            verbose = True
        elif a == "-k":
            only = args.pop(0)
        else:
            files.append(a)
    if not files:
        files = sorted(glob.glob(os.path.join(HERE, "*.txt")))
    cases = load_cases(files)
    if only:
        cases = [c for c in cases if only in c["id"]]
    proc = None
    if os.environ.get("ZH_ECHO_ADDR"):
        host, _, port = os.environ["ZH_ECHO_ADDR"].rpartition(":")
        addr = (host, int(port))
    else:
        proc, addr = start_server()
    passed = failed = 0
    try:
        for case in cases:
            try:
                err = run_case(addr, case)
            except OSError as e:
                err = f"socket error: {e}"
            if err is None:
                passed += 1
                if verbose:
                    print(f"ok   {case['id']}")
            else:
                failed += 1
                print(f"FAIL {case['id']} [RFC {case['rfc']}] {err}")
    finally:
        if proc is not None:
            err = stop_server(proc)
            if err:
                print(f"FAIL server-exit: {err}")
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
