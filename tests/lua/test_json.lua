-- runbook.json: RFC 8259 grammar cases with their exact values, streams,
-- encoding rules and errors.
local json = require "runbook.json"
local t = require "runbook.testing"
local null = json.null

function test_rfc8259_values()
  local cases = {
    {'{}', {}}, {'[]', {}}, {'null', null}, {'true', true}, {'false', false},
    {'0', 0}, {'-0', 0}, {'123', 123}, {'-1', -1}, {'1.5', 1.5}, {'-0.0', -0.0},
    {'1e3', 1000.0}, {'1E+2', 100.0}, {'-1.5e-3', -0.0015}, {'2.5E0', 2.5},
    {'""', ""}, {'"a\\"b\\\\c\\/d"', 'a"b\\c/d'}, {'"\\b\\f\\n\\r\\t"', "\b\f\n\r\t"},
    {'"\\u00e9"', "é"}, {'"\\ud83d\\ude00"', "😀"}, {'"é"', "é"},
    {' [ 1 , "x" , null ] ', {1, "x", null}},
    {'{"a":{"b":[{"c":[]}]}}', {a = {b = {{c = {}}}}}},
  }
  for _, c in ipairs(cases) do
    t.eq(json.decode(c[1]), c[2], c[1])
  end
  t.eq(math.type(json.decode("123")), "integer")
  t.eq(math.type(json.decode("123.0")), "float")
  t.eq(math.type(json.decode("1e2")), "float")
  t.eq(json.decode("9223372036854775807"), math.maxinteger)
end

function test_rfc8259_invalid_texts_are_refused()
  local bad = {'', '01', '1.', '.5', '+1', '[1,]', '{"a":1,}', "{'a':1}", '[NaN]', '[Infinity]',
               '"\t"', '"abc', '{"a" 1}', '[1 2]', 'tru', '"\\x41"', '{a:1}', '[1]]', '"\\ud800"'}
  for _, s in ipairs(bad) do
    local ok, err = pcall(json.decode, s)
    t.eq(ok, false, "should refuse " .. ("%q"):format(s))
    t.eq(err.kind, "json")
  end
end

function test_errors_give_name_line_and_column()
  local err = t.raises(json.decode, '{\n  "a": 1,\n  "b": tru\n}', {name = "status.json"})
  t.match(tostring(err), "^json: status%.json:3:%d+: ")
  t.eq(err.line, 3)
end

function test_duplicate_keys_are_refused()
  t.raises("duplicate object key", json.decode, '{"a":1,"a":2}')
end

function test_integer_beyond_int64_is_refused()
  t.raises("too big", json.decode, "99999999999999999999")
end

function test_decode_all_reads_a_talosctl_stream()
  local stream = [[
{
    "node": "192.168.10.11",
    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "0"},
    "spec": {"image": "tailscale.sqsh", "metadata": {"name": "tailscale", "version": "1.82.0"}}
}
{
    "node": "192.168.10.11",
    "metadata": {"namespace": "runtime", "type": "ExtensionStatuses.runtime.talos.dev", "id": "1"},
    "spec": {"image": "", "metadata": {"name": "schematic", "version": "4a0d65c6"}}
}
]]
  local vs = json.decode_all(stream)
  t.eq(#vs, 2)
  t.eq(vs[1].spec.metadata.name, "tailscale")
  t.eq(vs[2].spec.metadata.version, "4a0d65c6")
  t.eq(json.decode_all(""), {})
  t.eq(json.decode_all("1 2 [3]"), {1, 2, {3}})
  local err = t.raises(json.decode_all, '{"a":1}\n{"a":2}\n{"a": }\n', {name = "s.json"})
  t.match(tostring(err), "s%.json:3:")
end

function test_encode_arrays_objects_and_markers()
  t.eq(json.encode({}), "{}")
  t.eq(json.encode(json.array()), "[]")
  t.eq(json.encode(json.map{}), "{}")
  t.eq(json.encode({1, 2, 3}), "[1,2,3]")
  t.eq(json.encode({[1] = "a", [3] = "c"}), '{"1":"a","3":"c"}')   -- holes: an object
  t.eq(json.encode({b = 1, a = 2}), '{"a":2,"b":1}')               -- sorted when no order is known
  t.eq(json.encode(json.decode('{"b":1,"a":2}')), '{"b":1,"a":2}') -- decoded order kept
  t.eq(json.encode(json.decode('{"b":1,"a":2}'), {sort_keys = true}), '{"a":2,"b":1}')
  t.eq(json.encode({a = {1}}, {pretty = true}), '{\n  "a": [\n    1\n  ]\n}')
  t.eq(json.encode(json.decode("[]")), "[]")                        -- decoded empty array stays one
  local v = json.decode('{"items":[1],"spec":{"b":1}}')
  table.remove(v.items); v.spec.b = nil
  t.eq(json.encode(v), '{"items":[],"spec":{}}')                     -- emptied: still an array, an object
  local shared = json.decode('[{"b":1,"a":2},{"b":3,"a":4}]')
  shared[1].c = 5
  t.eq(json.encode(shared), '[{"b":1,"a":2,"c":5},{"b":3,"a":4}]')
end

function test_floats_are_written_short_and_read_back_exactly()
  t.eq(json.encode({a = 0.1, b = 1.5, c = 2.0, d = 1e300}), '{"a":0.1,"b":1.5,"c":2.0,"d":1e300}')
  t.eq(json.encode(123456789.25), "123456789.25")
  -- one float that needs 17 digits sets them for the document; all read back
  local v = {0.1, 1 / 3, 2 ^ -30, 123.456}
  local back = json.decode(json.encode(v))
  for i = 1, #v do t.eq(back[i], v[i]) end
end

function test_numbers_keep_their_type()
  t.eq(json.encode(1), "1")
  t.eq(json.encode(1.0), "1.0")
  t.eq(json.encode(math.mininteger), "-9223372036854775808")
  local v = json.decode(json.encode({i = 7, f = 7.5, g = 0.1}))
  t.eq(math.type(v.i), "integer")
  t.eq(v.g, 0.1)
end

function test_encode_refuses_what_json_cannot_hold()
  t.raises("non%-finite", json.encode, {x = 0/0})
  t.raises("non%-finite", json.encode, math.huge)
  t.raises("invalid UTF%-8 in string at a", json.encode, {a = "\xff\xfe"})
  t.raises("cannot encode a function at nodes%[2%]%.patches", json.encode, {nodes = {{}, {patches = print}}})
  local c = {}
  c[1] = c
  t.raises("cyclic table at %[1%]", json.encode, c)
  t.raises("object key of type boolean", json.encode, {[true] = 1})
end

function test_json_null_round_trip()
  t.eq(json.encode({a = null, b = {null, 1}}), '{"a":null,"b":[null,1]}')
  t.eq(json.decode('{"a":null}').a, null)
end

-- #17 item 13: a raw NUL byte is refused wherever it is (jansson would stop
-- reading at it), and "\u0000" decodes, since a Lua string holds NUL bytes
function test_nul_bytes()
  local e = t.raises(json.decode, "123\0garbage")
  t.truthy(tostring(e):find("json:1:4: a NUL byte is not allowed", 1, true), tostring(e))
  t.raises("a NUL byte", json.decode_all, "1 2\0 3")
  t.eq(json.decode('"a\\u0000b"'), "a\0b")
  t.eq(json.decode(json.encode("x\0y")), "x\0y")
end

-- a small decode leaves the collector's pace alone: pausing and restarting
-- it around every decode forced a collection at the next allocation (one
-- per tool output in a rehearsal: docs/benchmarks.md). A young garbage
-- key of a weak table survives 200 small decodes.
function test_small_decodes_do_not_force_a_collection()
  local survived, cleared = require("support").no_collection_during(function()
    return {json.decode('{"a": [1, 2, {"b": "c"}]}'), json.decode_all('1 2')}
  end)
  t.truthy(survived, "a collection ran during the decodes")
  t.truthy(cleared, "the probe: a collection clears it")
end
