#!/usr/bin/env bash
# The served world's directory (issue #29.6): made 0700 by the server; one
# that exists with group or other write bits, or whose bin/ or shims do,
# is refused (exit 2) and nothing is written there: the operator runs what
# its bin/ holds (as ssh refuses a key others may write).
# usage: test_served_dir.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"

# serve DIR: the exit code of a server that was refused, or 0 once it serves
serve() {
  "$bin_real" world serve --dir "$1" 2>"$1.log" & srv=$!
  for _ in $(seq 200); do
    [ -s "$1/world.url" ] && { kill $srv; wait $srv 2>/dev/null; srv=; return 0; }
    kill -0 $srv 2>/dev/null || { wait $srv; local c=$?; srv=; return $c; }
    sleep 0.05
  done
  kill $srv; srv=; return 99
}

serve "$tmp/fresh"; code=$?
[ $code -eq 0 ] && [ "$(stat -c %a "$tmp/fresh")" = 700 ] && ok "a new directory is made 0700" || bad "fresh dir: exit $code, mode $(stat -c %a "$tmp/fresh")"

mkdir "$tmp/open"; chmod 0777 "$tmp/open"
serve "$tmp/open"; code=$?
[ $code -eq 2 ] && grep -q "may be written by its group or others (mode 777)" "$tmp/open.log" && [ -z "$(ls -A "$tmp/open")" ] \
  && ok "a directory others may write (0777) is refused (exit 2), nothing written in it" || bad "0777 dir: exit $code; $(cat "$tmp/open.log"); $(ls -A "$tmp/open")"

mkdir "$tmp/group"; chmod 0770 "$tmp/group"
serve "$tmp/group"; code=$?
[ $code -eq 2 ] && grep -q "mode 770" "$tmp/group.log" && ok "a directory its group may write (0770) is refused" || bad "0770 dir: exit $code; $(cat "$tmp/group.log")"

mkdir -p "$tmp/shim/bin"; chmod 0700 "$tmp/shim"; printf '#!/bin/sh\necho planted\n' > "$tmp/shim/bin/talosctl"; chmod 0777 "$tmp/shim/bin/talosctl"
serve "$tmp/shim"; code=$?
[ $code -eq 2 ] && grep -q "bin/talosctl may be written by its group or others" "$tmp/shim.log" && grep -q planted "$tmp/shim/bin/talosctl" \
  && ok "a planted shim others may write is refused, left as it was" || bad "planted shim: exit $code; $(cat "$tmp/shim.log")"

mkdir "$tmp/mine"; chmod 0755 "$tmp/mine"
serve "$tmp/mine"; code=$?
[ $code -eq 0 ] && ok "a directory of one's own that only its owner writes (0755) is served" || bad "0755 dir: exit $code; $(cat "$tmp/mine.log")"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
