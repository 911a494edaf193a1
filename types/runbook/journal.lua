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
---@return runbook.journal.Record[] records, boolean finished, integer? torn_at
function journal.read(path) end

--- The steps recorded done and not undone since, by key, and their keys
--- in the order they finished.
---@param records runbook.journal.Record[]
---@return table<string, runbook.journal.Record> by_key, string[] order
function journal.steps(records) end

--- The steps a run was inside when its journal ends without their end (a
--- `begin` record with no `step` record of its key after it and no
--- `finish`), and those a `finish` names as still cut short (`cut`). By
--- step key.
---@param records runbook.journal.Record[]
---@return table<string, runbook.journal.Record>
function journal.interrupted(records) end

--- A record's key (its id for journals written before keys).
---@param rec runbook.journal.Record
---@return string?
function journal.key_of(rec) end

--- What differs between a journal's start record and a fingerprint
--- {runbook, script_sha256, vars_sha256} (nil: the same run).
---@param start runbook.journal.Record
---@param fingerprint table
---@return string?
function journal.differs(start, fingerprint) end

--- Whether the runbook's file changed since the journal began.
---@param start runbook.journal.Record
---@param fingerprint table
---@return boolean
function journal.script_changed(start, fingerprint) end

return journal
