--- kube: kubectl, parsed from -o json.
local exec = require "runbook.exec"
local json = require "runbook.json"
local errors = require "runbook.error"

local M = {}

--- kubectl with `args`; raises a `kube` error naming the command unless it exits 0.
local function run(args)
  local a = {"kubectl"}
  for _, x in ipairs(args) do a[#a + 1] = x end
  local r = exec.run(a, {timeout = 60})
  if r.code ~= 0 then
    error(errors.new("kube", table.concat(a, " ", 1, math.min(#a, 4)) .. ": " .. r.stderr:gsub("%s+$", "")), 3)
  end
  return r, a
end

local function get(args)
  local r, a = run(args)
  return json.decode(r.stdout, {name = table.concat(a, " ")})
end

local function node_of(item)
  local ready, reason = false, "no Ready condition"
  for _, c in ipairs(item.status and item.status.conditions or {}) do
    if c.type == "Ready" then ready, reason = c.status == "True", c.reason or c.status end
  end
  return {name = item.metadata.name, ready = ready, reason = reason,
          os_image = item.status and item.status.nodeInfo and item.status.nodeInfo.osImage,
          unschedulable = item.spec and item.spec.unschedulable == true}
end

--- What `kubectl get nodes` prints of each node, one line each: its
--- name, every condition as type=status:reason;, spec.unschedulable and
--- the OS image, tab-separated (a missing field prints nothing, kubectl's
--- default). kubectl applies the template itself (the API server sends
--- the whole list either way): the runbook parses a few dozen bytes a
--- node instead of a node's kilobytes of JSON at every gate.
M.NODES_JSONPATH = '{range .items[*]}{.metadata.name}{"\\t"}{range .status.conditions[*]}{.type}={.status}:{.reason};{end}'
  .. '{"\\t"}{.spec.unschedulable}{"\\t"}{.status.nodeInfo.osImage}{"\\n"}{end}'

--- Parses M.NODES_JSONPATH's output.
---@param text string
---@return table[] nodes {name, ready, reason, os_image, unschedulable}
function M.parse_nodes(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local name, conds, unsched, os_image = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if not name then error(errors.new("kube", "kubectl get nodes printed a line it was not asked for: " .. line:sub(1, 120)), 2) end
    -- the conditions are "Type=Status:Reason;" each: only Ready is read
    -- (one match, not a walk of every condition: this runs for every node
    -- at every whole-cluster check)
    local ready, reason = false, "no Ready condition"
    local st, why = conds:match("^Ready=([^:;]*):([^;]*);")
    if not st then st, why = conds:match(";Ready=([^:;]*):([^;]*);") end
    if st then ready, reason = st == "True", why ~= "" and why or st end
    out[#out + 1] = {name = name, ready = ready, reason = reason, os_image = os_image ~= "" and os_image or nil,
                     unschedulable = unsched == "true"}
  end
  return out
end

local find, byte = string.find, string.byte

local function is_true(a, b, c, d, e) return a == 84 and b == 114 and c == 117 and d == 101 and e == 58 end  -- "True:"

--- The nodes of M.NODES_JSONPATH's output that are not Ready, as
--- M.parse_nodes gives them, and how many nodes the output lists. A
--- Ready line is recognised by a few plain searches (its Ready=True
--- condition inside the second field, four fields in all) without
--- building anything; every other line goes through M.parse_nodes, so
--- that a line it would refuse is refused here too. The whole-cluster
--- gate runs this at every node of a rollout: 0.41 µs a node against
--- 0.96 µs for parsing every line (1,000 nodes, docs/benchmarks.md).
---@param text string
---@return table[] not_ready, integer count
function M.not_ready(text)
  local bad, count, pos, len = {}, 0, 1, #text
  while pos <= len do
    local nl = find(text, "\n", pos, true) or len + 1
    local t1 = find(text, "\t", pos, true)
    local ready = false
    if t1 and t1 < nl then
      -- the first "Ready=" of the line is "Ready=True:", opening the
      -- conditions or after a ";" (the type is exactly Ready, not one
      -- merely ending in Ready) and closed by its ";" in the same field
      local r = find(text, "Ready=", t1 + 1, true)
      local c = r and r < nl and is_true(byte(text, r + 6, r + 10)) and byte(text, r - 1)
      if c == 9 or c == 59 then
        local t2 = find(text, "\t", t1 + 1, true)
        local semi = t2 and r < t2 and find(text, ";", r, true)
        local t3 = semi and semi < t2 and find(text, "\t", t2 + 1, true)
        ready = t3 and t3 < nl or false
      end
    end
    if not ready then
      local n = M.parse_nodes(text:sub(pos, nl - 1))[1]
      if n and not n.ready then bad[#bad + 1] = n end
    end
    count = count + 1
    pos = nl + 1
  end
  return bad, count
end

-- the last list read and what M.not_ready made of it
local last_text, last_bad, last_count

--- The nodes not Ready, and how many the cluster has, in one `kubectl
--- get nodes` (M.not_ready). A list byte for byte the one read last time
--- (nothing changed in between: the common case of a gate asked at every
--- node of a rollout) is not scanned again; the list it returns is new.
---@return table[] not_ready, integer count
function M.nodes_not_ready()
  local text = run{"get", "nodes", "-o", "jsonpath=" .. M.NODES_JSONPATH}.stdout
  if text ~= last_text then
    last_bad, last_count = M.not_ready(text)
    last_text = text
  end
  return table.move(last_bad, 1, #last_bad, 1, {}), last_count
end

--- Nodes: {name, ready (bool), reason, os_image, unschedulable}, in one
--- `kubectl get nodes` whatever the size of the cluster.
---@return table[] nodes
function M.nodes()
  return M.parse_nodes(run{"get", "nodes", "-o", "jsonpath=" .. M.NODES_JSONPATH}.stdout)
end

--- One node (`kubectl get node NAME -o json`), as M.nodes() gives it, or
--- nil when the cluster has no node of that name (NotFound). A gate on one
--- node asks for that node only: its cost does not grow with the cluster.
---@param name string
---@return table? node
function M.node(name)
  local a = {"kubectl", "get", "node", name, "-o", "json"}
  local r = exec.run(a, {timeout = 60})
  if r.code ~= 0 then
    if r.stderr:find("(NotFound)", 1, true) then return nil end
    error(errors.new("kube", table.concat(a, " ") .. ": " .. r.stderr:gsub("%s+$", "")), 2)
  end
  return node_of(json.decode(r.stdout, {name = table.concat(a, " ")}))
end

--- Pods of a namespace: {name, phase, ready}
---@param ns string
---@return table[] pods of the namespace
function M.pods(ns)
  local out = {}
  for _, item in ipairs(get{"get", "pods", "-n", ns, "-o", "json"}.items or {}) do
    local ready = false
    for _, c in ipairs(item.status and item.status.conditions or {}) do
      if c.type == "Ready" then ready = c.status == "True" end
    end
    out[#out + 1] = {name = item.metadata.name, phase = item.status and item.status.phase, ready = ready}
  end
  return out
end

-- kubectl's answer (jsonpath, space-separated), or nil when it gave none.
local function words(args)
  local argv = {"kubectl"}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local ok, r = pcall(exec.run, argv, {timeout = 30})
  if not ok or r.code ~= 0 then return nil end
  local out = {}
  for w in r.stdout:gmatch("%S+") do out[#out + 1] = w end
  return #out > 0 and out or nil
end

--- The live cluster's word on the service CIDRs, for
--- talconfig.reconcile_service_cidrs: the default ServiceCIDR object
--- `kubernetes` ({cidrs}), else the `kubernetes` Service's cluster IPs
--- ({ips}). A world that does not model them, or no kubeconfig, answers
--- nothing ({}).
---@return {cidrs?:string[], ips?:string[]}
function M.service_cidrs_live()
  local live = {cidrs = words{"get", "servicecidr", "kubernetes", "-o", "jsonpath={.spec.cidrs[*]}"}}
  if not live.cidrs then
    live.ips = words{"get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIPs[*]}"}
  end
  return live
end

return M
