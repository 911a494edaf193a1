--- How the simulated tools print: exec results, JSON, Go's tabwriter,
--- and a COSI resource as `talosctl get -o json` prints it.

local json = require "runbook.json"
local time = require "runbook.time"
local yaml = require "runbook.yaml"


local function result(code, stdout, stderr, dur)
  return {code = code, signal = nil, stdout = stdout or "", stderr = stderr or "", duration = dur or 0.05,
          timed_out = false, stdout_dropped = 0, stderr_dropped = 0, pid = 0}
end

local function pretty(v) return json.encode(v, {pretty = true}) .. "\n" end

--- Go's text/tabwriter as talosctl sets it up (minwidth 0, padding 3,
--- padchar ' ', no flags): each cell but a row's last is padded to its
--- column's widest cell plus 3. `rows` is a list of lists of strings.
local function tabwriter(rows)
  local width = {}
  for _, r in ipairs(rows) do
    for i = 1, #r - 1 do width[i] = math.max(width[i] or 0, utf8.len(r[i]) or #r[i]) end
  end
  local out = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = i < #r and (c .. string.rep(" ", width[i] + 3 - (utf8.len(c) or #c))) or c
    end
    out[#out + 1] = table.concat(cells)
  end
  return table.concat(out, "\n") .. "\n"
end

local function resource(node_ip, ns, rtype, id, version, spec)
  return pretty(yaml.order({node = node_ip, metadata = yaml.order({namespace = ns, type = rtype, id = id, version = version,
    owner = "", phase = "running", created = time.iso(), updated = time.iso()},
    {"namespace", "type", "id", "version", "owner", "phase", "created", "updated"}), spec = spec}, {"node", "metadata", "spec"}))
end

return {pretty = pretty, resource = resource, result = result, tabwriter = tabwriter}
