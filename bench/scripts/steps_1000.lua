-- 1,000 journaled steps, each returning a value: the runbook side of an
-- Ansible playbook of 1,000 debug tasks
local rb = require "runbook"
for i = 1, 1000 do
  rb.step("step " .. i, function() return i end)
end
