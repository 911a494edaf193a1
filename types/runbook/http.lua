---@meta runbook.http
local http = {}

---@class runbook.http.Request
---@field url string http:// or https:// only
---@field method? string default GET
---@field headers? table<string, string|runbook.Secret>
---@field body? string|runbook.Secret
---@field json? any encoded as the body, with Content-Type: application/json
---@field timeout? number seconds for the whole transfer (default 60)
---@field connect_timeout? number seconds (default 10)
---@field insecure? boolean skip TLS verification (logs a warning)
---@field cacert? string a CA bundle file
---@field bearer? string|runbook.Secret sent as Authorization: Bearer ...
---@field follow? boolean follow redirects
---@field max_body? integer bytes of response body kept, counted decoded (default 8 MiB; more: error kind too_large)
---@field check? boolean raise `http_status` unless 2xx

---@class runbook.http.Response
---@field status integer
---@field headers table<string, string> lower-case names
---@field body string secrets masked
---@field url string the final URL
local Response = {}
---@return any decoded body (errors name the URL)
function Response:json() end
---@return boolean 2xx
function Response:ok() end

--- One transfer (waits). Transport failures raise dns, connect, tls,
--- timeout or http (fields url, curl_code); statuses are results.
---@param req runbook.http.Request
---@return runbook.http.Response
function http.request(req) end

---@param url string
---@param req? runbook.http.Request
---@return runbook.http.Response
function http.get(url, req) end
---@param url string
---@param req? runbook.http.Request
---@return runbook.http.Response
function http.post(url, req) end
---@param url string
---@param req? runbook.http.Request
---@return runbook.http.Response
function http.put(url, req) end
---@param url string
---@param req? runbook.http.Request
---@return runbook.http.Response
function http.delete(url, req) end
---@param url string
---@param req? runbook.http.Request
---@return runbook.http.Response
function http.head(url, req) end

return http
