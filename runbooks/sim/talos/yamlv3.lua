--- Go yaml.Marshal's text for Lua values: the emitter of gopkg.in/yaml.v3
--- v3.0.1 (encode.go, emitterc.go, resolve.go; Talos up to v1.11 through its
--- fork github.com/unix4ever/yaml, which adds RawYAML only: unconfirmed, the
--- fork was not readable here) and go.yaml.in/yaml/v4 v4.0.0-rc.3/rc.4 (Talos
--- v1.12, v1.13: same emitter, Marshal's defaults indent 4, no wrapping, no
--- compact sequences; multi-line strings that are all whitespace or shorter
--- than 2 bytes go double-quoted: yaml.go shouldUseLiteralStyle).
---
--- Only what a machine config holds: maps (ordered keys), lists, strings,
--- integers, floats, booleans, null. Block style, indent 4: a sequence inside
--- a map is indented (`key:\n    - a`), a map inside a sequence continues 2
--- columns after the dash (`- a: 1\n  b: 2`), nested levels align to the next
--- multiple of 4 (emitterc.go yaml_emitter_increase_indent); empty lists and
--- maps are `[]` and `{}`. Strings are plain unless the YAML resolver would
--- read them as another type, or a YAML 1.1 bool/base-60 float, then `"..."`;
--- plain text the emitter cannot hold plain goes `'...'`; text with a line
--- break goes literal (`|-`, `|`, `|+`), else double-quoted with escapes
--- (yaml_emitter_analyze_scalar / select_scalar_style).
local M = {}

local byte, sub, find, fmt = string.byte, string.sub, string.find, string.format
local concat = table.concat

local BEST = 4
local NULL = require("runbook.yaml").null

-- {==== the resolver (resolve.go) and encode.go's stringv ====

local RESOLVED = {}
for _, s in ipairs({"true", "True", "TRUE", "false", "False", "FALSE", "", "~", "null", "Null", "NULL",
                    ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                    "-.inf", "-.Inf", "-.INF", "<<", "-0", "-0.0"}) do
  RESOLVED[s] = true
end
local OLD_BOOL = {}
for _, s in ipairs({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO",
                    "off", "Off", "OFF"}) do
  OLD_BOOL[s] = true
end

local DAYS = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end

-- time.Parse of "2006-1-2" and the date-time layouts of resolve.go's
-- allowedTimestampFormats (range checks as time.Parse does them).
local function is_timestamp(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d?)%-(%d%d?)(.*)$")
  if not y then return false end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > DAYS[mo] or (mo == 2 and d == 29 and not leap(y)) then return false end
  if rest == "" then return true end
  local sep, h, mi, se, tail = rest:match("^([Tt ])(%d%d?):(%d%d?):(%d%d?)(.*)$")
  if not sep or tonumber(h) > 23 or tonumber(mi) > 59 or tonumber(se) > 59 then return false end
  tail = tail:gsub("^[.,]%d+", "", 1)
  if sep == " " then return tail == "" end
  if tail == "Z" then return true end
  local oh, om = tail:match("^[+-](%d%d):(%d%d)$")
  return oh ~= nil and tonumber(oh) <= 24 and tonumber(om) <= 60
end

-- strconv.ParseInt/ParseUint with base 0 (sign, 0x/0o/0b prefixes, a
-- leading 0 for octal), within 64 bits.
local function is_go_int(p)
  local sign, body = p:match("^([+-]?)(.+)$")
  local digits, maxlen
  local pre = body:sub(1, 2):lower()
  if pre == "0x" then digits, maxlen = body:sub(3):match("^%x+$"), 16
  elseif pre == "0o" then digits, maxlen = body:sub(3):match("^[0-7]+$"), 22
  elseif pre == "0b" then digits, maxlen = body:sub(3):match("^[01]+$"), 64
  elseif body:match("^0[0-7]+$") then digits, maxlen = body:sub(2), 22
  else
    digits = body:match("^%d+$")
    if not digits then return false end
    digits = digits:gsub("^0+", "")
    return #digits < 20 or (#digits == 20 and sign ~= "-" and digits <= "18446744073709551615")
  end
  if not digits then return false end
  digits = digits:gsub("^0+", "")
  if maxlen == 22 then return #digits < 22 or (#digits == 22 and digits:sub(1, 1) == "1") end
  return #digits <= maxlen
end

local function is_yaml_float(p)
  local m = p:gsub("^[-+]", "", 1)
  local mant = m:gsub("[eE][-+]?%d+$", "", 1)
  if not (mant:match("^%.%d+$") or mant:match("^%d+%.?%d*$")) then return false end
  local f = tonumber(p)
  return f ~= nil and f ~= math.huge and f ~= -math.huge
end

-- resolve("", s) gives !!str (resolve.go).
local function resolves_to_str(s)
  if RESOLVED[s] then return false end
  local c = byte(s, 1)
  if c == 46 then -- '.': strconv.ParseFloat
    if not s:match("^%.%d+$") and not s:match("^%.%d+[eE][-+]?%d+$") then return true end
    local f = tonumber(s)
    return f == math.huge
  end
  if not (c == 43 or c == 45 or (c >= 48 and c <= 57)) then return true end
  if is_timestamp(s) then return false end
  local p = s:gsub("_", "")
  if p == "" then return true end
  if is_go_int(p) then return false end
  return not is_yaml_float(p)
end
M.resolves_to_str = resolves_to_str

-- encode.go isBase60Float: ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
local function is_base60_float(s)
  if not find(s, ":", 1, true) then return false end
  local body = s:match("^[-+]?(%d[%d_]*:.*)$")
  if not body then return false end
  body = body:gsub("^[%d_]+", "", 1)
  local frac = body:find("%.[%d_]*$")
  if frac then body = body:sub(1, frac - 1) end
  for part in body:gmatch(":([^:]*)") do
    if not (part:match("^%d$") or part:match("^[0-5]%d$")) then return false end
  end
  return body:sub(1, 1) == ":"
end
M.is_base60_float = is_base60_float

-- }====

-- {==== yaml_emitter_analyze_scalar ====

local function is_break_cp(c) return c == 10 or c == 13 or c == 0x85 or c == 0x2028 or c == 0x2029 end
local function is_printable_cp(c)
  return c == 10 or (c >= 0x20 and c <= 0x7E) or (c >= 0xA0 and c <= 0xD7FF)
    or (c >= 0xE000 and c <= 0xFFFD and c ~= 0xFEFF)
end

local BLOCK_FIRST = {}
for ch in ("#,[]{}&*!|>'\"%@`"):gmatch(".") do BLOCK_FIRST[byte(ch)] = true end

-- The flags of analyze_scalar that select_scalar_style reads in block
-- context: multiline, block_plain, single_ok, block_ok.
local function analyze_slow(s)
  local cps = {}
  for _, c in utf8.codes(s) do cps[#cps + 1] = c end
  local n = #cps
  local block_ind = #s >= 3 and (sub(s, 1, 3) == "---" or sub(s, 1, 3) == "...")
  local breaks, special, tabs = false, false, false
  local lead_sp, lead_br, trail_sp, trail_br, br_sp, sp_br = false, false, false, false, false, false
  local prev_ws, prev_sp, prev_br = true, false, false
  for i = 1, n do
    local c, nx = cps[i], cps[i + 1]
    local followed_ws = nx == nil or nx == 32 or nx == 9
    if i == 1 then
      if BLOCK_FIRST[c] then block_ind = true
      elseif (c == 63 or c == 58 or c == 45) and followed_ws then block_ind = true end
    elseif c == 58 and followed_ws then block_ind = true
    elseif c == 35 and prev_ws then block_ind = true end
    if c == 9 then tabs = true
    elseif not is_printable_cp(c) then special = true end
    if c == 32 then
      if i == 1 then lead_sp = true end
      if i == n then trail_sp = true end
      if prev_br then br_sp = true end
      prev_sp, prev_br = true, false
    elseif is_break_cp(c) then
      breaks = true
      if i == 1 then lead_br = true end
      if i == n then trail_br = true end
      if prev_sp then sp_br = true end
      prev_sp, prev_br = false, true
    else
      prev_sp, prev_br = false, false
    end
    prev_ws = c == 32 or c == 9 or c == 0 or is_break_cp(c)
  end
  local plain = not (lead_sp or lead_br or trail_sp or trail_br or br_sp or sp_br or tabs or special or breaks
                     or block_ind)
  local single = not (br_sp or sp_br or tabs or special)
  local block = not (trail_sp or sp_br or special)
  return breaks, plain, single, block
end

local function analyze(s)
  if #s == 0 then return false, true, true, false end
  if find(s, "[^\32-\126]") then return analyze_slow(s) end
  -- printable ASCII only, no breaks, no tabs
  local c, last = byte(s, 1), byte(s, -1)
  local plain = not (c == 32 or last == 32 or BLOCK_FIRST[c] or sub(s, 1, 3) == "---" or sub(s, 1, 3) == "..."
                     or ((c == 63 or c == 58 or c == 45) and (#s == 1 or byte(s, 2) == 32))
                     or find(s, ": ", 2, true) or (#s > 1 and last == 58) or find(s, " #", 1, true))
  return false, plain, true, last ~= 32
end
M.analyze = analyze

-- }====

-- {==== the writer: emitterc.go's column / whitespace / indention ====

local out, n, column, whitespace, indention, indent, istack, idepth

local SPACES = setmetatable({}, {__index = function(t, k)
  local s = string.rep(" ", k)
  t[k] = s
  return s
end})

local function put(s, len)
  n = n + 1
  out[n] = s
  column = column + (len or #s)
end

local function put_break()
  n = n + 1
  out[n] = "\n"
  column = 0
  indention = true
end

local function write_indent()
  local ind = indent < 0 and 0 or indent
  if not indention or column > ind or (column == ind and not whitespace) then put_break() end
  if column < ind then put(SPACES[ind - column]) end
  whitespace = true
end

local function write_indicator(s, need_ws, is_ws, is_ind)
  if need_ws and not whitespace then put(" ") end
  put(s)
  whitespace = is_ws
  indention = indention and is_ind
end

local function increase_indent(flow, in_seq)
  idepth = idepth + 1
  istack[idepth] = indent
  if indent < 0 then indent = flow and BEST or 0
  elseif in_seq then indent = indent + 2
  else indent = BEST * ((indent + BEST) // BEST) end
end

local function pop_indent()
  indent = istack[idepth]
  idepth = idepth - 1
end

local function write_plain(s)
  if #s > 0 and not whitespace then put(" ") end
  put(s)
  if #s > 0 then whitespace = false end
  indention = false
end

local function write_single(s)
  write_indicator("'", true, false, false)
  put((s:gsub("'", "''")))
  write_indicator("'", false, false, false)
  whitespace, indention = false, false
end

local ESC = {[0] = "\\0", [7] = "\\a", [8] = "\\b", [9] = "\\t", [10] = "\\n", [11] = "\\v", [12] = "\\f",
             [13] = "\\r", [0x1b] = "\\e", [0x22] = '\\"', [0x5c] = "\\\\", [0x85] = "\\N", [0xA0] = "\\_",
             [0x2028] = "\\L", [0x2029] = "\\P"}

local function escape_cp(c)
  if ESC[c] then return ESC[c] end
  if c <= 0xFF then return fmt("\\x%02X", c) end
  if c <= 0xFFFF then return fmt("\\u%04X", c) end
  return fmt("\\U%08X", c)
end

local function write_double(s)
  write_indicator('"', true, false, false)
  if not find(s, "[^\32-\126]") and not find(s, '["\\]') then
    put(s)
  else
    local bom = sub(s, 1, 3) == "\239\187\191"
    local parts = {}
    for _, c in utf8.codes(s) do
      if bom or not is_printable_cp(c) or is_break_cp(c) or c == 0x22 or c == 0x5c then
        parts[#parts + 1] = escape_cp(c)
      else
        parts[#parts + 1] = utf8.char(c)
      end
    end
    put(concat(parts))
  end
  write_indicator('"', false, false, false)
  whitespace, indention = false, false
end

-- The chomping hint of a block scalar (yaml_emitter_write_block_scalar_hints).
local function block_hints(s)
  local first = utf8.codepoint(s, 1)
  local h = ""
  if first == 32 or is_break_cp(first) then h = tostring(BEST) end
  local cps = {}
  for _, c in utf8.codes(s) do cps[#cps + 1] = c end
  local last = cps[#cps]
  if not is_break_cp(last) then return h .. "-" end
  if #cps == 1 or is_break_cp(cps[#cps - 1]) then return h .. "+" end
  return h
end

local function write_literal(s)
  write_indicator("|", true, false, false)
  local h = block_hints(s)
  if h ~= "" then write_indicator(h, false, false, false) end
  whitespace = true
  -- each run of text starts a line (the emitter's `breaks`): indent it
  local i, len = 1, #s
  local multi = find(s, "[\194\226\r]") ~= nil
  while i <= len do
    local j, e = find(s, "\n", i, true)
    if multi then
      local a, b = find(s, "[\r]", i)
      if a and (not j or a < j) then j, e = a, b end
      for _, pat in ipairs({"\194\133", "\226\128\168", "\226\128\169"}) do
        a, b = find(s, pat, i, true)
        if a and (not j or a < j) then j, e = a, b end
      end
    end
    local stop = j and j - 1 or len
    if stop >= i then
      write_indent()
      local seg = sub(s, i, stop)
      put(seg, utf8.len(seg) or #seg)
      indention = false
    end
    if not j then break end
    if e == j and byte(s, j) == 10 then
      put_break()
    else
      n = n + 1
      out[n] = sub(s, j, e)
      column, indention = 0, true
    end
    i = e + 1
  end
end

-- }====

-- {==== nodes ====

local V4 = false

-- Whether every character of s is a Go unicode.IsSpace one.
local function is_space_only(s)
  for _, c in utf8.codes(s) do
    if not ((c >= 9 and c <= 13) or c == 32 or c == 0x85 or c == 0xA0 or c == 0x1680 or (c >= 0x2000 and c <= 0x200A)
            or c == 0x2028 or c == 0x2029 or c == 0x202F or c == 0x205F or c == 0x3000) then
      return false
    end
  end
  return true
end

-- stringv's style, then select_scalar_style's fallbacks.
local function compute_style(s, simple_key)
  if find(s, "[\128-\255]") and not utf8.len(s) then
    error("yamlv3: a string that is not UTF-8 (Go writes it as !!binary base64: not modelled): " .. fmt("%q", s), 0)
  end
  local multiline, plain_ok, single_ok, block_ok = analyze(s)
  local style
  if find(s, "\n", 1, true) then
    style = "literal"
    if V4 and (#s < 2 or is_space_only(s)) then style = "double" end
  elseif resolves_to_str(s) and not OLD_BOOL[s] and not is_base60_float(s) then
    style = "plain"
  else
    style = "double"
  end
  if simple_key and multiline then style = "double" end
  if style == "plain" and (not plain_ok or (#s == 0 and simple_key)) then style = "single" end
  if style == "single" and not single_ok then style = "double" end
  if style == "literal" and (not block_ok or simple_key) then style = "double" end
  return style, multiline
end

-- The styles of strings seen before (fleets repeat them), per v4 and
-- simple_key; multi-line ones in MULTI. Emptied when large.
local function new_cache()
  return {[false] = {[false] = {}, [true] = {}}, [true] = {[false] = {}, [true] = {}}}
end
local cache, multi, cached = new_cache(), new_cache(), 0

local function string_style(s, simple_key)
  local hit = cache[V4][simple_key][s]
  if hit then return hit, multi[V4][simple_key][s] ~= nil end
  local style, multiline = compute_style(s, simple_key)
  if cached > 20000 then cache, multi, cached = new_cache(), new_cache(), 0 end
  cached = cached + 1
  cache[V4][simple_key][s] = style
  if multiline then multi[V4][simple_key][s] = true end
  return style, multiline
end

local function write_string(s, style, in_seq)
  if style == "plain" then write_plain(s)
  elseif style == "single" then write_single(s)
  elseif style == "double" then write_double(s)
  else
    increase_indent(true, in_seq)
    write_literal(s)
    pop_indent()
  end
end

local function go_float(x)
  if x ~= x then return ".nan" end
  if x == math.huge then return ".inf" end
  if x == -math.huge then return "-.inf" end
  if x == 0 then return (1 / x < 0) and "-0" or "0" end
  local e
  for p = 0, 16 do
    e = fmt("%." .. p .. "e", x)
    if tonumber(e) == x then break end
  end
  local sign, d1, rest, ex = e:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = d1 .. rest
  local exp = tonumber(ex)
  if exp < -4 or exp >= 6 then
    local m = #digits > 1 and (d1 .. "." .. rest) or d1
    local ae = math.abs(exp)
    return fmt("%s%se%s%s%d", sign, m, exp < 0 and "-" or "+", ae < 10 and "0" or "", ae)
  end
  local dp = exp + 1
  if dp <= 0 then return sign .. "0." .. string.rep("0", -dp) .. digits end
  if dp >= #digits then return sign .. digits .. string.rep("0", dp - #digits) end
  return sign .. sub(digits, 1, dp) .. "." .. sub(digits, dp + 1)
end
M.go_float = go_float

local function scalar_text(v)
  local tv = type(v)
  if tv == "string" then return nil, v end
  if v == nil or v == NULL then return "null" end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "number" then
    if math.type(v) == "integer" then return fmt("%d", v) end
    return go_float(v)
  end
  if tv == "userdata" then
    local mt = getmetatable(v)
    if mt and mt.__name == "runbook.secret" then return nil, tostring(v) end
    return "null"
  end
  error("yamlv3: cannot encode a " .. tv, 0)
end

local shape_of
local function binding_key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == "number" end
  if ta == "boolean" then return not a and b end
  return a < b
end

-- The keys of map t in the binding's order (luaval.c lv_push_keys): its
-- order list (keys still present), then the others sorted.
local function map_keys(t, mt)
  local keys, nk = {}, 0
  local list = mt and mt.__runbook_shape == "map" and rawlen(mt) > 0 and mt or nil
  if list then
    for i = 1, #list do
      local k = list[i]
      if rawget(t, k) ~= nil then
        nk = nk + 1
        keys[nk] = k
      end
    end
  end
  local total = 0
  for _ in next, t do total = total + 1 end
  if total == nk then return keys, nk end
  local seen, ordered = {}, nk
  for i = 1, nk do seen[keys[i]] = true end
  for k in next, t do
    if not seen[k] then
      nk = nk + 1
      keys[nk] = k
    end
  end
  local rest = table.move(keys, ordered + 1, nk, 1, {})
  table.sort(rest, binding_key_less)
  table.move(rest, 1, #rest, ordered + 1, keys)
  return keys, nk
end

-- "seq" (with its length) or "map" as the binding decides (luaval.c lv_is_sequence).
function shape_of(t)
  local mt = getmetatable(t)
  local mark = mt and mt.__runbook_shape
  if mark == "map" then return "map", 0, mt end
  local count, max = 0, 0
  for k in next, t do
    if math.type(k) ~= "integer" or k < 1 then return "map", 0, mt end
    if k > max then max = k end
    count = count + 1
  end
  if count ~= max then return "map", 0, mt end
  if count == 0 then return mark == "seq" and "seq" or "map", 0, mt end
  return "seq", count, mt
end

local emit_node

-- A map key: (text of a non-string, nil) or (nil, the string).
local function emit_key(k)
  if type(k) == "string" then return nil, k end
  return scalar_text(k)
end

local function emit_scalar_value(v, in_seq, simple_key)
  local text, str = scalar_text(v)
  if text then
    write_plain(text)
    return
  end
  local style = string_style(str, simple_key)
  write_string(str, style, in_seq)
end

local function emit_map(t, mt, in_seq)
  local keys, nk = map_keys(t, mt)
  increase_indent(false, in_seq)
  for i = 1, nk do
    local k = keys[i]
    write_indent()
    local text, str = emit_key(k)
    if text then
      write_plain(text)
      write_indicator(":", false, false, false)
    else
      local style, multiline = string_style(str, true)
      if not multiline and #str <= 128 then
        write_string(str, style, false)
        write_indicator(":", false, false, false)
      else
        write_indicator("?", true, false, true)
        write_string(str, (string_style(str, false)), false)
        write_indent()
        write_indicator(":", true, false, true)
      end
    end
    emit_node(t[k], false)
  end
  pop_indent()
end

local function emit_seq(t, len, in_seq)
  increase_indent(false, in_seq)
  for i = 1, len do
    write_indent()
    write_indicator("-", true, false, true)
    emit_node(t[i], true)
  end
  pop_indent()
end

function emit_node(v, in_seq)
  if type(v) ~= "table" then return emit_scalar_value(v, in_seq, false) end
  local shape, len, mt = shape_of(v)
  if shape == "seq" then
    if len == 0 then
      write_indicator("[", true, true, false)
      write_indicator("]", false, false, false)
    else
      emit_seq(v, len, in_seq)
    end
  elseif next(v) == nil then
    write_indicator("{", true, true, false)
    write_indicator("}", false, false, false)
  else
    emit_map(v, mt, in_seq)
  end
end

-- }====

--- The text of yaml.Marshal(value) (one document, ending in a newline).
--- opts.v4: go.yaml.in/yaml/v4's rule for multi-line strings (Talos v1.12+).
function M.marshal(value, opts)
  V4 = opts and opts.v4 or false
  out, n, column, whitespace, indention, indent, istack, idepth = {}, 0, 0, true, true, -1, {}, 0
  emit_node(value, false)
  indent = -1
  write_indent()
  local text = concat(out)
  out = nil
  return text
end

--- Documents as Talos's container.EncodeBytes writes them: each one
--- marshalled, joined by "---\n".
function M.marshal_all(docs, opts)
  local parts = {}
  for i, d in ipairs(docs) do parts[i] = M.marshal(d, opts) end
  return concat(parts, "---\n")
end

return M
