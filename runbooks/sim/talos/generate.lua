--- A node's whole Talos machine config, every document, as Talos's own
--- generator writes it: siderolabs/talos pkg/machinery/config/generate
--- (init.go for a controlplane, worker.go, registry.go from v1.12, network.go
--- from v1.13) at the tag of `input.talos_version`, with the version contract
--- of that version (pkg/machinery/config/contract.go), as `talosctl gen
--- config --talos-version` and talhelper (generate.WithVersionContract of the
--- talconfig's talosVersion) both ask for. v1.8 .. v1.13 are supported; v1.7
--- and older are refused (their contracts write other shapes: no clusterName
--- on workers, no forwardKubeDNSToHost, no exclude-from-external-load-balancers
--- label, and more before; not modelled).
---
--- Every secret or generated-random field holds a placeholder,
--- `PREFIX(path)` (e.g. `SECRET(machine.token)`), so two renders of one
--- cluster give the same text and a diff never shows a secret. The paths
--- are listed in M.secret_paths.
---
--- Input fields (generate.NewInput arguments and the options talosctl gen
--- config and talhelper pkg/talos/input.go pass):
---   talos_version       "v1.11.0" (required): generator code and contract
---   role                "controlplane" | "worker" (required)
---   cluster_name        NewInput clustername (required)
---   endpoint            NewInput endpoint, "https://192.168.10.10:6443" (required)
---   kubernetes_version  "1.34.0" or "v1.34.0"; "" leaves the images out (generate's emptyIf);
---                       nil: constants.DefaultKubernetesVersion of that Talos tag
---   install_disk        WithInstallDisk; generate's default is none (talosctl's flag: /dev/sda)
---   install_image       WithInstallImage; generate's default is none (talhelper:
---                       ghcr.io/siderolabs/installer:<talosVersion>)
---   install_extra_kernel_args  WithInstallExtraKernelArgs
---   additional_sans     WithAdditionalSubjectAltNames (machine certSANs and apiServer certSANs)
---   machine_cert_sans   input.AdditionalMachineCertSANs, set after NewInput (talhelper
---                       additionalMachineCertSans); replaces additional_sans there
---   apiserver_cert_sans input.AdditionalSubjectAltNames (talhelper additionalApiServerCertSans)
---   pod_cidrs, service_cidrs  input.PodNet / ServiceNet (default 10.244.0.0/16, 10.96.0.0/12;
---                       the IPv6 ones only when endpoint is a bare IPv6 address, as NewInput does)
---   dns_domain          WithDNSDomain (default cluster.local)
---   allow_scheduling_on_control_planes  WithAllowSchedulingOnControlPlanes
---   cni                 WithClusterCNIConfig: {name =, urls = {...}} (talhelper v3.1.16 sets the
---                       same cluster.network.cni after generating)
---   local_apiserver_port  WithLocalAPIServerPort
---   kubeprism_port      WithKubePrismPort (0 turns KubePrism off)
---   host_dns_forward_kube_dns_to_host  WithHostDNSForwardKubeDNSToHost (talhelper: container mode);
---                       no effect from v1.8, whose contract forwards anyway
---   discovery           WithClusterDiscovery (default true)
---   sysctls             WithSysctls {key = value}
---   registry_mirrors    WithRegistryMirror: {[host] = {endpoint, ...}}
---   registry_insecure   WithRegistryInsecureSkipVerify: {host, ...}
---   debug               WithDebug
---   persist             WithPersist (v1.8 .. v1.12; default true)
---   network             WithNetworkOptions, as the machine.network fields they set (a table)
---   kubespan            WithKubeSpanEnabled (v1.13 generator)
---   aescbc              talhelper: a secrets bundle that holds an aescbcEncryptionSecret
---                       (pkg/talos/nodeconfig.go sets it next to secretbox)
---   secrets             placeholder prefix (default "SECRET")
local enc = require "sim.talos.encode"
local yaml = require "runbook.yaml"

local M = {}

local VERSIONS = {"v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13"}

-- constants.DefaultKubernetesVersion (talosctl gen config's default) at
-- v1.N.0, v1.N.1, ... up to the last tag of each minor in the mirror
-- (v1.8.4, v1.9.6, v1.10.9, v1.11.6, v1.12.11, v1.13.9).
local DEFAULT_K8S = {
  [8] = {"1.31.1", "1.31.1", "1.31.2", "1.31.2", "1.31.4"},
  [9] = {"1.32.0", "1.32.0", "1.32.0", "1.32.1", "1.32.2", "1.32.3", "1.32.4"},
  [10] = {"1.33.0", "1.33.0", "1.33.0", "1.33.1", "1.33.1", "1.33.2", "1.33.3", "1.33.4", "1.33.6", "1.33.6"},
  [11] = {"1.34.0", "1.34.0", "1.34.1", "1.34.1", "1.34.1", "1.34.1", "1.34.1"},
  [12] = {"1.35.0", "1.35.0", "1.35.0", "1.35.0", "1.35.0", "1.35.2", "1.35.2", "1.35.4", "1.35.4", "1.35.4", "1.35.4", "1.35.4"},
  [13] = {"1.36.0", "1.36.0", "1.36.0", "1.36.1", "1.36.1", "1.36.2", "1.36.2", "1.36.2", "1.36.2", "1.36.3"},
}

-- The default Kubernetes version of Talos `version` (its patch's, else the
-- minor's last known).
local function default_k8s(version)
  local minor, patch = tostring(version):match("^v?1%.(%d+)%.?(%d*)")
  local list = DEFAULT_K8S[tonumber(minor)]
  if not list then return nil end
  return list[(tonumber(patch) or #list - 1) + 1] or list[#list]
end

--- The supported Talos minor versions, oldest first.
function M.versions()
  local out = {}
  for i, v in ipairs(VERSIONS) do out[i] = v end
  return out
end

--- The minor number of a Talos version ("v1.11.3" -> 11), or nil and why.
function M.minor(version)
  local major, minor = tostring(version or ""):match("^v?(%d+)%.(%d+)")
  if not major then return nil, "not a Talos version: " .. tostring(version) end
  major, minor = tonumber(major), tonumber(minor)
  if major ~= 1 or minor < 8 or minor > 13 then
    return nil, "Talos " .. tostring(version) .. " is not supported by the world's config generator (v1.8 .. v1.13)"
  end
  return minor
end

--- The secret fields of a generated document and their owners:
--- {path, roles} where roles is "both" or "controlplane". A worker's
--- machine.ca.key and cluster.ca.key are "" (not secret), as generate writes.
M.secret_paths = {
  {"machine.token", "both"}, {"machine.ca.crt", "both"}, {"machine.ca.key", "controlplane"},
  {"cluster.id", "both"}, {"cluster.secret", "both"}, {"cluster.token", "both"},
  {"cluster.secretboxEncryptionSecret", "controlplane"}, {"cluster.aescbcEncryptionSecret", "controlplane"},
  {"cluster.ca.crt", "both"}, {"cluster.ca.key", "controlplane"},
  {"cluster.aggregatorCA.crt", "controlplane"}, {"cluster.aggregatorCA.key", "controlplane"},
  {"cluster.serviceAccount.key", "controlplane"},
  {"cluster.etcd.ca.crt", "controlplane"}, {"cluster.etcd.ca.key", "controlplane"},
}

--- The placeholder for the secret at `path` under prefix `prefix`.
function M.placeholder(prefix, path)
  return (prefix or "SECRET") .. "(" .. path .. ")"
end

--- Defaults for the inputs as talosctl gen config fills them at `talos_version`.
function M.default_input(talos_version, role, cluster_name, endpoint)
  local minor, why = M.minor(talos_version)
  if not minor then error("talos generate: " .. why, 2) end
  local tag = tostring(talos_version):match("^v?(%d+%.%d+%.%d+)") or ("1." .. minor .. ".0")
  return {talos_version = "v" .. tag, role = role or "controlplane", cluster_name = cluster_name or "talos",
          endpoint = endpoint or "https://192.168.10.10:6443", kubernetes_version = default_k8s(tag),
          install_disk = "/dev/sda", install_image = "ghcr.io/siderolabs/installer:v" .. tag, secrets = "SECRET"}
end

local function copy_list(t)
  if t == nil then return nil end
  local out = {}
  for i, v in ipairs(t) do out[i] = v end
  return out
end

local function concat(a, b)
  local out = copy_list(a) or {}
  for _, v in ipairs(b or {}) do out[#out + 1] = v end
  return out
end

-- The contract predicates of pkg/machinery/config/contract.go used here.
local function contract(minor)
  return {
    cluster_name_for_workers = minor > 7, add_exclude_from_lb = minor > 7,
    multidoc_network = minor > 11, hide_psp = minor > 11, hide_rbac = minor > 11,
    sans_from_endpoint = minor <= 11, grub_uki = minor > 11, kubespan_multidoc = minor > 12,
  }
end

local function image(repo, k8s)
  if k8s == "" then return nil end
  return repo .. ":v" .. k8s
end

local function ca(S, path, role)
  if role == "worker" then return {crt = S(path .. ".crt"), key = ""} end
  return {crt = S(path .. ".crt"), key = S(path .. ".key")}
end

local function features(input, c)
  local f = {diskQuotaSupport = true}
  if not c.hide_rbac then
    f.rbac = true
    f.apidCheckExtKeyUsage = true
  end
  if not c.multidoc_network then f.stableHostname = true end
  local port = input.kubeprism_port
  if port == nil then f.kubePrism = {enabled = true, port = 7445}
  elseif port > 0 then f.kubePrism = {enabled = true, port = port} end
  -- HostDNSForwardKubeDNSToHost: the option or the contract (v1.8+: always)
  f.hostDNS = {enabled = true, forwardKubeDNSToHost = true}
  return f
end

local function machine(input, c, S)
  local m = {
    type = input.role, token = S("machine.token"), ca = ca(S, "machine.ca", input.role),
    certSANs = input._machine_sans,
    kubelet = {image = image("ghcr.io/siderolabs/kubelet", input._k8s), defaultRuntimeSeccompProfileEnabled = true,
               disableManifestsDirectory = true},
    install = {disk = input.install_disk, image = input.install_image, wipe = false,
               extraKernelArgs = copy_list(input.install_extra_kernel_args)},
    sysctls = input.sysctls, features = features(input, c),
  }
  if c.grub_uki then m.install.grubUseUKICmdline = true end
  if input.role == "controlplane" and c.add_exclude_from_lb then
    m.nodeLabels = {["node.kubernetes.io/exclude-from-external-load-balancers"] = ""}
  end
  return m
end

local PSA = {
  apiVersion = "pod-security.admission.config.k8s.io/v1alpha1", kind = "PodSecurityConfiguration",
  defaults = {enforce = "baseline", ["enforce-version"] = "latest", audit = "restricted", ["audit-version"] = "latest",
              warn = "restricted", ["warn-version"] = "latest"},
  exemptions = {usernames = yaml.array(), runtimeClasses = yaml.array(), namespaces = {"kube-system"}},
}

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function api_server(input, c)
  local sans = {}
  if c.sans_from_endpoint then
    local host = input.endpoint:match("^%a[%w+.-]*://%[([^%]]+)%]") or input.endpoint:match("^%a[%w+.-]*://([^:/?#]+)")
    if host then sans[1] = host end
  end
  sans = concat(sans, input._apiserver_sans)
  local a = {
    image = image("registry.k8s.io/kube-apiserver", input._k8s), certSANs = sans,
    admissionControl = {{name = "PodSecurity", configuration = deep_copy(PSA)}},
    auditPolicy = {apiVersion = "audit.k8s.io/v1", kind = "Policy", rules = {{level = "Metadata"}}},
  }
  if not c.hide_psp then a.disablePodSecurityPolicy = true end
  return a
end

local function cluster_network(input)
  return {dnsDomain = input.dns_domain or "cluster.local", podSubnets = copy_list(input._pods),
          serviceSubnets = copy_list(input._services), cni = input.cni and deep_copy(input.cni)}
end

local function discovery(input)
  if input.discovery == false then
    return {enabled = false, registries = {kubernetes = {disabled = true}}}
  end
  return {enabled = true, registries = {kubernetes = {disabled = true}}}
end

local function controlplane_cluster(input, c, S)
  local k8s = input._k8s
  local cl = {
    id = S("cluster.id"), secret = S("cluster.secret"), clusterName = input.cluster_name,
    controlPlane = {endpoint = input.endpoint, localAPIServerPort = input.local_apiserver_port},
    apiServer = api_server(input, c),
    controllerManager = {image = image("registry.k8s.io/kube-controller-manager", k8s)},
    proxy = {image = image("registry.k8s.io/kube-proxy", k8s)},
    scheduler = {image = image("registry.k8s.io/kube-scheduler", k8s)},
    etcd = {ca = ca(S, "cluster.etcd.ca", "controlplane")},
    network = cluster_network(input),
    ca = ca(S, "cluster.ca", "controlplane"), aggregatorCA = ca(S, "cluster.aggregatorCA", "controlplane"),
    serviceAccount = {key = S("cluster.serviceAccount.key")}, token = S("cluster.token"),
    secretboxEncryptionSecret = S("cluster.secretboxEncryptionSecret"),
    discovery = discovery(input),
  }
  if input.aescbc then cl.aescbcEncryptionSecret = S("cluster.aescbcEncryptionSecret") end
  if input.allow_scheduling_on_control_planes then cl.allowSchedulingOnControlPlanes = true end
  return cl
end

local function worker_cluster(input, c, S)
  local cl = {
    id = S("cluster.id"), secret = S("cluster.secret"), ca = ca(S, "cluster.ca", "worker"), token = S("cluster.token"),
    controlPlane = {endpoint = input.endpoint}, network = cluster_network(input), discovery = discovery(input),
  }
  if c.cluster_name_for_workers then cl.clusterName = input.cluster_name end
  return cl
end

local function sorted(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- registry.go: machine.registries before v1.12's contract, documents after
-- (sorted by kind, then name, as v1.12.2 and later sort them; v1.12.0 and
-- v1.12.1 left them in Go map order, which is random).
local function registries(input, c, m)
  local mirrors, insecure = input.registry_mirrors or {}, input.registry_insecure or {}
  if not c.multidoc_network then
    local r = {mirrors = {}, config = {}}
    for host, eps in pairs(mirrors) do r.mirrors[host] = {endpoints = copy_list(eps)} end
    for _, host in ipairs(insecure) do r.config[host] = {tls = {insecureSkipVerify = true}} end
    m.registries = r
    return {}
  end
  local docs = {}
  for _, host in ipairs(sorted(mirrors)) do
    local eps = {}
    for i, ep in ipairs(mirrors[host]) do eps[i] = {url = ep} end
    docs[#docs + 1] = {apiVersion = "v1alpha1", kind = "RegistryMirrorConfig", name = host, endpoints = eps}
  end
  local hosts = copy_list(insecure)
  table.sort(hosts)
  for _, host in ipairs(hosts) do
    docs[#docs + 1] = {apiVersion = "v1alpha1", kind = "RegistryTLSConfig", name = host, insecureSkipVerify = true}
  end
  return docs
end

-- network.go (v1.13 generator) and the v1.12 generator's hostname document.
local function network_docs(input, c, minor, m)
  local docs = {}
  if input.network then m.network = deep_copy(input.network) end
  if m.network == nil and not c.kubespan_multidoc then m.network = {} end
  if c.multidoc_network then
    docs[#docs + 1] = {apiVersion = "v1alpha1", kind = "HostnameConfig", auto = "stable"}
  end
  if input.kubespan ~= nil and minor >= 13 then
    if c.kubespan_multidoc then
      docs[#docs + 1] = {apiVersion = "v1alpha1", kind = "KubeSpanConfig", enabled = input.kubespan}
    else
      m.network.kubespan = {enabled = input.kubespan}
    end
  end
  return docs
end

local function check(input)
  for _, k in ipairs({"talos_version", "role", "cluster_name", "endpoint"}) do
    if input[k] == nil then error("talos generate: input." .. k .. " is required", 3) end
  end
  if input.role ~= "controlplane" and input.role ~= "worker" then
    error("talos generate: input.role must be controlplane or worker, not " .. tostring(input.role), 3)
  end
  local minor, why = M.minor(input.talos_version)
  if not minor then error("talos generate: " .. why, 3) end
  return minor
end

-- NewInput: pod/service nets from the endpoint, SAN lists, k8s version.
local function prepare(input)
  local i = setmetatable({}, {__index = input})
  local k8s = input.kubernetes_version
  if k8s == nil then k8s = default_k8s(input.talos_version) end
  i._k8s = tostring(k8s):gsub("^v", "")
  -- netip.ParseAddr(endpoint): only a bare IPv6 address (never a URL) gives the IPv6 nets
  local v6 = input.endpoint:match("^[%x:.]+$") and select(2, input.endpoint:gsub(":", "")) >= 2
  i._pods = input.pod_cidrs or {v6 and "fc00:db8:10::/56" or "10.244.0.0/16"}
  i._services = input.service_cidrs or {v6 and "fc00:db8:20::/112" or "10.96.0.0/12"}
  i._machine_sans = copy_list(input.machine_cert_sans or input.additional_sans)
  i._apiserver_sans = copy_list(input.apiserver_cert_sans or input.additional_sans)
  return i
end

--- The documents of the config `input` describes (see the module comment),
--- each an ordered table, in the order Talos writes them.
function M.documents(input)
  local minor = check(input)
  local c, prefix = contract(minor), input.secrets or "SECRET"
  local function S(path) return M.placeholder(prefix, path) end
  input = prepare(input)
  local persist = true
  if minor < 13 and input.persist ~= nil then persist = input.persist end
  local m = machine(input, c, S)
  local v1 = {version = "v1alpha1", debug = input.debug or false, persist = persist, machine = m}
  if input.role == "controlplane" then v1.cluster = controlplane_cluster(input, c, S)
  else v1.cluster = worker_cluster(input, c, S) end
  local docs = {v1}
  local extra = registries(input, c, m)
  for _, d in ipairs(extra) do docs[#docs + 1] = d end
  for _, d in ipairs(network_docs(input, c, minor, m)) do docs[#docs + 1] = d end
  if minor < 13 and m.network == nil then m.network = {} end
  return enc.normalize(docs, "v1." .. minor)
end

return M
