---@meta runbook.metrics
local metrics = {}
--- Adds a label to every series of the run's metrics (--metrics-file,
--- --pushgateway); a name given again replaces its value.
---@param name string a Prometheus label name ([A-Za-z_][A-Za-z0-9_]*)
---@param value any written as text
function metrics.label(name, value) end
return metrics
