-- runbook.yaml.edit on files written the way people write them: each
-- fixture has one feature (comments between and after items, quotes,
-- 2/3/4-space indents, column-0 comments, flow lists, merge keys, aliases)
-- and each test checks the exact bytes: only the lines the edit must
-- change change.
local yaml = require "runbook.yaml"
local t = require "runbook.testing"

local function lines(...) return table.concat({...}, "\n") .. "\n" end

function test_append_keeps_comments_blank_lines_and_quotes()
  local text = lines(
    "nodes:",
    "  - hostname: k8s-1",
    "    patches:",
    "      - \"@./patches/a.yaml\"   # first",
    "",
    "      # between items",
    "      - '@./patches/b.yaml'",
    "# Global patches",
    "patches:",
    "  - \"@./patches/all.yaml\"")
  local out = yaml.edit(text, {"nodes", 1, "patches", 3}, "@./patches/tailscale-k8s-1.yaml")
  t.eq(out, lines(
    "nodes:",
    "  - hostname: k8s-1",
    "    patches:",
    "      - \"@./patches/a.yaml\"   # first",
    "",
    "      # between items",
    "      - '@./patches/b.yaml'",
    "      - '@./patches/tailscale-k8s-1.yaml'",
    "# Global patches",
    "patches:",
    "  - \"@./patches/all.yaml\""))
end

function test_append_after_a_trailing_comment_on_the_last_item()
  local text = lines("patches:", "  - a.yaml # keep me", "other: 1")
  t.eq(yaml.edit(text, {"patches", 2}, "b.yaml"), lines("patches:", "  - a.yaml # keep me", "  - b.yaml", "other: 1"))
end

function test_append_follows_four_and_three_space_files()
  local four = lines("nodes:", "    -   hostname: a", "        ip: 1", "    -   hostname: b", "        ip: 2")
  local out = yaml.edit(four, {"nodes", 3}, {hostname = "c", ip = 3})
  t.eq(yaml.decode(out).nodes[3], {hostname = "c", ip = 3})
  t.match(out, "\n    %- hostname: c\n      ip: 3\n$")
  local three = lines("a:", "   b:", "      - x")
  t.eq(yaml.edit(three, {"a", "b", 2}, "z"), lines("a:", "   b:", "      - x", "      - z"))
end

function test_append_a_map_item_writes_the_files_block_style()
  local text = lines("machine:", "  extensionServices:", "    - name: other", "      environment:", "        - A=1")
  local out = yaml.edit(text, {"machine", "extensionServices", 2},
                        yaml.order({name = "tailscale", environment = {"TS_AUTHKEY=${TS_AUTHKEY}", "TS_ROUTES=10.96.0.0/12"}},
                                   {"name", "environment"}))
  t.eq(out, lines("machine:", "  extensionServices:", "    - name: other", "      environment:", "        - A=1",
                  "    - name: tailscale", "      environment:", "        - TS_AUTHKEY=${TS_AUTHKEY}",
                  "        - TS_ROUTES=10.96.0.0/12"))
end

function test_append_to_a_flow_list_stays_flow()
  t.eq(yaml.edit("patches: ['@./a.yaml', \"@./b.yaml\"]\n", {"patches", 3}, "@./c.yaml"),
       "patches: ['@./a.yaml', \"@./b.yaml\", \"@./c.yaml\"]\n")   -- quoted as the last item is
  t.eq(yaml.edit("patches: []\n", {"patches", 1}, "x"), "patches: [x]\n")
end

function test_a_missing_sequence_is_created_as_the_maps_new_key()
  local text = lines("nodes:", "  - hostname: k8s-1", "    ipAddress: 10.0.0.1", "  # next node", "  - hostname: k8s-2")
  t.eq(yaml.edit(text, {"nodes", 1, "certSANs", 1}, "k8s-1.tail1234.ts.net"),
       lines("nodes:", "  - hostname: k8s-1", "    ipAddress: 10.0.0.1", "    certSANs:", "      - k8s-1.tail1234.ts.net",
             "  # next node", "  - hostname: k8s-2"))
  -- a file that writes sequences under their key keeps doing so
  local flat = lines("a:", "  list:", "  - x", "  b: 1")
  t.eq(yaml.edit(flat, {"a", "new", 1}, "z"), lines("a:", "  list:", "  - x", "  b: 1", "  new:", "  - z"))
end

function test_column_zero_comments_inside_a_collection()
  local text = lines("nodes:", "  - hostname: a", "# a comment at column 0, inside the list", "  - hostname: b")
  t.eq(yaml.edit(text, {"nodes", 2, "ip"}, "10.0.0.2"),
       lines("nodes:", "  - hostname: a", "# a comment at column 0, inside the list", "  - hostname: b", "    ip: 10.0.0.2"))
  t.eq(yaml.edit(text, {"nodes", 3}, {hostname = "c"}),
       lines("nodes:", "  - hostname: a", "# a comment at column 0, inside the list", "  - hostname: b", "  - hostname: c"))
end

function test_an_edit_through_an_alias_is_refused_naming_the_anchor()
  local text = lines("common: &common", "  - a.yaml", "nodes:", "  - hostname: x", "    patches: *common")
  local err = t.raises(yaml.edit, text, {"nodes", 1, "patches", 2}, "b.yaml", {name = "talconfig.yaml"})
  t.eq(err.kind, "yaml")
  -- named where the alias is written: line 5, column 14
  t.match(err.message, "^talconfig%.yaml:5:14: cannot edit nodes%[1%]%.patches%[2%]: at nodes%[1%]%.patches it is the alias %*common")
  t.eq({err.line, err.column}, {5, 14})
  -- the anchored node itself is shared too
  err = t.raises(yaml.edit, text, {"common", 2}, "b.yaml")
  t.match(err.message, "the anchor &common, which an alias uses elsewhere")
  -- an anchor nobody aliases is an ordinary node
  t.eq(yaml.edit("a: &x [1]\n", {"a", 2}, 2), "a: &x [1, 2]\n")
end

function test_merge_keys_refused_deep_and_overridden_locally()
  local text = lines("base: &m720q", "  installDisk: /dev/sda", "  patches:", "    - a.yaml",
                     "nodes:", "  - <<: *m720q", "    hostname: k8s-1")
  -- a list the node only has through the merge: changing it would change every merger
  local err = t.raises(yaml.edit, text, {"nodes", 1, "patches", 2}, "b.yaml")
  t.match(err.message, "the key comes from the merge <<: %*m720q")
  -- a scalar it has through the merge is overridden by an explicit key in the node
  local out = yaml.edit(text, {"nodes", 1, "installDisk"}, "/dev/nvme0n1")
  t.eq(out, lines("base: &m720q", "  installDisk: /dev/sda", "  patches:", "    - a.yaml",
                  "nodes:", "  - <<: *m720q", "    hostname: k8s-1", "    installDisk: /dev/nvme0n1"))
  t.eq(yaml.decode(out).base.installDisk, "/dev/sda")
end

function test_the_result_must_read_back_as_the_change_and_nothing_else()
  -- the key 0x10 is the integer 16: setting the string key "0x10" would
  -- not read back as asked, so it is refused instead of returned
  local err = t.raises(yaml.edit, "0x10: a\n", {"0x10"}, "b", {name = "f.yaml"})
  t.match(err.message, "f%.yaml: the edited text would not read back as the document with only this change")
end

function test_a_missing_parent_and_a_too_far_index_are_named()
  local err = t.raises(yaml.edit, "nodes:\n  - a\n", {"nodes", 3}, "c")
  t.match(err.message, "path nodes%[3%] does not exist %(the sequence has 1 items%)")
  err = t.raises(yaml.edit, "a: 1\n", {"b", "c"}, 1)
  t.match(err.message, "path b does not exist %(no key 'b'%)")
end

-- #17 item 13: the refusals for a document, a value or a path nested past
-- 512 levels (run under ASan by make test-asan: nothing may leak)
function test_deep_nesting_is_refused_cleanly()
  t.raises("nested deeper than 512 levels", yaml.edit, string.rep("- ", 600) .. "x\n", {1}, "y")
  t.raises("nested deeper than 512 levels", yaml.edit, string.rep("[", 600) .. string.rep("]", 600) .. "\n", {1}, "y")
  local v = {}
  local cur = v
  for _ = 1, 600 do cur.a = {}; cur = cur.a end
  t.raises("nested deeper than 512 levels", yaml.edit, "a: 1\n", {"a"}, v)
  t.raises("nested deeper than 512 levels", yaml.edit, "a:\n  x: 1\n", {"a", "b"}, v)
  local path = {}
  for i = 1, 600 do path[i] = "k" end
  t.raises("does not exist", yaml.edit, "a: 1\n", path, 1)
end

-- found by fuzz_edit: an appended key whose value is .nan reads back as NaN
-- (the harness compared through JSON, which has no NaN; the edit was right)
function test_edit_appends_a_nan_value()
  local out = yaml.edit("m: \n-", {"y"}, 0 / 0)
  local back = yaml.decode(out)
  t.truthy(back.y ~= back.y, out)
  t.eq(#back.m, 1)
end

-- found by fuzz_edit: a missing key whose path goes on with index 1 gets a
-- new list holding the value; for nil that is [null], never {} (a map)
function test_a_new_list_for_nil_is_a_list_of_null()
  local out = yaml.edit("a: 1\n", {"b", 1}, nil)
  t.eq(out, "a: 1\nb:\n  - null\n")
  local back = yaml.decode(out)
  t.eq(#back.b, 1)
  t.eq(back.b[1], yaml.null)
  t.eq(yaml.edit("a: 1\n", {"b", 1}, "x"), "a: 1\nb:\n  - x\n")
end

-- {====== several edits at once: yaml.edit(text, {{path, value}, ...})

--- The edits one by one, each on the text the one before it left.
local function one_by_one(text, edits)
  for _, e in ipairs(edits) do text = yaml.edit(text, e[1], e[2]) end
  return text
end

local FLEET = lines(
  "# a fleet",
  "nodes:",
  "  - hostname: a   # first",
  "    ipAddress: 10.0.0.1",
  "    patches:",
  "      - \"@./a.yaml\"",
  "  - hostname: b",
  "    ipAddress: 10.0.0.2",
  "    certSANs: [b.lan]",
  "  - hostname: c",
  "    ipAddress: 10.0.0.3",
  "other: {x: 1}")

function test_several_edits_equal_the_same_edits_one_by_one()
  local cases = {
    -- disjoint places, each node edited four ways
    {{{"nodes", 1, "ipAddress"}, "10.1.0.1"}, {{"nodes", 1, "patches", 2}, "@./t.yaml"},
     {{"nodes", 1, "certSANs", 1}, "a.ts.net"}, {{"nodes", 2, "certSANs", 2}, "b.ts.net"},
     {{"nodes", 2, "patches", 1}, "@./t-b.yaml"}, {{"nodes", 3, "talosImageURL"}, "factory.talos.dev/installer/x"},
     {{"nodes", 3, "extensionServices", 1}, {name = "tailscale"}}},
    -- two new keys into one map, in this order
    {{{"nodes", 3, "x"}, 1}, {{"nodes", 3, "y"}, 2}},
    -- the second append exists only once the first is in: a second round
    {{{"nodes", 1, "patches", 2}, "@./b.yaml"}, {{"nodes", 1, "patches", 3}, "@./c.yaml"}},
    -- the same place twice: the last one wins, as one by one
    {{{"nodes", 2, "ipAddress"}, "1.1.1.1"}, {{"nodes", 2, "ipAddress"}, "2.2.2.2"}},
    {{{"nodes", 3, "z"}, 1}, {{"nodes", 3, "z"}, 2}},
    -- a new list, then an item of it; a flow map and a flow list twice
    {{{"nodes", 3, "certSANs", 1}, "c1"}, {{"nodes", 3, "certSANs", 2}, "c2"}},
    {{{"other", "y"}, 2}, {{"other", "z"}, 3}, {{"nodes", 2, "certSANs", 2}, "b2"}, {{"nodes", 2, "certSANs", 3}, "b3"}},
    -- an edit inside a map, then the map replaced, then an edit in the new map
    {{{"other", "x"}, 2}, {{"other"}, {y = 1}}, {{"other", "y"}, 5}, {{"nodes", 1, "hostname"}, "a1"}},
  }
  for i, edits in ipairs(cases) do
    t.eq(yaml.edit(FLEET, edits), one_by_one(FLEET, edits), "case " .. i)
  end
end

function test_several_edits_to_a_large_file_parse_it_about_once()
  local b = {"nodes:"}
  for i = 1, 400 do
    b[#b + 1] = ("  - hostname: n%d\n    ipAddress: 10.0.%d.%d\n    installDisk: /dev/sda"):format(i, i // 256, i % 256)
  end
  local text = table.concat(b, "\n") .. "\n"
  local edits = {}
  for i = 1, 400 do
    edits[#edits + 1] = {{"nodes", i, "talosImageURL"}, "factory.talos.dev/installer/" .. i}
    edits[#edits + 1] = {{"nodes", i, "certSANs", 1}, "n" .. i .. ".ts.net"}
  end
  local out = yaml.edit(text, edits)
  local doc = yaml.decode(out)
  t.eq(#doc.nodes, 400)
  t.eq(doc.nodes[400].talosImageURL, "factory.talos.dev/installer/400")
  t.eq(doc.nodes[1].certSANs[1], "n1.ts.net")
  -- the same bytes as the edits one by one (checked on a sample: all 800
  -- one by one is the quadratic cost this form exists to avoid)
  t.eq(yaml.edit(text, {edits[1], edits[2], edits[799], edits[800]}), one_by_one(text, {edits[1], edits[2], edits[799], edits[800]}))
end

function test_a_refused_edit_among_several_names_itself_and_changes_nothing()
  local err = t.raises(yaml.edit, FLEET, {{{"nodes", 1, "ipAddress"}, "x"}, {{"nodes", 9, "ipAddress"}, "y"}}, nil, {name = "talconfig.yaml"})
  t.match(tostring(err), "talconfig%.yaml:%d+:%d+: path nodes%[9%] does not exist")
  -- the one that fails only after its predecessors: same message as one by one
  local e2 = t.raises(yaml.edit, FLEET, {{{"nodes", 3, "patches", 1}, "p"}, {{"nodes", 3, "patches", 3}, "q"}})
  local e1 = t.raises(one_by_one, FLEET, {{{"nodes", 3, "patches", 1}, "p"}, {{"nodes", 3, "patches", 3}, "q"}})
  t.eq(tostring(e2), tostring(e1))
end

function test_several_edits_bad_arguments()
  t.match(tostring(t.raises(yaml.edit, FLEET, {{{"a"}, 1}, "x"})), "edit 2 must be a table {path, value}")
  t.match(tostring(t.raises(yaml.edit, FLEET, {{{"a"}, 1}, {{}, 1}})), "edit 2: empty path")
  t.match(tostring(t.raises(yaml.edit, FLEET, {{{"a", 0}, 1}})), "edit 1: item 2 must be a key")
  -- an empty table is an empty path, not an empty list of edits
  t.match(tostring(t.raises(yaml.edit, FLEET, {}, 1)), "empty path")
end

-- }======

-- the editor skips a sibling node in one step (a jump recorded with the
-- events): the place after a skipped node is where its last content ends,
-- whether that node is a block map, a flow list, a nested mix or a scalar.
-- Each edit here lands after such a sibling; the exact bytes are checked.
function test_edits_after_skipped_nested_siblings()
  local text = lines(
    "a:",
    "  b: {x: [1, 2], y: {z: 3}}",
    "  c:",
    "    - [p, q]",
    "    - r: {s: t}",
    "  d: [1, [2, 3]]   # flow, nested",
    "  e: plain",
    "f:",
    "  - g: 1",
    "    h:",
    "      - i",
    "  - g: 2")
  local out = yaml.edit(text, {
    {{"a", "e"}, "edited"},
    {{"a", "new"}, "added"},
    {{"f", 2, "g"}, 20},
    {{"f", 1, "h", 2}, "j"},
  })
  t.eq(out, lines(
    "a:",
    "  b: {x: [1, 2], y: {z: 3}}",
    "  c:",
    "    - [p, q]",
    "    - r: {s: t}",
    "  d: [1, [2, 3]]   # flow, nested",
    "  e: edited",
    "  new: added",
    "f:",
    "  - g: 1",
    "    h:",
    "      - i",
    "      - j",
    "  - g: 20"))
  t.eq(yaml.decode(out).a.b, {x = {1, 2}, y = {z = 3}})
end

-- {====================================================== UTF-8 text
-- libyaml's marks count characters, the editor cuts bytes: every kind of
-- edit, with a 2-, 3- and 4-byte character before the place, inside the old
-- and new values, and after it. Each case is written once with {B}, {I} and
-- {A} standing for the character, and checked byte for byte.
local WIDE = {"é", "—", "😀"}   -- U+00E9 (2 bytes), U+2014 em dash (3), U+1F600 (4)

local function fill(s, c) return (s:gsub("{[BIA]}", c)) end

local UTF8_CASES = {
  {what = "replace a plain scalar",
   text = {"# {B} talhelper config — {B}", "nodes:", "  - hostname: n{B}1 # {B}",
           "    talosImageURL: factory.talos.dev/installer/{I}old   # after {A}", "    ipAddress: 10.0.0.1 # {A}"},
   path = {"nodes", 1, "talosImageURL"}, value = "factory.talos.dev/installer/{I}new",
   want = {"# {B} talhelper config — {B}", "nodes:", "  - hostname: n{B}1 # {B}",
           "    talosImageURL: factory.talos.dev/installer/{I}new   # after {A}", "    ipAddress: 10.0.0.1 # {A}"}},
  {what = "replace a double-quoted scalar",
   text = {"a: \"{B}\"", "b: \"x{I}y\" # {A}", "c: {A}"}, path = {"b"}, value = "{I}z",
   want = {"a: \"{B}\"", "b: \"{I}z\" # {A}", "c: {A}"}},
  {what = "replace a literal block scalar",
   text = {"k{B}: 1", "desc: |", "  line {I}", "  two", "tail: {A}"}, path = {"desc"}, value = "new {I}",
   want = {"k{B}: 1", "desc: new {I}", "tail: {A}"}},
  {what = "replace a scalar with a block map",
   text = {"# {B}", "machine: {I}", "after: {A}"}, path = {"machine"}, value = function(c) return {note = "n" .. c} end,
   want = {"# {B}", "machine:", "  note: n{I}", "after: {A}"}},
  {what = "replace a flow list",
   text = {"x: {B}", "l: [{I}, b] # {A}", "y: {A}"}, path = {"l"}, value = function(c) return {"c" .. c, "d"} end,
   want = {"x: {B}", "l: [c{I}, d] # {A}", "y: {A}"}},
  {what = "insert a key into a block map",
   text = {"nodes:", "  - hostname: {B}", "    ipAddress: 10.0.0.{I} # {A}", "# {A}", "other: {A}"},
   path = {"nodes", 1, "talosImageURL"}, value = "f/{I}",
   want = {"nodes:", "  - hostname: {B}", "    ipAddress: 10.0.0.{I} # {A}", "    talosImageURL: f/{I}", "# {A}",
           "other: {A}"}},
  {what = "insert a key into a flow map",
   text = {"# {B}", "m: {k{B}: v{I}}  # {A}", "z: {A}"}, path = {"m", "p"}, value = "w{I}",
   want = {"# {B}", "m: {k{B}: v{I}, p: w{I}}  # {A}", "z: {A}"}},
  {what = "create a sequence under a new key",
   text = {"nodes:", "  - hostname: h{B} # {B}", "    ip: 1 # {A}", "x: {A}"}, path = {"nodes", 1, "certSANs", 1},
   value = "h{I}.example",
   want = {"nodes:", "  - hostname: h{B} # {B}", "    ip: 1 # {A}", "    certSANs:", "      - h{I}.example", "x: {A}"}},
  {what = "append to a block sequence",
   text = {"# {B}", "patches:", "  - '@./{B}.yaml'  # {I}", "  - \"@./b{I}.yaml\"", "# {A}", "x: {A}"},
   path = {"patches", 3}, value = "@./c{I}.yaml",
   want = {"# {B}", "patches:", "  - '@./{B}.yaml'  # {I}", "  - \"@./b{I}.yaml\"", "  - \"@./c{I}.yaml\"", "# {A}",
           "x: {A}"}},
  {what = "append a map to a block sequence",
   text = {"svc:", "  - name: {B}", "    env: [{I}]", "y: {A}"}, path = {"svc", 2},
   value = function(c) return yaml.order({name = "t" .. c, env = yaml.array({"K=" .. c})}, {"name", "env"}) end,
   want = {"svc:", "  - name: {B}", "    env: [{I}]", "  - name: t{I}", "    env:", "      - K={I}", "y: {A}"}},
  {what = "append to a flow sequence",
   text = {"l: [a{B}, \"b{I}\"]  # {A}", "m: {A}"}, path = {"l", 3}, value = "c{I}",
   want = {"l: [a{B}, \"b{I}\", \"c{I}\"]  # {A}", "m: {A}"}},
  {what = "override a merged key locally",
   text = {"base: &b {x: {B}}", "n:", "  <<: *b", "  y: {I} # {A}", "z: {A}"}, path = {"n", "x"}, value = "{I}",
   want = {"base: &b {x: {B}}", "n:", "  <<: *b", "  y: {I} # {A}", "  x: {I}", "z: {A}"}},
  {what = "replace under a non-ASCII key",
   text = {"{B}ключ{B}:", "  {I}: old # {A}", "z: {A}"}, path = {"{B}ключ{B}", "{I}"}, value = "new{I}",
   want = {"{B}ключ{B}:", "  {I}: new{I} # {A}", "z: {A}"}},
}

local function fill_value(v, c)
  if type(v) == "function" then return v(c) end
  return fill(v, c)
end

function test_utf8_every_kind_of_edit_with_wide_characters_around()
  for _, c in ipairs(WIDE) do
    for _, k in ipairs(UTF8_CASES) do
      local text = fill(lines(table.unpack(k.text)), c)
      local path = {}
      for i, p in ipairs(k.path) do path[i] = type(p) == "string" and fill(p, c) or p end
      local ok, out = pcall(yaml.edit, text, path, fill_value(k.value, c), {name = "u.yaml"})
      t.eq(ok and out or tostring(out), fill(lines(table.unpack(k.want)), c), k.what .. " (" .. #c .. "-byte)")
    end
  end
end

function test_utf8_many_edits_in_one_round()
  for _, c in ipairs(WIDE) do
    -- a replace, a flow append, a block insert, a block append and a
    -- replace in the map just inserted into, in one file
    local text = fill(lines("# " .. c .. " fleet", "a: " .. c, "l: [x" .. c .. "]", "m:", "  k: " .. c .. " # " .. c,
                      "s:", "  - " .. c), c)
    local edits = {{{"a"}, "b" .. c}, {{"l", 2}, c}, {{"m", "q"}, c .. c}, {{"s", 2}, "t" .. c}, {{"m", "k"}, "v"}}
    local want_text = lines("# " .. c .. " fleet", "a: b" .. c, "l: [x" .. c .. ", " .. c .. "]", "m:",
                      "  k: v # " .. c, "  q: " .. c .. c, "s:", "  - " .. c, "  - t" .. c)
    t.eq(yaml.edit(text, edits), want_text, #c .. "-byte")
  end
end

function test_utf8_issue_26_em_dash_in_a_comment_before_talosImageURL()
  -- the shape of issue #26: a comment with an em dash far above the node
  local head = {"clusterName: home", "# Nodes — the control plane first"}
  for i = 1, 40 do head[#head + 1] = ("# filler %d — é 😀"):format(i) end
  local text = lines(table.unpack(head)) .. lines("nodes:", "  - hostname: k8s-1",
                                                  "    talosImageURL: factory.talos.dev/installer/abc")
  local out = yaml.edit(text, {"nodes", 1, "talosImageURL"}, "factory.talos.dev/installer/def",
                        {name = "talconfig.yaml"})
  t.eq(out, lines(table.unpack(head)) .. lines("nodes:", "  - hostname: k8s-1",
                                               "    talosImageURL: factory.talos.dev/installer/def"))
end

function test_utf8_after_a_byte_order_mark()
  local bom = "\239\187\191"
  t.eq(yaml.edit(bom .. "# é\na: —\nb: 1\n", {"b"}, 2), bom .. "# é\na: —\nb: 2\n")
  t.eq(yaml.edit(bom .. "a: 1\n", {"a"}, 2), bom .. "a: 2\n")
end

function test_utf16_is_refused_with_the_name()
  local err = t.raises(yaml.edit, "\255\254a\0:\0 \0001\0\n\0", {"a"}, 2, {name = "w.yaml"})
  t.eq(err.kind, "yaml")
  t.match(err.message, "^w%.yaml: the text is UTF%-16")
end
function test_refusals_name_the_line_and_column_in_characters()
  -- the parent that lacks the path, on the line after wide characters
  local text = lines("# — 😀", "a:", "  b: 1", "l: [é, —]")
  local err = t.raises(yaml.edit, text, {"a", "c", "d"}, 1, {name = "t.yaml"})
  t.match(err.message, "^t%.yaml:3:3: path a%.c does not exist %(no key 'c'%)")
  err = t.raises(yaml.edit, text, {"l", 5}, 1, {name = "t.yaml"})
  t.match(err.message, "^t%.yaml:4:4: path l%[5%] does not exist")     -- "[" is the 4th character
  err = t.raises(yaml.edit, "x: é\nl:\n  - a\n", {"l", 1}, {k = 1}, {name = "t.yaml"})
  t.match(err.message, "^t%.yaml:3:5: replacing a sequence item with a map or list is not supported")
end
-- }======================================================
