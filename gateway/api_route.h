/* SPDX-License-Identifier: MIT */
/*
 * api_route.h - who may call a general API route, and the per-API-key request
 * rate on it (issue #9, item 2: "a per-API-key request-rate limit on any
 * route"). A route with "auth" identifies its caller with the LLM routes' own
 * identity cache (gateway/identity.c): missing or invalid credentials are 401,
 * as on the LLM routes. With "key_limit": true each request takes 1 from the
 * caller's key request bucket r/<tier>/<key>, the very bucket the LLM routes
 * take 1 from (its capacity and rate: the agent's token.key_requests for the
 * key's tier), through gateway/admit.c over the shared pinned maps: so every
 * gateway process, and the LLM routes, count against one exact budget.
 *   admitted   forwarded, with the RateLimit-Policy and RateLimit fields;
 *   refused    429 with Retry-After, retry-after-ms and the RateLimit fields
 *              of gateway/answer.c, body application/problem+json;
 *   no limit for the key's tier: 403 (as on the LLM routes).
 * Maps missing (no agent): 503 with Retry-After, whatever the route's auth
 * (keys live in the pinned lt_apikey; the route cannot tell who calls).
 * The charge is final on admission: a request that then fails upstream still
 * counts, as nginx's limit_req counts it.
 */
#ifndef GW_API_ROUTE_H
#define GW_API_ROUTE_H

#include <stdint.h>
#include "answer.h"
#include "gw_config.h"
#include "identity.h"

/* The ops of a route with "auth" (gw_config.c sets them). */
extern const struct gw_route_ops gw_api_ops;

enum gw_api_kind {
	GW_API_FORWARD = 0, /* forward; a.head holds the RateLimit lines (if key_limit) */
	GW_API_DENY, /* identity refused: deny (401, 403, 400, 503) */
	GW_API_LIMIT, /* admission refused: a (429, 400, 403, 503, 500) */
};

struct gw_api_verdict {
	enum gw_api_kind kind;
	unsigned status; /* 0 when forwarded */
	struct lt_gw_tenant t; /* the caller, once identified */
	struct lt_gw_deny deny;
	struct lt_answer a;
};

/*
 * The decision on one request, without the proxy (unit-testable): identity
 * per auth, then (key_limit) one request on r/<tier>/<key>. authorization,
 * api_key, org: raw header values or NULL. rnd: jitter for Retry-After.
 * Returns v->status.
 */
unsigned gw_api_decide(struct lt_gw_identity *id, struct lt_admitter *adm, enum gw_auth auth,
		       int key_limit, const char *authorization, const char *api_key,
		       const char *org, int64_t now_unix, uint64_t now_ns, unsigned rnd,
		       struct gw_api_verdict *v);

#endif
