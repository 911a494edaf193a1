--- The part of kubectl's JSONPath templates the world answers
--- (k8s.io/client-go/util/jsonpath, as `kubectl get -o jsonpath=` runs it
--- with missing keys allowed, kubectl's default): text, {"..."} literals
--- with \t and \n, {.a.b} and {@.a.b} fields, {.a.b[*]} (a list's scalar
--- items, space-separated) and {range X[*]}...{end}.
--- A missing field prints nothing; a boolean or number prints as Go's
--- fmt does, an object or a list as compact JSON. Anything else (filters, slices, unions) is refused, so that
--- a runbook never leans on a template the world renders differently.
--- tests/lua/test_sim_jsonpath.lua checks it against the real kubectl
--- (`kubectl label --local -f FILE -o jsonpath=`, no server needed).

local json = require "runbook.json"

local M = {}

local function parse(tpl)
  local root = {kind = "seq"}
  local stack, i = {root}, 1
  local function add(node) local top = stack[#stack]; top[#top + 1] = node end
  while i <= #tpl do
    local open = tpl:find("{", i, true)
    if not open then add({kind = "text", text = tpl:sub(i)}); break end
    if open > i then add({kind = "text", text = tpl:sub(i, open - 1)}) end
    local close = tpl:find("}", open, true)
    if not close then return nil, "unclosed action in " .. tpl end
    local act = tpl:sub(open + 1, close - 1)
    local lit = act:match('^"(.*)"$')
    if lit then
      add({kind = "text", text = (lit:gsub("\\(.)", {t = "\t", n = "\n", ["\\"] = "\\", ['"'] = '"'}))})
    elseif act == "end" then
      if #stack == 1 then return nil, "{end} without {range} in " .. tpl end
      stack[#stack] = nil
    else
      local rng = act:match("^range%s+(.+)%[%*%]$")
      local each = not rng and act:match("^(@?%..+)%[%*%]$")
      local path = rng or each or act
      -- ".." is recursive descent, not a field: refused like the rest
      if not path:match("^@?[%.%w_%-]+$") or not path:match("^@?%.") or path:find("..", 1, true) then
        return nil, "the simulated kubectl does not render {" .. act .. "}"
      end
      local keys = {}
      for k in path:gmatch("[^%.@]+") do keys[#keys + 1] = k end
      if rng then
        local node = {kind = "range", keys = keys}
        add(node)
        stack[#stack + 1] = node
      else
        add({kind = each and "each" or "field", keys = keys})
      end
    end
    i = close + 1
  end
  if #stack > 1 then return nil, "{range} without {end} in " .. tpl end
  return root
end

local function get(v, keys)
  for _, k in ipairs(keys) do
    if type(v) ~= "table" then return nil end
    v = v[k]
  end
  return v
end

local function render(node, v, out)
  for _, c in ipairs(node) do
    if c.kind == "text" then out[#out + 1] = c.text
    elseif c.kind == "field" then
      -- an object or a list prints as compact JSON, keys sorted (kubectl
      -- v1.32.4: `{.data}` gives {"a":"b"}; the documentation's older
      -- "map[cpu:4]" is Go's fmt of the map, tests/corpus/kubectl/
      -- jsonpath-docs-examples-table.txt); Go's HTML escaping of <, >, &
      -- is not modelled
      local x = get(v, c.keys)
      if type(x) == "table" and x ~= json.null then out[#out + 1] = json.encode(x)
      elseif x ~= nil and type(x) ~= "table" and type(x) ~= "userdata" then out[#out + 1] = tostring(x) end
    elseif c.kind == "each" then
      -- client-go prints each result of a multi-valued path, one space between
      local list, words = get(v, c.keys), {}
      for _, x in ipairs(type(list) == "table" and list or {}) do
        if type(x) ~= "table" and type(x) ~= "userdata" then words[#words + 1] = tostring(x) end
      end
      out[#out + 1] = table.concat(words, " ")
    else
      local list = get(v, c.keys)
      for _, item in ipairs(type(list) == "table" and list or {}) do render(c, item, out) end
    end
  end
end

local cache = {}

--- The template compiled (cached by its text), or nil and why.
function M.compile(tpl)
  if cache[tpl] then return cache[tpl] end
  local t, err = parse(tpl)
  if t then cache[tpl] = t end
  return t, err
end

--- The text a compiled template prints for the value v.
function M.render(t, v)
  local out = {}
  render(t, v, out)
  return table.concat(out)
end

--- A template of the form {range .items[*]}BODY{end}: BODY compiled, for
--- rendering a list one item at a time (an item's text can be kept).
function M.items_body(t)
  if #t == 1 and t[1].kind == "range" and #t[1].keys == 1 and t[1].keys[1] == "items" then return t[1] end
end

return M
