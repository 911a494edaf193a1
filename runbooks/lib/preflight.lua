--- preflight: what a runbook checks before the first byte of the
--- operator's directory changes (issue #28.3). Every check that can refuse
--- runs on a scratch copy of the directory, in a private temporary
--- directory; a refusal stops the run with exit 2 ("refused, nothing
--- changed", docs/cli.md), and the scratch copy is removed whatever
--- happened.
local errors = require "runbook.error"
local fs = require "runbook.fs"

local M = {}
local fmt = string.format

--- Stops the run: exit 2, nothing undone (nothing was changed). Raised
--- inside a step, the step does not wrap it into a failure (exit 1).
---@param msg string why, and what to do
function M.refuse(msg)
  msg = msg:gsub("^[^:\n]+%.lua:%d+: ", ""):gsub("%s+$", "")
  if not msg:find("[Nn]othing was changed") then msg = msg .. (msg:find("[.:]$") and " " or ". ") .. "Nothing was changed." end
  error(errors.new("usage", msg, {exit = 2, stop = true}), 0)
end

--- Runs fn(); any error it raises becomes a refusal (exit 2). A refusal
--- or a stop raised inside keeps its own exit.
---@param fn fun(): any
---@return any
function M.refusing(fn)
  local ok, res = pcall(fn)
  if ok then return res end
  if type(res) == "table" and (res.stop or res.kind == "usage") then error(res, 0) end
  M.refuse(type(res) == "table" and tostring(res.message or res) or tostring(res))
end

-- What a scratch copy leaves out: version control, the runbooks' own state,
-- talhelper's output (regenerated in the copy) and anything large.
local SKIP = {[".git"] = true, [".runbook"] = true, clusterconfig = true}
local MAX_FILE, MAX_FILES, MAX_DEPTH = 4 * 1024 * 1024, 10000, 8
local COPY_MARK = ".runbook-scratch-copy"

--- Copies the directory tree src into dst (created), leaving out .git,
--- .runbook, clusterconfig, files of 4 MiB and more, and symbolic links'
--- targets outside (a link is copied as the file it names). Returns the
--- number of files copied.
---@param src string
---@param dst string
---@return integer
function M.copy_tree(src, dst)
  local count = 0
  local function walk(from, to, depth)
    fs.mkdir_p(to, tonumber("700", 8))
    for _, name in ipairs(fs.list(from)) do
      local path = from .. "/" .. name
      local st = not SKIP[name] and fs.stat(path)
      -- a scratch copy itself (a --state-dir inside the directory) is left out
      local copy = st and st.type == "directory" and fs.exists(path .. "/" .. COPY_MARK)
      if copy then
        st = nil
      end
      if st and st.type == "directory" and depth < MAX_DEPTH then
        walk(path, to .. "/" .. name, depth + 1)
      elseif st and st.type == "file" and st.size < MAX_FILE then
        count = count + 1
        if count > MAX_FILES then
          error(fmt("%s holds more than %d files: the scratch copy takes the talhelper directory only "
            .. "(run from the directory of talconfig.yaml)", src, MAX_FILES), 0)
        end
        fs.write(to .. "/" .. name, fs.read(path), {mode = tonumber("600", 8)})
      end
    end
  end
  walk(src, dst, 1)
  return count
end

--- Removes a directory tree (a scratch copy: it may hold the cluster's
--- secrets, as generated configs do). Errors are ignored: it is temporary.
---@param dir string
function M.remove_tree(dir)
  -- a rehearsal's copy lives in its overlay, whose listing does not show
  -- the directories made there: every file written under dir is removed
  for _, c in ipairs(fs.changes()) do
    if c.after and c.path:sub(1, #dir + 1) == dir .. "/" then fs.remove(c.path) end
  end
  if not fs.exists(dir) then return end
  local st = fs.stat(dir)
  if st and st.type == "directory" then
    for _, name in ipairs(fs.list(dir)) do M.remove_tree(dir .. "/" .. name) end
  end
  pcall(fs.remove, dir)
end

--- Runs fn(dir) with a scratch copy of src in <state_dir>/scratch/copy
--- (0700, git-ignored; a copy a killed run left is removed first, so none
--- stays for good; a rehearsal names it the same each time and writes it
--- only in its overlay), removed afterwards whatever happened; returns
--- fn's results.
---@param src string
---@param fn fun(dir: string): any
---@param dry_run boolean
---@param state_dir string the run's state directory (rb.state_dir)
---@return any
function M.with_scratch_copy(src, fn, dry_run, state_dir)
  local dir = "/tmp/runbook-scratch.rehearsal"
  if not dry_run then
    dir = state_dir .. "/scratch/copy"
    M.remove_tree(dir)
    require("scratch").dir(state_dir, "copy")
    fs.write(dir .. "/" .. COPY_MARK, "")
  end
  local ok, res = pcall(function()
    M.copy_tree(src, dir)
    local r = fn(dir)
    M.check_pins(dir)     -- the pins' sanity, on what fn left in the copy (issue #28.3)
    return r
  end)
  M.remove_tree(dir)
  if not ok then error(res, 0) end
  return res
end

-- {====== the pins' sanity (issue #28.3)
-- The address pins (machine.kubelet.nodeIP.validSubnets,
-- cluster.etcd.advertisedSubnets) keep the kubelet's node IP and etcd's
-- advertised address off tailscale0. Pins that would not hold the node's
-- current address move it instead: checked on the scratch copy, before
-- anything is written.

--- Tailscale's ranges: tailscale0's addresses (tailscale net/tsaddr/
--- tsaddr.go CGNATRange, TailscaleULARange, v1.84.2).
M.TAILNET = {"100.64.0.0/10", "fd7a:115c:a1e0::/48"}

local function is6(s) return s:find(":", 1, true) ~= nil end

-- an entry of a Talos address filter as a prefix ("!" taken off; a bare
-- address is a /32 or /128, as ParseSubnetOrAddress takes it), and
-- whether it is an exclusion
local function entry_prefix(e)
  local neg = e:sub(1, 1) == "!"
  local p = neg and e:sub(2) or e
  if not p:find("/", 1, true) then p = p .. (is6(p) and "/128" or "/32") end
  return p, neg
end

-- whether two prefixes share an address (one holds the other's start)
local function overlaps(p, q)
  local talconfig = require "talconfig"
  if is6(p) ~= is6(q) then return false end
  return talconfig.cidr_contains(p, (q:match("^[^/]+"))) or talconfig.cidr_contains(q, (p:match("^[^/]+")))
end

--- Whether a Talos address filter keeps the address: the entries apply in
--- order, each adding the addresses it holds, a "!" entry removing them
--- (github.com/siderolabs/net v0.4.0 FilterIPs); `excl` are further "!"
--- entries (NodeIPConfig's excludeSubnets).
---@param list string[]
---@param addr string
---@param excl? string[]
---@return boolean
function M.filter_keeps(list, addr, excl)
  local talconfig = require "talconfig"
  local kept = false
  for _, e in ipairs(list) do
    local p, neg = entry_prefix(e)
    if talconfig.cidr_contains(p, addr) then kept = not neg end
  end
  for _, e in ipairs(excl or {}) do
    if talconfig.cidr_contains((entry_prefix(e)), addr) then kept = false end
  end
  return kept
end

--- What is wrong with one node's pins, as sentences (empty: nothing).
--- `o.kubelet_ips`: the kubelet's node IPs now (NodeIPs "kubelet");
--- `o.kubelet_list`: validSubnets once the change applies (the configured
--- list and the pins appended: a patch appends, configpatcher) and
--- `o.kubelet_excl` NodeIPConfig's excludeSubnets; `o.kubelet_pins` the
--- entries this run appends. `o.etcd_ips`, `o.etcd_list`, `o.etcd_pins`
--- the same for etcd's advertised addresses (EtcdSpec; nil on a worker).
---@param o table
---@return string[]
function M.pin_problems(o)
  local out = {}
  local function check(what, pins, list, excl, current)
    for _, e in ipairs(pins or {}) do
      local p, neg = entry_prefix(e)
      if not neg then
        for _, t in ipairs(M.TAILNET) do
          if overlaps(p, t) then out[#out + 1] = ("the %s pin %s overlaps the tailnet range %s"):format(what, e, t) end
        end
        local holds = false
        for _, a in ipairs(current) do holds = holds or require("talconfig").cidr_contains(p, a) end
        if not holds then
          out[#out + 1] = ("the %s pin %s holds none of the node's current addresses (%s)"):format(what, e,
            #current > 0 and table.concat(current, ", ") or "none reported")
        end
      end
    end
    -- the list once pinned must keep tailscale0's addresses out (its
    -- first address of each range stands for them all)
    for _, t in ipairs(pins and list and M.TAILNET or {}) do
      local a = t:match("^[^/]+"):gsub("0$", "1"):gsub("::$", "::1")
      if M.filter_keeps(list, a, excl) then
        out[#out + 1] = ("the %s list [%s] would still let tailscale0's %s addresses through"):format(what, table.concat(list, ", "), t)
      end
    end
    for _, a in ipairs(list and current or {}) do
      if not M.filter_keeps(list, a, excl) then
        out[#out + 1] = ("%s [%s] would not keep the current address %s"):format(
          what == "kubelet" and "the kubelet's validSubnets" or "etcd's advertisedSubnets", table.concat(list, ", "), a)
      end
    end
  end
  check("kubelet", o.kubelet_pins, o.kubelet_list, o.kubelet_excl, o.kubelet_ips or {})
  if o.etcd_ips then check("etcd", o.etcd_pins, o.etcd_list, nil, o.etcd_ips) end
  return out
end

-- the edited talconfig.yaml in a scratch copy (the file that references a
-- pin file, else a talconfig.yaml) and its directory, or nil
local function scratch_talconfig(dir)
  local found
  local function walk(d, depth)
    for _, name in ipairs(fs.list(d)) do
      local path = d .. "/" .. name
      local st = name ~= "clusterconfig" and fs.stat(path)
      if st and st.type == "directory" and depth < 4 then walk(path, depth + 1)
      elseif st and st.type == "file" and name:match("%.ya?ml$") and st.size < MAX_FILE then
        local text = fs.read(path)
        if text:find("@./patches/tailscale-pins-", 1, true) or (name == "talconfig.yaml" and not found) then found = path end
      end
    end
  end
  walk(dir, 1)
  return found
end

-- The resources of one type on every node: one talosctl call for all of
-- them (`-n a,b,c`: each resource names its node, the "node" field);
-- a node missing from the answer (the call failed: a node unreachable; or
-- its resources name it otherwise) is asked alone, and one that fails
-- then answers none. node -> resources.
local function fetch(nodes, rtype)
  local talos = require "talos"
  local out, ips = {}, {}
  for _, n in ipairs(nodes) do ips[#ips + 1] = n.ip; out[n.ip] = {} end
  local ok, all = pcall(talos.get, table.concat(ips, ","), rtype)
  for _, r in ipairs(ok and all or {}) do if out[r.node] then table.insert(out[r.node], r) end end
  local missing = {}
  for _, n in ipairs(nodes) do if #out[n.ip] == 0 then missing[#missing + 1] = n end end
  if #missing == 0 then return out end
  local each = require("runbook.async").map(missing, function(n)
    local got, res = pcall(talos.get, n.ip, rtype)
    return got and res or {}
  end, {concurrency = math.min(32, #missing)})
  for i, n in ipairs(missing) do out[n.ip] = each[i] end
  return out
end

local function resource(list, id)
  for _, r in ipairs(list or {}) do
    if type(r.metadata) == "table" and r.metadata.id == id and type(r.spec) == "table" then return r.spec end
  end
  return {}
end

-- one node's pins and addresses, from the scratch copy's pin file and
-- what the node answered (got: rtype -> node -> resources)
local function node_pins(n, patches, got)
  local file = patches .. "/tailscale-pins-" .. n.hostname .. ".yaml"
  local doc = fs.exists(file) and require("runbook.yaml").decode(fs.read(file))
  local kubelet_pins = type(doc) == "table" and type(doc.machine) == "table" and doc.machine.kubelet
    and doc.machine.kubelet.nodeIP.validSubnets or nil
  local etcd_pins = type(doc) == "table" and type(doc.cluster) == "table" and doc.cluster.etcd.advertisedSubnets or nil
  local o = {kubelet_pins = kubelet_pins, etcd_pins = etcd_pins,
             kubelet_ips = require("talconfig").kubelet_addresses(got.nodeips[n.ip])}
  local cfg = resource(got.nodeipconfigs[n.ip], "kubelet")
  local valid = cfg.validSubnets or {}
  o.kubelet_excl = cfg.excludeSubnets or {}
  -- the rollout pins the node's own addresses only where the config
  -- writes no list (Talos's default in NodeIPConfig, talos.pin_entry): then
  -- the pins are the whole list; "!" pins are appended to the list shown
  local own = false
  for _, e in ipairs(kubelet_pins or {}) do own = own or e:sub(1, 1) ~= "!" end
  if own then
    o.kubelet_list = kubelet_pins
  elseif kubelet_pins then
    o.kubelet_list = {}
    for _, e in ipairs(valid) do o.kubelet_list[#o.kubelet_list + 1] = e end
    for _, e in ipairs(kubelet_pins) do o.kubelet_list[#o.kubelet_list + 1] = e end
  elseif #valid > 0 then
    o.kubelet_list = valid
  end
  if n.control_plane then
    -- a node that does not answer has its etcd pins left unjudged
    local spec = resource(got.etcdspecs[n.ip], "etcd")
    if type(spec.advertisedAddresses) == "table" then o.etcd_ips = spec.advertisedAddresses end
    local etcd = resource(got.etcdconfigs[n.ip], "etcd").advertiseValidSubnets
    o.etcd_list = type(etcd) == "table" and #etcd > 0 and etcd or nil
    if etcd_pins then
      o.etcd_list = o.etcd_list or {}
      for _, e in ipairs(etcd_pins) do o.etcd_list[#o.etcd_list + 1] = e end
    end
  end
  return o
end

--- The pins' sanity on a scratch copy the rollout prepared (its edited
--- talconfig.yaml and pin files): for every node that gets the tailscale
--- service, the pins and the lists they are appended to must keep the
--- node's current kubelet node IPs and etcd advertised address, and no
--- pin may overlap the tailnet's ranges. Raises the problems (the caller
--- refuses: exit 2); a copy without a tailscale entry is not checked.
---@param dir string the scratch copy
function M.check_pins(dir)
  local path = scratch_talconfig(dir)
  if not path then return end
  local talconfig = require "talconfig"
  local ok, c = pcall(talconfig.read, path)
  if not ok then return end            -- talhelper read it already: its errors were reported
  local patches = path:match("^(.*)/[^/]*$") .. "/patches"
  local nodes = {}
  for _, n in ipairs(c.nodes) do if talconfig.tailscale_service_of(n) then nodes[#nodes + 1] = n end end
  if #nodes == 0 then return end
  local cps = {}
  for _, n in ipairs(nodes) do if n.control_plane then cps[#cps + 1] = n end end
  local got = {nodeips = fetch(nodes, "nodeips"), nodeipconfigs = fetch(nodes, "nodeipconfigs"),
               etcdconfigs = #cps > 0 and fetch(cps, "etcdconfigs") or {}, etcdspecs = #cps > 0 and fetch(cps, "etcdspecs") or {}}
  local found = {}
  for i, n in ipairs(nodes) do found[i] = M.pin_problems(node_pins(n, patches, got)) end
  local problems = {}
  for i, n in ipairs(nodes) do
    for _, p in ipairs(found[i]) do problems[#problems + 1] = n.hostname .. ": " .. p end
  end
  if #problems > 0 then
    error(fmt("the address pins would not hold the nodes' addresses: %s. Set machine.kubelet.nodeIP.validSubnets and "
      .. "cluster.etcd.advertisedSubnets to the node's own addresses (docs/rollout.md \"Pin sanity\"); --var "
      .. "pin_node_ip=false leaves the rollout's pins out, not a list of yours", table.concat(problems, "; ")), 0)
  end
end

-- }======

return M
