// SPDX-License-Identifier: MIT
/* api_route.c - auth and the per-API-key request rate of general API routes (see api_route.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "admit.h"
#include "api_route.h"
#include "llm_route.h"
#include "log.h"
#include "tenant.h"

static unsigned deny(struct gw_api_verdict *v, unsigned status, const char *type, const char *field,
		     const char *detail)
{
	v->kind = GW_API_DENY;
	v->status = status;
	v->deny.status = status;
	v->deny.type = type;
	v->deny.title = status == 401 ? "Unauthorized" : "Internal Server Error";
	v->deny.field = field;
	snprintf(v->deny.detail, sizeof(v->deny.detail), "%s", detail);
	return status;
}

unsigned gw_api_decide(struct lt_gw_identity *id, struct lt_admitter *adm, enum gw_auth auth,
		       int key_limit, const char *authorization, const char *api_key,
		       const char *org, int64_t now_unix, uint64_t now_ns, unsigned rnd,
		       struct gw_api_verdict *v)
{
	char bkey[LT_BUCKET_KEY_LEN];
	struct lt_admit_limit lim;
	struct lt_reservation res;
	struct lt_admit_result ar;
	int by_key = api_key || (authorization && !strncasecmp(authorization, "Bearer lk_", 10));

	v->kind = GW_API_FORWARD;
	v->status = 0;
	v->a.head_len = v->a.body_len = 0;
	v->a.status = 0;
	/* the route's kind of credential, named in the refusal (identity.c would say less) */
	if (auth == GW_AUTH_API_KEY && !by_key)
		return deny(v, 401, "unauthorized", "X-API-Key",
			    authorization ? "this route takes an API key, not a JWT" :
					    "this route needs an API key: send 'X-API-Key: <key>'");
	if (auth == GW_AUTH_JWT && by_key)
		return deny(v, 401, "unauthorized", "Authorization",
			    "this route takes a JWT, not an API key");
	if (lt_gw_identify(id, authorization, api_key, org, now_unix, &v->t, &v->deny)) {
		v->kind = GW_API_DENY;
		v->status = v->deny.status;
		return v->status;
	}
	if (!key_limit)
		return 0;
	/* auth api_key (gw_config.c insists): the tenant has a key */
	if (lt_bucket_key(bkey, sizeof(bkey), LT_BKEY_KEYREQ, v->t.tier, NULL, v->t.key_id))
		return deny(v, 500, "internal", NULL, "the key's bucket name could not be built");
	/* the policy name the LLM routes give this bucket: one budget, one name */
	lim = (struct lt_admit_limit){ bkey, "key-requests", 1, LT_UNIT_REQUESTS };
	if (lt_admit(adm, &lim, 1, now_ns, &res, &ar) == LT_ADM_OK) {
		/* requests are charged for good: nothing to settle but the bookkeeping */
		lt_admit_settle(adm, &res, 0, now_ns, NULL);
		lt_answer_ok(&v->a, LT_ROUTE_GENERIC, &lim, 1, &ar);
		return 0;
	}
	if (ar.verdict == LT_ADM_UNAVAILABLE || ar.verdict == LT_ADM_BAD_REQUEST)
		lt_log_rl(LT_LOG_WARN, "gateway: admission %d for %s: %s", ar.verdict, bkey,
			  ar.err);
	v->kind = GW_API_LIMIT;
	v->status = lt_answer_denied(&v->a, LT_ROUTE_GENERIC, &lim, 1, &ar, NULL, rnd);
	return v->status;
}

/* A request field as a C string in buf, or NULL when absent or longer than buf. */
static const char *hdr(struct gw_exchange *x, const char *lower, char *buf, size_t len)
{
	size_t n;
	const char *p = gw_req_header(x, lower, &n);

	if (!p || n >= len)
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static int api_head(struct gw_exchange *x)
{
	const struct gw_route *r = gw_route(x);
	char auth[LT_GW_AUTHORIZATION_MAX], key[LT_GW_API_KEY_MAX], org[LT_GW_ORG_ID_MAX];
	struct lt_gw_identity *id;
	struct lt_admitter *adm;
	struct gw_api_verdict v;
	struct timespec ts;

	if (gw_llm_shared(&id, &adm)) {
		gw_add_response_header(x, "Retry-After", "1");
		return gw_answer_problem(x, 503, "limits-unavailable", "Service Unavailable",
					 "the shared limit maps are unavailable; try again later");
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	gw_api_decide(id, adm, r->auth, r->key_limit, hdr(x, "authorization", auth, sizeof(auth)),
		      hdr(x, "x-api-key", key, sizeof(key)), hdr(x, "x-org-id", org, sizeof(org)),
		      time(NULL), (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec,
		      (unsigned)ts.tv_nsec, &v);
	switch (v.kind) {
	case GW_API_FORWARD:
		return gw_add_response_lines(x, v.a.head, v.a.head_len) ?: GW_CONTINUE;
	case GW_API_DENY:
		if (v.status == 401)
			gw_add_response_header(x, "WWW-Authenticate", "Bearer");
		return gw_answer_problem(x, v.status, v.deny.type, v.deny.title, v.deny.detail);
	default:
		/* the head holds the Content-Type line: one block, no copy per field */
		return gw_add_response_lines(x, v.a.head, v.a.head_len) ?:
			       gw_answer(x, v.status, NULL, v.a.body, v.a.body_len);
	}
}

const struct gw_route_ops gw_api_ops = {
	.name = "api",
	.on_request_head = api_head,
};
