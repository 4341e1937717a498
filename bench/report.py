#!/usr/bin/env python3
"""Turns bench/results/raw/data.tsv (written by bench/run.sh) into the markdown report.

Called by bench/run.sh with the run's parameters as arguments; the arguments are positional:
DATA CLK_TCK BIG_NAME DURATION BIG_REPS ROUNDS SERVERS PIN NCPU KERNEL CPU_MODEL NGINX_VERSION
COMMIT ZH_DESC LOAD_BEFORE LOAD_AFTER RAW_DIR
"""
import csv, datetime, os, statistics, sys
(data, clk, big, dur, reps, rounds, servers, pin, ncpu, kernel, cpu, ngv, commit, zhbin, load_before, load_after, raw) = sys.argv[1:18]
clk = int(clk)
rows = list(csv.DictReader(open(data), delimiter="\t"))
servers = servers.split()

def metrics(r):
    req, byt, us = int(r["requests"]), int(r["bytes"]), int(r["duration_us"])
    s = us / 1e6
    cpu = int(r["cpu_ns"]) / 1e9 if int(r["cpu_ns"]) > 0 else int(r["cpu_ticks"]) / clk
    m = {"req/s": req / s if s else 0.0, "MB/s": byt / s / 1e6 if s else 0.0,
         "CPU µs/req": cpu * 1e6 / req if req else float("nan"),
         "CPU s/GB": cpu / (byt / 1e9) if byt else float("nan"),
         "errors": int(r["errors"])}
    if r["p99_us"]:
        m["p99 ms"] = int(r["p99_us"]) / 1000
    return m

def tick_agreement():
    worst = 0.0
    for r in rows:
        t, ns = int(r["cpu_ticks"]) / clk, int(r["cpu_ns"]) / 1e9
        worst = max(worst, abs(t - ns) - 1 / clk)  # allow one tick of rounding
    return f"{max(worst, 0) * 1000:.0f} ms + 1 tick per run"

def median_metric(sc, server, key):
    vals = [metrics(r)[key] for r in rows if r["scenario"] == sc and r["server"] == server]
    return statistics.median(vals) if vals else None

# (scenario, label, metrics shown, better direction: +1 higher is better, -1 lower is better)
table = [
    ("hello", "/hello, wrk -t2 -c64", [("req/s", 1), ("CPU µs/req", -1), ("p99 ms", -1)]),
    ("64k", "/f/64k.bin, wrk -t2 -c64", [("req/s", 1), ("MB/s", 1), ("CPU µs/req", -1), ("CPU s/GB", -1)]),
    ("1m", "/f/1m.bin, wrk -t2 -c16", [("req/s", 1), ("MB/s", 1), ("CPU µs/req", -1), ("CPU s/GB", -1)]),
    ("big", f"/f/{big}, curl x{reps}", [("MB/s", 1), ("CPU s/GB", -1)]),
]

def fmt(v):
    if v is None: return "—"
    if v != v: return "n/a"
    if abs(v) >= 1000: return f"{v:,.0f}"
    if abs(v) >= 10: return f"{v:.1f}"
    return f"{v:.3f}"

out = []
out.append("# zerohttp benchmark results\n")
out.append(f"- date: {datetime.datetime.fromtimestamp(os.path.getmtime(data), datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit {commit}")
out.append(f"- machine: {ncpu} CPUs ({cpu}), kernel {kernel}; load average before the run {load_before}, after {load_after} "
           "(other work on the machine skews the numbers)")
out.append(f"- servers: zh = {zhbin} --threads 1; nginx = {ngv}, worker_processes 1, sendfile on")
out.append(f"- load: wrk duration {dur}, big file {reps} curl downloads; rounds {rounds} (median shown); pinning {'server CPU 0, load other CPUs' if pin == '1' else 'off'}")
out.append("- CPU = server CPU time during the load (nginx: master+worker), from /proc/PID/task/*/schedstat in ns; "
           "utime+stime from /proc/PID/stat (1/%d s ticks) agree within %s" % (clk, tick_agreement()))
out.append("- MB/s from wrk counts response headers+body; 1 MB = 10^6 bytes")
out.append("")
out.append("| scenario | metric | zh | nginx | zh/nginx | better |")
out.append("|---|---|---:|---:|---:|---|")
for sc, label, keys in table:
    for key, direction in keys:
        zh = median_metric(sc, "zh", key) if "zh" in servers else None
        ng = median_metric(sc, "nginx", key) if "nginx" in servers else None
        ratio = fmt(zh / ng) + "×" if zh is not None and ng not in (None, 0) and zh == zh and ng == ng else "—"
        out.append(f"| {label} | {key} | {fmt(zh)} | {fmt(ng)} | {ratio} | {'higher' if direction > 0 else 'lower'} |")
errs = [(r["scenario"], r["server"], r["round"], r["errors"]) for r in rows if int(r["errors"])]
out.append("")
if errs:
    out.append("**Errors during the run** (scenario, server, round, count — wrk counts non-2xx as errors): " +
               "; ".join(" ".join(e) for e in errs))
else:
    out.append("No request errors in any run.")
# Every round, to show the spread behind the medians.
if int(rounds) > 1:
    out.append("")
    out.append("Per round (zh / nginx): throughput (req/s for /hello, MB/s for files) and CPU (µs/req for /hello, s/GB for files)")
    out.append("")
    out.append("| scenario | " + " | ".join(f"round {i}" for i in range(1, int(rounds) + 1)) + " |")
    out.append("|---|" + "---:|" * int(rounds))
    for sc, label, _ in table:
        tkey, ckey = ("req/s", "CPU µs/req") if sc == "hello" else ("MB/s", "CPU s/GB")
        cells = []
        for i in range(1, int(rounds) + 1):
            got = {r["server"]: metrics(r) for r in rows if r["scenario"] == sc and r["round"] == str(i)}
            z, n = got.get("zh"), got.get("nginx")
            cells.append(f"{fmt(z[tkey]) if z else '—'} / {fmt(n[tkey]) if n else '—'}; "
                         f"{fmt(z[ckey]) if z else '—'} / {fmt(n[ckey]) if n else '—'}")
        out.append(f"| {label.split(',')[0]} | " + " | ".join(cells) + " |")

# Which kernel path carried zh's bytes (engine counters printed by zh_static on exit, round 1).
import os
stat_lines = []
for sc, label, _ in table:
    f = os.path.join(raw, f"zh-stats-{sc}-r1.txt")
    if "zh" in servers and os.path.exists(f) and open(f).read().strip():
        kv = dict(p.split("=") for p in open(f).read().split()[2:])
        tot = sum(int(kv[k]) for k in ("bytes_writev", "bytes_sendfile", "bytes_splice", "bytes_copy"))
        stat_lines.append(f"- {label.split(',')[0]}: {int(kv['responses']):,} responses; bytes by sendfile "
                          f"{100 * int(kv['bytes_sendfile']) / tot if tot else 0:.1f}%, writev "
                          f"{100 * int(kv['bytes_writev']) / tot if tot else 0:.1f}%, copy {int(kv['bytes_copy'])}; "
                          f"sendfile calls {int(kv['syscalls_sendfile']):,}, writev calls {int(kv['syscalls_writev']):,}; "
                          f"fallbacks {kv['fallbacks']}, I/O errors {kv['errors_io']}")
if stat_lines:
    out.append("")
    out.append("zh_static engine counters (zh_stats, round 1):")
    out.extend(stat_lines)
print("\n".join(out))
