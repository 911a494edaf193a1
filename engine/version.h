/*
** version.h: what `runbook version` prints.
*/
#ifndef RUNBOOK_VERSION_H
#define RUNBOOK_VERSION_H

#include <stdio.h>

/* The version of the JSON events (the `schema` field of every event:
** engine/lua/events.lua's SCHEMA; tests/cli/test_version.sh checks they
** agree) and of the journal's records (engine/lua/journal.lua: one JSON
** object per line, unversioned so far: 1). */
#define RB_EVENT_SCHEMA 1
#define RB_JOURNAL_FORMAT 1

/* One line of text, or a JSON object; returns 0, 1 when out of memory. */
int version_print(FILE *out, int as_json);

#endif
