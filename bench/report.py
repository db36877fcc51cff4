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
        base = next((r for r in rs if r["system"] == baseline), None)
        for r in rs:
            if base is None or r is base:
                continue
            line = (f"  {r['system']} / {baseline}: accepted {ratio(r.get('accepted_per_s'), base.get('accepted_per_s'))}"
                    f"  delivered {ratio(r.get('delivered_per_s'), base.get('delivered_per_s'))}"
                    f"  p50 {ratio(r.get('p50_ms'), base.get('p50_ms'))}"
                    f"  p99 {ratio(r.get('p99_ms'), base.get('p99_ms'))}"
                    f"  PSS {ratio(r.get('pss_peak_mib'), base.get('pss_peak_mib'))}"
                    f"  CPU/msg {ratio(r.get('cpu_ms_per_msg'), base.get('cpu_ms_per_msg'))}")
            print(line)
            summary.append((key, r["system"],
                            ratio(r.get("accepted_per_s"), base.get("accepted_per_s")),
                            ratio(r.get("delivered_per_s"), base.get("delivered_per_s"))))
        print()
    if summary:
        print(f"== throughput ratios against {baseline} (higher is better)")
        print(f"{'sessions x size x rcpts':<24}  {'system':<18}  {'accepted':>9}  {'delivered':>9}")
        for (n, size, rcpts), system, acc, dlv in summary:
            print(f"{f'{n} x {human(size)} x {rcpts}':<24}  {system:<18}  {acc:>9}  {dlv:>9}")
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
