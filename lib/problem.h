/* SPDX-License-Identifier: MIT */
/*
 * problem.h - application/problem+json bodies (RFC 9457) and the rate-limit
 * response fields (Retry-After, RateLimit-Policy, RateLimit) for any HTTP
 * front end of liblt (the agent's API now, the gateway next). Nothing here
 * knows the HTTP server: a body is a json_t, the fields are a name/value
 * list the caller sends.
 *
 * A problem body is always valid JSON text: its strings may quote client
 * bytes (a path, a field name, a token header) or be cut by "%.Ns", and
 * jansson refuses invalid UTF-8, which would turn a 4xx into a 500.
 */
#ifndef LT_PROBLEM_H
#define LT_PROBLEM_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define LT_PROBLEM_BASE "https://leaky-tokens.dev/problems/"

/*
 * {"type": LT_PROBLEM_BASE type, "title", "status", "detail", "field"?}:
 * field is omitted when NULL. NULL only when out of memory.
 */
json_t *lt_problem_json(unsigned status, const char *type, const char *title, const char *field,
			const char *detail);

/* The body sent when a response cannot be built at all (a constant). */
extern const char lt_problem_internal[];

/*
 * Response header fields: pairs of name and value, NULL-terminated in kv
 * (what the HTTP wrapper takes). Values are copied into buf; names must be
 * string literals or otherwise outlive the list.
 */
#define LT_HDRS_MAX 8
struct lt_hdrs {
	const char *kv[2 * LT_HDRS_MAX + 1];
	int n; /* pairs */
	size_t used; /* bytes of buf */
	char buf[640];
};

void lt_hdrs_init(struct lt_hdrs *h);
/* -E2BIG (and nothing added) when the list or buf is full. */
int lt_hdrs_add(struct lt_hdrs *h, const char *name, const char *value);

/*
 * What a client is told about one bucket, in the units of ratelimit.h.
 * window_s: lt_rl_window_s(), or 1 for a bucket that does not limit.
 */
struct lt_rl_view {
	uint64_t capacity; /* tokens (q) */
	uint64_t window_s; /* seconds (w) */
	uint64_t remaining; /* tokens that fit now (r, when admitted) */
	uint64_t full_in_s; /* seconds until empty again (t, when admitted) */
	uint64_t retry_after_ns; /* until the refused request would fit (refused only) */
	uint64_t retry_after_s; /* the same in seconds, exact where ns saturate; 0 = from ns */
};

/*
 * Adds, in this order: Retry-After (refused only, whole seconds rounded up,
 * at least 1, exact past 2^64 ns when retry_after_s is given, capped at
 * LT_SF_INT_MAX: never 0 and never a wrapped small number),
 * RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11)
 * for the policy name. A refused request reports r=0 and t = the wait.
 */
int lt_rl_headers(struct lt_hdrs *h, const char *policy, const struct lt_rl_view *v, int refused);

#endif
