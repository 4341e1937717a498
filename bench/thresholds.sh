#!/usr/bin/env bash
# Measures the small-response thresholds (Config::inline_body_max, Config::small_file_read_max)
# with examples/threshold_server.rs: A/B variants served by two servers started once, loaded
# in alternating order (A,B / B,A) round after round so load noise from the shared machine
# falls on both; medians over the rounds. Loopback only; every load is bounded in time.
#
#   memory  /m/N  N in BENCH_MEM_SIZES   inline_body_max   0 vs 16384 (small_file_read_max 0)
#   file    /f/N  N in BENCH_FILE_SIZES  small_file_read_max 0 vs $BENCH_FILE_B (inline_body_max 2048)
#
# Per (size, variant, round): `wrk -t1 -c32 -d$BENCH_DURATION`, req/s from wrk, server CPU
# µs/request from the summed on-CPU time of the server's threads (/proc/PID/task/*/schedstat,
# ns) before/after, divided by wrk's request count. Then one `strace -c -f` run per
# (size, variant) for syscalls per request (strace slows the server; only the counts matter).
#
# Environment (all optional):
#   BENCH_ROUNDS=5  BENCH_DURATION=5s  BENCH_STRACE_DURATION=2s  BENCH_CONNS=32
#   BENCH_MEM_SIZES="256 1024 2048 4096 8192 16384"  BENCH_FILE_SIZES="512 2048 8192 16384 65536"
#                   (an empty list skips that kind)
#   BENCH_FILE_B=65536  small_file_read_max of file variant B
#   BENCH_STRACE=1 (0: skip the strace runs)   BENCH_OUT=DIR (default bench/results/thresholds-<UTC>)
#   ZH_THRESHOLD_SERVER=PATH  a prebuilt examples/threshold_server (default: cargo build --release)
# Output: DIR/runs.csv, DIR/strace-*.txt, DIR/summary.md (also printed).
# `bench/thresholds.sh --summary DIR` prints the summary of an earlier run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-5}
DUR=${BENCH_DURATION:-5s}
SDUR=${BENCH_STRACE_DURATION:-2s}
CONNS=${BENCH_CONNS:-32}
MEM_SIZES=${BENCH_MEM_SIZES-"256 1024 2048 4096 8192 16384"}
FILE_SIZES=${BENCH_FILE_SIZES-"512 2048 8192 16384 65536"}
FILE_B=${BENCH_FILE_B:-65536}
OUT=${BENCH_OUT:-$ROOT/bench/results/thresholds-$(date -u +%Y%m%d-%H%M%S)}
summary() {
  python3 - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import csv, os, re, statistics, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
med = statistics.median
def strace_counts(kind, n, v):
    f = os.path.join(out, f"strace-{kind}-{n}-{v}.txt")
    if not os.path.exists(f):
        return None
    text = open(f).read()
    reqs = int(re.search(r"^requests (\d+)", text, re.M).group(1))
    calls = {}
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 5 and p[0][0].isdigit() and p[-1].isidentifier() and p[-1] != "total":
            calls[p[-1]] = int(p[3])
    top = sorted(((k, c / reqs) for k, c in calls.items() if c / reqs >= 0.05), key=lambda kv: -kv[1])
    return f"{sum(calls.values()) / reqs:.2f} ({', '.join(f'{k} {x:.2f}' for k, x in top)})"
meta = open(os.path.join(out, "meta.txt")).read().strip() if os.path.exists(os.path.join(out, "meta.txt")) else ""
loads = [float(r["load1"]) for r in rows]
rounds = len({r["round"] for r in rows})
print(f"{meta} {rounds} rounds, A/B order alternated each round; medians over rounds; spread = (max-min)/median; "
      f"paired = median (min..max) of the per-round B/A ratios (A and B run back to back); "
      f"load1 during the runs {min(loads):.2f}..{max(loads):.2f}\n")
file_b = re.search(r"file variant B = (\d+)", meta)
names = {"m": ("inline_body_max", "0", "16384"), "f": ("small_file_read_max", "0", file_b.group(1) if file_b else "65536")}
for kind in ("m", "f"):
    sizes = sorted({int(r["size"]) for r in rows if r["kind"] == kind})
    if not sizes:
        continue
    knob, a, b = names[kind]
    print(f"/{kind}/N: {knob} A={a} vs B={b}\n")
    print("| size | req/s A | req/s B | B/A paired | µs/req A | µs/req B | B/A paired | spread req/s A, B | spread µs A, B | syscalls/req A | syscalls/req B |")
    print("|---:|---:|---:|---|---:|---:|---|---|---|---|---|")
    for n in sizes:
        per = {}
        for v in "AB":
            for r in rows:
                if r["kind"] == kind and int(r["size"]) == n and r["variant"] == v:
                    per.setdefault(v, {})[r["round"]] = (float(r["rps"]), int(r["cpu_ns"]) / 1000 / int(r["requests"]))
        common = sorted(set(per["A"]) & set(per["B"]))
        col = lambda v, i: [per[v][k][i] for k in per[v]]
        spread = lambda xs: (max(xs) - min(xs)) / med(xs) * 100
        def paired(i):
            q = [per["B"][k][i] / per["A"][k][i] for k in common]
            return f"{med(q):.3f} ({min(q):.2f}..{max(q):.2f})"
        print(f"| {n} | {med(col('A', 0)):,.0f} | {med(col('B', 0)):,.0f} | {paired(0)} "
              f"| {med(col('A', 1)):.2f} | {med(col('B', 1)):.2f} | {paired(1)} "
              f"| {spread(col('A', 0)):.0f}%, {spread(col('B', 0)):.0f}% | {spread(col('A', 1)):.0f}%, {spread(col('B', 1)):.0f}% "
              f"| {strace_counts(kind, n, 'A') or ''} | {strace_counts(kind, n, 'B') or ''} |")
    print()
EOF
}
if [ "${1:-}" = --summary ]; then OUT=${2:?--summary DIR}; summary; exit 0; fi
mkdir -p "$OUT"
echo "wrk -t1 -c$CONNS -d$DUR; file variant B = $FILE_B;" >"$OUT/meta.txt"
for t in wrk python3; do command -v $t >/dev/null || { echo "thresholds: $t not found" >&2; exit 1; }; done
if [ "${BENCH_STRACE:-1}" = 1 ] && ! command -v strace >/dev/null; then
  echo "thresholds: strace not found (BENCH_STRACE=0 skips it)" >&2; exit 1
fi

if [ -n "${ZH_THRESHOLD_SERVER:-}" ]; then
  SERVER=$ZH_THRESHOLD_SERVER
else
  (cd "$ROOT" && cargo build --release --example threshold_server -q)
  SERVER=$ROOT/target/release/examples/threshold_server
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start NAME INLINE SMALLFILE -> sets PORT_NAME, PID_NAME
start() {
  local name=$1 log=$OUT/server-$1.log
  : >"$log"
  ZH_INLINE_BODY_MAX=$2 ZH_SMALL_FILE_READ_MAX=$3 ZH_FILE_SIZES=$(echo $FILE_SIZES | tr ' ' ,) \
    "$SERVER" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do grep -q '^port ' "$log" && break; sleep 0.05; done
  grep -q '^port ' "$log" || { echo "thresholds: server $name did not start" >&2; cat "$log" >&2; exit 1; }
  printf -v "PORT_$name" '%s' "$(awk '/^port /{print $2}' "$log")"
  printf -v "PID_$name" '%s' "$pid"
}

# Summed on-CPU ns of every thread of a process.
cpu_ns() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f", s}'; }

# load PID PORT PATH -> prints "reqs_per_s requests cpu_ns"
load() {
  local pid=$1 port=$2 path=$3 before after out
  before=$(cpu_ns "$pid")
  out=$(timeout 60 wrk -t1 -c"$CONNS" -d"$DUR" "http://127.0.0.1:$port$path")
  after=$(cpu_ns "$pid")
  local rps reqs errs
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  errs=$(grep -c -e 'Non-2xx' -e 'Socket errors' <<<"$out" || true)
  [ "$errs" = 0 ] || { echo "thresholds: wrk reported errors on $path:" >&2; echo "$out" >&2; exit 1; }
  echo "$rps $reqs $((after - before))"
}

# Variants: memory A = inline 0, B = inline 16384; file A = read 0, B = read 65536.
start mA 0 0
start mB 16384 0
start fA 2048 0
start fB 2048 "$FILE_B"

echo "kind,size,variant,round,order,rps,requests,cpu_ns,load1" >"$OUT/runs.csv"
echo "thresholds: $ROUNDS rounds x ($(wc -w <<<"$MEM_SIZES") memory + $(wc -w <<<"$FILE_SIZES") file sizes) x 2 variants x $DUR; results in $OUT" >&2

# Warm-up: one short load per server (page cache, allocator, connection setup paths).
for v in mA mB; do p=PORT_$v; timeout 10 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${!p}/m/1024" >/dev/null; done
for v in fA fB; do p=PORT_$v; timeout 10 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${!p}/f/2048" >/dev/null; done

for r in $(seq "$ROUNDS"); do
  for kind in m f; do
    if [ $kind = m ]; then sizes=$MEM_SIZES; else sizes=$FILE_SIZES; fi
    for n in $sizes; do
      if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
      i=0
      for v in $order; do
        i=$((i + 1))
        pid=PID_$kind$v port=PORT_$kind$v
        res=$(load "${!pid}" "${!port}" "/$kind/$n")
        load1=$(cut -d' ' -f1 /proc/loadavg)
        echo "$kind,$n,$v,$r,$i,${res// /,},$load1" >>"$OUT/runs.csv"
        echo "  round $r /$kind/$n $v: $res (load $load1)" >&2
      done
    done
  done
done

if [ "${BENCH_STRACE:-1}" = 1 ]; then
  for kind in m f; do
    if [ $kind = m ]; then sizes=$MEM_SIZES; else sizes=$FILE_SIZES; fi
    for n in $sizes; do
      for v in A B; do
        pid=PID_$kind$v port=PORT_$kind$v
        f=$OUT/strace-$kind-$n-$v.txt
        timeout 60 strace -c -f -q -p "${!pid}" -o "$f" &
        spid=$!
        sleep 0.5
        out=$(timeout 60 wrk -t1 -c"$CONNS" -d"$SDUR" "http://127.0.0.1:${!port}/$kind/$n")
        reqs=$(awk '/requests in/{print $1}' <<<"$out")
        sleep 0.2
        kill -INT "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        echo "requests $reqs" >>"$f"
      done
    done
  done
fi

summary
