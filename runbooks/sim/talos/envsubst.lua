--- envsubst as talhelper runs it: github.com/a8m/envsubst v1.4.3
--- (talhelper v3.1.16 go.mod; v1.4.2 before, the same parser),
--- BytesRestricted(text, noUnset = true, noEmpty = true), after the YAML's
--- comments are stripped (budimanjojo/talhelper pkg/substitute/envsubst.go,
--- SubstituteEnvFromByte). Pure: no file, no process environment.
---
--- The syntax (a8m/envsubst parse/lex.go, parse/parse.go, parse/node.go):
--- `$NAME` and `${NAME}` (NAME: letters, digits, `_`; a lone `$_` is text),
--- `$$` is a literal `$`, `${NAME-def}` / `${NAME=def}` (def when unset),
--- `${NAME:-def}` / `${NAME:=def}` (def when unset or empty: the variable's
--- own restriction error is ignored there), `${NAME+alt}` / `${NAME:+alt}`
--- (alt when set, else empty). A default that starts with `$NAME` is that
--- variable (its remainder dropped); any other default is the rest of the
--- text up to `}` as written. A `${` whose `}` is not on the same line is
--- the error "closing brace expected". The parser stops at the first error
--- (Mode Quick): "variable ${NAME} not set", "variable ${NAME} set but empty".
local M = {}

local function alnum(c) return c ~= "" and c:match("^[%w_]$") ~= nil end

--- Lexes s into items {typ, val} as a8m/envsubst's lexer does.
local function lex(s)
  local items, i, start, n = {}, 1, 1, #s
  local function emit(typ, val) items[#items + 1] = {typ = typ, val = val} end
  local function flush(upto) if upto >= start then emit("text", s:sub(start, upto)) end end
  while i <= n do
    if s:sub(i, i) ~= "$" then i = i + 1
    else
      flush(i - 1); start = i
      local nx = s:sub(i + 1, i + 1)
      if nx == "$" then emit("text", "$"); i = i + 2; start = i
      elseif nx == "{" then
        local j = i + 2
        local name = s:match("^[%w_]+", j)
        emit("left", "${")
        if name then
          emit("var", name); j = j + #name
          local op = s:match("^:[-=+]", j) or s:match("^[-=+]", j)
          if op then emit("op", op); j = j + #op end
        end
        -- the rest up to "}" (on this line); a "$NAME" there is a variable
        local close = j
        while close <= n and not s:sub(close, close):match("[}\r\n]") do close = close + 1 end
        if close > n or s:sub(close, close) ~= "}" then emit("error", "closing brace expected"); return items end
        local body = s:sub(j, close - 1)
        if body ~= "" then
          local v = body:match("^%$([%w_]+)")
          if v and v ~= "_" then emit("var", v); if #v + 1 < #body then emit("text", body:sub(#v + 2)) end
          else emit("text", body) end
        end
        emit("right", "}"); i = close + 1; start = i
      elseif alnum(nx) then
        local name = s:match("^[%w_]+", i + 1)
        if name == "_" then i = i + 2      -- "$_" stays text
        else emit("var", name); i = i + 1 + #name; start = i end
      else i = i + 1 end
    end
  end
  flush(n)
  return items
end

--- The value of variable `name`, with talhelper's restrictions.
local function var(env, name, quiet)
  local v = env(name)
  if v == nil then return nil, ("variable ${%s} not set"):format(name) end
  if v == "" and not quiet then return nil, ("variable ${%s} set but empty"):format(name) end
  return v
end

local function substitution(env, name, op, def_var, def_text)
  local function default()
    if def_var then return var(env, def_var) end
    return def_text or ""
  end
  if op and (def_var or def_text) then
    if op == ":-" or op == ":=" then
      local v = var(env, name, true)
      if v ~= nil and v ~= "" then return v end
      return default()
    elseif op == "+" or op == ":+" then
      if env(name) ~= nil then return default() end
      return ""
    elseif env(name) == nil then
      return default()
    end
  end
  return var(env, name)
end

--- Parses one `${...}` starting at items[k] (the "left" item); returns the
--- text and the index after it, or nil and the error.
local function action(items, k, env)
  local name = items[k + 1].val
  local op, def_var, def_text
  local j = k + 2
  while items[j] and items[j].typ ~= "right" do
    local it = items[j]
    if it.typ == "op" then op = it.val
    elseif it.typ == "var" then def_var = it.val
    elseif it.typ == "text" then def_text = it.val; def_var = nil end
    j = j + 1
  end
  local v, err = substitution(env, name, op, def_var, def_text)
  return v, err, j + 1
end

--- s with its variables substituted from env(name) -> value|nil, or nil
--- and the first error.
---@param s string
---@param env fun(name:string):string?
---@return string? text, string? err
function M.substitute(s, env)
  local items = lex(s)
  local out, k = {}, 1
  for _, it in ipairs(items) do if it.typ == "error" then return nil, it.val end end
  while k <= #items do
    local it = items[k]
    if it.typ == "var" then
      local v, err = var(env, it.val)
      if v == nil then return nil, err end
      out[#out + 1] = v; k = k + 1
    elseif it.typ == "left" and items[k + 1] and items[k + 1].typ == "var" then
      local v, err, nk = action(items, k, env)
      if v == nil then return nil, err end
      out[#out + 1] = v; k = nk
    else
      out[#out + 1] = it.val; k = k + 1
    end
  end
  return table.concat(out)
end

-- {====== comments

--- The position of a line's comment (`#` at its start or after a blank,
--- outside quotes), or nil.
local function comment_at(line)
  local q, i = nil, 1
  while i <= #line do
    local c = line:sub(i, i)
    if q then
      if c == q then
        if q == "'" and line:sub(i + 1, i + 1) == "'" then i = i + 1 else q = nil end
      elseif c == "\\" and q == '"' then i = i + 1 end
    elseif c == "#" and (i == 1 or line:sub(i - 1, i - 1):match("%s")) then return i
    elseif (c == '"' or c == "'") and (i == 1 or line:sub(i - 1, i - 1):match("[%s:%-%[{,]")) then q = c end
    i = i + 1
  end
end

--- The text with its YAML comments removed. talhelper decodes the YAML
--- and encodes it again without comments (yaml.v3, v3.0.6 and later; a
--- regular expression before): this keeps the text and drops each
--- comment, block scalars' content excepted, which is what matters for
--- the substitution (a `${VAR}` in a comment is not substituted, so not
--- required). The re-encoding's other changes (indentation) are not made.
---@param text string
---@return string
function M.strip_comments(text)
  local out, block = {}, nil
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    local indent = #line:match("^ *")
    if block and (line:match("^%s*$") or indent > block) then
      out[#out + 1] = line
    else
      block = nil
      local at = comment_at(line)
      if at then line = line:sub(1, at - 1):gsub("%s+$", "") end
      if line:match("[:%-]%s+[|>][%-+0-9]*%s*$") or line:match("^%s*[|>][%-+0-9]*%s*$") then block = indent end
      out[#out + 1] = line
    end
  end
  local s = table.concat(out, "\n")
  if text:sub(-1) == "\n" then s = s .. "\n" end
  return s
end

-- }======

--- talhelper's SubstituteEnvFromByte: comments stripped, then envsubst
--- with noUnset and noEmpty.
---@param text string
---@param env fun(name:string):string?
---@return string? text, string? err
function M.substitute_yaml(text, env)
  return M.substitute(M.strip_comments(text), env)
end

-- {====== talenv files (godotenv v1.5.1)

local function unquote(v)
  local q = v:sub(1, 1)
  if (q == '"' or q == "'") and #v >= 2 and v:sub(-1) == q then
    v = v:sub(2, -2)
    if q == '"' then v = v:gsub("\\n", "\n"):gsub('\\(["\\])', "%1") end
    return v
  end
  return (v:gsub("%s+#.*$", ""):gsub("%s+$", ""))
end

--- The variables of a talenv file as talhelper loads them: its `---`
--- lines dropped (talhelper issue #220), then godotenv.Unmarshal, which
--- reads `KEY: value` and `KEY=value` lines (an optional `export `), `#`
--- comments, quoted values. godotenv's multi-line values and `${}`
--- expansion inside values are not modelled (unconfirmed beyond these).
---@param text string
---@return table name -> value, and a list of the names in file order
function M.parse_env_file(text)
  local vars, names = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    if not line:match("^%s*#") and not line:match("^%-%-%-%s*$") then
      local k, v = line:match("^%s*export%s+([%a_][%w_.]*)%s*[=:]%s*(.-)%s*$")
      if not k then k, v = line:match("^%s*([%a_][%w_.]*)%s*[=:]%s*(.-)%s*$") end
      if k then
        if vars[k] == nil then names[#names + 1] = k end
        vars[k] = unquote(v)
      end
    end
  end
  return vars, names
end

-- }======

return M
