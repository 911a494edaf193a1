--- The unified diffs machined prints for `apply-config --dry-run`
--- (pkg/machinery/config/configdiff): ported line for line, since the hunks
--- they choose differ from GNU diff's.
--- * v1.8-v1.12: github.com/hexops/gotextdiff (myers/diff.go ComputeEdits,
---   unified.go ToUnified, counts left out when 1 or 0, "\ No newline at end
---   of file"), printed by configdiff.outputDiff; v1.8.x and v1.9.x printed
---   the closing " @@\n" to machined's own stdout (cyan.Printf), so the first
---   hunk line follows the header on the same line (fixed by f35b58779,
---   v1.10.0).
--- * v1.13: github.com/neticdk/go-stdlib v1.0.1 diff/myers (linear-space
---   Myers; LCS under 10 lines) with its UnifiedFormatter (always "-a,n +b,m"),
---   via pkg/machinery/textdiff (75,000-line limit).
local M = {}

local fmt = string.format

-- strings.SplitAfter(text, "\n") without a last empty piece.
local function split_after(text)
  local lines = {}
  for line in text:gmatch("[^\n]*\n?") do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

-- {==== gotextdiff (hexops/gotextdiff, myers/diff.go) ====

local function shortest_edit_sequence(a, b)
  local m, n = #a, #b
  local V, offset, trace = {}, n + m, {}
  for i = 0, 2 * (n + m) do V[i] = 0 end
  for d = 0, n + m do
    for k = -d, d, 2 do
      local x
      if k == -d or (k ~= d and V[k - 1 + offset] < V[k + 1 + offset]) then x = V[k + 1 + offset]
      else x = V[k - 1 + offset] + 1 end
      local y = x - k
      while x < m and y < n and a[x + 1] == b[y + 1] do x = x + 1; y = y + 1 end
      V[k + offset] = x
      if x == m and y == n then
        trace[d] = table.move(V, 0, 2 * (n + m), 0, {})
        return trace, offset, d
      end
    end
    trace[d] = table.move(V, 0, 2 * (n + m), 0, {})
  end
end

local function backtrack(trace, last, x, y, offset)
  local snakes = {}
  local d = last
  while x > 0 and y > 0 and d > 0 do
    local V = trace[d]
    snakes[d] = {x, y}
    local k = x - y
    local kprev
    if k == -d or (k ~= d and V[k - 1 + offset] < V[k + 1 + offset]) then kprev = k + 1 else kprev = k - 1 end
    x = V[kprev + offset]
    y = x - kprev
    d = d - 1
  end
  if x < 0 or y < 0 then return snakes, last end
  snakes[d] = {x, y}
  return snakes, last
end

-- operations(): {kind = "delete"|"insert", i1, i2, j1, content}
local function operations(a, b)
  if #a == 0 and #b == 0 then return {} end
  local trace, offset, last = shortest_edit_sequence(a, b)
  local snakes = backtrack(trace, last, #a, #b, offset)
  local M_, N = #a, #b
  local sol, x, y = {}, 0, 0
  local function add(op, i2, j2)
    if not op then return end
    op.i2 = i2
    if op.kind == "insert" then op.content = table.move(b, op.j1 + 1, j2, 1, {}) end
    sol[#sol + 1] = op
  end
  for d = 0, last do
    local snake = snakes[d]
    if snake then
      local op
      while snake[1] - snake[2] > x - y do
        op = op or {kind = "delete", i1 = x, j1 = y}
        x = x + 1
        if x == M_ then break end
      end
      add(op, x, y)
      op = nil
      while snake[1] - snake[2] < x - y do
        op = op or {kind = "insert", i1 = x, j1 = y}
        y = y + 1
      end
      add(op, x, y)
      while x < snake[1] do x = x + 1; y = y + 1 end
      if x >= M_ and y >= N then break end
    end
  end
  return sol
end

-- ComputeEdits: line edits {start, stop (0-based lines of a), text}, sorted stably.
local function compute_edits(a, b)
  local edits = {}
  for _, op in ipairs(operations(a, b)) do
    if op.kind == "delete" then edits[#edits + 1] = {start = op.i1, stop = op.i2, text = ""}
    else
      local content = table.concat(op.content)
      if content ~= "" then edits[#edits + 1] = {start = op.i1, stop = op.i2, text = content} end
    end
  end
  for i = 2, #edits do                         -- SortTextEdits: stable, by start then end
    local e, j = edits[i], i - 1
    while j >= 1 and (edits[j].start > e.start or (edits[j].start == e.start and edits[j].stop > e.stop)) do
      edits[j + 1] = edits[j]; j = j - 1
    end
    edits[j + 1] = e
  end
  return edits
end

-- lineEdits (diff.go): when an edit starts at the end of the text, edits that
-- touch are joined into one (its deletions then come before its insertions).
local function line_edits(edits, nlines)
  local partial = false
  for _, e in ipairs(edits) do if e.start >= nlines then partial = true end end
  if not partial then return edits end
  local out, cur = {}, nil
  for _, e in ipairs(edits) do
    if cur and e.start <= cur.stop then
      cur = {start = cur.start, stop = e.stop, text = cur.text .. e.text}
    else
      if cur then out[#out + 1] = cur end
      cur = e
    end
  end
  out[#out + 1] = cur
  return out
end

local EDGE, GAP = 3, 6

local function add_equal(h, lines, from, to)
  local delta = 0
  for i = from, to - 1 do
    if i >= 0 then
      if i >= #lines then return delta end
      h.lines[#h.lines + 1] = {" ", lines[i + 1]}
      delta = delta + 1
    end
  end
  return delta
end

-- ToUnified: hunks {from_line, to_line, lines = {{mark, text}}}.
local function to_unified(content, edits)
  local hunks, lines = {}, split_after(content)
  local h, last, to_line = nil, 0, 0
  for _, e in ipairs(edits) do
    local start, stop = e.start, e.stop
    if h and start == last then          -- luacheck: ignore 542 (direct extension)
    elseif h and start <= last + GAP then add_equal(h, lines, last, start)
    else
      if h then add_equal(h, lines, last, last + EDGE); hunks[#hunks + 1] = h end
      to_line = to_line + start - last
      h = {from_line = start + 1, to_line = to_line + 1, lines = {}}
      local delta = add_equal(h, lines, start - EDGE, start)
      h.from_line, h.to_line = h.from_line - delta, h.to_line - delta
    end
    last = start
    for i = start, stop - 1 do h.lines[#h.lines + 1] = {"-", lines[i + 1]}; last = last + 1 end
    if e.text ~= "" then
      for _, l in ipairs(split_after(e.text)) do h.lines[#h.lines + 1] = {"+", l}; to_line = to_line + 1 end
    end
  end
  if h then add_equal(h, lines, last, last + EDGE); hunks[#hunks + 1] = h end
  return hunks
end

local function range(n, line)
  return n > 1 and fmt("%d,%d", line, n) or tostring(line)
end

-- configdiff.outputDiff with colour off; broken_header: v1.8/v1.9's lost " @@\n".
local function format_gotextdiff(hunks, broken_header, from, to)
  if #hunks == 0 then return "" end
  local out = {fmt("--- %s\n+++ %s\n", from or "a", to or "b")}
  for _, h in ipairs(hunks) do
    local nfrom, nto = 0, 0
    for _, l in ipairs(h.lines) do
      if l[1] ~= "+" then nfrom = nfrom + 1 end
      if l[1] ~= "-" then nto = nto + 1 end
    end
    out[#out + 1] = fmt("@@ -%s +%s%s", range(nfrom, h.from_line), range(nto, h.to_line), broken_header and "" or " @@\n")
    for _, l in ipairs(h.lines) do
      out[#out + 1] = l[1] .. l[2]
      if l[2]:sub(-1) ~= "\n" then out[#out + 1] = "\n\\ No newline at end of file\n" end
    end
  end
  return table.concat(out)
end

--- gotextdiff's line edits {start, stop, text} (0-based lines of a).
function M.gotextdiff_edits(a, b)
  local al = split_after(a)
  return line_edits(compute_edits(al, split_after(b)), #al)
end

--- gotextdiff's unified diff of two texts ("" when equal); from/to name
--- the files (configdiff: "a", "b").
function M.gotextdiff(a, b, broken_header, from, to)
  if a == b then return "" end
  local al = split_after(a)
  local edits = line_edits(compute_edits(al, split_after(b)), #al)
  return format_gotextdiff(to_unified(a, edits), broken_header, from, to)
end

-- }====

-- {==== neticdk/go-stdlib v1.0.1 diff/myers (linear space) ====

local function split_lines(s)
  if s == "" then return {} end
  local lines = {}
  for line in (s:sub(-1) == "\n" and s or s .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  return lines
end

-- diffcore.ComputeEditsLCS over a[a0+1..a1], b[b0+1..b1]: {{kind, text}}.
local function edits_lcs(a, a0, a1, b, b0, b1, out)
  local n, m = a1 - a0, b1 - b0
  local dp = {}
  for i = 0, n do dp[i] = {}; for j = 0, m do dp[i][j] = 0 end end
  for i = 1, n do
    for j = 1, m do
      if a[a0 + i] == b[b0 + j] then dp[i][j] = dp[i - 1][j - 1] + 1
      else dp[i][j] = math.max(dp[i - 1][j], dp[i][j - 1]) end
    end
  end
  local pairs_ = {}
  local i, j = n, m
  while i > 0 and j > 0 do
    if a[a0 + i] == b[b0 + j] then table.insert(pairs_, 1, {i - 1, j - 1}); i = i - 1; j = j - 1
    elseif dp[i - 1][j] > dp[i][j - 1] then i = i - 1
    else j = j - 1 end
  end
  local ai, bi = 0, 0
  for _, p in ipairs(pairs_) do
    while ai < p[1] do out[#out + 1] = {"-", a[a0 + ai + 1]}; ai = ai + 1 end
    while bi < p[2] do out[#out + 1] = {"+", b[b0 + bi + 1]}; bi = bi + 1 end
    out[#out + 1] = {" ", a[a0 + ai + 1]}; ai = ai + 1; bi = bi + 1
  end
  while ai < n do out[#out + 1] = {"-", a[a0 + ai + 1]}; ai = ai + 1 end
  while bi < m do out[#out + 1] = {"+", b[b0 + bi + 1]}; bi = bi + 1 end
  return out
end

local function forward_pass(c, d)
  local vf, vr = c.vf, c.vr
  for k = -d, d, 2 do
    local idx = c.offset + k
    if idx >= 0 and idx < c.size then
      local right = k > -d and idx - 1 >= 0 and vf[idx - 1] ~= -1
      local down = k < d and idx + 1 < c.size and vf[idx + 1] ~= -1
      local x, skip
      if not right and down then x = vf[idx + 1]
      elseif right and not down then x = vf[idx - 1] + 1
      elseif right and down then x = math.max(vf[idx - 1] + 1, vf[idx + 1])
      elseif idx ~= c.offset or d ~= 0 then skip = true
      else x = vf[idx] end
      if not skip then
        if x > c.n then x = c.n end
        local y = x - k
        if y >= 0 and y <= c.m then
          local sx, sy = x, y
          while c.follow(x, y) do x = x + 1; y = y + 1 end
          vf[idx] = x
          if c.delta % 2 ~= 0 and k >= c.delta - (d - 1) and k <= c.delta + (d - 1) and vr[idx] >= 0 and x >= vr[idx] then
            return {sx = c.a0 + sx, sy = c.b0 + sy, ex = c.a0 + x, ey = c.b0 + y, len = x - sx}
          end
        end
      end
    end
  end
end

local function reverse_pass(c, d)
  local vf, vr = c.vf, c.vr
  for krev = -d, d, 2 do
    local k = krev + c.delta
    local idx = c.offset + k
    if idx >= 0 and idx < c.size then
      local left = k > -d + c.delta and idx - 1 >= 0 and vr[idx - 1] ~= -1
      local up = k < d + c.delta and idx + 1 < c.size and vr[idx + 1] ~= -1
      local x
      if not left and up then x = vr[idx + 1] - 1
      elseif left and not up then x = vr[idx - 1]
      elseif left and up then x = math.min(vr[idx - 1], vr[idx + 1] - 1) end
      if x then
        if x < 0 then x = 0 end
        local y = x - k
        if y >= 0 and y <= c.m then
          local ex, ey = x, y
          while x > 0 and y > 0 and c.follow(x - 1, y - 1) do x = x - 1; y = y - 1 end
          vr[idx] = x
          if c.delta % 2 == 0 and k >= -d and k <= d and vf[idx] >= 0 and vf[idx] >= x then
            return {sx = c.a0 + x, sy = c.b0 + y, ex = c.a0 + ex, ey = c.b0 + ey, len = ex - x}
          end
        end
      end
    end
  end
end

local function middle_snake(a, a0, a1, b, b0, b1)
  local n, m = a1 - a0, b1 - b0
  local none = {sx = a0, sy = b0, ex = a0, ey = b0, len = 0}
  if n == 1 or m == 1 then
    for i = 0, n - 1 do
      for j = 0, m - 1 do
        if a[a0 + i + 1] == b[b0 + j + 1] then return {sx = a0 + i, sy = b0 + j, ex = a0 + i + 1, ey = b0 + j + 1, len = 1} end
      end
    end
    return none
  end
  local maxd, delta = (n + m + 1) // 2, n - m
  local size, offset = 2 * maxd + 1, maxd
  if delta > 0 then size = size + delta elseif delta < 0 then size = size - delta; offset = offset - delta end
  local c = {n = n, m = m, a0 = a0, b0 = b0, delta = delta, size = size, offset = offset, vf = {}, vr = {}}
  for i = 0, size - 1 do c.vf[i] = -1; c.vr[i] = -1 end
  c.vf[offset] = 0
  if offset + delta < 0 or offset + delta > size then return none end
  c.vr[offset + delta] = n
  c.follow = function(x, y) return x >= 0 and y >= 0 and x < n and y < m and a[a0 + x + 1] == b[b0 + y + 1] end
  for d = 0, maxd do
    local s = forward_pass(c, d) or reverse_pass(c, d)
    if s then return s end
  end
  return none
end

local function linear(a, a0, a1, b, b0, b1, depth, out)
  local n, m = a1 - a0, b1 - b0
  if n < 0 or m < 0 then return out end
  if n == 0 then for i = 1, m do out[#out + 1] = {"+", b[b0 + i]} end return out end
  if m == 0 then for i = 1, n do out[#out + 1] = {"-", a[a0 + i]} end return out end
  if depth >= 30 or (n < 10 and m < 10) then return edits_lcs(a, a0, a1, b, b0, b1, out) end
  local pre = 0
  while pre < n and pre < m and a[a0 + pre + 1] == b[b0 + pre + 1] do pre = pre + 1 end
  local suf = 0
  while suf < n - pre and suf < m - pre and a[a1 - suf] == b[b1 - suf] do suf = suf + 1 end
  if pre > 0 or suf > 0 then
    for i = 1, pre do out[#out + 1] = {" ", a[a0 + i]} end
    linear(a, a0 + pre, a1 - suf, b, b0 + pre, b1 - suf, depth + 1, out)
    for i = 1, suf do out[#out + 1] = {" ", a[a1 - suf + i]} end
    return out
  end
  local s = middle_snake(a, a0, a1, b, b0, b1)
  linear(a, a0, s.sx, b, b0, s.sy, depth + 1, out)
  for i = 1, s.len do out[#out + 1] = {" ", a[s.sx + i]} end
  return linear(a, s.ex, a1, b, s.ey, b1, depth + 1, out)
end

-- calculateChunkRanges with 3 context lines: {first, last} (1-based, inclusive).
local function chunk_ranges(edits)
  local changes = {}
  for i, e in ipairs(edits) do if e[1] ~= " " then changes[#changes + 1] = i end end
  if #changes == 0 then return {{1, #edits}} end
  local groups, cur = {}, {changes[1], changes[1]}
  for i = 2, #changes do
    if changes[i] - changes[i - 1] <= 6 then cur[2] = changes[i] else groups[#groups + 1] = cur; cur = {changes[i], changes[i]} end
  end
  groups[#groups + 1] = cur
  local ranges = {}
  for _, g in ipairs(groups) do
    local r = {math.max(1, g[1] - 3), math.min(#edits, g[2] + 3)}
    local prev = ranges[#ranges]
    if prev and r[1] <= prev[2] then prev[2] = math.max(prev[2], r[2]) else ranges[#ranges + 1] = r end
  end
  return ranges
end

local function header(edits, r)
  local a, b = 1, 1
  for i = 1, r[1] - 1 do
    if edits[i][1] ~= "+" then a = a + 1 end
    if edits[i][1] ~= "-" then b = b + 1 end
  end
  local alen, blen = 0, 0
  for i = r[1], r[2] do
    if edits[i][1] ~= "+" then alen = alen + 1 end
    if edits[i][1] ~= "-" then blen = blen + 1 end
  end
  if alen == 0 and a > 0 then a = a - 1 end
  if blen == 0 and b > 0 then b = b - 1 end
  return fmt("@@ -%d,%d +%d,%d @@\n", a, alen, b, blen)
end

--- The edit script neticdk's linear-space Myers makes: {{" "|"-"|"+", line}}.
function M.neticdk_edits(a, b)
  local al, bl = split_lines(a), split_lines(b)
  return linear(al, 0, #al, bl, 0, #bl, 0, {})
end

--- pkg/machinery/textdiff.Diff of v1.13 ("" when equal).
function M.neticdk(a, b)
  if a == b then return "" end
  local _, na = a:gsub("\n", "")
  local _, nb = b:gsub("\n", "")
  if na + nb > 75000 then return fmt("@@ -%d,%d +%d,%d @@ diff too large to display\n", 1, na, 1, nb) end
  local edits = M.neticdk_edits(a, b)
  local out = {"--- a\n+++ b\n"}
  for _, r in ipairs(chunk_ranges(edits)) do
    out[#out + 1] = header(edits, r)
    for i = r[1], r[2] do out[#out + 1] = edits[i][1] .. edits[i][2] .. "\n" end
  end
  return table.concat(out)
end

-- }====

--- configdiff's diff of two encoded configs at minor version v ("" when equal).
function M.config_diff(a, b, v)
  if v >= 13 then return M.neticdk(a, b) end
  return M.gotextdiff(a, b, v <= 9)
end

return M
