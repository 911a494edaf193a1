-- Conformance: the scalar chapters of YAML 1.2.2 (5.7 escapes, 6 folding,
-- 7 flow scalars, 8 block scalars, 10.3 core schema). Each case is a spec
-- example (or a yaml-test-suite case, by its ID) with the value the spec
-- gives for it; the assertion is on the exact decoded value.
local yaml = require "runbook.yaml"
local t = require "runbook.testing"
local null = yaml.null

local function case(src, want)
  t.eq(yaml.decode(src), want, src)
end

function test_5_13_escaped_characters()
  case('"Fun with \\\\\n\\" \\a \\b \\e \\f \\\n\\n \\r \\t \\v \\0 \\\n\\  \\_ \\N \\L \\P \\\n\\x41 \\u0041 \\U00000041"\n',
       "Fun with \\ \" \a \b \27 \f \n \r \t \v \0 \32 \u{A0} \u{85} \u{2028} \u{2029} A A A")
end

function test_6_8_flow_folding()             -- TL85
  case('"\n  foo \n \n  \t bar\n\n  baz\n"\n', " foo\nbar\nbaz ")
end

function test_7_4_double_quoted_implicit_keys()
  case('"implicit block key" : [\n  "implicit flow key" : value,\n ]\n',
       {["implicit block key"] = {{["implicit flow key"] = "value"}}})
end

function test_7_5_double_quoted_line_breaks()
  case('"folded \nto a space,\t\n \nto a line feed, or \t\\\n \\ \tnon-content"\n',
       "folded to a space,\nto a line feed, or \t \tnon-content")
end

function test_7_6_double_quoted_lines()      -- 9TFX
  case('---\n" 1st non-empty\n\n  2nd non-empty \n  3rd non-empty "\n', " 1st non-empty\n2nd non-empty 3rd non-empty ")
end

function test_7_7_single_quoted_characters()
  case("'here''s to \"quotes\"'\n", 'here\'s to "quotes"')
end

function test_7_9_single_quoted_lines()
  case("' 1st non-empty\n\n 2nd non-empty \n\t3rd non-empty '\n", " 1st non-empty\n2nd non-empty 3rd non-empty ")
end

function test_7_10_plain_characters()
  -- outside a flow collection; inside one, libyaml refuses '::vector' (below)
  case('# Outside flow collection:\n- ::vector\n- ": - ()"\n- Up, up, and away!\n- -123\n- http://example.com/foo#bar\n',
       {"::vector", ": - ()", "Up, up, and away!", -123, "http://example.com/foo#bar"})
  case('- [ ": - ()",\n  "Up, up and away!",\n  -123,\n  http://example.com/foo#bar ]\n',
       {{": - ()", "Up, up and away!", -123, "http://example.com/foo#bar"}})
end

function test_7_12_plain_lines()
  case("1st non-empty\n\n 2nd non-empty \n\t3rd non-empty\n", "1st non-empty\n2nd non-empty 3rd non-empty")
end

function test_8_1_block_scalar_header()
  case("- | # Empty header\n literal\n- >1 # Indentation indicator\n  folded\n- |+ # Chomping indicator\n keep\n\n"
       .. "- >1- # Both indicators\n  strip\n",
       {"literal\n", " folded\n", "keep\n\n", " strip"})
end

function test_8_4_chomping_final_line_break()       -- A6F9
  case("strip: |-\n  text\nclip: |\n  text\nkeep: |+\n  text\n", {strip = "text", clip = "text\n", keep = "text\n"})
end

function test_8_5_chomping_trailing_lines()         -- F8F9
  case(" # Strip\n  # Comments:\nstrip: |-\n  # text\n  \n # Clip\n  # comments:\n\nclip: |\n  # text\n \n"
       .. " # Keep\n  # comments:\n\nkeep: |+\n  # text\n\n # Trail\n  # comments.\n",
       {strip = "# text", clip = "# text\n", keep = "# text\n\n"})
end

function test_8_6_empty_scalar_chomping()
  case("strip: >-\n\nclip: >\n\nkeep: |+\n\n", {strip = "", clip = "", keep = "\n"})
end

function test_8_8_literal_content()                 -- DWX9
  case("|\n \n  \n  literal\n   \n  \n  text\n\n # Comment\n", "\n\nliteral\n \n\ntext\n")
end

function test_8_20_block_node_types()               -- 735Y
  case('-\n  "flow in block"\n- >\n Block scalar\n- !!map # Block collection\n  foo : bar\n',
       {"flow in block", "Block scalar\n", {foo = "bar"}})
end

function test_block_scalars_in_sequences_and_trailing_spaces()   -- M6YH, L24T, 5GBF
  case("- |\n x\n-\n foo: bar\n-\n - 42\n", {"x\n", {foo = "bar"}, {42}})
  case("foo: |\n  x\n   \n", {foo = "x\n \n"})
  case('Folding:\n  "Empty line\n   \t\n  as a line feed"\nChomping: |\n  Clipped empty lines\n \n',
       {Folding = "Empty line\nas a line feed", Chomping = "Clipped empty lines\n"})
end

function test_10_9_core_tag_resolution()
  local v = yaml.decode("A null: null\nAlso a null: # Empty\nNot a null: \"\"\nBooleans: [ true, True, false, FALSE ]\n"
                        .. "Integers: [ 0, 0o7, 0x3A, -19 ]\nFloats: [ 0., -0.0, .5, +12e03, -2E+05 ]\n"
                        .. "Also floats: [ .inf, -.Inf, +.INF, .NAN ]\n")
  t.eq(v["A null"], null)
  t.eq(v["Also a null"], null)
  t.eq(v["Not a null"], "")
  t.eq(v.Booleans, {true, true, false, false})
  t.eq(v.Integers, {0, 7, 58, -19})
  t.eq(v.Floats, {0.0, -0.0, 0.5, 12000.0, -200000.0})
  t.eq(math.type(v.Floats[1]), "float")
  t.eq(1 / v.Floats[2], -math.huge)                  -- the sign of -0.0 is kept
  local f = v["Also floats"]
  t.eq({f[1], f[2], f[3]}, {math.huge, -math.huge, math.huge})
  t.eq(f[4] ~= f[4], true)                           -- .NAN
end

-- Where libyaml departs from the spec (the valid inputs it refuses), the
-- decoder fails cleanly, with a position: never a different value.
local function refused(src, why)
  local err = t.raises(yaml.decode, src)
  t.match(tostring(err), "yaml:%d+:%d+: " .. why, src)
end

function test_inputs_libyaml_refuses_fail_with_a_position()
  -- 8.2 (R4YG): a tab on an otherwise empty line of a folded scalar
  refused("- |\n detected\n- >\n \n  \n  # detected\n- |1\n  explicit\n- >\n \t\n detected\n", "found a tab character")
  -- 7.10: a plain scalar starting with ':' inside a flow collection
  refused("- [ ::vector,\n  -123 ]\n", "did not find expected node content")
  -- 9SA2: a multi-line quoted key in a flow mapping
  refused('- { "multi\n  line": value}\n', "did not find expected ',' or '}'")
end
