---@meta runbook.fs
local fs = {}

---@class runbook.fs.Change
---@field path string
---@field before string? nil: a new file
---@field after string? nil: removed
---@field mode integer?

---@class runbook.fs.Stat
---@field type "file"|"directory"|"link"|"other"
---@field size integer
---@field mode integer
---@field mtime number

--- The whole content. Errors: fs (fields errno, path); with opts.max, a
--- file holding more than max bytes is refused before it is all read.
---@param path string
---@param opts? {max?: integer}
---@return string
function fs.read(path, opts) end

--- Atomic write (temp file, fsync, rename, fsync of the directory). An
--- existing file keeps its mode unless mode is given (new files: 0600, since what a runbook writes may hold run details).
---@param path string
---@param data string
---@param opts? {mode?: integer, backup?: boolean}
---@return string? backup the path of NAME.bak.<UTC time> when backup = true
function fs.write(path, data, opts) end

---@param path string
---@return boolean
function fs.exists(path) end

---@param path string
---@return runbook.fs.Stat?, string? message
function fs.stat(path) end

---@param dir string
---@return string[] sorted names
function fs.list(dir) end

---@param path string
---@param mode? integer default 0755
function fs.mkdir_p(path, mode) end

--- A file or an empty directory; a missing path is no error.
---@param path string
function fs.remove(path) end

---@param prefix? string
---@return string
function fs.tmpdir(prefix) end

--- What the run changed (in a dry-run: would have), in order.
---@return runbook.fs.Change[]
function fs.changes() end

--- Unified diff of one change, secrets masked.
---@param change runbook.fs.Change
---@return string
function fs.diff(change) end

--- Dry-run only: path exists in the overlay as part of the starting state.
---@param path string
---@param content string
function fs.seed(path, content) end

return fs
