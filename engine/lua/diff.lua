--- runbook.diff: unified diffs of two texts (line based, LCS), for the
--- dry-run plan and the run report.
local M = {}

local function split(s)
  local t = {}
  if s == nil or s == "" then return t end
  for line in (s:sub(-1) == "\n" and s or s .. "\n"):gmatch("(.-)\n") do t[#t + 1] = line end
  return t
end

--- Edit script between line lists a and b: a list of {op, line} with op
--- " ", "-" or "+". Common prefix and suffix are trimmed first, so the
--- quadratic LCS only runs over the changed middle.
local function script(a, b)
  local n, m = #a, #b
  local pre = 0
  while pre < n and pre < m and a[pre + 1] == b[pre + 1] do pre = pre + 1 end
  local suf = 0
  while suf < n - pre and suf < m - pre and a[n - suf] == b[m - suf] do suf = suf + 1 end
  local ops = {}
  for i = 1, pre do ops[#ops + 1] = {" ", a[i]} end
  local an, bm = n - pre - suf, m - pre - suf
  if an * bm > 4e6 then            -- too big for LCS: replace the middle whole
    for i = 1, an do ops[#ops + 1] = {"-", a[pre + i]} end
    for j = 1, bm do ops[#ops + 1] = {"+", b[pre + j]} end
  else
    local L = {}
    for i = an + 1, 1, -1 do
      L[i] = {}
      for j = bm + 1, 1, -1 do
        if i > an or j > bm then L[i][j] = 0
        elseif a[pre + i] == b[pre + j] then L[i][j] = L[i + 1][j + 1] + 1
        else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
      end
    end
    local i, j = 1, 1
    while i <= an or j <= bm do
      if i <= an and j <= bm and a[pre + i] == b[pre + j] then
        ops[#ops + 1] = {" ", a[pre + i]}; i, j = i + 1, j + 1
      elseif i <= an and (j > bm or L[i + 1][j] >= L[i][j + 1]) then
        ops[#ops + 1] = {"-", a[pre + i]}; i = i + 1      -- deletions first, as diff -u
      else
        ops[#ops + 1] = {"+", b[pre + j]}; j = j + 1
      end
    end
  end
  for i = n - suf + 1, n do ops[#ops + 1] = {" ", a[i]} end
  return ops
end

--- Unified diff of old and new text (nil means the file does not exist),
--- with `context` lines around each change (default 3). "" when equal.
function M.unified(old, new, path, context)
  context = context or 3
  local ops = script(split(old), split(new))
  local buf = {}
  local i = 1
  local oline, nline = 1, 1
  -- positions of every op in old/new numbering
  local pos = {}
  for k, op in ipairs(ops) do
    pos[k] = {oline, nline}
    if op[1] ~= "+" then oline = oline + 1 end
    if op[1] ~= "-" then nline = nline + 1 end
  end
  while i <= #ops do
    if ops[i][1] == " " then i = i + 1
    else
      local s = math.max(1, i - context)
      local e = i
      while true do    -- extend the hunk while changes are within 2*context
        local k = e
        while k <= #ops and ops[k][1] ~= " " do k = k + 1 end
        local nxt = k
        while nxt <= #ops and ops[nxt][1] == " " do nxt = nxt + 1 end
        if nxt <= #ops and nxt - k <= 2 * context then e = nxt
        else e = math.min(#ops, k - 1 + context); break end
      end
      local oc, nc = 0, 0
      for k = s, e do
        if ops[k][1] ~= "+" then oc = oc + 1 end
        if ops[k][1] ~= "-" then nc = nc + 1 end
      end
      local os_, ns = pos[s][1], pos[s][2]
      if oc == 0 then os_ = os_ - 1 end
      if nc == 0 then ns = ns - 1 end
      buf[#buf + 1] = ("@@ -%d,%d +%d,%d @@"):format(os_, oc, ns, nc)
      for k = s, e do buf[#buf + 1] = ops[k][1] .. ops[k][2] end
      i = e + 1
    end
  end
  if #buf == 0 then return "" end
  local head = {("--- %s"):format(old and ("a/" .. (path or "file")) or "/dev/null"),
                ("+++ %s"):format(new and ("b/" .. (path or "file")) or "/dev/null")}
  return table.concat(head, "\n") .. "\n" .. table.concat(buf, "\n") .. "\n"
end

return M
