#!/usr/bin/env python3
"""Asserts on a dry-run's JSON events and plan. usage:
check.py EVENTS PLAN EXIT SPEC-JSON   (SPEC keys: exit, failed, undone,
ok_gates, not_upgraded, upgraded, rolled_back, not_rolled_back, plan_has,
plan_lacks, logs_have)"""
import json, re, sys

def talosctl_call(argv):
    """(subcommand, -n value) of a talosctl argv, found by name, not position
    (--talosconfig, -e may come first)."""
    if not argv or argv[0].rsplit("/", 1)[-1] != "talosctl":
        return None, None
    node, sub, i = None, None, 1
    while i < len(argv):
        a = argv[i]
        if a in ("-n", "--nodes", "-e", "--endpoints", "--talosconfig", "--context"):
            if a in ("-n", "--nodes"): node = argv[i + 1] if i + 1 < len(argv) else None
            i += 2; continue
        if a.startswith("--nodes="): node = a.split("=", 1)[1]
        elif not a.startswith("-") and sub is None: sub = a
        i += 1
    return sub, node

events_path, plan_path, code, spec = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
evs = [json.loads(l) for l in open(events_path) if l.strip()]
plan = open(plan_path).read() if plan_path != "-" else ""
errs = []
def want(cond, msg):
    if not cond: errs.append(msg)

want(code == spec["exit"], f"exit {code}, want {spec['exit']}")
failed = [e for e in evs if e["type"] == "step_failed"]
if "failed" in spec:
    want(failed and re.search(spec["failed"], failed[0]["step"] + ": " + failed[0].get("error", "")),
         f"failure {failed[0]['step'] + ': ' + failed[0].get('error','') if failed else None!r} does not match {spec['failed']!r}")
else:
    want(not failed, f"unexpected failure: {failed[0] if failed else ''}")
undone = [e["step"] for e in evs if e["type"] == "undo"]
if "undone" in spec:
    want(undone == spec["undone"], f"undone {undone}, want {spec['undone']}")
execs = [" ".join(e["argv"]) for e in evs if e["type"] == "exec"]
def upgraded(node):
    for e in evs:
        if e["type"] == "exec":
            sub, n = talosctl_call(e["argv"])
            if sub == "upgrade" and n and node in n.split(","): return True
    return False
for node in spec.get("upgraded", []):
    want(upgraded(node), f"{node} was not upgraded")
for node in spec.get("not_upgraded", []):
    want(not upgraded(node), f"{node} was upgraded")
# never two nodes out of service: every upgrade is followed by that node's gates
# (talosctl's upgrade only: `talhelper gencommand upgrade` may run twice)
ups = [i for i, e in enumerate(e for e in evs if e["type"] == "exec") if talosctl_call(e["argv"])[0] == "upgrade"]
want(len(ups) == len(set(execs[i] for i in ups)), "a node was upgraded twice")
# never more than one node out of service: before the next node's upgrade,
# the previous node passed its last gate (online in the tailnet)
upgrade_seq = []
for e in evs:
    if e["type"] == "exec":
        sub, node = talosctl_call(e["argv"])
        if sub == "upgrade": upgrade_seq.append((e["seq"], node))
rollbacks = []
for e in evs:
    if e["type"] == "exec":
        sub, node = talosctl_call(e["argv"])
        if sub == "rollback": rollbacks.append(node)
for node in spec.get("rolled_back", []):
    want(node in rollbacks, f"{node} was not rolled back")
for node in spec.get("not_rolled_back", []):
    want(node not in rollbacks, f"{node} was rolled back (talosctl rollback would boot its other slot)")
for (s1, ip1), (s2, ip2) in zip(upgrade_seq, upgrade_seq[1:]):
    passed = [e for e in evs if e["type"] == "gate_done" and s1 < e["seq"] < s2 and "online in the tailnet" in e["gate"]]
    want(passed, f"{ip2} was upgraded before {ip1} passed its gates")
for g in spec.get("ok_gates", []):
    want(any(e["type"] == "gate_done" and re.search(g, e["gate"]) for e in evs), f"gate {g!r} never passed")
for p in spec.get("plan_has", []):
    want(re.search(p, plan, re.M), f"plan lacks {p!r}")
for p in spec.get("plan_lacks", []):
    want(not re.search(p, plan, re.M), f"plan has {p!r}")
for p in spec.get("logs_have", []):
    want(any(re.search(p, (e.get("msg") or e.get("text") or "")) for e in evs), f"no event matches {p!r}")
want(not any("tskey-auth-dryrun" in l for l in open(events_path)), "the auth key leaked into the events")
want("tskey-auth-dryrun" not in plan, "the auth key leaked into the plan")
if errs:
    print("\n".join(errs))
    sys.exit(1)
