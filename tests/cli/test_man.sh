#!/usr/bin/env bash
# The manual pages (#32): runbook(1), made by help2man from the built
# binary's --help and each command's help (scripts/man.sh), and the
# hand-written runbook-runbooks(7), render without a warning (groff -ww,
# and man -l as a user reads them) and the page holds what the help says.
# usage: test_man.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
page=$(dirname "$bin")/runbook.1
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

[ -s "$page" ] || { echo "FAIL no $page (the build makes it when help2man is installed: scripts/install-deps.sh)"; exit 1; }
for p in "$page" "$src/docs/man/runbook-runbooks.7"; do
  warn=$(groff -man -ww -z "$p" 2>&1)
  [ -z "$warn" ] && ok "groff -man -ww: $(basename "$p") renders without a warning" || fail "groff warns on $p: $warn"
  text=$(MANWIDTH=80 man --warnings -l "$p" 2>"$p.err" | col -b); err=$(cat "$p.err"); rm -f "$p.err"
  [ -n "$text" ] && [ -z "$err" ] && ok "man --warnings -l $(basename "$p"): no warning" || fail "man -l $p: $err"
done
text=$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -b)
grep -q "runbook - run operational runbooks" <<<"$text" && ok "NAME section" || fail "no NAME line"
grep -qF "$("$bin" version)" <<<"$(head -n 3 "$page")" && ok "the page carries runbook version's line" || fail "version not in the page's header"
# every command's help is in the page, as the help says it
for cmd in run plan check list test world version completion; do
  first=$("$bin" help "$cmd" | head -n 1)
  grep -qF -- "$first" <<<"$text" && ok "runbook help $cmd is in the page: $first" || fail "'$first' not in the page"
done
for flag in $("$bin" help run | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  grep -qF -- "$flag" <<<"$text" || fail "the page does not name $flag"
done
ok "the page names every flag of runbook help run"
grep -q "ENVIRONMENT" <<<"$text" && grep -q "RUNBOOK_PATH" <<<"$text" && ok "ENVIRONMENT section" || fail "no ENVIRONMENT"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
