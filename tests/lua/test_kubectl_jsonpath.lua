-- The world's kubectl JSONPath against the real kubectl: each node object
-- the world serves, rendered with the template kube.nodes() asks for, must
-- print what the real client prints for it. `kubectl label --local -f`
-- applies -o jsonpath= with no API server (the label itself is never sent
-- anywhere). Real processes: this file runs without --dry-run.
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/lib/?.lua;" .. package.path
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local json = require "runbook.json"
local t = require "runbook.testing"
local kube = require "kube"
local jsonpath = dofile(src .. "/runbooks/sim/jsonpath.lua")

local NODES = {
  {apiVersion = "v1", kind = "Node", metadata = {name = "k8s-1", labels = {["node-role.kubernetes.io/control-plane"] = ""}},
   spec = {}, status = {conditions = {
     {type = "MemoryPressure", status = "False", reason = "KubeletHasSufficientMemory"},
     {type = "Ready", status = "True", reason = "KubeletReady", message = "kubelet is posting ready status"}},
     nodeInfo = {osImage = "Talos (v1.10.6)", kubeletVersion = "v1.33.3"}}},
  {apiVersion = "v1", kind = "Node", metadata = {name = "worker-7"}, spec = {unschedulable = true},
   status = {conditions = {{type = "Ready", status = "Unknown", reason = "NodeStatusUnknown"}}}},
  -- a condition without a reason, no nodeInfo at all
  {apiVersion = "v1", kind = "Node", metadata = {name = "w8"}, spec = {}, status = {conditions = {{type = "Ready", status = "False"}}}},
}

local function real_kubectl(obj, template)
  local dir = fs.tmpdir("rb-jsonpath")
  local file = dir .. "/node.json"
  fs.write(file, json.encode(obj))
  local r = exec.run({"kubectl", "label", "--local", "-f", file, "rb-test=1", "-o", "jsonpath=" .. template},
                     {env = {KUBECONFIG = "/dev/null"}, timeout = 60})
  fs.remove(file)
  fs.remove(dir)
  if r.code ~= 0 then error("kubectl: " .. r.stderr) end
  return r.stdout
end

function test_the_worlds_rendering_of_the_nodes_template_is_the_real_kubectls()
  if not exec.which("kubectl") then error("kubectl is not on PATH: this test compares the world with the real client") end
  local body = jsonpath.items_body(assert(jsonpath.compile(kube.NODES_JSONPATH)))
  t.truthy(body, "kube.NODES_JSONPATH is one {range .items[*]}...{end}")
  -- the body alone: what kubectl prints for one item of the list
  local item_tpl = kube.NODES_JSONPATH:match("^{range %.items%[%*%]}(.*){end}$")
  for _, obj in ipairs(NODES) do
    local want = real_kubectl(obj, item_tpl)
    t.eq(jsonpath.render(body, obj), want, obj.metadata.name)
    t.eq(jsonpath.render(assert(jsonpath.compile(item_tpl)), obj), want, obj.metadata.name .. " (compiled alone)")
  end
end

-- {.a[*]}: the rollout's reads of the ServiceCIDR and the kubernetes
-- Service (rollout.lua check_live_service_ips), dual-stack and single
function test_a_lists_items_as_kubectl_prints_them()
  if not exec.which("kubectl") then error("kubectl is not on PATH: this test compares the world with the real client") end
  for _, cidrs in ipairs{{"10.43.0.0/16"}, {"10.43.0.0/16", "fd00:43::/112"}, {}} do
    local obj = {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "x"}, spec = {cidrs = json.array(cidrs)}}
    local tpl = "{.spec.cidrs[*]}"
    t.eq(jsonpath.render(assert(jsonpath.compile(tpl)), obj), real_kubectl(obj, tpl), table.concat(cidrs, ","))
  end
end

-- a field holding an object or a list: kubectl prints it as compact JSON
-- (the Kubernetes documentation's table still shows Go's "map[cpu:4]":
-- tests/corpus/kubectl/jsonpath-docs-examples-table.txt)
function test_an_object_or_a_list_prints_as_kubectl_prints_it()
  if not exec.which("kubectl") then error("kubectl is not on PATH: this test compares the world with the real client") end
  local obj = {apiVersion = "v1", kind = "ConfigMap", metadata = {name = "x", labels = {cpu = "4", app = "a"}},
               data = {b = "2", a = "1"}, spec = {ports = {{port = 443, name = "https"}}}}
  local tpl = "{.metadata.name} [{.data}] {.spec.ports} {.metadata.labels}"
  -- `kubectl label` adds its own label before printing: the world is given it too
  local want = real_kubectl(obj, tpl)
  obj.metadata.labels["rb-test"] = "1"
  t.eq(jsonpath.render(assert(jsonpath.compile(tpl)), obj), want)
end

function test_the_parser_reads_what_kubectl_prints()
  local item_tpl = kube.NODES_JSONPATH:match("^{range %.items%[%*%]}(.*){end}$")
  local text = ""
  for _, obj in ipairs(NODES) do text = text .. real_kubectl(obj, item_tpl) end
  local nodes = kube.parse_nodes(text)
  t.eq(#nodes, 3)
  t.eq(nodes[1].name, "k8s-1"); t.eq(nodes[1].ready, true); t.eq(nodes[1].reason, "KubeletReady")
  t.eq(nodes[1].os_image, "Talos (v1.10.6)"); t.eq(nodes[1].unschedulable, false)
  t.eq(nodes[2].ready, false); t.eq(nodes[2].reason, "NodeStatusUnknown"); t.eq(nodes[2].unschedulable, true)
  t.eq(nodes[3].reason, "False")     -- no reason: the status says what there is
  t.eq(nodes[3].os_image, nil)
end

function test_a_line_kubectl_was_not_asked_for_is_an_error()
  t.raises("printed a line it was not asked for", kube.parse_nodes, "error: something else\n")
end

function test_templates_the_world_does_not_render_are_refused()
  -- {..name} is recursive descent, not {.name} (the documentation's table:
  -- tests/corpus/kubectl/jsonpath-docs-examples-table.txt)
  for _, tpl in ipairs{'{.items[?(@.x=="y")].a}', "{range .items[*]}{.a}", "{.a}{end}", "{.items[0].a}", "{..name}",
                       "{.a..b}", "{range ..items[*]}{end}"} do
    local c, err = jsonpath.compile(tpl)
    t.eq(c, nil, tpl)
    t.truthy(err, tpl)
  end
end

-- Ready read wherever it stands among the conditions, and only a condition
-- whose type is exactly Ready (a type that merely ends in it is not)
function test_ready_among_other_conditions()
  local nodes = kube.parse_nodes(table.concat({
    "a\tReady=True:KubeletReady;MemoryPressure=False:KubeletHasSufficientMemory;\t\tTalos (v1.11.0)",
    "b\tMemoryPressure=False:KubeletHasSufficientMemory;DiskPressure=False:;Ready=False:KubeletNotReady;\ttrue\t",
    "c\tNotReady=True:X;MemoryPressure=False:;\t\t",
  }, "\n") .. "\n")
  t.eq(#nodes, 3)
  t.eq(nodes[1].ready, true); t.eq(nodes[1].reason, "KubeletReady")
  t.eq(nodes[2].ready, false); t.eq(nodes[2].reason, "KubeletNotReady"); t.eq(nodes[2].unschedulable, true)
  t.eq(nodes[3].ready, false); t.eq(nodes[3].reason, "no Ready condition")
end

-- kube.not_ready (the whole-cluster gate's scan) agrees with parse_nodes
-- line for line: the same nodes not Ready, with the same reasons, the same
-- count, and the same refusal of a line kubectl was not asked for
function test_not_ready_agrees_with_the_full_parse()
  local lines = {
    "a\tReady=True:KubeletReady;MemoryPressure=False:KubeletHasSufficientMemory;\t\tTalos (v1.11.0)",
    "b\tMemoryPressure=False:KubeletHasSufficientMemory;DiskPressure=False:;Ready=False:KubeletNotReady;\ttrue\t",
    "c\tNotReady=True:X;MemoryPressure=False:;\t\t",
    "d\tMemoryPressure=False:;Ready=True:KubeletReady;\t\tTalos (v1.10.6)",
    "e\tNetworkReady=True:X;Ready=Unknown:NodeStatusUnknown;\t\t",
    "f\tReady=False:KubeletNotReady;Ready=True:KubeletReady;\t\t",   -- the first Ready counts
    "g\t\t\tos;Ready=True:in the image name;",                       -- not a condition
    "h\tReady=True:\t\t",                                              -- no closing ";": no Ready read
    "i\tDiskPressure=False:;\t\tReady=True:x;",
    "j\tReady=True:KubeletReady;",                                     -- too few fields
  }
  for _, tail in ipairs{"\n", ""} do
    local text = table.concat(lines, "\n") .. tail
    local want = {}
    for _, line in ipairs(lines) do
      local ok, n = pcall(kube.parse_nodes, line .. "\n")
      if ok and not n[1].ready then want[#want + 1] = n[1].name .. "=" .. n[1].reason end
      if not ok then want[#want + 1] = "error" end
    end
    local got = {}
    local ok, bad, count = pcall(kube.not_ready, table.concat(lines, "\n", 1, #lines - 1) .. tail)
    t.truthy(ok, tostring(bad))
    for _, n in ipairs(bad) do got[#got + 1] = n.name .. "=" .. n.reason end
    t.eq(count, #lines - 1)
    t.eq(table.concat(got, " "), table.concat(want, " ", 1, #want - 1))
    t.eq(table.concat(got, " "), "b=KubeletNotReady c=no Ready condition e=NodeStatusUnknown f=KubeletNotReady g=no Ready condition h=no Ready condition i=no Ready condition")
    t.raises("printed a line it was not asked for", kube.not_ready, text)
  end
end
