--! dry-run
-- Issue #27's tailnet edges against the world: `tailscale ping` as
-- cmd/tailscale/cli/ping.go answers (v1.72.1 to v1.102.2, the versions
-- siderolabs/extensions ships for Talos v1.8 to v1.13), the gate that
-- reads it, this machine's RouteAll (`tailscale debug prefs`), the tailnet
-- name recover.lua diagnoses, and the boot-state decision before a rollback.
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/lib/?.lua;" .. package.path
local world = dofile(src .. "/runbooks/sim/world.lua")
package.loaded["runbook.world"] = world
local t = require "runbook.testing"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local json = require "runbook.json"
local checks = require "checks"
local recovery = require "recovery"
local tailscale = require "tailscale"

local S = src .. "/runbooks/scenarios/"

--- The scenario file's text with `from` replaced by `to` (once, checked).
local function variant(file, from, to)
  local text = fs.read(S .. file)
  local i, j = text:find(from, 1, true)
  assert(i, "no " .. from .. " in " .. file)
  return {text = text:sub(1, i - 1) .. to .. text:sub(j + 1), name = file .. " (variant)"}
end

local function ts(...) return exec.run({"tailscale", ...}) end

function test_a_direct_pong_ends_the_ping_with_exit_0()
  world.load(S .. "after-rollout.yaml")
  local r = ts("ping", "-c", "1", "k8s-1")
  t.eq(r.code, 0)
  t.match(r.stdout, "^pong from k8s%-1 %(100%.%d+%.%d+%.%d+%) via 192%.168%.10%.11:41641 in %d+ms\n$")
  t.eq(r.stderr, "")
end

-- ping.go: a pong through DERP is no direct path; with --until-direct (its
-- default) the last of -c pings ends in "direct connection not established"
function test_a_pong_through_derp_exits_1_unless_until_direct_is_false()
  world.load(variant("after-rollout.yaml", "faults: []", "faults: [{type: tailnet_derp_only}]"))
  local r = ts("ping", "-c", "1", "k8s-2")
  t.eq(r.code, 1)
  t.match(r.stdout, "^pong from k8s%-2 %(100%.[%d.]+%) via DERP%(fra%) in %d+ms\n$")
  t.eq(r.stderr, "direct connection not established\n")
  local r2 = ts("ping", "-c", "1", "--until-direct=false", "k8s-2")
  t.eq(r2.code, 0); t.eq(r2.stdout, r.stdout); t.eq(r2.stderr, "")
  -- three pings through DERP: three pongs, then the same error
  local r3 = ts("ping", "-c", "3", "k8s-2")
  t.eq(r3.code, 1); t.eq(select(2, r3.stdout:gsub("pong from", "")), 3)
end

-- tailnet_derp_only with `times`: the first pongs come through DERP while
-- NAT traversal works, then a direct one ends the run (as
-- tests/corpus/tailscale/ping-derp-then-direct-kb-1257.txt shows)
function test_derp_pongs_until_the_direct_path_is_found()
  world.load(variant("after-rollout.yaml", "faults: []", "faults: [{type: tailnet_derp_only, times: 2}]"))
  local r = ts("ping", "-c", "1", "k8s-2")
  t.eq(r.code, 1); t.eq(r.stderr, "direct connection not established\n")
  r = ts("ping", "-c", "10", "k8s-2")
  t.eq(r.code, 0); t.eq(r.stderr, "")
  t.match(r.stdout, "^pong from k8s%-2 %([%d.]+%) via DERP%(fra%) in %d+ms\n"
                    .. "pong from k8s%-2 %([%d.]+%) via 192%.168%.10%.12:41641 in %d+ms\n$")
end

function test_the_gate_passes_a_node_that_answers_through_derp()
  world.load(variant("after-rollout.yaml", "faults: []", "faults: [{type: tailnet_derp_only, node: k8s-3}]"))
  local ok, ip, via = tailscale.ping("k8s-3")
  t.eq(ok, true); t.match(ip, "^100%."); t.eq(via, "DERP(fra)")
  local passed, obs = checks.node_in_tailnet("k8s-3")
  t.eq(passed, true); t.match(obs, "k8s%-3 answers tailscale ping %(100%.[%d.]+, via DERP%(fra%)%)")
  -- the fault names k8s-3 only: k8s-1 answers directly
  t.match(select(3, tailscale.ping("k8s-1")), "^192%.168%.10%.11:41641$")
end

function test_a_peer_that_does_not_answer_times_out_then_no_reply()
  world.load(S .. "after-rollout.yaml")
  local d = world.state().ix.dev_by_name["k8s-1"]
  d.online = false
  local r = ts("ping", "-c", "1", "k8s-1")
  t.eq(r.code, 1)
  t.eq(r.stdout, string.format("ping %q timed out\n", d.addresses[1]))
  t.eq(r.stderr, "no reply\n")
  local ok, why = tailscale.ping("k8s-1")
  t.eq(ok, false); t.eq(why, "no reply")
end

function test_flags_after_the_name_are_a_usage_error_as_with_go_flags()
  world.load(S .. "after-rollout.yaml")
  local r = ts("ping", "k8s-1", "-c", "1")
  t.eq(r.code, 1); t.eq(r.stderr, "usage: tailscale ping <hostname-or-IP>\n")
end

function test_ping_output_read_as_the_cli_prints_it()
  -- stdout and stderr as ping.go and cmd/tailscale/tailscale.go print them
  t.eq({tailscale.ping_result(0, "pong from k8s-1 (100.64.0.12) via 192.168.10.11:41641 in 2ms\n", "")},
       {true, "100.64.0.12", "192.168.10.11:41641"})
  t.eq({tailscale.ping_result(0, "pong from k8s-1 (100.64.0.12, 41915) via DERP(fra) in 23ms\n", "")},
       {true, "100.64.0.12", "DERP(fra)"})
  -- an older tailscale, or one called without --until-direct=false: the
  -- node answered, through a relay
  t.eq({tailscale.ping_result(1, "pong from k8s-1 (100.64.0.12) via DERP(fra) in 23ms\n",
                              "direct connection not established\n")}, {true, "100.64.0.12", "DERP(fra)"})
  t.eq({tailscale.ping_result(1, 'ping "100.64.0.12" timed out\n', "no reply\n")}, {false, "no reply"})
end

function test_this_machines_route_acceptance_from_debug_prefs()
  world.load(S .. "after-rollout.yaml")
  local r = ts("debug", "prefs")
  t.eq(r.code, 0)
  t.eq(json.decode(r.stdout).RouteAll, true)
  t.eq(tailscale.accepts_routes(), true)
  t.eq(checks.api_through_route("10.43.0.0/16"), true)
  world.load(S .. "faults/admin-rejects-routes-after-rollout.yaml")
  t.eq(json.decode(ts("debug", "prefs").stdout).RouteAll, false)
  t.eq(tailscale.accepts_routes(), false)
  local ok, obs = checks.api_through_route("10.43.0.0/16")
  t.eq(ok, false); t.match(obs, "run `tailscale set %-%-accept%-routes`")
end

function test_recover_diagnoses_a_dotted_hostname_under_its_device_name()
  world.load(S .. "dotted-hostnames-after-rollout.yaml")
  t.eq(recovery.tailnet_name("k8s-1.home", "tail1234.ts.net"), "k8s-1-home.tail1234.ts.net")
  local results = recovery.diagnose({{hostname = "k8s-1.home", ip = "192.168.10.11", control_plane = true}}, "tail1234.ts.net")
  local tailnet
  for _, d in ipairs(results) do if d.kind == "tailnet" then tailnet = d end end
  t.eq(tailnet.path.endpoint, "k8s-1-home.tail1234.ts.net")
  t.eq(tailnet.reachable, true, tailnet.error)
end

function test_the_boot_state_decides_whether_a_rollback_is_safe()
  local want = {id = "new-id", current_id = "old-id", from = "the rollout journal x"}
  t.eq(recovery.boot_state("new-id", want), "new")
  t.eq(recovery.boot_state("old-id", want), "old")
  t.eq(recovery.boot_state("third", want), "other")
  t.eq(recovery.boot_state(nil, want), "unreachable")
  t.eq(recovery.boot_state("old-id", {id = "new-id"}), "other")     -- the previous one unknown
  t.eq(recovery.rollback_refusal("k8s-2", "new", "new-id", want), nil)
  t.match(recovery.rollback_refusal("k8s-2", "old", "old-id", want), "k8s%-2 already runs its previous schematic old%-id")
  t.match(recovery.rollback_refusal("k8s-2", "unreachable", nil, want), "does not answer")
end

function test_the_node_that_fell_back_is_old_the_others_new()
  world.load(S .. "faults/fell-back-after-rollout-k8s-2.yaml")
  local want = {id = "4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b",
                current_id = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"}
  t.eq(recovery.node_boot_state("192.168.10.12", want), "old")
  t.eq(recovery.node_boot_state("192.168.10.11", want), "new")
  t.eq(recovery.node_boot_state("192.168.10.99", want), "unreachable")
end
