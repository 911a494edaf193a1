-- runbooks/lib: rolling_upgrade's pure parts, configdiff.unexpected (the
-- rollout's config-diff check as a general one) and talconfig's removals.
package.path = (os.getenv("RUNBOOK_SOURCE") or "../..") .. "/runbooks/lib/?.lua;" .. package.path
local configdiff = require "configdiff"
local talconfig = require "talconfig"
local t = require "runbook.testing"

local FQDN, IMAGE = "k8s-1.tail1234.ts.net", "factory.talos.dev/installer/4a0d:v1.10.6"

-- the rollout's expectations, written as configdiff.unexpected takes them
local function rollout_expect()
  local exact, like = configdiff.esc_lines({name = "tailscale"})
  for _, l in ipairs{"certSANs:", "- " .. FQDN, "kubelet:", "nodeIP:", "validSubnets:", "cluster:", "etcd:", "advertisedSubnets:"} do
    exact[#exact + 1] = l
  end
  like[#like + 1] = "^%- '?!?[%x:.]+/%d+'?$"
  return {image = IMAGE, added = exact, added_like = like, sans = "added"}
end

local DIFFS = {
  -- the rollout's own change: the SAN (first one), the image, the ESC
  "--- a\n+++ b\n@@ -1,4 +1,5 @@\n-    certSANs: []\n+    certSANs:\n+        - " .. FQDN .. "\n-        image: old\n+        image: "
    .. IMAGE .. "\n+---\n+apiVersion: v1alpha1\n+kind: ExtensionServiceConfig\n+name: tailscale\n+environment:\n+    - TS_AUTHKEY=x\n",
  -- something else too: a kubelet image
  "--- a\n+++ b\n@@ -1,2 +1,2 @@\n-        image: ghcr.io/siderolabs/kubelet:v1.33.3\n+        image: ghcr.io/siderolabs/kubelet:v1.34.0\n"
    .. "+    certSANs:\n+        - " .. FQDN .. "\n+    hostname: other\n",
  "No changes.\n",
}

function test_unexpected_reads_the_rollouts_diffs_as_rollout_surprises_does()
  for i, d in ipairs(DIFFS) do
    local a = configdiff.rollout_surprises(d, {fqdn = FQDN, image = IMAGE})
    local b = configdiff.unexpected(d, rollout_expect())
    t.eq(#b > 0, #a > 0, "diff " .. i)
  end
  t.eq(configdiff.unexpected(DIFFS[2], rollout_expect()), {"+        image: ghcr.io/siderolabs/kubelet:v1.34.0",
                                                          "+    hostname: other"})
end

function test_unexpected_only_the_image_of_an_upgrade()
  local d = "--- a\n+++ b\n@@ -1 +1 @@\n-        image: factory.talos.dev/installer/abc:v1.10.6\n"
            .. "+        image: factory.talos.dev/installer/abc:v1.11.3\n"
  t.eq(configdiff.unexpected(d, {image = "factory.talos.dev/installer/abc:v1.11.3"}), {})
  t.eq(#configdiff.unexpected(d, {image = "factory.talos.dev/installer/abc:v1.12.0"}), 1)
  t.eq(#configdiff.unexpected("No changes.", {image = true}), 1)        -- the change is missing
  t.eq(configdiff.unexpected("No changes.", {empty_ok = true}), {})
end

local TEXT = [[
clusterName: c   # the cluster
talosVersion: v1.10.6 # keep in step
nodes:
  - hostname: a   # first
    ipAddress: 10.0.0.1
    schematic:
      customization:
        extraKernelArgs:
          - net.ifnames=0
        systemExtensions:
          officialExtensions:
            - siderolabs/intel-ucode
  - hostname: b
    ipAddress: 10.0.0.2
]]

local function read(text)
  local fs = require "runbook.fs"
  local dir = fs.tmpdir("rolling")
  fs.write(dir .. "/t.yaml", text)
  local c = talconfig.read(dir .. "/t.yaml")
  fs.remove(dir .. "/t.yaml"); fs.remove(dir)
  return c
end

function test_add_then_remove_gives_the_text_back_byte_for_byte()
  local c = read(TEXT)
  local entry = {name = "nut-client", environment = {"NUT_PASS=${NUT_PASS}"}}
  local added = talconfig.editor(TEXT):add_schematic_extension(c.nodes[1], "siderolabs/nut-client")
                  :add_extension_service(c.nodes[1], entry):add_extension_service(c.nodes[2], entry):apply()
  t.truthy(added:find("- siderolabs/nut-client", 1, true))
  t.truthy(added:find("NUT_PASS=${NUT_PASS}", 1, true))
  local c2 = read(added)
  local ed = talconfig.editor(added):remove_schematic_extension(c2.nodes[1], "siderolabs/nut-client")
  ed:remove_extension_service(c2.nodes[1], "nut-client")
  ed:remove_extension_service(c2.nodes[2], "nut-client")
  t.eq(ed:apply(), TEXT)
end

function test_talos_version_keeps_its_comment()
  t.truthy(talconfig.editor(TEXT):set_talos_version("v1.11.3"):apply():find("talosVersion: v1.11.3 # keep in step", 1, true))
end

function test_batch_sizes()
  local rolling = require "rolling_upgrade"
  t.eq(rolling.batch_size("1", 10), 1)
  t.eq(rolling.batch_size("25%", 10), 3)
  t.eq(rolling.batch_size("50", 4), 4)
  local ok, err = pcall(rolling.batch_size, "x", 4)
  t.eq(ok, false)
  t.truthy(tostring(err):find("a count of workers", 1, true))
end

-- select's rules as the rollout uses them (issue #33.2): a choice of no
-- node at all is refused, a group member that shares_ok allows may be left
-- out of a shared schematic: block, a done node is skipped with its node
local function fleet()
  return {{hostname = "cp-1", control_plane = true},
          {hostname = "w-1", group_key = "worker", schematic_at = "group"},
          {hostname = "w-2", group_key = "worker", schematic_at = "group"}}
end

function test_select_refuses_an_empty_choice()
  local rolling = require "rolling_upgrade"
  local ok, err = pcall(rolling.select, {all = fleet(), exclude = {"cp-1", "w-1", "w-2"}, file = "talconfig.yaml",
                                         refuse_empty = true, done = function() return false end})
  t.eq(ok, false)
  t.truthy(tostring(err.message or err):find("--exclude cp-1,w-1,w-2 choose no node of talconfig.yaml", 1, true))
  -- without refuse_empty the same choice is "nothing to do"
  local sel = rolling.select{all = fleet(), exclude = {"cp-1", "w-1", "w-2"}, file = "talconfig.yaml",
                             done = function() return false end}
  t.eq(#sel.nodes, 0)
end

function test_select_group_members_and_done_nodes()
  local rolling = require "rolling_upgrade"
  local all = fleet()
  local ok = pcall(rolling.select, {all = all, limit = {"w-1"}, file = "talconfig.yaml", group_blocks = true,
                                    done = function() return false end})
  t.eq(ok, false)    -- w-2 shares w-1's schematic: block
  local sel = rolling.select{all = all, limit = {"w-1"}, file = "talconfig.yaml", group_blocks = true,
    done = function(n) return n.hostname == "cp-1", "has it" end,
    shares_ok = function(n) return n.hostname == "w-2" end}
  t.eq(#sel.nodes, 1)
  t.eq(sel.nodes[1].hostname, "w-1")
  t.eq(sel.skipped[1].node, all[1])
end
