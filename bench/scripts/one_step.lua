-- one journaled step: the runbook side of `ansible-playbook` running one task
local rb = require "runbook"
rb.step("say hello", function() return "hello" end)
