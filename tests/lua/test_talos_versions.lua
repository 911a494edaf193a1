--! dry-run
-- Issue #27: the Talos and talosctl versions the runbooks meet, and the
-- resources they read, each from siderolabs/talos at the tag named
-- (docs/simulation.md, fidelity).
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
local R = src .. "/runbooks"
package.path = R .. "/?.lua;" .. R .. "/lib/?.lua;" .. package.path
local world = dofile(R .. "/sim/world.lua")
package.loaded["runbook.world"] = world
local exec = require "runbook.exec"
local json = require "runbook.json"
local t = require "runbook.testing"
local talos = require "talos"

local IMG = "factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:"

local function load(name)
  world.load(R .. "/scenarios/" .. name)
  if talos.forget_client_version then talos.forget_client_version() end   -- (absent before #27)
  return world.state()
end

local function get(node, what)
  return json.decode_all(exec.run({"talosctl", "-n", node, "get", what, "-o", "json"}).stdout)
end

-- {====== #27.1 NodeIPConfig and EtcdConfig (controllers/k8s/nodeip_config.go v1.7.0, v1.11.0, v1.13.0;
-- controllers/etcd/config.go v1.8.0 .. v1.13.0; resources/etcd/config.go: advertiseValidSubnets omitempty)

function test_nodeipconfig_holds_talos_default_when_nothing_is_configured()
  load("default.yaml")
  local r = get("192.168.10.11", "nodeipconfigs")[1]
  t.eq(r.spec.validSubnets, {"0.0.0.0/0"})                   -- one per service CIDR (10.43.0.0/16: IPv4)
  t.eq(r.spec.excludeSubnets, {"10.42.0.0/16", "10.43.0.0/16"})  -- pod, then service CIDRs
  local kubelet, etcd = talos.address_pins("192.168.10.11")
  t.eq(kubelet, {"0.0.0.0/0"})
  t.eq(etcd, {})
end

function test_etcdconfig_shows_no_default_and_excludes_only_vips()
  local W = load("default.yaml")
  local r = get("192.168.10.11", "etcdconfigs")[1]
  t.eq(r.spec.advertiseValidSubnets, nil)                    -- omitempty: unset is absent
  t.eq(r.spec.advertiseExcludeSubnets, {})                   -- VIPs only (none), not the pod/service CIDRs
  t.eq(r.spec.listenValidSubnets, nil)
  W.nodes[1].etcd_valid = {"192.168.10.11/32"}
  r = get("192.168.10.11", "etcdconfigs")[1]
  t.eq(r.spec.advertiseValidSubnets, {"192.168.10.11/32"})
  t.eq(r.spec.listenValidSubnets, {"192.168.10.11/32"})      -- listenSubnets unset: the advertised ones
end

function test_pinned_means_no_tailnet_address_gets_through()
  t.eq(talos.admits_tailnet({}), true)
  t.eq(talos.admits_tailnet({"0.0.0.0/0"}), true)            -- Talos's default: not pinned
  t.eq(talos.admits_tailnet({"::/0", "0.0.0.0/0"}), true)
  t.eq(talos.admits_tailnet({"100.64.0.0/10"}), true)
  t.eq(talos.admits_tailnet({"100.100.1.0/24"}), true)       -- a part of it
  t.eq(talos.admits_tailnet({"192.168.10.11/32"}), false)
  t.eq(talos.admits_tailnet({"192.168.10.11"}), false)       -- a bare address is a /32
  t.eq(talos.admits_tailnet({"192.168.0.0/16", "10.0.0.0/8"}), false)
  t.eq(talos.admits_tailnet({"0.0.0.0/0", "!100.64.0.0/10"}), false)
  t.eq(talos.admits_tailnet({"0.0.0.0/0", "!100.64.0.0/16"}), true)   -- removes only some
  t.eq(talos.admits_tailnet({"!100.64.0.0/10", "0.0.0.0/0"}), true)   -- in order: added back
  -- tailscale0's IPv6 address, fd7a:115c:a1e0::/48, judged the same way (#28.5)
  t.eq(talos.admits_tailnet({"::/0"}), true)
  t.eq(talos.admits_tailnet({"192.168.10.11/32", "fdb5:8d3a:10::11/128"}), false)
  t.eq(talos.admits_tailnet({"fd00::/8"}), true)
  t.eq(talos.admits_tailnet({"fd7a:115c:a1e0:ab12::/64"}), true)     -- a part of it
  t.eq(talos.admits_tailnet({"0.0.0.0/0", "::/0", "!100.64.0.0/10"}), true)
  t.eq(talos.admits_tailnet({"0.0.0.0/0", "::/0", "!100.64.0.0/10", "!fd7a:115c:a1e0::/48"}), false)
end

function test_the_pin_appended_to_a_configured_list_removes_the_tailnet()
  local defaults = talos.default_kubelet_subnets({"10.43.0.0/16"})
  t.eq(defaults, {"0.0.0.0/0"})
  t.eq(talos.default_kubelet_subnets({"10.43.0.0/16", "fd00:10:43::/112"}), {"0.0.0.0/0", "::/0"})
  t.eq(talos.pin_entry({"0.0.0.0/0"}, "192.168.10.11", defaults), {"192.168.10.11/32"})
  t.eq(talos.pin_entry({}, "192.168.10.11"), {"192.168.10.11/32"})
  t.eq(talos.pin_entry({}, {"192.168.10.11", "fd00::11"}), {"192.168.10.11/32", "fd00::11/128"})
  t.eq(talos.pin_entry({}, "fd00::11"), {"fd00::11/128"})
  -- a configured list of both families: both tailnet ranges removed
  t.eq(talos.pin_entry({"192.168.10.0/24", "fdb5:8d3a:10::/64"}, "192.168.10.11", defaults),
       {"!100.64.0.0/10", "!fd7a:115c:a1e0::/48"})
  -- a strategic merge appends: the /32 after 100.64.0.0/10 would pin nothing
  local configured = {"192.168.0.0/16", "100.64.0.0/10"}
  local pin = talos.pin_entry(configured, "192.168.10.11", defaults)
  t.eq(pin, {"!100.64.0.0/10"})
  t.eq(talos.admits_tailnet({configured[1], configured[2], pin[1]}), false)
end

function test_a_configured_default_list_is_told_from_talos_default_by_the_config()
  local W = load("default.yaml")
  local r = require("runbook.exec").run({"talosctl", "-n", "192.168.10.11", "patch", "machineconfig", "-p",
    '{"machine": {"kubelet": {"nodeIP": {"validSubnets": ["0.0.0.0/0"]}}}}'})   -- written in the config
  t.eq(r.code, 0, r.stderr)
  t.eq(W.nodes[1].kubelet_valid, {"0.0.0.0/0"})
  local a, b = talos.address_pins("192.168.10.11"), talos.address_pins("192.168.10.12")
  t.eq(a, b)                                                 -- NodeIPConfig alone cannot tell them apart
  t.eq(talos.kubelet_subnets_configured("192.168.10.11"), {"0.0.0.0/0"})
  t.eq(talos.kubelet_subnets_configured("192.168.10.12"), {})
  t.eq(talos.pin_entry(a, "192.168.10.11", nil), {"!100.64.0.0/10"})   -- appended after 0.0.0.0/0
end

function test_the_world_picks_the_node_ip_as_filterips_does()
  local W = load("faults/node-ip-on-tailscale-k8s-1.yaml")
  local n = W.nodes[1]
  n.extensions = {"siderolabs/tailscale"}
  n.esc.tailscale = {environment = {"TS_AUTHKEY=tskey-auth-test0", "TS_HOSTNAME=k8s-1"}}
  n.kubelet_valid = {"0.0.0.0/0"}                            -- configured as Talos's default: lets tailscale0 in
  world._start_tailscale(n)
  t.match(world._node_ip(n), "^100%.")                       -- routed addresses sorted: 100.x first
  n.kubelet_valid = {"192.168.0.0/16", "100.64.0.0/10"}      -- entries in order: the LAN address comes first
  t.eq(world._node_ip(n), "192.168.10.11")
  n.kubelet_valid = {"100.64.0.0/10", "192.168.0.0/16"}
  t.match(world._node_ip(n), "^100%.")
  n.kubelet_valid[#n.kubelet_valid + 1] = "!100.64.0.0/10"    -- what the rollout appends
  t.eq(world._node_ip(n), "192.168.10.11")
  n.kubelet_valid = {"10.0.0.0/8"}                           -- none of its addresses: Talos keeps the old one
  t.eq(world._node_ip(n), "192.168.10.11")
end

-- }======

-- {====== #27.2 upgrade and reboot wait (cmd/talosctl/cmd/talos/upgrade.go, reboot.go, track.go v1.8.0 .. v1.13.0)

function test_v1_13_ignores_wait_false_and_an_exec_timeout_kills_the_upgrade()
  local W = load("faults/talosctl-v1.13.yaml")               -- Talos v1.12.6, boots of 330-420 s
  local r = exec.run({"talosctl", "-n", "192.168.10.11", "upgrade", "--image", IMG .. "v1.12.6", "--wait=false"},
                     {timeout = 300, allow_timeout = true})
  t.eq(r.timed_out, true)                                    -- --drain (default true) set wait back to true
  t.truthy(W.nodes[1].boot_until)                            -- killed mid-upgrade: the node is still booting
  t.match(r.stderr, "WARNING: 192%.168%.10%.11: server version 1%.12%.6 is older than client version 1%.13%.0")
end

function test_v1_13_drain_false_wait_false_returns_at_once_on_the_legacy_api()
  local W = load("faults/talosctl-v1.13.yaml")
  t.eq(talos.upgrade("192.168.10.11", IMG .. "v1.12.6"), false)
  t.truthy(W.nodes[1].boot_until)                            -- asked, still booting
  local flags = talos.upgrade_flags(13, 12, 900)
  t.eq(flags, {"--drain=false", "--wait=false"})
  t.eq(talos.upgrade_flags(12, 12, 900), {"--wait=false"})
  -- an older client has no --drain
  load("default.yaml")
  local r = exec.run({"talosctl", "-n", "192.168.10.11", "upgrade", "--image", IMG .. "v1.10.6", "--drain=false"})
  t.eq(r.code, 1)
  t.match(r.stderr, "unknown flag: %-%-drain")
end

function test_v1_13_client_and_node_wait_for_the_node_with_a_timeout_that_covers_it()
  local W = load("faults/talos-v1.13.yaml")
  t.eq(talos.upgrade("192.168.10.11", IMG .. "v1.13.0", {boot_timeout = 900}), true)
  t.eq(W.nodes[1].boot_until, nil)                           -- back when talosctl returned
  local _, timeout = talos.upgrade_flags(13, 13, 900)
  t.truthy(timeout > 900)
end

function test_reboot_waits_by_default_and_the_wrapper_does_not()
  local W = load("default.yaml")
  W.nodes[1].boot = {400, 400}
  local r = exec.run({"talosctl", "-n", "192.168.10.11", "reboot"}, {timeout = 120, allow_timeout = true})
  t.eq(r.timed_out, true)
  load("default.yaml")
  talos.reboot("192.168.10.12")
  t.truthy(world.state().nodes[2].boot_until)
end

-- }======

-- {====== #27.7, #27.14, #27.16 versions

function test_versions_read_client_and_every_node()
  load("faults/talosctl-v1.13.yaml")
  local v = talos.versions({"192.168.10.11", "192.168.10.12"})
  t.eq(v.client, "v1.13.0")
  t.eq(v.servers, {["192.168.10.11"] = "v1.12.6", ["192.168.10.12"] = "v1.12.6"})
  t.eq(next(v.unreachable), nil)
  t.eq(select(2, talos.client_version()), 13)
end

function test_version_problems_name_the_range_and_the_skew()
  t.eq(talos.version_problems("v1.10.6", {a = "v1.10.6", b = "v1.10.5"}), {})
  t.eq(talos.version_problems("v1.13.0", {a = "v1.12.6"}), {})              -- one minor newer
  local p = talos.version_problems("v1.13.0", {a = "v1.10.6", b = "v1.10.6"})
  t.eq(#p, 1)
  t.match(p[1], "talosctl v1%.13%.0 does not fit Talos v1%.10%.6 on a, b: use talosctl v1%.10%.x")
  p = talos.version_problems("v1.11.0", {a = "v1.12.0"})                    -- older than the cluster
  t.match(p[1], "does not fit")
  p = talos.version_problems("v1.7.6", {a = "v1.7.6"})
  t.match(p[1], "talosctl v1%.7%.6 is outside the supported v1%.8 %.%. v1%.13")
  t.match(p[2], "Talos v1%.7%.6 on a is outside")
  t.match(p[3], "wipe EPHEMERAL")
  t.match(talos.version_problems("v1.14.0", {a = "v1.14.0"})[1], "outside")
end

function test_patch_delete_needs_a_v1_8_client()
  load("faults/talos-v1.7.yaml")
  local err = t.raises(talos.remove_extension_service_config, "192.168.10.11", "tailscale", "/tmp/talosc-rm.yaml")
  t.match(tostring(err), "talosctl v1%.7%.6 cannot remove the ExtensionServiceConfig tailscale: `%$patch: delete` needs talosctl v1%.8")
end

-- }======

-- {====== #27.15 members (controllers/cluster/member.go v1.11.0) and extension health (service_runner.go v1.8.0 .. v1.8.4)

function test_members_list_workers_with_the_node_identity()
  load("mixed-schematics.yaml")
  local ms = get("192.168.10.11", "members")
  t.eq(#ms, #world.state().nodes)
  local types, ids = {}, {}
  for _, m in ipairs(ms) do
    types[m.spec.machineType] = (types[m.spec.machineType] or 0) + 1
    t.match(m.spec.nodeId, "^[0-9A-Za-z]+$")
    t.truthy(#m.spec.nodeId >= 40)                           -- base62 of 32 bytes
    t.truthy(m.spec.nodeId ~= m.metadata.id)                 -- the identity, not the name
    ids[m.spec.nodeId] = true
    t.eq(m.spec.controlPlane ~= nil, m.spec.machineType == "controlplane")
  end
  t.truthy(types.worker and types.worker >= 1)
  local distinct = 0
  for _ in pairs(ids) do distinct = distinct + 1 end
  t.eq(distinct, #ms)                                        -- one identity per node
end

function test_extension_health_fails_on_v1_8_3_and_is_unknown_from_v1_8_4()
  local W = load("faults/talos-v1.8.3.yaml")
  local n = W.nodes[1]
  n.extensions = {"siderolabs/tailscale"}
  n.esc.tailscale = {environment = {"TS_AUTHKEY=tskey-auth-test0", "TS_HOSTNAME=k8s-1"}}
  world._start_tailscale(n)
  local raw
  for _, r in ipairs(get("192.168.10.11", "services")) do if r.metadata.id == "ext-tailscale" then raw = r.spec end end
  t.eq(raw, {running = true, healthy = false, unknown = false})
  local d = talos.service_detail("192.168.10.11", "ext-tailscale")
  t.eq(d.health, "Fail")
  t.eq(d.last_health_message, "service not running")
  t.eq(talos.service_up(talos.service("192.168.10.11", "ext-tailscale")), true)   -- no health check: running is up
  n.talos_version = "v1.8.4"
  t.eq(talos.service_detail("192.168.10.11", "ext-tailscale").health, "?")
end

-- }======
