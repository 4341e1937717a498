#!/usr/bin/env python3
"""Memory of a zerohttp server under a pipelining flood (a measurement, not part of make test).

    python3 tests/conformance/flood_memory.py [--seconds 10] [--exe build/examples-c/zh_echo]

Starts the server (`--listen 127.0.0.1:0 --threads 2`), then runs each scenario for --seconds:
N connections that write pipelined requests as fast as the kernel takes them, either never
reading a byte of the responses ("noread") or reading and discarding them ("read"). Before each
scenario the peak-RSS counter is reset (`echo 5 > /proc/PID/clear_refs`) so VmHWM is the peak of
that scenario alone. Prints VmRSS/VmHWM (KiB) before, during (max sampled) and after each one.

What to look for: with a bounded pipeline window (max_pipeline = 32) the server's peak should
stay near idle + connections x (window x (request + response)). At the time of writing, GETs
stay bounded (~0.3 MiB per connection) but pipelined POSTs with 16 KiB bodies do not: while a
body is being read the engine keeps recv-ing until EAGAIN regardless of how much is buffered,
so one non-reading client can push the server past 1 GiB RSS in 10 s.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        txt = f.read()
    get = lambda k: int(re.search(rf"^{k}:\s+(\d+) kB", txt, re.M).group(1))
    return {"rss": get("VmRSS"), "hwm": get("VmHWM"), "threads": int(re.search(r"^Threads:\s+(\d+)", txt, re.M).group(1))}


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def flood(addr, nconns, read, seconds, payload, pid):
    socks = []
    for _ in range(nconns):
        s = socket.create_connection(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    sent = recvd = 0
    peak_rss = 0
    end = time.monotonic() + seconds
    next_sample = 0
    while time.monotonic() < end:
        rl, wl, _ = select.select(socks if read else [], socks, [], 0.05)
        for s in rl:
            try:
                while True:
                    d = s.recv(1 << 20)
                    if not d:
                        break
                    recvd += len(d)
            except BlockingIOError:
                pass
            except OSError:
                pass
        for s in wl:
            try:
                sent += s.send(payload)
            except BlockingIOError:
                pass
            except OSError:
                pass
        now = time.monotonic()
        if now >= next_sample:
            peak_rss = max(peak_rss, status(pid)["rss"])
            next_sample = now + 0.25
    during = status(pid)
    nfd = fds(pid)
    for s in socks:
        s.close()
    time.sleep(1.0)
    return sent, recvd, peak_rss, during, nfd


def main(argv):
    seconds = 10.0
    exe = os.environ.get("ZH_ECHO") or os.path.join(ROOT, "build", "examples-c", "zh_echo")
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--seconds":
            seconds = float(args.pop(0))
        elif a == "--exe":
            exe = args.pop(0)
    proc = subprocess.Popen([exe, "--listen", "127.0.0.1:0", "--threads", "2"], stdout=subprocess.PIPE)
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(proc.stdout.fileno(), 1)
    m = re.search(rb"http://([\d.]+):(\d+)", line)
    addr = (m.group(1).decode(), int(m.group(2)))
    pid = proc.pid
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 512
    post = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16384\r\n\r\n" + b"p" * 16384) * 8
    try:
        print(f"{os.path.basename(exe)} pid {pid} on {addr[0]}:{addr[1]}, {seconds:g} s per scenario")
        st = status(pid)
        print(f"idle: VmRSS {st['rss']} KiB, VmHWM {st['hwm']} KiB, fds {fds(pid)}")
        for name, nconns, read, payload in [
            ("GET  noread", 1, False, get), ("GET  noread", 100, False, get),
            ("GET  read  ", 1, True, get), ("GET  read  ", 100, True, get),
            ("POST16k noread", 1, False, post), ("POST16k noread", 100, False, post),
            ("POST16k read  ", 100, True, post),
        ]:
            before = status(pid)
            ok = reset_hwm(pid)
            sent, recvd, peak, during, nfd = flood(addr, nconns, read, seconds, payload, pid)
            after = status(pid)
            hwm = after["hwm"] if ok else f"{after['hwm']} (not reset)"
            print(f"{name} x{nconns:<3}: sent {sent / 1e6:8.1f} MB, read {recvd / 1e6:8.1f} MB | "
                  f"VmRSS before {before['rss']} KiB, max during {peak} KiB, after {after['rss']} KiB | "
                  f"VmHWM (this scenario) {hwm} KiB | server fds during {nfd}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
