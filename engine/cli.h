/*
** cli.h: command-line parsing, kept apart from main() so that it can be
** unit-tested. Parsing never prints; it fills rb_cli or an error message.
*/
#ifndef RUNBOOK_CLI_H
#define RUNBOOK_CLI_H

enum rb_command {
  RB_CMD_NONE,
  RB_CMD_RUN,
  RB_CMD_CHECK,
  RB_CMD_LIST,
  RB_CMD_TEST,
  RB_CMD_WORLD,
  RB_CMD_VERSION,
  RB_CMD_HELP,
  RB_CMD_PLAN,
  RB_CMD_STATUS,
  RB_CMD_FLEET,
  RB_CMD_COMPLETION
};

enum rb_output { RB_OUT_TEXT, RB_OUT_JSON };

#define RB_CLI_MAX_VARS 128
#define RB_CLI_MAX_LIST 64
#define RB_CLI_MAX_FILES 256

typedef struct rb_cli {
  enum rb_command cmd;
  int help;                            /* --help given: print the command's help */
  const char *help_topic;              /* `runbook help run` */
  const char *file;                    /* run/check: the runbook */
  const char *files[RB_CLI_MAX_FILES]; /* test: paths; completion: SHELL, or words KIND [FILE] */
  int nfiles;
  int dry_run, resume, fresh, yes, verbosity; /* verbosity: -1 quiet, 0, 1 verbose */
  int accept_drift;                           /* --resume over files changed since the run */
  enum rb_output output;
  const char *scenario, *vars_file, *state_dir, *log_file, *report_file;
  const char *vars[RB_CLI_MAX_VARS]; /* "K=V" */
  int nvars;
  double step_timeout;         /* --step-timeout: seconds, 0 none */
  double wait_lock;            /* --wait-lock: seconds to wait for a held lock, 0 none */
  const char *limit, *exclude; /* --limit, --exclude: the runbook variables limit and exclude */
  /* every --limit and every --exclude given: repeated, they add up (the
  ** items joined with commas); limit and exclude above are the first */
  const char *limits[RB_CLI_MAX_LIST], *excludes[RB_CLI_MAX_LIST];
  int nlimits, nexcludes;
  const char *world_action, *world_dir; /* world serve --dir DIR */
  const char *world_out;                /* world capture --out FILE */
  const char *world_url;                /* world call URL PROG ARGS... */
  char **call_argv;                     /* PROG ARGS... (NULL-terminated, points into argv) */
  int call_argc;
  const char *store;        /* --store URL (else RUNBOOK_STORE, else the state directory) */
  const char *fleet_action; /* fleet run */
  const char *clusters;     /* fleet: --clusters FILE.yaml */
  int concurrency;          /* fleet: --concurrency N (0: the default, 1) */
  int failure_budget;       /* fleet: --failure-budget N (-1: the default, 0) */
  const char *metrics_file; /* --metrics-file PATH: Prometheus text, written whole */
  const char *pushgateway;  /* --pushgateway URL: the same metrics pushed at the end */
} rb_cli;

/* Parses argv (argv[0] is the program). Returns 0, or 2 with 'err' filled
** with one line (no trailing newline) for a usage error. */
int cli_parse(rb_cli *cli, int argc, char **argv, char *err, int errlen);

/* The help text of a command (RB_CMD_NONE: the overview). */
const char *cli_help(enum rb_command cmd);
enum rb_command cli_command_named(const char *name);

#endif
