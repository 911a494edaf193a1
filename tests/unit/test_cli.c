/* test_cli.c: command-line parsing (engine/cli.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cli.h"

#define PARSE(cli, err, ...)                                                                                           \
  cli_parse(&(cli), (int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)), (char *[]){ __VA_ARGS__ }, err,         \
            sizeof err)

static void test_cli_run_with_all_flags(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "run", "rollout.lua", "--dry-run", "--scenario", "s.yaml", "--var", "a=1",
                         "--var=b=2", "--vars", "v.yaml", "--state-dir", "st", "--resume", "--yes", "--output", "json",
                         "--log", "l.txt", "--report", "r.md", "-v"),
                   0);
  assert_int_equal(c.cmd, RB_CMD_RUN);
  assert_string_equal(c.file, "rollout.lua");
  assert_true(c.dry_run);
  assert_string_equal(c.scenario, "s.yaml");
  assert_int_equal(c.nvars, 2);
  assert_string_equal(c.vars[0], "a=1");
  assert_string_equal(c.vars[1], "b=2"); /* --var=K=V keeps the value's '=' */
  assert_string_equal(c.vars_file, "v.yaml");
  assert_string_equal(c.state_dir, "st");
  assert_true(c.resume);
  assert_true(c.yes);
  assert_int_equal(c.output, RB_OUT_JSON);
  assert_string_equal(c.log_file, "l.txt");
  assert_string_equal(c.report_file, "r.md");
  assert_int_equal(c.verbosity, 1);
}

static void test_cli_unknown_flag_is_usage_error(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--frobnicate"), 2);
  assert_non_null(strstr(err, "unknown option '--frobnicate'"));
  /* a flag of another command is unknown here too */
  assert_int_equal(PARSE(c, err, "runbook", "check", "x.lua", "--dry-run"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "-x"), 2);
}

static void test_cli_missing_values_and_files(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "run"), 2);
  assert_non_null(strstr(err, "needs a runbook file"));
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--var"), 2);
  assert_non_null(strstr(err, "needs a value"));
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--var", "novalue"), 2);
  assert_non_null(strstr(err, "K=V"));
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--output", "xml"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--resume", "--fresh"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "run", "x.lua", "--scenario", "s.yaml"), 2);
  assert_non_null(strstr(err, "--dry-run"));
  assert_int_equal(PARSE(c, err, "runbook", "test"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "frob"), 2);
  assert_non_null(strstr(err, "unknown command 'frob'"));
  assert_int_equal(PARSE(c, err, "runbook", "run", "a.lua", "b.lua"), 2);
}

static void test_cli_help_everywhere(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook"), 0);
  assert_int_equal(c.cmd, RB_CMD_HELP);
  assert_int_equal(PARSE(c, err, "runbook", "run", "--help"), 0);
  assert_true(c.help);
  assert_int_equal(c.cmd, RB_CMD_RUN);
  assert_int_equal(PARSE(c, err, "runbook", "test", "-h"), 0);
  assert_true(c.help);
  assert_int_equal(PARSE(c, err, "runbook", "help", "run"), 0);
  assert_string_equal(c.help_topic, "run");
  assert_non_null(strstr(cli_help(RB_CMD_RUN), "--dry-run"));
  assert_int_equal(PARSE(c, err, "runbook", "help", "nope"), 2);
}

static void test_cli_double_dash_ends_flags(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "test", "--", "--odd-name.lua"), 0);
  assert_int_equal(c.nfiles, 1);
  assert_string_equal(c.files[0], "--odd-name.lua");
}

static void test_cli_world_needs_dir(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "world", "serve"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "world", "serve", "--dir", "d"), 0);
  assert_int_equal(PARSE(c, err, "runbook", "world", "eat", "--dir", "d"), 2);
}

static void test_cli_world_capture(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "world", "capture", "--out", "cap.yaml", "--var", "talconfig=t.yaml"), 0);
  assert_string_equal(c.world_action, "capture");
  assert_string_equal(c.world_out, "cap.yaml");
  assert_int_equal(c.nvars, 1);
  assert_null(c.world_dir);
  assert_int_equal(PARSE(c, err, "runbook", "world", "capture"), 0); /* to stdout */
  assert_int_equal(PARSE(c, err, "runbook", "world", "capture", "--dir", "d"), 2);
  assert_non_null(strstr(err, "no --dir"));
  assert_int_equal(PARSE(c, err, "runbook", "world", "capture", "--scenario", "s.yaml"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "world", "serve", "--dir", "d", "--out", "x"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "world", "serve", "--dir", "d", "--var", "a=1"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "world", "capture", "--yes"), 2);
}

static void test_cli_plan(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "plan", "rollout.lua", "--var", "a=1", "--limit", "k8s-1", "--output",
                         "json", "-v", "--state-dir", "st"),
                   0);
  assert_int_equal(c.cmd, RB_CMD_PLAN);
  assert_string_equal(c.file, "rollout.lua");
  assert_string_equal(c.limit, "k8s-1");
  assert_int_equal(c.verbosity, 1);
  /* repeated --limit and --exclude add up (issue #29.7): each one kept */
  assert_int_equal(
    PARSE(c, err, "runbook", "run", "r.lua", "--limit", "a", "--limit", "b,c", "--exclude", "c", "--exclude", "d"), 0);
  assert_int_equal(c.nlimits, 2);
  assert_string_equal(c.limits[0], "a");
  assert_string_equal(c.limits[1], "b,c");
  assert_int_equal(c.nexcludes, 2);
  assert_string_equal(c.excludes[1], "d");
  assert_false(c.dry_run);
  assert_int_equal(PARSE(c, err, "runbook", "plan"), 2); /* needs a runbook */
  assert_non_null(strstr(err, "plan needs a runbook file"));
  /* a plan is always a fresh rehearsal of a capture */
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--dry-run"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--scenario", "s.yaml"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--resume"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--yes"), 2);
  assert_string_equal(cli_help(RB_CMD_PLAN), cli_help(cli_command_named("plan")));
  assert_non_null(strstr(cli_help(RB_CMD_PLAN), "usage: runbook plan"));
}

/* --store for run and status; fleet run with its own flags and checks */
static void test_cli_store_status_fleet(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "run", "r.lua", "--store", "etcd://127.0.0.1:2379/rb"), 0);
  assert_string_equal(c.store, "etcd://127.0.0.1:2379/rb");
  assert_int_equal(PARSE(c, err, "runbook", "status", "--store=etcd://h:1/p", "--output", "json"), 0);
  assert_int_equal(c.cmd, RB_CMD_STATUS);
  assert_string_equal(c.store, "etcd://h:1/p");
  assert_int_equal(PARSE(c, err, "runbook", "status", "x.lua"), 2); /* status takes no file */
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--store", "etcd://h:1/p"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "run", "r.lua", "--clusters", "f.yaml", "--concurrency", "3",
                         "--failure-budget", "1", "--dry-run", "--resume", "--var", "a=1"),
                   0);
  assert_int_equal(c.cmd, RB_CMD_FLEET);
  assert_string_equal(c.file, "r.lua");
  assert_string_equal(c.clusters, "f.yaml");
  assert_int_equal(c.concurrency, 3);
  assert_int_equal(c.failure_budget, 1);
  assert_true(c.dry_run && c.resume);
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "run", "r.lua"), 2);
  assert_non_null(strstr(err, "--clusters"));
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "go", "r.lua", "--clusters", "f.yaml"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "run", "r.lua", "--clusters", "f.yaml", "--concurrency", "0"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "run", "r.lua", "--clusters", "f.yaml", "--failure-budget", "-1"),
                   2);
  assert_int_equal(PARSE(c, err, "runbook", "fleet", "run", "r.lua", "--clusters", "f.yaml"), 0);
  assert_int_equal(c.failure_budget, -1); /* not given: the default */
}

/* #32: version --output, completion SHELL / words KIND [FILE], the metrics flags */
static void test_cli_shipping(void **state) {
  rb_cli c;
  char err[256];
  (void)state;
  assert_int_equal(PARSE(c, err, "runbook", "version", "--output", "json"), 0);
  assert_int_equal(c.cmd, RB_CMD_VERSION);
  assert_int_equal(c.output, RB_OUT_JSON);
  assert_int_equal(PARSE(c, err, "runbook", "version", "--metrics-file", "m"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "fish"), 0);
  assert_int_equal(c.cmd, RB_CMD_COMPLETION);
  assert_int_equal(c.nfiles, 1);
  assert_string_equal(c.files[0], "fish");
  assert_int_equal(PARSE(c, err, "runbook", "completion", "tcsh"), 2);
  assert_non_null(strstr(err, "expects bash, zsh or fish"));
  assert_int_equal(PARSE(c, err, "runbook", "completion"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "bash", "zsh"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "words", "vars", "r.lua"), 0);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "words", "vars"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "words", "runbooks", "r.lua"), 2);
  assert_int_equal(PARSE(c, err, "runbook", "completion", "words", "nodes"), 2);
  assert_int_equal(
    PARSE(c, err, "runbook", "run", "r.lua", "--metrics-file", "m.prom", "--pushgateway=http://127.0.0.1:9091"), 0);
  assert_string_equal(c.metrics_file, "m.prom");
  assert_string_equal(c.pushgateway, "http://127.0.0.1:9091");
  assert_int_equal(PARSE(c, err, "runbook", "plan", "r.lua", "--metrics-file", "m.prom"), 0);
  assert_int_equal(PARSE(c, err, "runbook", "check", "r.lua", "--metrics-file", "m.prom"), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cli_run_with_all_flags),
    cmocka_unit_test(test_cli_unknown_flag_is_usage_error),
    cmocka_unit_test(test_cli_missing_values_and_files),
    cmocka_unit_test(test_cli_help_everywhere),
    cmocka_unit_test(test_cli_double_dash_ends_flags),
    cmocka_unit_test(test_cli_world_needs_dir),
    cmocka_unit_test(test_cli_world_capture),
    cmocka_unit_test(test_cli_plan),
    cmocka_unit_test(test_cli_store_status_fleet),
    cmocka_unit_test(test_cli_shipping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
