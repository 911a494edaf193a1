-- runbooks/sim/talos/yamlv3.lua: Go yaml.Marshal's text. The cases marked
-- "encode_test.go" are gopkg.in/yaml.v3's own (github.com/go-yaml/yaml, tag
-- v3.0.1, encode_test.go marshalTests: value and expected text copied as
-- they are there, the value written as Lua); the others follow the code
-- named beside them.
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/?.lua;" .. src .. "/runbooks/lib/?.lua;" .. package.path
local t = require "runbook.testing"
local yaml = require "runbook.yaml"
local y3 = require "sim.talos.yamlv3"

local function m(keys, values) return yaml.order(values, keys) end

function test_yaml_v3_marshal_tests()
  local cases = {
    {{v = "hi"}, "v: hi\n"},
    {{v = "true"}, 'v: "true"\n'},
    {{v = "false"}, 'v: "false"\n'},
    {{v = true}, "v: true\n"},
    {{v = 10}, "v: 10\n"},
    {{v = -10}, "v: -10\n"},
    {{v = 4294967296}, "v: 4294967296\n"},
    {{v = "10"}, 'v: "10"\n'},
    {{v = 0.1}, "v: 0.1\n"},
    {{v = -0.1}, "v: -0.1\n"},
    {{v = math.huge}, "v: .inf\n"},
    {{v = -math.huge}, "v: -.inf\n"},
    {{v = 0 / 0}, "v: .nan\n"},
    {{v = yaml.null}, "v: null\n"},
    {{v = ""}, 'v: ""\n'},
    {{v = {"A", "B"}}, "v:\n    - A\n    - B\n"},
    {{v = {"A", "B\nC"}}, "v:\n    - A\n    - |-\n      B\n      C\n"},
    {{v = {"A", 1, {B = {2, 3}}}}, "v:\n    - A\n    - 1\n    - B:\n        - 2\n        - 3\n"},
    {{a = {b = "c"}}, "a:\n    b: c\n"},
    {{a = "-"}, "a: '-'\n"},
    {123, "123\n"},
    {yaml.map(), "{}\n"},
    {yaml.null, "null\n"},
    {{a = 1}, "a: 1\n"},
    {{a = {1, 2}}, "a:\n    - 1\n    - 2\n"},
    {{a = "off"}, 'a: "off"\n'},
    {{a = "<foo>"}, "a: <foo>\n"},
    {{a = "1:1"}, 'a: "1:1"\n'},
    {{a = "\0"}, 'a: "\\0"\n'},
    {{a = "你好"}, "a: 你好\n"},
    {{a = "2015-02-24T18:19:39Z"}, 'a: "2015-02-24T18:19:39Z"\n'},
    {{a = {b = {m({"c", "d"}, {c = 1, d = 2})}}}, "a:\n    b:\n        - c: 1\n          d: 2\n"},
    {{a = "\tB\n\tC\n"}, "a: |\n    \tB\n    \tC\n"},
    {{a = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 1234567890 abcdefghijklmnopqrstuvwxyz "
          .. "ABCDEFGHIJKLMNOPQRSTUVWXYZ 1234567890 "},
     "a: 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 1234567890 abcdefghijklmnopqrstuvwxyz "
       .. "ABCDEFGHIJKLMNOPQRSTUVWXYZ 1234567890 '\n"},
  }
  for i, c in ipairs(cases) do t.eq(y3.marshal(c[1]), c[2], "case " .. i) end
end

function test_strings_the_resolver_reads_otherwise_are_double_quoted()
  -- resolve.go: ints by strconv.ParseInt(s, 0, 64) after dropping "_", floats, the map of
  -- null/bool/inf/nan spellings; encode.go: YAML 1.1 bools and base-60 floats too
  for _, s in ipairs({"0x1F", "0o17", "0b101", "0755", "1_000", "+12", "-3", "1e3", ".5", "1.", "089",
                      "null", "~", "TRUE", "yes", "N", "On", "12:30", "-1:20:30.5", "2024-02-29", "2024-1-2 3:04:05",
                      "<<", ".inf", "-.Inf"}) do
    t.eq(y3.marshal({s}), '- "' .. s .. '"\n', s)
  end
  -- not a number, a bool or a time to Go: plain
  for _, s in ipairs({"0b2", "0x", "1.2.3", "10.0.0.1:6443", "2023-02-29", "2024-13-01", "1e", "1:60", "v1.11.0",
                      "0xFFFFFFFFFFFFFFFFFF", ".5.5", "yes please", "x"}) do
    t.eq(y3.marshal({s}), "- " .. s .. "\n", s)
  end
end

function test_text_plain_style_cannot_hold_is_single_quoted()
  -- emitterc.go yaml_emitter_analyze_scalar: indicators, ": ", " #", edge spaces
  for _, s in ipairs({"a: b", "a:", "#x", "x #y", "*x", "&x", "!x", "|", ">", "%x", "@x", "`x", "{x", "[x", "'x",
                      "? x", "- x", "---x", " x", "x "}) do
    t.eq(y3.marshal({s}), "- '" .. s:gsub("'", "''") .. "'\n", s)
  end
  for _, s in ipairs({"a:b", "x#y", "a-b", "-x", "?x", "a, b", "a[x]"}) do
    t.eq(y3.marshal({s}), "- " .. s .. "\n", s)
  end
  -- a tab or a control character cannot be single-quoted: double, escaped
  t.eq(y3.marshal({"a\tb", "\27[0m", "é\r"}), '- "a\\tb"\n- "\\e[0m"\n- "é\\r"\n')
end

function test_multi_line_strings_are_literal_blocks_with_yaml_v3_chomping()
  t.eq(y3.marshal({a = "x\ny"}), "a: |-\n    x\n    y\n")
  t.eq(y3.marshal({a = "x\ny\n"}), "a: |\n    x\n    y\n")
  t.eq(y3.marshal({a = "x\n\n"}), "a: |+\n    x\n\n")
  t.eq(y3.marshal({a = " x\ny"}), "a: |4-\n     x\n    y\n")
  -- trailing space or a space before a line break: double-quoted
  t.eq(y3.marshal({a = "x \ny"}), 'a: "x \\ny"\n')
  -- v4 (Talos v1.12+): a line break with only whitespace is double-quoted (yaml.go shouldUseLiteralStyle)
  t.eq(y3.marshal({a = "\n"}, {v4 = true}), 'a: "\\n"\n')
end

function test_layout_of_nested_lists_and_maps()
  local v = m({"a", "b"}, {a = {{"p", "q"}, m({"k", "l"}, {k = {"z"}, l = yaml.array()})}, b = yaml.map()})
  t.eq(y3.marshal(v), "a:\n    - - p\n      - q\n    - k:\n        - z\n      l: []\nb: {}\n")
  t.eq(y3.marshal_all({{a = 1}, {b = 2}}), "a: 1\n---\nb: 2\n")
end

function test_floats_print_as_go_formats_them()
  -- strconv.FormatFloat(f, 'g', -1, 64): exponent form below 1e-4 and from 1e21... and from 1e6 (shortest: eprec 6)
  local cases = {{1.0, "1"}, {2.5, "2.5"}, {100000.0, "100000"}, {1e6, "1e+06"}, {1234567.0, "1.234567e+06"},
                 {0.0001, "0.0001"}, {0.00001, "1e-05"}, {-0.0, "-0"}, {1e21, "1e+21"}, {123.456, "123.456"}}
  for _, c in ipairs(cases) do t.eq(y3.go_float(c[1]), c[2], c[2]) end
end

function test_v4_keeps_literal_blocks_for_text_and_quotes_blank_lines()
  -- go.yaml.in/yaml/v4 rc.3 yaml.go shouldUseLiteralStyle: a line break and some non-space
  t.eq(y3.marshal({a = "x\ny"}, {v4 = true}), "a: |-\n    x\n    y\n")
  t.eq(y3.marshal({a = " \n\t\n"}, {v4 = true}), 'a: " \\n\\t\\n"\n')
  t.eq(y3.marshal({a = "\u{3000}\n"}, {v4 = true}), 'a: "\u{3000}\\n"\n')
end

function test_a_string_that_is_not_utf8_is_refused_with_one_message()
  t.raises("not UTF%-8 %(Go writes it as !!binary base64: not modelled%)", y3.marshal, {a = "\128\129"})
end
