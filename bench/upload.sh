#!/usr/bin/env bash
# Upload benchmark: PUT a file to zh_upload, once with the body spliced socket -> pipe -> file
# (the default) and once with ZH_FORCE_COPY=1 (recv + pwrite: the read + write baseline), same
# run, alternating, fresh server each time. Loopback only; every upload is one bounded curl.
#
# Environment: BENCH_UPLOAD_MB=1024 (file size), BENCH_ROUNDS=3, ZH_UPLOAD=build/examples-c/zh_upload
# Prints a Markdown table (median of the rounds) with GB/s and server CPU s/GB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MB=${BENCH_UPLOAD_MB:-1024}
ROUNDS=${BENCH_ROUNDS:-3}
BIN=${ZH_UPLOAD:-$ROOT/build/examples-c/zh_upload}
WORK=$ROOT/build/bench-upload
mkdir -p "$WORK/in" "$WORK/out"
SRC=$WORK/in/upload-${MB}m.bin
[ -f "$SRC" ] || head -c $((MB << 20)) /dev/urandom >"$SRC"
cat "$SRC" >/dev/null # page cache: measure the server, not the client's disk

cpu_ns() { # sum of the process's threads' run time in ns
  local total=0 t
  for t in /proc/"$1"/task/*/schedstat; do total=$((total + $(cut -d' ' -f1 "$t"))); done
  echo "$total"
}

run_one() { # run_one MODE -> prints "seconds cpu_seconds"
  local mode=$1 log=$WORK/server.log pid port
  rm -f "$WORK/out/"*
  if [ "$mode" = copy ]; then ZH_FORCE_COPY=1 "$BIN" --listen 127.0.0.1:0 --threads 1 "$WORK/out" >"$log" 2>&1 &
  else "$BIN" --listen 127.0.0.1:0 --threads 1 "$WORK/out" >"$log" 2>&1 & fi
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
  local c0 t0 t1 c1
  c0=$(cpu_ns "$pid"); t0=$(date +%s%N)
  curl -s --max-time 300 -o /dev/null -T "$SRC" "http://127.0.0.1:$port/up.bin"
  t1=$(date +%s%N); c1=$(cpu_ns "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  cmp -s "$SRC" "$WORK/out/up.bin" || { echo "upload not byte-identical ($mode)" >&2; exit 1; }
  python3 -c "print(($t1-$t0)/1e9, ($c1-$c0)/1e9)"
}

declare -a splice_res copy_res
for r in $(seq "$ROUNDS"); do
  splice_res+=("$(run_one splice)")
  copy_res+=("$(run_one copy)")
done
python3 - "$MB" "${splice_res[@]}" -- "${copy_res[@]}" <<'PY'
import statistics, sys
mb = int(sys.argv[1]); rest = sys.argv[2:]; cut = rest.index("--")
def parse(xs): return [tuple(map(float, x.split())) for x in xs]
s, c = parse(rest[:cut]), parse(rest[cut + 1:])
gb = mb / 1024
def med(rows, i): return statistics.median(r[i] for r in rows)
sg, cg = gb / med(s, 0), gb / med(c, 0)
scpu, ccpu = med(s, 1) / gb, med(c, 1) / gb
print(f"| upload {mb} MiB, 1 connection | splice (zerohttp default) | recv + pwrite (baseline) | splice/baseline |")
print("|---|---:|---:|---:|")
print(f"| GB/s | {sg:.2f} | {cg:.2f} | {sg / cg:.2f}x |")
print(f"| server CPU s/GB | {scpu:.3f} | {ccpu:.3f} | {scpu / ccpu:.2f}x |")
print(f"rounds (seconds, cpu s): splice {s} copy {c}")
PY
