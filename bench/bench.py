#!/usr/bin/env python3
"""zerohttp benchmark suite: zh_static against nginx, lighttpd, h2o and libmicrohttpd on loopback.

Run through `make bench` or `bench/run.sh` (which only checks its arguments and runs this file).
Everything is configured with BENCH_* environment variables; bench/README.md describes each
scenario and knob. Rules kept throughout:
  * loopback only (127.0.0.1, free ports picked at start time);
  * every server is started fresh for every (round, scenario, server) and stopped after it;
  * servers alternate inside a scenario, and the order rotates by one each round;
  * every load is bounded in time (wrk -d, curl --max-time, deadlines on our own clients,
    subprocess timeouts), and every process started here is killed on exit (also on ^C);
  * a server that cannot be built, configured or started is reported as "not run (reason)";
    a run that fails is recorded with its error, never dropped.
Output: bench/results/<UTC timestamp>/results.json, results.md (bench/report.py) and raw/.
"""
import atexit
import contextlib
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
BUILD = os.path.join(ROOT, "build")
WWW = os.path.join(BUILD, "bench-www")
CONF = os.path.join(BUILD, "bench-conf")
PEERS = os.path.join(BUILD, "bench-peers")
SNAP = os.path.join(BUILD, "bench-lib")
# BENCH_UPLOAD_DIR=/dev/shm/... keeps the disk's writeback out of the upload figures.
UPLOAD_DIR = os.environ.get("BENCH_UPLOAD_DIR") or os.path.join(BUILD, "bench-upload")
CLK_TCK = os.sysconf("SC_CLK_TCK")
HELLO = b"Hello, world!"

ALL_SCENARIOS = ["small", "64k", "1m", "big", "limit", "idle", "upload", "cold", "syscalls"]
ALL_SERVERS = ["zh1", "zh2", "nginx1", "nginx2", "lighttpd", "h2o", "mhd"]
# Not in the default set: zh_static with its open-file cache off (the cache's before/after),
# zh_static whose listener uses `reno` instead of the system's congestion control (what
# zh_config_set_tcp_congestion buys where the system's paces, as `bbr` does), and the two floors
# (bench/peers/floor.c: the least a keep-alive server can do per request, for small and 64k;
# floor-uring answers /hello only).
EXTRA_SERVERS = ["zh1-nocache", "zh1-reno", "floor-epoll", "floor-uring"]
FLOOR_SCENARIOS = {"floor-epoll": ("small", "64k", "syscalls"), "floor-uring": ("small",)}
SINGLE_WORKER = ["zh1", "nginx1", "lighttpd", "h2o", "mhd"]  # the cold scenario's servers
REFERENCE = "nginx1"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


# ---- knobs ------------------------------------------------------------------------------------

def env_int(name, default, minimum=1):
    raw = os.environ.get(name, str(default))
    if not re.fullmatch(r"\d+", raw) or int(raw) < minimum:
        die(f"{name} must be an integer >= {minimum} (got '{raw}')")
    return int(raw)


def env_list(name, default, allowed):
    raw = os.environ.get(name, "").replace(",", " ").split()
    items = raw or default
    bad = [x for x in items if x not in allowed]
    if bad:
        die(f"{name}: unknown {' '.join(bad)} (choose from: {' '.join(allowed)})")
    return [x for x in allowed if x in items]  # canonical order, no duplicates


def parse_duration(s):
    m = re.fullmatch(r"(\d+)([smh]?)", s)
    if not m or int(m.group(1)) == 0:
        die(f"BENCH_DURATION must look like 10s, 2s or 1m (got '{s}')")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


K = {}


def read_knobs():
    K["duration"] = os.environ.get("BENCH_DURATION", "10s")
    K["duration_s"] = parse_duration(K["duration"])
    K["rounds"] = env_int("BENCH_ROUNDS", 3)
    K["scenarios"] = env_list("BENCH_SCENARIOS", ALL_SCENARIOS, ALL_SCENARIOS)
    K["servers"] = env_list("BENCH_SERVERS", ALL_SERVERS, ALL_SERVERS + EXTRA_SERVERS)
    K["big_mb"] = env_int("BENCH_BIG_MB", 1024)
    K["big_reps"] = env_int("BENCH_BIG_REPS", 1)
    # Bytes per sendfile call of the limit loop (0 = the whole file in one call, as before
    # 2026-11-29): 256 KiB, as zh and lighttpd send, is faster on loopback than one huge call.
    K["limit_chunk"] = env_int("BENCH_LIMIT_CHUNK", 256 << 10, 0)
    K["upload_mb"] = env_int("BENCH_UPLOAD_MB", K["big_mb"])
    # MiB written into the upload directory and deleted right before each upload (0 = off); see prefault().
    K["upload_prefault_mb"] = env_int("BENCH_UPLOAD_PREFAULT_MB", K["upload_mb"] + K["upload_mb"] // 4, 0)
    # ms for which freed memory is kept from the balloon's free page reporting during each
    # prefault + upload (0 = leave the machine alone); see reporting_held().
    K["upload_hold_reporting_ms"] = env_int("BENCH_UPLOAD_HOLD_REPORTING_MS", 60000, 0)
    K["cold_mb"] = env_int("BENCH_COLD_MB", 256)
    K["cold_conns"] = env_int("BENCH_COLD_CONNS", 8)
    K["cold_baseline"] = os.environ.get("BENCH_COLD_BASELINE", "1") == "1"
    K["cold_rate"] = os.environ.get("BENCH_COLD_RATE", "")
    K["big_rate"] = os.environ.get("BENCH_BIG_RATE", "")
    if K["big_rate"] and not re.fullmatch(r"\d+[kKmMgG]?", K["big_rate"]):
        die(f"BENCH_BIG_RATE must be a curl --limit-rate value such as 800M (got '{K['big_rate']}')")
    if K["cold_rate"] and not re.fullmatch(r"\d+[kKmMgG]?", K["cold_rate"]):
        die(f"BENCH_COLD_RATE must be a curl --limit-rate value such as 200M (got '{K['cold_rate']}')")
    K["idle_conns"] = env_int("BENCH_IDLE_CONNS", 5000)
    K["syscall_reqs"] = env_int("BENCH_SYSCALL_REQS", 1000)
    K["pin"] = os.environ.get("BENCH_PIN", "0") == "1"
    K["nginx_open_file_cache"] = os.environ.get("BENCH_NGINX_OPEN_FILE_CACHE", "0") == "1"
    K["zh_args"] = shlex.split(os.environ.get("BENCH_ZH_ARGS", ""))
    if K["idle_conns"] > 9000:
        die("BENCH_IDLE_CONNS above 9000 would put client + server near the 20,000-fd limit")
    examples = os.environ.get("ZH_EXAMPLES_DIR", os.path.join(BUILD, "examples-c"))
    K["zh_static"] = os.environ.get("ZH_STATIC", os.path.join(examples, "zh_static"))
    K["zh_upload"] = os.environ.get("ZH_UPLOAD", os.path.join(examples, "zh_upload"))
    K["lib_dir"] = os.environ.get("ZEROHTTP_LIB_DIR", os.path.join(ROOT, "target", "release"))
    K["nginx"] = os.environ.get("NGINX", "/usr/sbin/nginx")
    K["lighttpd"] = os.environ.get("LIGHTTPD", "/usr/sbin/lighttpd")
    K["h2o"] = os.environ.get("H2O", shutil.which("h2o") or "/usr/bin/h2o")
    K["cc"] = os.environ.get("CC", "gcc")
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    K["out"] = os.environ.get("BENCH_OUT", os.path.join(BENCH, "results", ts))


# ---- process bookkeeping ----------------------------------------------------------------------

LIVE = {}  # pid -> Popen of everything started here that may still run


def spawn(argv, **kw):
    """Starts a process in its own session (so it and its children can be killed as a group)."""
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    LIVE[p.pid] = p
    return p


def reap(p):
    LIVE.pop(p.pid, None)


def kill_all():
    for pid, p in list(LIVE.items()):
        if p.poll() is None:
            try:
                os.killpg(pid, signal.SIGKILL)  # pid is the group id: spawn() made it a leader
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        LIVE.pop(pid, None)


def on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


def run(argv, timeout, **kw):
    """Runs a bounded command; returns CompletedProcess (output as text)."""
    p = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        reap(p)
        raise RuntimeError(f"{argv[0]} exceeded its {timeout} s bound")
    reap(p)
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- /proc sampling ---------------------------------------------------------------------------

def proc_tree(root):
    """root and all its live descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_sample(root):
    """Server CPU so far: {ticks: utime+stime(+cutime+cstime) over the process tree from
    /proc/PID/stat (all threads, also exited ones), ns: sum_exec_runtime of the live threads from
    /proc/PID/task/*/schedstat, tasks: the live thread ids}."""
    ticks, uticks, ns, tasks = 0, 0, 0, set()
    for p in proc_tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
            uticks += int(fields[11]) + int(fields[13])
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    ns += int(f.read().split()[0])
                tasks.add(int(t))
        except (OSError, IndexError, ValueError):
            continue
    return {"ticks": ticks, "uticks": uticks, "ns": ns, "tasks": tasks}


def cpu_delta(before, after):
    """CPU seconds between two samples. The schedstat ns figure is exact but misses threads that
    exited in between; utime+stime counts them but in 1/CLK_TCK steps. The ns figure is used
    unless the tick figure exceeds it by more than 2 ticks + 5% (then threads must have exited)."""
    t = (after["ticks"] - before["ticks"]) / CLK_TCK
    n = (after["ns"] - before["ns"]) / 1e9
    exited = len(before["tasks"] - after["tasks"])
    use_ticks = t > n * 1.05 + 2 / CLK_TCK
    # The user-space share (ticks: the only source that splits user from kernel time).
    ut = (after["uticks"] - before["uticks"]) / CLK_TCK
    user_frac = ut / t if t > 0 else 0.0
    return {"cpu_s": t if use_ticks else n, "cpu_ticks_s": t, "cpu_ns_s": n, "user_frac": user_frac,
            "cpu_source": "ticks" if use_ticks else "schedstat", "threads_exited": exited}


def machine_busy_s():
    """CPU seconds every CPU of the machine has been busy so far (/proc/stat: user, nice, system,
    irq, softirq, steal; not idle or iowait), in 1/CLK_TCK steps."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(root):
    total = 0
    for p in proc_tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- a tiny HTTP/1.1 client (readiness, idle connections, the syscall count) ----------------

class Conn:
    chunk = bytearray(1 << 20)  # one receive buffer shared by all connections (one thread)

    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def _fill(self):
        n = self.s.recv_into(self.chunk)
        if n == 0:
            raise ConnectionError("server closed the connection")
        self.buf += memoryview(self.chunk)[:n]

    def get(self, path, keep_body=False):
        """One GET; returns (status, body length, body or None)."""
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        status = int(head.split(" ", 2)[1])
        m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
        if not m:
            raise ValueError(f"no Content-Length in the answer to {path}: {head!r}")
        want = int(m.group(1))
        got = 0
        body = bytearray() if keep_body else None
        while True:
            take = min(len(self.buf), want - got)
            if keep_body:
                body += self.buf[:take]
            del self.buf[:take]
            got += take
            if got == want:
                break
            self._fill()
        return status, got, (bytes(body) if keep_body else None)

    def close(self):
        self.s.close()


# ---- the bench root and the peers -------------------------------------------------------------

def make_file(path, nbytes):
    if os.path.exists(path) and os.path.getsize(path) == nbytes:
        return
    log(f"creating {os.path.relpath(path, ROOT)} ({nbytes:,} bytes)")
    tmp = path + ".tmp"
    with open("/dev/urandom", "rb") as src, open(tmp, "wb") as dst:
        left = nbytes
        while left:
            block = src.read(min(left, 1 << 20))
            dst.write(block)
            left -= len(block)
        dst.flush()
        os.fsync(dst.fileno())  # clean pages: the cold scenario can evict them
    os.replace(tmp, path)


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 22):
            pass


def big_name(mb):
    return "1g.bin" if mb == 1024 else f"{mb}m.bin"


def prepare_root():
    os.makedirs(os.path.join(WWW, "f"), exist_ok=True)
    make_file(os.path.join(WWW, "f", "64k.bin"), 65536)
    make_file(os.path.join(WWW, "f", "1m.bin"), 1 << 20)
    sc = K["scenarios"]
    if {"big", "limit"} & set(sc) or ("upload" in sc and K["upload_mb"] == K["big_mb"]):
        make_file(os.path.join(WWW, "f", big_name(K["big_mb"])), K["big_mb"] << 20)
    if "upload" in sc and K["upload_mb"] != K["big_mb"]:
        make_file(os.path.join(WWW, "f", big_name(K["upload_mb"])), K["upload_mb"] << 20)
    if "cold" in sc:
        make_file(os.path.join(WWW, "f", f"cold-{K['cold_mb']}m.bin"), K["cold_mb"] << 20)
    # /hello for the servers that cannot answer from memory (lighttpd, h2o): a 13-byte file.
    # zh_static, nginx and mhd_static answer /hello before looking at files.
    with open(os.path.join(WWW, "hello"), "wb") as f:
        f.write(HELLO)
    with open(os.path.join(WWW, "index.html"), "w") as f:
        f.write("zerohttp bench root\n")
    for name in ("64k.bin", "1m.bin"):
        warm(os.path.join(WWW, "f", name))


def build_peer(name, src, extra):
    os.makedirs(PEERS, exist_ok=True)
    out = os.path.join(PEERS, name)
    argv = [K["cc"], "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src] + extra
    try:
        r = run(argv, timeout=120)
    except (OSError, RuntimeError) as e:
        return None, f"{K['cc']}: {e}"
    if r.returncode != 0:
        first = (r.stderr.strip().splitlines() or ["?"])[0]
        return None, f"build failed: {first}"
    return out, None


def snapshot_zh():
    """Copies libzerohttp.so and the zh examples into build/bench-lib and runs that copy, so a
    rebuild during the run cannot change the code under test. Returns (description, error)."""
    lib = os.path.join(K["lib_dir"], "libzerohttp.so")
    if not os.path.exists(lib):
        return None, f"{lib} not built (run: make bench)"
    shutil.rmtree(SNAP, ignore_errors=True)
    os.makedirs(SNAP)
    shutil.copy2(lib, os.path.join(SNAP, "libzerohttp.so.0"))
    for key in ("zh_static", "zh_upload"):
        if os.path.exists(K[key]):
            shutil.copy2(K[key], os.path.join(SNAP, key))
            K[key] = os.path.join(SNAP, key)
    with open(lib, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    built = datetime.datetime.fromtimestamp(os.path.getmtime(lib), datetime.timezone.utc)
    return f"libzerohttp.so sha256 {digest}, built {built:%Y-%m-%d %H:%M:%S} UTC", None


def zh_env(extra=None):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = SNAP + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["ZH_EXAMPLE_STATS"] = "1"
    env.update(extra or {})
    return env


# ---- server definitions -----------------------------------------------------------------------

def nginx_conf(workers, port):
    os.makedirs(os.path.join(CONF, "nginx-tmp"), exist_ok=True)
    ofc = ("  open_file_cache max=1024 inactive=60s;\n  open_file_cache_valid 1s;\n"
           if K["nginx_open_file_cache"] else "")
    user = "user root root;" if os.getuid() == 0 else ""
    return f"""# generated by bench/bench.py
{user}
worker_processes {workers};
worker_rlimit_nofile 19000;
daemon off;
master_process on;
error_log stderr;
pid {CONF}/nginx.pid;
events {{ worker_connections 10000; }}
http {{
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {CONF}/nginx-tmp/body;
  proxy_temp_path {CONF}/nginx-tmp/proxy;
  fastcgi_temp_path {CONF}/nginx-tmp/fastcgi;
  uwsgi_temp_path {CONF}/nginx-tmp/uwsgi;
  scgi_temp_path {CONF}/nginx-tmp/scgi;
  types {{ text/html html; application/octet-stream bin; }}
  default_type application/octet-stream;
{ofc}  server {{
    listen 127.0.0.1:{port};
    root {WWW};
    location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
  }}
}}
"""


def lighttpd_conf(port, errlog):
    return f"""# generated by bench/bench.py
server.document-root = "{WWW}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{errlog}"
server.modules = ()
server.network-backend = "sendfile"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 120
server.max-fds = 19000
server.max-connections = 9000
mimetype.assign = ( ".bin" => "application/octet-stream", "" => "text/plain" )
index-file.names = ( "index.html" )
"""


def h2o_conf(port, errlog):
    user = "user: root\n" if os.getuid() == 0 else ""
    return f"""# generated by bench/bench.py
{user}num-threads: 1
max-connections: 10000
http1-request-timeout: 120
error-log: {errlog}
listen:
  host: 127.0.0.1
  port: {port}
hosts:
  default:
    paths:
      /:
        file.dir: {WWW}
"""


class Server:
    """One configuration of a server under test. start() → ready, port set; stop()."""

    def __init__(self, name, desc):
        self.name, self.desc = name, desc
        self.version = ""
        self.status = "ok"  # or "not run (reason)"
        self.proc = None
        self.port = None
        self.err_path = None

    # subclasses: argv(port, raw_prefix) -> (argv, env); check() -> error or None
    def check(self):
        return None

    def ready_line(self):
        return False  # True: wait for "listening on" in stdout instead of probing /hello

    def start(self, raw_prefix):
        self.port = free_port()
        argv, env = self.argv(self.port, raw_prefix)
        if K["pin"]:
            argv = ["taskset", "-c", "0"] + argv
        self.out_path, self.err_path = raw_prefix + ".out", raw_prefix + ".err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = spawn(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=BUILD)
        deadline = time.monotonic() + 10
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reap()
                raise RuntimeError(f"exited with status {self.proc.returncode} during startup: "
                                   f"{tail(self.err_path)}")
            try:
                if self.ready_line():
                    with open(self.out_path) as f:
                        if "listening on" in f.read():
                            return
                else:
                    c = Conn(self.port, timeout=2)
                    try:
                        status, _, body = c.get("/hello", keep_body=True)
                    finally:
                        c.close()
                    if status == 200 and body == HELLO:
                        return
                    raise RuntimeError(f"/hello answered {status} {body[:40]!r}, not 200 'Hello, world!'")
            except (OSError, ValueError, ConnectionError) as e:
                last = str(e)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"not ready within 10 s ({last})")

    def stop(self):
        """SIGTERM, 10 s grace, then SIGKILL to the group. Returns a warning or None."""
        if self.proc is None:
            return None
        warn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                warn = "still running 10 s after SIGTERM; killed"
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # a group member left behind (nginx worker, h2o helper) goes too
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = self.proc.returncode
        if warn is None and rc not in (0, -signal.SIGTERM, 143):
            warn = f"exited with status {rc}"
        self._reap()
        return warn

    def _reap(self):
        if self.proc is not None:
            reap(self.proc)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        return " | ".join(lines[-n:]) or "(no output)"
    except OSError:
        return "(no log)"


class Zh(Server):
    def __init__(self, name, threads, extra=()):
        self.extra = list(extra)
        super().__init__(name, " ".join(["zh_static", "--threads", str(threads)] + self.extra + K["zh_args"]))
        self.threads = threads

    def check(self):
        if not os.path.exists(K["zh_static"]):
            return f"{K['zh_static']} not built (run: make bench)"
        return ZH_SNAPSHOT_ERROR

    def argv(self, port, raw_prefix):
        return ([K["zh_static"], "--threads", str(self.threads), "--listen", f"127.0.0.1:{port}"]
                + self.extra + K["zh_args"] + [WWW], zh_env())

    def engine_stats(self):
        """The `zh stats:` line zh_static prints on exit (ZH_EXAMPLE_STATS=1), as a dict."""
        try:
            with open(self.err_path) as f:
                lines = [l for l in f if l.startswith("zh stats:")]
        except OSError:
            return None
        if not lines:
            return None
        return {k: int(v) for k, v in (p.split("=") for p in lines[-1].split()[2:]) if v.isdigit()}


class Nginx(Server):
    def __init__(self, name, workers):
        super().__init__(name, f"nginx worker_processes {workers}, sendfile on, tcp_nopush on, access_log off"
                         + (", open_file_cache max=1024 (valid 1s)" if K["nginx_open_file_cache"] else ""))
        self.workers = workers

    def check(self):
        if not os.path.exists(K["nginx"]):
            return f"{K['nginx']} not found (apt-get install nginx-light)"
        self.version = run([K["nginx"], "-v"], timeout=10).stderr.strip().replace("nginx version: ", "")
        conf = self.write_conf(free_port())
        r = run([K["nginx"], "-t", "-p", CONF, "-c", conf, "-e", "stderr"], timeout=30)
        if r.returncode != 0:
            return f"nginx -t failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '?'}"
        return None

    def write_conf(self, port):
        os.makedirs(CONF, exist_ok=True)
        path = os.path.join(CONF, f"{self.name}.conf")
        with open(path, "w") as f:
            f.write(nginx_conf(self.workers, port))
        return path

    def argv(self, port, raw_prefix):
        return [K["nginx"], "-p", CONF, "-c", self.write_conf(port), "-e", "stderr"], None


class Lighttpd(Server):
    def __init__(self):
        super().__init__("lighttpd", "lighttpd (one process), network-backend sendfile; /hello is a 13-byte file")

    def check(self):
        if not os.path.exists(K["lighttpd"]):
            return f"{K['lighttpd']} not found (apt-get install lighttpd)"
        self.version = run([K["lighttpd"], "-v"], timeout=10).stdout.strip().splitlines()[0]
        conf = self.write_conf(free_port(), os.path.join(CONF, "lighttpd-check.err"))
        r = run([K["lighttpd"], "-tt", "-f", conf], timeout=30)
        if r.returncode != 0:
            return f"lighttpd -tt failed: {(r.stderr + r.stdout).strip()[:200]}"
        return None

    def write_conf(self, port, errlog):
        os.makedirs(CONF, exist_ok=True)
        path = os.path.join(CONF, "lighttpd.conf")
        with open(path, "w") as f:
            f.write(lighttpd_conf(port, errlog))
        return path

    def argv(self, port, raw_prefix):
        return [K["lighttpd"], "-D", "-f", self.write_conf(port, raw_prefix + ".log")], None


class H2o(Server):
    def __init__(self):
        super().__init__("h2o", "h2o num-threads 1 (file.dir; reads files with pread, no sendfile); /hello is a 13-byte file")

    def check(self):
        if not os.path.exists(K["h2o"]):
            return f"{K['h2o']} not found (apt-get install h2o)"
        self.version = run([K["h2o"], "--version"], timeout=10).stdout.strip().splitlines()[0]
        conf = self.write_conf(free_port(), os.path.join(CONF, "h2o-check.err"))
        r = run([K["h2o"], "-t", "-c", conf], timeout=30)
        if r.returncode != 0:
            return f"h2o -t failed: {(r.stderr + r.stdout).strip()[:200]}"
        return None

    def write_conf(self, port, errlog):
        os.makedirs(CONF, exist_ok=True)
        path = os.path.join(CONF, "h2o.conf")
        with open(path, "w") as f:
            f.write(h2o_conf(port, errlog))
        return path

    def argv(self, port, raw_prefix):
        return [K["h2o"], "-c", self.write_conf(port, raw_prefix + ".log")], None


class Mhd(Server):
    def __init__(self):
        super().__init__("mhd", "bench/peers/mhd_static.c: libmicrohttpd, one internal epoll thread, "
                                "files by MHD_create_response_from_fd (sendfile), /hello from memory")
        self.bin = None

    def check(self):
        r = run(["pkg-config", "--modversion", "libmicrohttpd"], timeout=10) if shutil.which("pkg-config") else None
        if r is None or r.returncode != 0:
            return "libmicrohttpd not found by pkg-config (apt-get install libmicrohttpd-dev)"
        self.version = f"libmicrohttpd {r.stdout.strip()}"
        flags = run(["pkg-config", "--cflags", "--libs", "libmicrohttpd"], timeout=10).stdout.split()
        self.bin, err = build_peer("mhd_static", os.path.join(BENCH, "peers", "mhd_static.c"), flags)
        return err

    def argv(self, port, raw_prefix):
        return [self.bin, WWW, str(port)], None


class Limit(Server):
    def __init__(self):
        chunk = K["limit_chunk"]
        super().__init__("limit", "bench/peers/sendfile_limit.c: accept, read the head, one header, "
                                  "sendfile loop on a blocking socket ("
                                  + (f"{chunk:,} bytes per call" if chunk else "the whole file per call")
                                  + "), close")
        self.bin = None

    def check(self):
        self.bin, err = build_peer("sendfile_limit", os.path.join(BENCH, "peers", "sendfile_limit.c"), [])
        return err

    def ready_line(self):
        return True

    def argv(self, port, raw_prefix):
        return [self.bin, os.path.join(WWW, "f", big_name(K["big_mb"])), str(port), str(K["limit_chunk"])], None


class Floor(Server):
    def __init__(self, mode):
        super().__init__(f"floor-{mode}", f"bench/peers/floor.c {mode}: one thread; per request one recv and "
                         + ("one send (/hello) or send(head, MSG_MORE) + sendfile from an fd opened once"
                            if mode == "epoll" else
                            "one send, every connection's operations batched into one io_uring_enter "
                            "(SINGLE_ISSUER|DEFER_TASKRUN); /hello only"))
        self.mode = mode
        self.bin = None

    def check(self):
        extra = []
        if self.mode == "uring":
            if not os.path.exists("/usr/include/liburing.h"):
                return "liburing.h not found (apt-get install liburing-dev)"
            extra = ["-DFLOOR_URING", "-luring"]
        self.bin, err = build_peer(f"floor-{self.mode}", os.path.join(BENCH, "peers", "floor.c"), extra)
        return err

    def ready_line(self):
        return True

    def argv(self, port, raw_prefix):
        return [self.bin, self.mode, WWW, str(port)], None


class ZhUpload(Server):
    def __init__(self, name, copy):
        super().__init__(name, "zh_upload --threads 1, " + ("ZH_FORCE_COPY=1: recv + pwrite (baseline)"
                                                             if copy else "body spliced socket -> pipe -> file"))
        self.copy = copy

    def check(self):
        if not os.path.exists(K["zh_upload"]):
            return f"{K['zh_upload']} not built (run: make bench)"
        return ZH_SNAPSHOT_ERROR

    def ready_line(self):
        return True

    def argv(self, port, raw_prefix):
        os.makedirs(os.path.join(UPLOAD_DIR, "out"), exist_ok=True)
        env = zh_env({"ZH_FORCE_COPY": "1"} if self.copy else None)
        return [K["zh_upload"], "--threads", "1", "--listen", f"127.0.0.1:{port}",
                os.path.join(UPLOAD_DIR, "out")], env


ZH_SNAPSHOT_ERROR = None


def make_servers():
    return {"zh1": Zh("zh1", 1), "zh2": Zh("zh2", 2), "zh1-nocache": Zh("zh1-nocache", 1, ["--file-cache", "0"]),
            "zh1-reno": Zh("zh1-reno", 1, ["--congestion", "reno"]),
            "nginx1": Nginx("nginx1", 1),
            "nginx2": Nginx("nginx2", 2), "lighttpd": Lighttpd(), "h2o": H2o(), "mhd": Mhd(),
            "limit": Limit(), "floor-epoll": Floor("epoll"), "floor-uring": Floor("uring"),
            "zh-upload": ZhUpload("zh-upload", False),
            "zh-upload-copy": ZhUpload("zh-upload-copy", True)}


# ---- loads ------------------------------------------------------------------------------------

WRK_LUA = """-- one machine-readable line at the end of a wrk run (bench/bench.py)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ZHBENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def load_prefix():
    return ["taskset", "-c", f"1-{os.cpu_count() - 1}"] if K["pin"] else []


def wrk_argv(port, path, threads, conns):
    return load_prefix() + ["wrk", f"-t{threads}", f"-c{conns}", f"-d{K['duration']}", "--timeout", "10s",
                            "--latency", "-s", os.path.join(K["raw"], "report.lua"), f"http://127.0.0.1:{port}{path}"]


def parse_wrk(out):
    m = re.search(r"^ZHBENCH (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"no summary from wrk: {out.strip()[-300:]}")
    kv = {k: int(v) for k, v in (p.split("=") for p in m.group(1).split())}
    s = kv["duration_us"] / 1e6
    errors = {k: kv[k] for k in ("connect", "read", "write", "status", "timeout")}
    return {"requests": kv["requests"], "bytes": kv["bytes"], "seconds": s,
            "req_s": kv["requests"] / s, "MB_s": kv["bytes"] / s / 1e6,
            "p50_ms": kv["p50_us"] / 1e3, "p99_ms": kv["p99_us"] / 1e3, "p999_ms": kv["p999_us"] / 1e3,
            "max_ms": kv["max_us"] / 1e3, "errors": errors, "errors_total": sum(errors.values())}


def with_cpu(m, cpu):
    m.update(cpu)
    if m.get("requests"):
        m["cpu_us_per_req"] = cpu["cpu_s"] * 1e6 / m["requests"]
        m["user_us_per_req"] = m["cpu_us_per_req"] * cpu["user_frac"]
    if m.get("bytes"):
        m["cpu_s_per_GB"] = cpu["cpu_s"] / (m["bytes"] / 1e9)
    return m


def load_wrk(srv, rp, path, conns):
    before = cpu_sample(srv.pid)
    r = run(wrk_argv(srv.port, path, 2, conns), timeout=K["duration_s"] + 60)
    after = cpu_sample(srv.pid)
    with open(rp + ".wrk.txt", "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"wrk exited {r.returncode}: {r.stderr.strip()[-200:]}")
    return with_cpu(parse_wrk(r.stdout), cpu_delta(before, after))


def curl_get(port, path, max_time, rate=""):
    limit = ["--limit-rate", rate] if rate else []
    r = run(load_prefix() + ["curl", "-s", "-o", "/dev/null", "--max-time", str(max_time)] + limit + [
                             "-w", "%{http_code} %{size_download} %{time_total}", f"http://127.0.0.1:{port}{path}"],
            timeout=max_time + 30)
    code, size, t = (r.stdout.split() + ["0", "0", "0"])[:3]
    return int(code), int(size), float(t), r.returncode


def load_big(srv, rp, path, nbytes):
    warm(os.path.join(WWW, path.lstrip("/")))
    before = cpu_sample(srv.pid)
    # On loopback the receiver's TCP work runs in whichever context gets to it, the server's or
    # the client's, so the server's own CPU per GB swings with the timing; the whole machine's
    # busy time (server + curl + kernel threads; nothing else runs during the bench) does not.
    machine0 = machine_busy_s()
    total, secs, bad = 0, 0.0, []
    for _ in range(K["big_reps"]):
        code, size, t, rc = curl_get(srv.port, path, 600, K["big_rate"])
        total += size
        secs += t
        if code != 200 or size != nbytes or rc != 0:
            bad.append(f"status {code}, {size} of {nbytes} bytes, curl exit {rc}")
    machine1 = machine_busy_s()
    after = cpu_sample(srv.pid)
    m = with_cpu({"bytes": total, "seconds": secs, "reps": K["big_reps"],
                  "GB_s": total / secs / 1e9 if secs else 0.0}, cpu_delta(before, after))
    if total:
        m["machine_cpu_s_per_GB"] = (machine1 - machine0) / (total / 1e9)
    m["errors_total"] = len(bad)
    if bad:
        m["error_detail"] = bad
    return m


def load_idle(srv, rp):
    n = K["idle_conns"]
    deadline = time.monotonic() + 30 + n / 100
    # warm-up: a few connections that come and go, so lazy one-time allocations happen first
    for _ in range(16):
        c = Conn(srv.port)
        c.get("/hello")
        c.close()
    time.sleep(0.5)
    rss0 = rss_bytes(srv.pid)
    conns, t0 = [], time.monotonic()
    try:
        for i in range(n):
            if time.monotonic() > deadline:
                raise RuntimeError(f"opened only {i} of {n} connections before the deadline")
            c = Conn(srv.port, timeout=10)
            conns.append(c)
            status, _, _ = c.get("/hello")
            if status != 200:
                raise RuntimeError(f"/hello answered {status} on connection {i}")
        setup = time.monotonic() - t0
        time.sleep(1.0)
        rss1 = rss_bytes(srv.pid)
        still_open = 0
        for c in conns:
            c.s.setblocking(False)
            try:
                if c.s.recv(1, socket.MSG_PEEK) != b"":
                    still_open += 1  # unexpected bytes; still counts as open
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
    finally:
        for c in conns:
            c.close()
    time.sleep(0.5)  # let the server see the closes (lighttpd exits 1 on SIGTERM with connections open)
    return {"conns": n, "open_at_end": still_open, "rss_before": rss0, "rss_after": rss1,
            "rss_per_conn": (rss1 - rss0) / n, "setup_s": setup,
            "errors_total": n - still_open}


PAGE_REPORTING_DELAY = "/sys/module/page_reporting/parameters/min_free_ms"


@contextlib.contextmanager
def reporting_held(ms):
    """Keeps freed guest memory from this VM's balloon for `ms` (its free page reporting,
    virtio feature 5: `min_free_ms` is how long a page stays free before it is reported; 0 on
    this machine). A reported page loses its host backing, and the next write into it faults
    on the host: measured by hand (BENCHMARKS.md, "Uploads and this VM's memory"), a 1 GiB
    write into a new ext4 file took 0.23 to 2.9 s/GB from one try to the next, 0.23 every time
    with reporting held. Both upload servers get the same treatment; the old value is put back
    when the upload is over. Yields the value held (None when the knob is absent or read-only)."""
    old = None
    if ms > 0:
        try:
            with open(PAGE_REPORTING_DELAY) as f:
                old = f.read().strip()
            with open(PAGE_REPORTING_DELAY, "w") as f:
                f.write(str(ms))
        except OSError:
            old = None
    try:
        yield ms if old is not None else None
    finally:
        if old is not None:
            with open(PAGE_REPORTING_DELAY, "w") as f:
                f.write(old)


def prefault(mb, directory):
    """Writes `mb` MiB into a file in `directory` and deletes it: the upload that follows gets
    page-cache pages that were just in use (so host-backed while reporting is held), instead of
    whatever the allocator hands out. Anonymous memory touched and freed (the harness before
    2026-11-29) did not help: it comes from other blocks than a filesystem's large folios."""
    if mb <= 0:
        return
    path = os.path.join(directory, "prefault.tmp")
    chunk = b"\x01" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(chunk)
    os.unlink(path)


def load_upload(srv, rp):
    src = os.path.join(WWW, "f", big_name(K["upload_mb"]))
    dst = os.path.join(UPLOAD_DIR, "out", "up.bin")
    nbytes = K["upload_mb"] << 20
    if os.path.exists(dst):
        os.unlink(dst)
    warm(src)
    os.sync()  # no dirty pages left from the previous upload: writeback would compete with this one
    time.sleep(0.5)
    with reporting_held(K["upload_hold_reporting_ms"]) as held:
        prefault(K["upload_prefault_mb"], os.path.dirname(dst))
        before = cpu_sample(srv.pid)
        r = run(load_prefix() + ["curl", "-s", "-o", "/dev/null", "--max-time", "600", "-T", src,
                                 "-w", "%{http_code} %{size_upload} %{time_total}", f"http://127.0.0.1:{srv.port}/up.bin"],
                timeout=660)
        after = cpu_sample(srv.pid)
    code, size, t = (r.stdout.split() + ["0", "0", "0"])[:3]
    m = with_cpu({"bytes": int(size), "seconds": float(t), "http_code": int(code),
                  "GB_s": int(size) / float(t) / 1e9 if float(t) else 0.0}, cpu_delta(before, after))
    m["reporting_held_ms"] = held
    problems = []
    if r.returncode != 0 or int(code) // 100 != 2:
        problems.append(f"curl exit {r.returncode}, status {code}")
    identical = os.path.exists(dst) and run(["cmp", "-s", src, dst], timeout=300).returncode == 0
    if not identical:
        problems.append("stored file differs from the upload")
    m["identical"] = identical
    m["errors_total"] = len(problems)
    if problems:
        m["error_detail"] = problems
    if os.path.exists(dst):
        os.unlink(dst)
    return m


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path):
    if not shutil.which("fincore"):
        return None
    r = run(["fincore", "-b", "-n", "-o", "RES,SIZE", path], timeout=30)
    try:
        res, size = map(int, r.stdout.split()[:2])
        return res / size if size else None
    except ValueError:
        return None


def load_cold(srv, rp):
    path = f"/f/cold-{K['cold_mb']}m.bin"
    fpath = os.path.join(WWW, path.lstrip("/"))
    nbytes = K["cold_mb"] << 20
    wrk_cmd = load_prefix() + ["wrk", "-t1", f"-c{K['cold_conns']}", f"-d{K['duration']}", "--timeout", "10s",
                               "--latency", "-s", os.path.join(K["raw"], "report.lua"),
                               f"http://127.0.0.1:{srv.port}/hello"]
    warm_m = None
    if K["cold_baseline"]:  # the same /hello load first, with nothing else going on
        r = run(wrk_cmd, timeout=K["duration_s"] + 60)
        with open(rp + ".warm.wrk.txt", "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"wrk exited {r.returncode}: {r.stderr.strip()[-200:]}")
        warm_m = parse_wrk(r.stdout)
    before = cpu_sample(srv.pid)
    wrk = spawn(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + K["duration_s"] + 60
    time.sleep(0.3)
    done, partial, cold_bytes, cold_secs, resident = 0, 0, 0, 0.0, None
    while wrk.poll() is None and time.monotonic() < end:
        evict(fpath)
        if resident is None:
            resident = resident_fraction(fpath)
        left = max(1, int(end - time.monotonic()))
        rate = ["--limit-rate", K["cold_rate"]] if K["cold_rate"] else []
        curl = spawn(load_prefix() + ["curl", "-s", "-o", "/dev/null", "--max-time", str(left)] + rate + [
                                      "-w", "%{http_code} %{size_download} %{time_total}",
                                      f"http://127.0.0.1:{srv.port}{path}"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while curl.poll() is None and wrk.poll() is None:
            time.sleep(0.02)
        if curl.poll() is None:  # wrk is done: the download in flight does not count
            curl.kill()
            curl.wait()
            reap(curl)
            partial += 1
            break
        out = curl.stdout.read()
        reap(curl)
        code, size, t = (out.split() + ["0", "0", "0"])[:3]
        if int(code) == 200 and int(size) == nbytes:
            done += 1
            cold_bytes += int(size)
            cold_secs += float(t)
        else:
            partial += 1
    try:
        out, _ = wrk.communicate(timeout=max(1, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(wrk.pid, signal.SIGKILL)
        out, _ = wrk.communicate()
        raise RuntimeError("wrk exceeded its bound")
    finally:
        reap(wrk)
    after = cpu_sample(srv.pid)
    with open(rp + ".wrk.txt", "w") as f:
        f.write(out)
    m = parse_wrk(out)
    m.update(cpu_delta(before, after))
    m.update({"cold_downloads": done, "cold_incomplete": partial, "cold_bytes": cold_bytes,
              "cold_MB_s": cold_bytes / cold_secs / 1e6 if cold_secs else 0.0,
              "resident_after_evict": resident})
    if warm_m:
        m.update({"warm_p99_ms": warm_m["p99_ms"], "warm_max_ms": warm_m["max_ms"], "warm_req_s": warm_m["req_s"],
                  "warm_errors": warm_m["errors_total"]})
        m["errors_total"] += warm_m["errors_total"]
    if done == 0:
        m["error_detail"] = ["no cold download completed during the load"]
    return m


STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)\s*$")


def load_syscalls(srv, rp):
    n = K["syscall_reqs"]
    pids = proc_tree(srv.pid)
    c = Conn(srv.port)  # connect before attaching: accept is not part of the per-request count
    c.get("/f/64k.bin")
    out_file = rp + ".strace.txt"
    argv = ["strace", "-c", "-f", "-o", out_file]
    for p in pids:
        argv += ["-p", str(p)]
    st = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # strace reports each attached process on stderr; give it a moment after the last one
        deadline = time.monotonic() + 10
        seen = ""
        fd = st.stderr.fileno()
        os.set_blocking(fd, False)
        while time.monotonic() < deadline and seen.count("attached") < len(pids):
            if st.poll() is not None:
                raise RuntimeError(f"strace exited: {seen.strip()[-200:]}")
            try:
                seen += os.read(fd, 65536).decode(errors="replace")
            except BlockingIOError:
                pass
            time.sleep(0.05)
        if seen.count("attached") < len(pids):
            raise RuntimeError(f"strace attached to {seen.count('attached')} of {len(pids)} processes")
        time.sleep(0.3)
        t0 = time.monotonic()
        for i in range(n):
            status, got, _ = c.get("/f/64k.bin")
            if status != 200 or got != 65536:
                raise RuntimeError(f"request {i}: status {status}, {got} bytes")
        client_s = time.monotonic() - t0
        time.sleep(0.2)
    finally:
        c.close()
        if st.poll() is None:
            st.send_signal(signal.SIGINT)
        try:
            st.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(st.pid, signal.SIGKILL)
            st.wait()
        reap(st)
    calls = {}
    with open(out_file) as f:
        for line in f:
            mm = STRACE_LINE.match(line)
            if mm and mm.group(3) != "total":
                calls[mm.group(3)] = [int(mm.group(1)), int(mm.group(2) or 0)]
    total = sum(v[0] for v in calls.values())
    return {"requests": n, "total_calls": total, "per_req": total / n,
            "errors_per_req": sum(v[1] for v in calls.values()) / n, "by_syscall": calls,
            "client_s": client_s, "errors_total": 0}


# ---- the plan ---------------------------------------------------------------------------------

def scenario_servers(sc, servers):
    sel = K["servers"]
    if sc == "limit":
        return ["limit"]
    if sc == "upload":
        return ["zh-upload", "zh-upload-copy"]
    if sc == "cold":
        return [s for s in sel if s in SINGLE_WORKER]
    return [s for s in sel if s not in FLOOR_SCENARIOS or sc in FLOOR_SCENARIOS[s]]


def run_one(srv, sc, rnd, rp):
    # This VM reclaims idle page cache over time (even a page of 64k.bin goes): read the files
    # again right before each load, so every server serves them from memory.
    if sc in ("64k", "syscalls"):
        warm(os.path.join(WWW, "f", "64k.bin"))
    elif sc == "1m":
        warm(os.path.join(WWW, "f", "1m.bin"))
    srv.start(rp)
    try:
        if sc == "small":
            m = load_wrk(srv, rp, "/hello", 64)
        elif sc == "64k":
            m = load_wrk(srv, rp, "/f/64k.bin", 64)
        elif sc == "1m":
            m = load_wrk(srv, rp, "/f/1m.bin", 16)
        elif sc in ("big", "limit"):
            m = load_big(srv, rp, f"/f/{big_name(K['big_mb'])}", K["big_mb"] << 20)
        elif sc == "idle":
            m = load_idle(srv, rp)
        elif sc == "upload":
            m = load_upload(srv, rp)
        elif sc == "cold":
            m = load_cold(srv, rp)
        elif sc == "syscalls":
            m = load_syscalls(srv, rp)
        else:
            raise AssertionError(sc)
    finally:
        warn = srv.stop()
    if warn:
        m.setdefault("warnings", []).append(f"{srv.name} {warn}")
    if isinstance(srv, (Zh, ZhUpload)):
        m["zh_stats"] = Zh.engine_stats(srv)
    return m


def estimate_s(plan):
    """Seconds the run should take (per-run costs measured on a 2-CPU VM)."""
    d = K["duration_s"]
    per = {"small": d + 1, "64k": d + 1, "1m": d + 1, "cold": d * (1 + K["cold_baseline"]) + 1.5,
           "big": 1 + K["big_reps"] * K["big_mb"] / 700, "limit": 1 + K["big_reps"] * K["big_mb"] / 1000,
           "idle": 2.5 + K["idle_conns"] / 3000, "upload": 1 + K["upload_mb"] / 300,
           "syscalls": 1 + K["syscall_reqs"] / 1000}
    return sum(per[sc] * len(names) for sc, names in plan) * K["rounds"]


def tool_version(argv, pattern=None):
    try:
        r = run(argv, timeout=10)
    except (OSError, RuntimeError):
        return "not found"
    text = (r.stdout + r.stderr).strip()
    line = text.splitlines()[0] if text else "?"
    if pattern:
        m = re.search(pattern, text)
        return m.group(0) if m else line
    return line


def machine():
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    distro = ""
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)', f.read(), re.M)
            distro = m.group(1) if m else ""
    try:
        nofile = " ".join(str(x) for x in __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE))
    except (ImportError, OSError):
        nofile = "?"
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            congestion = f.read().strip()
        with open("/proc/sys/net/core/default_qdisc") as f:
            congestion += f", qdisc {f.read().strip()}"
    except OSError:
        congestion = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem": mem, "kernel": os.uname().release, "distro": distro,
            "ulimit_nofile": nofile, "tcp_congestion": congestion, "memory_return": memory_return()}


def memory_return():
    """How this VM gives memory back, which decides page-cache and upload figures: the balloon's
    free page reporting delay and whether DAMON pages out cold memory."""
    parts = []
    try:
        with open(PAGE_REPORTING_DELAY) as f:
            parts.append(f"free page reporting after {f.read().strip()} ms")
    except OSError:
        parts.append("no free page reporting")
    actions = []
    base = "/sys/kernel/mm/damon/admin/kdamonds"
    try:
        for k in sorted(os.listdir(base)):
            if not k.isdigit():
                continue
            with open(os.path.join(base, k, "state")) as f:
                if f.read().strip() != "on":
                    continue
            for root, _dirs, files in os.walk(os.path.join(base, k, "contexts")):
                if "action" in files and os.path.basename(os.path.dirname(root)) == "schemes":
                    with open(os.path.join(root, "action")) as f:
                        actions.append(f.read().strip())
    except OSError:
        pass
    parts.append(f"DAMON {', '.join(actions)}" if actions else "no DAMON scheme")
    return "; ".join(parts)


def main():
    global ZH_SNAPSHOT_ERROR
    read_knobs()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(kill_all)
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            die(f"{tool} not found (make deps-bench, or apt-get install {tool})")
    if "syscalls" in K["scenarios"] and not shutil.which("strace"):
        die("strace not found (apt-get install strace)")
    if K["pin"] and (os.cpu_count() or 1) < 2:
        die("BENCH_PIN=1 needs at least 2 CPUs")

    out = K["out"]
    K["raw"] = os.path.join(out, "raw")
    os.makedirs(K["raw"], exist_ok=True)
    with open(os.path.join(K["raw"], "report.lua"), "w") as f:
        f.write(WRK_LUA)

    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    if float(load_before.split()[0]) > 0.7:
        log(f"WARNING: load average is {load_before}: something else is running; numbers will be skewed")

    zh_desc, ZH_SNAPSHOT_ERROR = snapshot_zh()
    servers = make_servers()
    needed = set()
    plan = []
    for sc in K["scenarios"]:
        names = scenario_servers(sc, servers)
        needed.update(names)
        plan.append((sc, names))
    for name in sorted(needed, key=lambda n: list(servers).index(n)):
        srv = servers[name]
        try:
            err = srv.check()
        except (OSError, RuntimeError, IndexError) as e:
            err = str(e)
        if err:
            srv.status = f"not run ({err})"
            log(f"{name}: {srv.status}")
        if isinstance(srv, (Zh, ZhUpload)):
            srv.version = zh_desc or ""
    prepare_root()
    est = estimate_s(plan)
    log(f"plan: {len(K['scenarios'])} scenarios x {K['rounds']} rounds, servers {' '.join(K['servers'])}; "
        f"about {est / 60:.1f} min; results in {os.path.relpath(out, ROOT)}")

    results = {
        "meta": {
            "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join([f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                                 if k.startswith("BENCH_")] + ["bench/run.sh"]),
            "commit": (run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip() or "unknown"),
            "dirty": bool(run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "examples-c", "bench"],
                              timeout=30).stdout.strip()),
            "machine": machine(),
            "load_before": load_before,
            "knobs": {k: v for k, v in K.items() if k not in ("raw",)},
            "reference": REFERENCE,
            "tools": {"wrk": tool_version(["wrk", "-v"], r"wrk \S+"),
                      "curl": tool_version(["curl", "--version"]),
                      "strace": tool_version(["strace", "-V"]),
                      "gcc": tool_version([K["cc"], "--version"])},
        },
        "servers": {n: {"desc": servers[n].desc, "version": servers[n].version, "status": servers[n].status}
                    for n in servers if n in needed},
        "runs": [],
    }
    res_path = os.path.join(out, "results.json")

    def save():
        with open(res_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1, default=list)
        os.replace(res_path + ".tmp", res_path)

    save()
    for rnd in range(1, K["rounds"] + 1):
        for sc, names in plan:
            k = (rnd - 1) % len(names) if names else 0
            order = names[k:] + names[:k]  # rotate the order each round
            for name in order:
                srv = servers[name]
                entry = {"round": rnd, "scenario": sc, "server": name, "load1": loadavg().split()[0],
                         "time": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")}
                if srv.status != "ok":
                    entry["error"] = srv.status
                    results["runs"].append(entry)
                    continue
                log(f"round {rnd}/{K['rounds']}: {sc} on {name}")
                rp = os.path.join(K["raw"], f"{sc}-{name}-r{rnd}")
                try:
                    entry["metrics"] = run_one(srv, sc, rnd, rp)
                except (OSError, RuntimeError, ValueError, ConnectionError) as e:
                    entry["error"] = f"{type(e).__name__}: {e}"
                    log(f"  failed: {entry['error']}")
                    if srv.proc is not None:
                        srv.stop()
                results["runs"].append(entry)
                save()
    results["meta"]["load_after"] = loadavg()
    results["meta"]["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    results["meta"]["elapsed_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds())
    save()
    md = run([sys.executable, os.path.join(BENCH, "report.py"), res_path], timeout=60)
    if md.returncode != 0:
        die(f"report.py failed: {md.stderr.strip()}")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md.stdout)
    if not os.environ.get("BENCH_OUT"):
        latest = os.path.join(BENCH, "results", "latest")
        if os.path.islink(latest) or not os.path.exists(latest):
            if os.path.islink(latest):
                os.unlink(latest)
            os.symlink(os.path.basename(out), latest)
    print(md.stdout)
    log(f"results: {os.path.relpath(out, ROOT)}/results.md, results.json, raw/ "
        f"({results['meta']['elapsed_s']} s)")


if __name__ == "__main__":
    main()
