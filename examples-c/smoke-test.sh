#!/usr/bin/env bash
# Runs the built C examples and checks them with curl over 127.0.0.1.
#   examples-c/smoke-test.sh [BIN_DIR]      (default: build/examples-c)
# Environment: SMOKE_BIG_MB=64 (size of the big file compared byte for byte with cmp).
# Exit status 0 when every check passed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/build/examples-c}
BIG_MB=${SMOKE_BIG_MB:-64}
export LD_LIBRARY_PATH=$ROOT/target/release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
TMP=$(mktemp -d /tmp/zh-smoke.XXXXXX)
PASS=0 FAIL=0 PID="" URL=""

ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
check() { # description expected actual
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1: expected [$2], got [$3]"; fi
}
cleanup() {
  if [[ -n "$PID" ]]; then kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

start() { # name args...
  local name=$1 i
  shift
  "$BIN/$name" --listen 127.0.0.1:0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PID=$!
  for ((i = 0; i < 100; i++)); do
    URL=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9][0-9]*\)$/\1/p' "$TMP/$name.out")
    [[ -n "$URL" ]] && { ok "$name ready at $URL"; return 0; }
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  bad "$name did not print 'listening on http://127.0.0.1:PORT' (stderr: $(head -c 500 "$TMP/$name.err"))"
  kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
  return 1
}
stop() { # name signal
  local name=$1 sig=${2:-TERM} rc i
  kill "-$sig" "$PID"
  for ((i = 0; i < 50; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    bad "$name still running 5 s after SIG$sig"; kill -KILL "$PID"; wait "$PID" 2>/dev/null
  else
    wait "$PID"; rc=$?
    check "$name exits 0 on SIG$sig" 0 "$rc"
  fi
  PID=""
  [[ -s "$TMP/$name.err" ]] && echo "     ($name stderr: $(head -c 300 "$TMP/$name.err"))"
  return 0
}
# status code of a request; extra curl args allowed
code() { curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$@"; }
header() { # name url [curl args] -> value of the response header
  local name=$1; shift
  curl -s -o /dev/null -D - --max-time 10 "$@" | tr -d '\r' | sed -n "s/^$name: //Ip" | head -1
}

# bytes that follow the response head of a HEAD request (must be 0)
raw_after_head() { # url path
  python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit("/", 1)[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(f"HEAD {sys.argv[2]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    pass
head, sep, rest = data.partition(b"\r\n\r\n")
print(len(rest) if sep else "no-head")
PY
}

# ---- zh_hello ---------------------------------------------------------------------------------
if start zh_hello; then
  check "zh_hello body" "Hello, world!" "$(curl -s --max-time 10 "$URL/any/path")"
  check "zh_hello Content-Type" "text/plain" "$(header Content-Type "$URL/")"
  check "zh_hello Content-Length" "13" "$(header Content-Length "$URL/")"
  check "zh_hello keep-alive x3" "Hello, world!Hello, world!Hello, world!" \
    "$(curl -s --max-time 10 "$URL/1" "$URL/2" "$URL/3")"
  stop zh_hello INT
fi

# ---- zh_static --------------------------------------------------------------------------------
WWW=$TMP/www
mkdir -p "$WWW/sub" "$WWW/noindex" "$TMP/outside"
cp "$ROOT"/examples-c/www/* "$WWW/" 2>/dev/null
echo "secret" >"$TMP/outside/secret.txt"
ln -s "$TMP/outside/secret.txt" "$WWW/escape.txt"
ln -s "$TMP/outside" "$WWW/escape-dir"
ln -s style.css "$WWW/inside-link.css"
echo "<p>sub</p>" >"$WWW/sub/index.html"
echo "spaced" >"$WWW/a b.txt"
head -c $((BIG_MB * 1048576)) /dev/urandom >"$WWW/big.bin"
if start zh_static "$WWW"; then
  curl -s --max-time 10 -o "$TMP/index.got" "$URL/"
  if cmp -s "$TMP/index.got" "$WWW/index.html"; then ok "GET / = index.html"; else bad "GET / differs from index.html"; fi
  check "index Content-Type" "text/html; charset=utf-8" "$(header Content-Type "$URL/")"
  check "style.css Content-Type" "text/css; charset=utf-8" "$(header Content-Type "$URL/style.css")"
  check "logo.svg Content-Type" "image/svg+xml" "$(header Content-Type "$URL/logo.svg")"
  check "big.bin Content-Type" "application/octet-stream" "$(header Content-Type "$URL/big.bin")"
  lm=$(header Last-Modified "$URL/style.css")
  check "Last-Modified" "$(TZ=GMT LC_ALL=C date -r "$WWW/style.css" '+%a, %d %b %Y %H:%M:%S GMT')" "$lm"
  curl -s --max-time 120 -o "$TMP/big.got" "$URL/big.bin"
  if cmp -s "$TMP/big.got" "$WWW/big.bin"; then ok "big.bin ($BIG_MB MiB) byte-identical"; else bad "big.bin differs (got $(stat -c %s "$TMP/big.got" 2>/dev/null) bytes)"; fi
  rm -f "$TMP/big.got"
  check "HEAD status" "200" "$(code -I "$URL/big.bin")"
  check "HEAD Content-Length" "$((BIG_MB * 1048576))" "$(header Content-Length -I "$URL/big.bin")"
  check "HEAD has no body (Connection: close, raw socket)" "0" "$(raw_after_head "$URL" /style.css)"
  check "Range 0-9 → 206" "206 10" "$(curl -s -o /dev/null -r 0-9 --max-time 10 -w '%{http_code} %{size_download}' "$URL/big.bin")"
  etag=$(header ETag "$URL/style.css")
  check "If-None-Match → 304" "304" "$(code -H "If-None-Match: $etag" "$URL/style.css")"
  check "GET /hello" "Hello, world!" "$(curl -s --max-time 10 "$URL/hello")"
  check "404 missing" "404" "$(code "$URL/nope.txt")"
  check "403 /../etc/passwd" "403" "$(code --path-as-is "$URL/../etc/passwd")"
  check "403 encoded dot-dot" "403" "$(code --path-as-is "$URL/sub/%2e%2e/%2e%2e/etc/passwd")"
  check "403 NUL byte" "403" "$(code "$URL/style.css%00.txt")"
  check "403 symlink out of root" "403" "$(code "$URL/escape.txt")"
  check "403 symlinked dir out of root" "403" "$(code "$URL/escape-dir/secret.txt")"
  check "200 symlink inside root" "200" "$(code "$URL/inside-link.css")"
  check "percent-decoded name" "spaced" "$(curl -s --max-time 10 "$URL/a%20b.txt")"
  check "301 dir without slash" "301" "$(code "$URL/sub")"
  check "301 Location" "/sub/" "$(header Location "$URL/sub")"
  check "dir index" "<p>sub</p>" "$(curl -s --max-time 10 "$URL/sub/")"
  check "403 dir without index" "403" "$(code "$URL/noindex/")"
  check "405 POST" "405" "$(code -X POST -d x "$URL/style.css")"
  check "405 Allow" "GET, HEAD" "$(header Allow -X DELETE "$URL/style.css")"
  stop zh_static TERM
fi

# ---- zh_static --threads 1: one worker on the main thread (external-loop mode) ------------------
if start zh_static --threads 1 "$WWW"; then
  # Idle, the main thread sleeps in the step until there is work: no periodic wake-ups (the stop
  # signal ends the wait through zh_engine_wake). Measured before any file is served: a worker
  # with cached files wakes to sweep them (after 1 s, then when they are 10 s unused).
  cs() { sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "/proc/$PID/status"; }
  cs0=$(cs); sleep 1.5; cs1=$(cs)
  if ((cs1 - cs0 == 0)); then ok "--threads 1: idle for 1.5 s without a wake-up"; else bad "--threads 1: $((cs1 - cs0)) wake-ups in 1.5 s idle"; fi
  check "--threads 1: GET /hello" "Hello, world!" "$(curl -s --max-time 10 "$URL/hello")"
  curl -s --max-time 120 -o "$TMP/big.got" "$URL/big.bin"
  if cmp -s "$TMP/big.got" "$WWW/big.bin"; then ok "--threads 1: big.bin byte-identical"; else bad "--threads 1: big.bin differs"; fi
  rm -f "$TMP/big.got"
  check "--threads 1: Range 0-9 → 206" "206 10" "$(curl -s -o /dev/null -r 0-9 --max-time 10 -w '%{http_code} %{size_download}' "$URL/big.bin")"
  # Every file here is in the page cache, so the disk pool never started: one thread.
  check "--threads 1: the process has one thread" "1" "$(ls "/proc/$PID/task" | wc -l)"
  # SIGINT ends the step's wait at once (the handler calls zh_engine_wake).
  t0=$(date +%s%N)
  stop zh_static INT
  ms=$((($(date +%s%N) - t0) / 1000000))
  if ((ms < 1500)); then ok "--threads 1: stopped ${ms} ms after SIGINT"; else bad "--threads 1: took ${ms} ms to stop"; fi
fi

# ---- zh_static --congestion: the listener's congestion control reaches each connection --------
if start zh_static --threads 1 --congestion reno "$WWW"; then
  check "--congestion reno: GET /hello" "Hello, world!" "$(curl -s --max-time 10 "$URL/hello")"
  if command -v ss >/dev/null; then
    port=${URL##*:}
    # A connection held open (keep-alive, then a pause) so ss can see the server's end of it.
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n' >&3
    sleep 0.2
    cc=$(ss -tinH state established "( sport = :$port )" | grep -ow -m1 -e reno -e cubic -e bbr)
    exec 3<&- 3>&-
    check "--congestion reno: the accepted connection uses reno" "reno" "$cc"
  else
    bad "ss (iproute2) missing: cannot see the connection's congestion control"
  fi
  stop zh_static INT
fi
timeout -k 2 5 "$BIN/zh_static" --threads 1 --listen 127.0.0.1:0 --congestion no-such-cc "$WWW" >"$TMP/cc.out" 2>"$TMP/cc.err"
check "--congestion no-such-cc: exit status 1" 1 "$?"
if grep -q -- "--congestion no-such-cc: not supported" "$TMP/cc.err"; then ok "--congestion no-such-cc: says why"; else bad "--congestion no-such-cc: no reason on stderr ($(head -c 300 "$TMP/cc.err"))"; fi

# ---- zh_echo ----------------------------------------------------------------------------------
head -c 300000 /dev/urandom >"$TMP/body.bin"
if start zh_echo; then
  curl -s --max-time 10 --data-binary @"$TMP/body.bin" -o "$TMP/echo.got" "$URL/echo"
  if cmp -s "$TMP/echo.got" "$TMP/body.bin"; then ok "echo 300000 bytes byte-identical"; else bad "echo body differs"; fi
  check "X-Body-Len" "300000" "$(header X-Body-Len --data-binary @"$TMP/body.bin" "$URL/")"
  check "chunked upload echoed" "hello chunked" \
    "$(printf 'hello chunked' | curl -s --max-time 10 -H 'Transfer-Encoding: chunked' --data-binary @- "$URL/")"
  check "GET without body: X-Body-Len" "0" "$(header X-Body-Len "$URL/")"
  stop zh_echo TERM
fi

# ---- zh_upload --------------------------------------------------------------------------------
# Bodies into files; one larger than the disk's free space is refused before the client sends it
# (the engine checks a Content-Length body's room first): 507 for ENOSPC (413 if EFBIG).
mkdir -p "$TMP/up"
head -c $((3 << 20)) /dev/urandom >"$TMP/up-src.bin"
if start zh_upload "$TMP/up"; then
  check "zh_upload PUT 3 MiB → 201" "201" "$(code -T "$TMP/up-src.bin" "$URL/a.bin")"
  if cmp -s "$TMP/up-src.bin" "$TMP/up/a.bin"; then ok "zh_upload stored the body byte for byte"; else bad "zh_upload: stored file differs"; fi
  refused=$(python3 - "$URL" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit("/", 1)[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"PUT /huge.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387904\r\nExpect: 100-continue\r\n\r\n")
data = b""
try:
    while True:  # the connection closes after the answer: the body will never be read
        b = s.recv(4096)
        if not b:
            break
        data += b
except socket.timeout:
    print("no close after", end=" ")
print(data.split(b"\r\n", 1)[0].decode(errors="replace"), "/", data.rsplit(b"\r\n", 1)[-1].decode(errors="replace").strip())
PY
)
  case "$refused" in
    "HTTP/1.1 413 "*"/ upload failed: "* | "HTTP/1.1 507 "*"/ upload failed: "*) ok "zh_upload refuses a 4 EiB body before it is sent ($refused)" ;;
    *) bad "zh_upload 4 EiB body: expected 413 or 507 as the first answer, got [$refused]" ;;
  esac
  stop zh_upload TERM
fi

# ---- bad --listen ports ------------------------------------------------------------------------
# A port outside 0..65535 (or not a number) is refused with a message and a non-zero exit, never
# wrapped into another port (glibc's getaddrinfo keeps the low 16 bits: 70000 would bind 4464).
# zh_module_host binds its socket itself (host_common.h); the others go through zh_engine_listen.
for prog in zh_module_host zh_epoll_host zh_hello; do
  if [[ ! -x "$BIN/$prog" ]]; then bad "$prog not built"; continue; fi
  for port in 65536 70000 4294967297 -1 80x ""; do
    timeout -k 2 5 "$BIN/$prog" --listen "127.0.0.1:$port" >"$TMP/badport.out" 2>"$TMP/badport.err"
    rc=$?
    if [[ $rc -eq 0 || $rc -ge 124 ]] || grep -q '^listening on' "$TMP/badport.out" || [[ ! -s "$TMP/badport.err" ]]; then
      bad "$prog --listen 127.0.0.1:$port: expected an error and a non-zero exit, got exit $rc, stdout [$(head -c 200 "$TMP/badport.out")], stderr [$(head -c 200 "$TMP/badport.err")]"
    else
      ok "$prog refuses port '$port' (exit $rc: $(head -n 1 "$TMP/badport.err" | head -c 120))"
    fi
  done
done
if [[ -x "$BIN/zh_module_host" ]]; then
  timeout -k 2 5 "$BIN/zh_module_host" --listen 127.0.0.1:70000 >/dev/null 2>"$TMP/badport.err"
  check "zh_module_host names the port range" "1" "$(grep -c '0\.\.65535' "$TMP/badport.err")"
fi

echo "passed $PASS, failed $FAIL"
((FAIL == 0))
