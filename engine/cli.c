/*
** cli.c: argument parsing and help texts. Flags may come before or after
** the file; "--flag=value" and "--flag value" are both accepted; "--" ends
** the flags.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const HELP_MAIN =
  "usage: runbook <command> [options]\n"
  "\n"
  "Runs operational runbooks written in Lua: steps, health gates, undo,\n"
  "resumable journals, and rehearsal against a simulated world (--dry-run).\n"
  "\n"
  "commands:\n"
  "  run FILE.lua      run a runbook (see 'runbook help run')\n"
  "  plan FILE.lua     capture the live cluster read-only, rehearse the runbook on\n"
  "                    the capture, print the plan; changes nothing (see 'runbook help plan')\n"
  "  check FILE.lua    compile a runbook and list the phases and steps it declares\n"
  "  list              list the runbooks (RUNBOOK_PATH, then the shipped ones)\n"
  "  test PATH...      run Lua test files (functions named test_*)\n"
  "  world serve       serve the simulated world on loopback (see 'runbook help world')\n"
  "  world capture     read the live cluster, read-only, into a scenario\n"
  "  version           print the version (--output json: every library's too)\n"
  "  completion SHELL  print the completion script for bash, zsh or fish\n"
  "  help [COMMAND]    print this help, or a command's\n"
  "\n"
  "exit codes: 0 done, 1 a step or gate failed (things left in a safe state),\n"
  "2 bad usage or input, 3 interrupted (resumable), 4 another run holds the lock\n";

static const char *const HELP_RUN =
  "usage: runbook run FILE.lua [options]\n"
  "\n"
  "Runs a runbook. FILE is looked up in the current directory, then in each\n"
  "directory of RUNBOOK_PATH, then in the shipped runbooks directory.\n"
  "\n"
  "options:\n"
  "  --dry-run              rehearse against the simulated world on a virtual clock;\n"
  "                         nothing real is touched\n"
  "  --scenario FILE|NAME   the simulated world to use with --dry-run: a file, or a\n"
  "                         shipped scenario by name (sample, faults/...); default:\n"
  "                         the ./talconfig.yaml the runbook reads, else the sample\n"
  "  --var K=V              set a runbook variable (repeatable)\n"
  "  --vars FILE.yaml       read runbook variables from a YAML map\n"
  "  --state-dir DIR        where the journal, lock and report live (default .runbook)\n"
  "  --store URL            the lock and journal in a shared store instead:\n"
  "                         etcd://HOST:PORT[,HOST:PORT]/PREFIX (etcds:// for TLS),\n"
  "                         k8s://NAMESPACE/NAME (a Lease, with the kubeconfig);\n"
  "                         also RUNBOOK_STORE (docs/reliability.md)\n"
  "  --resume               continue an interrupted run, skipping finished steps\n"
  "  --accept-drift         with --resume: go on although files the run wrote\n"
  "                         changed since (the runbook says which)\n"
  "  --fresh                archive an unfinished journal and start over\n"
  "  --wait-lock SECS       when another run holds the lock, wait up to SECS for it\n"
  "                         (a watch in etcd and Kubernetes) instead of exiting 4;\n"
  "                         then resume the run its holder left unfinished, or start\n"
  "                         anew after one that finished (docs/reliability.md)\n"
  "  --yes                  answer yes to every confirmation\n"
  "  --output text|json     terminal view (default) or one JSON event per line\n"
  "  --log FILE             also append the plain-text log to FILE\n"
  "  --report FILE          also write the run report to FILE\n"
  "  --limit LIST           the runbook's variable limit: the items (nodes) to change,\n"
  "                         comma-separated (the rollout: hostnames)\n"
  "  --exclude LIST         the runbook's variable exclude: the items to leave out\n"
  "  --step-timeout SECS    fail a step (then undo, as any failure) still running\n"
  "                         after SECS, waiting or computing; a step's own\n"
  "                         timeout wins\n"
  "  --metrics-file PATH    write the run's metrics to PATH, Prometheus text format,\n"
  "                         replaced whole at each gate poll and at the end\n"
  "  --pushgateway URL      push the same metrics to a Prometheus Pushgateway at the end\n"
  "  -v, --verbose          show commands, HTTP calls and tracebacks\n"
  "  -q, --quiet            show only failures and the summary\n"
  "  -h, --help             show this help\n"
  "\n"
  "exit: 0 done, 1 a step or gate failed, 2 bad usage or input, 3 interrupted,\n"
  "4 another run holds the lock, or this run lost it. SIGINT/SIGTERM stop the run where it is, even a\n"
  "step computing without waiting: its tasks' cleanup runs, no step is undone,\n"
  "exit 3, and --resume continues it; a second signal exits at once, killing\n"
  "every child's process group. SIGQUIT prints every task and where it waits,\n"
  "and the run goes on.\n";

static const char *const HELP_PLAN =
  "usage: runbook plan FILE.lua [options]\n"
  "\n"
  "What the runbook would do to this cluster, from its live state, changing\n"
  "nothing anywhere: captures the cluster as 'runbook world capture' does\n"
  "(read-only commands and GET requests; the capture is STATE-DIR/NAME.capture.yaml,\n"
  "0600, no secret in it), then rehearses FILE against it (a --dry-run with\n"
  "--scenario the capture: no POST to the factory either) and writes the plan\n"
  "to STATE-DIR/NAME.plan.md. Needs the runbook's world to capture (sim/world.lua\n"
  "beside it, else the shipped one).\n"
  "\n"
  "options: --var K=V, --vars FILE.yaml, --state-dir DIR, --output text|json,\n"
  "--log FILE, --report FILE, --limit LIST, --exclude LIST, --step-timeout SECS,\n"
  "-v, -q, as for run. The capture takes the variables its world declares from\n"
  "--var and the environment; the rehearsal takes them all (the runbook's own\n"
  "variables are its help: an unknown one is refused with the list).\n"
  "\n"
  "exit: as run: 0 the rehearsal completed, 1 it stopped (the plan says where),\n"
  "2 bad usage or input (a capture that could not start), 3 interrupted.\n";

static const char *const HELP_CHECK = "usage: runbook check FILE.lua\n"
                                      "\n"
                                      "Compiles the runbook and lists the phases and steps it declares, without\n"
                                      "running any of them. Exit 0 when it compiles, 2 on a syntax error.\n";

static const char *const HELP_LIST = "usage: runbook list\n"
                                     "\n"
                                     "Lists the runbooks `run` finds by name: those in each RUNBOOK_PATH\n"
                                     "directory, then the shipped ones, with their one-line descriptions (the\n"
                                     "first comment line of each file).\n";

static const char *const HELP_TEST = "usage: runbook test [--dry-run] PATH...\n"
                                     "\n"
                                     "Runs every function named test_* in each Lua test file (a directory means\n"
                                     "its *.lua files), each in its own task, and ends with 'N passed, N failed'.\n"
                                     "A test file returns a table of functions or defines them as globals.\n"
                                     "--dry-run runs the tests on the virtual clock. Exit 0 when all passed.\n";

static const char *const HELP_WORLD = "usage: runbook world serve [--scenario FILE.yaml] --dir DIR\n"
                                      "       runbook world capture [--out FILE] [--var K=V]... [--vars FILE]\n"
                                      "       runbook world call URL|@FILE PROGRAM [ARGS...]\n"
                                      "\n"
                                      "serve: serves the simulated world of the shipped runbooks (sim/world.lua)\n"
                                      "on 127.0.0.1 (real clock) until interrupted: a shim in DIR/bin for each\n"
                                      "program the world declares, and its HTTP services under the paths it\n"
                                      "declares; writes DIR/env (source it to put the shims first on PATH),\n"
                                      "DIR/world.url and the scenario's files into DIR. The shipped world's\n"
                                      "programs and paths are listed in docs/simulation.md. The cluster's\n"
                                      "Kubernetes API is served over HTTPS on loopback to the real kubectl:\n"
                                      "DIR/kubeconfig (0600) points it there, DIR/bin/kubectl runs it with it.\n"
                                      "It answers only requests carrying the token in DIR/world.url (0600;\n"
                                      "the kubeconfig's bearer token), with a loopback Host and no Origin,\n"
                                      "about files inside DIR or $TMPDIR (docs/cli.md).\n"
                                      "capture: reads the live cluster with read-only commands and GET requests\n"
                                      "(listed in docs/simulation.md) into a scenario, written to FILE (0600) or\n"
                                      "stdout; no secret is kept. Variables: those the world's capture declares;\n"
                                      "another is exit 2, naming them.\n"
                                      "A read that fails is named (a warning, and captured.failed in the file).\n"
                                      "call: what the shims run: forwards PROGRAM ARGS to the world at URL\n"
                                      "(@FILE: the URL in FILE) and prints its answer, exiting with its code.\n";

static const char *const HELP_VERSION = "usage: runbook version [--output text|json]\n"
                                        "\n"
                                        "Prints the version. --output json prints one object: version, commit, the\n"
                                        "libraries (lua, libuv, libyaml, jansson, and libcurl and libcrypto as they\n"
                                        "would be loaded, null when they cannot be), event_schema, journal_format.\n";

static const char *const HELP_COMPLETION =
  "usage: runbook completion bash|zsh|fish\n"
  "\n"
  "Prints the shell completion script: commands, flags, runbook names (the\n"
  "lookup path's), scenario names and a runbook's --var names. Load it with\n"
  "  source <(runbook completion bash)\n"
  "or install it where the shell looks (the package does: docs/cli.md).\n"
  "The scripts call 'runbook completion words runbooks|scenarios|vars FILE'.\n";

static const char *const HELP_STATUS = "usage: runbook status [--store URL] [--state-dir DIR] [--output text|json]\n"
                                       "\n"
                                       "Lists the runs a store knows: for each lock, its holder (user, host, pid),\n"
                                       "runbook, variables' hash, start and last renewal; for each journal, its\n"
                                       "state (running, unfinished, finished) and its steps. The store is --store,\n"
                                       "else RUNBOOK_STORE, else the state directory (.runbook). Changes nothing.\n"
                                       "exit: 0, 2 bad usage or a store that does not answer.\n";

static const char *const HELP_FLEET =
  "usage: runbook fleet run FILE.lua --clusters FLEET.yaml [options]\n"
  "\n"
  "Runs FILE.lua once per cluster of FLEET.yaml, each in the cluster's own\n"
  "directory as a child run with its own journal and lock: the canary\n"
  "clusters first, one at a time, then the rest, --concurrency at a time.\n"
  "Once more clusters failed than --failure-budget allows, no new cluster is\n"
  "started (those running finish). Ends with one report (STATE-DIR/fleet.report.md)\n"
  "and, with --output json, one JSON line per event (cluster, run id, outcome).\n"
  "\n"
  "options: --concurrency N (default 1), --failure-budget N (default 0),\n"
  "--dry-run (rehearse each cluster from its own directory), --resume (skip\n"
  "the clusters that finished, resume the others), --store URL and\n"
  "--wait-lock SECS (passed to each child: a cluster whose lock another run\n"
  "holds waits for it, else it ends 'locked', exit 4), --var K=V and\n"
  "--vars FILE (for every cluster, before its own),\n"
  "--yes, --state-dir DIR (the fleet's record; default .runbook), --output.\n"
  "exit: 0 every cluster done, 1 a cluster failed or was not started, 2 bad\n"
  "usage or a bad fleet file, 3 interrupted (resumable with --resume).\n";

const char *cli_help(enum rb_command cmd) {
  switch (cmd) {
    case RB_CMD_RUN: return HELP_RUN;
    case RB_CMD_PLAN: return HELP_PLAN;
    case RB_CMD_CHECK: return HELP_CHECK;
    case RB_CMD_LIST: return HELP_LIST;
    case RB_CMD_TEST: return HELP_TEST;
    case RB_CMD_WORLD: return HELP_WORLD;
    case RB_CMD_VERSION: return HELP_VERSION;
    case RB_CMD_STATUS: return HELP_STATUS;
    case RB_CMD_FLEET: return HELP_FLEET;
    case RB_CMD_COMPLETION: return HELP_COMPLETION;
    default: return HELP_MAIN;
  }
}

enum rb_command cli_command_named(const char *name) {
  static const struct {
    const char *name;
    enum rb_command cmd;
  } cmds[] = {
    { "run", RB_CMD_RUN },
    { "check", RB_CMD_CHECK },
    { "list", RB_CMD_LIST },
    { "test", RB_CMD_TEST },
    { "world", RB_CMD_WORLD },
    { "version", RB_CMD_VERSION },
    { "help", RB_CMD_HELP },
    { "plan", RB_CMD_PLAN },
    { "status", RB_CMD_STATUS },
    { "fleet", RB_CMD_FLEET },
    { "completion", RB_CMD_COMPLETION },
  };
  size_t i;
  for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(name, cmds[i].name) == 0) return cmds[i].cmd;
  return RB_CMD_NONE;
}

/* Flags that take a value, and which commands accept them. */
typedef struct flagdef {
  const char *name;
  int takes_value;
  unsigned cmds; /* bit per rb_command */
} flagdef;

#define C(x) (1u << (x))
#define RP (C(RB_CMD_RUN) | C(RB_CMD_PLAN))
#define FL C(RB_CMD_FLEET)
static const flagdef FLAGS[] = { { "--dry-run", 0, C(RB_CMD_RUN) | C(RB_CMD_TEST) | FL },
                                 { "--scenario", 1, C(RB_CMD_RUN) | C(RB_CMD_WORLD) },
                                 { "--var", 1, RP | C(RB_CMD_WORLD) | FL },
                                 { "--vars", 1, RP | C(RB_CMD_WORLD) | FL },
                                 { "--state-dir", 1, RP | C(RB_CMD_STATUS) | FL },
                                 { "--resume", 0, C(RB_CMD_RUN) | FL },
                                 { "--fresh", 0, C(RB_CMD_RUN) },
                                 { "--accept-drift", 0, C(RB_CMD_RUN) },
                                 { "--yes", 0, C(RB_CMD_RUN) | FL },
                                 { "--output", 1, RP | C(RB_CMD_STATUS) | C(RB_CMD_VERSION) | FL },
                                 { "--store", 1, C(RB_CMD_RUN) | C(RB_CMD_STATUS) | FL },
                                 { "--clusters", 1, FL },
                                 { "--concurrency", 1, FL },
                                 { "--failure-budget", 1, FL },
                                 { "--log", 1, RP },
                                 { "--report", 1, RP },
                                 { "--step-timeout", 1, RP },
                                 { "--wait-lock", 1, C(RB_CMD_RUN) | FL },
                                 { "--limit", 1, RP },
                                 { "--exclude", 1, RP },
                                 { "--verbose", 0, RP | C(RB_CMD_TEST) },
                                 { "--quiet", 0, RP | C(RB_CMD_TEST) },
                                 { "--dir", 1, C(RB_CMD_WORLD) },
                                 { "--out", 1, C(RB_CMD_WORLD) },
                                 { "--metrics-file", 1, RP },
                                 { "--pushgateway", 1, RP },
                                 { NULL, 0, 0 } };

static const char *command_name(enum rb_command c) {
  static const char *const names[] = { "",        "run",  "check", "list",   "test",  "world",
                                       "version", "help", "plan",  "status", "fleet", "completion" };
  return names[c];
}

static int usage(char *err, int errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int usage(char *err, int errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, (size_t)errlen, fmt, ap);
  va_end(ap);
  return 2;
}

/* Applies one flag with its value (NULL when it takes none). */
static int apply_flag(rb_cli *cli, const char *name, const char *val, char *err, int errlen) {
  if (strcmp(name, "--dry-run") == 0) cli->dry_run = 1;
  else if (strcmp(name, "--scenario") == 0) cli->scenario = val;
  else if (strcmp(name, "--var") == 0) {
    const char *eq = strchr(val, '=');
    if (eq == NULL || eq == val) return usage(err, errlen, "--var expects K=V, got '%s'%s", val, "");
    if (cli->nvars == RB_CLI_MAX_VARS) return usage(err, errlen, "too many --var flags (at most 128)");
    cli->vars[cli->nvars++] = val;
  }
  else if (strcmp(name, "--vars") == 0) cli->vars_file = val;
  else if (strcmp(name, "--state-dir") == 0) cli->state_dir = val;
  else if (strcmp(name, "--resume") == 0) cli->resume = 1;
  else if (strcmp(name, "--fresh") == 0) cli->fresh = 1;
  else if (strcmp(name, "--accept-drift") == 0) cli->accept_drift = 1;
  else if (strcmp(name, "--yes") == 0) cli->yes = 1;
  else if (strcmp(name, "--output") == 0) {
    if (strcmp(val, "text") == 0) cli->output = RB_OUT_TEXT;
    else if (strcmp(val, "json") == 0) cli->output = RB_OUT_JSON;
    else return usage(err, errlen, "--output expects text or json, got '%s'%s", val, "");
  }
  else if (strcmp(name, "--log") == 0) cli->log_file = val;
  else if (strcmp(name, "--report") == 0) cli->report_file = val;
  else if (strcmp(name, "--limit") == 0 || strcmp(name, "--exclude") == 0) {
    int lim = strcmp(name, "--limit") == 0;
    int *n = lim ? &cli->nlimits : &cli->nexcludes;
    if (*n == RB_CLI_MAX_LIST) return usage(err, errlen, "too many %s flags (at most 64)", name);
    (lim ? cli->limits : cli->excludes)[(*n)++] = val;
    if (lim && cli->limit == NULL) cli->limit = val;
    if (!lim && cli->exclude == NULL) cli->exclude = val;
  }
  else if (strcmp(name, "--step-timeout") == 0 || strcmp(name, "--wait-lock") == 0) {
    char *end;
    double secs = strtod(val, &end);
    if (end == val || *end != '\0' || !(secs > 0) || secs >= 1e9)
      return usage(err, errlen, "%s expects seconds > 0, got '%s'", name, val);
    if (strcmp(name, "--wait-lock") == 0) cli->wait_lock = secs;
    else cli->step_timeout = secs;
  }
  else if (strcmp(name, "--verbose") == 0) cli->verbosity = 1;
  else if (strcmp(name, "--quiet") == 0) cli->verbosity = -1;
  else if (strcmp(name, "--dir") == 0) cli->world_dir = val;
  else if (strcmp(name, "--out") == 0) cli->world_out = val;
  else if (strcmp(name, "--store") == 0) cli->store = val;
  else if (strcmp(name, "--clusters") == 0) cli->clusters = val;
  else if (strcmp(name, "--concurrency") == 0 || strcmp(name, "--failure-budget") == 0) {
    char *end;
    long n = strtol(val, &end, 10);
    int conc = strcmp(name, "--concurrency") == 0;
    if (end == val || *end != '\0' || n < (conc ? 1 : 0) || n > 1000)
      return usage(err, errlen, "%s expects a whole number %s, got '%s'", name, conc ? "1 to 1000" : "0 to 1000", val);
    if (conc) cli->concurrency = (int)n;
    else cli->failure_budget = (int)n;
  }
  else if (strcmp(name, "--metrics-file") == 0) cli->metrics_file = val;
  else if (strcmp(name, "--pushgateway") == 0) cli->pushgateway = val;
  return 0;
}

/* A positional argument for the current command. */
static int apply_positional(rb_cli *cli, const char *arg, char *err, int errlen) {
  switch (cli->cmd) {
    case RB_CMD_RUN:
    case RB_CMD_PLAN:
    case RB_CMD_CHECK:
      if (cli->file)
        return usage(err, errlen, "unexpected argument '%s' (one runbook per %s)", arg, command_name(cli->cmd));
      cli->file = arg;
      return 0;
    case RB_CMD_COMPLETION:
      if (cli->nfiles == 3) return usage(err, errlen, "unexpected argument '%s' for completion", arg);
      cli->files[cli->nfiles++] = arg;
      return 0;
    case RB_CMD_TEST:
      if (cli->nfiles == RB_CLI_MAX_FILES) return usage(err, errlen, "too many paths (at most 256)");
      cli->files[cli->nfiles++] = arg;
      return 0;
    case RB_CMD_WORLD:
      if (cli->world_action) return usage(err, errlen, "unexpected argument '%s' for world %s", arg, cli->world_action);
      if (strcmp(arg, "serve") != 0 && strcmp(arg, "capture") != 0)
        return usage(err, errlen, "unknown world action '%s' (expected: serve, capture or call)", arg);
      cli->world_action = arg;
      return 0;
    case RB_CMD_FLEET:
      if (cli->fleet_action == NULL) {
        if (strcmp(arg, "run") != 0) return usage(err, errlen, "unknown fleet action '%s' (expected: run)", arg);
        cli->fleet_action = arg;
      }
      else if (cli->file == NULL) cli->file = arg;
      else return usage(err, errlen, "unexpected argument '%s' (one runbook per %s)", arg, "fleet run");
      return 0;
    case RB_CMD_HELP:
      if (cli->help_topic) return usage(err, errlen, "unexpected argument '%s'%s", arg, "");
      if (cli_command_named(arg) == RB_CMD_NONE)
        return usage(err, errlen, "no help for unknown command '%s'%s", arg, "");
      cli->help_topic = arg;
      return 0;
    default: return usage(err, errlen, "unexpected argument '%s' for %s", arg, command_name(cli->cmd));
  }
}

static int parse_long(rb_cli *cli, int argc, char **argv, int *i, char *err, int errlen) {
  const char *arg = argv[*i], *val = NULL;
  const char *eq = strchr(arg, '=');
  char name[32];
  size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
  const flagdef *f;
  if (n >= sizeof name) return usage(err, errlen, "unknown option '%s' for %s", arg, command_name(cli->cmd));
  memcpy(name, arg, n);
  name[n] = '\0';
  if (strcmp(name, "--help") == 0) {
    cli->help = 1;
    return 0;
  }
  for (f = FLAGS; f->name; f++)
    if (strcmp(f->name, name) == 0) break;
  if (f->name == NULL || !(f->cmds & C(cli->cmd)))
    return usage(err, errlen, "unknown option '%s' for %s (see --help)", name, command_name(cli->cmd));
  if (f->takes_value) {
    if (eq) val = eq + 1;
    else if (*i + 1 < argc) val = argv[++*i];
    else return usage(err, errlen, "option %s needs a value%s", name, "");
    if (*val == '\0') return usage(err, errlen, "option %s needs a non-empty value%s", name, "");
  }
  else if (eq) return usage(err, errlen, "option %s takes no value%s", name, "");
  return apply_flag(cli, name, val, err, errlen);
}

/* completion SHELL, or completion words KIND [FILE] (what the scripts ask). */
static int check_completion(const rb_cli *cli, char *err, int errlen) {
  const char *a = cli->nfiles ? cli->files[0] : NULL;
  if (a == NULL) return usage(err, errlen, "completion needs a shell (expected: bash, zsh or fish)");
  if (strcmp(a, "words") == 0) {
    const char *kind = cli->nfiles > 1 ? cli->files[1] : "";
    if (strcmp(kind, "runbooks") != 0 && strcmp(kind, "scenarios") != 0 && strcmp(kind, "vars") != 0)
      return usage(err, errlen, "completion words expects runbooks, scenarios or vars, got '%s'", kind);
    if ((strcmp(kind, "vars") == 0) != (cli->nfiles == 3))
      return usage(err, errlen, "completion words %s",
                   strcmp(kind, "vars") == 0 ? "vars needs a runbook" : "takes no file");
    return 0;
  }
  if (strcmp(a, "bash") != 0 && strcmp(a, "zsh") != 0 && strcmp(a, "fish") != 0)
    return usage(err, errlen, "completion expects bash, zsh or fish, got '%s'", a);
  if (cli->nfiles > 1) return usage(err, errlen, "unexpected argument '%s' for completion", cli->files[1]);
  return 0;
}

/* What a command needs once every argument is read. */
static int check_complete(const rb_cli *cli, char *err, int errlen) {
  if (cli->resume && cli->fresh) return usage(err, errlen, "--resume and --fresh exclude each other");
  if (cli->accept_drift && !cli->resume) return usage(err, errlen, "--accept-drift goes with --resume");
  if ((cli->cmd == RB_CMD_RUN || cli->cmd == RB_CMD_CHECK || cli->cmd == RB_CMD_PLAN) && cli->file == NULL)
    return usage(err, errlen, "%s needs a runbook file (see 'runbook help %s')", command_name(cli->cmd),
                 command_name(cli->cmd));
  if (cli->cmd == RB_CMD_COMPLETION) return check_completion(cli, err, errlen);
  if (cli->cmd == RB_CMD_TEST && cli->nfiles == 0)
    return usage(err, errlen, "test needs at least one file or directory");
  if (cli->cmd == RB_CMD_WORLD && cli->world_action == NULL)
    return usage(err, errlen, "world needs an action (expected: serve or capture)");
  if (cli->cmd == RB_CMD_WORLD && strcmp(cli->world_action, "serve") == 0) {
    if (cli->world_dir == NULL) return usage(err, errlen, "world serve needs --dir DIR");
    if (cli->world_out || cli->nvars || cli->vars_file)
      return usage(err, errlen, "world serve takes no %s (that is world capture's)",
                   cli->world_out ? "--out" : "--var");
  }
  if (cli->cmd == RB_CMD_WORLD && strcmp(cli->world_action, "capture") == 0 && (cli->world_dir || cli->scenario))
    return usage(err, errlen, "world capture reads the live cluster: no %s", cli->scenario ? "--scenario" : "--dir");
  if (cli->cmd == RB_CMD_FLEET && (cli->fleet_action == NULL || cli->file == NULL))
    return usage(err, errlen, "fleet needs 'run FILE.lua' (see 'runbook help fleet')");
  if (cli->cmd == RB_CMD_FLEET && cli->clusters == NULL)
    return usage(err, errlen, "fleet run needs --clusters FLEET.yaml");
  if (cli->scenario && cli->cmd == RB_CMD_RUN && !cli->dry_run)
    return usage(err, errlen, "--scenario only applies with --dry-run");
  return 0;
}

int cli_parse(rb_cli *cli, int argc, char **argv, char *err, int errlen) {
  int i, rc, flags_done = 0;
  memset(cli, 0, sizeof *cli);
  cli->failure_budget = -1;
  err[0] = '\0';
  if (argc < 2) {
    cli->cmd = RB_CMD_HELP;
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    cli->cmd = RB_CMD_HELP;
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    cli->cmd = RB_CMD_VERSION;
    return 0;
  }
  cli->cmd = cli_command_named(argv[1]);
  if (cli->cmd == RB_CMD_NONE) return usage(err, errlen, "unknown command '%s' (see 'runbook help')", argv[1]);
  if (cli->cmd == RB_CMD_WORLD && argc >= 3 && strcmp(argv[2], "call") == 0) {
    /* world call URL PROG ARGS...: everything after URL belongs to the shim */
    if (argc < 5) return usage(err, errlen, "world call needs URL PROGRAM [ARGS...]");
    cli->world_action = "call";
    cli->world_url = argv[3];
    cli->call_argv = argv + 4;
    cli->call_argc = argc - 4;
    return 0;
  }
  for (i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!flags_done && strcmp(a, "--") == 0) {
      flags_done = 1;
      continue;
    }
    if (!flags_done && (strcmp(a, "-h") == 0)) {
      cli->help = 1;
      continue;
    }
    if (!flags_done && strcmp(a, "-v") == 0 && (C(cli->cmd) & (RP | C(RB_CMD_TEST)))) {
      cli->verbosity = 1;
      continue;
    }
    if (!flags_done && strcmp(a, "-q") == 0 && (C(cli->cmd) & (RP | C(RB_CMD_TEST)))) {
      cli->verbosity = -1;
      continue;
    }
    if (!flags_done && a[0] == '-' && a[1] == '-') {
      if ((rc = parse_long(cli, argc, argv, &i, err, errlen)) != 0) return rc;
      continue;
    }
    if (!flags_done && a[0] == '-' && a[1] != '\0')
      return usage(err, errlen, "unknown option '%s' for %s (see --help)", a, command_name(cli->cmd));
    if ((rc = apply_positional(cli, a, err, errlen)) != 0) return rc;
  }
  if (cli->help) return 0;
  return check_complete(cli, err, errlen);
}
