-- runbook.error: error objects print as "kind: message" (a plain error as
-- its message alone), and errors.is tells them apart (docs/bindings.md).
local errors = require "runbook.error"
local t = require "runbook.testing"

function test_an_error_prints_as_kind_colon_message()
  t.eq(tostring(errors.new("fs", "read x: ENOENT")), "fs: read x: ENOENT")
  t.eq(tostring(errors.new("error", "plain words")), "plain words")
end

function test_fields_are_copied_and_is_tells_kinds_apart()
  local e = errors.new("http_status", "GET x returned 503", {status = 503})
  t.eq(e.kind, "http_status")
  t.eq(e.status, 503)
  t.eq(errors.is(e), true)
  t.eq(errors.is(e, "http_status"), true)
  t.eq(errors.is(e, "fs"), false)
  t.eq(errors.is("http_status: text"), false)
end
