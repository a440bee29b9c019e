/* SPDX-License-Identifier: MIT */
/*
 * exchange.h - the hook API between the proxy (gateway/proxy.c) and a route's
 * logic (gateway/llm_route.c, ops endpoints, tests). Included by the proxy
 * and by every route kind; nothing here knows sockets or epoll.
 *
 * One exchange is one request and its response on one client connection. The
 * proxy calls the route's ops at each phase, in this order, all on the
 * worker's single thread (no locking, no re-entrancy; an op must not block):
 *
 *   on_request_head   the head is parsed (gw_req(x): method, target, headers
 *                     incl. X-API-Key / Authorization; gw_peer(x): the
 *                     client address). The op may answer (gw_answer), ask
 *                     for the whole body (gw_want_body, bounded: 413 past
 *                     the bound), choose the upstream now (gw_set_upstream /
 *                     gw_use_provider), edit request headers, keep state
 *                     (gw_set_user).
 *   on_request_body   only if the body was asked for: the whole body,
 *                     de-chunked. The op may answer, or replace the body
 *                     (gw_set_body; sent with a new Content-Length).
 *   pick_upstream     if no upstream was chosen yet (or a retry needs another
 *                     one: attempt counts from 0). A route without this op
 *                     uses its configured service (round robin / least
 *                     connections, healthy members first).
 *   on_response_head  the upstream's response head (gw_resp(x)). The op may
 *                     add response fields (gw_add_response_header), or
 *                     return GW_RETRY to discard this response and go to
 *                     pick_upstream again (a fallback chain; only while no
 *                     byte went to the client and the request is replayable:
 *                     no body, or a body held with gw_want_body).
 *   on_response_data  each piece of the response body as it arrives, de-chunked
 *                     (SSE events may span pieces: the op keeps its own
 *                     parse state). Returning GW_CUT ends the response after
 *                     the op's own final piece (gw_cut_with), and the
 *                     upstream connection is closed. A route that sets this
 *                     op gets its response re-framed as chunked to the
 *                     client (so a cut can end it cleanly); without it,
 *                     bytes pass through as framed by the upstream.
 *   on_done           exactly once per exchange that reached
 *                     on_request_head, with the outcome; the place to
 *                     reconcile, record usage and free gw_user state.
 *
 * A client that leaves mid-response: if the route set gw_keep_reading(x, ms),
 * the proxy goes on reading (and observing) the upstream response for up to
 * ms milliseconds and then calls on_done(GW_OUT_CLIENT_GONE) with
 * gw_stats(x)->resp_complete telling whether the response was read to its
 * end (so the route can reconcile from the real usage); otherwise the
 * upstream connection is closed at once.
 *
 * Op return values: GW_CONTINUE (0) to go on; GW_ANSWERED after gw_answer;
 * GW_RETRY / GW_CUT where said above; a negative errno answers 500 (problem+json).
 *
 * Secrets: header values given to gw_set_upstream / gw_use_provider (the
 * provider's Authorization, x-goog-api-key, x-api-key) are sent upstream and
 * never logged; the proxy logs names only.
 */
#ifndef GW_EXCHANGE_H
#define GW_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "http1.h"

struct gw_exchange;
struct gw_provider; /* gw_config.h */
struct gw_config; /* gw_config.h */
struct gw_route; /* routes.h */

enum gw_verdict {
	GW_CONTINUE = 0,
	GW_ANSWERED = 1, /* the op called gw_answer */
	GW_RETRY = 2, /* on_response_head: discard, pick another upstream */
	GW_CUT = 3, /* on_response_data: end the response now */
	GW_REPLACED = 4, /* on_response_data: the op sent its own bytes (gw_emit), not the piece */
};

enum gw_outcome {
	GW_OUT_COMPLETED = 0, /* the response was relayed to its end */
	GW_OUT_ANSWERED, /* answered locally: by an op, or by the proxy (4xx, 413) */
	GW_OUT_CUT, /* an op ended the response (GW_CUT) */
	GW_OUT_CLIENT_GONE, /* the client closed or reset before the end */
	GW_OUT_UPSTREAM_ERROR, /* connect refused/reset, malformed response: 502 */
	GW_OUT_TIMEOUT, /* connect, read or total timeout: 504 */
	GW_OUT_ABORTED, /* the worker stopped (drain deadline) */
};

const char *gw_outcome_name(enum gw_outcome o);

struct gw_route_ops {
	const char *name; /* for log lines */
	int (*on_request_head)(struct gw_exchange *x);
	int (*on_request_body)(struct gw_exchange *x, const char *body, size_t len);
	int (*pick_upstream)(struct gw_exchange *x, unsigned attempt);
	int (*on_response_head)(struct gw_exchange *x);
	int (*on_response_data)(struct gw_exchange *x, const char *data, size_t len);
	void (*on_done)(struct gw_exchange *x, enum gw_outcome outcome);
};

/* Counters of one exchange, for on_done (usage records, latency). */
struct gw_stats {
	uint64_t start_ns; /* CLOCK_MONOTONIC when the head was complete */
	uint64_t upstream_ns; /* when the upstream request was sent, 0 if never */
	uint64_t first_byte_ns; /* first response byte from upstream, 0 if none */
	uint64_t end_ns; /* when on_done was called */
	uint64_t req_body_bytes; /* request body bytes sent upstream */
	uint64_t resp_body_bytes; /* response body bytes (payload, de-chunked) seen */
	unsigned status; /* sent to the client (0 if nothing was sent) */
	unsigned upstream_status; /* from upstream (0 if none) */
	unsigned attempts; /* upstream attempts made */
	unsigned resp_complete : 1; /* the upstream response was read to its end */
};

/* --- what the ops can read ------------------------------------------------- */

/* The parsed request head (pointers valid until on_done). */
const struct lt_http1_msg *gw_req(const struct gw_exchange *x);
/* The first request field of that (lowercase) name, or NULL; *len its length. */
const char *gw_req_header(const struct gw_exchange *x, const char *lower_name, size_t *len);
/* The client's address (AF_INET / AF_INET6). */
const struct sockaddr_storage *gw_peer(const struct gw_exchange *x);
/* The route that matched (routes.h) and its configured provider, if any. */
const struct gw_route *gw_route(const struct gw_exchange *x);
/* The config snapshot this exchange runs under (providers, model map). */
const struct gw_config *gw_config_of(const struct gw_exchange *x);
/* X-Request-Id of this exchange (propagated if the client sent a valid one, else generated). */
const char *gw_request_id(const struct gw_exchange *x);
/* The upstream response head, from on_response_head on; NULL before. */
const struct lt_http1_msg *gw_resp(const struct gw_exchange *x);
const struct gw_stats *gw_stats(const struct gw_exchange *x);

/* Per-exchange state of the route (freed by the route in on_done). */
void gw_set_user(struct gw_exchange *x, void *p);
void *gw_user(const struct gw_exchange *x);

/* --- what the ops can ask -------------------------------------------------- */

/*
 * Answers locally: status, content type (NULL: none), body (copied). Fields
 * added with gw_add_response_header go with it. Returns GW_ANSWERED, or
 * -ENOMEM. Allowed until the response head went to the client.
 */
int gw_answer(struct gw_exchange *x, unsigned status, const char *content_type, const char *body,
	      size_t len);
/* An application/problem+json answer (RFC 9457) built from lt_problem_json's fields. */
int gw_answer_problem(struct gw_exchange *x, unsigned status, const char *type, const char *title,
		      const char *detail);

/* Asks for the whole request body, at most max_bytes (beyond: 413, on_done ANSWERED). */
void gw_want_body(struct gw_exchange *x, size_t max_bytes);
/* Replaces the request body (copied); sent with Content-Length. */
int gw_set_body(struct gw_exchange *x, const char *body, size_t len);

/*
 * Request fields sent upstream. set replaces every field of that name (or
 * adds it); del removes them. name is copied. Hop-by-hop fields, Host,
 * Content-Length and Transfer-Encoding are the proxy's own and cannot be set.
 */
int gw_set_request_header(struct gw_exchange *x, const char *name, const char *value);
int gw_del_request_header(struct gw_exchange *x, const char *name);

/* A field added to the response to the client (forwarded or local). */
int gw_add_response_header(struct gw_exchange *x, const char *name, const char *value);
/*
 * Whole "Name: value\r\n" lines added to the response (forwarded or local),
 * copied as they are: for blocks built already (answer.h's lt_answer head),
 * without a copy per field. -EINVAL unless every line is a field line.
 * On a local answer a Content-Type line here stands for gw_answer's ctype
 * (pass NULL there).
 */
int gw_add_response_lines(struct gw_exchange *x, const char *lines, size_t len);

/*
 * Chooses the upstream: base_url "http://host:port[/base/path]" (https is
 * refused with 502 until TLS is built), the path appended to the base path
 * (NULL: the request's target after the route's prefix stripping), extra
 * request fields as name, value pairs ending in NULL (secrets welcome: never
 * logged), and per-exchange timeouts in ms (0: the route's).
 */
struct gw_upstream_req {
	const char *base_url;
	const char *path; /* with the query, if any */
	const char *const *headers; /* name, value, ..., NULL; may be NULL */
	uint32_t connect_timeout_ms;
	uint32_t read_timeout_ms; /* between two reads of the response */
	uint32_t total_timeout_ms; /* from the head to the end of the response */
};
int gw_set_upstream(struct gw_exchange *x, const struct gw_upstream_req *u);
/*
 * The same for a configured provider: its base URL, its key in the header
 * its kind expects (openai/qwen: Authorization: Bearer; gemini:
 * x-goog-api-key; anthropic: x-api-key and anthropic-version), its timeouts.
 * path NULL as above.
 */
int gw_use_provider(struct gw_exchange *x, const struct gw_provider *p, const char *path);

/*
 * From on_response_data: bytes sent to the client in place of the piece
 * (return GW_REPLACED); may be called several times, or not at all (the piece
 * is dropped). The response is re-framed as chunked, as for any observed one.
 */
int gw_emit(struct gw_exchange *x, const char *data, size_t len);

/*
 * Called in each worker after SIGHUP swapped in a new config (validated by
 * then), so that route-kind state built from it (admission options) follows
 * the file like the routes do. One hook per process; NULL to remove it.
 */
void gw_set_reload_hook(void (*fn)(const struct gw_config *cfg));

/* Keep reading the upstream for up to ms after the client left (see above). */
void gw_keep_reading(struct gw_exchange *x, uint32_t ms);

/*
 * From on_response_data: the final piece sent before the response ends
 * (copied), e.g. an SSE error event. Return GW_CUT after it.
 */
int gw_cut_with(struct gw_exchange *x, const char *data, size_t len);

#endif
