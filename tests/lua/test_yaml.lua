-- runbook.yaml: the core schema, encoding, errors, edit.
local yaml = require "runbook.yaml"
local t = require "runbook.testing"
local null = yaml.null

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lines(s)
  local out = {}
  for l in (s .. (s:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

--- the lines that differ between two texts of the same line count (or an
--- inserted block): returns {old = {...}, new = {...}} of changed lines
local function changed_lines(a, b)
  local la, lb = lines(a), lines(b)
  local i = 1
  while i <= #la and i <= #lb and la[i] == lb[i] do i = i + 1 end
  local ja, jb = #la, #lb
  while ja >= i and jb >= i and la[ja] == lb[jb] do ja, jb = ja - 1, jb - 1 end
  local old, new = {}, {}
  for k = i, ja do old[#old + 1] = la[k] end
  for k = i, jb do new[#new + 1] = lb[k] end
  return {old = old, new = new}
end

function test_core_schema_plain_scalars()
  local cases = {
    {"null", null}, {"Null", null}, {"NULL", null}, {"~", null}, {"", null},
    {"true", true}, {"True", true}, {"TRUE", true}, {"false", false}, {"FALSE", false},
    {"yes", "yes"}, {"no", "no"}, {"on", "on"}, {"off", "off"}, {"y", "y"},
    {"0", 0}, {"-19", -19}, {"+7", 7}, {"0o17", 15}, {"0x1F", 31}, {"0755", 755},
    {"1.5", 1.5}, {"-2.5e3", -2500.0}, {".5", 0.5}, {"1.", 1.0}, {"1e3", 1000.0},
    {".inf", math.huge}, {"-.Inf", -math.huge}, {"+.INF", math.huge},
    {"0b101", "0b101"}, {"1_000", "1_000"}, {"12:30", "12:30"}, {"0x", "0x"}, {"1.2.3", "1.2.3"},
    {"v1.10.6", "v1.10.6"}, {"10.43.0.0/16", "10.43.0.0/16"},
  }
  for _, c in ipairs(cases) do
    local v = yaml.decode("v: " .. c[1] .. "\n").v
    t.eq(v, c[2], "plain " .. c[1])
  end
  t.eq(math.type(yaml.decode("v: 9223372036854775807\n").v), "integer")
  t.eq(math.type(yaml.decode("v: 99999999999999999999\n").v), "float")   -- beyond int64
  local nan = yaml.decode("v: .NaN\n").v
  t.truthy(nan ~= nan)
end

function test_quoted_scalars_are_strings_and_tags_are_honoured()
  local v = yaml.decode([[
a: "true"
b: '1'
c: !!str 42
d: !!int "42"
e: !!float 1
f: !!bool "false"
g: !!null ""
h: ! 12
]])
  t.eq(v, {a = "true", b = "1", c = "42", d = 42, e = 1.0, f = false, g = null, h = "12"})
  t.eq(math.type(v.e), "float")
  t.raises("cannot decode 'abc' as !!int", yaml.decode, "x: !!int abc\n")
end

function test_merge_keys()
  local v = yaml.decode([[
base: &base {a: 1, b: 2}
more: &more {c: 3}
one:
  <<: *base
  b: 20
two:
  <<: [*base, *more]
  d: 4
]])
  t.eq(v.one, {a = 1, b = 20})
  t.eq(v.two, {a = 1, b = 2, c = 3, d = 4})
  t.raises("merge key", yaml.decode, "a:\n  <<: 5\n")
end

function test_errors_carry_name_line_and_column()
  local err = t.raises(yaml.decode, "a: 1\nb: [1, 2\nc: 3\n", {name = "talconfig.yaml"})
  t.match(tostring(err), "^yaml: talconfig%.yaml:%d+:%d+: ")
  t.eq(err.kind, "yaml")
  err = t.raises(yaml.decode, "nodes:\n  - a: 1\n   b: 2\n", {name = "x.yaml"})
  t.match(tostring(err), "x%.yaml:3:")
  err = t.raises(yaml.decode, "a: 1\na: 2\n", {name = "d.yaml"})
  t.match(tostring(err), "d%.yaml:2:1: mapping key \"a\" already defined")
  t.raises("unknown anchor 'nope'", yaml.decode, "a: *nope\n")
end

function test_billion_laughs_fails_cleanly()
  local buf = {'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'}
  local prev = "a"
  for _, name in ipairs{"b", "c", "d", "e", "f", "g", "h", "i"} do
    local refs = {}
    for k = 1, 9 do refs[k] = "*" .. prev end
    buf[#buf + 1] = ("%s: &%s [%s]"):format(name, name, table.concat(refs, ","))
    prev = name
  end
  local err = t.raises("too many aliases", yaml.decode, table.concat(buf, "\n") .. "\n")
  t.eq(err.kind, "yaml")
end

function test_deep_nesting_is_refused_not_crashing()
  t.raises("nested deeper than", yaml.decode, ("["):rep(5000) .. ("]"):rep(5000))
end

function test_encode_is_deterministic_block_style()
  local v = {name = "k8s-1", ip = "192.168.10.11", labels = {b = "2", a = "1"}, list = {1, 2}}
  local out = yaml.encode(v)
  t.eq(out, "ip: 192.168.10.11\nlabels:\n  a: '1'\n  b: '2'\nlist:\n- 1\n- 2\nname: k8s-1\n")
  t.eq(yaml.encode(v), out)
end

function test_encode_quotes_what_would_read_back_differently()
  local strings = {"true", "no", "null", "~", "", "123", "0x10", "1.5", ".inf", "12:30", "0755", "1_000",
                   "a: b", "- x", "#c", "0b101", "1:20", "1.5e+3", "y", "Yes", "OFF", " lead", "trail ", "multi\nline\n", "it's", "@x", "* star"}
  for _, s in ipairs(strings) do
    local back = yaml.decode(yaml.encode({v = s})).v
    t.eq(back, s, "round trip of " .. ("%q"):format(s))
  end
  t.eq(yaml.encode({v = "plain text"}), "v: plain text\n")
end

function test_decoded_maps_keep_their_key_order()
  local src = "zeta: 1\nalpha: 2\nmid:\n  w: 1\n  v: 2\n"
  t.eq(yaml.encode(yaml.decode(src)), src)
  local v = yaml.decode(src)
  v.new = 3
  v.alpha = nil
  t.eq(yaml.encode(v), "zeta: 1\nmid:\n  w: 1\n  v: 2\nnew: 3\n")
end

function test_order_and_shape_markers()
  local doc = yaml.order({kind = "ExtensionServiceConfig", apiVersion = "v1alpha1", name = "tailscale"},
                         {"apiVersion", "kind", "name"})
  t.eq(yaml.encode(doc), "apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: tailscale\n")
  t.eq(yaml.encode({a = yaml.array(), b = yaml.map(), c = {}}), "a: []\nb: {}\nc: {}\n")
  t.eq(yaml.encode(yaml.array{}), "[]\n")
end

function test_maps_with_the_same_keys_keep_their_orders_apart()
  -- one decode shares the order list of maps with the same key sequence;
  -- changing one map (or its order) must not touch the others
  local v = yaml.decode("- {b: 1, a: 2}\n- {b: 3, a: 4}\n- {b: 5, a: 6}\n")
  v[1].c = 7
  yaml.order(v[3], {"a", "b"})
  t.eq(yaml.encode(v[1]), "b: 1\na: 2\nc: 7\n")
  t.eq(yaml.encode(v[2]), "b: 3\na: 4\n")
  t.eq(yaml.encode(v[3]), "a: 6\nb: 5\n")
  -- a merge target gets a list of its own, merged keys in place
  local m = yaml.decode("base: &b {q: 1, p: 2}\nm: {z: 0, <<: *b, w: 3}\nn: {z: 0, w: 3}\n")
  t.eq(yaml.encode(m.m), "z: 0\nq: 1\np: 2\nw: 3\n")
  t.eq(yaml.encode(m.n), "z: 0\nw: 3\n")
  -- a repeated key is caught in a map whose first keys were seen before
  local ok, err = pcall(yaml.decode, "- {a: 1, b: 2}\n- {a: 1, b: 2, a: 3}\n", {name = "dup.yaml"})
  t.eq(ok, false)
  t.eq(tostring(err):match("dup%.yaml:%d+:%d+: mapping key \"a\" already defined") ~= nil, true, tostring(err))
  -- long maps (past the chunk kept on the stack) keep order and catch repeats
  local doc = {}
  for i = 300, 1, -1 do doc[#doc + 1] = ("k%d: %d"):format(i, i) end
  local big = yaml.decode(table.concat(doc, "\n"))
  t.eq(yaml.encode(big), table.concat(doc, "\n") .. "\n")
  t.raises("k300\" already defined", yaml.decode, table.concat(doc, "\n") .. "\nk300: 0\n")
end

function test_marks_are_metatables_a_runbook_can_replace()
  local v = yaml.decode("list: [1, 2]\nempty: []\nmap: {b: 1, a: 2}\nnone: {}\n")
  -- the marks change nothing a runbook reads
  t.eq(#v.list, 2)
  t.eq(v.list, {1, 2})
  t.eq(v.none, {})
  t.eq(v.empty, {})                            -- testing.eq ignores marks
  -- an emptied list is still a list, an emptied map still a map
  table.remove(v.list); table.remove(v.list)
  v.map.a, v.map.b = nil, nil
  t.eq(yaml.encode(v), "list: []\nempty: []\nmap: {}\nnone: {}\n")
  -- a table with a metatable of its own keeps it; its marks live aside
  local Point = {__index = function() return 0 end}
  local p = setmetatable({q = 2, p = 1}, Point)
  yaml.order(p, {"q", "p"})
  t.eq(getmetatable(p), Point)
  t.eq(yaml.encode(p), "q: 2\np: 1\n")
  local l = yaml.array(setmetatable({}, Point))
  t.eq(getmetatable(l), Point)
  t.eq(yaml.encode(l), "[]\n")
  -- a decoded table given a metatable of its own loses its order, nothing else
  local d = yaml.decode("b: 1\na: 2\n")
  setmetatable(d, Point)
  t.eq(yaml.encode(d), "a: 2\nb: 1\n")
end

function test_numbers_round_trip_with_their_type()
  local v = yaml.decode(yaml.encode({i = 3, f = 3.0, small = 0.1, big = 1e300, neg = -0.5, inf = math.huge}))
  t.eq(math.type(v.i), "integer")
  t.eq(math.type(v.f), "float")
  t.eq(v.small, 0.1)
  t.eq(v.big, 1e300)
  t.eq(v.inf, math.huge)
  t.eq(yaml.encode({v = 0.1}), "v: 0.1\n")
end

function test_encode_all_and_multi_document_configs()
  local out = yaml.encode_all({{machine = {type = "controlplane"}}, {apiVersion = "v1alpha1", kind = "ExtensionServiceConfig"}})
  t.eq(out, "machine:\n  type: controlplane\n---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\n")
  t.eq(#yaml.decode_all(out), 2)
end

function test_encode_errors_name_the_path()
  t.raises("cannot encode a function at nodes%[2%]%.patches",
           yaml.encode, {nodes = {{}, {patches = print}}})
  local cyc = {}
  cyc.me = cyc
  t.raises("cyclic table at x%.me", yaml.encode, {x = cyc})
  t.raises("map key of type table", yaml.encode, {[{}] = 1})
end

function test_null_sentinel()
  t.eq(yaml.decode("a: null\n").a, yaml.null)
  t.eq(yaml.encode({a = yaml.null}), "a: null\n")
  t.eq(yaml.null, require("runbook.json").null)
  t.eq(yaml.decode(""), nil)
  t.eq(yaml.decode_all(""), {})
end

-- {====== edit

local TALCONFIG = "data/talconfig.yaml"

function test_edit_replaces_only_the_target_bytes()
  local src = read(TALCONFIG)
  local new = "factory.talos.dev/installer/4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b"
  local out = yaml.edit(src, {"nodes", 1, "talosImageURL"}, new)
  t.eq(changed_lines(src, out), {
    old = {"    talosImageURL: factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"},
    new = {"    talosImageURL: " .. new}})
  t.eq(yaml.decode_all(out)[1].nodes[1].talosImageURL, new)
end

function test_edit_keeps_the_quote_style()
  local src = read(TALCONFIG)
  local out = yaml.edit(src, {"nodes", 2, "talosImageURL"}, "factory.talos.dev/installer/abc")
  t.eq(changed_lines(src, out).new, {'    talosImageURL: "factory.talos.dev/installer/abc"'})
  out = yaml.edit("a: 'x' # c\n", {"a"}, "it's")
  t.eq(out, "a: 'it''s' # c\n")
end

function test_edit_inserts_a_missing_key_at_the_map_indentation()
  local src = read(TALCONFIG)
  local out = yaml.edit(src, {"nodes", 3, "talosImageURL"}, "factory.talos.dev/installer/abc")
  local d = changed_lines(src, out)
  t.eq(d.old, {})
  t.eq(d.new, {"    talosImageURL: factory.talos.dev/installer/abc"})
  -- it lands inside k8s-3's map, after its last entry
  local v = yaml.decode_all(out)[1]
  t.eq(v.nodes[3].talosImageURL, "factory.talos.dev/installer/abc")
  t.eq(v.nodes[3].nodeLabels, {storage = "true"})
end

function test_edit_every_node_changes_exactly_three_lines()
  local src = read(TALCONFIG)
  local out = src
  for i = 1, 3 do out = yaml.edit(out, {"nodes", i, "talosImageURL"}, "factory.talos.dev/installer/new") end
  local la, lb = lines(src), lines(out)
  t.eq(#lb, #la + 1)     -- two replaced, one inserted
  local same = 0
  local set = {}
  for _, l in ipairs(la) do set[l] = (set[l] or 0) + 1 end
  for _, l in ipairs(lb) do if set[l] and set[l] > 0 then set[l] = set[l] - 1; same = same + 1 end end
  t.eq(same, #la - 2)
  -- comments and blank lines all survived
  t.match(out, "# keep in step with the installer below")
  t.match(out, "# nodeLabels for the storage node")
  t.match(out, "# end of file")
end

function test_edit_with_a_table_value_writes_a_block()
  local out = yaml.edit("a:\n  b: 1\n  c: 2 # keep\nd: 3\n", {"a", "e"}, {"x", "z"})
  t.eq(out, "a:\n  b: 1\n  c: 2 # keep\n  e:\n    - x\n    - z\nd: 3\n")
  out = yaml.edit("a:\n  b: 1\nd: 3\n", {"a", "b"}, {k = "v"})
  t.eq(out, "a:\n  b:\n    k: v\nd: 3\n")
end

function test_edit_keeps_flow_style_where_the_file_uses_it()
  local src = "nodes:\n  - {hostname: k8s-3, ipAddress: 192.168.10.13} # flow node\n"
           .. "  - hostname: k8s-4\n    patches: [\"@./a.yaml\"]\nempty: {}\n"
  -- a key added to a flow map goes before its brace; nothing else moves
  local out = yaml.edit(src, {"nodes", 1, "talosImageURL"}, "factory.talos.dev/installer/abc")
  t.eq(out, (src:gsub("192%.168%.10%.13}", "192.168.10.13, talosImageURL: factory.talos.dev/installer/abc}")))
  -- a flow list replaced by a list stays flow; strings with flow indicators are quoted
  out = yaml.edit(src, {"nodes", 2, "patches"}, yaml.array{"@./a.yaml", "@./b, c.yaml"})
  t.eq(out, (src:gsub('%["@%./a%.yaml"%]', "['@./a.yaml', '@./b, c.yaml']")))
  -- inside a flow collection a table is written in flow style
  out = yaml.edit(src, {"nodes", 1, "labels"}, {zone = "a", rack = "r1"})
  t.eq(yaml.decode(out).nodes[1].labels, {zone = "a", rack = "r1"})
  t.match(out, "labels: {rack: r1, zone: a}}")
  -- an empty flow map takes its first key
  t.eq(yaml.edit(src, {"empty", "k"}, "v"), (src:gsub("empty: {}", "empty: {k: v}")))
  -- a scalar with a comma replacing one inside a flow map is quoted
  out = yaml.edit(src, {"nodes", 1, "hostname"}, "k8s-3, spare")
  t.eq(yaml.decode(out).nodes[1].hostname, "k8s-3, spare")
end

function test_edit_refuses_missing_parents_and_bad_paths()
  local src = read(TALCONFIG)
  t.raises("path nodes%[4%] does not exist %(the sequence has 3 items%)", yaml.edit, src, {"nodes", 4, "x"}, 1)
  t.raises("path nodez does not exist", yaml.edit, src, {"nodez", 1, "x"}, 1)
  t.raises("bad argument #2", yaml.edit, src, {}, 1)
  t.raises("bad argument #2", yaml.edit, src, {"nodes", 0}, 1)
  local cyc = {}; cyc.self = cyc
  t.raises("nested deeper than 512 levels %(or is cyclic%)", yaml.edit, "a: {}\n", {"a", "b"}, cyc)
  t.raises("a key that is neither a string nor a number", yaml.edit, "a: {}\n", {"a", "b"}, {[true] = 1})
  t.raises("talconfig%.yaml:%d+:%d+: did not find expected node content", yaml.edit, "a: 1\nb: [\n", {"a"}, 2, {name = "talconfig.yaml"})
end

function test_edit_result_always_parses()
  local out = yaml.edit("a: 1\n", {"a"}, "needs: quoting # really")
  t.eq(yaml.decode(out).a, "needs: quoting # really")
  out = yaml.edit("a: 1\n", {"a"}, "line1\nline2")
  t.eq(yaml.decode(out).a, "line1\nline2")
  out = yaml.edit("a: |\n  old\n  text\nb: 2\n", {"a"}, "new")
  t.eq(yaml.decode(out), {a = "new", b = 2})
end

-- as runbook.json (test_json.lua): a small decode forces no collection
function test_small_decodes_do_not_force_a_collection()
  local survived, cleared = require("support").no_collection_during(function()
    return {yaml.decode("a: [1, 2, {b: c}]\n"), yaml.decode_all("--- 1\n--- 2\n")}
  end)
  t.truthy(survived, "a collection ran during the decodes")
  t.truthy(cleared, "the probe: a collection clears it")
end

-- A round trip through this (YAML 1.2) decoder cannot see it: a string a
-- YAML 1.1 reader (PyYAML, older Go yaml) would read as a bool, an octal
-- or a sexagesimal number is quoted all the same (docs/bindings.md).
function test_encode_quotes_yaml_1_1_words_and_numbers()
  for _, s in ipairs{"yes", "Yes", "YES", "no", "y", "N", "on", "Off", "0755", "1:20", "1_000", "0b101"} do
    t.eq(yaml.encode({v = s}), "v: '" .. s .. "'\n", "encoding of " .. s)
  end
end

-- The second guard: fewer than 1,000,000 nodes, but more than 100 times the
-- nodes written (6 levels of 9 aliases: 531,441 from about 60)
function test_aliases_expanding_100_times_the_text_are_refused()
  local buf = {'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'}
  local prev = "a"
  for _, name in ipairs{"b", "c", "d", "e", "f"} do
    local refs = {}
    for k = 1, 9 do refs[k] = "*" .. prev end
    buf[#buf + 1] = ("%s: &%s [%s]"):format(name, name, table.concat(refs, ","))
    prev = name
  end
  local err = t.raises("too many aliases", yaml.decode, table.concat(buf, "\n") .. "\n")
  t.match(tostring(err), "%(%d+ nodes%)")
  local n = tonumber(tostring(err):match("%((%d+) nodes%)"))
  t.truthy(n < 1000000, "refused by the ratio, not the absolute cap: " .. n)
end
