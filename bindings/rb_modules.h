/*
** rb_modules.h: the C modules the bindings provide, as the table the
** program hands to engine_new (engine/main.c). The engine itself knows no
** binding by name.
*/
#ifndef RB_MODULES_H
#define RB_MODULES_H

#include <lauxlib.h>

/* {name, luaopen} pairs, ending with {NULL, NULL}. */
extern const luaL_Reg rb_binding_modules[];

#endif
