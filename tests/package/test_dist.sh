#!/usr/bin/env bash
# The release tarball (#32): scripts/dist.sh builds it (Lua, libuv,
# libyaml and jansson static from Debian's .a files), SHA256SUMS verifies
# it, and unpacked in an empty directory its binary runs the demo and
# finds its runbooks, manual page and completions beside it; the build
# tree is gone by then.
# usage: test_dist.sh SOURCE_DIR
set -u
src=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-disttest.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

tarball=$(DIST_BUILD="$tmp/build" bash "$src/scripts/dist.sh" "$tmp/out" | tail -n 1)
[ -f "$tarball" ] && ok "make dist built $(basename "$tarball")" || { fail "dist.sh"; exit 1; }
rm -rf "$tmp/build"
case $(basename "$tarball") in
  runbook-[0-9]*.[0-9]*.[0-9]*-linux-*.tar.gz) ok "named runbook-VERSION-linux-ARCH.tar.gz" ;;
  *) fail "name $(basename "$tarball")" ;;
esac
(cd "$tmp/out" && sha256sum -c SHA256SUMS) && ok "sha256sum -c SHA256SUMS" || fail "SHA256SUMS"

# the README's commands, as written, in a home of their own with the two
# files in the current directory
home=$tmp/home; mkdir -p "$home/dl" "$tmp/empty"
cp "$tarball" "$tmp/out/SHA256SUMS" "$home/dl/"
block=$(bash "$src/tests/support/readme_block.sh" "$src/README.md" tarball)
[ -n "$block" ] || fail "no tarball block in README.md"
out=$(cd "$home/dl" && env -i HOME="$home" PATH="$home/.local/bin:/usr/bin:/bin" TERM=dumb timeout 120 bash -euc "$block" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "rehearsed rollout.lua" <<<"$out" && ok "the README's tarball commands run as written" \
  || { tail -n 20 <<<"$out"; fail "README tarball block exit $rc"; }
top=$(ls -d "$home/.local/opt"/runbook-*)
rb=$top/bin/runbook
libs=$(ldd "$rb")
if grep -qE "liblua|libuv|libyaml|libjansson|libcurl|libcrypto" <<<"$libs"; then fail "links dynamically: $libs"
else ok "Lua, libuv, libyaml, jansson static; libcurl, libcrypto not linked: $(awk '{print $1}' <<<"$libs" | tr '\n' ' ')"; fi
for f in LICENSE README.md share/man/man1/runbook.1.gz share/man/man7/runbook-runbooks.7.gz \
         share/bash-completion/completions/runbook share/zsh/vendor-completions/_runbook \
         share/fish/vendor_completions.d/runbook.fish share/runbook/types/runbook/init.lua share/runbook/runbooks/rollout.lua; do
  [ -s "$top/$f" ] || fail "no $f in the tarball"
done
ok "the tarball holds LICENSE, README.md, the man pages, the completions, the stubs and the runbooks"

cd "$tmp/empty"
run() { env -i HOME="$tmp/empty" PATH=/usr/bin:/bin TERM=dumb timeout 120 "$@"; }
out=$(run "$rb" version --output json) && grep -q '"libcurl": "libcurl/' <<<"$out" && ok "version --output json: $out" \
  || fail "version: $out"
out=$(run "$rb" list 2>&1)
grep -qF "shipped ($top/bin/../share/runbook/runbooks):" <<<"$out" && ok "runbook list finds the runbooks beside the binary" \
  || fail "list: $out"
out=$(run "$rb" run rollout.lua --dry-run --scenario sample 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "rehearsing against the built-in sample cluster" <<<"$out" \
  && ok "the demo rehearsal runs from the unpacked tarball" || { tail -n 20 <<<"$out"; fail "demo exit $rc"; }
warn=$(zcat "$top/share/man/man1/runbook.1.gz" | groff -man -ww -z 2>&1)
[ -z "$warn" ] && ok "its man page renders without a warning" || fail "groff: $warn"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
