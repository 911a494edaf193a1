/*
** curl_lazy.c: see curl_lazy.h.
*/
#define RB_CURL_LAZY_IMPL
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_lazy.h"

/* The soname the build was made against (Debian 12: libcurl.so.4);
** RUNBOOK_LIBCURL (a soname or a path) overrides it at run time. */
#ifndef RB_CURL_SONAME
#define RB_CURL_SONAME "libcurl.so.4"
#endif

rb_curl_api rb_curl;

static int loaded;
static char load_error[256];

static void cleanup_at_exit(void) {
  rb_curl.global_cleanup();
}

/* dlsym into a function pointer: POSIX guarantees the conversion works. */
#define SYM(field, sym)                                                                                                \
  do {                                                                                                                 \
    void *p_ = dlsym(lib, sym);                                                                                        \
    if (p_ == NULL) {                                                                                                  \
      missing = sym;                                                                                                   \
      goto fail;                                                                                                       \
    }                                                                                                                  \
    memcpy(&api.field, &p_, sizeof p_);                                                                                \
  } while (0)

int rb_curl_load(char *err, size_t errlen) {
  rb_curl_api api;
  const char *missing = NULL, *name;
  void *lib;
  if (loaded > 0) return 0;
  if (loaded < 0) { /* failed before: the same answer */
    snprintf(err, errlen, "%s", load_error);
    return -1;
  }
  if ((name = getenv("RUNBOOK_LIBCURL")) == NULL || *name == '\0') name = RB_CURL_SONAME;
  lib = dlopen(name, RTLD_NOW | RTLD_LOCAL); /* kept open for the process */
  if (lib == NULL) {
    const char *why = dlerror();
    snprintf(load_error, sizeof load_error, "cannot load libcurl (%s): %s; install it: apt-get install libcurl4", name,
             why ? why : "unknown error");
    goto failed;
  }
  SYM(global_init, "curl_global_init");
  SYM(global_cleanup, "curl_global_cleanup");
  SYM(easy_init, "curl_easy_init");
  SYM(easy_cleanup, "curl_easy_cleanup");
  SYM(easy_setopt, "curl_easy_setopt");
  SYM(easy_getinfo, "curl_easy_getinfo");
  SYM(easy_strerror, "curl_easy_strerror");
  SYM(multi_init, "curl_multi_init");
  SYM(multi_cleanup, "curl_multi_cleanup");
  SYM(multi_setopt, "curl_multi_setopt");
  SYM(multi_add_handle, "curl_multi_add_handle");
  SYM(multi_remove_handle, "curl_multi_remove_handle");
  SYM(multi_assign, "curl_multi_assign");
  SYM(multi_socket_action, "curl_multi_socket_action");
  SYM(multi_info_read, "curl_multi_info_read");
  SYM(slist_append, "curl_slist_append");
  SYM(slist_free_all, "curl_slist_free_all");
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(load_error, sizeof load_error, "libcurl (%s) failed to initialise", name);
    goto failed;
  }
  rb_curl = api;
  atexit(cleanup_at_exit);
  loaded = 1;
  return 0;
fail:
  snprintf(load_error, sizeof load_error, "%s has no %s: it is not the libcurl runbook was built for", name, missing);
  dlclose(lib);
failed:
  loaded = -1;
  snprintf(err, errlen, "%s", load_error);
  return -1;
}
