#!/usr/bin/env bash
# User-space cost per request of zh_static, counted (not timed): instructions with callgrind and
# heap allocations with DHAT. The machine is shared and has no hardware counters, so wall-clock
# figures say little; valgrind counts the same on every run.
#
#   bench/user_cost.sh                 # /hello and a 64 KiB file, both tools
#   USER_COST_TOOLS=callgrind bench/user_cost.sh
#   USER_COST_PATHS=/hello bench/user_cost.sh
#   USER_COST_KEEP=1 bench/user_cost.sh    # keep callgrind.out.* for callgrind_annotate
#
# Each (path, tool) runs `zh_static --threads 1` under valgrind twice, with N_LO and N_HI
# keep-alive requests spread round-robin over CONNS connections (a small Python client, loopback
# only, every socket with a timeout). Per request = (count(N_HI) - count(N_LO)) / (N_HI - N_LO):
# start-up, shutdown, the first open of the file and the connection set-up cancel out.
# Needs build/examples-c/zh_static (make examples) and valgrind.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${ZH_STATIC:-$ROOT/build/examples-c/zh_static}"
N_LO="${USER_COST_N_LO:-500}"
N_HI="${USER_COST_N_HI:-2500}"
CONNS="${USER_COST_CONNS:-4}"
TOOLS="${USER_COST_TOOLS:-callgrind dhat}"
PATHS="${USER_COST_PATHS:-/hello /64k.bin}"
KEEP="${USER_COST_KEEP:-0}"

[[ -x "$BIN" ]] || { echo "missing $BIN (run: make examples)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 2; }

WORK="$(mktemp -d /tmp/zh-user-cost.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  if [[ "$KEEP" == 1 ]]; then echo "outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/www"
head -c 65536 /dev/zero | tr '\0' 'x' > "$WORK/www/64k.bin"

# The client: N GET requests on CONNS keep-alive connections, round-robin; reads each response
# whole (Content-Length) and fails on anything but 200 with the expected length.
cat > "$WORK/client.py" <<'EOF'
import socket, sys
port, path, n, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(conns)]
bufs = [b""] * conns
req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: user_cost\r\nAccept: */*\r\n\r\n" % path).encode()
for i in range(n):
    k = i % conns
    s = socks[k]
    s.sendall(req)
    buf = bufs[k]
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: sys.exit("connection closed")
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200 "): sys.exit("bad status: %r" % lines[0])
    clen = next(int(l.split(b":", 1)[1]) for l in lines if l.lower().startswith(b"content-length:"))
    while len(buf) < clen:
        d = s.recv(262144)
        if not d: sys.exit("connection closed in body")
        buf += d
    bufs[k] = buf[clen:]
for s in socks: s.close()
EOF

# run TOOL PATH N -> prints the tool's count (callgrind: Ir; dhat: blocks allocated)
run() {
  local tool="$1" path="$2" n="$3" out="$WORK/$1.$(basename "$2").$3"
  local args=(--tool="$tool" --log-file="$out.log")
  if [[ "$tool" == callgrind ]]; then args+=(--callgrind-out-file="$out.out"); else args+=(--dhat-out-file="$out.json"); fi
  setsid valgrind "${args[@]}" "$BIN" --threads 1 --listen 127.0.0.1:0 "$WORK/www" > "$out.stdout" 2>&1 &
  SERVER_PID=$!
  local port="" i
  for i in $(seq 1 600); do
    port="$(sed -n 's#^listening on http://127.0.0.1:\([0-9]*\)$#\1#p' "$out.stdout")"
    [[ -n "$port" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$out.stdout" "$out.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "server did not start" >&2; exit 1; }
  timeout 300 python3 "$WORK/client.py" "$port" "$path" "$n" "$CONNS"
  kill -TERM "$SERVER_PID"
  timeout 60 tail --pid="$SERVER_PID" -f /dev/null || { echo "server did not stop" >&2; exit 1; }
  wait "$SERVER_PID" || true
  SERVER_PID=""
  if [[ "$tool" == callgrind ]]; then
    sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out.out"
  else
    # "==PID== Total:     123,456 bytes in 789 blocks"
    sed -n 's/.*Total: *[0-9,]* bytes in \([0-9,]*\) blocks.*/\1/p' "$out.log" | tr -d ,
  fi
}

printf '%-10s %-10s %14s %14s %14s\n' path tool "count@$N_LO" "count@$N_HI" per-request
for path in $PATHS; do
  for tool in $TOOLS; do
    lo="$(run "$tool" "$path" "$N_LO")"
    hi="$(run "$tool" "$path" "$N_HI")"
    per="$(python3 -c "print('%.2f' % (($hi - $lo) / ($N_HI - $N_LO)))")"
    unit=$([[ "$tool" == callgrind ]] && echo instr || echo allocs)
    printf '%-10s %-10s %14s %14s %14s %s\n' "$path" "$tool" "$lo" "$hi" "$per" "$unit"
  done
done
