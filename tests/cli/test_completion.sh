#!/usr/bin/env bash
# runbook completion bash|zsh|fish (#32). The bash script is sourced in a
# real bash and its function asked, as bash's completion does, for the
# words of a partial command line; the fish one is asked by a real fish
# (complete -C); the zsh one is only parsed (zsh -n: driving zsh's
# completion system needs a pseudo-terminal). zsh and fish come from
# scripts/install-deps.sh for this test.
# usage: test_completion.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

cd "$tmp"
mkdir -p bin mine
ln -s "$bin" bin/runbook
export PATH="$tmp/bin:$PATH"
printf -- '-- mine\nlocal rb = require "runbook"\nlocal v = rb.vars{\n  colour = {type = "string", desc = "a = b"},\n  size = {type = "integer", default = 3},\n}\nrb.step("x", function() return v end)\n' > mine/mine.lua
runbook completion bash > bash.sh && runbook completion zsh > zsh.sh && runbook completion fish > fish.fish \
  || fail "completion SHELL exit non-zero"

# complete WORDS...: what the bash completion offers for the last word
complete_bash() {
  bash -c 'source ./bash.sh; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _runbook; printf "%s\n" "${COMPREPLY[@]}"' _ "$@" | sort -u | tr '\n' ' '
}
expect_bash() {   # expect_bash NAME "WANT WORDS" WORDS...
  local name=$1 want=$2 got w; shift 2
  got=" $(complete_bash "$@")"
  for w in $want; do
    [[ $got == *" $w "* ]] || { fail "$name: '$*' offers [$got], not $w"; return; }
  done
  ok "$name: '$*' -> $want"
}

reg=$(bash -c 'source ./bash.sh; complete -p runbook')
[ "$reg" = "complete -F _runbook runbook" ] && ok "bash: complete -p runbook: $reg" || fail "bash registration: $reg"
expect_bash "commands" "run" runbook ru
expect_bash "commands" "completion check" runbook c
expect_bash "flags" "--dry-run" runbook run --dr
expect_bash "runbook names from the shipped directory" "rollout.lua rollback.lua" runbook run rol
export RUNBOOK_PATH="$tmp/mine"
expect_bash "runbook names from RUNBOOK_PATH" "mine.lua" runbook check mi
expect_bash "scenario names" "sample faults/authkey-expired" runbook run rollout.lua --dry-run --scenario ""
expect_bash "scenario names" "faults/authkey-expired faults/authkey-invalid" runbook run rollout.lua --scenario faults/authkey-
expect_bash "a runbook's variables" "talconfig= talosconfig=" runbook run rollout.lua --var tal
expect_bash "a secret's NAME_file" "authkey= authkey_file= api_key= api_key_file=" runbook run rollout.lua --var a
expect_bash "a runbook's variables (RUNBOOK_PATH)" "colour= size=" runbook run mine.lua --var ""
expect_bash "--output" "json text" runbook run x.lua --output ""
expect_bash "completion shells" "bash zsh fish" runbook completion ""
expect_bash "world actions" "serve capture call" runbook world ""
# every flag each command's help names is completed
for cmd in run test world version; do
  want=$(runbook help "$cmd" | grep -oE -- '--[a-z][a-z-]+' | sort -u | tr '\n' ' ')
  expect_bash "every flag 'runbook help $cmd' names" "$want" runbook "$cmd" --
done

zsh -n zsh.sh && ok "zsh -n parses the zsh script" || fail "zsh -n"
head -n 1 zsh.sh | grep -q "^#compdef runbook" && ok "zsh: #compdef runbook (autoloaded from \$fpath)" || fail "zsh: no #compdef"
fish -n fish.fish && ok "fish -n parses the fish script" || fail "fish -n"
# fish's own completion engine, asked for a partial command line
complete_fish() { timeout 30 fish --no-config -c "source $tmp/fish.fish; complete -C '$1'" | cut -f1 | tr '\n' ' '; }
got=" $(complete_fish 'runbook ru')"
[[ $got == *" run "* ]] && ok "fish: 'runbook ru' -> run" || fail "fish: 'runbook ru' offers [$got]"
got=" $(complete_fish 'runbook run --dr')"
[[ $got == *" --dry-run "* ]] && ok "fish: 'runbook run --dr' -> --dry-run" || fail "fish: 'runbook run --dr' offers [$got]"
got=" $(complete_fish 'runbook run rol')"
[[ $got == *" rollout.lua "* ]] && ok "fish: 'runbook run rol' -> rollout.lua" || fail "fish: 'runbook run rol' offers [$got]"
got=" $(complete_fish 'runbook run rollout.lua --var tal')"
[[ $got == *" talconfig= "* ]] && ok "fish: --var tal -> talconfig=" || fail "fish: --var offers [$got]"
got=" $(complete_fish 'runbook run rollout.lua --dry-run --scenario faults/authkey-e')"
[[ $got == *" faults/authkey-expired "* ]] && ok "fish: --scenario -> faults/authkey-expired" || fail "fish: --scenario offers [$got]"

out=$(runbook completion tcsh 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "expects bash, zsh or fish" <<<"$out" && ok "an unknown shell: exit 2" || fail "tcsh: $rc $out"
out=$(runbook completion 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "no shell: exit 2" || fail "no shell: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
