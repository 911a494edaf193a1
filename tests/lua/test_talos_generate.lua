-- The world's Talos config generator and encoder against Talos's own
-- output: the stability files siderolabs/talos pins for each version
-- contract (pkg/machinery/config/types/v1alpha1/testdata/stability, copied
-- to tests/golden/talos-configs, provenance in its README.md). Secrets are
-- replaced by the generator's placeholders before comparing.
local t = require "runbook.testing"
local fs = require "runbook.fs"
local yaml = require "runbook.yaml"

local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/?.lua;" .. src .. "/runbooks/lib/?.lua;" .. package.path
local gen = require "sim.talos.generate"
local enc = require "sim.talos.encode"

local GOLDEN = src .. "/tests/golden/talos-configs/"

local function golden(name)
  return fs.read(GOLDEN .. name)
end

-- Sets the value at a dotted path of doc, when it is there and not "".
local function replace_secret(doc, path, value)
  local parent, last = doc, nil
  for part in path:gmatch("[^.]+") do
    if last then
      parent = parent[last]
      if type(parent) ~= "table" then return end
    end
    last = part
  end
  if type(parent[last]) == "string" and parent[last] ~= "" then parent[last] = value end
end

-- The golden documents with every secret field as the generator's placeholder.
local function golden_docs(name)
  local docs = yaml.decode_all(golden(name))
  for _, s in ipairs(gen.secret_paths) do
    replace_secret(docs[1], s[1], gen.placeholder("SECRET", s[1]))
  end
  return docs
end

-- The inputs of TestConfigEncodingStability's "base" flavor.
local function base_input(tag, role)
  return {talos_version = tag, role = role, cluster_name = "base", endpoint = "https://base:6443",
          kubernetes_version = "1.28.0"}
end

-- Equal values and equal key order: runbook.yaml writes a decoded table in
-- its key order, so the same text means the same documents, field by field.
local function same_docs(actual, expected, what)
  t.eq(actual, expected, what)
  t.eq(yaml.encode_all(actual, {indent = 4}), yaml.encode_all(expected, {indent = 4}), what)
end

local TAGS = {"v1.8.0", "v1.9.0", "v1.10.0", "v1.11.0", "v1.12.0", "v1.13.0"}

function test_base_configs_equal_talos_stability_files_for_every_version()
  for _, tag in ipairs(TAGS) do
    for _, role in ipairs({"controlplane", "worker"}) do
      local name = tag .. "-base-" .. role .. ".yaml"
      same_docs(gen.documents(base_input(tag, role)), golden_docs(name), name)
    end
  end
end

-- The "with overrides" flavor: generate options, then patch.yaml (one
-- strategic-merge addition, machine.kubelet.extraMounts), here added as a
-- new last key and put in place by normalize.
local function overrides(tag, role)
  local input = base_input(tag, role)
  input.additional_sans = {"foo", "bar"}
  input.allow_scheduling_on_control_planes = true
  input.dns_domain = "example.com"
  input.install_disk = "/dev/vda"
  input.install_extra_kernel_args = {"foo=bar", "bar=baz"}
  input.local_apiserver_port = 5443
  input.sysctls = {foo = "bar"}
  input.cni = {name = "custom", urls = {"https://example.com/cni.yaml"}}
  input.registry_mirrors = {["ghcr.io"] = {"https://ghcr.io.my-mirror.com"}}
  local docs = gen.documents(input)
  local patch = yaml.decode(golden(tag .. "-patch.yaml"))
  docs[1].machine.kubelet.extraMounts = patch.machine.kubelet.extraMounts
  return enc.normalize(docs, tag)
end

function test_override_configs_equal_talos_stability_files()
  for _, tag in ipairs({"v1.11.0", "v1.13.0"}) do
    for _, role in ipairs({"controlplane", "worker"}) do
      local name = tag .. "-overrides-" .. role .. ".yaml"
      same_docs(overrides(tag, role), golden_docs(name), name)
    end
  end
end

function test_normalize_puts_an_added_field_in_struct_order()
  local docs = gen.documents(base_input("v1.11.0", "worker"))
  local kubelet = docs[1].machine.kubelet
  kubelet.extraMounts = {yaml.order({source = "/var/opt", options = {"rshared"}, type = "bind",
                                     destination = "/var/opt"}, {"source", "options", "type", "destination"})}
  local text = enc.encode(docs, "v1.11")
  local order = {"\n        image: ", "\n        extraMounts:", "destination: /var/opt", "type: bind",
                 "source: /var/opt", "options:", "rshared", "\n        defaultRuntimeSeccompProfileEnabled: true"}
  local at = 0
  for _, s in ipairs(order) do
    local i = text:find(s, at + 1, true)
    t.truthy(i, s .. " after the one before it")
    at = i
  end
end

function test_a_field_without_omitempty_keeps_its_empty_value()
  -- v1alpha1_types.go: MachineCertSANs []string `yaml:"certSANs"` (no omitempty);
  -- extraManifests has omitempty (its talos:"omitonlyifnil" counts only with comments)
  local doc = {version = "v1alpha1", machine = {type = "worker"}, cluster = {discovery = {enabled = true},
                                                                      extraManifests = yaml.array()}}
  local out = enc.normalize({doc}, "v1.11")[1]
  t.eq(getmetatable(out.machine.certSANs).__runbook_shape, "seq")
  t.eq(#out.machine.certSANs, 0)
  t.eq(out.cluster.extraManifests, nil)
  local text = enc.encode({doc}, "v1.11")
  t.match(text, "\n    certSANs: %[%]\n")
  t.match(text, "\n            service: {}\n")
  t.truthy(not text:find("extraManifests", 1, true))
end

function test_go_maps_sort_as_yaml_v3_does()
  local doc = {version = "v1alpha1", machine = {type = "worker", sysctls = {["a10"] = "1", ["a9"] = "1", b = "1",
                                                                            ["a-b"] = "1"}}}
  local out = enc.normalize({doc}, "v1.13")[1]
  t.eq(enc.sorted_keys(out.machine.sysctls), {"a-b", "a9", "a10", "b"})
  local q = '"1"\n'
  t.match(enc.encode({doc}, "v1.13"), "sysctls:\n        a%-b: " .. q .. "        a9: " .. q .. "        a10: " .. q)
end

function test_secrets_are_placeholders_and_renders_are_identical()
  local input = gen.default_input("v1.11.0", "controlplane", "home", "https://192.168.10.10:6443")
  input.secrets = "CLUSTER-home"
  local a, b = enc.encode(gen.documents(input), "v1.11"), enc.encode(gen.documents(input), "v1.11")
  t.eq(a, b)
  t.match(a, "\n    token: CLUSTER%-home%(machine%.token%)\n")
  t.match(a, "\n    secretboxEncryptionSecret: CLUSTER%-home%(cluster%.secretboxEncryptionSecret%)\n")
  t.match(a, "\n        disk: /dev/sda\n        image: ghcr.io/siderolabs/installer:v1.11.0\n")
  t.truthy(not a:find("LS0t", 1, true))
end

function test_unsupported_versions_are_refused_with_one_message()
  t.raises("Talos v1%.7%.0 is not supported by the world's config generator %(v1%.8 %.%. v1%.13%)", gen.documents,
           base_input("v1.7.0", "worker"))
  t.raises("input%.role must be controlplane or worker", gen.documents, base_input("v1.11.0", "init"))
  t.eq(gen.versions(), {"v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13"})
end

function test_encoded_generated_config_equals_talos_bytes_with_placeholders()
  local text = enc.encode(golden_docs("v1.13.0-base-worker.yaml"), "v1.13")
  local want = golden("v1.13.0-base-worker.yaml")
  for _, s in ipairs(gen.secret_paths) do
    local doc = yaml.decode_all(want)[1]
    local v = doc
    for part in s[1]:gmatch("[^.]+") do v = type(v) == "table" and v[part] or nil end
    if type(v) == "string" and v ~= "" then
      want = want:gsub(v:gsub("%p", "%%%0"), (gen.placeholder("SECRET", s[1]):gsub("%%", "%%%%")))
    end
  end
  t.eq(text, want)
end

function test_the_default_kubernetes_version_is_that_of_the_talos_tag()
  -- pkg/machinery/constants/constants.go DefaultKubernetesVersion: 1.34.0 at v1.11.0, 1.34.1 at v1.11.3
  t.eq(gen.default_input("v1.11.0").kubernetes_version, "1.34.0")
  t.eq(gen.default_input("v1.11.3").kubernetes_version, "1.34.1")
  local input = base_input("v1.8.4", "worker")
  input.kubernetes_version = nil
  t.eq(gen.documents(input)[1].machine.kubelet.image, "ghcr.io/siderolabs/kubelet:v1.31.4")
  input.kubernetes_version = ""
  t.eq(gen.documents(input)[1].machine.kubelet.image, nil)
end

function test_an_inline_map_sorts_as_a_go_map()
  -- v1alpha1.Unstructured{Object map[string]any `yaml:",inline"`}: auditPolicy, admission configs
  local policy = yaml.order({rules = {{level = "None"}}, kind = "Policy", r10 = 1, r9 = 1},
                            {"rules", "kind", "r10", "r9"})
  local doc = {version = "v1alpha1", cluster = {apiServer = {auditPolicy = policy}}}
  local out = enc.normalize({doc}, "v1.11")[1]
  t.eq(enc.sorted_keys(out.cluster.apiServer.auditPolicy), {"kind", "r9", "r10", "rules"})
  t.match(enc.encode({doc}, "v1.11"), "auditPolicy:\n            kind: Policy\n            r9: 1\n            r10: 1\n")
end

local CONFIG_FILES = {"v1.8.0-base-controlplane.yaml", "v1.8.0-base-worker.yaml", "v1.9.0-base-controlplane.yaml",
                      "v1.9.0-base-worker.yaml", "v1.10.0-base-controlplane.yaml", "v1.10.0-base-worker.yaml",
                      "v1.11.0-base-controlplane.yaml", "v1.11.0-base-worker.yaml",
                      "v1.11.0-overrides-controlplane.yaml", "v1.11.0-overrides-worker.yaml",
                      "v1.12.0-base-controlplane.yaml", "v1.12.0-base-worker.yaml",
                      "v1.13.0-base-controlplane.yaml", "v1.13.0-base-worker.yaml",
                      "v1.13.0-overrides-controlplane.yaml", "v1.13.0-overrides-worker.yaml"}

function test_every_stability_file_encodes_back_to_its_exact_bytes()
  -- decoded, normalized for its version and encoded: Talos's own text, byte for byte
  t.truthy(enc.exact())
  for _, name in ipairs(CONFIG_FILES) do
    local text = golden(name)
    t.eq(enc.encode(yaml.decode_all(text), name:match("^v1%.%d+")), text, name)
  end
end

function test_generated_configs_encode_to_the_stability_files_exact_text()
  for _, tag in ipairs(TAGS) do
    for _, role in ipairs({"controlplane", "worker"}) do
      local name = tag .. "-base-" .. role .. ".yaml"
      t.eq(enc.encode(gen.documents(base_input(tag, role)), tag), enc.encode(golden_docs(name), tag), name)
    end
  end
  for _, tag in ipairs({"v1.11.0", "v1.13.0"}) do
    for _, role in ipairs({"controlplane", "worker"}) do
      local name = tag .. "-overrides-" .. role .. ".yaml"
      t.eq(enc.encode(overrides(tag, role), tag), enc.encode(golden_docs(name), tag), name)
    end
  end
end
