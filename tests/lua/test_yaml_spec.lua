-- The examples of chapter 2 of the YAML 1.2.2 specification (written out
-- here from the spec), each with the exact value runbook.yaml decodes.
local yaml = require "runbook.yaml"
local t = require "runbook.testing"
local null = yaml.null

local function dec(s) return yaml.decode(s) end

function test_2_1_sequence_of_scalars()
  t.eq(dec("- Mark McGwire\n- Sammy Sosa\n- Ken Griffey\n"), {"Mark McGwire", "Sammy Sosa", "Ken Griffey"})
end

function test_2_2_mapping_scalars_to_scalars()
  t.eq(dec("hr:  65    # Home runs\navg: 0.278 # Batting average\nrbi: 147   # Runs Batted In\n"),
       {hr = 65, avg = 0.278, rbi = 147})
end

function test_2_3_mapping_scalars_to_sequences()
  t.eq(dec([[
american:
- Boston Red Sox
- Detroit Tigers
- New York Yankees
national:
- New York Mets
- Chicago Cubs
- Atlanta Braves
]]), {american = {"Boston Red Sox", "Detroit Tigers", "New York Yankees"},
      national = {"New York Mets", "Chicago Cubs", "Atlanta Braves"}})
end

function test_2_4_sequence_of_mappings()
  t.eq(dec([[
-
  name: Mark McGwire
  hr:   65
  avg:  0.278
-
  name: Sammy Sosa
  hr:   63
  avg:  0.288
]]), {{name = "Mark McGwire", hr = 65, avg = 0.278}, {name = "Sammy Sosa", hr = 63, avg = 0.288}})
end

function test_2_5_sequence_of_sequences()
  t.eq(dec("- [name        , hr, avg  ]\n- [Mark McGwire, 65, 0.278]\n- [Sammy Sosa  , 63, 0.288]\n"),
       {{"name", "hr", "avg"}, {"Mark McGwire", 65, 0.278}, {"Sammy Sosa", 63, 0.288}})
end

function test_2_6_mapping_of_mappings()
  t.eq(dec("Mark McGwire: {hr: 65, avg: 0.278}\nSammy Sosa: {\n    hr: 63,\n    avg: 0.288,\n }\n"),
       {["Mark McGwire"] = {hr = 65, avg = 0.278}, ["Sammy Sosa"] = {hr = 63, avg = 0.288}})
end

function test_2_7_two_documents_in_a_stream()
  local docs = yaml.decode_all([[
# Ranking of 1998 home runs
---
- Mark McGwire
- Sammy Sosa
- Ken Griffey

# Team ranking
---
- Chicago Cubs
- St Louis Cardinals
]])
  t.eq(docs, {{"Mark McGwire", "Sammy Sosa", "Ken Griffey"}, {"Chicago Cubs", "St Louis Cardinals"}})
  t.raises("2 documents", yaml.decode, "---\na\n---\nb\n")
end

function test_2_8_play_by_play_feed()
  -- 20:03:20 is a string under the 1.2 core schema (sexagesimal was 1.1)
  t.eq(yaml.decode_all([[
---
time: 20:03:20
player: Sammy Sosa
action: strike (miss)
...
---
time: 20:03:47
player: Sammy Sosa
action: grand slam
...
]]), {{time = "20:03:20", player = "Sammy Sosa", action = "strike (miss)"},
      {time = "20:03:47", player = "Sammy Sosa", action = "grand slam"}})
end

function test_2_9_single_document_with_two_comments()
  t.eq(dec("---\nhr: # 1998 hr ranking\n- Mark McGwire\n- Sammy Sosa\n# 1998 rbi ranking\nrbi:\n- Sammy Sosa\n- Ken Griffey\n"),
       {hr = {"Mark McGwire", "Sammy Sosa"}, rbi = {"Sammy Sosa", "Ken Griffey"}})
end

function test_2_10_node_appears_twice()
  t.eq(dec("---\nhr:\n- Mark McGwire\n# Following node labeled SS\n- &SS Sammy Sosa\nrbi:\n- *SS # Subsequent occurrence\n- Ken Griffey\n"),
       {hr = {"Mark McGwire", "Sammy Sosa"}, rbi = {"Sammy Sosa", "Ken Griffey"}})
end

function test_2_11_complex_keys_are_refused_clearly()
  t.raises("complex mapping keys", dec, "? - Detroit Tigers\n  - Chicago cubs\n: - 2001-07-23\n")
end

function test_2_12_compact_nested_mapping()
  t.eq(dec("---\n# Products purchased\n- item    : Super Hoop\n  quantity: 1\n- item    : Basketball\n  quantity: 4\n- item    : Big Shoes\n  quantity: 1\n"),
       {{item = "Super Hoop", quantity = 1}, {item = "Basketball", quantity = 4}, {item = "Big Shoes", quantity = 1}})
end

function test_2_13_literal_newlines_preserved()
  t.eq(dec("# ASCII Art\n--- |\n  \\//||\\/||\n  // ||  ||__\n"), "\\//||\\/||\n// ||  ||__\n")
end

function test_2_14_folded_newlines_become_spaces()
  t.eq(dec("--- >\n  Mark McGwire's\n  year was crippled\n  by a knee injury.\n"),
       "Mark McGwire's year was crippled by a knee injury.\n")
end

function test_2_15_folded_more_indented_and_blank_lines()
  t.eq(dec("--- >\n Sammy Sosa completed another\n fine season with great stats.\n\n   63 Home Runs\n   0.288 Batting Average\n\n What a year!\n"),
       "Sammy Sosa completed another fine season with great stats.\n\n  63 Home Runs\n  0.288 Batting Average\n\nWhat a year!\n")
end

function test_2_16_indentation_determines_scope()
  t.eq(dec("name: Mark McGwire\naccomplishment: >\n  Mark set a major league\n  home run record in 1998.\nstats: |\n  65 Home Runs\n  0.278 Batting Average\n"),
       {name = "Mark McGwire", accomplishment = "Mark set a major league home run record in 1998.\n",
        stats = "65 Home Runs\n0.278 Batting Average\n"})
end

function test_2_17_quoted_scalars()
  t.eq(dec([[
unicode: "Sosa did fine.\u263A"
control: "\b1998\t1999\t2000\n"
hex esc: "\x0d\x0a is \r\n"

single: '"Howdy!" he cried.'
quoted: ' # Not a ''comment''.'
tie-fighter: '|\-*-/|'
]]), {unicode = "Sosa did fine.\u{263A}", control = "\b1998\t1999\t2000\n", ["hex esc"] = "\r\n is \r\n",
      single = '"Howdy!" he cried.', quoted = " # Not a 'comment'.", ["tie-fighter"] = "|\\-*-/|"})
end

function test_2_18_multi_line_flow_scalars()
  t.eq(dec('plain:\n  This unquoted scalar\n  spans many lines.\n\nquoted: "So does this\n  quoted scalar.\\n"\n'),
       {plain = "This unquoted scalar spans many lines.", quoted = "So does this quoted scalar.\n"})
end

function test_2_19_integers()
  local v = dec("canonical: 12345\ndecimal: +12345\noctal: 0o14\nhexadecimal: 0xC\n")
  t.eq(v, {canonical = 12345, decimal = 12345, octal = 12, hexadecimal = 12})
  t.eq(math.type(v.octal), "integer")
end

function test_2_20_floating_point()
  local v = dec("canonical: 1.23015e+3\nexponential: 12.3015e+02\nfixed: 1230.15\nnegative infinity: -.inf\nnot a number: .nan\n")
  t.eq(v.canonical, 1230.15)
  t.eq(v.exponential, 1230.15)
  t.eq(v.fixed, 1230.15)
  t.eq(v["negative infinity"], -math.huge)
  t.truthy(v["not a number"] ~= v["not a number"], "nan")
end

function test_2_21_miscellaneous()
  -- a null key keeps its text: Lua tables cannot hold a nil key
  t.eq(dec("null:\nbooleans: [ true, false ]\nstring: '012345'\n"),
       {["null"] = null, booleans = {true, false}, string = "012345"})
end

function test_2_22_timestamps_stay_strings()
  t.eq(dec("canonical: 2001-12-15T02:59:43.1Z\niso8601: 2001-12-14t21:59:43.10-05:00\nspaced: 2001-12-14 21:59:43.10 -5\ndate: 2002-12-14\n"),
       {canonical = "2001-12-15T02:59:43.1Z", iso8601 = "2001-12-14t21:59:43.10-05:00",
        spaced = "2001-12-14 21:59:43.10 -5", date = "2002-12-14"})
end

function test_2_23_various_explicit_tags()
  local v = dec([[
---
not-date: !!str 2002-04-28

picture: !!binary |
 R0lGODlhDAAMAIQAAP//9/X
 17unp5WZmZgAAAOfn515eXv
 Pz7Y6OjuDg4J+fn5OTk6enp
 56enmleECcgggoBADs=

application specific tag: !something |
 The semantics of the tag
 above may be different for
 different documents.
]])
  t.eq(v["not-date"], "2002-04-28")
  t.eq(v.picture, "R0lGODlhDAAMAIQAAP//9/X\n17unp5WZmZgAAAOfn515eXv\nPz7Y6OjuDg4J+fn5OTk6enp\n56enmleECcgggoBADs=\n")
  t.eq(v["application specific tag"], "The semantics of the tag\nabove may be different for\ndifferent documents.\n")
end

function test_2_24_global_tags_are_ignored_values_kept()
  local v = dec([[
%TAG ! tag:clarkevans.com,2002:
--- !shape
  # Use the ! handle for presenting
  # tag:clarkevans.com,2002:circle
- !circle
  center: &ORIGIN {x: 73, y: 129}
  radius: 7
- !line
  start: *ORIGIN
  finish: { x: 89, y: 102 }
- !label
  start: *ORIGIN
  color: 0xFFEEBB
  text: Pretty vector drawing.
]])
  t.eq(v, {{center = {x = 73, y = 129}, radius = 7},
           {start = {x = 73, y = 129}, finish = {x = 89, y = 102}},
           {start = {x = 73, y = 129}, color = 0xFFEEBB, text = "Pretty vector drawing."}})
end

function test_2_25_unordered_sets()
  t.eq(dec("# Sets are represented as a\n# Mapping where each key is\n# associated with a null value\n--- !!set\n? Mark McGwire\n? Sammy Sosa\n? Ken Griffey\n"),
       {["Mark McGwire"] = null, ["Sammy Sosa"] = null, ["Ken Griffey"] = null})
end

function test_2_26_ordered_mappings()
  t.eq(dec("--- !!omap\n- Mark McGwire: 65\n- Sammy Sosa: 63\n- Ken Griffey: 58\n"),
       {{["Mark McGwire"] = 65}, {["Sammy Sosa"] = 63}, {["Ken Griffey"] = 58}})
end

function test_2_27_invoice()
  local v = dec([[
--- !<tag:clarkevans.com,2002:invoice>
invoice: 34843
date   : 2001-01-23
bill-to: &id001
    given  : Chris
    family : Dumars
    address:
        lines: |
            458 Walkman Dr.
            Suite #292
        city    : Royal Oak
        state   : MI
        postal  : 48046
ship-to: *id001
product:
    - sku         : BL394D
      quantity    : 4
      description : Basketball
      price       : 450.00
    - sku         : BL4438H
      quantity    : 1
      description : Super Hoop
      price       : 2392.00
tax  : 251.42
total: 4443.52
comments:
    Late afternoon is best.
    Backup contact is Nancy
    Billsmer @ 338-4338.
]])
  t.eq(v.invoice, 34843)
  t.eq(v.date, "2001-01-23")
  t.eq(v["bill-to"].address.lines, "458 Walkman Dr.\nSuite #292\n")
  t.eq(v["bill-to"].address.postal, 48046)
  t.eq(v["ship-to"], v["bill-to"])
  t.eq(v.product[2], {sku = "BL4438H", quantity = 1, description = "Super Hoop", price = 2392.0})
  t.eq(math.type(v.product[1].price), "float")
  t.eq(v.comments, "Late afternoon is best. Backup contact is Nancy Billsmer @ 338-4338.")
end

function test_2_28_log_file()
  local docs = yaml.decode_all([[
---
Time: 2001-11-23 15:01:42 -5
User: ed
Warning:
  This is an error message
  for the log file
---
Time: 2001-11-23 15:02:31 -5
User: ed
Warning:
  A slightly different error
  message.
---
Date: 2001-11-23 15:03:17 -5
User: ed
Fatal:
  Unknown variable "bar"
Stack:
- file: TopClass.py
  line: 23
  code: |
    x = MoreObject("345\n")
- file: MoreClass.py
  line: 58
  code: |-
    foo = bar
]])
  t.eq(#docs, 3)
  t.eq(docs[1].Warning, "This is an error message for the log file")
  t.eq(docs[3].Stack[1].code, 'x = MoreObject("345\\n")\n')
  t.eq(docs[3].Stack[2], {file = "MoreClass.py", line = 58, code = "foo = bar"})
end
