/*
** probe.c: a binding that reaches past rb_api.h into the scheduler's
** internals. tests/cli/test_boundary.sh builds it and expects the build to
** refuse it: a binding's include path holds engine/include only.
*/
#include "bindings.h"
#include "scheduler.h"

int rb_boundary_probe(lua_State *L);
int rb_boundary_probe(lua_State *L) {
  return sched_get(L)->nlive;
}
