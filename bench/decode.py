#!/usr/bin/env python3
"""Decode throughput of runbook.yaml / runbook.json against, in the same
run: libyaml's bare event parse (the floor), python3's yaml CLoader and
python3's json. usage: decode.py RUNBOOK EVENTS_BIN YAML JSON"""
import json, os, statistics, subprocess, sys, time
import yaml

runbook, events_bin, ypath, jpath = sys.argv[1:5]
runs = int(os.environ.get("RUNS", "5"))
here = os.path.dirname(os.path.abspath(__file__))

def timed(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0

ytext = open(ypath).read(); jtext = open(jpath).read()
mb_y = len(ytext.encode()) / 1e6; mb_j = len(jtext.encode()) / 1e6
env = dict(os.environ, BENCH_YAML=ypath, BENCH_JSON=jpath, RUNS="1")
floor, py_y, py_j, rb_y, rb_j = [], [], [], [], []
for _ in range(runs):            # one of each per round, interleaved
    floor.append(float(subprocess.check_output([events_bin, ypath, "1"])))
    a, b = map(float, subprocess.check_output([runbook, "run", os.path.join(here, "scripts/decode.lua"), "-q"],
                                              env=env, stderr=subprocess.DEVNULL).split())
    rb_y.append(a); rb_j.append(b)
    py_y.append(timed(lambda: yaml.load(ytext, Loader=yaml.CLoader)))
    py_j.append(timed(lambda: json.loads(jtext)))
floor, py_y, py_j, rb_y, rb_j = map(statistics.median, (floor, py_y, py_j, rb_y, rb_j))
print(f"yaml ({mb_y:.1f} MB): libyaml events {floor:.3f}s  runbook.yaml {rb_y:.3f}s  python3 CLoader {py_y:.3f}s (medians of {runs} interleaved rounds)")
print(f"yaml: runbook/libyaml-events {rb_y/floor:.2f}x (target <= 2x), runbook/CLoader {rb_y/py_y:.2f}x (target < 1x)")
print(f"json ({mb_j:.1f} MB): runbook.json {rb_j:.3f}s  python3 json {py_j:.3f}s  ratio {rb_j/py_j:.2f}x")
print(f"row|YAML decode, {mb_y:.1f} MB|{rb_y*1000:.0f} ms|libyaml bare event parse|{floor*1000:.0f} ms|{rb_y/floor:.2f}x")
print(f"row|YAML decode, {mb_y:.1f} MB|{rb_y*1000:.0f} ms|python3 yaml CLoader|{py_y*1000:.0f} ms|{rb_y/py_y:.2f}x")
print(f"row|JSON decode, {mb_j:.1f} MB|{rb_j*1000:.0f} ms|python3 json|{py_j*1000:.0f} ms|{rb_j/py_j:.2f}x")
