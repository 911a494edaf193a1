/* helpers.h: shared fixtures for the cmocka tests: an engine with a Lua
** state, and running a chunk of Lua as the main task. */
#ifndef RUNBOOK_TEST_HELPERS_H
#define RUNBOOK_TEST_HELPERS_H

#include "engine.h"
#include "rb_modules.h"

/* Runs `code` as a runbook body in a fresh engine (virtual clock when
** `virtual_clock`); returns the exit code. *out (optional) receives a
** malloc'd copy of the string the chunk returned, if any. */
int run_lua(const char *code, int virtual_clock, char **out);

#endif
