#!/usr/bin/env python3
"""Start-up and journaled steps against their peers, each pair measured in
the same invocation, interleaved (runbook, peer, runbook, peer, ...), the
median of each side reported with the ratio.

usage: peers.py MAXRSS RUNBOOK SCRIPTS_DIR WORK_DIR
Prints detail lines, then one `row|...` line per comparison for run.sh's
table. Exit 1 when a comparison could not run (ansible-playbook missing)."""
import os, shutil, statistics, subprocess, sys

launcher, runbook, scripts, work = sys.argv[1:5]
runs = int(os.environ.get("RUNS", "40"))
failed = False

def once(argv, cwd, env=None):
    out = subprocess.run([launcher] + argv, capture_output=True, text=True, cwd=cwd, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed (exit {out.returncode}) in {cwd}")
    ns, kib = out.stdout.split()
    return int(ns) / 1e9, int(kib)

def pair(name, a_argv, b_name, b_argv, n, a_cwd=work, b_cwd=work, a_reset=None, env=None):
    a_w, b_w, a_m, b_m = [], [], [], []
    for _ in range(n):
        if a_reset: a_reset()
        w, m = once(a_argv, a_cwd, env); a_w.append(w); a_m.append(m)
        w, m = once(b_argv, b_cwd, env); b_w.append(w); b_m.append(m)
    a, b = statistics.median(a_w), statistics.median(b_w)
    print(f"{name}: runbook median {a*1000:.2f} ms ({statistics.median(a_m)} KiB), "
          f"{b_name} median {b*1000:.2f} ms ({statistics.median(b_m)} KiB), {n} interleaved pairs")
    print(f"row|{name}|{a*1000:.2f} ms|{b_name}|{b*1000:.2f} ms|{a/b:.3g}x" + (f" ({b/a:.0f}x faster)" if b > 2 * a else ""))

def fresh_state():
    shutil.rmtree(os.path.join(work, ".runbook"), ignore_errors=True)

empty = os.path.join(scripts, "empty.lua")
pair("start-up, empty runbook", [runbook, "run", empty, "-q"], "lua5.4 empty.lua", ["lua5.4", empty], runs)

ansible = shutil.which("ansible-playbook")
if not ansible:
    print("ansible: ansible-playbook not found (bench/run.sh installs ansible-core as root): the Ansible rows could not run")
    print("row|start-up, one task|-|ansible-playbook|not run|-")
    print("row|1,000 journaled steps|-|ansible-playbook, 1,000 debug tasks|not run|-")
    sys.exit(1)

def playbook(path, tasks):
    with open(path, "w") as f:
        f.write("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n")
        for i in range(1, tasks + 1):
            f.write(f"    - name: step {i}\n      ansible.builtin.debug:\n        msg: \"{i}\"\n")

env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
           ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_HOME=os.path.join(work, "ansible-home"))
one, many = os.path.join(work, "one.yml"), os.path.join(work, "many.yml")
playbook(one, 1)
playbook(many, 1000)
inv = ["-i", "localhost,"]
n = int(os.environ.get("ANSIBLE_RUNS", "5"))
pair("start-up, one task", [runbook, "run", os.path.join(scripts, "one_step.lua"), "-q"],
     "ansible-playbook, one debug task", [ansible] + inv + [one], n, a_reset=fresh_state, env=env)
pair("1,000 journaled steps", [runbook, "run", os.path.join(scripts, "steps_1000.lua"), "-q"],
     "ansible-playbook, 1,000 debug tasks", [ansible] + inv + [many], max(3, n // 2), a_reset=fresh_state, env=env)
