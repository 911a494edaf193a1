#!/usr/bin/env bash
# The README's install sections (#32): the package and the tarball come
# first, from source second; their command blocks are run as written by
# tests/package/test_deb.sh and test_dist.sh (tests/support/readme_block.sh);
# here, the from-source commands name real make targets and the version
# the blocks name is the one being built.
# usage: test_readme.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
readme=$src/README.md

install=$(grep -n "^## Install" "$readme" | cut -d: -f1)
source_=$(grep -n "^## Two commands" "$readme" | cut -d: -f1)
[ -n "$install" ] && [ -n "$source_" ] && [ "$install" -lt "$source_" ] \
  && ok "## Install (package, tarball) comes before the from-source section" || fail "section order"
for name in package tarball; do
  block=$(bash "$src/tests/support/readme_block.sh" "$readme" "$name")
  [ -n "$block" ] && ok "a '$name' block the package tests run" || fail "no '$name' block"
done
version=$("$bin" version | awk '{print $2}')
arch=$(dpkg --print-architecture)
bash "$src/tests/support/readme_block.sh" "$readme" package | grep -q "dist/runbook_${version}_${arch}.deb" \
  && ok "the package block names runbook_${version}_${arch}.deb, what make deb builds" || fail "package block's file name"
bash "$src/tests/support/readme_block.sh" "$readme" tarball | grep -q "runbook-${version}-linux-${arch}.tar.gz" \
  && ok "the tarball block names runbook-${version}-linux-${arch}.tar.gz, what make dist builds" || fail "tarball block's file name"
# the from-source commands: make targets that exist (make -n runs nothing)
for target in $(sed -n '/^## Two commands/,/^## /p' "$readme" | grep -oE '^make [a-z-]+' | awk '{print $2}' | sort -u) deb dist; do
  make -n -C "$src" "$target" >/dev/null 2>&1 && ok "make $target exists" || fail "make $target: no such target"
done
grep -q "make deb" "$src/docs/cli.md" && grep -q "make dist" "$src/docs/cli.md" && ok "docs/cli.md says how to install each way" \
  || fail "docs/cli.md lacks the install ways"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
