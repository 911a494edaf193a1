--- runbook.completion: `runbook completion bash|zsh|fish` prints a shell's
--- completion script; `runbook completion words KIND [FILE]` prints the
--- words the scripts ask for at completion time, one per line:
---   runbooks        the runbooks `run` finds by name (RUNBOOK_PATH, then the shipped ones)
---   scenarios       the shipped world's scenario names (--scenario NAME)
---   vars FILE       the variables FILE declares in its rb.vars{...} (--var NAME=; a secret's NAME_file= too)
--- The commands and flags are the CLI's (engine/cli.c); tests/cli/test_completion.sh
--- checks that every flag `runbook help CMD` names is completed.
local core_fs = require "runbook.fs.core"
local sys = require "runbook.sys"

local M = {}

local COMMANDS = {"run", "plan", "check", "list", "test", "world", "status", "fleet", "version", "completion", "help"}

local RUN_FLAGS = {"--dry-run", "--scenario", "--var", "--vars", "--state-dir", "--store", "--resume", "--accept-drift",
                   "--fresh", "--yes", "--wait-lock",
                   "--output", "--log", "--report", "--limit", "--exclude", "--step-timeout", "--metrics-file",
                   "--pushgateway", "--verbose", "--quiet", "--help"}

--- The flags of each command.
M.FLAGS = {
  run = RUN_FLAGS,
  plan = {"--var", "--vars", "--state-dir", "--output", "--log", "--report", "--limit", "--exclude",
          "--step-timeout", "--metrics-file", "--pushgateway", "--verbose", "--quiet", "--help"},
  check = {"--help"},
  list = {"--help"},
  test = {"--dry-run", "--verbose", "--quiet", "--help"},
  world = {"--scenario", "--dir", "--out", "--var", "--vars", "--help"},
  status = {"--store", "--state-dir", "--output", "--help"},
  fleet = {"--clusters", "--concurrency", "--failure-budget", "--dry-run", "--resume", "--store", "--wait-lock", "--var", "--vars",
           "--yes", "--state-dir", "--output", "--help"},
  version = {"--output", "--help"},
  completion = {"--help"},
  help = {},
}

--- Flags whose value is a file or directory (completed as paths).
local PATH_FLAGS = {"--vars", "--state-dir", "--log", "--report", "--metrics-file", "--dir", "--out", "--clusters"}

--- The positional words of each command other than runbook names.
local ARGS = {
  world = {"serve", "capture", "call"},
  completion = {"bash", "zsh", "fish"},
  fleet = {"run"},
  help = COMMANDS,
}

local function lua_files(dir, out, seen)
  local ok, names = pcall(core_fs.list, dir)
  if not ok then return end
  for _, name in ipairs(names) do
    if name:match("%.lua$") and not seen[name] then
      local st = core_fs.stat(dir .. "/" .. name)
      if st and st.type == "file" then seen[name] = true; out[#out + 1] = name end
    end
  end
end

--- The directories `run` looks in by name, in its order.
local function lookup_dirs()
  local dirs = {}
  for dir in (os.getenv("RUNBOOK_PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = dir end
  dirs[#dirs + 1] = sys.runbooks_dir()
  return dirs
end

local function runbooks()
  local out, seen = {}, {}
  for _, dir in ipairs(lookup_dirs()) do lua_files(dir, out, seen) end
  return out
end

--- "sample" and every scenarios/**.yaml of the shipped world, by the name
--- --scenario takes (faults/authkey-expired); sim/world.lua's scenario_path.
local function scenarios()
  local out = {"sample"}
  local root = sys.runbooks_dir()
  if not root then return out end
  local function walk(dir, prefix)
    local ok, names = pcall(core_fs.list, dir)
    if not ok then return end
    table.sort(names)
    for _, name in ipairs(names) do
      local st = core_fs.stat(dir .. "/" .. name)
      if st and st.type == "directory" then walk(dir .. "/" .. name, prefix .. name .. "/")
      elseif name:match("%.yaml$") then out[#out + 1] = prefix .. name:gsub("%.yaml$", "") end
    end
  end
  walk(root .. "/scenarios", "")
  return out
end

local function find_runbook(name)
  if core_fs.exists(name) then return name end
  if name:find("/", 1, true) then return nil end
  for _, dir in ipairs(lookup_dirs()) do
    if core_fs.exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
end

--- The names of the table given to the first rb.vars{...} (or vars{...})
--- in the source: its keys at the table's own depth, read without running
--- the runbook. Long strings and comments inside the table are rare in a
--- vars declaration; a rough scan, as `runbook check`'s outline is.
local function vars(file)
  local path = find_runbook(file)
  if not path then return {} end
  local src = core_fs.read(path)
  local _, open = src:find("vars%s*{")
  if not open then _, open = src:find("vars%s*%(%s*{") end
  if not open then return {} end
  local out, depth, i = {}, 1, open + 1
  while i <= #src and depth > 0 do
    local c = src:sub(i, i)
    if c == "{" then depth = depth + 1; i = i + 1
    elseif c == "}" then depth = depth - 1; i = i + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= #src and src:sub(j, j) ~= c do j = j + (src:sub(j, j) == "\\" and 2 or 1) end
      i = j + 1
    elseif c == "-" and src:sub(i, i + 1) == "--" then i = (src:find("\n", i, true) or #src) + 1
    else
      local name, after = src:match("^([%a_][%w_]*)%s*=()", i)
      if name and depth == 1 and not src:sub(i - 1, i - 1):match("[%w_.]") then
        out[#out + 1] = name
        -- a secret also takes NAME_file=PATH (runbook.vars)
        local spec = src:match("^%s*(%b{})", after)
        if spec and spec:find('type%s*=%s*["\']secret["\']') then out[#out + 1] = name .. "_file" end
        i = after
      else i = i + 1 end
    end
  end
  return out
end

local function words(kind, file)
  if kind == "runbooks" then return runbooks()
  elseif kind == "scenarios" then return scenarios()
  else return vars(file) end
end

local function join(list) return table.concat(list, " ") end

local function flag_cases(shell)
  local lines = {}
  for _, cmd in ipairs(COMMANDS) do
    local flags = join(M.FLAGS[cmd])
    if shell == "bash" then lines[#lines + 1] = ("    %s) flags=%q ;;"):format(cmd, flags)
    else lines[#lines + 1] = ("    %s) flags=(%s) ;;"):format(cmd, flags) end
  end
  return table.concat(lines, "\n")
end

local function arg_cases(shell)
  local lines = {}
  for _, cmd in ipairs(COMMANDS) do
    if ARGS[cmd] then
      if shell == "bash" then lines[#lines + 1] = ("    %s) args=%q ;;"):format(cmd, join(ARGS[cmd]))
      else lines[#lines + 1] = ("    %s) args=(%s) ;;"):format(cmd, join(ARGS[cmd])) end
    end
  end
  return table.concat(lines, "\n")
end

local BASH = [==[
# bash completion for runbook: `runbook completion bash` (docs/cli.md).
# Runbook, scenario and variable names come from the runbook on the line
# (`runbook completion words ...`), so they follow RUNBOOK_PATH.
_runbook() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local rb=${COMP_WORDS[0]} cmd=${COMP_WORDS[1]} flags="" args="" file="" w
  if [ "$COMP_CWORD" -eq 1 ]; then
    mapfile -t COMPREPLY < <(compgen -W "@COMMANDS@" -- "$cur")
    return
  fi
  for w in "${COMP_WORDS[@]:2}"; do
    case $w in *.lua) file=$w; break ;; esac
  done
  case $prev in
    --scenario)
      mapfile -t COMPREPLY < <(compgen -W "$("$rb" completion words scenarios 2>/dev/null)" -- "$cur"; compgen -f -- "$cur")
      return ;;
    --var)
      [ -n "$file" ] || return
      mapfile -t COMPREPLY < <(compgen -S = -W "$("$rb" completion words vars "$file" 2>/dev/null)" -- "$cur")
      compopt -o nospace 2>/dev/null
      return ;;
    --output)
      mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
      return ;;
    @PATH_FLAGS@)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return ;;
    --limit|--exclude|--step-timeout|--wait-lock|--pushgateway) return ;;
  esac
  case $cmd in
@FLAG_CASES@
  esac
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
    return
  fi
  case $cmd in
    run|plan|check)
      [ -n "$file" ] && [ "$file" != "$cur" ] && return
      mapfile -t COMPREPLY < <(compgen -W "$("$rb" completion words runbooks 2>/dev/null)" -- "$cur"; compgen -f -- "$cur")
      return ;;
    test)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return ;;
@ARG_CASES@
  esac
  [ "$COMP_CWORD" -eq 2 ] && [ -n "$args" ] && mapfile -t COMPREPLY < <(compgen -W "$args" -- "$cur")
  return 0
}
complete -F _runbook runbook
]==]

local ZSH = [==[
#compdef runbook
# zsh completion for runbook: `runbook completion zsh` (docs/cli.md).
# Installed as _runbook in $fpath, or loaded with
#   source <(runbook completion zsh)
_runbook() {
  local rb=${words[1]} cmd=${words[2]} prev=${words[CURRENT-1]} file="" w
  local -a flags args
  if (( CURRENT == 2 )); then
    compadd -- @COMMANDS@
    return
  fi
  for w in ${words[3,-1]}; do
    if [[ $w == *.lua ]]; then file=$w; break; fi
  done
  case $prev in
    --scenario) compadd -- ${(f)"$($rb completion words scenarios 2>/dev/null)"}; _files; return ;;
    --var) [[ -n $file ]] && compadd -S = -- ${(f)"$($rb completion words vars $file 2>/dev/null)"}; return ;;
    --output) compadd -- text json; return ;;
    @PATH_FLAGS@) _files; return ;;
    --limit|--exclude|--step-timeout|--wait-lock|--pushgateway) return ;;
  esac
  case $cmd in
@FLAG_CASES@
  esac
  if [[ $PREFIX == -* ]]; then
    compadd -- $flags
    return
  fi
  case $cmd in
    run|plan|check) compadd -- ${(f)"$($rb completion words runbooks 2>/dev/null)"}; _files -g '*.lua'; return ;;
    test) _files; return ;;
@ARG_CASES@
  esac
  (( CURRENT == 3 )) && (( $#args )) && compadd -- $args
}
if [[ $funcstack[1] == _runbook ]]; then
  _runbook "$@"
else
  compdef _runbook runbook
fi
]==]

local FISH_HEAD = [==[
# fish completion for runbook: `runbook completion fish` (docs/cli.md).
function __runbook_file --description 'the runbook on the command line'
    for w in (commandline -opc)[3..-1]
        if string match -q -- '*.lua' $w
            echo $w
            return
        end
    end
end
function __runbook_vars
    set -l f (__runbook_file)
    test -n "$f"; and runbook completion words vars $f 2>/dev/null | string replace -r '$' '='
end
complete -c runbook -f
]==]

local function fish()
  local out = {FISH_HEAD}
  local function add(line) out[#out + 1] = line end
  add(("complete -c runbook -n __fish_use_subcommand -a '%s'"):format(join(COMMANDS)))
  local path_flag = {}
  for _, f in ipairs(PATH_FLAGS) do path_flag[f] = true end
  local takes = {["--scenario"] = true, ["--var"] = true, ["--output"] = true, ["--limit"] = true,
                 ["--exclude"] = true, ["--step-timeout"] = true, ["--wait-lock"] = true, ["--pushgateway"] = true}
  for _, cmd in ipairs(COMMANDS) do
    local cond = ("'__fish_seen_subcommand_from %s'"):format(cmd)
    for _, flag in ipairs(M.FLAGS[cmd]) do
      local name, extra = flag:sub(3), ""
      if flag == "--scenario" then extra = " -r -a '(runbook completion words scenarios 2>/dev/null)'"
      elseif flag == "--var" then extra = " -x -a '(__runbook_vars)'"
      elseif flag == "--output" then extra = " -x -a 'text json'"
      elseif path_flag[flag] then extra = " -r -F"
      elseif takes[flag] then extra = " -x" end
      add(("complete -c runbook -n %s -l %s%s"):format(cond, name, extra))
    end
    if ARGS[cmd] then add(("complete -c runbook -n %s -a '%s'"):format(cond, join(ARGS[cmd]))) end
  end
  add("complete -c runbook -n '__fish_seen_subcommand_from run plan check' -a '(runbook completion words runbooks 2>/dev/null)' -F")
  add("complete -c runbook -n '__fish_seen_subcommand_from test' -F")
  return table.concat(out, "\n") .. "\n"
end

--- The completion script of a shell.
---@param shell "bash"|"zsh"|"fish"
---@return string
function M.script(shell)
  if shell == "fish" then return fish() end
  local text = shell == "bash" and BASH or ZSH
  local subst = {COMMANDS = join(COMMANDS), PATH_FLAGS = table.concat(PATH_FLAGS, "|"),
                 FLAG_CASES = flag_cases(shell), ARG_CASES = arg_cases(shell)}
  return (text:gsub("@([%u_]+)@", subst))
end

--- `runbook completion SHELL` and `runbook completion words KIND [FILE]`.
---@return integer exit code
function M.main(a, kind, file)
  if a == "words" then
    for _, w in ipairs(words(kind, file)) do sys.write("stdout", w .. "\n") end
  else
    sys.write("stdout", M.script(a))
  end
  return 0
end

return M
