---@meta runbook.net
local net = {}

---@class runbook.net.Request
---@field method string
---@field path string
---@field headers table<string, string> lower-case names
---@field body string

---@class runbook.net.Conn
local Conn = {}
--- Writes the response and closes the connection.
---@param status integer
---@param headers? table<string, string>
---@param body? string
function Conn:respond(status, headers, body) end

---@class runbook.net.Server
local Server = {}
---@return integer
function Server:port() end
--- The next complete request and its connection (waits).
---@return runbook.net.Request, runbook.net.Conn
function Server:accept() end
function Server:close() end

--- A server on 127.0.0.1 or ::1 only; port 0 lets the OS choose.
---@param host "127.0.0.1"|"::1"
---@param port integer
---@return runbook.net.Server
function net.listen(host, port) end

return net
