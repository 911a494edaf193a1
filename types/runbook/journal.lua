---@meta runbook.journal
local journal = {}

---@class runbook.journal.Record
---@field type "start"|"begin"|"step"|"undo"|"resume"|"finish"
---@field id? string the step's identity "<phase>/<name>"
---@field key? string the step's stable key
---@field name? string
---@field phase? string
---@field result? any a step's result
---@field ok? boolean
---@field time number epoch seconds

--- Reads a journal; a torn last line is dropped, a corrupt record elsewhere
--- is refused (exit 2) naming the line.
---@param path string
---@return runbook.journal.Record[] records, boolean finished
function journal.read(path) end

--- The steps recorded done and not undone since, by key, and their keys
--- in the order they finished.
---@param records runbook.journal.Record[]
---@return table<string, runbook.journal.Record> by_key, string[] order
function journal.steps(records) end

--- A record's key (its id for journals written before keys).
---@param rec runbook.journal.Record
---@return string?
function journal.key_of(rec) end

return journal
