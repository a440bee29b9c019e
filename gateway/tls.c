// SPDX-License-Identifier: MIT
/*
 * tls.c - TLS to upstreams with OpenSSL (see tls.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "tls.h"

/*
 * The worker's contexts, by trust store. A reload that names another
 * ca_file adds one; connections made under the old one keep it (an SSL
 * holds a reference to its context). A handful at most in practice.
 */
#define GW_TLS_CTXS 8

static struct {
	char ca[PATH_MAX]; /* "" = the system store */
	SSL_CTX *ctx;
} ctxs[GW_TLS_CTXS];

static void last_error(char *why, size_t whylen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(why, whylen, "%s: %s", what, buf);
	} else {
		snprintf(why, whylen, "%s", what);
	}
	ERR_clear_error();
}

static SSL_CTX *ctx_new(const char *ca, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		last_error(why, whylen, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/*
	 * A server that closes without close_notify reads as EOF: the HTTP
	 * framing (Content-Length, chunked) already tells a cut response from
	 * a whole one, and some providers' load balancers skip close_notify.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	/* the write buffer moves (realloc) between a short write and its retry */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (ca && *ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 :
			SSL_CTX_set_default_verify_paths(ctx) != 1) {
		char what[PATH_MAX + 64];
		snprintf(what, sizeof(what), "cannot load the CA file \"%s\"",
			 ca && *ca ? ca : "(system store)");
		last_error(why, whylen, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int gw_tls_check_ca(const char *ca_file, char *why, size_t whylen)
{
	SSL_CTX *ctx = ctx_new(ca_file, why, whylen);

	if (!ctx)
		return -EINVAL;
	SSL_CTX_free(ctx);
	return 0;
}

static SSL_CTX *ctx_get(const char *ca, char *why, size_t whylen)
{
	int i, fre = -1;

	if (!ca)
		ca = "";
	for (i = 0; i < GW_TLS_CTXS; i++) {
		if (ctxs[i].ctx && !strcmp(ctxs[i].ca, ca))
			return ctxs[i].ctx;
		if (!ctxs[i].ctx && fre < 0)
			fre = i;
	}
	if (fre < 0) {
		/* the oldest goes: its connections hold their own reference */
		SSL_CTX_free(ctxs[0].ctx);
		memmove(&ctxs[0], &ctxs[1], sizeof(ctxs[0]) * (GW_TLS_CTXS - 1));
		fre = GW_TLS_CTXS - 1;
		ctxs[fre].ctx = NULL;
	}
	if (strlen(ca) >= sizeof(ctxs[fre].ca)) {
		snprintf(why, whylen, "CA file name too long");
		return NULL;
	}
	ctxs[fre].ctx = ctx_new(ca, why, whylen);
	if (ctxs[fre].ctx)
		strcpy(ctxs[fre].ca, ca);
	return ctxs[fre].ctx;
}

struct ssl_st *gw_tls_new(const char *ca_file, const char *host, int fd, char *why, size_t whylen)
{
	SSL_CTX *ctx = ctx_get(ca_file, why, whylen);
	unsigned char a[16];
	int literal;
	SSL *s;

	if (!ctx)
		return NULL;
	s = SSL_new(ctx);
	if (!s) {
		last_error(why, whylen, "TLS session");
		return NULL;
	}
	literal = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
	if (!SSL_set_fd(s, fd) ||
	    (literal ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) :
		       (!SSL_set_tlsext_host_name(s, host) || !SSL_set1_host(s, host)))) {
		last_error(why, whylen, "TLS session setup");
		SSL_free(s);
		return NULL;
	}
	SSL_set_connect_state(s);
	return s;
}

void gw_tls_free(struct ssl_st *s)
{
	SSL_free(s);
}

int gw_tls_handshake(struct ssl_st *s, char *why, size_t whylen)
{
	int r, e;
	long v;

	ERR_clear_error();
	r = SSL_do_handshake(s);
	if (r == 1)
		return 0;
	e = SSL_get_error(s, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 1;
	v = SSL_get_verify_result(s);
	if (v != X509_V_OK) {
		snprintf(why, whylen, "TLS handshake: certificate not trusted: %s",
			 X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
		snprintf(why, whylen, "TLS handshake: %s",
			 errno ? strerror(errno) : "the upstream closed the connection");
	} else {
		last_error(why, whylen, "TLS handshake");
	}
	return -1;
}

static ssize_t io_result(SSL *s, int r)
{
	int e = SSL_get_error(s, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_error() && !errno)
			return 0;
		ERR_clear_error();
		if (!errno)
			errno = EPROTO;
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t gw_tls_read(struct ssl_st *s, void *buf, size_t len)
{
	int r;

	if (len > INT_MAX)
		len = INT_MAX;
	ERR_clear_error();
	errno = 0;
	r = SSL_read(s, buf, (int)len);
	return r > 0 ? r : io_result(s, r);
}

ssize_t gw_tls_write(struct ssl_st *s, const void *buf, size_t len)
{
	int r;

	if (len > INT_MAX)
		len = INT_MAX;
	ERR_clear_error();
	errno = 0;
	r = SSL_write(s, buf, (int)len);
	return r > 0 ? r : io_result(s, r);
}
