/*
** modules.c: the table of the bindings' C modules (rb_modules.h).
*/
#include "bindings.h"

const luaL_Reg rb_binding_modules[] = {
  { "runbook.exec.core", luaopen_runbook_exec_core }, { "runbook.fs.core", luaopen_runbook_fs_core },
  { "runbook.hash", luaopen_runbook_hash },           { "runbook.http.core", luaopen_runbook_http_core },
  { "runbook.json", luaopen_runbook_json },           { "runbook.net", luaopen_runbook_net },
  { "runbook.secret", luaopen_runbook_secret },       { "runbook.time", luaopen_runbook_time },
  { "runbook.yaml", luaopen_runbook_yaml },           { NULL, NULL }
};
