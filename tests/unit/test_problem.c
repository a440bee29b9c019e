// SPDX-License-Identifier: MIT
/*
 * test_problem.c - liblt's problem+json bodies and rate-limit fields
 * (lib/problem.c), without an HTTP server: the field names and order a
 * client parses, the numbers of a refused and an admitted request, a full
 * header list that refuses rather than overflows.
 */
#include <errno.h>
#include "lt_test.h"
#include "problem.h"
#include "ratelimit.h"

static const char *hdr(const struct lt_hdrs *h, const char *name)
{
	int i;

	for (i = 0; h->kv[i]; i += 2)
		if (!strcmp(h->kv[i], name))
			return h->kv[i + 1];
	return NULL;
}

static void problem_fields_rfc9457(void)
{
	json_t *o = lt_problem_json(403, "forbidden", "Forbidden", "/userId", "not yours");
	char *s;

	CHECK(o);
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(s &&
	      !strcmp(s, "{\"detail\":\"not yours\",\"field\":\"/userId\",\"status\":403,"
			 "\"title\":\"Forbidden\",\"type\":\"" LT_PROBLEM_BASE "forbidden\"}"));
	free(s);
	json_decref(o);
	/* no field: the member is absent, not null */
	o = lt_problem_json(404, "not-found", "Not found", NULL, "nothing");
	CHECK(o && !json_object_get(o, "field"));
	json_decref(o);
	/* the fallback body is JSON a client can parse */
	o = json_loads(lt_problem_internal, 0, NULL);
	CHECK(o && json_integer_value(json_object_get(o, "status")) == 500);
	json_decref(o);
}

static void ratelimit_refused_says_when(void)
{
	struct lt_rl_view v = { .capacity = 100,
				.window_s = 10,
				.remaining = 40,
				.full_in_s = 6,
				.retry_after_ns = 2500000000ULL };
	struct lt_hdrs h;

	lt_hdrs_init(&h);
	CHECK(!lt_rl_headers(&h, "free", &v, 1));
	/* order as sent before the move: Retry-After first */
	CHECK(h.kv[0] && !strcmp(h.kv[0], "Retry-After") && !strcmp(h.kv[1], "3"));
	CHECK(h.kv[2] && !strcmp(h.kv[2], "RateLimit-Policy"));
	CHECK(!strcmp(hdr(&h, "RateLimit-Policy"), "\"free\";q=100;w=10"));
	CHECK(!strcmp(hdr(&h, "RateLimit"), "\"free\";r=0;t=3"));
	CHECK(h.kv[6] == NULL);
}

static void ratelimit_admitted_no_retry_after(void)
{
	struct lt_rl_view v = { .capacity = 100, .window_s = 10, .remaining = 40, .full_in_s = 6 };
	struct lt_hdrs h;

	lt_hdrs_init(&h);
	CHECK(!lt_rl_headers(&h, "org", &v, 0));
	CHECK(!hdr(&h, "Retry-After"));
	CHECK(!strcmp(hdr(&h, "RateLimit"), "\"org\";r=40;t=6"));
	/* saturated at the structured-field maximum, never wrapped */
	v.capacity = ~0ULL;
	v.window_s = ~0ULL;
	lt_hdrs_init(&h);
	CHECK(!lt_rl_headers(&h, "org", &v, 0));
	CHECK(!strcmp(hdr(&h, "RateLimit-Policy"), "\"org\";q=999999999999999;w=999999999999999"));
}

static void hdrs_full_refuses(void)
{
	char big[700];
	struct lt_hdrs h;
	int i;

	lt_hdrs_init(&h);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(lt_hdrs_add(&h, "X-Big", big), (unsigned long long)-E2BIG);
	CHECK_EQ(h.n, 0);
	for (i = 0; i < LT_HDRS_MAX; i++)
		CHECK(!lt_hdrs_add(&h, "X-A", "1"));
	CHECK_EQ(lt_hdrs_add(&h, "X-A", "1"), (unsigned long long)-E2BIG);
	CHECK(h.kv[2 * LT_HDRS_MAX] == NULL);
}

int main(void)
{
	RUN(problem_fields_rfc9457);
	RUN(ratelimit_refused_says_when);
	RUN(ratelimit_admitted_no_retry_after);
	RUN(hdrs_full_refuses);
	return lt_t_done();
}
