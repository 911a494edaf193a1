#!/usr/bin/env bash
# scripts/build-deb.sh OUTDIR: builds the Debian package from this tree
# (debian/: dh with the cmake buildsystem) and leaves runbook_*.deb and its
# .changes/.buildinfo in OUTDIR. dpkg-buildpackage writes its results into
# the parent of the source directory, so the build happens in a copy of the
# tree (the files git knows, tracked or not ignored: what a commit would
# hold) inside a temporary directory; the source tree gets no debian/
# build droppings. `make deb` and tests/package/test_deb.sh call it.
set -eu
out=$(realpath -m "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/runbook-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/runbook" "$out"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$work/runbook" -xf -
  RUNBOOK_COMMIT=$(git -C "$src" rev-parse --short=12 HEAD)
  export RUNBOOK_COMMIT
else
  tar -C "$src" --exclude='./build*' -cf - . | tar -C "$work/runbook" -xf -
fi
cd "$work/runbook"
# -b: the binary package only (a native package's source is the tree);
# -us -uc: unsigned; parallel=2: the CI machine's cores
DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2}" dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (the last lines above)" >&2
  exit 1
}
cp "$work"/*.deb "$work"/runbook_*.changes "$work"/runbook_*.buildinfo "$out"/
ls "$out"/runbook_*.deb
