--! dry-run
-- The world's Kubernetes API model (runbooks/sim/kubeapi.lua, kubewrite.lua,
-- kubetable.lua) in process, and the dry-run kubectl shim answering `get`
-- from it: the same objects the served world gives the real kubectl
-- (tests/e2e/test_kubeapi.sh drives that one).
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/lib/?.lua;" .. package.path
local world = dofile(src .. "/runbooks/sim/world.lua")
package.loaded["runbook.world"] = world
local exec = require "runbook.exec"
local json = require "runbook.json"
local t = require "runbook.testing"

world.load(src .. "/runbooks/scenarios/default.yaml")

local function api(method, path, body, ctype)
  local r = world.kube({method = method, path = path, headers = {["content-type"] = ctype or "application/json"},
                        body = body and json.encode(body)})
  return r.status, json.decode(r.body)
end

function test_dry_run_kubectl_reads_the_service_cidr_as_rollout_asks()
  -- rollout.lua check_live_service_ips: the same answer served and rehearsed
  local r = exec.run({"kubectl", "get", "servicecidr", "kubernetes", "-o", "jsonpath={.spec.cidrs[*]}"})
  t.eq({r.code, r.stdout}, {0, "10.43.0.0/16"})
  r = exec.run({"kubectl", "get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIPs[*]}"})
  t.eq({r.code, r.stdout}, {0, "10.43.0.1"})
  r = exec.run({"kubectl", "get", "lease", "nope", "-n", "kube-system", "-o", "json"})
  t.eq({r.code, r.stderr}, {1, 'Error from server (NotFound): leases.coordination.k8s.io "nope" not found\n'})
end

function test_servicecidrs_only_from_kubernetes_1_33()
  local code = api("GET", "/apis/networking.k8s.io/v1/servicecidrs")
  t.eq(code, 200)
  world.state().k8s_version = "v1.32.4"
  local c2, st = api("GET", "/apis/networking.k8s.io/v1/servicecidrs")
  t.eq({c2, st.reason}, {404, "NotFound"})
  local _, groups = api("GET", "/apis")
  t.eq(#groups.groups, 1)
  world.state().k8s_version = "v1.33.3"
end

function test_update_without_resource_version_is_unconditional_and_names_must_agree()
  local _, cm = api("POST", "/api/v1/namespaces/default/configmaps", {metadata = {name = "u"}, data = {a = "1"}})
  local c1, upd = api("PUT", "/api/v1/namespaces/default/configmaps/u", {metadata = {name = "u"}, data = {a = "2"}})
  t.eq({c1, upd.data.a}, {200, "2"})
  t.truthy(upd.metadata.resourceVersion ~= cm.metadata.resourceVersion)
  local c2, st = api("PUT", "/api/v1/namespaces/default/configmaps/u", {metadata = {name = "other"}})
  t.eq({c2, st.message}, {400, "the name of the object (other) does not match the name on the URL (u)"})
  local c3 = api("PUT", "/api/v1/namespaces/default/configmaps/missing", {metadata = {name = "missing"}})
  t.eq(c3, 404)
end

function test_selectors_and_a_watch_too_old()
  local _, pods = api("GET", "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns")
  t.eq(#pods.items, 2)
  local _, one = api("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dk8s-2")
  t.eq({#one.items, one.items[1].metadata.name}, {1, "k8s-2"})
  local c, st = api("GET", "/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue")
  t.eq({c, st.reason}, {400, "BadRequest"})
  -- a watch from a resourceVersion older than the kept events: one ERROR 410
  local S = world.state().kube
  local first = S.log_first
  S.log_first = #S.log
  local w = world.kube({method = "GET", path = "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1", headers = {}})
  local lines, last = w.watch()
  t.eq(lines, nil)
  t.match(last, '"code":410')
  S.log_first = first
end

function test_tables_as_kubectl_asks_for_them()
  local r = world.kube({method = "GET", path = "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                        headers = {accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}})
  local tbl = json.decode(r.body)
  t.eq(tbl.kind, "Table")
  local names = {}
  for i, c in ipairs(tbl.columnDefinitions) do names[i] = c.name end
  t.eq(names, {"Name", "Holder", "Age"})
end

function test_ages_as_go_humanduration_writes_them()
  local tb = dofile(src .. "/runbooks/sim/kubetable.lua")
  -- the cases of k8s.io/apimachinery pkg/util/duration/duration_test.go
  local cases = {{-2, "<invalid>"}, {-1, "0s"}, {0, "0s"}, {119, "119s"}, {120, "2m"}, {125, "2m5s"}, {600, "10m"},
                 {3 * 3600, "3h"}, {3 * 3600 + 5 * 60, "3h5m"}, {8 * 3600, "8h"}, {47 * 3600, "47h"}, {48 * 3600, "2d"},
                 {49 * 3600, "2d1h"}, {8 * 86400, "8d"}, {2 * 365 * 86400, "2y"}, {(2 * 365 + 3) * 86400, "2y3d"},
                 {8 * 365 * 86400, "8y"}}
  for _, c in ipairs(cases) do t.eq(tb.human_duration(c[1]), c[2], tostring(c[1])) end
  t.eq(tb.epoch("1970-01-02T00:00:01Z"), 86401)
  t.eq(tb.epoch("2026-03-01T00:00:00Z"), 1772323200)
end

--- The status of a Node's Ready condition (the kubelet posts it after the
--- pressure conditions)
local function ready_of(node)
  for _, c in ipairs(node.status.conditions) do if c.type == "Ready" then return c.status end end
end

-- nodes are derived from the world: a watch sees a node's Ready change as
-- MODIFIED (what `kubectl wait --for=condition=Ready node/X` waits for)
function test_a_node_watch_sees_ready_change()
  local _, list = api("GET", "/api/v1/nodes")
  local w = world.kube({method = "GET", headers = {},
                        path = "/api/v1/nodes?watch=true&fieldSelector=metadata.name%3Dk8s-3&resourceVersion=" .. list.metadata.resourceVersion})
  t.eq(w.watch(), {})
  local n = world.state().ix.node_by_name["k8s-3"]
  n.not_ready = true
  local lines = w.watch()
  t.eq(#lines, 1)
  local e = json.decode(lines[1])
  t.eq({e.type, e.object.metadata.name, ready_of(e.object)}, {"MODIFIED", "k8s-3", "False"})
  n.not_ready = nil
  e = json.decode(w.watch()[1])
  t.eq(ready_of(e.object), "True")
end

-- `kubectl cordon` patches spec.unschedulable; the world's node takes it
function test_cordon_and_uncordon_through_a_node_patch()
  local c, n = api("PATCH", "/api/v1/nodes/k8s-1", {spec = {unschedulable = true}}, "application/strategic-merge-patch+json")
  t.eq({c, n.spec.unschedulable}, {200, true})
  t.eq(world.state().ix.node_by_name["k8s-1"].unschedulable, true)
  local r = exec.run({"kubectl", "get", "node", "k8s-1", "-o", "jsonpath={.spec.unschedulable}"})
  t.eq(r.stdout, "true")
  c = api("PATCH", "/api/v1/nodes/k8s-1", {spec = {unschedulable = json.null}}, "application/strategic-merge-patch+json")
  t.eq(c, 200)
  t.eq(world.state().ix.node_by_name["k8s-1"].unschedulable, nil)
  local c2, st = api("PATCH", "/api/v1/nodes/k8s-1", {metadata = {labels = {x = "y"}}}, "application/merge-patch+json")
  t.eq({c2, st.reason}, {422, "Invalid"})
end

-- protobuf bodies as kubectl v1.33's generators send them (built here by
-- the wire format: key = number << 3 | type, lengths as varints)
local function ld(num, bytes) return string.char(num << 3 | 2, #bytes) .. bytes end
local function entry(k, v) return ld(1, k) .. ld(2, v) end

function test_protobuf_bodies_of_the_stored_kinds()
  local meta = ld(1, "pb") .. ld(2, "") .. ld(3, "") .. ld(11, entry("app", "x"))
  local raw = ld(1, meta) .. ld(2, entry("pw", "hunter2")) .. ld(3, "Opaque")
  local body = "k8s\0" .. ld(1, ld(1, "v1") .. ld(2, "Secret")) .. ld(2, raw)
  local r = world.kube({method = "POST", path = "/api/v1/namespaces/default/secrets",
                        headers = {["content-type"] = "application/vnd.kubernetes.protobuf"}, body = body})
  local s = json.decode(r.body)
  t.eq(r.status, 201)
  t.eq({s.kind, s.metadata.name, s.metadata.namespace, s.metadata.labels.app, s.data.pw, s.type, s.metadata.generateName},
       {"Secret", "pb", "default", "x", "aHVudGVyMg==", "Opaque", nil})
  -- a kind it does not decode, and bytes that are no envelope: 415
  local other = "k8s\0" .. ld(1, ld(1, "apps/v1") .. ld(2, "Deployment")) .. ld(2, "")
  for _, b in ipairs{other, "\1\2\3"} do
    r = world.kube({method = "POST", path = "/api/v1/namespaces/default/configmaps",
                    headers = {["content-type"] = "application/vnd.kubernetes.protobuf"}, body = b})
    t.eq(r.status, 415)
  end
end
