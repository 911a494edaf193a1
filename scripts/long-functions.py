#!/usr/bin/env python3
"""Lists C functions longer than a limit and files longer than another
(make lint; CONTRIBUTING.md). A function may pass the limit when a comment
in its first lines says "long:" and why."""
import re, sys, pathlib

FN_LIMIT, FILE_LIMIT = 60, 600
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
bad = 0
for path in sorted(list(root.glob("engine/*.c")) + list(root.glob("bindings/*.c"))):
    lines = path.read_text().split("\n")
    if len(lines) > FILE_LIMIT and not any("long-file:" in l for l in lines[:30]):
        print(f"{path}: {len(lines)} lines (limit {FILE_LIMIT})")
        bad += 1
    start = None
    for i, line in enumerate(lines):
        if start is None and re.match(r"^[a-zA-Z].*\)\s*\{\s*$", line) and not line.startswith(("static const", "typedef")):
            start = i
        elif start is not None and line == "}":
            n = i - start + 1
            head = "\n".join(lines[max(0, start - 3):start + 4])
            if n > FN_LIMIT and "long:" not in head:
                print(f"{path}:{start + 1}: {lines[start].strip()} {n} lines (limit {FN_LIMIT})")
                bad += 1
            start = None
sys.exit(1 if bad else 0)
