#!/usr/bin/env python3
"""Turns a results.json written by bench/bench.py into the Markdown report (on stdout).

    bench/report.py bench/results/<timestamp>/results.json > results.md

bench/bench.py runs it at the end of every run; run it by hand to re-render a report (also of an
interrupted run: results.json is rewritten after every measurement).
"""
import json
import statistics
import sys

# scenario -> (title, [(metric key, label, +1 higher is better / -1 lower is better)])
SCENARIOS = {
    "small": ("small: `wrk -t2 -c64 -d{dur}` GET /hello (13-byte body)",
              [("req_s", "req/s", 1), ("p99_ms", "p99 ms", -1), ("cpu_us_per_req", "CPU µs/req", -1),
               ("user_us_per_req", "of it user µs/req", -1)]),
    "64k": ("64k: `wrk -t2 -c64 -d{dur}` GET /f/64k.bin",
            [("req_s", "req/s", 1), ("cpu_s_per_GB", "CPU s/GB", -1)]),
    "1m": ("1m: `wrk -t2 -c16 -d{dur}` GET /f/1m.bin",
           [("MB_s", "MB/s", 1), ("cpu_s_per_GB", "CPU s/GB", -1)]),
    "big": ("big: `curl -o /dev/null` of /f/{big} ({big_mb} MiB){reps}{big_rate}, one connection",
            [("GB_s", "GB/s", 1), ("cpu_s_per_GB", "CPU s/GB", -1), ("machine_cpu_s_per_GB", "machine CPU s/GB", -1)]),
    "limit": ("limit: the same curl against bench/peers/sendfile_limit (blocking sendfile loop) — the ceiling for big",
              [("GB_s", "GB/s", 1), ("cpu_s_per_GB", "CPU s/GB", -1), ("machine_cpu_s_per_GB", "machine CPU s/GB", -1)]),
    "idle": ("idle: {idle} keep-alive connections, each sent one GET /hello and got its answer, then left open",
             [("rss_per_conn", "RSS bytes/conn", -1)]),
    "upload": ("upload: `curl -T` PUT of {upload_mb} MiB to zh_upload, one connection",
               [("GB_s", "GB/s", 1), ("cpu_s_per_GB", "CPU s/GB", -1)]),
    "cold": ("cold: `wrk -t1 -c{cold_conns} -d{dur} --latency` GET /hello while a page-cache-cold {cold_mb} MiB "
             "file is downloaded over and over{cold_rate} (evicted before each download) from the same single worker",
             [("p99_ms", "/hello p99 ms", -1), ("max_ms", "/hello max ms", -1), ("req_s", "/hello req/s", 1)]),
    "syscalls": ("syscalls: `strace -c -f` on the server over {sysreqs} sequential GET /f/64k.bin on one keep-alive connection",
                 [("per_req", "syscalls/req", -1)]),
}
NOTES = {
    "small": "CPU µs/req = server CPU time / requests; \"of it user\" = the part spent in the server's own code "
             "(utime share of utime+stime, in clock ticks), the rest is the kernel's work for its syscalls.",
    "64k": "CPU s/GB = server CPU seconds per 10^9 bytes received by wrk (headers + bodies).",
    "1m": "MB/s = 10^6 bytes/s as counted by wrk (headers + bodies).",
    "big": "GB/s = 10^9 bytes/s of body, from curl's size_download/time_total; \"of limit\" = GB/s ÷ the limit "
           "scenario's GB/s in the same round. \"machine CPU\" = busy time of all CPUs (/proc/stat) per GB: "
           "server + curl + kernel threads. On loopback the receive side's TCP work runs in the server's or "
           "in curl's context depending on timing, so the server's own CPU per GB can drop by moving work to "
           "the client; the machine figure cannot.",
    "limit": "One-shot C server, no event loop: what a loopback socket + sendfile + this curl can do on this machine.",
    "idle": "(server RSS after − RSS before) ÷ connections; RSS = VmRSS summed over the server's processes, "
            "1 s after the last connection was answered. \"open\" = connections still open when measured.",
    "upload": "Ratio against the same program with ZH_FORCE_COPY=1 (recv + pwrite), not against nginx. "
              "Every upload is compared byte for byte with its source afterwards. Before each upload "
              "the harness writes and deletes BENCH_UPLOAD_PREFAULT_MB in the upload directory while "
              "this VM's free page reporting is held back (BENCH_UPLOAD_HOLD_REPORTING_MS), so the "
              "page cache the upload fills is backed by the host, not faulted in from it.",
    "cold": "Servers with one worker only. \"warm p99/max\" = the same /hello load just before, on the same "
            "server process, with no download (BENCH_COLD_BASELINE=1). \"cold MB/s\" = the cold downloads' own speed; \"resident\" = fraction "
            "of the file in the page cache right after the first eviction (fincore).",
    "syscalls": "Counted in the server (all processes and threads) from the first to the last of the requests; the "
                "connection was opened before strace attached. Breakdown below.",
}

# The targets of issue 8: (scenario, metric key, server, against, bound, label). `against` is the
# server whose figure in the same round divides ours (None: the figure itself is compared); a
# bound below 1 with a "↓" metric means "at most", above with "↑" "at least", as in SCENARIOS.
TARGETS = [
    ("small", "cpu_us_per_req", "zh1", "nginx1", 0.7, "small: CPU per request ≤ 0.7× nginx1"),
    ("small", "req_s", "zh1", "nginx1", 1.0, "small: req/s ≥ 1.0× nginx1"),
    ("64k", "cpu_s_per_GB", "zh1", "nginx1", 0.6, "64k: CPU per GB ≤ 0.6× nginx1"),
    ("64k", "req_s", "zh1", "nginx1", 1.1, "64k: req/s ≥ 1.1× nginx1"),
    ("1m", "cpu_s_per_GB", "zh1", "nginx1", 0.5, "1m: CPU per GB ≤ 0.5× nginx1"),
    ("1m", "MB_s", "zh1", "nginx1", 1.6, "1m: MB/s ≥ 1.6× nginx1"),
    ("big", "GB_s", "zh1", "nginx1", 1.25, "big: GB/s ≥ 1.25× nginx1"),
    ("big", "cpu_s_per_GB", "zh1", "nginx1", 0.8, "big: server CPU per GB ≤ 0.8× nginx1"),
    ("big", "machine_cpu_s_per_GB", "zh1", "nginx1", 0.8, "big: machine CPU per GB ≤ 0.8× nginx1 (the sum the pacing timer cannot move)"),
    ("idle", "rss_per_conn", "zh1", "nginx1", 0.5, "idle: bytes per connection ≤ 0.5× nginx1"),
    ("syscalls", "io_per_req", "zh1", None, 3, "syscalls per 64 KiB request ≤ 3 besides `epoll_wait`"),
    ("upload", "GB_s", "zh-upload", "zh-upload-copy", 1.5, "upload: splice GB/s ≥ 1.5× recv + pwrite"),
    ("upload", "cpu_s_per_GB", "zh-upload", "zh-upload-copy", 0.6, "upload: splice CPU per GB ≤ 0.6× recv + pwrite"),
    ("cold", "p99_ms", "zh1", None, 5.0, "cold: /hello p99 ≤ 5 ms"),
]


def target_rows(runs, rounds):
    """One row per target whose servers ran: the median and every round's figure, and in how
    many rounds the bound was met. Near its bound a target is met in some rounds and not in
    others; the count says so where a median alone would not."""
    def metric(sc, name, rnd, key):
        for r in runs:
            if r["scenario"] == sc and r["server"] == name and r["round"] == rnd and "metrics" in r:
                m = r["metrics"]
                if key == "io_per_req":  # the loop's epoll_wait is not one of the three I/O calls
                    calls = m.get("by_syscall") or {}
                    n = m.get("requests")
                    ep = sum(calls.get(c, [0])[0] for c in ("epoll_wait", "epoll_pwait", "epoll_pwait2"))
                    return (m["total_calls"] - ep) / n if n and "total_calls" in m else None
                return m.get(key)
        return None

    direction = {key: d for _, figs in SCENARIOS.values() for key, _, d in figs}
    direction["io_per_req"] = -1
    rows = []
    for sc, key, name, against, bound, label in TARGETS:
        per = []
        for rnd in range(1, rounds + 1):
            a = metric(sc, name, rnd, key)
            b = metric(sc, against, rnd, key) if against else 1.0
            per.append(a / b if a is not None and b else None)
        got = [x for x in per if x is not None]
        if not got:
            continue
        up = direction[key] > 0
        met = sum(1 for x in got if (x >= bound if up else x <= bound))
        med = statistics.median(got)
        unit = "×" if against else ""
        rows.append((label, f"{fmt(med, 2)}{unit}", ", ".join(fmt(x, 2) for x in got),
                     f"{met} of {len(got)}", "yes" if (med >= bound if up else med <= bound) else "**no**"))
    return rows


def fmt(v, digits=None):
    if v is None:
        return "—"
    if isinstance(v, float) and v != v:
        return "n/a"
    if digits is not None:
        return f"{v:.{digits}f}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """(max − min) / median, in percent."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m * 100 if m else None


def main():
    res = json.load(open(sys.argv[1]))
    meta, servers, runs = res["meta"], res["servers"], res["runs"]
    k = meta["knobs"]
    rounds = k["rounds"]
    ref = meta.get("reference", "nginx1")
    fill = {"dur": k["duration"], "big": "1g.bin" if k["big_mb"] == 1024 else f"{k['big_mb']}m.bin",
            "big_mb": k["big_mb"], "reps": f" ×{k['big_reps']}" if k["big_reps"] > 1 else "",
            "big_rate": f" at most {k['big_rate']}B/s (curl --limit-rate)" if k.get("big_rate") else "",
            "idle": f"{k['idle_conns']:,}", "upload_mb": k["upload_mb"], "cold_conns": k["cold_conns"],
            "cold_mb": k["cold_mb"], "cold_rate": f" at most {k['cold_rate']}B/s (curl --limit-rate)" if k.get("cold_rate") else "",
            "sysreqs": f"{k['syscall_reqs']:,}"}

    def get(sc, name, rnd):
        for r in runs:
            if r["scenario"] == sc and r["server"] == name and r["round"] == rnd:
                return r
        return None

    def value(sc, name, rnd, key):
        r = get(sc, name, rnd)
        return r["metrics"].get(key) if r and "metrics" in r else None

    out = []
    w = out.append
    m = meta["machine"]
    w("# zerohttp benchmark results\n")
    w(f"- command: `{meta['command']}` (repository at {meta['commit']}"
      f"{', with uncommitted changes in src/examples-c/bench' if meta.get('dirty') else ''})")
    w(f"- when: {meta['started']} → {meta.get('finished', '(interrupted)')}"
      f"{', ' + str(meta['elapsed_s']) + ' s' if 'elapsed_s' in meta else ''}")
    w(f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, {m['distro']}, kernel `{m['kernel']}`; "
      f"ulimit -n {m['ulimit_nofile']}; TCP congestion control {m.get('tcp_congestion', '?')}; "
      f"memory: {m.get('memory_return', '?')}")
    w(f"- load average (1/5/15 min) before: {meta['load_before']}, after: {meta.get('load_after', '?')} "
      "— anything above ~0.5 before means other work shared the CPUs")
    w(f"- tools: {meta['tools']['wrk']}, {meta['tools']['curl'].split(' (')[0]}, {meta['tools']['strace']}; "
      f"load generator on the same machine, pinning {'on (server CPU 0, load the others)' if k['pin'] else 'off'}")
    w(f"- rounds: {rounds}; each (round, scenario, server) starts the server fresh; servers alternate within a "
      "scenario and the order rotates each round; tables show the median of the rounds")
    w("- server CPU = utime+stime of all the server's processes and threads during the load "
      "(/proc/PID/stat; at ns resolution from /proc/PID/task/*/schedstat unless threads exited)")
    w(f"- ×{ref} = the server's figure ÷ {ref}'s in the same round, median over rounds "
      "(read it against the metric's direction: ↑ higher is better, ↓ lower is better)")
    w("")
    w("| server | what | version | status |")
    w("|---|---|---|---|")
    for name, s in servers.items():
        w(f"| {name} | {s['desc']} | {s['version'] or '—'} | {s['status']} |")

    rows = target_rows(runs, rounds)
    if rows:
        w("")
        w("## Targets of issue 8")
        w("")
        w("| target | median | per round | met in rounds | median meets it |")
        w("|---|---:|---|---:|---|")
        for row in rows:
            w("| " + " | ".join(row) + " |")
        w("")
        w("Ratios are taken per round (the two servers of a ratio ran one after the other in that round); "
          "the median is of those ratios. A target within the rounds' spread of its bound is met in "
          "some rounds and not in others: run more rounds (BENCH_ROUNDS=5) before reading it.")

    problems = []
    for sc, (title, figs) in SCENARIOS.items():
        sc_runs = [r for r in runs if r["scenario"] == sc]
        if not sc_runs:
            continue
        names = list(dict.fromkeys(r["server"] for r in sc_runs))
        sref = {"upload": "zh-upload-copy", "limit": None}.get(sc, ref)
        if sref not in names:
            sref = None
        w("")
        w(f"## {title.format(**fill)}")
        w("")
        hdr = ["server"]
        for key, label, d in figs:
            hdr.append(f"{label} {'↑' if d > 0 else '↓'}")
            if sref:
                hdr.append(f"×{sref}")
        if sc == "big":
            hdr.append("of limit")
        if sc == "idle":
            hdr += ["open", "RSS before"]
        if sc == "cold":
            hdr += ["warm p99 ms", "warm max ms", "cold MB/s", "cold downloads", "resident"]
        hdr += [f"spread of {figs[0][1]}", "errors"]
        w("| " + " | ".join(hdr) + " |")
        w("|---|" + "---:|" * (len(hdr) - 1))
        for name in names:
            st = servers.get(name, {}).get("status", "ok")
            if st != "ok":
                w(f"| {name} | {st} |" + " |" * (len(hdr) - 2))
                continue
            cells = [name]
            for key, label, d in figs:
                vals = [value(sc, name, i, key) for i in range(1, rounds + 1)]
                cells.append(fmt(median(vals)))
                if sref:
                    ratios = []
                    for i in range(1, rounds + 1):
                        a, b = value(sc, name, i, key), value(sc, sref, i, key)
                        if a is not None and b:
                            ratios.append(a / b)
                    cells.append(fmt(median(ratios), 2) + "×" if ratios else "—")
            if sc == "big":
                fr = []
                for i in range(1, rounds + 1):
                    a, b = value(sc, name, i, "GB_s"), value("limit", "limit", i, "GB_s")
                    if a is not None and b:
                        fr.append(a / b)
                cells.append(f"{median(fr) * 100:.0f}%" if fr else "—")
            if sc == "idle":
                op = [value(sc, name, i, "open_at_end") for i in range(1, rounds + 1)]
                rb = [value(sc, name, i, "rss_before") for i in range(1, rounds + 1)]
                cells.append(f"{min(x for x in op if x is not None):,}/{k['idle_conns']:,}" if any(x is not None for x in op) else "—")
                cells.append(f"{median(rb) / 1048576:.1f} MiB" if median(rb) is not None else "—")
            if sc == "cold":
                cm = [value(sc, name, i, "cold_MB_s") for i in range(1, rounds + 1)]
                cd = [value(sc, name, i, "cold_downloads") for i in range(1, rounds + 1)]
                rs = [value(sc, name, i, "resident_after_evict") for i in range(1, rounds + 1)]
                for key in ("warm_p99_ms", "warm_max_ms"):
                    cells.append(fmt(median([value(sc, name, i, key) for i in range(1, rounds + 1)])))
                cells.append(fmt(median(cm)))
                cells.append(fmt(median(cd), 0) if median(cd) is not None else "—")
                cells.append(f"{max(x for x in rs if x is not None) * 100:.0f}%" if any(x is not None for x in rs) else "—")
            sp = spread([value(sc, name, i, figs[0][0]) for i in range(1, rounds + 1)])
            cells.append(f"{sp:.0f}%" if sp is not None else "—")
            errs, failed = 0, 0
            for i in range(1, rounds + 1):
                r = get(sc, name, i)
                if r is None:
                    continue
                if "error" in r:
                    failed += 1
                    problems.append(f"{sc} / {name} / round {i}: {r['error']}")
                    continue
                mm = r["metrics"]
                errs += mm.get("errors_total", 0) or 0
                for d in mm.get("error_detail", []):
                    problems.append(f"{sc} / {name} / round {i}: {d}")
                for d in mm.get("warnings", []):
                    problems.append(f"{sc} / {name} / round {i}: warning: {d}")
                if mm.get("errors_total") and "errors" in mm:
                    problems.append(f"{sc} / {name} / round {i}: wrk errors " +
                                    ", ".join(f"{kk} {vv}" for kk, vv in mm["errors"].items() if vv))
            cells.append(str(errs) + (f", {failed} run(s) failed" if failed else ""))
            w("| " + " | ".join(cells) + " |")
        w("")
        w(NOTES[sc])
        if rounds > 1:
            w("")
            w("<details><summary>per round</summary>\n")
            w("| server | metric | " + " | ".join(f"round {i}" for i in range(1, rounds + 1)) + " | median | spread |")
            w("|---|---|" + "---:|" * (rounds + 2))
            for name in names:
                if servers.get(name, {}).get("status", "ok") != "ok":
                    continue
                for key, label, d in figs:
                    vals = [value(sc, name, i, key) for i in range(1, rounds + 1)]
                    sp = spread(vals)
                    w(f"| {name} | {label} | " + " | ".join(fmt(v) for v in vals) +
                      f" | {fmt(median(vals))} | {f'{sp:.0f}%' if sp is not None else '—'} |")
            w("\n</details>")
        if sc == "syscalls":
            table = {}
            for name in names:
                per = {}
                for i in range(1, rounds + 1):
                    r = get(sc, name, i)
                    if r and "metrics" in r:
                        n = r["metrics"]["requests"]
                        for call, (calls, errors) in r["metrics"]["by_syscall"].items():
                            per.setdefault(call, []).append((calls / n, errors / n))
                table[name] = {c: (median([a for a, _ in v]), median([b for _, b in v])) for c, v in per.items()}
            calls = sorted({c for t in table.values() for c in t},
                           key=lambda c: -max(t.get(c, (0, 0))[0] for t in table.values()))
            shown = [n for n in names if table.get(n)]
            if shown:
                w("")
                w("Per-syscall breakdown (calls per request, median of rounds; failed calls, e.g. EAGAIN, in parentheses):")
                w("")
                w("| syscall | " + " | ".join(shown) + " |")
                w("|---|" + "---:|" * len(shown))
                for c in calls:
                    row = []
                    for n in shown:
                        v = table[n].get(c)
                        if v is None or v[0] < 0.0005:
                            row.append("")
                        else:
                            row.append(f"{v[0]:.3f}" + (f" ({v[1]:.3f})" if v[1] >= 0.0005 else ""))
                    if any(row):
                        w(f"| {c} | " + " | ".join(row) + " |")

    # How zh_static's bytes moved (engine counters printed on exit), round 1
    lines = []
    for sc in ("small", "64k", "1m", "big", "cold"):  # (the counters do not cover request bodies)
        for r in runs:
            if r["scenario"] != sc or r["round"] != 1 or "metrics" not in r:
                continue
            st = r["metrics"].get("zh_stats")
            if not st:
                continue
            tot = sum(st.get(x, 0) for x in ("bytes_writev", "bytes_sendfile", "bytes_splice", "bytes_copy"))
            pct = lambda x: f"{100 * st.get(x, 0) / tot:.1f}%" if tot else "—"
            lines.append(f"- {sc} / {r['server']}: {st.get('responses', 0):,} responses; bytes by sendfile "
                         f"{pct('bytes_sendfile')}, splice {pct('bytes_splice')}, writev {pct('bytes_writev')}, "
                         f"copy {pct('bytes_copy')}; fallbacks {st.get('fallbacks', 0)}, I/O errors {st.get('errors_io', 0)}")
    if lines:
        w("")
        w("## zerohttp engine counters (zh_stats at exit, round 1)")
        w("")
        out.extend(lines)
        w("")
        w("(\"I/O errors\" are mostly connections that wrk resets when its time is up.)")

    ticks = [r for r in runs if "metrics" in r and r["metrics"].get("cpu_source") == "ticks"]
    w("")
    w("## Problems")
    w("")
    if ticks:
        w(f"- CPU from utime+stime (10 ms ticks) instead of schedstat in {len(ticks)} run(s), because threads "
          "exited during the load: " + ", ".join(f"{r['scenario']}/{r['server']}/r{r['round']}" for r in ticks))
    if problems:
        for p in problems:
            w(f"- {p}")
    elif not ticks:
        w("None: no request errors, failed runs or warnings.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
