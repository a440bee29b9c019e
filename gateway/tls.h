/* SPDX-License-Identifier: MIT */
/*
 * tls.h - TLS to upstreams (https:// base URLs: the LLM providers).
 *
 * One client context per worker process and trust store, one SSL per
 * upstream connection, driven by the worker's edge-triggered loop: every
 * call is non-blocking and says "again" instead of waiting. The peer is
 * verified: the chain against the trust store (the system's, or the
 * config's "tls.ca_file"), and the name (DNS name with SNI, or an IP
 * address) against the certificate. TLS 1.2 is the floor.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_st;

/* Loads ca_file (NULL: the system store) as a worker would: 0, or -EINVAL and why. */
int gw_tls_check_ca(const char *ca_file, char *why, size_t whylen);

/*
 * A client SSL on connected (or connecting) fd for host (a name or a literal
 * address), trusting ca_file (NULL or "": the system store). NULL and why on
 * failure.
 */
struct ssl_st *gw_tls_new(const char *ca_file, const char *host, int fd, char *why, size_t whylen);
void gw_tls_free(struct ssl_st *s);

/* One handshake step: 0 done, 1 call again on the next event, -1 failed (why). */
int gw_tls_handshake(struct ssl_st *s, char *why, size_t whylen);

/*
 * As read(2)/send(2): > 0 bytes, 0 the peer closed (read), -1 with errno
 * EAGAIN (call again on the next event: TLS may need the other direction)
 * or EPROTO/ECONNRESET.
 */
ssize_t gw_tls_read(struct ssl_st *s, void *buf, size_t len);
ssize_t gw_tls_write(struct ssl_st *s, const void *buf, size_t len);

#endif
