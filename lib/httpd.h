/* SPDX-License-Identifier: MIT */
/*
 * httpd.h - the HTTP server of liblt (libmicrohttpd, epoll, thread pool) for
 * any front end (the agent's API now, the gateway next), with request phases
 * as nginx has them: a route declares
 *   access  (who is asking: authentication, admin right; fills r->principal),
 *   limit   (may this request go on now),
 *   handler (the answer),
 * and the server calls them in that order, a phase that answers ending the
 * chain; the server's log callback (metrics) sees every request that got a
 * response, when it completes. Authentication and limiting are thus stages
 * a route names, not calls at the top of each handler.
 *
 * The server also owns what every front end needs against hostile clients:
 * a body limit (413 without buffering), the RFC 9112 6.3 framing rule (400),
 * a per-address connection limit, a deadline for the whole request that
 * trickling bytes do not extend, and rate-limited log lines.
 */
#ifndef LT_HTTPD_H
#define LT_HTTPD_H

#include <stddef.h>
#include <jansson.h>
#include <linux/types.h>
#include <microhttpd.h>
#include "auth.h" /* struct lt_principal */
#include "snap.h"

struct lt_httpd;
struct lt_http_conn;
struct lt_route;

/*
 * One request being handled. The front end's state and config are opaque here (void *): liblt names no
 * type of a binary that links it; each front end reads them through its own
 * typed accessors (the agent: lt_api_of, lt_cp_of in agent/api.h).
 */
struct lt_req {
	void *app; /* lt_httpd_opts.app */
	const void *cfg; /* this handler call's snapshot of opts.cfg, or NULL */
	struct MHD_Connection *conn;
	const char *method, *url;
	char *body; /* len bytes and a NUL, or NULL when the request has no body */
	size_t len;
	char *buf; /* the server's: body's storage, kept between requests of a connection */
	size_t cap; /* bytes of buf */
	int too_big;
	const char *bad_framing; /* why the length is ambiguous (400), or NULL */
	__u64 start_ns;
	int status; /* of the response sent, for the log phase */
	struct lt_http_conn *cc; /* its connection's deadline state */
	const struct lt_route *route; /* the route that matched, or NULL */
	/*
	 * Set by a route's access phase; anonymous (lt_principal_clear) before.
	 * Last: a new request clears the fields above and only the principal's
	 * small ones, not its 4 KiB.
	 */
	struct lt_principal principal;
};

/* A phase: 0 to go on, or -1 with a response queued and its result in *res. */
typedef int (*lt_phase_fn)(struct lt_req *r, enum MHD_Result *res);
typedef enum MHD_Result (*lt_handler_fn)(struct lt_req *r);

#define LT_ROUTE_PREFIX 1u /* path is a prefix of the URL, not the whole URL */

struct lt_route {
	const char *method; /* "GET", "POST"; NULL: any, the handler decides */
	const char *path;
	unsigned flags; /* LT_ROUTE_* */
	lt_phase_fn access; /* NULL: anyone */
	lt_phase_fn limit; /* NULL: no limit */
	lt_handler_fn handler;
};

struct lt_httpd_opts {
	const char *listen; /* IPv4 ADDR:PORT */
	unsigned threads, conns_per_client;
	__u64 request_timeout_ns; /* the whole request, head and body */
	struct lt_snap *cfg; /* each handler call reads one snapshot (r->cfg); NULL: none */
	unsigned (*max_body)(const void *cfg); /* bytes, from the snapshot r->cfg */
	void *app; /* r->app */
	const struct lt_route *routes; /* first match wins; ends with a NULL path */
	void (*log)(struct lt_req *r); /* on completion of a request that got a response */
};

/* 0 and *out listening, or -errno and a sentence in err. */
int lt_httpd_start(struct lt_httpd **out, const struct lt_httpd_opts *o, char *err, size_t errlen);
void lt_httpd_stop(struct lt_httpd *h);

/* Responses. Each returns the MHD result of queueing; body is freed. */
enum MHD_Result lt_send(struct lt_req *r, unsigned status, const char *ctype, char *body,
			const char *const *hdrs);
/* body is consumed; hdrs: name, value, ..., NULL. An unbuildable body is a logged 500. */
enum MHD_Result lt_reply_json_h(struct lt_req *r, unsigned status, json_t *body, const char *ctype,
				const char *const *hdrs);
enum MHD_Result lt_reply_json(struct lt_req *r, unsigned status, json_t *body);
/* application/problem+json; a 5xx is logged with its detail */
enum MHD_Result lt_problem(struct lt_req *r, unsigned status, const char *type, const char *title,
			   const char *field, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#endif
