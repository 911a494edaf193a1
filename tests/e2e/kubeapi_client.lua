-- The served world's Kubernetes API through libcurl (runbook.http), as a
-- store backend meets it: Leases, ConfigMaps and Secrets with
-- resourceVersions, 404/409 Status objects, preconditions and a watch.
-- Run by test_kubeapi.sh with RUNBOOK_WORLD_DIR set to a served world's
-- directory (the token is read from its 0600 world.url, never from argv).
local async = require "runbook.async"
local http = require "runbook.http"
local json = require "runbook.json"
local t = require "runbook.testing"

local dir = assert(os.getenv("RUNBOOK_WORLD_DIR"), "RUNBOOK_WORLD_DIR")
local f = assert(io.open(dir .. "/world.url"))
local base, token = f:read("l"):match("^(http://127%.0%.0%.1:%d+)/(%x+)$")
f:close()
assert(base, "world.url is not a loopback URL with a token")

local LEASES = base .. "/apis/coordination.k8s.io/v1/namespaces/default/leases"
local CMS = base .. "/api/v1/namespaces/default/configmaps"

local function call(method, url, body, ctype)
  local r = http.request({method = method, url = url, bearer = token, body = body and json.encode(body),
                          headers = {["Content-Type"] = ctype or "application/json"}, timeout = 20})
  return r.status, r.body ~= "" and json.decode(r.body) or nil
end

local function lease(name, holder, rv)
  return {apiVersion = "coordination.k8s.io/v1", kind = "Lease", metadata = {name = name, resourceVersion = rv},
          spec = {holderIdentity = holder, leaseDurationSeconds = 15, leaseTransitions = 0}}
end

function test_without_the_bearer_token_nothing_answers()
  local r = http.request({url = base .. "/api/v1/namespaces", timeout = 10})
  t.eq(r.status, 403)
  -- another token: its first digit changed
  local other = (token:sub(1, 1) == "0" and "1" or "0") .. token:sub(2)
  r = http.request({url = base .. "/api/v1/namespaces", bearer = other, timeout = 10})
  t.eq(r.status, 403)
end

function test_lease_create_get_update_conflict_delete()
  local code, l = call("POST", LEASES, lease("lock-a", "run-1"))
  t.eq(code, 201)
  t.eq(l.kind, "Lease")
  t.eq(l.apiVersion, "coordination.k8s.io/v1")
  t.eq(l.spec.holderIdentity, "run-1")
  local rv1 = l.metadata.resourceVersion
  t.truthy(rv1 and l.metadata.uid and l.metadata.creationTimestamp, "server-set metadata")
  -- create again: 409 AlreadyExists (apimachinery NewAlreadyExists)
  local c2, st = call("POST", LEASES, lease("lock-a", "run-2"))
  t.eq(c2, 409)
  t.eq({st.kind, st.status, st.reason, st.code}, {"Status", "Failure", "AlreadyExists", 409})
  t.eq(st.message, 'leases.coordination.k8s.io "lock-a" already exists')
  t.eq(st.details, {name = "lock-a", group = "coordination.k8s.io", kind = "leases"})
  -- get
  local c3, got = call("GET", LEASES .. "/lock-a")
  t.eq(c3, 200)
  t.eq(got.metadata.resourceVersion, rv1)
  -- update with the current resourceVersion: a new one
  local c4, upd = call("PUT", LEASES .. "/lock-a", lease("lock-a", "run-1-renewed", rv1))
  t.eq(c4, 200)
  t.truthy(tonumber(upd.metadata.resourceVersion) > tonumber(rv1), "resourceVersion moved")
  t.eq(upd.metadata.uid, l.metadata.uid)
  -- update with the stale one: 409 Conflict, nothing written
  local c5, conf = call("PUT", LEASES .. "/lock-a", lease("lock-a", "run-2", rv1))
  t.eq(c5, 409)
  t.eq(conf.reason, "Conflict")
  t.eq(conf.message, 'Operation cannot be fulfilled on leases.coordination.k8s.io "lock-a": '
       .. "the object has been modified; please apply your changes to the latest version and try again")
  local _, now = call("GET", LEASES .. "/lock-a")
  t.eq(now.spec.holderIdentity, "run-1-renewed")
  -- delete with a stale precondition: 409; with the current one: Success
  local c6 = call("DELETE", LEASES .. "/lock-a", {kind = "DeleteOptions", apiVersion = "v1", preconditions = {resourceVersion = rv1}})
  t.eq(c6, 409)
  local c7, done = call("DELETE", LEASES .. "/lock-a",
                        {preconditions = {resourceVersion = now.metadata.resourceVersion}})
  t.eq(c7, 200)
  t.eq({done.kind, done.status, done.details.name}, {"Status", "Success", "lock-a"})
  local c8, nf = call("GET", LEASES .. "/lock-a")
  t.eq(c8, 404)
  t.eq({nf.reason, nf.code, nf.message}, {"NotFound", 404, 'leases.coordination.k8s.io "lock-a" not found'})
end

function test_configmap_merge_patch_and_its_precondition()
  local code, cm = call("POST", CMS, {metadata = {name = "journal-a"}, data = {["0001"] = "started"}})
  t.eq(code, 201)
  local c2, p = call("PATCH", CMS .. "/journal-a", {data = {["0002"] = "step one done"}}, "application/merge-patch+json")
  t.eq(c2, 200)
  t.eq(p.data, {["0001"] = "started", ["0002"] = "step one done"})
  -- a resourceVersion in the patch is a precondition
  local c3, st = call("PATCH", CMS .. "/journal-a", {metadata = {resourceVersion = cm.metadata.resourceVersion}, data = {x = "y"}},
                      "application/merge-patch+json")
  t.eq(c3, 409)
  t.eq(st.reason, "Conflict")
  -- null removes a key (RFC 7386)
  local _, p2 = call("PATCH", CMS .. "/journal-a", {data = {["0001"] = json.null}}, "application/merge-patch+json")
  t.eq(p2.data, {["0002"] = "step one done"})
  -- JSON Patch is refused with 415, not misapplied
  local c4, st4 = call("PATCH", CMS .. "/journal-a", {{op = "remove", path = "/data"}}, "application/json-patch+json")
  t.eq(c4, 415)
  t.eq(st4.reason, "UnsupportedMediaType")
  t.eq((call("PATCH", CMS .. "/nothing-here", {data = {}}, "application/merge-patch+json")), 404)
end

function test_secret_string_data_is_stored_base64_and_namespace_must_exist()
  local code, s = call("POST", base .. "/api/v1/namespaces/default/secrets",
                       {metadata = {name = "journal-s"}, type = "Opaque", stringData = {step = "ok!"}})
  t.eq(code, 201)
  t.eq(s.data, {step = "b2sh"})
  t.eq(s.stringData, nil)
  local c2, st = call("POST", base .. "/api/v1/namespaces/no-such-ns/configmaps", {metadata = {name = "x"}})
  t.eq(c2, 404)
  t.eq(st.message, 'namespaces "no-such-ns" not found')
end

function test_watch_streams_every_change_after_a_resource_version()
  local _, list = call("GET", CMS)
  local from = list.metadata.resourceVersion
  -- the server ends the stream after timeoutSeconds; libcurl reads it whole
  local watch = async.spawn(function()
    return http.request({url = CMS .. "?watch=true&resourceVersion=" .. from .. "&timeoutSeconds=2", bearer = token, timeout = 20})
  end)
  async.sleep(0.3)
  local _, a = call("POST", CMS, {metadata = {name = "watched"}, data = {n = "1"}})
  local _, b = call("PUT", CMS .. "/watched", {metadata = {name = "watched", resourceVersion = a.metadata.resourceVersion}, data = {n = "2"}})
  call("DELETE", CMS .. "/watched")
  local r = watch:wait()
  t.eq(r.status, 200)
  local events = {}
  for line in r.body:gmatch("[^\n]+") do
    local e = json.decode(line)
    events[#events + 1] = {e.type, e.object.metadata.name, e.object.data.n}
  end
  t.eq(events, {{"ADDED", "watched", "1"}, {"MODIFIED", "watched", "2"}, {"DELETED", "watched", "2"}})
  t.truthy(b.metadata.resourceVersion ~= a.metadata.resourceVersion)
end
