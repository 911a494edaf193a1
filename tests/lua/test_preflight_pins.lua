-- runbooks/lib/preflight.lua: the pins' sanity (issue #28.3, .5): pins
-- that would not hold the node's current addresses are refused before
-- anything is written. The served case: tests/e2e/test_address_pins.sh.
package.path = (os.getenv("RUNBOOK_SOURCE") or "../..") .. "/runbooks/lib/?.lua;" .. package.path
local preflight = require "preflight"
local t = require "runbook.testing"

local EXCL = {"10.42.0.0/16", "10.43.0.0/16"}

function test_the_filter_applies_entries_in_order_as_talos_does()
  t.eq(preflight.filter_keeps({"192.168.10.0/24"}, "192.168.10.11"), true)
  t.eq(preflight.filter_keeps({"192.168.10.11"}, "192.168.10.11"), true)          -- a bare address: /32
  t.eq(preflight.filter_keeps({"0.0.0.0/0", "!192.168.10.11/32"}, "192.168.10.11"), false)
  t.eq(preflight.filter_keeps({"!192.168.10.11/32", "0.0.0.0/0"}, "192.168.10.11"), true)
  t.eq(preflight.filter_keeps({"::/0"}, "192.168.10.11"), false)                  -- another family
  t.eq(preflight.filter_keeps({"fdb5:8d3a:10::/64"}, "fdb5:8d3a:10::11"), true)
  t.eq(preflight.filter_keeps({"0.0.0.0/0"}, "10.43.0.5", EXCL), false)          -- excludeSubnets
end

function test_pins_of_the_node_own_addresses_pass()
  t.eq(preflight.pin_problems{
    kubelet_ips = {"192.168.10.11", "fdb5:8d3a:10::11"}, kubelet_excl = EXCL,
    kubelet_pins = {"192.168.10.11/32", "fdb5:8d3a:10::11/128"}, kubelet_list = {"192.168.10.11/32", "fdb5:8d3a:10::11/128"},
    etcd_ips = {"192.168.10.11"}, etcd_pins = {"192.168.10.11/32"}, etcd_list = {"192.168.10.11/32"}}, {})
  -- a configured list with both tailnet ranges removed
  t.eq(preflight.pin_problems{
    kubelet_ips = {"192.168.10.11", "fdb5:8d3a:10::11"}, kubelet_excl = EXCL, kubelet_pins = {"!100.64.0.0/10", "!fd7a:115c:a1e0::/48"},
    kubelet_list = {"0.0.0.0/0", "::/0", "!100.64.0.0/10", "!fd7a:115c:a1e0::/48"}}, {})
  -- nothing pinned (pin_node_ip=false), no list: nothing to judge
  t.eq(preflight.pin_problems{kubelet_ips = {"192.168.10.11"}}, {})
end

function test_an_ipv4_pin_alone_drops_the_ipv6_node_ip()
  local p = preflight.pin_problems{kubelet_ips = {"192.168.10.11", "fdb5:8d3a:10::11"}, kubelet_excl = EXCL,
    kubelet_pins = {"192.168.10.11/32"}, kubelet_list = {"192.168.10.11/32"}}
  t.eq(p, {"the kubelet's validSubnets [192.168.10.11/32] would not keep the current address fdb5:8d3a:10::11"})
end

function test_a_pin_of_another_address_is_refused()
  -- ipAddress names a second interface; the kubelet runs on the first
  local p = preflight.pin_problems{kubelet_ips = {"192.168.20.11"}, kubelet_pins = {"192.168.10.11/32"},
    kubelet_list = {"192.168.10.11/32"}, etcd_ips = {"192.168.20.11"}, etcd_pins = {"192.168.10.11/32"},
    etcd_list = {"192.168.10.11/32"}}
  t.eq(p, {"the kubelet pin 192.168.10.11/32 holds none of the node's current addresses (192.168.20.11)",
           "the kubelet's validSubnets [192.168.10.11/32] would not keep the current address 192.168.20.11",
           "the etcd pin 192.168.10.11/32 holds none of the node's current addresses (192.168.20.11)",
           "etcd's advertisedSubnets [192.168.10.11/32] would not keep the current address 192.168.20.11"})
end

function test_a_pin_in_the_tailnet_ranges_is_refused()
  local p = preflight.pin_problems{kubelet_ips = {"100.100.10.11"}, kubelet_pins = {"100.100.10.11/32"},
    kubelet_list = {"100.100.10.11/32"}}
  t.eq(p, {"the kubelet pin 100.100.10.11/32 overlaps the tailnet range 100.64.0.0/10"})
  p = preflight.pin_problems{kubelet_ips = {"192.168.10.11", "fd7a:115c:a1e0:1::11"},
    kubelet_pins = {"192.168.10.11/32", "fd7a:115c:a1e0:1::11/128"}, kubelet_list = {"192.168.10.11/32", "fd7a:115c:a1e0:1::11/128"}}
  t.eq(p, {"the kubelet pin fd7a:115c:a1e0:1::11/128 overlaps the tailnet range fd7a:115c:a1e0::/48"})
end

function test_a_configured_list_that_excludes_the_current_address_is_refused()
  -- a stale pin of the operator's (the node moved to 192.168.10.0/24): the
  -- rollout counts it as pinned and adds nothing; the node would lose its IP
  local p = preflight.pin_problems{kubelet_ips = {"192.168.10.11"}, kubelet_list = {"192.168.20.0/24"}, kubelet_excl = EXCL,
    etcd_ips = {"192.168.10.11"}, etcd_pins = {"192.168.10.11/32"}, etcd_list = {"192.168.10.11/32"}}
  t.eq(p, {"the kubelet's validSubnets [192.168.20.0/24] would not keep the current address 192.168.10.11"})
end

function test_a_pinned_list_that_still_admits_tailscale0_is_refused()
  local p = preflight.pin_problems{kubelet_ips = {"192.168.10.11", "fdb5:8d3a:10::11"}, kubelet_pins = {"!100.64.0.0/10"},
    kubelet_list = {"0.0.0.0/0", "::/0", "!100.64.0.0/10"}}
  t.eq(p, {"the kubelet list [0.0.0.0/0, ::/0, !100.64.0.0/10] would still let tailscale0's fd7a:115c:a1e0::/48 addresses through"})
end
