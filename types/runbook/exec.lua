---@meta runbook.exec
local exec = {}

---@class runbook.exec.Opts
---@field env? table<string, string|runbook.Secret> added to (or overriding) the engine's environment
---@field clear_env? boolean start from an empty environment
---@field cwd? string working directory
---@field stdin? string|runbook.Secret written to the child's stdin, then closed
---@field timeout? number seconds (0: none); then SIGTERM to the group, SIGKILL after grace
---@field grace? number seconds between SIGTERM and SIGKILL (default 5)
---@field max_output? integer bytes kept per stream (default 16 MiB)
---@field on_line? fun(line:string, stream:"stdout"|"stderr", piece:boolean) piece: more of this line follows
---@field max_line? integer bytes of a line on_line gets at a time (default 1 MiB)
---@field check? boolean raise `exit` on a non-zero exit or a signal
---@field allow_timeout? boolean return the result with timed_out = true instead of raising
---@field quiet? boolean no exec events

---@class runbook.exec.Result
---@field code integer? nil when the child died of a signal
---@field signal integer? the signal's number
---@field stdout string secrets masked
---@field stderr string secrets masked
---@field duration number seconds
---@field timed_out boolean
---@field stdout_dropped integer bytes beyond max_output
---@field stderr_dropped integer
---@field pid integer

--- Runs argv[1] (looked up on PATH), never through a shell (waits).
--- Errors: spawn (field program), timeout (field result), exit (with check).
--- A secret in argv is refused: pass it in env or stdin.
---@param argv (string|number)[]
---@param opts? runbook.exec.Opts
---@return runbook.exec.Result
function exec.run(argv, opts) end

---@param name string
---@return string? path
function exec.which(name) end

--- argv quoted as an operator would type it.
---@param argv string[]
---@return string
function exec.show_argv(argv) end

return exec
