#!/usr/bin/env python3
"""Print bench/run.sh results (results.jsonl, one JSON object per system and
case, written by measure.py) as one table per case plus ratio lines.

usage: report.py RESULTS.jsonl [BASELINE_SYSTEM]   (baseline default: postfix)
"""

import json
import sys


def size_str(n):
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)}M"
    if n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def human(n):
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def fmt(v, nd=1):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def median_row(rows):
    """Each figure's median over the runs that have it (runs with errors left out
    when any run is clean)."""
    ok = [r for r in rows if r.get("ok")] or rows
    out = {}
    for k in ("accepted_per_s", "delivered_per_s", "p50_ms", "p99_ms", "pss_peak_mib",
              "rss_peak_mib", "cpu_ms_per_msg", "extra_cpu_ms_per_msg", "count_per_msg"):
        vals = sorted(r[k] for r in ok if r.get(k) is not None)
        if vals:
            n = len(vals)
            out[k] = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return out


def ratio(a, b):
    if a is None or b is None or not b:
        return "-"
    return f"x{a / b:.2f}"


COLS = [("system", 18, "<"), ("sessions", 8, ">"), ("size", 5, ">"), ("rcpts", 5, ">"),
        ("messages", 8, ">"), ("accepted/s", 10, ">"), ("delivered/s", 11, ">"),
        ("p50 ms", 8, ">"), ("p99 ms", 8, ">"), ("RSS MiB", 8, ">"), ("PSS MiB", 8, ">"), ("CPU ms/msg", 10, ">")]


def row(values):
    return "  ".join(f"{str(v):{al}{w}}" for v, (_, w, al) in zip(values, COLS))


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    baseline = argv[1] if len(argv) > 1 else "postfix"
    results = []
    with open(argv[0]) as f:
        for line in f:
            line = line.strip()
            if line:
                results.append(json.loads(line))
    cases, order = {}, []
    for r in results:
        key = (r["sessions"], r["size"], r["rcpts"])
        if key not in cases:
            cases[key] = []
            order.append(key)
        cases[key].append(r)

    header = row([c[0] for c in COLS])
    summary = []
    failed = 0
    for key in order:
        n, size, rcpts = key
        rs = sorted(cases[key], key=lambda r: (r["system"] != baseline, r["system"]))
        print(f"== {n} session(s), {human(size)} messages, {rcpts} recipient(s)")
        print(header)
        for r in rs:
            print(row([r["system"], n, size_str(size), rcpts, r.get("messages", "-"),
                       fmt(r.get("accepted_per_s")), fmt(r.get("delivered_per_s")),
                       fmt(r.get("p50_ms"), 2), fmt(r.get("p99_ms"), 2),
                       fmt(r.get("rss_peak_mib")), fmt(r.get("pss_peak_mib")), fmt(r.get("cpu_ms_per_msg"), 3)]))
            for e in r.get("errors", []):
                print(f"    ! {r['system']}: {e}")
            if not r.get("ok", False):
                failed += 1
        # the ratio lines compare each system's median over the case's repeats
        systems = []
        for r in rs:
            if r["system"] not in systems:
                systems.append(r["system"])
        med = {sys_: median_row([r for r in rs if r["system"] == sys_]) for sys_ in systems}
        if len(rs) > len(systems):
            print(f"  (medians over {len(rs) // max(1, len(systems))} runs of each system)")
            for sys_ in systems:
                m = med[sys_]
                print(f"  {sys_} median: accepted {fmt(m.get('accepted_per_s'))}/s  delivered {fmt(m.get('delivered_per_s'))}/s"
                      f"  p99 {fmt(m.get('p99_ms'), 2)} ms  CPU {fmt(m.get('cpu_ms_per_msg'), 3)} ms/msg")
        for sys_ in systems:
            m = med[sys_]
            extras = []
            if m.get("extra_cpu_ms_per_msg") is not None:
                extras.append(f"of which database/milter {fmt(m['extra_cpu_ms_per_msg'], 3)} ms/msg")
            if m.get("count_per_msg") is not None:
                extras.append(f"database statements {fmt(m['count_per_msg'], 2)}/msg")
            if extras:
                print(f"  {sys_}: CPU {fmt(m.get('cpu_ms_per_msg'), 3)} ms/msg, " + ", ".join(extras))
        pairs = [(sys_, baseline) for sys_ in systems if sys_ != baseline and baseline in med]
        if "tollgate" in med:
            pairs += [(sys_, "tollgate") for sys_ in systems if sys_ not in ("tollgate", baseline)]
        for sys_, against in pairs:
            r, base = med[sys_], med[against]
            line = (f"  {sys_} / {against}: accepted {ratio(r.get('accepted_per_s'), base.get('accepted_per_s'))}"
                    f"  delivered {ratio(r.get('delivered_per_s'), base.get('delivered_per_s'))}"
                    f"  p50 {ratio(r.get('p50_ms'), base.get('p50_ms'))}"
                    f"  p99 {ratio(r.get('p99_ms'), base.get('p99_ms'))}"
                    f"  PSS {ratio(r.get('pss_peak_mib'), base.get('pss_peak_mib'))}"
                    f"  CPU/msg {ratio(r.get('cpu_ms_per_msg'), base.get('cpu_ms_per_msg'))}")
            print(line)
            summary.append((key, f"{sys_} / {against}",
                            ratio(r.get("accepted_per_s"), base.get("accepted_per_s")),
                            ratio(r.get("delivered_per_s"), base.get("delivered_per_s"))))
        print()
    if summary:
        print(f"== throughput ratios against {baseline} (higher is better)")
        print(f"{'sessions x size x rcpts':<24}  {'systems':<30}  {'accepted':>9}  {'delivered':>9}")
        for (n, size, rcpts), system, acc, dlv in summary:
            print(f"{f'{n} x {human(size)} x {rcpts}':<24}  {system:<30}  {acc:>9}  {dlv:>9}")
        print()
    print("accepted/s: smtp-source messages / its wall time (250 after the final dot, fsync'd by both).")
    print("delivered/s: the same messages / time from the first submission until smtp-sink received the last.")
    print("p50/p99: MAIL FROM .. reply to the final dot, from k=max(1,N/4) probe sessions replacing k of")
    print("  smtp-source's N sessions in a separate phase.  RSS: VmHWM for a single-process relay, else")
    print("  the peak of summed VmRSS over the process tree (shared pages counted once per process);")
    print("  PSS: peak of summed Pss (shared pages split), the fair memory comparison for Postfix.")
    print("CPU ms/msg: user+system CPU of the relay's process tree (reaped children included) from the start of")
    print("  the throughput run until the sink had every message, divided by the messages: receiving and delivering.")
    if failed:
        print(f"\n{failed} run(s) had errors (marked !).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
