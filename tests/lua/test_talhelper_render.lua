-- runbooks/sim/talos/talhelper_render.lua: what budimanjojo/talhelper makes
-- of a talhelper directory (envsubst, talenv, group/node merge, patches,
-- installer URLs by release, file names, .gitignore, gencommand upgrade).
local R = (os.getenv("RUNBOOK_SOURCE") or "../..") .. "/runbooks"
package.path = R .. "/?.lua;" .. R .. "/lib/?.lua;" .. package.path
local render = require "sim.talos.talhelper_render"
local envsubst = require "sim.talos.envsubst"
local gitignore = require "gitignore"
local V = require "sim.talos.talhelper_versions"
local yaml = require "runbook.yaml"
local t = require "runbook.testing"

local ID = string.rep("a", 64)
local function sid() return ID end

--- A directory in memory: path -> text.
local function dir(files)
  return function(p) return files[p] end
end

local function envf(vars) return function(name) return vars[name] end end

local BASE = [[
clusterName: home
talosVersion: v1.11.0
kubernetesVersion: v1.34.0
endpoint: https://192.168.1.10:6443
nodes:
  - hostname: cp1
    ipAddress: 192.168.1.11
    controlPlane: true
    installDisk: /dev/sda
  - hostname: w1
    ipAddress: 192.168.1.21, 10.0.0.21
    installDisk: /dev/sda
]]

local function plan_of(text, o)
  o = o or {}
  local files = o.files or {}
  files["/c/talconfig.yaml"] = text
  return render.render("talconfig.yaml", {cwd = "/c", read = dir(files), env = envf(o.env or {}),
                                          talhelper_version = o.tv, schematic_id = sid})
end

local function patch_names(plan, i)
  local out = {}
  for _, p in ipairs(assert(render.patches(plan, plan.nodes[i]))) do out[#out + 1] = p.source .. ":" .. p.name end
  return out
end

-- {====== envsubst (a8m/envsubst v1.4.3, noUnset + noEmpty)

function test_envsubst_forms()
  local env = envf({A = "x", E = ""})
  t.eq(envsubst.substitute("${A}-$A-$$A-${A:-d}-${U:-d}-${U-d}-${E:-d}-${A+y}-${U+y}", env), "x-x-$A-x-d-d-d-y-")
  t.eq(envsubst.substitute("${U:-$A}", env), "x")          -- a default that is a variable
  t.eq(envsubst.substitute("cost: 5$ and $_ and ${}", env), "cost: 5$ and $_ and ${}")
end

function test_envsubst_restrictions_name_the_variable()
  local env = envf({E = ""})
  t.eq(select(2, envsubst.substitute("a: ${TS_AUTHKEY}", env)), "variable ${TS_AUTHKEY} not set")
  t.eq(select(2, envsubst.substitute("a: $E", env)), "variable ${E} set but empty")
  t.eq(select(2, envsubst.substitute("a: ${A\n}", env)), "closing brace expected")
  -- the first in the file is the one reported (the parser stops there)
  t.eq(select(2, envsubst.substitute("${B} ${A}", env)), "variable ${B} not set")
  -- bare $1 is a variable too (noDigit is off)
  t.eq(select(2, envsubst.substitute("pw: a$1b", env)), "variable ${1b} not set")
end

function test_comments_are_not_substituted()
  local s = envsubst.substitute_yaml("a: 1 # ${NOPE}\n# ${NOPE}\nb: '#${A}'\nc: |\n  # ${A}\n", envf({A = "x"}))
  t.eq(s, "a: 1\n\nb: '#x'\nc: |\n  # x\n")
end

-- }======

-- {====== the whole file is substituted (issue #27.6), talenv wins (#27.10)

function test_an_unset_variable_anywhere_fails_gencommand_too()
  local text = BASE .. "    extensionServices:\n      - name: tailscale\n        environment:\n"
               .. "          - TS_AUTHKEY=${TS_AUTHKEY}\n"
  local plan, err = plan_of(text)
  t.eq(plan, nil)
  t.eq(err, "failed to parse config file: failed to substitute env: variable ${TS_AUTHKEY} not set")
  plan = assert(plan_of(text, {env = {TS_AUTHKEY = "tskey-auth-test1"}}))
  t.eq(plan.nodes[2].merged.extensionServices[1].environment[1], "TS_AUTHKEY=tskey-auth-test1")
end

function test_talenv_in_the_working_directory_overrides_the_environment()
  local text = BASE:gsub("clusterName: home", "clusterName: ${NAME}")
  local files = {["/c/talenv.yaml"] = "---\nNAME: fromfile\n"}
  local plan = assert(plan_of(text, {env = {NAME = "fromenv"}, files = files}))
  t.eq(plan.cluster_name, "fromfile")
  t.eq(plan.nodes[1].file_name, "fromfile-cp1.yaml")
  -- looked up in the working directory, not beside talconfig.yaml
  local files2 = {["/other/talenv.yaml"] = "NAME: beside\n", ["/other/talconfig.yaml"] = text}
  local p2 = assert(render.render("/other/talconfig.yaml", {cwd = "/c", read = dir(files2),
                                                            env = envf({NAME = "fromenv"}), schematic_id = sid}))
  t.eq(p2.cluster_name, "fromenv")
  -- a sops file's names are known without decrypting it
  local sops = "TS_AUTHKEY: ENC[AES256_GCM,data:xx]\nsops:\n  age: []\n"
  local f = render.env_files(dir({["/c/talenv.sops.yaml"] = sops}), "/c")
  t.eq(f[1].names, {"TS_AUTHKEY"})
  t.eq(f[1].sops, true)
end

-- }======

-- {====== merge of group and node

function test_group_and_node_merge_per_field_kind()
  local text = BASE .. [[
controlPlane:
  certSANs: [g.example]
  patches: ["@./g.yaml"]
  nodeLabels: {role: group}
  extensionServices:
    - name: group-svc
  schematic:
    customization:
      systemExtensions:
        officialExtensions: [siderolabs/iscsi-tools]
]]
  text = text:gsub("    controlPlane: true\n", "    controlPlane: true\n    certSANs: [n.example]\n"
                   .. "    patches: ['@./n.yaml']\n    extensionServices:\n      - name: node-svc\n", 1)
  local files = {["/c/g.yaml"] = "machine: {}\n", ["/c/n.yaml"] = "machine: {}\n"}
  local plan = assert(plan_of(text, {files = files}))
  local m = plan.nodes[1].merged
  t.eq(m.certSANs, {"n.example", "g.example"})                  -- appended, node first
  t.eq(m.patches, {"@/c/g.yaml", "@/c/n.yaml"})                  -- group first, made absolute
  t.eq(m.extensionServices[1].name, "node-svc")                  -- all or nothing
  t.eq(#m.extensionServices, 1)
  t.eq(m.nodeLabels.role, "group")                               -- the node has none: the group's
  t.eq(m.schematic.customization.systemExtensions.officialExtensions, {"siderolabs/iscsi-tools"})
  -- before v3.0.20 a node's certSANs replaced the group's
  local old = assert(plan_of(text:gsub("v1.11.0", "v1.9.0"), {files = files, tv = "v3.0.19"}))
  t.eq(old.nodes[1].merged.certSANs, {"n.example"})
end

function test_override_patches_drops_the_groups()
  local text = BASE .. "controlPlane:\n  patches: ['@./g.yaml']\n"
  text = text:gsub("    controlPlane: true\n",
                   "    controlPlane: true\n    overridePatches: true\n    patches: ['@./n.yaml']\n", 1)
  local plan = assert(plan_of(text, {files = {["/c/n.yaml"] = "machine: {}\n"}}))
  t.eq(plan.nodes[1].merged.patches, {"@/c/n.yaml"})
end

-- }======

-- {====== patches

function test_patch_order_own_then_node_then_global()
  local text = BASE .. "patches:\n  - '@./global.yaml'\nworker:\n  patches:\n    - '@./group.yaml'\n"
  text = text:gsub("    ipAddress: 192.168.1.21, 10.0.0.21\n", "    ipAddress: 192.168.1.21, 10.0.0.21\n"
    .. "    certSANs: [w1.example]\n    nodeLabels: {a: b}\n    patches:\n      - '@./node.yaml'\n"
    .. "      - |-\n        - op: add\n          path: /machine/network/hostname\n          value: x\n", 1)
  local files = {["/c/global.yaml"] = "machine: {}\n", ["/c/group.yaml"] = "machine:\n  env: {A: '${A}'}\n",
                 ["/c/node.yaml"] = "   \n\n"}   -- empty: skipped
  local plan = assert(plan_of(text, {files = files, env = {A = "1"}}))
  t.eq(patch_names(plan, 2), {"talhelper:talhelper:hostname", "talhelper:talhelper:installDisk",
    "talhelper:talhelper:nodeLabels", "talhelper:talhelper:certSANs", "talhelper:talhelper:installImage",
    "node:/c/group.yaml", "node:inline patch 3 of the node patches", "global:/c/global.yaml"})
  local ps = render.patches(plan, plan.nodes[2])
  t.eq(ps[6].text, "machine:\n  env: {A: '1'}\n")                -- file patches are envsubst'd
  t.eq(ps[7].kind, "json6902")
  t.eq(ps[3].kind, "json6902")                                   -- nodeLabels replace the generated ones
  t.eq(yaml.decode(ps[4].text), {machine = {certSANs = {"w1.example"}}})
end

function test_a_missing_patch_file_is_named()
  local text = BASE .. "patches: ['@./patches/gone.yaml']\n"
  local plan = assert(plan_of(text))                             -- gencommand does not read patches
  local p, err = render.patches(plan, plan.nodes[1])
  t.eq(p, nil)
  t.eq(err, "failed to generate talos config: open /c/patches/gone.yaml: no such file or directory")
  -- before v3.0.7 a patch path was relative to the working directory, as written
  local old = assert(plan_of((text:gsub("v1.11.0", "v1.8.0")), {tv = "v3.0.6"}))
  t.eq(select(2, render.patches(old, old.nodes[1])), "failed to generate talos config: open ./patches/gone.yaml: "
    .. "no such file or directory")
end

function test_an_unset_variable_in_a_patch_file()
  local plan = assert(plan_of(BASE .. "patches: ['@./p.yaml']\n", {files = {["/c/p.yaml"] = "a: ${NOPE}\n"}}))
  t.eq(select(2, render.patches(plan, plan.nodes[1])), "failed to generate talos config: variable ${NOPE} not set")
end

function test_extension_services_become_documents()
  local text = BASE .. "worker:\n  extensionServices:\n    - name: tailscale\n      environment: [TS_HOSTNAME=w]\n"
  local plan = assert(plan_of(text))
  local ps = render.patches(plan, plan.nodes[2])
  local md
  for _, p in ipairs(ps) do if p.name == "talhelper:multidocs" then md = p end end
  t.eq(yaml.decode_all(md.text), {{apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = "tailscale",
                                   environment = {"TS_HOSTNAME=w"}}})
end

-- }======

-- {====== installer images (issue #27.4)

function test_installer_url_by_release()
  local text = BASE:gsub("    installDisk: /dev/sda\n  %- hostname: w1", "    installDisk: /dev/sda\n    machineSpec:\n"
                         .. "      secureboot: true\n  - hostname: w1", 1)
  local new = assert(plan_of(text))
  t.eq(new.nodes[1].installer, "factory.talos.dev/metal-installer-secureboot/" .. ID .. ":v1.11.0")
  t.eq(new.nodes[2].installer, "factory.talos.dev/metal-installer/" .. ID .. ":v1.11.0")
  local old = assert(plan_of(text, {tv = "v3.0.23"}))   -- v1.11 is supported from v3.0.23
  t.eq(old.nodes[1].installer, "factory.talos.dev/installer-secureboot/" .. ID .. ":v1.11.0")
  t.eq(old.nodes[2].installer, "factory.talos.dev/installer/" .. ID .. ":v1.11.0")
  local first = assert(plan_of(text, {tv = "v3.0.24"}))       -- the release that changed it
  t.eq(first.nodes[2].installer, "factory.talos.dev/metal-installer/" .. ID .. ":v1.11.0")
end

function test_talos_image_url_beats_the_schematic()
  local text = BASE .. "worker:\n  talosImageURL: reg.lan/my/installer\n  schematic:\n    customization: {}\n"
  local plan = assert(plan_of(text))
  t.eq(plan.nodes[2].installer, "reg.lan/my/installer:v1.11.0")
end

function test_no_talos_version_means_the_releases_latest()
  local plan = assert(plan_of((BASE:gsub("talosVersion: v1.11.0\n", "")), {tv = "v3.0.34"}))
  t.eq(plan.talos_version, "v1.11.0")
  t.eq(V.latest_talos("v3.1.16"), "v1.13.8")
end

-- }======

-- {====== gencommand upgrade

function test_gencommand_upgrade_lines()
  local plan = assert(plan_of(BASE))
  local out = assert(render.gencommand_upgrade(plan, "./clusterconfig"))
  local img = "--image=factory.talos.dev/metal-installer/" .. ID .. ":v1.11.0;"
  t.eq(out, table.concat({
    "talosctl upgrade --talosconfig=./clusterconfig/talosconfig --nodes=192.168.1.11 " .. img,
    "talosctl upgrade --talosconfig=./clusterconfig/talosconfig --nodes=192.168.1.21 " .. img,
    "talosctl upgrade --talosconfig=./clusterconfig/talosconfig --nodes=10.0.0.21 " .. img, ""}, "\n"))
  t.eq(select(2, render.gencommand_upgrade(plan, "o", "nope")), "failed to generate talosctl upgrade command: "
    .. "node with IP or hostname nope not found")
  local one = render.gencommand_upgrade(plan, "o", "10.0.0.21", {"--preserve"})
  t.eq(one, "talosctl upgrade --talosconfig=o/talosconfig --nodes=10.0.0.21 --image=factory.talos.dev/metal-installer/"
       .. ID .. ":v1.11.0 --preserve;\n")
end

-- }======

-- {====== validation, file names, .gitignore (issue #27.12)

function test_validation_refusals()
  local plan, err, problems = plan_of((BASE:gsub("    installDisk: /dev/sda\n", "", 1):gsub("v1.11.0", "v1.1.0")))
  t.eq(plan, nil)
  t.eq(err, "failed to parse config file: please fix issues with your config file")
  t.eq(problems.stdout, 'There are issues with your Talhelper config file:\nfield: "talosVersion"\n'
       .. '  * "v1.1.0" is not a supported Talos version\nfield: "nodes[0].installDisk"\n'
       .. '  * "nodes[0].installDisk" is required to be not empty\n')
end

function test_filename_template_from_3_0_24()
  local text = BASE:gsub("    installDisk: /dev/sda\n",
                         "    installDisk: /dev/sda\n    filenameTmpl: '{{.Role}}-{{ .IPAddress }}.yaml'\n", 1)
  t.eq(assert(plan_of(text)).nodes[1].file_name, "controlplane-192.168.1.11.yaml")
  t.eq(assert(plan_of(text, {tv = "v3.0.23"})).nodes[1].file_name, "home-cp1.yaml")
  t.eq(assert(plan_of(text, {tv = "v3.0.24"})).nodes[1].file_name, "controlplane-192.168.1.11.yaml")
end

function test_gitignore_patterns_as_go_gitignore()
  t.eq(gitignore.matches("*.yaml\n", "home-cp1.yaml"), true)
  t.eq(gitignore.matches("*.yaml\n!home-cp1.yaml\n", "home-cp1.yaml"), false)
  t.eq(gitignore.matches("/home-*\n", "home-cp1.yaml"), true)
  t.eq(gitignore.matches("# home-cp1.yaml\n", "home-cp1.yaml"), false)
  t.eq(gitignore.matches("home-cp?.yaml\n", "home-cp1.yaml"), false)     -- go-gitignore: "?" is literal
  t.eq(gitignore.matches("**/home-cp1.yaml\n", "home-cp1.yaml"), true)
  t.eq(gitignore.append("*.yaml\n", {"home-cp1.yaml", "talosconfig"}), "*.yaml\ntalosconfig\n")
  t.eq(gitignore.append("old", {"talosconfig"}), "oldtalosconfig\n")       -- O_APPEND after a line without newline
end

function test_gitignore_plain_names_keep_the_last_rule_deciding()
  -- a plain name matches a path one of whose components it is; the last
  -- matching rule decides, plain or not
  t.eq(gitignore.matches("a.yaml\n", "dir/a.yaml"), true)
  t.eq(gitignore.matches("dir\n", "dir/a.yaml"), true)
  t.eq(gitignore.matches("a.yaml\n", "xa.yaml"), false)
  t.eq(gitignore.matches("a.yaml\n!a.yaml\n", "a.yaml"), false)
  t.eq(gitignore.matches("!a.yaml\na.yaml\n", "a.yaml"), true)
  t.eq(gitignore.matches("a.yaml\n!*.yaml\n", "a.yaml"), false)
  t.eq(gitignore.matches("!*.yaml\na.yaml\n", "a.yaml"), true)
  t.eq(gitignore.matches("*.yaml\n!a.yaml\nb\n", "a.yaml"), false)
  t.eq(gitignore.matches("  a.yaml  \r\n", "a.yaml"), true)
  t.eq(gitignore.append("n1.yaml\n!n2.yaml\n", {"n1.yaml", "n2.yaml", "n2.yaml"}), "n1.yaml\n!n2.yaml\nn2.yaml\n")
end

-- }======

-- {====== runbooks/lib/talhelper.lua: what the rollout checks

local talhelper = require "talhelper"
local fs = require "runbook.fs"
local exec = require "runbook.exec"

function test_same_installer_by_schematic_tag_and_secure_boot()       -- issue #27.4
  local a = "factory.talos.dev/installer/" .. ID .. ":v1.11.0"
  t.eq(talhelper.same_installer(a, "factory.talos.dev/metal-installer/" .. ID .. ":v1.11.0"), true)
  t.eq(talhelper.same_installer("factory.talos.dev/installer-secureboot/" .. ID .. ":v1.11.0",
                                "factory.talos.dev/metal-installer-secureboot/" .. ID .. ":v1.11.0"), true)
  t.eq(talhelper.same_installer(a, "factory.talos.dev/metal-installer-secureboot/" .. ID .. ":v1.11.0"), false)
  t.eq(talhelper.same_installer(a, "factory.talos.dev/metal-installer/" .. ID .. ":v1.11.1"), false)
  t.eq(talhelper.same_installer(a, "factory.talos.dev/aws-installer/" .. ID .. ":v1.11.0"), false)
  t.eq(talhelper.same_installer(a, "factory.talos.dev/installer/" .. string.rep("b", 64) .. ":v1.11.0"), false)
  t.eq(talhelper.same_installer("ghcr.io/siderolabs/installer:v1.11.0", "ghcr.io/siderolabs/installer:v1.11.0"), true)
end

function test_talenv_conflicts_name_file_and_variable()               -- issue #27.10
  local d = fs.tmpdir("talenv")
  fs.write(d .. "/talenv.yaml", "---\nCLUSTER: x\nTS_AUTHKEY: tskey-auth-test-x\n")
  fs.write(d .. "/talenv.sops.yaml", "export TS_AUTHKEY=ENC[AES256_GCM,data:x]\nsops:\n  TS_AUTHKEY: no\n")
  t.eq(talhelper.env_conflicts(d, {"TS_AUTHKEY"}), {{file = d .. "/talenv.yaml", name = "TS_AUTHKEY"},
                                                    {file = d .. "/talenv.sops.yaml", name = "TS_AUTHKEY"}})
  t.eq(talhelper.env_conflicts(d, {"OTHER"}), {})
  for _, f in ipairs(fs.list(d)) do fs.remove(d .. "/" .. f) end
  fs.remove(d)
end

function test_generated_files_from_genconfig_output()                 -- issue #27.12: filenameTmpl
  t.eq(talhelper.generated_files("WARNING: x\ngenerated config for cp1 in ./out/controlplane-cp1.yaml\n"
                                 .. "generated client config in ./out/talosconfig\n"),
       {cp1 = "./out/controlplane-cp1.yaml"})
end

function test_ignored_by_git_check_ignore_or_patterns()               -- issue #27.12
  local d = fs.tmpdir("gitignore")
  fs.write(d .. "/.gitignore", "*.yaml\n!keep.yaml\nab?.txt\n")
  t.eq(talhelper.ignored(d, "home-cp1.yaml", false), true)
  t.eq(talhelper.ignored(d, "keep.yaml", false), false)
  t.eq(select(2, talhelper.ignored(d, "abc.txt", false)), ".gitignore patterns")
  t.eq(talhelper.ignored(d, "abc.txt", false), false)                  -- go-gitignore: "?" is a literal
  if exec.which("git") then
    local r = exec.run({"git", "-C", d, "init", "-q"}, {timeout = 30})
    t.eq(r.code, 0)
    local ign, how = talhelper.ignored(d, "abc.txt", true)
    t.eq({ign, how}, {true, "git check-ignore"})                       -- git: "?" is any character
    t.eq(talhelper.ignored(d, "keep.yaml", true), false)
    exec.run({"rm", "-rf", d}, {timeout = 30})
  end
end

-- }======

function test_docs_for_feeds_the_generator_and_patcher_in_order()
  -- the whole config: Talos's generator for the node's input, then the
  -- talconfig's patches (a file patch appends to certSANs)
  local plan = assert(plan_of(BASE .. "patches: ['@./g.yaml']\n",
                              {files = {["/c/g.yaml"] = "machine:\n  certSANs: [from-patch.example]\n"}}))
  local docs = assert(render.docs_for(plan.nodes[1]))
  local v1
  for _, d in ipairs(docs) do if d.version == "v1alpha1" then v1 = d end end
  t.eq(v1.machine.type, "controlplane")
  t.eq(v1.machine.install.image, plan.nodes[1].installer)        -- talhelper sets it after generating
  t.eq(v1.machine.certSANs[#v1.machine.certSANs], "from-patch.example")
  t.eq(v1.machine.token, "SECRET(machine.token)")                 -- generated, as a placeholder
  -- a node rendered again gets documents of its own, not the ones changed
  v1.machine.certSANs[#v1.machine.certSANs] = "changed.example"
  local again
  for _, d in ipairs(assert(render.docs_for(plan.nodes[1]))) do if d.version == "v1alpha1" then again = d end end
  t.eq(again.machine.certSANs[#again.machine.certSANs], "from-patch.example")
  t.eq(getmetatable(again.machine.certSANs), getmetatable(v1.machine.certSANs))    -- the yaml marks kept
  -- a patch Talos refuses is talhelper's error, not a crash
  plan = assert(plan_of(BASE .. "patches: ['@./g.yaml']\n", {files = {["/c/g.yaml"] = "machine:\n  nosuchfield: 1\n"}}))
  local none, err = render.docs_for(plan.nodes[1])
  t.eq(none, nil)
  t.match(err, "nosuchfield")
end

function test_default_networks_ipv4_even_for_an_ipv6_endpoint_url()
  local plan = assert(plan_of((BASE:gsub("https://192.168.1.10:6443", "https://[fd00::10]:6443"))))
  t.eq(plan.nodes[1].gen_input.service_cidrs, {"10.96.0.0/12"})     -- netip.ParseAddr fails on a URL
  t.eq(plan.nodes[1].gen_input.pod_cidrs, {"10.244.0.0/16"})
end

function test_merge_by_go_zero_values()
  -- an empty list given on the node is not Go's zero (yaml.v3: non-nil): it
  -- wins over the group's; a machineSpec whose fields are all zero is zero
  local text = BASE .. "worker:\n  extensionServices:\n    - name: group-svc\n  machineSpec: {secureboot: true}\n"
  text = text:gsub("    ipAddress: 192.168.1.21, 10.0.0.21\n", "    ipAddress: 192.168.1.21, 10.0.0.21\n"
                   .. "    extensionServices: []\n    machineSpec: {secureboot: false}\n", 1)
  local plan = assert(plan_of(text))
  t.eq(#plan.nodes[2].merged.extensionServices, 0)
  t.eq(plan.nodes[2].merged.machineSpec.secureboot, true)
  t.eq(plan.nodes[2].installer, "factory.talos.dev/metal-installer-secureboot/" .. ID .. ":v1.11.0")
end

function test_an_unmodelled_release_is_refused()
  t.eq(select(2, plan_of(BASE, {tv = "v2.5.0"})), "talhelper v2.5.0 is not modelled (the simulated talhelper knows "
       .. "v3.0.0 .. v3.1.16)")
end
