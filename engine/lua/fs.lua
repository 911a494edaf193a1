--- runbook.fs: local files. Real runs call the C functions directly; in a
--- dry-run every change lands in an in-memory overlay that later reads see,
--- and changes() lists what the run would have written, for the plan.
local args = require "runbook.args"
local core = require "runbook.fs.core"
local sys = require "runbook.sys"
local diff = require "runbook.diff"

local M = {}

local dry_run = sys.options().dry_run
local overlay = {}          -- path -> {data = string|false (removed), mode = n}
local original = {}         -- path -> content before the first change (false: absent)
local order = {}            -- paths in the order they were first changed
local dirs = {}             -- directories created in the overlay

local recorded = {}        -- path -> true once it is in `order`

local function remember(path)
  if recorded[path] then return end
  recorded[path] = true
  if original[path] == nil then
    original[path] = core.exists(path) and core.read(path) or false
  end
  order[#order + 1] = path
end

--- The path as the overlay keys it: "./a//b/./c" and "a/b/c" are one file.
local function norm(path)
  local p = path:gsub("//+", "/")
  repeat local before = p; p = p:gsub("/%./", "/") until p == before
  p = p:gsub("^%./", ""):gsub("/%.$", "")
  return p ~= "" and p or "."
end

--- Dry-run only: makes `path` exist in the overlay with `content`, as the
--- starting state (the simulated world provides files this way); it is not
--- a change of the run.
function M.seed(path, content)
  if not dry_run then error("fs.seed is only available in a dry-run", 2) end
  path = norm(path)
  overlay[path] = {data = content, mode = 420}
  original[path] = content
end

local function check_path(fname, path)
  if type(path) ~= "string" or path == "" then
    args.error(1, fname, "path expected, got " .. type(path), 4)
  end
  return norm(path)
end

--- The whole content of a file. opts.max: refuse a file of more bytes.
function M.read(path, opts)
  path = check_path("read", path)
  local o = overlay[path]
  if o then
    if o.data == false then
      error(require("runbook.error").new("fs", ("read %s: ENOENT: no such file or directory (removed in this dry-run)"):format(path),
                                         {errno = "ENOENT", path = path}), 2)
    end
    if opts and opts.max and #o.data > opts.max then
      error(require("runbook.error").new("fs", ("read %s: more than %d bytes, too large for this input"):format(path, opts.max),
                                         {path = path}), 2)
    end
    return o.data
  end
  return core.read(path, opts)
end

--- Writes atomically (temp file, fsync, rename, fsync of the directory).
--- opts.mode sets the permission bits (an existing file keeps its own);
--- opts.backup keeps the previous file as NAME.bak.<UTC time>. Returns the
--- backup path or nil.
function M.write(path, data, opts)
  path = check_path("write", path)
  args.check(2, "write", data, "string")
  args.check(3, "write", opts, "?table")
  if not dry_run then return core.write(path, data, opts) end
  remember(path)
  -- the modes core.write gives: opts.mode, else the existing file's, else
  -- 0600 (bindings/fs.c fs_write), so that a rehearsal's plan says what a
  -- real run would make
  local mode = opts and opts.mode
  if not mode then
    local st = overlay[path] or (core.exists(path) and core.stat(path))
    mode = st and st.mode or tonumber("600", 8)
  end
  overlay[path] = {data = data, mode = mode}
  if opts and opts.backup and original[path] then
    return path .. ".bak.(dry-run)"
  end
  return nil
end

function M.exists(path)
  path = check_path("exists", path)
  local o = overlay[path]
  if o then return o.data ~= false end
  if dirs[path] then return true end
  return core.exists(path)
end

function M.stat(path)
  path = check_path("stat", path)
  local o = overlay[path]
  if o then
    if o.data == false then return nil, path .. ": ENOENT: no such file or directory (dry-run)" end
    return {type = "file", size = #o.data, mode = o.mode, mtime = require("runbook.time").now()}
  end
  if dirs[path] then return {type = "directory", size = 0, mode = 493, mtime = 0} end
  return core.stat(path)
end

function M.list(dir)
  dir = check_path("list", dir)
  local names, seen = {}, {}
  if core.exists(dir) then
    for _, n in ipairs(core.list(dir)) do names[#names + 1] = n; seen[n] = true end
  elseif not dirs[dir] then
    core.list(dir)             -- raises the real error
  end
  if dry_run then
    local prefix = dir:gsub("/+$", "") .. "/"
    for p, o in pairs(overlay) do
      if p:sub(1, #prefix) == prefix and not p:sub(#prefix + 1):find("/") then
        local n = p:sub(#prefix + 1)
        if o.data == false and seen[n] then
          for i, v in ipairs(names) do if v == n then table.remove(names, i); break end end
        elseif o.data ~= false and not seen[n] then names[#names + 1] = n end
      end
    end
    table.sort(names)
  end
  return names
end

function M.mkdir_p(path, mode)
  path = check_path("mkdir_p", path)
  if not dry_run then return core.mkdir_p(path, mode) end
  if not core.exists(path) then dirs[path] = true end
end

function M.remove(path)
  path = check_path("remove", path)
  if not dry_run then return core.remove(path) end
  if dirs[path] then dirs[path] = nil; return end          -- a directory this dry-run made
  local st = core.exists(path) and core.stat(path)
  if st and st.type == "directory" then return end         -- a real directory: nothing of it is in the plan
  if M.exists(path) then
    remember(path)                                         -- made and removed: changes() leaves it out
    overlay[path] = {data = false}
  end
end

M.tmpdir = core.tmpdir

--- What the run changed (or, in a dry-run, would have changed), in order:
--- {path, before (nil: absent), after (nil: removed), mode}.
function M.changes()
  local out = {}
  for _, path in ipairs(order) do
    local o = overlay[path]
    local before, after = original[path] or nil, o and o.data or nil
    if before ~= after then
      out[#out + 1] = {path = path, before = before, after = after, mode = o and o.mode}
    end
  end
  return out
end

--- Records a change made for real (so that the report can show it).
function M.record(path, before, after)
  if not recorded[path] then
    recorded[path] = true
    if original[path] == nil then original[path] = before or false end
    order[#order + 1] = path
  end
  overlay[path] = overlay[path] or {}
  if not dry_run then overlay[path] = {data = after, mode = nil} end
end

--- Unified diff of one change, secrets masked.
function M.diff(change)
  return sys.mask(diff.unified(change.before, change.after, change.path))
end

return M
