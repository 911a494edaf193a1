#!/usr/bin/env bash
# The Debian package, built, installed and removed on this machine (#32):
# scripts/build-deb.sh builds it from the tree, lintian must be clean at
# --fail-on error,warning, `dpkg -i` installs it, and the installed
# /usr/bin/runbook must work from the installed paths alone (the build
# tree it was made in is gone by then): version, list, the demo rehearsal,
# check on every shipped runbook, the manual pages, the completions. Then
# `dpkg -r` and `dpkg -P` must leave none of its files behind.
# Needs root (or sudo without a password) for dpkg; debhelper, dpkg-dev,
# lintian and help2man (scripts/install-deps.sh).
# usage: test_deb.sh SOURCE_DIR
set -u
src=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-pkgtest.XXXXXX")
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

if [ "$(id -u)" -eq 0 ]; then sudo=""
elif sudo -n true 2>/dev/null; then sudo="sudo -n"
else echo "FAIL the package test installs with dpkg: it needs root or sudo without a password"; exit 1; fi

if dpkg-query -W -f='${Status}' runbook 2>/dev/null | grep -q "installed"; then
  echo "FAIL a runbook package is installed on this machine already; the test installs and purges its own (dpkg -P runbook first)"
  exit 1
fi
installed=0
cleanup() {
  [ "$installed" -eq 1 ] && $sudo dpkg -P runbook >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# build (the output says where it failed)
if ! deb=$(bash "$src/scripts/build-deb.sh" "$tmp/out" | tail -n 1) || [ ! -f "$deb" ]; then
  echo "FAIL build-deb"; exit 1
fi
ok "dpkg-buildpackage built $(basename "$deb")"

# lintian, as a user would run it (its own warning about running as root
# is not a finding: filtered from what is shown)
lint=$(timeout 300 lintian --fail-on error,warning "$deb" 2>&1); rc=$?
lint=$(grep -v "running with root privileges" <<<"$lint")
echo "lintian: ${lint:-(no tags)}"
[ "$rc" -eq 0 ] && ok "lintian --fail-on error,warning is clean" || fail "lintian exit $rc"

# the dependencies dpkg-shlibdeps cannot see (dlopen'd) are named by hand
deps=$(dpkg-deb -f "$deb" Depends)
grep -q "libcurl4" <<<"$deps" && grep -q "libssl3" <<<"$deps" && ok "Depends names libcurl4 and libssl3: $deps" \
  || fail "Depends lacks libcurl4 or libssl3: $deps"

files=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
# installed by the README's commands, as written (make deb aside: built
# above), in a directory holding dist/ as make deb leaves it
mkdir -p "$tmp/readme/dist"; cp "$deb" "$tmp/readme/dist/"
block=$(bash "$src/tests/support/readme_block.sh" "$src/README.md" package | grep -v "^make deb")
grep -q "dpkg -i" <<<"$block" || fail "the README's package block has no dpkg -i"
if [ "$(id -u)" -eq 0 ]; then block="sudo() { \"\$@\"; }; $block"; fi   # as root, sudo is not needed (nor installed, in CI)
out=$(cd "$tmp/readme" && env -i HOME="$tmp/readme" PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb timeout 300 bash -euc "$block" 2>&1); rc=$?
dpkg-query -W -f='${Status}' runbook 2>/dev/null | grep -q "install ok installed" && installed=1
if [ "$rc" -eq 0 ] && [ "$installed" -eq 1 ] && grep -q "rehearsed rollout.lua" <<<"$out"; then
  ok "the README's package commands (dpkg -i, version, the demo, man -w) run as written"
else tail -n 20 <<<"$out"; fail "README package block exit $rc"; exit 1; fi

# an empty directory, a PATH with only the system's directories: nothing
# of the source or build tree can answer
mkdir -p "$tmp/empty"; cd "$tmp/empty"
run() { env -i HOME="$tmp/empty" PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb timeout 120 "$@"; }
[ "$(run sh -c 'command -v runbook')" = /usr/bin/runbook ] && ok "runbook is /usr/bin/runbook" || fail "runbook is not /usr/bin/runbook"
out=$(run runbook version 2>&1) && grep -qE "^runbook [0-9]+\.[0-9]+\.[0-9]+ " <<<"$out" && ok "runbook version: $out" \
  || fail "runbook version: $out"
out=$(run runbook version --output json 2>&1) && grep -q '"libcurl": "libcurl/' <<<"$out" \
  && ok "runbook version --output json loads the packaged libcurl" || fail "version --output json: $out"
out=$(run runbook list 2>&1)
grep -q "^shipped (/usr/bin/../share/runbook/runbooks):" <<<"$out" && grep -q "rollout.lua" <<<"$out" \
  && ok "runbook list shows the installed runbooks" || fail "runbook list: $out"
out=$(run runbook run rollout.lua --dry-run --scenario sample 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "rehearsing against the built-in sample cluster" <<<"$out" \
  && ok "the demo rehearsal (rollout.lua --dry-run --scenario sample) from the installed runbooks" \
  || { tail -n 20 <<<"$out"; fail "the demo rehearsal exit $rc"; }
[ ! -e "$tmp/empty/talconfig.yaml" ] || fail "the rehearsal wrote into the working directory"
n=0
for rbk in /usr/share/runbook/runbooks/*.lua; do
  out=$(run runbook check "$rbk" 2>&1) && grep -q "compiles$" <<<"$out" && n=$((n+1)) || fail "runbook check $rbk: $out"
done
[ "$n" -ge 5 ] && ok "runbook check on the $n shipped runbooks" || fail "only $n shipped runbooks checked"

# the manual pages render without a warning; man finds them by name
for page in /usr/share/man/man1/runbook.1.gz /usr/share/man/man7/runbook-runbooks.7.gz; do
  warn=$(zcat "$page" | groff -man -ww -z 2>&1)
  [ -z "$warn" ] && ok "groff -ww renders $page without a warning" || fail "groff warns on $page: $warn"
done
[ "$(man -w runbook 2>/dev/null)" = /usr/share/man/man1/runbook.1.gz ] && ok "man -w runbook" || fail "man -w runbook: $(man -w runbook 2>&1)"
for c in /usr/share/bash-completion/completions/runbook /usr/share/zsh/vendor-completions/_runbook \
         /usr/share/fish/vendor_completions.d/runbook.fish; do
  [ -s "$c" ] && ok "completion installed: $c" || fail "no completion at $c"
done
out=$(run bash -c 'source /usr/share/bash-completion/completions/runbook; COMP_WORDS=(runbook run roll); COMP_CWORD=2; _runbook; echo "${COMPREPLY[@]}"')
grep -qw "rollout.lua" <<<"$out" && ok "the installed bash completion completes 'runbook run roll' from the shipped runbooks" \
  || fail "bash completion of 'runbook run roll': $out"
[ -f /usr/share/runbook/types/runbook/init.lua ] && ok "the LuaLS stubs are installed" || fail "no LuaLS stubs"
cd "$tmp"

# remove, then purge: none of the package's files stays; a directory stays
# only when another package owns it (/usr/share/man/man1...)
$sudo dpkg -r runbook >/dev/null 2>&1 && ok "dpkg -r" || fail "dpkg -r"
[ ! -e /usr/bin/runbook ] && ok "dpkg -r removed /usr/bin/runbook" || fail "/usr/bin/runbook still there after dpkg -r"
$sudo dpkg -P runbook >/dev/null 2>&1 && installed=0 && ok "dpkg -P" || fail "dpkg -P"
dpkg-query -W -f='${Status}' runbook 2>/dev/null | grep -q "installed" && fail "dpkg still lists runbook"
left=""
while read -r f; do
  [ -z "$f" ] || [ "$f" = / ] && continue
  f=${f%/}
  [ -e "$f" ] || [ -L "$f" ] || continue
  if [ -d "$f" ] && dpkg -S "$f" >/dev/null 2>&1; then continue; fi
  left="$left $f"
done <<<"$files"
[ -z "$left" ] && ok "nothing of the package is left after dpkg -P" || fail "left behind after dpkg -P:$left"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
