-- runbooks/lib/factory.lua: canonical YAML and schematic IDs against the
-- IDs the factory itself gives: the empty schematic's is vanilla Talos's
-- 376567988ad3..., as factory.talos.dev shows it.
package.path = (os.getenv("RUNBOOK_SOURCE") or "../..") .. "/runbooks/lib/?.lua;" .. package.path
local factory = require "factory"
local t = require "runbook.testing"

function test_vanilla()
  t.eq(factory.canonical({}), "customization: {}\n")
  t.eq(factory.id({}), factory.VANILLA_ID)
  t.eq(factory.id({customization = {}}), factory.VANILLA_ID)
  t.eq(factory.id({customization = {extraKernelArgs = {}}}), factory.VANILLA_ID)
end

function test_tailscale_only_is_the_plans_id()
  local s = {customization = {systemExtensions = {officialExtensions = {"siderolabs/tailscale"}}}}
  t.eq(factory.canonical(s), "customization:\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/tailscale\n")
  t.eq(factory.id(s), "4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b")
end

function test_kernel_args_meta_overlay_secureboot_vectors()
  t.eq(factory.id({customization = {extraKernelArgs = {"noapic", "nolapic"}}}),
       "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c")
  t.eq(factory.canonical({customization = {meta = {{key = 10, value = "foo"}}}}),
       "customization:\n    meta:\n        - key: 10\n          value: foo\n")
  t.eq(factory.id({customization = {meta = {{key = 0xa, value = "foo"}}}}),
       "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f")
  t.eq(factory.id({overlay = {image = "siderolabs/sbc-raspberrypi", name = "rpi_generic"}}),
       "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9")
  t.eq(factory.id({customization = {secureboot = {includeWellKnownCertificates = true}}}),
       "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6")
end

function test_order_and_duplicates_change_the_id_merge_sorts()
  local a = {customization = {systemExtensions = {officialExtensions = {"siderolabs/tailscale", "siderolabs/iscsi-tools"}}}}
  local b = {customization = {systemExtensions = {officialExtensions = {"siderolabs/iscsi-tools", "siderolabs/tailscale"}}}}
  t.truthy(factory.id(a) ~= factory.id(b), "the API does not sort: order matters")
  local merged = factory.merge(a, {extensions = {"siderolabs/tailscale"}})
  t.eq(factory.extensions(merged), {"siderolabs/iscsi-tools", "siderolabs/tailscale"})
  t.eq(factory.id(merged), factory.id(b))
  t.eq(factory.id(factory.merge({customization = {}}, {extensions = {"siderolabs/tailscale"}})), factory.TAILSCALE_ONLY_ID)
  t.eq(factory.id(factory.merge(nil, {extensions = {"siderolabs/tailscale", "siderolabs/tailscale"}})), factory.TAILSCALE_ONLY_ID)
end

function test_merge_keeps_everything_else()
  local cur = factory.parse("customization:\n    extraKernelArgs:\n        - net.ifnames=0\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/qemu-guest-agent\n")
  local m = factory.merge(cur, {extensions = {"siderolabs/tailscale"}})
  t.eq(factory.canonical(m), "customization:\n    extraKernelArgs:\n        - net.ifnames=0\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/qemu-guest-agent\n            - siderolabs/tailscale\n")
  t.eq(factory.dropped(cur, {customization = {systemExtensions = {officialExtensions = {"siderolabs/tailscale"}}}}),
       {"siderolabs/qemu-guest-agent"})
  t.eq(factory.dropped(cur, m), {})
end

function test_unknown_fields_are_refused()
  local err = t.raises(factory.canonical, {customisation = {}})
  t.eq(err.kind, "schematic")
  t.match(tostring(err), "unknown field customisation")
  t.raises("unknown field customization.systemExtension", factory.canonical, {customization = {systemExtension = {}}})
  t.raises("uint8", factory.canonical, {customization = {meta = {{key = 300, value = "x"}}}})
end

function test_scalars_quoted_as_go_yaml_would()
  t.eq(factory.canonical({customization = {extraKernelArgs = {"true", "123", "console=ttyS0,115200", "a: b"}}}),
       "customization:\n    extraKernelArgs:\n        - \"true\"\n        - \"123\"\n        - console=ttyS0,115200\n        - 'a: b'\n")
end

function test_installer_references_keep_their_form()
  local id = factory.TAILSCALE_ONLY_ID
  t.eq(factory.installer("factory.talos.dev/installer/" .. factory.VANILLA_ID .. ":v1.10.6", id, "v1.10.6"),
       "factory.talos.dev/installer/" .. id .. ":v1.10.6")
  t.eq(factory.installer("factory.talos.dev/metal-installer/" .. factory.VANILLA_ID, id, "v1.11.0"),
       "factory.talos.dev/metal-installer/" .. id .. ":v1.11.0")
  t.eq(factory.installer("ghcr.io/siderolabs/installer:v1.10.6", id, "v1.10.6"),
       "factory.talos.dev/installer/" .. id .. ":v1.10.6")
  t.eq(factory.installer("factory.talos.dev/installer/" .. factory.VANILLA_ID, id), "factory.talos.dev/installer/" .. id)
  local p = factory.parse_image("factory.talos.dev/metal-installer-secureboot/" .. id .. ":v1.11.2")
  t.eq(p, {registry = "factory.talos.dev", kind = "metal-installer-secureboot", id = id, tag = "v1.11.2", factory = true})
  -- a mirror with a path keeps its registry and path
  t.eq(factory.installer("registry.lan:5000/factory/installer/" .. factory.VANILLA_ID, id, "v1.10.6"),
       "registry.lan:5000/factory/installer/" .. id .. ":v1.10.6")
  -- with nothing to follow, a secureboot node gets the secureboot installer
  t.eq(factory.installer(nil, id, "v1.10.6", true), "factory.talos.dev/installer-secureboot/" .. id .. ":v1.10.6")
  t.eq(factory.installer(nil, id, "v1.10.6"), "factory.talos.dev/installer/" .. id .. ":v1.10.6")
  -- an explicit URL wins over the flag
  t.eq(factory.installer("factory.talos.dev/metal-installer/" .. factory.VANILLA_ID, id, nil, true),
       "factory.talos.dev/metal-installer/" .. id)
end
