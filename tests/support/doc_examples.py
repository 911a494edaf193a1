#!/usr/bin/env python3
"""Runs the examples of docs/*.md and README.md as the docs show them.

Every ```lua and ```sh block must carry a marker on the line before its
fence, so that no example goes untested by accident:
  <!-- doc-test: file NAME -->   the block is written to NAME (in a private
                                 directory per document, shared by its blocks)
  <!-- doc-test: run [lines=1,3] [exit=0,1] -->
                                 each line of the block (or those listed,
                                 1-based) is run by sh in that directory with
                                 `runbook` the binary under test, bounded by
                                 a timeout; exit lists the expected exit code
                                 of each line run (one value: all; default 0)
  <!-- doc-test: skip REASON -->  not run, and why (a real cluster, a
                                 fragment, a long fuzz run)
  <!-- test: NAME -->            README's install blocks: run as written by
                                 the package tests (tests/support/readme_block.sh)
usage: doc_examples.py RUNBOOK_BIN SOURCE_DIR
"""
import glob, os, re, subprocess, sys, tempfile

MARK = re.compile(r"^<!-- doc-test: (file|run|skip)\b(.*?)-->\s*$")
PACKAGE_MARK = re.compile(r"^<!-- test: ([\w-]+) -->\s*$")
FENCE = re.compile(r"^```(\w+)\s*$")
TIMEOUT = int(os.environ.get("DOC_EXAMPLE_TIMEOUT", "120"))


def blocks(path):
    """(line of the fence, language, marker or None, body lines)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i, out = 0, []
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            start, lang = i + 1, m.group(1)
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            mark = MARK.match(lines[i - 1]) if i > 0 else None
            if mark is None and i > 0 and PACKAGE_MARK.match(lines[i - 1]):
                # run by the package tests as written: a skip here, saying so
                mark = MARK.match("<!-- doc-test: skip run by tests/package (readme_block.sh %s) -->"
                                  % PACKAGE_MARK.match(lines[i - 1]).group(1))
            out.append((start, lang, mark, lines[i + 1:j]))
            i = j + 1
        else:
            i += 1
    return out


def options(text):
    return dict(kv.split("=", 1) for kv in text.split() if "=" in kv)


def main():
    binary, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    fails = passes = 0
    docs = sorted(glob.glob(os.path.join(src, "docs", "*.md"))) + [os.path.join(src, "README.md")]
    bindir = tempfile.mkdtemp(prefix="doc-bin-")
    os.symlink(binary, os.path.join(bindir, "runbook"))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), NO_COLOR="1")
    env.pop("TS_AUTHKEY", None)
    for doc in docs:
        rel = os.path.relpath(doc, src)
        work = tempfile.mkdtemp(prefix="doc-example-")
        for line, lang, mark, body in blocks(doc):
            if lang not in ("lua", "sh"):
                continue
            where = "%s:%d" % (rel, line)
            if mark is None:
                print("FAIL %s: a %s example without a <!-- doc-test: file|run|skip --> marker" % (where, lang))
                fails += 1
                continue
            kind, rest = mark.group(1), mark.group(2).strip()
            if kind == "skip":
                if not rest:
                    print("FAIL %s: a skipped example must say why" % where)
                    fails += 1
                continue
            if kind == "file":
                with open(os.path.join(work, rest), "w", encoding="utf-8") as f:
                    f.write("\n".join(body) + "\n")
                continue
            opts = options(rest)
            chosen = [int(n) for n in opts["lines"].split(",")] if "lines" in opts else \
                [k + 1 for k, text in enumerate(body) if text.strip() and not text.lstrip().startswith("#")]
            want = [int(c) for c in opts.get("exit", "0").split(",")]
            if len(want) == 1:
                want = want * len(chosen)
            if len(want) != len(chosen):
                print("FAIL %s: exit= lists %d codes for %d lines" % (where, len(want), len(chosen)))
                fails += 1
                continue
            for k, code in zip(chosen, want):
                cmd = body[k - 1]
                try:
                    r = subprocess.run(["sh", "-c", cmd], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                       capture_output=True, timeout=TIMEOUT)
                    got, out = r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")
                except subprocess.TimeoutExpired:
                    got, out = "a hang (killed after %d s)" % TIMEOUT, ""
                if got == code:
                    print("ok   %s:%d %s (exit %d)" % (rel, line + k, cmd.split("#")[0].strip(), code))
                    passes += 1
                else:
                    tail = "\n".join(out.rstrip().split("\n")[-6:])
                    print("FAIL %s:%d %s: exit %s, the doc says %d\n%s" % (rel, line + k, cmd, got, code, tail))
                    fails += 1
        subprocess.run(["rm", "-rf", work])
    subprocess.run(["rm", "-rf", bindir])
    print("%d passed, %d failed" % (passes, fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
