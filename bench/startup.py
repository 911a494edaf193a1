#!/usr/bin/env python3
"""Median wall time and peak RSS of `runbook run empty.lua` against
`lua5.4 empty.lua`, measured in the same invocation, as a ratio."""
import os, resource, statistics, subprocess, sys, time

def measure(launcher, argv, runs):
    walls, peaks = [], []
    for _ in range(runs):
        out = subprocess.run([launcher] + argv, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{argv} failed: {out.stderr}")
        ns, kib = out.stdout.split()
        walls.append(int(ns) / 1e9)
        peaks.append(int(kib))
    return statistics.median(walls), statistics.median(peaks)

def main():
    launcher, runbook, script = sys.argv[1], sys.argv[2], sys.argv[3]
    runs = int(os.environ.get("RUNS", "50"))
    base_wall, base_rss = measure(launcher, ["lua5.4", script], runs)
    rb_wall, rb_rss = measure(launcher, [runbook, "run", script, "-q"], runs)
    print(f"startup: lua5.4 empty.lua   median {base_wall*1000:.2f} ms, median peak RSS {base_rss} KiB")
    print(f"startup: runbook run empty  median {rb_wall*1000:.2f} ms, median peak RSS {rb_rss} KiB")
    print(f"startup: ratio runbook/lua5.4  wall {rb_wall/base_wall:.2f}x, memory {rb_rss/base_rss:.2f}x ({runs} runs each)")

main()
