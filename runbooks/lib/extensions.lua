--- extensions: the official Talos system extensions, as siderolabs/extensions
--- v1.13.0 ships them (each directory's manifest.yaml.tmpl gives the name;
--- a service extension copies its service spec to /usr/local/etc/
--- containers/<service>.yaml in its pkg.yaml, and Talos runs it as
--- ext-<service>; the README of the ones that read an
--- ExtensionServiceConfig says so). Generated from the mirror as
--- docs/extension.md says; an extension not listed here is refused
--- by name before anything changes (the Image Factory's own list for the
--- target Talos version is checked at run time too).
local M = {}

--- name -> {services = {service names}, config = whether its README asks
--- for an ExtensionServiceConfig}
M.OFFICIAL = {
  ["amazon-ena"] = {services = {}, config = false},
  ["amd-ucode"] = {services = {}, config = false},
  ["amdgpu"] = {services = {}, config = false},
  ["binfmt-misc"] = {services = {}, config = false},
  ["bird2"] = {services = {"bird2"}, config = true},
  ["bnx2-bnx2x"] = {services = {}, config = false},
  ["btrfs"] = {services = {}, config = false},
  ["chelsio-drivers"] = {services = {}, config = false},
  ["chelsio-firmware"] = {services = {}, config = false},
  ["cloudflared"] = {services = {"cloudflared"}, config = true},
  ["crun"] = {services = {}, config = false},
  ["ctr"] = {services = {}, config = false},
  ["drbd"] = {services = {}, config = false},
  ["dvb-cx23885"] = {services = {}, config = false},
  ["dvb-m88ds3103"] = {services = {}, config = false},
  ["ecr-credential-provider"] = {services = {}, config = false},
  ["fuse3"] = {services = {}, config = false},
  ["gasket-driver"] = {services = {}, config = false},
  ["glibc"] = {services = {}, config = false},
  ["gpio-pinctrl"] = {services = {}, config = false},
  ["gvisor-debug"] = {services = {}, config = false},
  ["gvisor"] = {services = {}, config = false},
  ["hailort"] = {services = {}, config = false},
  ["hello-world-service"] = {services = {"hello-world"}, config = false},
  ["i915"] = {services = {}, config = false},
  ["intel-ice-firmware"] = {services = {}, config = false},
  ["intel-npu"] = {services = {}, config = false},
  ["intel-ucode"] = {services = {}, config = false},
  ["iscsi-tools"] = {services = {"iscsid"}, config = false},
  ["joydev"] = {services = {}, config = false},
  ["kata-containers"] = {services = {}, config = false},
  ["lldpd"] = {services = {"lldpd"}, config = true},
  ["mdadm"] = {services = {}, config = false},
  ["mei"] = {services = {}, config = false},
  ["mellanox-mstflint"] = {services = {}, config = false},
  ["metal-agent"] = {services = {"metal-agent"}, config = false},
  ["multipath-tools"] = {services = {"multipathd"}, config = true},
  ["nebula"] = {services = {"nebula"}, config = true},
  ["netbird"] = {services = {"netbird"}, config = true},
  ["newt"] = {services = {"newt"}, config = true},
  ["nfs-utils"] = {services = {}, config = false},
  ["nfsd"] = {services = {}, config = false},
  ["nfsrahead"] = {services = {}, config = false},
  ["nonfree-kmod-nvidia-lts"] = {services = {}, config = false},
  ["nonfree-kmod-nvidia-production"] = {services = {}, config = false},
  ["nut-client"] = {services = {"nut-client"}, config = true},
  ["nvidia-container-toolkit-lts"] = {services = {"nvidia-persistenced", "nvidia-cdi-gen"}, config = false},
  ["nvidia-container-toolkit-production"] = {services = {"nvidia-persistenced", "nvidia-cdi-gen"}, config = false},
  ["nvidia-fabricmanager-lts"] = {services = {"nvidia-fabricmanager"}, config = false},
  ["nvidia-fabricmanager-production"] = {services = {"nvidia-fabricmanager"}, config = false},
  ["nvidia-gdrdrv-device"] = {services = {"nvidia-gdrdrv-device"}, config = false},
  ["nvidia-open-gpu-kernel-modules-lts"] = {services = {}, config = false},
  ["nvidia-open-gpu-kernel-modules-production"] = {services = {}, config = false},
  ["nvme-cli"] = {services = {}, config = false},
  ["panfrost"] = {services = {}, config = false},
  ["px-fuse"] = {services = {}, config = false},
  ["qemu-guest-agent"] = {services = {"qemu-guest-agent"}, config = false},
  ["qlogic-firmware"] = {services = {}, config = false},
  ["realtek-firmware"] = {services = {}, config = false},
  ["revpi-firmware"] = {services = {}, config = false},
  ["rockchip-rknn"] = {services = {}, config = false},
  ["soci-snapshotter"] = {services = {"soci-snapshotter"}, config = false},
  ["spin"] = {services = {}, config = false},
  ["stargz-snapshotter"] = {services = {"stargz-snapshotter"}, config = false},
  ["tailscale"] = {services = {"tailscale"}, config = true},
  ["tenstorrent"] = {services = {}, config = false},
  ["thunderbolt"] = {services = {}, config = false},
  ["trident-iscsi-tools"] = {services = {}, config = true},
  ["uhid"] = {services = {}, config = false},
  ["uinput"] = {services = {}, config = false},
  ["usb-audio-drivers"] = {services = {}, config = false},
  ["usb-modem-drivers"] = {services = {}, config = false},
  ["util-linux-tools"] = {services = {}, config = false},
  ["v4l-uvc-drivers"] = {services = {}, config = false},
  ["vc4"] = {services = {}, config = false},
  ["vmtoolsd-guest-agent"] = {services = {"talos-vmtoolsd"}, config = false},
  ["wasmedge"] = {services = {}, config = false},
  ["xdma-driver"] = {services = {}, config = false},
  ["xen-guest-agent"] = {services = {"xen-guest-agent"}, config = false},
  ["xe"] = {services = {}, config = false},
  ["youki"] = {services = {}, config = false},
  ["zerotier"] = {services = {"zerotier"}, config = true},
  ["zfs"] = {services = {"zfs-service"}, config = false},
}

--- The short name of an official extension ("siderolabs/iscsi-tools" ->
--- "iscsi-tools"), or nil and why when it is not one.
---@param ref string
---@return string? short, string? why
function M.short(ref)
  local short = tostring(ref):match("^siderolabs/([%w%-_.]+)$")
  if not short then return nil, ("%s: an official extension is named siderolabs/<name>"):format(tostring(ref)) end
  if not M.OFFICIAL[short] then return nil, ("%s is not an official extension (siderolabs/extensions v1.13.0)"):format(ref) end
  return short
end

--- The Talos service names (ext-<service>) an extension runs.
---@param ref string "siderolabs/iscsi-tools"
---@return string[]
function M.services(ref)
  local e = M.OFFICIAL[tostring(ref):match("([^/]+)$")]
  local out = {}
  for _, s in ipairs(e and e.services or {}) do out[#out + 1] = "ext-" .. s end
  return out
end

--- Whether the extension reads an ExtensionServiceConfig (its README says so).
---@param ref string
---@return boolean
function M.needs_config(ref)
  local e = M.OFFICIAL[tostring(ref):match("([^/]+)$")]
  return e ~= nil and e.config
end

return M
