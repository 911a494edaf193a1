--! dry-run
-- The gates whose cost must not grow with the cluster, against the world:
-- one node asked by name, the node list in one call, a node in the tailnet
-- by one ping (the whole status read only to say why it does not answer).
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/lib/?.lua;" .. package.path
local world = dofile(src .. "/runbooks/sim/world.lua")
package.loaded["runbook.world"] = world
local t = require "runbook.testing"
local kube = require "kube"
local checks = require "checks"
local tailscale = require "tailscale"

world.load(src .. "/runbooks/scenarios/default.yaml")

function test_one_node_by_name_and_a_node_the_cluster_lacks()
  local n = kube.node("k8s-2")
  t.eq(n.name, "k8s-2"); t.eq(n.ready, true); t.eq(n.os_image, "Talos (v1.10.6)")
  t.eq(kube.node("k8s-9"), nil)
  local ok, obs = checks.nodes_ready({"k8s-9"})
  t.eq(ok, false); t.match(obs, "k8s%-9 not registered")
  t.eq(select(2, checks.nodes_ready({"k8s-1"})), "Ready")
end

function test_the_node_list_in_one_call()
  local list = kube.nodes()
  t.eq(#list, 3)
  for _, n in ipairs(list) do t.eq(n.ready, true, n.name) end
  -- control planes only carry the control-plane role label (the list's JSON form)
  local json = require "runbook.json"
  local r = require("runbook.exec").run({"kubectl", "get", "node", "k8s-1", "-o", "json"})
  t.eq(json.decode(r.stdout).metadata.labels["node-role.kubernetes.io/control-plane"], "")
end

function test_the_tailnet_gate_pings_first_and_reads_the_status_only_to_say_why()
  local ok, ip = tailscale.ping("tailscale-operator")
  t.eq(ok, true); t.match(ip, "^100%.")
  local ok2, why = tailscale.ping("k8s-1")
  t.eq(ok2, false); t.match(why, "no such host")
  local passed, obs = checks.node_in_tailnet("tailscale-operator")
  t.eq(passed, true); t.match(obs, "answers tailscale ping")
  local p2, obs2 = checks.node_in_tailnet("k8s-1")
  t.eq(p2, false); t.eq(obs2, "no device named k8s-1 yet")
end

function test_the_worlds_kubectl_refuses_what_it_does_not_render()
  local exec = require "runbook.exec"
  local r = exec.run({"kubectl", "get", "nodes", "-o", "wide"})
  t.eq(r.code, 1); t.match(r.stderr, "answers get nodes with %-o json or %-o jsonpath= only")
  local r2 = exec.run({"kubectl", "get", "nodes", "-o", 'jsonpath={.items[?(@.x=="y")].a}'})
  t.eq(r2.code, 1); t.match(r2.stderr, "does not render")
  local r3 = exec.run({"kubectl", "get", "node", "k8s-9", "-o", "json"})
  t.eq(r3.code, 1); t.eq(r3.stderr, 'Error from server (NotFound): nodes "k8s-9" not found\n')
end

-- the node list kubectl keeps between calls (sim/cli.lua node_list) follows
-- every change of a node: a cordon, a reboot, the end of the boot
function test_the_kept_node_list_follows_cordon_and_reboot()
  local exec = require "runbook.exec"
  local time = require "runbook.time"
  local function row(name)
    for _, n in ipairs(kube.nodes()) do if n.name == name then return n end end
  end
  t.eq(row("k8s-3").ready, true); t.eq(row("k8s-3").unschedulable, false)
  t.eq(exec.run({"kubectl", "cordon", "k8s-3"}).code, 0)
  t.eq(row("k8s-3").unschedulable, true)
  t.eq(#kube.nodes_not_ready(), 0)
  t.eq(exec.run({"kubectl", "uncordon", "k8s-3"}).code, 0)
  t.eq(row("k8s-3").unschedulable, false)
  local ip = world.state().ix.node_by_name["k8s-3"].ip
  local r = exec.run({"talosctl", "-n", ip, "reboot", "--wait=false"})   -- reboot waits by default (reboot.go)
  t.eq(r.code, 0, r.stderr)
  t.eq(row("k8s-3").ready, false)
  local bad, count = kube.nodes_not_ready()
  t.eq(count, 3); t.eq(#bad, 1); t.eq(bad[1].name, "k8s-3")
  bad[1] = nil                          -- the same list read again: a list of its own each time
  local again = kube.nodes_not_ready()
  t.eq(#again, 1); t.eq(again[1].name, "k8s-3")
  time.sleep(600)                       -- the boot is over (bootSeconds of the scenario)
  t.eq(row("k8s-3").ready, true)
  t.eq(#kube.nodes_not_ready(), 0)
end

-- etcd pinned to the node's own address (what the rollout writes) keeps
-- the member healthy (Talos internal/app/machined/pkg/controllers/etcd/
-- spec.go at v1.11.0: the address advertisedSubnets allows is advertised)
function test_etcd_pinned_to_the_nodes_address_stays_healthy()
  local exec = require "runbook.exec"
  local fs = require "runbook.fs"
  local talos = require "talos"
  local n = world.state().ix.node_by_name["k8s-1"]
  fs.write("/tmp/rb-etcd-pin.yaml", "version: v1alpha1\nmachine:\n  type: controlplane\ncluster:\n  etcd:\n    advertisedSubnets:\n      - " .. n.ip .. "/32\n")
  local r = exec.run({"talosctl", "-n", n.ip, "apply-config", "-f", "/tmp/rb-etcd-pin.yaml"})
  t.eq(r.code, 0, r.stderr)
  t.eq(talos.etcd_health({n.ip}).ok, true)
end
