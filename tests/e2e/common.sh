# Sourced by the e2e tests that run real processes against the served
# world: the arguments, a private temporary directory removed at exit (kept
# with KEEP=1) together with the world's server, and the ok/bad counters.
# usage, first thing in a test: source "$(dirname "$0")/common.sh" "$@"
set -u
bin=$1; src=$2
source "$src/tests/support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); srv=
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT   # every job ended: the wait cannot hang
fails=0; passes=0
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
