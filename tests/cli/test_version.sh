#!/usr/bin/env bash
# runbook version --output json (#32): one JSON object naming the version,
# the commit and every library, and the event schema the events carry.
# usage: test_version.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("null" if v is None else v)' "$1"; }

json=$("$bin" version --output json) || fail "version --output json exit $?"
echo "$json"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert isinstance(d, dict)' "$json" && ok "one JSON object" \
  || fail "not a JSON object: $json"
for k in version commit lua libuv libyaml jansson libcurl libcrypto event_schema journal_format; do
  python3 -c 'import json,sys; sys.exit(0 if sys.argv[2] in json.loads(sys.argv[1]) else 1)' "$json" "$k" \
    && ok "has $k" || fail "no $k in $json"
done
text=$("$bin" version)
v=$(field version <<<"$json"); lua=$(field lua <<<"$json"); uv=$(field libuv <<<"$json")
[ "$text" = "runbook $v ($lua, libuv $uv)" ] && ok "agrees with the text form: $text" || fail "text '$text' vs json $json"
grep -q "^libcurl/" <<<"$(field libcurl <<<"$json")" && ok "libcurl: the loadable one's curl_version()" \
  || fail "libcurl: $(field libcurl <<<"$json")"
grep -q "^OpenSSL 3" <<<"$(field libcrypto <<<"$json")" && ok "libcrypto: OpenSSL_version()" || fail "libcrypto"
# the libcurl that would be loaded: RUNBOOK_LIBCURL's, null when it cannot be
[ "$(RUNBOOK_LIBCURL=/nonexistent/libcurl.so "$bin" version --output json | field libcurl)" = null ] \
  && ok "libcurl is null when RUNBOOK_LIBCURL cannot be loaded" || fail "libcurl not null with a missing RUNBOOK_LIBCURL"
# the schema the events carry (engine/lua/events.lua SCHEMA)
cd "$tmp"
schema=$("$bin" run demo.lua --dry-run --output json 2>/dev/null | head -n 1 | field schema)
[ "$(field event_schema <<<"$json")" = "$schema" ] && ok "event_schema is the events' schema ($schema)" \
  || fail "event_schema $(field event_schema <<<"$json") but events carry $schema"
out=$("$bin" version --output yaml 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "expects text or json" <<<"$out" && ok "--output yaml: exit 2, one line" || fail "--output yaml: $rc $out"
out=$("$bin" version --dry-run 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "a flag version does not take: exit 2" || fail "version --dry-run: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
