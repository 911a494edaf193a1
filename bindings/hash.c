/*
** hash.c: runbook.hash, digests from OpenSSL's libcrypto (EVP), never
** hand-written. sha256(data) -> lowercase hex; hmac_sha256(key, data) ->
** lowercase hex (RFC 2104, libcrypto's HMAC).
**
** libcrypto is loaded at the first digest, not linked: its 21,000
** relocations were most of the dynamic loader's work at every start-up
** (docs/benchmarks.md), for a function most runs call once or never. The
** build still compiles against OpenSSL's headers; RB_CRYPTO_SONAME is the
** soname it was made against.
*/
#include <dlfcn.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "bindings.h"

#ifndef RB_CRYPTO_SONAME
#define RB_CRYPTO_SONAME "libcrypto.so.3"
#endif

typedef int (*digest_fn)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *, ENGINE *);
typedef const EVP_MD *(*md_fn)(void);
typedef unsigned char *(*hmac_fn)(const EVP_MD *, const void *, int, const unsigned char *, size_t, unsigned char *,
                                  unsigned int *);

static digest_fn p_digest;
static md_fn p_sha256;
static hmac_fn p_hmac;

/* Returns NULL, or why libcrypto cannot be used. */
static const char *load_crypto(void) {
  static char why[256];
  void *lib, *d, *m, *h;
  if (p_digest) return NULL;
  if (why[0]) return why;
  lib = dlopen(RB_CRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL); /* kept open for the process */
  if (lib == NULL) {
    const char *e = dlerror();
    snprintf(why, sizeof why, "cannot load libcrypto (%s): %s; install it: apt-get install libssl3", RB_CRYPTO_SONAME,
             e ? e : "unknown error");
    return why;
  }
  d = dlsym(lib, "EVP_Digest");
  m = dlsym(lib, "EVP_sha256");
  h = dlsym(lib, "HMAC");
  if (d == NULL || m == NULL || h == NULL) {
    snprintf(why, sizeof why, "%s lacks EVP_Digest, EVP_sha256 or HMAC", RB_CRYPTO_SONAME);
    return why;
  }
  memcpy(&p_hmac, &h, sizeof h);
  memcpy(&p_sha256, &m, sizeof m); /* POSIX: a dlsym result converts to a function pointer */
  memcpy(&p_digest, &d, sizeof d);
  return NULL;
}

static int push_hex(lua_State *L, const unsigned char *md, unsigned int n) {
  char hex[2 * EVP_MAX_MD_SIZE];
  static const char digits[] = "0123456789abcdef";
  unsigned int i;
  for (i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * (size_t)n);
  return 1;
}

static int hash_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len), *why;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if ((why = load_crypto()) != NULL) return rb_error_raise(L, "hash", "%s", why);
  if (!p_digest(s, len, md, &n, p_sha256(), NULL)) return rb_error_raise(L, "hash", "sha256 failed in libcrypto");
  return push_hex(L, md, n);
}

/* hmac_sha256(key, data): the key's length fits an int (HMAC's type) */
static int hash_hmac_sha256(lua_State *L) {
  size_t klen, len;
  const char *key = luaL_checklstring(L, 1, &klen), *s = luaL_checklstring(L, 2, &len), *why;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  luaL_argcheck(L, klen <= 1024 * 1024, 1, "key longer than 1 MiB");
  if ((why = load_crypto()) != NULL) return rb_error_raise(L, "hash", "%s", why);
  if (p_hmac(p_sha256(), key, (int)klen, (const unsigned char *)s, len, md, &n) == NULL)
    return rb_error_raise(L, "hash", "HMAC-SHA256 failed in libcrypto");
  return push_hex(L, md, n);
}

static const luaL_Reg hash_funcs[] = { { "sha256", hash_sha256 }, { "hmac_sha256", hash_hmac_sha256 }, { NULL, NULL } };

int luaopen_runbook_hash(lua_State *L) {
  luaL_newlib(L, hash_funcs);
  return 1;
}
