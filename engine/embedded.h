/*
** embedded.h: Lua sources compiled into the binary (see cmake/embed.cmake).
*/
#ifndef RUNBOOK_EMBEDDED_H
#define RUNBOOK_EMBEDDED_H

#include <stddef.h>

typedef struct rb_embedded {
  const char *module;    /* require name, e.g. "runbook.async" */
  const char *chunkname; /* "@runbook/async.lua" */
  const char *source;
  size_t len;
} rb_embedded;

extern const rb_embedded rb_embedded_modules[];

#endif
