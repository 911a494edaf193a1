/*
** net_tls.c: TLS for runbook.net's server (net_tls.h). libssl is loaded at
** the first TLS context, as libcrypto is at the first digest (hash.c): most
** runs never serve TLS. Each connection is an SSL in server mode between
** two memory BIOs; the libuv side of net.c moves the bytes.
*/
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net_tls.h"

#ifndef RB_SSL_SONAME
#define RB_SSL_SONAME "libssl.so.3"
#endif

struct net_tls {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
};

static struct {
  const SSL_METHOD *(*server_method)(void);
  SSL_CTX *(*ctx_new)(const SSL_METHOD *);
  void (*ctx_free)(SSL_CTX *);
  int (*use_chain)(SSL_CTX *, const char *);
  int (*use_key)(SSL_CTX *, const char *, int);
  SSL *(*ssl_new)(SSL_CTX *);
  void (*ssl_free)(SSL *);
  void (*set_bio)(SSL *, BIO *, BIO *);
  void (*accept_state)(SSL *);
  int (*ssl_read)(SSL *, void *, int);
  int (*ssl_write)(SSL *, const void *, int);
  int (*get_error)(const SSL *, int);
  BIO *(*bio_new)(const BIO_METHOD *);
  const BIO_METHOD *(*bio_mem)(void);
  int (*bio_read)(BIO *, void *, int);
  int (*bio_write)(BIO *, const void *, int);
  long (*bio_ctrl)(BIO *, int, long, void *);
  unsigned long (*err_get)(void);
  void (*err_string)(unsigned long, char *, size_t);
} S;

static const char *load_ssl(void) {
  static char why[256];
  static const char *const names[] = { "TLS_server_method",
                                       "SSL_CTX_new",
                                       "SSL_CTX_free",
                                       "SSL_CTX_use_certificate_chain_file",
                                       "SSL_CTX_use_PrivateKey_file",
                                       "SSL_new",
                                       "SSL_free",
                                       "SSL_set_bio",
                                       "SSL_set_accept_state",
                                       "SSL_read",
                                       "SSL_write",
                                       "SSL_get_error",
                                       "BIO_new",
                                       "BIO_s_mem",
                                       "BIO_read",
                                       "BIO_write",
                                       "BIO_ctrl",
                                       "ERR_get_error",
                                       "ERR_error_string_n" };
  void *lib, **slot = (void **)&S;
  size_t i;
  if (S.server_method) return NULL;
  if (why[0]) return why;
  lib = dlopen(RB_SSL_SONAME, RTLD_NOW | RTLD_LOCAL); /* kept open for the process */
  if (lib == NULL) {
    snprintf(why, sizeof why, "cannot load libssl (%s): %s; install it: apt-get install libssl3", RB_SSL_SONAME,
             dlerror());
    return why;
  }
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *f = dlsym(lib, names[i]);
    if (f == NULL) {
      memset(&S, 0, sizeof S);
      snprintf(why, sizeof why, "%s lacks %s", RB_SSL_SONAME, names[i]);
      return why;
    }
    memcpy(&slot[i], &f, sizeof f); /* POSIX: a dlsym result converts to a function pointer */
  }
  return NULL;
}

void *net_tls_context(const char *cert, const char *key, const char **why) {
  static char msg[512];
  SSL_CTX *ctx;
  if ((*why = load_ssl()) != NULL) return NULL;
  ctx = S.ctx_new(S.server_method());
  if (ctx == NULL) {
    *why = "SSL_CTX_new failed";
    return NULL;
  }
  if (S.use_chain(ctx, cert) != 1 || S.use_key(ctx, key, SSL_FILETYPE_PEM) != 1) {
    char err[256];
    S.err_string(S.err_get(), err, sizeof err);
    snprintf(msg, sizeof msg, "cannot use %s and %s: %s", cert, key, err);
    S.ctx_free(ctx);
    *why = msg;
    return NULL;
  }
  return ctx;
}

void net_tls_context_free(void *ctx) {
  if (ctx) S.ctx_free((SSL_CTX *)ctx);
}

net_tls *net_tls_new(void *ctx) {
  net_tls *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->ssl = S.ssl_new((SSL_CTX *)ctx);
  t->rbio = S.bio_new(S.bio_mem());
  t->wbio = S.bio_new(S.bio_mem());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    net_tls_free(t);
    return NULL;
  }
  S.set_bio(t->ssl, t->rbio, t->wbio);
  S.accept_state(t->ssl);
  return t;
}

void net_tls_free(net_tls *t) {
  if (t == NULL) return;
  if (t->ssl) S.ssl_free(t->ssl); /* frees both BIOs once set */
  free(t);
}

int net_tls_read(net_tls *t, const char *in, size_t n, char **buf, size_t *len, size_t *cap) {
  if (n > 0 && S.bio_write(t->rbio, in, (int)n) != (int)n) return -1;
  for (;;) {
    int got, err;
    if (*cap - *len < 16384) {
      size_t ncap = *cap ? *cap * 2 : 16384;
      char *nb = realloc(*buf, ncap);
      if (nb == NULL) return -1;
      *buf = nb;
      *cap = ncap;
    }
    got = S.ssl_read(t->ssl, *buf + *len, (int)(*cap - *len));
    if (got > 0) {
      *len += (size_t)got;
      continue;
    }
    err = S.get_error(t->ssl, got);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
  }
}

int net_tls_write(net_tls *t, const char *in, size_t n) {
  while (n > 0) {
    int w = S.ssl_write(t->ssl, in, (int)n);
    if (w <= 0) return -1;
    in += w;
    n -= (size_t)w;
  }
  return 0;
}

size_t net_tls_take(net_tls *t, char **out) {
  long pending = S.bio_ctrl(t->wbio, BIO_CTRL_PENDING, 0, NULL);
  *out = NULL;
  if (pending <= 0) return 0;
  *out = malloc((size_t)pending);
  if (*out == NULL) return 0;
  return (size_t)S.bio_read(t->wbio, *out, (int)pending);
}
