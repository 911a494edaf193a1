# Sourced by every shell test right after `bin=$1`: every wait is bounded.
# - `$bin` becomes tests/support/bounded-runbook, which runs the binary under
#   test ($bin_real) with a deadline (RUNBOOK_TEST_WAIT, default 120 s, 300 s
#   in an e2e test) and
#   names the command that outlived it;
# - a process started in the background (its pid matters: signals, the lock
#   holder's pid, a server) runs "$bin_real", and is waited for with
#   `await_exit PID [SECONDS] [WHAT]`, which gives its exit code, or kills
#   it and returns 124 naming WHAT when it outlives SECONDS (default 60);
# - `bounded SECONDS CMD...` bounds any other command (python3 ...).
# a cli test's run takes seconds; an e2e run against a served world waits
# out real boots and polls (a minute or two, slower under ASan)
if [ -z "${RUNBOOK_TEST_WAIT:-}" ]; then
  case $0 in */e2e/*) RUNBOOK_TEST_WAIT=300 ;; *) RUNBOOK_TEST_WAIT=120 ;; esac
fi
export RUNBOOK_TEST_WAIT
bin_real=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
export RUNBOOK_REAL_BIN=$bin_real
bin=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bounded-runbook

await_exit() {   # await_exit PID [SECONDS] [WHAT]
  local pid=$1 limit=${2:-60} what=${3:-process $1} i
  for ((i = 0; i < limit * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return $?; }
    sleep 0.05
  done
  echo "TIMEOUT: $what still running after ${limit}s: killed" >&2
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  return 124
}

bounded() {      # bounded SECONDS CMD...
  local limit=$1 code; shift
  timeout -k 5 "$limit" "$@"; code=$?
  [ "$code" -eq 124 ] && echo "TIMEOUT: '$*' still running after ${limit}s: killed" >&2
  return "$code"
}
