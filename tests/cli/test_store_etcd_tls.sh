#!/usr/bin/env bash
# The etcd store's TLS and auth options against real etcd: etcds:// with a
# CA and a client certificate (etcd started with --client-cert-auth), and
# ?user=NAME with the password from RUNBOOK_ETCD_PASSWORD (etcd with auth
# enabled). Certificates made here with openssl; every wait bounded.
# usage: test_store_etcd_tls.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
tmp=$(mktemp -d); epid=
trap '[ -n "$epid" ] && kill -9 $epid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp"
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
for p in etcd etcdctl openssl python3; do command -v $p >/dev/null || { echo "FAIL $p is not installed"; exit 1; }; done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# a CA, a server certificate for 127.0.0.1, a client certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=etcd -keyout server-key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=runbook -keyout client-key.pem -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -out client.pem 2>/dev/null

cat > quick.lua <<'LUA'
local rb = require "runbook"
rb.cluster("c1")
rb.step("one", function() return 1 end)
LUA

start_etcd() {   # start_etcd SCHEME EXTRA...
  local scheme=$1; shift
  cp=$(free_port); pp=$(free_port)
  rm -rf data
  etcd --name m --data-dir data --listen-client-urls "$scheme://127.0.0.1:$cp" --advertise-client-urls "$scheme://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "m=http://127.0.0.1:$pp" "$@" >etcd.log 2>&1 &
  epid=$!
}
stop_etcd() { kill -9 $epid 2>/dev/null; wait $epid 2>/dev/null; epid=; }

# --- mutual TLS
start_etcd https --cert-file server.pem --key-file server-key.pem --client-cert-auth --trusted-ca-file ca.pem
timeout 20 bash -c "until curl -sf --cacert ca.pem --cert client.pem --key client-key.pem https://127.0.0.1:$cp/health | grep -q true; do sleep 0.1; done" || { echo "FAIL etcd with TLS did not start: $(tail -3 etcd.log)"; exit 1; }
S="etcds://127.0.0.1:$cp/rb?ttl=5&cacert=$tmp/ca.pem&cert=$tmp/client.pem&key=$tmp/client-key.pem"
out=$(timeout 30 "$bin" run quick.lua --store "$S" 2>&1 </dev/null); code=$?
[ $code = 0 ] && ok "etcds:// with a CA and a client certificate: the run takes the lock, journals and releases" || fail "mTLS run: $code $out"
out=$(timeout 30 "$bin" status --store "$S" 2>&1); 
grep -q "journal quick .*finished.* 1 step(s): one" <<<"$out" && ok "status over TLS" || fail "status: $out"
out=$(timeout 30 "$bin" run quick.lua --store "etcds://127.0.0.1:$cp/rb?ttl=5&cacert=$tmp/ca.pem" 2>&1 </dev/null); code=$?
[ $code = 1 ] && grep -q "no etcd endpoint of .* answers" <<<"$out" && ok "without the client certificate the server refuses, said in one line (exit 1)" || fail "no cert: $code $out"
out=$(timeout 30 "$bin" run quick.lua --store "etcds://127.0.0.1:$cp/rb?ttl=5" 2>&1 </dev/null); code=$?
[ $code = 1 ] && grep -qi "certificate" <<<"$out" && ok "a server the system CAs do not know is refused (TLS verified by default)" || fail "default CA: $code $out"
stop_etcd

cat > slow.lua <<'LUA'
local rb = require "runbook"
rb.cluster("c2")
rb.step("outlive the token", function() require("runbook.time").sleep(4) end)
rb.step("after", function() return 2 end)
LUA

# --- auth: a user and a password from the environment; tokens that live 1 s
start_etcd http --auth-token-ttl 1
timeout 20 bash -c "until curl -sf http://127.0.0.1:$cp/health | grep -q true; do sleep 0.1; done" || { echo "FAIL etcd did not start"; exit 1; }
ctl() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints=127.0.0.1:$cp "$@"; }
pw="pw-CANARY-$RANDOM$RANDOM"
ctl user add root --new-user-password="$pw" >/dev/null && ctl user grant-role root root >/dev/null && ctl user add ops --new-user-password="$pw" >/dev/null \
  && ctl role add rb >/dev/null && ctl role grant-permission rb --prefix=true readwrite rb/ >/dev/null \
  && ctl user grant-role ops rb >/dev/null && ctl auth enable >/dev/null || fail "etcd auth setup"
S="etcd://127.0.0.1:$cp/rb?ttl=5&user=ops"
out=$(RUNBOOK_ETCD_PASSWORD=$pw timeout 30 "$bin" run quick.lua --store "$S" -v 2>&1 </dev/null); code=$?
[ $code = 0 ] && ok "user=ops with RUNBOOK_ETCD_PASSWORD: a role with readwrite on the prefix is enough" || fail "auth run: $code $out"
! grep -qF -- "$pw" <<<"$out" && ! grep -rqF -- "$pw" .runbook && ok "the password is in no output or file" || fail "the password leaked"
out=$(RUNBOOK_ETCD_PASSWORD=$pw timeout 30 "$bin" run slow.lua --store "etcd://127.0.0.1:$cp/rb?ttl=3&user=ops" 2>&1 </dev/null); code=$?
[ $code = 0 ] && ok "a run that outlives its auth token (1 s) renews its lease on (it logs in again)" || fail "token expiry: $code $out"
out=$(timeout 30 "$bin" run quick.lua --store "$S" 2>&1 </dev/null); code=$?
[ $code = 2 ] && grep -q "names user ops: set RUNBOOK_ETCD_PASSWORD" <<<"$out" && ok "no password: exit 2, saying which variable" || fail "no password: $code $out"
out=$(RUNBOOK_ETCD_PASSWORD=wrong timeout 30 "$bin" run quick.lua --store "$S" 2>&1 </dev/null); code=$?
[ $code = 1 ] && grep -q "authentication failed" <<<"$out" && ok "a wrong password is refused by etcd, said in one line" || fail "wrong password: $code $out"
out=$(timeout 30 "$bin" run quick.lua --store "etcd://127.0.0.1:$cp/rb?ttl=5" 2>&1 </dev/null); code=$?
[ $code -ne 0 ] && ok "without a user, a store with auth on refuses the run (exit $code)" || fail "anonymous run passed: $out"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
