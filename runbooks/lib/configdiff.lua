--- configdiff: reading the diff `talosctl apply-config --dry-run` prints.
--- Talos writes it with machinery's configdiff (pkg/machinery/config/
--- configdiff/configdiff.go, v1.11.0): "--- a", "+++ b", then hunks of
--- gotextdiff's unified diff ("@@ -l,n +l,n @@", context lines that start
--- with a space, "-" removed, "+" added lines, "\ No newline at end of
--- file"), or "No changes." (machined's generateDiff). The rollout and its
--- rollback may apply a generated config only when its diff holds their own
--- changes and nothing else; and no diff is shown with an
--- ExtensionServiceConfig's environment values in it: they hold auth keys,
--- an old one included, which no secret registration knows.
local M = {}

local MASK = "***"

--- The diff with every environment value masked: a list item `- NAME=value`
--- keeps its NAME (TS_AUTHKEY=***), and any `tskey-...` text elsewhere is
--- masked too. Masks whatever the value's origin (a key that no run of
--- this process registered as a secret: an old one, a hand-written one).
--- Kernel arguments (`- console=ttyS0`) have the same shape and are
--- masked as well: a diff shown loses that detail rather than risk a key.
---@param diff string
---@return string
function M.mask(diff)
  local out = {}
  for line in (diff .. (diff:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    local head, name = line:match("^([ +%-]?%s*%-%s+[\"']?)([%a_][%w_]*)=")
    if head then line = head .. name .. "=" .. MASK end
    line = line:gsub("tskey%-[%w%-_]+", "tskey-" .. MASK)
    out[#out + 1] = line
  end
  local text = table.concat(out, "\n")
  if diff:sub(-1) == "\n" then text = text .. "\n" end
  return text
end

--- A talconfig.yaml diff with the keys masked and the rest as it is: an
--- `..._AUTHKEY=` value that is not a talhelper variable (`${TS_AUTHKEY}`
--- stays, a key written in clear does not), and any `tskey-...` text. The
--- plan shows the file's diff, whose context may hold a key its author wrote.
---@param diff string
---@return string
function M.mask_keys(diff)
  local out = diff:gsub("(_AUTHKEY=)([^\n\"']*)", function(k, v)
    if v:match("^%${[%w_]+}$") or v:match("^%$[%a_][%w_]*$") then return k .. v end
    return k .. MASK
  end)
  return (out:gsub("tskey%-[%w%-_]+", "tskey-" .. MASK))
end

--- The changed lines of a diff, removed and added, each with its sign,
--- context and headers left out. A line removed and the same line added
--- (a document encoded again, a line moved) cancel: what is left is what
--- changed. Returns the two lists, each {text = line without its sign}.
local function changes(diff)
  local removed, added = {}, {}
  for line in diff:gmatch("[^\n]+") do
    local sign, body = line:sub(1, 1), line:sub(2)
    if (sign == "-" and line:match("^%-%-%- %S+$")) or (sign == "+" and line:match("^%+%+%+ %S+$")) then
      sign = nil                                               -- the file header: "--- a", "+++ b"
    end
    if sign == "-" then removed[#removed + 1] = body
    elseif sign == "+" then added[#added + 1] = body end
  end
  local count = {}
  for _, l in ipairs(removed) do count[l] = (count[l] or 0) + 1 end
  local kept_added = {}
  for _, l in ipairs(added) do
    if (count[l] or 0) > 0 then count[l] = count[l] - 1 else kept_added[#kept_added + 1] = l end
  end
  local kept_removed = {}
  for i = #removed, 1, -1 do
    local l = removed[i]
    local left = count[l] or 0
    if left > 0 then count[l] = left - 1; table.insert(kept_removed, 1, l) end
  end
  return kept_removed, kept_added
end

-- Talos's MachineCertSANs has no omitempty (yaml:"certSANs", v1alpha1_types.go,
-- v1.11.0): a machine without SANs is written `certSANs: []`, and its first
-- SAN turns that line into `certSANs:` with the item below. Finds that one
-- pair, at one indentation, `from` removed and `to` added; drops both.
local function drop_empty_sans_pair(removed, added, from_empty)
  for i, r in ipairs(removed) do
    local ind = from_empty and r:match("^(%s*)certSANs: %[%]$") or (not from_empty and r:match("^(%s*)certSANs:$"))
    if ind then
      local want = ind .. (from_empty and "certSANs:" or "certSANs: []")
      for j, a in ipairs(added) do
        if a == want then
          table.remove(removed, i)
          table.remove(added, j)
          return
        end
      end
    end
  end
end

local function trim(s) return (s:match("^%s*(.-)%s*$")) end

--- The lines of a rollout's diff that are not its own changes: the new
--- install image for the old, the tailnet name in certSANs (with
--- `certSANs: []` becoming `certSANs:` when it is the first), the address
--- pins, and the tailscale ExtensionServiceConfig. Lines as the diff shows
--- them, environment values masked.
---@param diff string the text after "Config diff:\n\n"
---@param o {fqdn:string, image:string}
---@return string[] surprises
function M.rollout_surprises(diff, o)
  if diff:match("^No changes%.") then return {"(no changes at all: the generated config lacks this run's changes)"} end
  local ok_added = {["---"] = true, ["apiVersion: v1alpha1"] = true, ["kind: ExtensionServiceConfig"] = true,
                    ["name: tailscale"] = true, ["environment:"] = true, ["certSANs:"] = true, ["- " .. o.fqdn] = true,
                    ["kubelet:"] = true, ["nodeIP:"] = true, ["validSubnets:"] = true, ["cluster:"] = true,
                    ["etcd:"] = true, ["advertisedSubnets:"] = true, ["image: " .. o.image] = true}
  local removed, added = changes(diff)
  drop_empty_sans_pair(removed, added, true)
  local out = {}
  for _, l in ipairs(removed) do
    if not trim(l):match("^image: ") then out[#out + 1] = "-" .. l end
  end
  for _, l in ipairs(added) do
    local body = trim(l)
    if not (ok_added[body] or body:match("^%- TS_[%u_]+=") or body:match("^%- '?!?[%x:.]+/%d+'?$")) then
      out[#out + 1] = "+" .. l
    end
  end
  return out
end

--- The lines of a rollback's diff that undoing the rollout does not
--- explain: it may take away the tailnet name from certSANs (`certSANs:`
--- becoming `certSANs: []` when it was the only one), the address pins and
--- the tailscale ExtensionServiceConfig, and put the previous install image
--- back. Lines as the diff shows them, environment values masked.
---@param diff string
---@param ts_name string the node's device name in the tailnet
---@return string[] surprises
function M.rollback_surprises(diff, ts_name)
  if diff:match("^No changes%.") then return {} end
  local ok_removed = {["certSANs:"] = true, ["kubelet:"] = true, ["nodeIP:"] = true, ["validSubnets:"] = true,
                      ["cluster:"] = true, ["etcd:"] = true, ["advertisedSubnets:"] = true, ["---"] = true,
                      ["apiVersion: v1alpha1"] = true, ["kind: ExtensionServiceConfig"] = true,
                      ["name: tailscale"] = true, ["environment:"] = true}
  local removed, added = changes(diff)
  drop_empty_sans_pair(removed, added, false)
  local out = {}
  for _, l in ipairs(removed) do
    local body = trim(l)
    if not (body:match("^image: ") or ok_removed[body] or body:match("^%- TS_[%u_]+=") or body:match("^%- '?!?[%x:.]+/%d+'?$")
            or body:sub(1, #ts_name + 3) == "- " .. ts_name .. ".") then
      out[#out + 1] = "-" .. l
    end
  end
  for _, l in ipairs(added) do
    if not trim(l):match("^image: ") then out[#out + 1] = "+" .. l end
  end
  return out
end

--- The lines of a diff that a change does not explain, for any change
--- (the rollout's rollout_surprises is this with the tailscale lines;
--- rolling_upgrade.lua checks every node's diff with it). `expect` says
--- which changed lines are the change's own, trimmed of indentation:
--- `added`/`removed` exact lines, `added_like`/`removed_like` Lua
--- patterns, `image` (an install image line may change: the old one goes,
--- this one comes; true for any), `sans` (the certSANs: [] pair of a
--- first SAN added, or of the last removed). Environment values masked.
---@class configdiff.Expect
---@field added? string[]
---@field removed? string[]
---@field added_like? string[]
---@field removed_like? string[]
---@field image? string|boolean
---@field sans? "added"|"removed"
---@field empty_ok? boolean "No changes." is no surprise (default: it is one: the change is missing)
---@param diff string
---@param expect configdiff.Expect
---@return string[] surprises
function M.unexpected(diff, expect)
  if diff:match("^No changes%.") then
    return expect.empty_ok and {} or {"(no changes at all: the generated config lacks this run's changes)"}
  end
  local removed, added = changes(diff)
  if expect.sans then drop_empty_sans_pair(removed, added, expect.sans == "added") end
  local function ok(body, exact, like, sign)
    if body:match("^image: ") and expect.image then
      return sign == "-" or expect.image == true or body == "image: " .. expect.image
    end
    for _, l in ipairs(exact or {}) do if body == l then return true end end
    for _, p in ipairs(like or {}) do if body:match(p) then return true end end
    return false
  end
  local out = {}
  for _, l in ipairs(removed) do
    if not ok(trim(l), expect.removed, expect.removed_like, "-") then out[#out + 1] = "-" .. l end
  end
  for _, l in ipairs(added) do
    if not ok(trim(l), expect.added, expect.added_like, "+") then out[#out + 1] = "+" .. l end
  end
  return out
end

--- The lines an ExtensionServiceConfig document brings (or takes away):
--- its header, its environment items (values masked or not), and its
--- configFiles (each content line, trimmed, and its mountPath).
---@param entry {name:string, environment?:string[], configFiles?:table[]}
---@return string[] exact, string[] patterns
function M.esc_lines(entry)
  local exact = {"---", "apiVersion: v1alpha1", "kind: ExtensionServiceConfig", "name: " .. entry.name, "environment:",
                 "configFiles:"}
  local like = {"^%- [%a_][%w_]*=", "^%-? ?content: ?[|>]?[-+]?$"}
  for _, f in ipairs(entry.configFiles or {}) do
    exact[#exact + 1] = "mountPath: " .. tostring(f.mountPath)
    exact[#exact + 1] = "- mountPath: " .. tostring(f.mountPath)
    -- each content line, a ${VAR} in it standing for whatever talhelper
    -- substitutes (the diff shows the value)
    for line in tostring(f.content or ""):gmatch("[^\n]+") do
      local p = {}
      for lit, var in (trim(line) .. "${}"):gmatch("(.-)(%${[%w_]*})") do
        p[#p + 1] = lit:gsub("%p", "%%%0")
        if var ~= "${}" then p[#p + 1] = ".-" end
      end
      like[#like + 1] = "^" .. table.concat(p) .. "$"
      like[#like + 1] = "^%-? ?content: " .. table.concat(p) .. "$"     -- one line, written inline
    end
  end
  return exact, like
end

--- Surprises, masked and joined for an error message.
---@param lines string[]
---@return string
function M.show(lines)
  return M.mask(table.concat(lines, "\n"))
end

return M
