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
  t.match(err.message, "talconfig%.yaml: cannot edit nodes%[1%]%.patches%[2%]: at nodes%[1%]%.patches it is the alias %*common")
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
