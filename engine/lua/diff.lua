--- runbook.diff: unified diffs of two texts (line based, LCS), for the
--- dry-run plan and the run report.
local M = {}

local function split(s)
  local t = {}
  if s == nil or s == "" then return t end
  for line in (s:sub(-1) == "\n" and s or s .. "\n"):gmatch("(.-)\n") do t[#t + 1] = line end
  return t
end

--- The dynamic-programming LCS over a[alo..ahi] and b[blo..bhi] (both
--- short: the gaps between anchors), appended to ops.
local function lcs(a, alo, ahi, b, blo, bhi, ops)
  local an, bm = ahi - alo + 1, bhi - blo + 1
  if an * bm > 4e6 then            -- too big for LCS: replace the middle whole
    for i = alo, ahi do ops[#ops + 1] = {"-", a[i]} end
    for j = blo, bhi do ops[#ops + 1] = {"+", b[j]} end
    return
  end
  local L = {}
  for i = an + 1, 1, -1 do
    local row, below = {}, L[i + 1]
    L[i] = row
    for j = bm + 1, 1, -1 do
      if i > an or j > bm then row[j] = 0
      elseif a[alo + i - 1] == b[blo + j - 1] then row[j] = below[j + 1] + 1
      else
        local d, r = below[j], row[j + 1]
        row[j] = d > r and d or r
      end
    end
  end
  local i, j = 1, 1
  while i <= an or j <= bm do
    if i <= an and j <= bm and a[alo + i - 1] == b[blo + j - 1] then
      ops[#ops + 1] = {" ", a[alo + i - 1]}; i, j = i + 1, j + 1
    elseif i <= an and (j > bm or L[i + 1][j] >= L[i][j + 1]) then
      ops[#ops + 1] = {"-", a[alo + i - 1]}; i = i + 1      -- deletions first, as diff -u
    else
      ops[#ops + 1] = {"+", b[blo + j - 1]}; j = j + 1
    end
  end
end

--- The lines found exactly once in a[alo..ahi] and once in b[blo..bhi],
--- as pairs {i, j} in a's order, reduced to the longest run increasing in
--- j too (patience sorting): the anchors both texts agree on.
local function anchors(a, alo, ahi, b, blo, bhi)
  local count = {}
  for i = alo, ahi do
    local l = a[i]
    count[l] = (count[l] or 0) + 1
  end
  local inb, bat = {}, {}
  for j = blo, bhi do
    local l = b[j]
    if count[l] == 1 then inb[l] = (inb[l] or 0) + 1; bat[l] = j end
  end
  local pairs_ = {}
  for i = alo, ahi do
    local l = a[i]
    if count[l] == 1 and inb[l] == 1 then pairs_[#pairs_ + 1] = {i, bat[l]} end
  end
  -- longest increasing subsequence of the j's: piles with back links
  local tops, back = {}, {}
  for k, p in ipairs(pairs_) do
    local lo, hi = 1, #tops
    while lo <= hi do
      local mid = (lo + hi) // 2
      if pairs_[tops[mid]][2] < p[2] then lo = mid + 1 else hi = mid - 1 end
    end
    tops[lo] = k
    back[k] = lo > 1 and tops[lo - 1] or nil
  end
  local rev, k = {}, tops[#tops]
  while k do rev[#rev + 1] = pairs_[k]; k = back[k] end
  local out = {}
  for i = #rev, 1, -1 do out[#out + 1] = rev[i] end
  return out
end

--- Appends to ops the edit script turning a[alo..ahi] into b[blo..bhi]:
--- common prefix and suffix first, then the lines unique to both as
--- anchors (patience diff, as `git diff --patience`), each gap between
--- them diffed the same way, down to the quadratic LCS on what has none.
--- A file's few changed lines cost about its length, not its length squared.
local function script(a, alo, ahi, b, blo, bhi, ops)
  while alo <= ahi and blo <= bhi and a[alo] == b[blo] do
    ops[#ops + 1] = {" ", a[alo]}; alo, blo = alo + 1, blo + 1
  end
  local tail = {}
  while alo <= ahi and blo <= bhi and a[ahi] == b[bhi] do
    tail[#tail + 1] = a[ahi]; ahi, bhi = ahi - 1, bhi - 1
  end
  if alo > ahi or blo > bhi then
    for i = alo, ahi do ops[#ops + 1] = {"-", a[i]} end
    for j = blo, bhi do ops[#ops + 1] = {"+", b[j]} end
  else
    local list = anchors(a, alo, ahi, b, blo, bhi)
    if #list == 0 then lcs(a, alo, ahi, b, blo, bhi, ops)
    else
      local i, j = alo, blo
      for _, p in ipairs(list) do
        script(a, i, p[1] - 1, b, j, p[2] - 1, ops)
        ops[#ops + 1] = {" ", a[p[1]]}
        i, j = p[1] + 1, p[2] + 1
      end
      script(a, i, ahi, b, j, bhi, ops)
    end
  end
  for k = #tail, 1, -1 do ops[#ops + 1] = {" ", tail[k]} end
end

--- Unified diff of old and new text (nil means the file does not exist),
--- with `context` lines around each change (default 3). "" when equal.
function M.unified(old, new, path, context)
  context = context or 3
  local a, b, ops = split(old), split(new), {}
  script(a, 1, #a, b, 1, #b, ops)
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
