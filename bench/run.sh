#!/usr/bin/env bash
# zerohttp benchmark suite: zh_static (1 and 2 threads) against nginx (1 and 2 workers),
# lighttpd, h2o and a libmicrohttpd server, on loopback, every load bounded in time.
#
# Run through `make bench` (builds the release library and build/examples-c/, installs the
# Debian peers with scripts/ensure-deps.sh --bench); this script builds only the two small C
# peers in bench/peers/ (with gcc), then runs bench/bench.py. bench/README.md has the details.
#
# Environment (all optional):
#   BENCH_SCENARIOS="small 64k 1m big limit idle upload cold syscalls"   which scenarios
#   BENCH_SERVERS="zh1 zh2 nginx1 nginx2 lighttpd h2o mhd"               which servers
#   BENCH_ROUNDS=3          rounds; tables show the median
#   BENCH_DURATION=10s      wrk duration (small, 64k, 1m, cold)
#   BENCH_BIG_MB=1024       big/limit file size (MiB); BENCH_BIG_REPS=1 downloads per run
#   BENCH_UPLOAD_MB=$BENCH_BIG_MB   upload size (MiB); BENCH_UPLOAD_DIR=DIR where bodies are stored
#   BENCH_BIG_RATE=700M     cap the big/limit downloads (curl --limit-rate): CPU per GB at one speed
#   BENCH_IDLE_CONNS=5000   idle keep-alive connections (at most 9000)
#   BENCH_COLD_MB=256       cold file size (MiB); BENCH_COLD_CONNS=8 wrk connections on /hello
#   BENCH_SYSCALL_REQS=1000 requests counted by strace
#   BENCH_PIN=0             1: server on CPU 0, wrk/curl on the other CPUs (taskset)
#   BENCH_OUT=DIR           results directory (default bench/results/<UTC timestamp>)
#   ZH_EXAMPLES_DIR (or ZH_STATIC, ZH_UPLOAD), ZEROHTTP_LIB_DIR, NGINX, LIGHTTPD, H2O, CC
# Output: DIR/results.json, DIR/results.md (also printed), DIR/raw/; bench/results/latest -> DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0;;
  *) echo "bench: no arguments are taken (got '$*'); configure with environment variables, see --help" >&2; exit 2;;
esac
command -v python3 >/dev/null || { echo "bench: python3 not found" >&2; exit 1; }
exec python3 "$ROOT/bench/bench.py"
