-- runbook.testing itself: t.eq must tell integer from float at every depth,
-- or a decoder that turns `1` into `1.0` passes every test that reads it.
local t = require "runbook.testing"

local function refuses(actual, expected)
  local ok, err = pcall(t.eq, actual, expected)
  t.eq(ok, false, "t.eq(" .. t.show(actual) .. ", " .. t.show(expected) .. ") passed")
  return tostring(err)
end

function test_eq_tells_integer_from_float_at_the_top()
  refuses(1, 1.0)
  refuses(1.0, 1)
  t.eq(1, 1)
  t.eq(1.5, 1.5)
end

function test_eq_tells_integer_from_float_in_a_table()
  refuses({1}, {1.0})
  refuses({a = 1.0}, {a = 1})
  t.eq({a = 1, b = 2.5}, {a = 1, b = 2.5})
end

function test_eq_tells_integer_from_float_deep_down()
  local err = refuses({x = {y = {z = {1, 2, 3}}}}, {x = {y = {z = {1, 2, 3.0}}}})
  t.match(err, "3%.0", "the message shows the float")
  t.eq({x = {y = {z = {1, 2, 3}}}}, {x = {y = {z = {1, 2, 3}}}})
end

function test_deep_eq_agrees_with_eq()
  t.eq(t.deep_eq({n = 1}, {n = 1.0}), false)
  t.eq(t.deep_eq(2, 2.0), false)
  t.eq(t.deep_eq({n = 2}, {n = 2}), true)
end

function test_nan_equals_nan_but_not_a_number()
  local nan = 0 / 0
  t.eq(nan, nan)
  t.eq({v = nan}, {v = nan})
  refuses({v = nan}, {v = 0.0})
end

function test_eq_still_refuses_missing_and_extra_keys()
  refuses({a = 1}, {a = 1, b = 2})
  refuses({a = 1, b = 2}, {a = 1})
  refuses({}, 1)
end
