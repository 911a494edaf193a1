-- The runbooks' kube lib (runbooks/lib/kube.lua) against the served world
-- through the REAL kubectl (DIR/bin/kubectl runs it with DIR/kubeconfig);
-- run by test_kubeapi.sh with that directory first on PATH.
local t = require "runbook.testing"

local src = assert(os.getenv("RUNBOOK_SOURCE"), "RUNBOOK_SOURCE")
package.path = src .. "/runbooks/lib/?.lua;" .. package.path
local kube = require "kube"

function test_nodes_through_the_real_kubectl()
  local nodes = kube.nodes()
  t.eq(#nodes, 3)
  for i, n in ipairs(nodes) do
    t.eq(n.name, "k8s-" .. i)
    t.eq(n.ready, true)
    t.eq(n.reason, "KubeletReady")
    t.eq(n.os_image, "Talos (v1.10.6)")
    t.eq(n.unschedulable, false)
  end
  local bad, count = kube.nodes_not_ready()
  t.eq({#bad, count}, {0, 3})
end

function test_one_node_and_a_missing_one()
  local n = kube.node("k8s-2")
  t.eq({n.name, n.ready, n.os_image}, {"k8s-2", true, "Talos (v1.10.6)"})
  t.eq(kube.node("no-such-node"), nil)      -- kubectl's "(NotFound)" read as absent
end

function test_the_operator_pods()
  local pods = kube.pods("tailscale")
  t.eq(#pods, 1)
  t.eq({pods[1].phase, pods[1].ready}, {"Running", true})
  t.eq(#kube.pods("no-such-namespace"), 0)
end
