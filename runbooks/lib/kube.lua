--- kube: kubectl, parsed from -o json.
local exec = require "runbook.exec"
local json = require "runbook.json"
local errors = require "runbook.error"

local M = {}

local function get(args)
  local a = {"kubectl"}
  for _, x in ipairs(args) do a[#a + 1] = x end
  local r = exec.run(a, {timeout = 60})
  if r.code ~= 0 then
    error(errors.new("kube", table.concat(a, " ") .. ": " .. r.stderr:gsub("%s+$", "")), 2)
  end
  return json.decode(r.stdout, {name = table.concat(a, " ")})
end

--- Nodes: {name, ready (bool), reason, os_image, unschedulable}
---@return table[] `kubectl get nodes -o json` items
function M.nodes()
  local out = {}
  for _, item in ipairs(get{"get", "nodes", "-o", "json"}.items or {}) do
    local ready, reason = false, "no Ready condition"
    for _, c in ipairs(item.status and item.status.conditions or {}) do
      if c.type == "Ready" then ready, reason = c.status == "True", c.reason or c.status end
    end
    out[#out + 1] = {name = item.metadata.name, ready = ready, reason = reason,
                     os_image = item.status and item.status.nodeInfo and item.status.nodeInfo.osImage,
                     unschedulable = item.spec and item.spec.unschedulable == true}
  end
  return out
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

return M
