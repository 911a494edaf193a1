-- runbook.store and runbook.store_etcd without a server: lock names, the
-- gateway's base64, store URLs and their refusals.
local store = require "runbook.store"
local etcd = require "runbook.store_etcd"
local t = require "runbook.testing"

function test_slug_keeps_plain_names_and_digests_the_rest()
  t.eq(store.slug("rollout"), "rollout")
  local a = store.slug("talos:home-lab@https://192.168.10.10:6443")
  t.truthy(a:match("^talos_home%-lab_https_192%.168%.10%.10_6443%-%x+$"), a)
  -- two keys that differ only in characters the slug replaces stay apart
  t.truthy(store.slug("a:b") ~= store.slug("a/b"))
  t.truthy(#store.slug(string.rep("x", 500)) < 80)
end

function test_base64_round_trips_every_length_and_byte()
  t.eq(etcd.b64(""), "")
  t.eq(etcd.b64("f"), "Zg==")
  t.eq(etcd.b64("fo"), "Zm8=")
  t.eq(etcd.b64("foo"), "Zm9v")
  t.eq(etcd.b64("lock"), "bG9jaw==")           -- as the gateway answered on etcd 3.4
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  local s = table.concat(all)
  for n = 0, 7 do t.eq(etcd.unb64(etcd.b64(s:sub(1, 250 + n))), s:sub(1, 250 + n)) end
end

function test_store_urls()
  local c = etcd.parse("etcd://10.0.0.1:2379,10.0.0.2:2379/ops/runbook?ttl=9")
  t.eq(c.endpoints, {"http://10.0.0.1:2379", "http://10.0.0.2:2379"})
  t.eq(c.prefix, "ops/runbook")
  t.eq(c.ttl, 9)
  t.eq(c.period, 9 / 4)
  t.eq(c.margin, 6.0)
  c = etcd.parse("etcds://e:2379/p?cacert=/ca.pem&cert=/c.pem&key=/k.pem&user=ops")
  t.eq(c.endpoints, {"https://e:2379"})
  t.eq(c.tls, {cacert = "/ca.pem", cert = "/c.pem", key = "/k.pem"})
  t.eq(c.user, "ops")
  t.eq(etcd.parse("etcd://e:1/p").ttl, 20)     -- the default lease
end

function test_bad_store_urls_are_refused_with_exit_2()
  local bad = {
    {"etcd://e:2379", "a PREFIX is needed"},
    {"etcd://e/p", "is not HOST:PORT"},
    {"etcd://e:1/p?ttl=1", "ttl must be whole seconds"},
    {"etcd://e:1/p?ttl=x", "ttl must be whole seconds"},
    {"etcd://e:1/p?cacert=/x", "need etcds://"},
    {"etcd://e:1/p?nope=1", "unknown option 'nope'"},
  }
  for _, b in ipairs(bad) do
    local ok, err = pcall(etcd.parse, b[1])
    t.truthy(not ok, b[1])
    t.eq(err.exit, 2, b[1])
    t.truthy(err.message:find(b[2], 1, true), err.message)
  end
  local ok, err = pcall(store.open, "zookeeper://x/y", {state_dir = "."})
  t.truthy(not ok and err.exit == 2 and err.message:find("not a store", 1, true), tostring(err))
end
