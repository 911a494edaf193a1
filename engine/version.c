/*
** version.c: `runbook version [--output json]`. The text form is one line
** (help2man reads it for the manual page); the JSON form names every
** library the binary runs with, for a fleet's inventory and bug reports:
** the ones linked (Lua, libuv, libyaml, jansson) by their own version
** calls, and the two loaded lazily (libcurl, libcrypto) as they would be
** loaded: the same soname (RUNBOOK_LIBCURL overriding libcurl's), asked
** for its version, or null when it cannot be loaded.
*/
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lua.h>
#include <uv.h>
#include <yaml.h>

#include "version.h"

#ifndef RUNBOOK_COMMIT
#define RUNBOOK_COMMIT "unknown"
#endif
#ifndef RB_CURL_SONAME
#define RB_CURL_SONAME "libcurl.so.4"
#endif
#ifndef RB_CRYPTO_SONAME
#define RB_CRYPTO_SONAME "libcrypto.so.3"
#endif

/* curl_version() and OpenSSL_version(OPENSSL_VERSION) of the library the
** binary would load, or NULL. The handle stays open: the process ends. */
static const char *lazy_version(const char *soname, const char *sym, int with_arg) {
  void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL), *p;
  if (lib == NULL || (p = dlsym(lib, sym)) == NULL) return NULL;
  if (with_arg) {
    const char *(*fn)(int);
    memcpy(&fn, &p, sizeof p);
    return fn(0); /* OPENSSL_VERSION */
  }
  else {
    char *(*fn)(void);
    memcpy(&fn, &p, sizeof p);
    return fn();
  }
}

static json_t *string_or_null(const char *s) {
  return s ? json_string(s) : json_null();
}

int version_print(FILE *out, int as_json) {
  const char *curl_name = getenv("RUNBOOK_LIBCURL");
  json_t *v;
  char *text;
  if (!as_json) {
    fprintf(out, "runbook %s (%s, libuv %s)\n", RUNBOOK_VERSION, LUA_RELEASE, uv_version_string());
    return 0;
  }
  if (curl_name == NULL || *curl_name == '\0') curl_name = RB_CURL_SONAME;
  v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:i}", "version", RUNBOOK_VERSION, "commit",
                RUNBOOK_COMMIT, "lua", LUA_RELEASE, "libuv", uv_version_string(), "libyaml", yaml_get_version_string(),
                "jansson", jansson_version_str(), "libcurl", string_or_null(lazy_version(curl_name, "curl_version", 0)),
                "libcrypto", string_or_null(lazy_version(RB_CRYPTO_SONAME, "OpenSSL_version", 1)), "event_schema",
                RB_EVENT_SCHEMA, "journal_format", RB_JOURNAL_FORMAT);
  if (v == NULL || (text = json_dumps(v, JSON_SORT_KEYS)) == NULL) {
    json_decref(v);
    return 1;
  }
  fprintf(out, "%s\n", text);
  free(text);
  json_decref(v);
  return 0;
}
