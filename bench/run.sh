#!/usr/bin/env bash
# zerohttp benchmark: zh_static (1 worker thread) against nginx (1 worker process) on loopback.
#
# Run through `make bench` (which builds build/examples-c/zh_static and the release library);
# this script builds nothing. Every load is bounded in time; servers run one at a time,
# alternating, each freshly started for each scenario.
#
# Environment (all optional):
#   BENCH_DURATION=10s     wrk duration per scenario (wrk syntax: 2s, 10s, 1m)
#   BENCH_BIG_MB=1024      size of the big file fetched with curl (1024 → f/1g.bin, else f/<N>m.bin)
#   BENCH_BIG_REPS=3       curl downloads of the big file per server (summed)
#   BENCH_ROUNDS=3         repeat the whole alternation; the table reports the median round
#   BENCH_SERVERS="zh nginx"  which servers to run (e.g. "nginx" alone to test the harness)
#   BENCH_PIN=0            1: pin the server to CPU 0 and the load generator to the other CPUs
#   ZH_STATIC=build/examples-c/zh_static (or ZH_EXAMPLES_DIR=DIR)   NGINX=/usr/sbin/nginx
#   ZEROHTTP_LIB_DIR=target/release   (put first on LD_LIBRARY_PATH)
#   ZH_PORT=18080 NGINX_PORT=18081
# Output: bench/results/latest.md (also printed), raw logs in bench/results/raw/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
BIG_MB=${BENCH_BIG_MB:-1024}
BIG_REPS=${BENCH_BIG_REPS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
SERVERS=${BENCH_SERVERS:-"zh nginx"}
PIN=${BENCH_PIN:-0}
ZH_STATIC=${ZH_STATIC:-${ZH_EXAMPLES_DIR:-$ROOT/build/examples-c}/zh_static}
NGINX=${NGINX:-/usr/sbin/nginx}
ZH_PORT=${ZH_PORT:-18080}
NGINX_PORT=${NGINX_PORT:-18081}
WWW=$ROOT/build/bench-www
NGX_DIR=$ROOT/build/bench-nginx
RESULTS=$ROOT/bench/results
RAW=$RESULTS/raw
DATA=$RAW/data.tsv
CLK_TCK=$(getconf CLK_TCK)

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0;;
  *) die "no arguments are taken (got '$*'); configure with environment variables, see --help";;
esac

# wrk duration in seconds (for timeouts)
dur_s=$(python3 -c '
import re,sys
m=re.fullmatch(r"(\d+)([smh]?)", sys.argv[1])
if not m: sys.exit("BENCH_DURATION must look like 10s, 2s, 1m")
print(int(m.group(1))*{"":1,"s":1,"m":60,"h":3600}[m.group(2)])' "$DURATION")
[[ "$BIG_MB" =~ ^[0-9]+$ && "$BIG_MB" -ge 1 ]] || die "BENCH_BIG_MB must be a positive integer"
[[ "$BIG_REPS" =~ ^[0-9]+$ && "$BIG_REPS" -ge 1 ]] || die "BENCH_BIG_REPS must be a positive integer"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || die "BENCH_ROUNDS must be a positive integer"

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install $tool)"
done
for s in $SERVERS; do
  case $s in
    zh) [[ -x "$ZH_STATIC" ]] || die "$ZH_STATIC not built (run: make bench)";;
    nginx) [[ -x "$NGINX" ]] || die "$NGINX not found (apt-get install nginx-light)";;
    *) die "unknown server '$s' in BENCH_SERVERS";;
  esac
done
# Snapshot the release library and zh_static: a rebuild in target/release during the run must
# not change the code under test half-way. zh_static's RUNPATH yields to LD_LIBRARY_PATH.
LIB_SRC=${ZEROHTTP_LIB_DIR:-$ROOT/target/release}
SNAP=$ROOT/build/bench-lib
LIB_ID="(not used)"
if [[ " $SERVERS " == *" zh "* ]]; then
  [[ -f "$LIB_SRC/libzerohttp.so" ]] || die "$LIB_SRC/libzerohttp.so not built (run: make bench)"
  rm -rf "$SNAP" && mkdir -p "$SNAP"
  cp "$LIB_SRC/libzerohttp.so" "$SNAP/libzerohttp.so.0"
  cp "$ZH_STATIC" "$SNAP/zh_static"
  ZH_STATIC=$SNAP/zh_static
  export LD_LIBRARY_PATH=$SNAP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  ldd "$ZH_STATIC" | grep -q "$SNAP/libzerohttp.so.0" || die "zh_static does not load the snapshot library"
  LIB_ID="libzerohttp.so sha256 $(sha256sum "$SNAP/libzerohttp.so.0" | cut -c1-12), built $(date -u -r "$LIB_SRC/libzerohttp.so" '+%Y-%m-%d %H:%M:%S UTC')"
fi

SERVER_CPU=() LOAD_CPU=()
if [[ "$PIN" == 1 ]]; then
  ncpu=$(nproc)
  (( ncpu >= 2 )) || die "BENCH_PIN=1 needs at least 2 CPUs"
  SERVER_CPU=(taskset -c 0) LOAD_CPU=(taskset -c "1-$((ncpu - 1))")
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('${LOAD_BEFORE%% *}') > 0.7 else 1)"; then
  log "WARNING: load average is $LOAD_BEFORE: something else is running; numbers will be skewed"
fi

# ---- bench root -------------------------------------------------------------------------------
mkdir -p "$WWW/f" "$RAW"
make_file() { # path bytes
  local path=$1 bytes=$2
  if [[ -f "$path" && $(stat -c %s "$path") -eq $bytes ]]; then return; fi
  log "creating $path ($bytes bytes)"
  head -c "$bytes" /dev/urandom > "$path.tmp"
  mv "$path.tmp" "$path"
}
if (( BIG_MB == 1024 )); then BIG_NAME=1g.bin; else BIG_NAME=${BIG_MB}m.bin; fi
make_file "$WWW/f/64k.bin" 65536
make_file "$WWW/f/1m.bin" 1048576
make_file "$WWW/f/$BIG_NAME" $((BIG_MB * 1048576))
BIG_BYTES=$((BIG_MB * 1048576))
# /hello is not a file: zh_static answers it from memory, nginx with `return 200`.
printf 'zerohttp bench root: /hello, /f/64k.bin, /f/1m.bin, /f/%s\n' "$BIG_NAME" > "$WWW/index.html"
cat "$WWW"/f/*.bin > /dev/null   # warm the page cache so both servers read from memory

# ---- nginx config -----------------------------------------------------------------------------
mkdir -p "$NGX_DIR/tmp"
ngx_user=""
if [[ $(id -u) -eq 0 ]]; then ngx_user="user root root;"; fi  # worker must read $WWW like zh does
cat > "$NGX_DIR/nginx.conf" <<EOF
# generated by bench/run.sh
$ngx_user
worker_processes 1;
daemon off;
master_process on;
error_log stderr;
pid $NGX_DIR/nginx.pid;
events { worker_connections 4096; }
http {
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 100000;
  keepalive_timeout 75s;
  client_body_temp_path $NGX_DIR/tmp/body;
  proxy_temp_path $NGX_DIR/tmp/proxy;
  fastcgi_temp_path $NGX_DIR/tmp/fastcgi;
  uwsgi_temp_path $NGX_DIR/tmp/uwsgi;
  scgi_temp_path $NGX_DIR/tmp/scgi;
  types { text/html html; application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WWW;
    location = /hello { default_type text/plain; return 200 "Hello, world!"; }
  }
}
EOF
"$NGINX" -t -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" -e stderr 2>"$RAW/nginx-t.log" \
  || { cat "$RAW/nginx-t.log" >&2; die "nginx config test failed"; }

cat > "$RAW/report.lua" <<'EOF'
-- prints one machine-readable line at the end of a wrk run
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ZHBENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF

# ---- server control ---------------------------------------------------------------------------
SERVER_PID=""
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() { # name
  local name=$1 port i
  if [[ $name == zh ]]; then port=$ZH_PORT; else port=$NGINX_PORT; fi
  if port_busy "$port"; then die "port $port is already in use"; fi
  if [[ $name == zh ]]; then
    ZH_EXAMPLE_STATS=1 "${SERVER_CPU[@]}" "$ZH_STATIC" --threads 1 --listen "127.0.0.1:$ZH_PORT" "$WWW" \
      >"$RAW/zh.out" 2>>"$RAW/zh.err" &
  else
    "${SERVER_CPU[@]}" "$NGINX" -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" -e stderr \
      >"$RAW/nginx.out" 2>>"$RAW/nginx.err" &
  fi
  SERVER_PID=$!
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then die "$name exited during startup (see $RAW/$name.err)"; fi
    if [[ $name == zh ]]; then
      grep -q '^listening on http://' "$RAW/zh.out" 2>/dev/null && return 0
    else
      curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/hello" && return 0
    fi
    sleep 0.1
  done
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  die "$name did not become ready within 10 s"
}

stop_server() { # name
  local name=$1 rc=0 i
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "WARNING: $name (pid $SERVER_PID) still running 10 s after SIGTERM; killing it"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" || rc=$?
  if (( rc != 0 )); then log "WARNING: $name exited with status $rc"; fi
  SERVER_PID=""
}
cleanup() { if [[ -n "$SERVER_PID" ]]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Server CPU used so far, as "TICKS NS":
#  TICKS = utime+stime (+cutime+cstime) from /proc/PID/stat of the server process (all its
#          threads) plus utime+stime of its live children (nginx: master + worker); 1/CLK_TCK s.
#  NS    = the same processes' sum_exec_runtime from /proc/PID/task/*/schedstat, in ns — the
#          scheduler's own count that utime+stime are scaled to, at full resolution (threads that
#          exited are not in it; neither server starts or ends threads while under load).
cpu_sample() {
  local pid=$1 ticks=0 ns=0 stat rest f p t first=1
  for p in "$pid" $(pgrep -P "$pid" || true); do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    ticks=$((ticks + f[11] + f[12]))
    if ((first)); then ticks=$((ticks + f[13] + f[14])); first=0; fi
    for t in /proc/"$p"/task/*/schedstat; do
      read -r f _ <"$t" 2>/dev/null && ns=$((ns + f))
    done
  done
  echo "$ticks $ns"
}
cpu_delta() { # "ticks ns" before, after -> "dticks dns"
  local b=($1) a=($2)
  echo "$((a[0] - b[0])) $((a[1] - b[1]))"
}

# ---- scenarios --------------------------------------------------------------------------------
: >"$RAW/zh.err"; : >"$RAW/nginx.err"
printf 'round\tscenario\tserver\trequests\tbytes\tduration_us\tcpu_ticks\tcpu_ns\terrors\tp50_us\tp99_us\n' >"$DATA"

run_wrk() { # round scenario server port path conns
  local round=$1 sc=$2 name=$3 port=$4 path=$5 conns=$6 before after out line
  before=$(cpu_sample "$SERVER_PID")
  out=$(timeout $((dur_s + 30)) "${LOAD_CPU[@]}" wrk -t2 -c"$conns" -d"$DURATION" --timeout 10s \
        -s "$RAW/report.lua" "http://127.0.0.1:$port$path" 2>&1) || { echo "$out" >&2; die "wrk failed on $name $path"; }
  after=$(cpu_sample "$SERVER_PID")
  echo "$out" >"$RAW/wrk-$sc-$name-r$round.txt"
  line=$(grep '^ZHBENCH ' <<<"$out") || die "no summary from wrk ($name $path)"
  python3 - "$round" "$sc" "$name" $(cpu_delta "$before" "$after") "$line" >>"$DATA" <<'EOF'
import sys
rnd, sc, name, ticks, ns, line = sys.argv[1:7]
kv = dict(p.split("=") for p in line.split()[1:])
errors = sum(int(kv[k]) for k in ("connect", "read", "write", "status", "timeout"))
print("\t".join([rnd, sc, name, kv["requests"], kv["bytes"], kv["duration_us"], ticks, ns, str(errors),
                 kv["p50_us"], kv["p99_us"]]))
EOF
}

run_curl_big() { # round scenario server port
  local round=$1 sc=$2 name=$3 port=$4 before after i out size t bytes=0 time=0 errors=0 dticks dns
  before=$(cpu_sample "$SERVER_PID")
  for ((i = 0; i < BIG_REPS; i++)); do
    out=$(timeout 600 "${LOAD_CPU[@]}" curl -s -o /dev/null --max-time 300 \
          -w '%{size_download} %{time_total}' "http://127.0.0.1:$port/f/$BIG_NAME") || errors=$((errors + 1))
    read -r size t <<<"$out"
    [[ "${size:-0}" -eq $BIG_BYTES ]] || { log "WARNING: $name sent ${size:-0} of $BIG_BYTES bytes"; errors=$((errors + 1)); }
    bytes=$((bytes + ${size:-0}))
    time=$(python3 -c "print(int($time + ${t:-0} * 1e6))")
  done
  after=$(cpu_sample "$SERVER_PID")
  read -r dticks dns <<<"$(cpu_delta "$before" "$after")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\n' "$round" "$sc" "$name" "$BIG_REPS" "$bytes" "$time" \
    "$dticks" "$dns" "$errors" >>"$DATA"
}

SCENARIOS=("hello|/hello|64" "64k|/f/64k.bin|64" "1m|/f/1m.bin|16" "big|/f/$BIG_NAME|curl")
for ((round = 1; round <= ROUNDS; round++)); do
  for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r sc path conns <<<"$entry"
    for name in $SERVERS; do
      if [[ $name == zh ]]; then port=$ZH_PORT; else port=$NGINX_PORT; fi
      log "round $round: $name $path ($([[ $conns == curl ]] && echo "curl x$BIG_REPS" || echo "wrk -t2 -c$conns -d$DURATION"))"
      start_server "$name"
      if [[ $conns == curl ]]; then
        run_curl_big "$round" "$sc" "$name" "$port"
      else
        run_wrk "$round" "$sc" "$name" "$port" "$path" "$conns"
      fi
      stop_server "$name"
      if [[ $name == zh ]]; then
        { grep '^zh stats:' "$RAW/zh.err" | tail -1 || true; } >"$RAW/zh-stats-$sc-r$round.txt"
      fi
    done
  done
done

# ---- report -----------------------------------------------------------------------------------
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
python3 "$ROOT/bench/report.py" "$DATA" "$CLK_TCK" "$BIG_NAME" "$DURATION" "$BIG_REPS" "$ROUNDS" "$SERVERS" "$PIN" \
  "$(nproc)" "$(uname -r)" "$cpu_model" "$nginx_version" "$commit" "zh_static ($LIB_ID)" "$LOAD_BEFORE" "$loadavg" "$RAW" >"$RESULTS/latest.md"
cat "$RESULTS/latest.md"
