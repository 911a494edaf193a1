#!/usr/bin/env bash
# Issue #28 through the served world (`runbook world serve`, real processes
# and sockets): check everything on a scratch copy before writing (.3); a
# rollout is the sum of its runs and rollback undoes them all (.1, .2), with
# git status after each (.6). test_staged_stops.sh has the stops.
# usage: test_staged_rollout.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/staged_lib.sh"

# {== 3. check everything on a scratch copy, then write: the real directories
# that stop only once talhelper or the editor meets them stop before any change
# (exit 2), the directory as git knows it, no node touched
for dir in Diaoul--home-ops LukeEvansTech--talos-cluster dbrennand--home-ops; do
  mkdir -p "$tmp/$dir"; cp -r "$corpus/$dir/." "$tmp/$dir/"
  vars=(); while read -r d kv; do [ "$d" = "$dir" ] && vars+=("$kv"); done < <(grep -v '^\s*#' "$corpus/fake-env.txt")
  [ ${#vars[@]} -gt 0 ] && export "${vars[@]}"
  serve "$tmp/$dir"
  TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/$dir.out" 2>&1; code=$?
  st=$(git status --porcelain)
  calls=$(grep -c '"apply-config"\|upgrade' "$tmp/$dir.serve.log" 2>/dev/null)
  if [ $code -eq 2 ] && grep -q "Nothing was changed" "$tmp/$dir.out" && [ -z "$st" ] && ! grep -q "confirm\|? Apply" "$tmp/$dir.out"; then
    ok "$dir: refused before any change (exit 2), git status clean: $(grep -m1 'stopped:' "$tmp/$dir.out" | cut -c1-140)"
  else
    bad "$dir: exit $code, git status: $st; $(grep -m1 'stopped:' "$tmp/$dir.out")"
  fi
  for v in "${vars[@]}"; do unset "${v%%=*}"; done
  cd "$tmp"
done

# a check that used to refuse only after talconfig.yaml, the pins and the
# generated configs were written: talhelper installs k8s-1's talosImageURL,
# not the schematic: block the rollout adds tailscale to
python3 - "$src/runbooks/scenarios/default.yaml" "$tmp/both.yaml" <<'PY'
import sys
s = open(sys.argv[1]).read().replace("bootSeconds: [90, 150]", "bootSeconds: [1, 2]")
url = "      talosImageURL: factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba\n"
s = s.replace(url + "    - hostname: k8s-2", url + "      schematic:\n        customization:\n          systemExtensions:\n"
              "            officialExtensions: []\n    - hostname: k8s-2", 1)
open(sys.argv[2], "w").write(s)
PY
serve "$tmp/both" "$tmp/both.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/both.out" 2>&1; code=$?
st=$(git status --porcelain --untracked-files=all); state=$(curl -s "$url/state")
if [ $code -eq 2 ] && grep -q "talhelper would install .* on k8s-1, this run .*Nothing was changed" "$tmp/both.out" && [ -z "$st" ] \
   && ! grep -q "update talconfig.yaml\|write the address pins" "$tmp/both.out" \
   && python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert all(n["upgrades"] == 0 and not n["configured"] for n in s["nodes"])' "$state"; then
  ok "talhelper disagreeing on an installer: refused on the scratch copy (exit 2), git status clean, no node touched"
else
  bad "installer disagreement: exit $code; git status: $st; $(grep -m1 stopped: "$tmp/both.out")"
fi
cd "$tmp"

# {== 1, 2. a rollout is the sum of its runs; rollback undoes every run
# staged N NAME LIMITS...: a served world, a rollout run per limit ("-" for
# none), then a rollback; checks each step
staged() {
  local name=$1; shift
  serve "$tmp/$name" "$tmp/fast.yaml"
  cp talconfig.yaml "$tmp/$name.orig"
  local i=0 l code
  for l in "$@"; do
    i=$((i+1))
    if [ "$l" = - ]; then TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/$name.r$i.out" 2>&1; code=$?
    else TS_AUTHKEY=$key "$bin" run rollout.lua --yes --limit "$l" "${common[@]}" >"$tmp/$name.r$i.out" 2>&1; code=$?; fi
    [ $code -eq 0 ] || { bad "$name: run $i (--limit $l) exit $code: $(grep -m1 stopped: "$tmp/$name.r$i.out")"; return; }
  done
  state=$(curl -s "$url/state")
  if python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert all(n["upgrades"] == 1 and n["tailscale"] == "Running" for n in s["nodes"]), s' "$state" \
     && grep -q "Earlier runs of this rollout" .runbook/rollout.report.md \
     && "$bin" run validate.lua --var "tailscale_api=$url/tailscale" --var "api_probe_url=$url/svc/version" >"$tmp/$name.v.out" 2>&1; then
    ok "$name: $# runs ($*) roll every node once; the last run's gates and validate pass on the whole cluster; its report names the earlier runs"
  else
    bad "$name: after $# runs: $state; $(grep -m1 'stopped\|✗' "$tmp/$name.r$i.out" "$tmp/$name.v.out")"
  fi
  "$bin" run rollback.lua --yes --var poll_interval=0.5 --var boot_timeout=60 --var "tailscale_api=$url/tailscale" >"$tmp/$name.rb.out" 2>&1; code=$?
  state=$(curl -s "$url/state")
  if [ $code -eq 0 ] && cmp -s talconfig.yaml "$tmp/$name.orig" && ! ls patches/tailscale-pins-* >/dev/null 2>&1 \
     && python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert all(n["upgrades"] == 2 and n["schematic"].startswith("376567988ad3") and not n["configured"] for n in s["nodes"]), s' "$state"; then
    ok "$name: rollback undoes all $# runs: every node on its previous schematic, talconfig.yaml byte-identical, no pin file"
  else
    bad "$name: rollback exit $code; $(grep -m1 stopped: "$tmp/$name.rb.out"); $(diff "$tmp/$name.orig" talconfig.yaml | head -3); $state"
  fi
  truthful "$name: after the rollback"
  st=$(git status --porcelain --untracked-files=all | grep -v ' clusterconfig/.gitignore$')
  [ -z "$st" ] && ok "$name: after the rollback git sees nothing changed (journals, backups and reports under the ignored .runbook/)" \
    || bad "$name: git status after the rollback: $st"
  "$bin" run rollback.lua --yes --var poll_interval=0.5 --var boot_timeout=60 --var "tailscale_api=$url/tailscale" >"$tmp/$name.rb2.out" 2>&1; code=$?
  state=$(curl -s "$url/state")
  [ $code -eq 2 ] && grep -q "rolled back already" "$tmp/$name.rb2.out" \
    && python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert all(n["upgrades"] == 2 for n in s["nodes"]), s' "$state" \
    && ok "$name: a second rollback says it is done already (exit 2) and reboots nothing" \
    || bad "$name: second rollback exit $code: $(grep -m1 stopped: "$tmp/$name.rb2.out")"
  cd "$tmp"
}
staged canary k8s-1 -
staged three k8s-1 k8s-2 -

# a journal gone: the canary's journal removed, the rollback undoes the run
# it knows and says which node it could not undo, leaving it as it runs (its
# entry stays in talconfig.yaml: TS_AUTHKEY for talhelper's genconfig)
serve "$tmp/gone" "$tmp/fast.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes --limit k8s-1 "${common[@]}" >"$tmp/gone.r1.out" 2>&1 \
  && TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/gone.r2.out" 2>&1 \
  && rm .runbook/rollout.journal.* \
  && TS_AUTHKEY=$key "$bin" run rollback.lua --yes --var poll_interval=0.5 --var boot_timeout=60 --var "tailscale_api=$url/tailscale" >"$tmp/gone.rb.out" 2>&1; code=$?
state=$(curl -s "$url/state")
if [ $code -eq 0 ] && grep -q "not undone: k8s-1 runs the tailscale extension, but no rollout journal" "$tmp/gone.rb.out" \
   && python3 -c 'import json,sys; s={n["name"]: n for n in json.loads(sys.argv[1])["nodes"]}; assert s["k8s-1"]["tailscale"] == "Running" and s["k8s-1"]["upgrades"] == 1 and s["k8s-2"]["upgrades"] == 2 and s["k8s-3"]["upgrades"] == 2, s' "$state" \
   && [ "$(entries)" = "k8s-1" ]; then
  ok "a journal gone: rollback undoes the runs it knows, names k8s-1 as not undone, and talconfig.yaml keeps k8s-1's entries"
else
  bad "journal gone: exit $code; $(grep -m1 'not undone\|stopped' "$tmp/gone.rb.out"); entries '$(entries)'; $state"
fi
truthful "a journal gone: after the rollback"
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
