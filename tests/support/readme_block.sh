#!/usr/bin/env bash
# readme_block.sh README NAME: the lines of the fenced block that follows
# "<!-- test: NAME -->" in README, so that a test runs the install
# commands the README gives, as written.
awk -v tag="<!-- test: $2 -->" '
  $0 == tag { want = 1; next }
  want && /^```/ { if (inside) exit; inside = 1; next }
  inside { print }
' "$1"
