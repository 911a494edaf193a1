#!/usr/bin/env bash
# The engine/bindings boundary (docs/architecture.md): a binding sees
# rb_api.h and nothing else of the engine, and the build itself refuses one
# that reaches for an engine internal.
# usage: test_boundary.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1 src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
build=$(dirname "$bin_real")
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

# 1. no binding names an engine internal header
internal=$(cd "$src/engine" && ls *.h | paste -sd'|')
hits=$(grep -nE "#include \"($internal)\"" "$src"/bindings/*.c "$src"/bindings/*.h)
if [ -z "$hits" ]; then ok "no binding includes an engine internal"; else fail "bindings include engine internals: $hits"; fi

# 2. the probe (a binding including scheduler.h) is refused by the build
out=$(cmake --build "$build" --target rb_boundary_probe 2>&1); code=$?
if [ "$code" -ne 0 ] && grep -q "scheduler.h" <<<"$out"; then
  ok "the build refuses a binding that includes scheduler.h"
else
  fail "the probe built (exit $code) or failed for another reason: $out"
fi

# 3. control: the same probe compiles once engine/ is on the include path,
# so what refused it in 2 is the include path and nothing else
flags=$(pkg-config --cflags lua5.4 libuv)
if gcc -std=c11 -D_GNU_SOURCE -fsyntax-only $flags -I"$src/engine/include" -I"$src/engine" -I"$src/bindings" \
     "$src/tests/boundary/probe.c" 2>/tmp/probe.$$; then
  ok "control: the probe compiles with the engine's internals on the path"
else
  fail "control: the probe does not compile even with engine/: $(cat /tmp/probe.$$)"
fi
rm -f /tmp/probe.$$

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
