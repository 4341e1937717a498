#!/usr/bin/env python3
"""Proof that file bytes never pass through user space: run zh_static, attach strace to every
thread once it is serving, download a file, and check that no read-family syscall returned file
data (request bytes arrive by recvfrom, which is not traced) while sendfile carried the file.
The one exception is checked too: a file of at most small_file_read_max (default 4096) bytes is
read by one preadv2 into the head's sendmsg, so the only bytes read are that small file's.

Usage: strace_proof.py [ZH_STATIC]   (default: build/examples-c/zh_static)
Prints one line per check and a final "N passed, M failed" line; exits non-zero on failure.
"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "examples-c", "zh_static")
SIZE = 32 << 20
SMALL = 1000  # <= the default small_file_read_max (4096)
READS = ("read", "pread64", "readv", "preadv", "preadv2")

passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1


def main():
    if not shutil.which("strace"):
        print("strace is not installed (scripts/ensure-deps.sh installs it)", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    www = tempfile.mkdtemp(prefix="zh-strace-")
    data = os.urandom(SIZE)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(data)
    small = os.urandom(SMALL)
    with open(os.path.join(www, "small.bin"), "wb") as f:
        f.write(small)
    server = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--threads", "1", www],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    m = re.match(r"listening on http://(\S+)", line)
    if not m:
        server.kill()
        print(f"zh_static did not start: {line!r}")
        print("0 passed, 1 failed")
        return 1
    addr = m.group(1)
    log = os.path.join(www, "strace.log")
    tids = os.listdir(f"/proc/{server.pid}/task")
    args = ["strace", "-f", "-qq", "-e", "trace=" + ",".join(READS + ("sendfile", "splice")), "-o", log]
    for t in tids:
        args += ["-p", t]
    tracer = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        # strace attaches asynchronously: wait until every thread shows a tracer.
        deadline = time.time() + 10
        while time.time() < deadline:
            traced = all(int(open(f"/proc/{server.pid}/task/{t}/status").read().split("TracerPid:")[1].split()[0]) != 0
                         for t in tids)
            if traced:
                break
            time.sleep(0.05)
        check(traced, f"strace attached to all {len(tids)} threads of zh_static")
        with urllib.request.urlopen(f"http://{addr}/big.bin", timeout=60) as r:
            body = r.read()
        check(hashlib.sha256(body).digest() == hashlib.sha256(data).digest(), "32 MiB file downloaded byte-identical")
        with urllib.request.urlopen(f"http://{addr}/small.bin", timeout=10) as r:
            check(r.read() == small, f"{SMALL}-byte file downloaded byte-identical")
        for _ in range(3):
            with urllib.request.urlopen(f"http://{addr}/hello", timeout=10) as r:
                r.read()
    finally:
        time.sleep(0.2)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    sent, refused = 0, False
    calls, read_by = {}, {}
    with open(log) as f:
        for line in f:
            m = re.search(r"\b(\w+)\(.*\)\s+=\s+(-?\d+)", line)
            if not m:
                continue
            name, ret = m.group(1), int(m.group(2))
            calls[name] = calls.get(name, 0) + 1
            if name in READS and ret > 0:
                read_by[name] = read_by.get(name, 0) + ret
            if name == "preadv2" and ret < 0:
                refused = True  # RWF_NOWAIT unsupported (or not cached): sent by sendfile instead
            if name == "sendfile" and ret > 0:
                sent += ret
    print(f"traced calls: {calls}")
    if refused:
        print("note: preadv2(RWF_NOWAIT) failed (unsupported here, or not cached); the small file went by sendfile")
        check(read_by == {}, f"no byte read into user space by {'/'.join(READS)} (got {read_by})")
        check(sent >= SIZE + SMALL, f"sendfile carried both files ({sent} bytes)")
    else:
        check(read_by == {"preadv2": SMALL},
              f"no byte of the 32 MiB file read into user space by {'/'.join(READS)}; only the {SMALL}-byte "
              f"file, by preadv2 (small_file_read_max) (got {read_by})")
        check(SIZE <= sent < SIZE + SMALL, f"sendfile carried the big file ({sent} bytes), not the small one")
    shutil.rmtree(www, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
