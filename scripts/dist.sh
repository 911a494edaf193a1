#!/usr/bin/env bash
# scripts/dist.sh OUTDIR: the release tarball runbook-VERSION-linux-ARCH.tar.gz
# and its SHA256SUMS in OUTDIR. The binary links Lua, libuv, libyaml and
# jansson statically from Debian's .a files (RUNBOOK_STATIC_DEPS), glibc
# dynamically, and loads libcurl and libcrypto when first used, as every
# build does. The tree is bin/runbook, share/runbook/{runbooks,types},
# share/man, the completions, LICENSE and README.md: unpacked anywhere, the
# binary finds its runbooks beside it (../share/runbook/runbooks). The
# archive is reproducible: sorted names, owner 0, the mtime of the last
# commit (SOURCE_DATE_EPOCH), gzip without a timestamp.
set -eu
out=$(realpath -m "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
build=${DIST_BUILD:-$src/build-dist}
version=$(sed -n 's/^project(runbook VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
name=runbook-$version-linux-$arch
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRUNBOOK_STATIC_DEPS=ON -DRUNBOOK_TESTS=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" >/dev/null
stage=$(mktemp -d "${TMPDIR:-/tmp}/runbook-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# the install layout's relative directories (bin, share, share/man) under the tarball's top
cmake --install "$build" --prefix "$stage/$name" --strip >/dev/null
cp "$src/LICENSE" "$src/README.md" "$stage/$name/"
gzip -9n "$stage/$name/share/man/man1/runbook.1" "$stage/$name/share/man/man7/runbook-runbooks.7"
mkdir -p "$out"
tar -C "$stage" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" >SHA256SUMS)
echo "$out/$name.tar.gz"
