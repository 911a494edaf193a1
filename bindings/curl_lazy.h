/*
** curl_lazy.h: libcurl, loaded on the first HTTP request rather than at
** start-up. Linking libcurl pulls in some thirty shared objects (TLS,
** GSSAPI, LDAP, SSH, HTTP/2, IDN...) whose loading and constructors cost
** ~12 ms per process, paid by every `runbook check`, `list` and runbook
** that never speaks HTTP. http.c includes this after <curl/curl.h>: its
** curl_* calls then go through the table, unchanged in the source.
*/
#ifndef RUNBOOK_CURL_LAZY_H
#define RUNBOOK_CURL_LAZY_H

#include <stddef.h>
#include <curl/curl.h>

typedef struct rb_curl_api {
  CURLcode (*global_init)(long);
  void (*global_cleanup)(void);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  const char *(*easy_strerror)(CURLcode);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_cleanup)(CURLM *);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
} rb_curl_api;

extern rb_curl_api rb_curl;

/* Loads libcurl and runs curl_global_init, once per process. Returns 0, or
** -1 with a message in err ("libcurl.so.4: cannot open shared object..."). */
int rb_curl_load(char *err, size_t errlen);

#ifndef RB_CURL_LAZY_IMPL
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*rb_curl.global_init)
#define curl_global_cleanup (*rb_curl.global_cleanup)
#define curl_easy_init (*rb_curl.easy_init)
#define curl_easy_cleanup (*rb_curl.easy_cleanup)
#define curl_easy_setopt (*rb_curl.easy_setopt)
#define curl_easy_getinfo (*rb_curl.easy_getinfo)
#define curl_easy_strerror (*rb_curl.easy_strerror)
#define curl_multi_init (*rb_curl.multi_init)
#define curl_multi_cleanup (*rb_curl.multi_cleanup)
#define curl_multi_setopt (*rb_curl.multi_setopt)
#define curl_multi_add_handle (*rb_curl.multi_add_handle)
#define curl_multi_remove_handle (*rb_curl.multi_remove_handle)
#define curl_multi_assign (*rb_curl.multi_assign)
#define curl_multi_socket_action (*rb_curl.multi_socket_action)
#define curl_multi_info_read (*rb_curl.multi_info_read)
#define curl_slist_append (*rb_curl.slist_append)
#define curl_slist_free_all (*rb_curl.slist_free_all)
#endif

#endif
