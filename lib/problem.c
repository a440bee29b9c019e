// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "problem.h"
#include "ratelimit.h"
#include "utf8.h"

const char lt_problem_internal[] = "{\"type\":\"" LT_PROBLEM_BASE "internal\","
				   "\"title\":\"Internal error\",\"status\":500,"
				   "\"detail\":\"the response could not be built\"}";

json_t *lt_problem_json(unsigned status, const char *type, const char *title, const char *field,
			const char *detail)
{
	char t[160], ti[256], f[256], d[1024];

	/* strict UTF-8, never cut inside a character: see problem.h */
	snprintf(t, sizeof(t), LT_PROBLEM_BASE "%s", type);
	lt_utf8_sanitize(title, ti, sizeof(ti));
	lt_utf8_sanitize(detail, d, sizeof(d));
	if (field)
		lt_utf8_sanitize(field, f, sizeof(f));
	return json_pack("{s:s, s:s, s:i, s:s, s:s*}", "type", t, "title", ti, "status",
			 (int)status, "detail", d, "field", field ? f : NULL);
}

void lt_hdrs_init(struct lt_hdrs *h)
{
	h->n = 0;
	h->used = 0;
	h->kv[0] = NULL;
}

int lt_hdrs_add(struct lt_hdrs *h, const char *name, const char *value)
{
	size_t len = strlen(value) + 1;

	if (h->n >= LT_HDRS_MAX || len > sizeof(h->buf) - h->used)
		return -E2BIG;
	memcpy(h->buf + h->used, value, len);
	h->kv[2 * h->n] = name;
	h->kv[2 * h->n + 1] = h->buf + h->used;
	h->used += len;
	h->n++;
	h->kv[2 * h->n] = NULL;
	return 0;
}

/* The wait in seconds: exact, at least 1, at most LT_SF_INT_MAX. */
static uint64_t lt_rl_wait_s(const struct lt_rl_view *v)
{
	uint64_t s = v->retry_after_s ? v->retry_after_s : lt_rl_ceil_s(v->retry_after_ns);

	return s > LT_SF_INT_MAX ? LT_SF_INT_MAX : s;
}

int lt_rl_headers(struct lt_hdrs *h, const char *policy, const struct lt_rl_view *v, int refused)
{
	char pol[160], cur[160], ra[32];
	int ret = 0;

	lt_rl_fields(policy, v->capacity, v->window_s, refused ? 0 : v->remaining,
		     refused ? lt_rl_wait_s(v) : v->full_in_s, pol, sizeof(pol), cur, sizeof(cur));
	if (refused) {
		snprintf(ra, sizeof(ra), "%llu", (unsigned long long)lt_rl_wait_s(v));
		ret = lt_hdrs_add(h, "Retry-After", ra);
	}
	if (!ret)
		ret = lt_hdrs_add(h, "RateLimit-Policy", pol);
	if (!ret)
		ret = lt_hdrs_add(h, "RateLimit", cur);
	return ret;
}
