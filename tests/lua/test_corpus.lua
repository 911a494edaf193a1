-- The runbooks' parsers (runbooks/lib/talos.lua, tailscale.lua, kube.lua)
-- fed what the real tools printed: every sample of tests/corpus/index.yaml
-- with a `parser` is read by that parser and what it reads is compared with
-- the sample's `expect`. A sample marked `known_misread` (listed in
-- tests/corpus/KNOWN-MISREADS.md) is reported, not failed; one so marked that
-- the parser now reads right fails, so that the mark goes.
local src = os.getenv("RUNBOOK_SOURCE") or "../.."
package.path = src .. "/runbooks/lib/?.lua;" .. src .. "/runbooks/?.lua;" .. package.path
local exec = require "runbook.exec"
local json = require "runbook.json"
local yaml = require "runbook.yaml"
local t = require "runbook.testing"
local talos = require "talos"
local tailscale = require "tailscale"
local kube = require "kube"
local factory = require "factory"
local jsonpath = require "sim.jsonpath"

local CORPUS = src .. "/tests/corpus/"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local INDEX = yaml.decode(read(CORPUS .. "index.yaml"), {name = "tests/corpus/index.yaml"}).samples

-- Runs fn with exec.run answering every command as `reply` ({code, stdout,
-- stderr}) and recording the argv it was given.
local function with_exec(reply, fn)
  local real, seen = exec.run, {}
  exec.run = function(argv) seen[#seen + 1] = argv; return reply end
  local ok, a, b = pcall(fn)
  exec.run = real
  if not ok then error(a, 0) end
  return a, b, seen
end

local function ok(stdout) return {code = 0, stdout = stdout, stderr = ""} end

-- {====== what each parser reads from a sample: a table of the expect's keys

local READ = {}

READ["talos.parse_etcd_status"] = function(text, e)
  local m = talos.parse_etcd_status(text)
  local got = {members = #m, nodes = {}, errors = {}, learners = {}, leader_member = json.null}
  for i, row in ipairs(m) do
    got.nodes[i], got.errors[i], got.learners[i] = row.node, row.errors, row.learner
    if row.leader then got.leader_member = row.member end
  end
  got.in_use_1 = m[1] and m[1].in_use
  got.protocol_1 = m[1] and m[1].protocol or json.null
  if e.storage_1 then got.storage_1 = m[1] and m[1].storage end
  return got
end

READ["talos.service_detail"] = function(text, e, entry)
  local d = with_exec(ok(text), function() return talos.service_detail("node", "svc") end)
  local got = {state = d.state, health = d.health, events = #d.events, event_1 = d.events[1]}
  if e.last_health_message then got.last_health_message = d.last_health_message end
  -- what talos.service_up makes of it: HEALTH is "?" when the resource says
  -- unknown, "OK" when healthy, "Fail" otherwise (formatters.go HealthStatus);
  -- the flags read as talos.service reads them, for the service the sample names
  local id = (entry and entry.command or ""):match("(%S+)$") or "svc"
  got.up = talos.service_up(talos.service_state(id, d.state == "Running", d.health == "OK", d.health == "?"))
  return got
end

READ["talos.client_version"] = function(text, e)
  talos.forget_client_version()           -- read once per run: each sample is a run of its own
  local tag, minor = with_exec(ok(text), talos.client_version)
  local got = {tag = tag, minor = minor}
  if e.servers then
    -- talos.versions of the same output: each node's Tag under the one
    -- "Server:" heading (cmd/talosctl/cmd/talos/version.go)
    local nodes = {}
    for node in pairs(e.servers) do nodes[#nodes + 1] = node end
    table.sort(nodes)
    local v = with_exec(ok(text), function() return talos.versions(nodes) end)
    got.servers = v.servers
  end
  return got
end

-- the two lines of `talosctl etcd snapshot`, with a file of the size they
-- report (a database of zeros and its sha256, as etcd's format has it):
-- what talos.etcd_snapshot reads, and whether it takes that file
READ["talos.etcd_snapshot"] = function(text)
  local size = tonumber(text:match("%((%d+) bytes%)") or "32")
  local db = string.rep("\0", size - 32)
  local digest = require("runbook.hash").sha256(db):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  local file = "corpus-etcd.snapshot"
  require("runbook.fs").write(file, db .. digest)
  local okr, s = pcall(with_exec, ok(text), function() return talos.etcd_snapshot("node", file) end)
  os.remove(file)
  if not okr then return {file_accepted = false, why = tostring(s)} end
  return {size = s.size, hash = s.hash, revision = s.revision, size_mod_512 = size % 512, file_accepted = true}
end

-- the resource as -o json would carry it: the sample's YAML read as the object
READ["talos.extensions"] = function(text)
  local obj = yaml.decode(text, {name = "sample"})
  local names, schematic = with_exec(ok(json.encode(obj)), function() return talos.extensions("node") end)
  return {names = names, schematic = schematic or json.null}
end

READ["talos.explain_upgrade_error"] = function(text)
  local why = talos.explain_upgrade_error(text) or ""
  return {explains = why:match("^Talos refused: (.-) %(") or why:match("^Talos refused: (.*)$") or why:match("^[^(]*[^ (]")
          or why}
end

-- the lines a diff removes and adds (a unified diff's "-"/"+" lines, not
-- its "--- a"/"+++ b" header)
local function diff_lines(diff)
  local minus, plus = {}, {}
  for line in (diff .. "\n"):gmatch("(.-)\n") do
    if not line:match("^%-%-%- a$") and not line:match("^%+%+%+ b$") then
      local sign, body = line:match("^([+-])(.*)$")
      if sign == "-" then minus[#minus + 1] = body elseif sign == "+" then plus[#plus + 1] = body end
    end
  end
  return minus, plus
end

-- a whole reply as it is, or a configdiff fixture as v1.8+ prints it on
-- stderr (v1alpha1_server.go generateDiff; helpers/mode.go PrintApplyResults)
READ["talos.dry_run_diff"] = function(text, e, entry)
  if entry.parser:find("wrapped", 1, true) then
    text = "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\n" .. text .. "\n"
  end
  local diff, form = talos.dry_run_diff(text)
  local got = {diff_first_line = diff and diff:match("^[^\n]*"), form = form}
  if e.minus then got.minus, got.plus = diff_lines(diff or "") end
  return got
end

-- as `tailscale ping -c 1` prints it: the sample's first pong, and when that
-- pong is not direct the error ping.go returns after the last ping
local function read_pong(text)
  local ok1, ip = with_exec({code = 0, stdout = text, stderr = ""}, function() return tailscale.ping("peer") end)
  local first = text:match("^[^\n]*\n")
  local derp = {code = 1, stdout = first, stderr = "direct connection not established\n"}
  local ok2 = with_exec(derp, function() return tailscale.ping("peer") end)
  return {ok = ok1, ip = ip, derp_first_line_ok = ok2}
end

-- the errors ping.go returns (printed on stderr by the CLI's main)
local PING_ERRORS = {["no reply"] = true, ["direct connection not established"] = true}

-- a ping that failed (exit 1): the error ping.go returns on stderr, what it
-- printed before (pongs, `ping "IP" timed out`, or the backend's state) on
-- stdout
local function read_failed_ping(text)
  local out, err = text, ""
  local head, last = text:match("^(.-)([^\n]*)\n?$")
  if PING_ERRORS[last] then out, err = head, last .. "\n" end
  local answered, why = with_exec({code = 1, stdout = out, stderr = err}, function() return tailscale.ping("peer") end)
  return {ok = answered, why = why}
end

READ["tailscale.ping"] = function(text, _, entry)
  if entry.parser:find("(failed)", 1, true) then return read_failed_ping(text) end
  return read_pong(text)
end

-- `tailscale status --json` as tailscale.peers_of reads it: the peers, or
-- the state it refuses
READ["tailscale.peers_of"] = function(text)
  local st = json.decode(text, {name = "sample"})
  local okp, peers = pcall(tailscale.peers_of, st)
  if not okp then return {running = false, state = tostring(peers):match("BackendState (%a+)")} end
  local p = peers[1] or {}
  return {running = true, peers = #peers, peer_1_name = p.name, peer_1_dns_name = p.dns_name, peer_1_online = p.online,
          peer_1_ips = p.ips, peer_1_routes = p.primary_routes and #p.primary_routes}
end

-- each row of `talosctl get service`: RUNNING, HEALTHY, HEALTH UNKNOWN as
-- the resource's running, healthy, unknown; the services talos.service_up
-- takes for not up
READ["talos.service_up"] = function(text)
  local rows, not_up = 0, {}
  for line in text:gmatch("[^\n]+") do
    local id, running, healthy, unknown = line:match("^%S+%s+runtime%s+Service%s+(%S+)%s+%d+%s+(%a+)%s+(%a+)%s+(%a+)%s*$")
    if id then
      rows = rows + 1
      if not talos.service_up({running = running == "true", healthy = healthy == "true", unknown = unknown == "true"}) then
        not_up[#not_up + 1] = id
      end
    end
  end
  return {rows = rows, not_up = not_up}
end

-- the pattern the rollout reads `talhelper gencommand upgrade` with (its
-- step "talhelper agrees on the installer images" and the scratch-copy
-- check: talhelper.installer_images in runbooks/lib/talhelper.lua), taken
-- from the file itself so that the test follows it
local function rollout_image_pattern()
  local text = read(src .. "/runbooks/lib/talhelper.lua")
  for pat in text:gmatch('stdout:gmatch%("(.-)"%)') do
    if pat:find("image", 1, true) then return pat end
  end
  error("runbooks/lib/talhelper.lua: no gmatch over talhelper gencommand upgrade's --image found")
end

-- `talhelper gencommand upgrade`: its lines, how many the rollout's
-- pattern reads, and the installer kinds and tags of the --image values
READ["rollout.talhelper_images"] = function(text)
  local pat, lines, reads, kinds, tags, seen = rollout_image_pattern(), 0, 0, {}, {}, {}
  for line in text:gmatch("[^\n]+") do
    lines = lines + 1
    local p = factory.parse_image(line:match("%-%-image=([^%s;]+)"))
    if not seen["k" .. p.kind] then seen["k" .. p.kind] = true; kinds[#kinds + 1] = p.kind end
    if not seen["t" .. p.tag] then seen["t" .. p.tag] = true; tags[#tags + 1] = p.tag end
  end
  for _ in text:gmatch(pat) do reads = reads + 1 end
  return {lines = lines, rollout_reads = reads, kinds = kinds, tags = tags}
end

-- a Pod as the one item of the List `kubectl get pods -n NS -o json` prints
READ["kube.pods"] = function(text)
  local list = ('{"apiVersion": "v1", "kind": "List", "items": [%s]}'):format(text)
  local pods = with_exec(ok(list), function() return kube.pods("ns") end)
  local p = pods[1] or {}
  return {pods = #pods, name = p.name, phase = p.phase, ready = p.ready}
end

READ["factory.parse_image"] = function(text)
  local p = factory.parse_image((text:gsub("%s+$", "")))
  return {factory = p.factory, registry = p.registry, kind = p.kind, id = p.id, tag = p.tag}
end

READ["json.decode"] = function(text)
  return {decodes = (pcall(json.decode, text, {name = "sample"}))}
end

READ["tailscale.missing_routes"] = function(text)
  local r = json.decode(text, {name = "sample"})
  return {advertised = #r.advertisedRoutes, enabled = #r.enabledRoutes,
          missing_of_advertised = tailscale.missing_routes(r.advertisedRoutes, r.enabledRoutes)}
end

-- each problem named by its first words, for 3 nodes, now = 2026-01-01
local PROBLEM_WORDS = {["single-use"] = "single%-use", ["not pre-authorized"] = "not pre%-authorized",
                       ephemeral = "ephemeral", expired = "expired", ["no tags"] = "no tags"}

READ["tailscale.key_problems"] = function(text, e)
  local problems = tailscale.key_problems(json.decode(text, {name = "sample"}), 3, os.time{year = 2026, month = 1, day = 1})
  local got, all = {}, table.concat(problems, "\n")
  for _, name in ipairs{"single-use", "not pre-authorized", "ephemeral", "expired", "no tags"} do
    if all:find(PROBLEM_WORDS[name]) then got[#got + 1] = name end
  end
  local out = {problems_for_3_nodes = got}
  if e.mentions_revoked ~= nil then out.mentions_revoked = all:find("revoked") ~= nil end
  return out
end

-- the condition, verbatim, as the one condition of a Node of the test's own
local function read_condition(text)
  local node = ('{"metadata": {"name": "n1"}, "status": {"conditions": [%s]}}'):format(text)
  local n = with_exec(ok(node), function() return kube.node("n1") end)
  return {ready = n.ready, reason = n.reason}
end

-- a whole `kubectl get nodes -o json`: its first Node as `get node NAME -o
-- json` prints it (kube.node), and the list through M.NODES_JSONPATH as the
-- world's jsonpath renders it (kube.parse_nodes: what kube.nodes reads)
local function read_node_list(text)
  local list = json.decode(text, {name = "sample"})
  local n = with_exec(ok(json.encode(list.items[1])), function() return kube.node("n1") end)
  local tpl = assert(jsonpath.compile(kube.NODES_JSONPATH))
  local rows = kube.parse_nodes(jsonpath.render(tpl, list))
  return {ready = n.ready, reason = n.reason, os_image = n.os_image, unschedulable = n.unschedulable,
          jsonpath_nodes = #rows, jsonpath_ready = rows[1] and rows[1].ready, jsonpath_reason = rows[1] and rows[1].reason}
end

READ["kube.node"] = function(text, _, entry)
  if entry.parser:find("list's node", 1, true) then return read_node_list(text) end
  return read_condition(text)
end

-- the rows of a Go test table {"name", "in", "want"} (and the one written
-- over lines with strings.Repeat), each fed to tailscale.device_name: the
-- rows it names differently from SanitizeLabel
READ["tailscale.device_name"] = function(text)
  local rows, wrong = 0, {}
  local function check(name, input, want)
    rows = rows + 1
    local got = tailscale.device_name(input)
    if got ~= want then wrong[#wrong + 1] = ("%s: %q gives %q, want %q"):format(name, input, got, want) end
  end
  for name, input, want in text:gmatch('{"([^"]*)", "([^"]*)", "([^"]*)"}') do check(name, input, want) end
  for name, unit, n, want in text:gmatch('"([%w_]+)",%s*strings%.Repeat%("([^"]*)", (%d+)%),%s*"([^"]*)"') do
    check(name, unit:rep(tonumber(n)), want)
  end
  return {rows = rows, wrong = wrong}
end

-- `tailscale debug prefs` as tailscale.accepts_routes reads it
READ["tailscale.accepts_routes"] = function(text)
  local accepts, why = with_exec(ok(text), tailscale.accepts_routes)
  return {accepts = accepts == nil and json.null or accepts, why = why or json.null}
end

-- a reply of POST /schematics, and the ID factory.id computes for the
-- schematic that was posted (the expect's `schematic`, the test's input:
-- given back as read)
READ["factory.id"] = function(text, e)
  local reply = json.decode(text, {name = "sample"})
  return {id = reply.id, computed_id = factory.id(factory.parse(e.schematic, "schematic")), schematic = e.schematic}
end

-- the documentation's table of JSONPath examples: each Example the world's
-- jsonpath compiles, rendered on the documentation's input
-- (kubectl/jsonpath-docs-input.json), against the row's Result
READ["jsonpath.render"] = function(text)
  local input = json.decode(read(CORPUS .. "kubectl/jsonpath-docs-input.json"), {name = "jsonpath-docs-input.json"})
  local same, differ, refused = {}, {}, 0
  for line in text:gmatch("[^\n]+") do
    local tpl, want = line:match("^[^|]*|[^|]*| `(.-)`[^|]*| `(.*)`%s*$")
    if tpl then
      local compiled = jsonpath.compile(tpl)
      if not compiled then refused = refused + 1
      elseif jsonpath.render(compiled, input) == want then same[#same + 1] = tpl
      else differ[#differ + 1] = tpl end
    end
  end
  return {same = same, differ = differ, refused = refused}
end

-- }======

-- The expect keys the parser reads wrongly: {key, got, want} each.
local function misreads(entry)
  local text = read(CORPUS .. entry.file)
  local okp, got = pcall(READ[entry.reader], text, entry.expect, entry)
  if not okp then return {{key = "(raised)", got = tostring(got), want = "no error"}} end
  local bad = {}
  for k, want in pairs(entry.expect) do
    if not t.deep_eq(got[k], want) then bad[#bad + 1] = {key = k, got = got[k], want = want} end
  end
  table.sort(bad, function(a, b) return a.key < b.key end)
  return bad
end

local function describe(bad)
  local out = {}
  for _, b in ipairs(bad) do out[#out + 1] = ("%s: read %s, want %s"):format(b.key, t.show(b.got), t.show(b.want)) end
  return table.concat(out, "; ")
end

function test_every_parsed_sample_reads_as_expected()
  local failures, reported, checked = {}, 0, 0
  for _, e in ipairs(INDEX) do
    if e.parser and e.parser ~= "none" then
      local reader = e.parser:match("^(%S+)")
      t.truthy(READ[reader], e.file .. ": no reader for parser " .. e.parser)
      local bad = misreads({file = e.file, reader = reader, parser = e.parser, expect = e.expect, command = e.command})
      checked = checked + 1
      if #bad > 0 and e.known_misread then
        reported = reported + 1
        print(("KNOWN MISREAD %s (%s): %s"):format(e.file, e.parser, describe(bad)))
      elseif #bad > 0 then
        failures[#failures + 1] = e.file .. ": " .. describe(bad)
      elseif e.known_misread then
        failures[#failures + 1] = e.file .. ": marked known_misread but read right now: remove the mark"
      end
    end
  end
  print(("%d samples parsed, %d known misreads reported"):format(checked, reported))
  t.eq(failures, {}, "samples the runbooks' parsers read wrongly")
  t.truthy(checked >= 15, "at least 15 samples are fed to a parser")
end

-- {====== the corpus itself

function test_every_entry_is_complete_and_every_file_indexed()
  local listed = {}
  for _, e in ipairs(INDEX) do
    for _, k in ipairs{"file", "tool", "command", "version", "source"} do
      t.truthy(type(e[k]) == "string" and e[k] ~= "", ("%s: %s is missing"):format(tostring(e.file), k))
    end
    t.truthy(e.parser == nil or e.parser == "none" or type(e.expect) == "table", e.file .. ": a parser without expect")
    t.truthy(not listed[e.file], e.file .. " is listed twice")
    listed[e.file] = true
    t.truthy(io.open(CORPUS .. e.file, "rb"), e.file .. " does not exist")
  end
  local p = assert(io.popen("cd '" .. CORPUS .. "' && ls */*.txt"))
  local files = 0
  for f in p:lines() do
    files = files + 1
    t.truthy(listed[f], "tests/corpus/" .. f .. " is not in index.yaml")
  end
  p:close()
  t.truthy(files >= 40, ("%d samples, at least 40 wanted"):format(files))
end

function test_no_sample_holds_a_tailscale_key()
  for _, e in ipairs(INDEX) do
    local text = read(CORPUS .. e.file)
    t.truthy(not text:find("tskey%-auth%-%w+%-%w"), e.file .. " holds what looks like an auth key")
    t.truthy(not text:find("tskey%-api%-%w+%-%w"), e.file .. " holds what looks like an API key")
  end
end

-- }======
