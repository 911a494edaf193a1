#!/usr/bin/env python3
"""make mutate: applies each mutant of tests/mutants/mutants.txt to a scratch
copy of the tree, builds it (one build directory, reused, so each build is
incremental), runs only the tests the mutant names, and says whether they
caught it. Exits 1 when a mutant survives (unless it is listed as expected to
survive), when its text is no longer in its file (the code moved on: update
the mutant), or when it does not build.

usage: mutate.py [ID ...]      (default: every mutant)
environment: MUTATE_DIR (default /tmp/runbook-mutate-$USER), JOBS (2),
             MUTANT_TIMEOUT (seconds per test, default 300)
"""
import os, re, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIST = os.path.join(ROOT, "tests", "mutants", "mutants.txt")
SCRATCH = os.environ.get("MUTATE_DIR") or "/tmp/runbook-mutate-" + os.environ.get("USER", str(os.getuid()))
JOBS = os.environ.get("JOBS", "2")
TIMEOUT = os.environ.get("MUTANT_TIMEOUT", "300")
FIELDS = ("file", "find", "replace", "tests", "promise", "survives")


def parse(path):
    """Blocks '## id' followed by 'field: value' lines; 'find+:'/'replace+:'
    continue the previous value on a new line (for a pattern that needs
    its neighbour line to be unique)."""
    mutants, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or (line.startswith("#") and not line.startswith("## ")):
                continue
            if line.startswith("## "):
                cur = {"id": line[3:].strip(), "line": n}
                mutants.append(cur)
                continue
            m = re.match(r"^(\w+)(\+?): ?(.*)$", line)
            if not m or cur is None or m.group(1) not in FIELDS:
                sys.exit("%s:%d: expected '## id' or 'field: value' (fields: %s)" % (path, n, ", ".join(FIELDS)))
            key, more, val = m.groups()
            if more:
                if key not in cur:
                    sys.exit("%s:%d: '%s+' continues a '%s' that is not there" % (path, n, key, key))
                cur[key] += "\n" + val
            else:
                cur[key] = val
    seen = set()
    for m in mutants:
        for k in ("file", "find", "replace", "tests", "promise"):
            if k not in m:
                sys.exit("%s:%d: mutant %s has no '%s'" % (path, m["line"], m["id"], k))
        if m["id"] in seen:
            sys.exit("%s:%d: two mutants named %s" % (path, m["line"], m["id"]))
        seen.add(m["id"])
    return mutants


def sync_tree(src):
    """Copies the worktree's files (tracked and new) into src, touching only
    those that differ, so that the build stays incremental; removes from src
    the files the worktree no longer has."""
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    wanted = set(filter(None, out.decode().split("\0")))
    for dirpath, _, names in os.walk(src):   # a file gone from the tree goes from the copy
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            if rel not in wanted:
                os.remove(os.path.join(dirpath, name))
    for rel in sorted(wanted):
        a, b = os.path.join(ROOT, rel), os.path.join(src, rel)
        if not os.path.isfile(a) or os.path.islink(a):
            continue
        with open(a, "rb") as f:
            data = f.read()
        try:
            with open(b, "rb") as f:
                if f.read() == data:
                    continue
        except OSError:
            os.makedirs(os.path.dirname(b), exist_ok=True)
        with open(b, "wb") as f:
            f.write(data)
        shutil.copymode(a, b)


def build(bdir, log):
    with open(log, "ab") as f:
        return subprocess.run(["cmake", "--build", bdir, "-j" + JOBS], stdout=f, stderr=subprocess.STDOUT).returncode == 0


def run_tests(bdir, names, log):
    regex = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    with open(log, "ab") as f:
        r = subprocess.run(["ctest", "--test-dir", bdir, "-R", regex, "--timeout", TIMEOUT, "-j" + JOBS,
                            "--output-on-failure"], stdout=f, stderr=subprocess.STDOUT)
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    if "No tests were found" in text:
        return None
    return r.returncode == 0


def main():
    mutants = parse(LIST)
    want = sys.argv[1:]
    unknown = [w for w in want if w not in {m["id"] for m in mutants}]
    if unknown:
        sys.exit("no such mutant: " + ", ".join(unknown))
    if want:
        mutants = [m for m in mutants if m["id"] in want]
    src, bdir, logs = (os.path.join(SCRATCH, d) for d in ("src", "build", "logs"))
    os.makedirs(src, exist_ok=True)
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    sync_tree(src)
    if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", src, "-B", bdir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                       stdout=subprocess.DEVNULL)
    if not build(bdir, os.path.join(logs, "baseline.log")):
        sys.exit("the unmutated tree does not build: " + os.path.join(logs, "baseline.log"))
    names = sorted({t for m in mutants for t in m["tests"].split()})
    print("baseline: %d tests named by %d mutants, in %s" % (len(names), len(mutants), SCRATCH), flush=True)
    if run_tests(bdir, names, os.path.join(logs, "baseline.log")) is not True:
        sys.exit("the tests fail (or are missing) without any mutant: " + os.path.join(logs, "baseline.log"))
    rows, bad = [], 0
    for m in mutants:
        path = os.path.join(src, m["file"])
        log = os.path.join(logs, m["id"] + ".log")
        t0 = time.time()
        try:
            with open(path, encoding="utf-8") as f:
                orig = f.read()
        except OSError as e:
            orig, verdict = None, "STALE (%s)" % e.strerror
        if orig is not None:
            n = orig.count(m["find"])
            if n != 1:
                verdict = "STALE (its text is in %s %d times, not once)" % (m["file"], n)
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(orig.replace(m["find"], m["replace"]))
                try:
                    if not build(bdir, log):
                        verdict = "DOES NOT BUILD"
                    else:
                        caught = run_tests(bdir, m["tests"].split(), log)
                        verdict = "NO SUCH TEST" if caught is None else "survived" if caught else "killed"
                finally:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(orig)
        expected = "survives" in m
        if verdict == "survived" and expected:
            verdict = "survived (expected: %s)" % m["survives"]
        elif verdict == "killed" and expected:
            verdict = "killed (listed as surviving: %s; remove the note)" % m["survives"]
        elif verdict != "killed":
            bad += 1
        rows.append((m, verdict))
        print("%-34s %-9s %5.0fs  %s" % (m["id"], verdict.split(" ")[0], time.time() - t0, verdict if verdict != "killed" else ""),
              flush=True)
    build(bdir, os.path.join(logs, "restore.log"))   # leave the scratch build unmutated
    killed = sum(1 for _, v in rows if v.startswith("killed"))
    expected = sum(1 for m, _ in rows if "survives" in m)
    print("\n%d mutants: %d killed, %d expected to survive (a promise broken today), %d failing the check"
          % (len(rows), killed, expected, bad))
    print("score: %d of %d killed (%d of %d counted)" % (killed, len(rows), killed, len(rows) - expected))
    for m, v in rows:
        if v != "killed":
            print("  %s: %s  [%s; %s]" % (m["id"], v, m["file"], m["promise"]))
    print("logs: " + logs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
