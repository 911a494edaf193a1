--- .gitignore matching as talhelper does it: github.com/sabhiram/go-gitignore
--- at 525f6e181f06 (talhelper v3.x go.mod), ignore.go getPatternFromLine and
--- MatchesPathHow. Each line becomes a Go regular expression; the last
--- matching pattern decides, a `!` line only un-ignoring what an earlier one
--- ignored. Its quirks are kept: `?` matches a literal "?", a line is
--- trimmed of spaces, `#` lines are comments. The regular expression is
--- run here by expanding its alternations into Lua patterns; other regular
--- expression syntax in a line ("+", "(", "|", "{") is taken literally
--- (unconfirmed: Go would read it as syntax).
local M = {}

local MAGIC = "\1"

--- The go-gitignore regular expression of one line, or nil; and whether
--- the line negates.
local function regex_of(line)
  line = line:gsub("\r+$", "")
  if line:sub(1, 1) == "#" then return nil end
  line = line:gsub("^ +", ""):gsub(" +$", "")
  if line == "" then return nil end
  local negate = false
  if line:sub(1, 1) == "!" then negate = true; line = line:sub(2) end
  if line:match("^[#!]") then line = line:sub(2) end
  if line:match("[^/+]/.*%*%.") and line:sub(1, 1) ~= "/" then line = "/" .. line end
  line = line:gsub("%.", "\\.")
  if line:sub(1, 4) == "/**/" then line = line:sub(2) end
  line = line:gsub("/%*%*/", "(/|/.+/)")
  line = line:gsub("%*%*/", "(|." .. MAGIC .. "/)")
  line = line:gsub("/%*%*", "(|/." .. MAGIC .. ")")
  line = line:gsub("\\%*", "\\" .. MAGIC)
  line = line:gsub("%*", "([^/]*)")
  line = line:gsub("%?", "\\?")
  line = line:gsub(MAGIC, "*")
  local expr = line:sub(-1) == "/" and (line .. "(|.*)$") or (line .. "(|/.*)$")
  if expr:sub(1, 1) == "/" then expr = "^(|/)" .. expr:sub(2) else expr = "^(|.*/)" .. expr end
  return expr, negate
end
M.regex_of = regex_of

--- The alternation-free variants of a regular expression whose groups hold
--- no nested groups: "(a|b)c" -> {"ac", "bc"}.
local function expand(expr)
  local s, e, body = expr:find("%(([^()]*)%)")
  if not s then return {expr} end
  local out = {}
  for alt in (body .. "|"):gmatch("([^|]*)|") do
    for _, rest in ipairs(expand(expr:sub(1, s - 1) .. alt .. expr:sub(e + 1))) do out[#out + 1] = rest end
  end
  return out
end

--- A Go regular expression without groups as a Lua pattern.
local function lua_pattern(re)
  local out, i = {}, 1
  while i <= #re do
    local c = re:sub(i, i)
    if c == "\\" then
      local nx = re:sub(i + 1, i + 1)
      out[#out + 1] = nx:match("%w") and nx or ("%" .. nx); i = i + 2
    elseif c == "[" then
      local close = re:find("]", i + 2, true) or #re
      out[#out + 1] = re:sub(i, close):gsub("%%", "%%%%"); i = close + 1
    elseif c == "^" and i == 1 or c == "$" and i == #re or c == "." or c == "*" or c == "+" then
      out[#out + 1] = c; i = i + 1
    else
      out[#out + 1] = c:match("%w") and c or ("%" .. c); i = i + 1
    end
  end
  return table.concat(out)
end

--- Compiles a .gitignore's text: a list of {patterns, negate, line}.
---@param text string
function M.compile(text)
  local rules = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local re, negate = regex_of(line)
    if re then
      local pats = {}
      for _, alt in ipairs(expand(re)) do pats[#pats + 1] = lua_pattern(alt) end
      -- a plain name (letters, digits, "-", "_", "."): its expression
      -- matches exactly the paths with a component equal to it
      local plain = line:gsub("\r+$", ""):gsub("^ +", ""):gsub(" +$", "")
      rules[#rules + 1] = {patterns = pats, negate = negate, line = line,
                           plain = plain:match("^[%w_%-%.]+$") and plain or nil}
    end
  end
  return rules
end

-- The rules indexed (extended when rules were appended since): the last
-- index of each plain name's rule, and the other rules' indexes.
local function index_of(rules)
  local ix = rules.index
  if not ix then ix = {plain = {}, others = {}, n = 0}; rules.index = ix end
  for i = ix.n + 1, #rules do
    local r = rules[i]
    if r.plain and not r.negate then ix.plain[r.plain] = i else ix.others[#ix.others + 1] = i end
  end
  ix.n = #rules
  return ix
end

-- Whether compiled rules ignore `name`: the last rule that matches
-- decides (a `!` rule un-ignores). A plain name's rule matches when a
-- component of the path is that name; the others are tried from the last.
local function matches_rules(rules, name)
  local ix, last = index_of(rules), 0
  for part in (name .. "/"):gmatch("([^/]*)/") do
    local i = ix.plain[part]
    if i and i > last then last = i end
  end
  for k = #ix.others, 1, -1 do
    local i = ix.others[k]
    if i < last then break end
    for _, p in ipairs(rules[i].patterns) do
      if name:match(p) then return not rules[i].negate end
    end
  end
  return last > 0
end

--- Whether go-gitignore's MatchesPath says `name` is ignored by `text`.
---@param text string the .gitignore
---@param name string a path relative to it
---@return boolean
local last_text, last_rules     -- the last text compiled by matches: a caller asks of one file name after name

function M.matches(text, name)
  if text ~= last_text then last_text, last_rules = text, M.compile(text) end
  return matches_rules(last_rules, name)
end

--- What talhelper leaves in the .gitignore after genconfig
--- (pkg/config/gitignore.go): for each file name in turn, the file is
--- read again and the name appended (name .. "\n", O_APPEND: after a last
--- line without a newline too) unless a pattern already ignores it.
--- The rules are compiled once and each appended name's added to them:
--- the answers of compiling the grown text for every name, in one pass.
---@param text string? the .gitignore now (nil: none)
---@param names string[] the nodes' file names, then "talosconfig"
---@return string
function M.append(text, names)
  text = text or ""
  local rules, added = M.compile(text), {}
  local joined = text ~= "" and text:sub(-1) ~= "\n"      -- the first name completes the last line
  for _, n in ipairs(names) do
    if not matches_rules(rules, n) then
      added[#added + 1] = n .. "\n"
      if joined then rules, joined = M.compile(text .. n .. "\n"), false
      else for _, r in ipairs(M.compile(n .. "\n")) do rules[#rules + 1] = r end end
    end
  end
  return text .. table.concat(added)
end

return M
