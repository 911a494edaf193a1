/*
** net_tls.h: TLS for runbook.net's server connections, on OpenSSL's libssl
** loaded at the first TLS listener (not linked), with memory BIOs: the
** connection feeds what it read and sends what comes out.
*/
#ifndef RB_NET_TLS_H
#define RB_NET_TLS_H

#include <stddef.h>

typedef struct net_tls net_tls;

/* A server context from a PEM certificate (chain) and key file; NULL and
** why (a message in a static buffer) when it cannot be made. */
void *net_tls_context(const char *cert, const char *key, const char **why);
void net_tls_context_free(void *ctx);

net_tls *net_tls_new(void *ctx);
void net_tls_free(net_tls *t);

/* Feeds n bytes read from the peer; appends the plaintext they complete to
** *buf (grown as needed). Returns 0, or -1 when the session failed. */
int net_tls_read(net_tls *t, const char *in, size_t n, char **buf, size_t *len, size_t *cap);

/* Encrypts n bytes of plaintext. Returns 0 or -1. */
int net_tls_write(net_tls *t, const char *in, size_t n);

/* The bytes waiting for the peer (handshake, records), malloc'd, in *out;
** their count (0: nothing, *out NULL). */
size_t net_tls_take(net_tls *t, char **out);

#endif
