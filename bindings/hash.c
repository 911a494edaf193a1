/*
** hash.c: runbook.hash, digests from OpenSSL's libcrypto (EVP), never
** hand-written. sha256(data) -> lowercase hex.
*/
#include <openssl/evp.h>

#include "bindings.h"

static int hash_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0, i;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  static const char digits[] = "0123456789abcdef";
  if (!EVP_Digest(s, len, md, &n, EVP_sha256(), NULL)) return rb_error_raise(L, "hash", "sha256 failed in libcrypto");
  for (i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  lua_pushlstring(L, hex, 2 * n);
  return 1;
}

static const luaL_Reg hash_funcs[] = { { "sha256", hash_sha256 }, { NULL, NULL } };

int luaopen_runbook_hash(lua_State *L) {
  luaL_newlib(L, hash_funcs);
  return 1;
}
