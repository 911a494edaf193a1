#!/usr/bin/env python3
"""Decode throughput of runbook.yaml / runbook.json against, in the same
run: libyaml's bare event parse (the floor), python3's yaml CLoader and
python3's json. usage: decode.py RUNBOOK EVENTS_BIN YAML JSON"""
import json, os, subprocess, sys, time
import yaml

runbook, events_bin, ypath, jpath = sys.argv[1:5]
runs = int(os.environ.get("RUNS", "5"))
here = os.path.dirname(os.path.abspath(__file__))

def best(fn):
    b = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t0)
    return b

ytext = open(ypath).read(); jtext = open(jpath).read()
mb_y = len(ytext.encode()) / 1e6; mb_j = len(jtext.encode()) / 1e6
floor = float(subprocess.check_output([events_bin, ypath, str(runs)]))
py_y = best(lambda: yaml.load(ytext, Loader=yaml.CLoader))
py_j = best(lambda: json.loads(jtext))
env = dict(os.environ, BENCH_YAML=ypath, BENCH_JSON=jpath, RUNS=str(runs))
rb_y, rb_j = map(float, subprocess.check_output([runbook, "run", os.path.join(here, "scripts/decode.lua"), "-q"],
                                                env=env, stderr=subprocess.DEVNULL).split())
print(f"yaml ({mb_y:.1f} MB): libyaml events {floor:.3f}s  runbook.yaml {rb_y:.3f}s  python3 CLoader {py_y:.3f}s")
print(f"yaml: runbook/libyaml-events {rb_y/floor:.2f}x (target <= 2x), runbook/CLoader {rb_y/py_y:.2f}x (target < 1x)")
print(f"json ({mb_j:.1f} MB): runbook.json {rb_j:.3f}s  python3 json {py_j:.3f}s  ratio {rb_j/py_j:.2f}x")
