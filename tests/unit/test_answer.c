// SPDX-License-Identifier: MIT
/*
 * test_answer.c - gateway/answer.c: the 429 describes the limit that denied
 * (never one that passed), Retry-After is never below the true wait and
 * carries a little jitter, x-should-retry past 60 s, OpenAI's header names,
 * duration format and error shape, problem+json with the violated policies,
 * 400 (never 429) for a reservation that can never fit, the success fields
 * of the tightest limit; and random inputs never break a header line or the
 * JSON.
 */
#include <stdlib.h>
#include <jansson.h>
#include "lt_test.h"
#include "answer.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC)

static struct lt_admit_limit L[4] = {
	{ "r/USER/lk_1", "key-requests", 1, LT_UNIT_REQUESTS },
	{ "k/lk_1", "key-tokens", 50, LT_UNIT_TOKENS },
	{ "o/openai/org", "org-tokens", 50, LT_UNIT_TOKENS },
	{ "p/openai", "provider-pool", 50, LT_UNIT_TOKENS },
};

/* views[i] of a bucket (cap, tokens per period) at level `level`, decided at cost. */
static void view(struct lt_admit_result *r, int i, __u64 cap, __u64 tok, __u64 per, __u64 level,
		 __u64 cost)
{
	struct lt_rate rt;
	__u64 frac, tat;
	int v;

	CHECK_EQ(lt_rate_init(&rt, cap, tok, per), 0);
	tat = lt_scaled(&rt, T0, &frac) + (level << rt.unit_shift);
	v = cost > cap ? LT_TOO_BIG : lt_retry_after_ns(tat, T0, &rt, cost) ? LT_DENY : LT_ADMIT;
	lt_view_fill(&rt, tat, T0, cost, v, &r->views[i]);
	r->decided[i] = 1;
}

static void denied(struct lt_admit_result *r, int which, int verdict)
{
	r->verdict = verdict;
	r->which = which;
	r->view = r->views[which];
	r->retry_after_ns = r->view.retry_after_ns;
}

static int has(const struct lt_answer *a, const char *s)
{
	return strstr(a->head, s) != NULL;
}

static json_t *body_json(const struct lt_answer *a)
{
	json_error_t e;
	json_t *j = json_loadb(a->body, a->body_len, 0, &e);

	if (!j)
		printf("# bad JSON (%s): %s\n", e.text, a->body);
	return j;
}

static void openai_duration_format(void)
{
	static const struct {
		__u64 ns;
		const char *s;
	} t[] = {
		{ 0, "0s" },
		{ 1, "1ms" },
		{ 12 * 1000000ULL, "12ms" },
		{ 999000001ULL, "1s" }, /* rounded up, never early */
		{ SEC, "1s" },
		{ 51189 * 1000000ULL, "51.189s" },
		{ 1250 * 1000000ULL, "1.25s" },
		{ 360 * SEC, "6m0s" },
		{ 3723 * SEC + SEC / 2, "1h2m3.5s" },
		{ 3600 * SEC, "1h0m0s" },
	};
	char out[48];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		lt_openai_duration(t[i].ns, out, sizeof(out));
		if (strcmp(out, t[i].s))
			printf("# %llu ns: %s, want %s\n", (unsigned long long)t[i].ns, out,
			       t[i].s);
		CHECK(!strcmp(out, t[i].s));
	}
	CHECK(lt_openai_duration(~0ULL, out, sizeof(out)) > 0);
	CHECK(!strcmp(out, "5124095h34m33.71s"));
	CHECK_EQ(lt_openai_duration(SEC, out, 2), 1); /* cut, terminated */
	CHECK(!strcmp(out, "1"));
}

static void the_429_describes_the_limit_that_denied(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	json_t *j, *e;

	view(&r, 0, 10, 1, SEC, 3, 1); /* passed */
	view(&r, 1, 1000, 10, SEC, 200, 50); /* passed */
	view(&r, 2, 100, 10, SEC, 80, 50); /* denied: 30 tokens at 10/s = 3 s */
	denied(&r, 2, LT_ADM_LIMITED);
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, "gpt-4o", 0), 429);
	CHECK_EQ(a.status, 429);
	CHECK(!a.truncated);
	CHECK(has(&a, "Retry-After: 3\r\n"));
	CHECK(has(&a, "retry-after-ms: 3000\r\n"));
	CHECK(has(&a, "RateLimit-Policy: \"org-tokens\";q=100;w=10\r\n"));
	CHECK(has(&a, "RateLimit: \"org-tokens\";r=0;t=3\r\n"));
	CHECK(has(&a, "x-ratelimit-limit-tokens: 100\r\n"));
	CHECK(has(&a, "x-ratelimit-remaining-tokens: 20\r\n"));
	CHECK(has(&a, "x-ratelimit-reset-tokens: 8s\r\n")); /* full again in 80/10 s */
	CHECK(has(&a, "Content-Type: application/json\r\n"));
	/* never a limit that passed */
	CHECK(!has(&a, "requests"));
	CHECK(!has(&a, "key-tokens"));
	CHECK(!has(&a, "x-should-retry"));
	CHECK_EQ(strlen(a.head), a.head_len);
	j = body_json(&a);
	e = json_object_get(j, "error");
	CHECK(json_is_object(e));
	CHECK(!strcmp(json_string_value(json_object_get(e, "type")), "tokens"));
	CHECK(!strcmp(json_string_value(json_object_get(e, "code")), "rate_limit_exceeded"));
	CHECK(json_is_null(json_object_get(e, "param")));
	CHECK(strstr(json_string_value(json_object_get(e, "message")), "org-tokens") != NULL);
	CHECK(strstr(json_string_value(json_object_get(e, "message")), "try again in 3s") != NULL);
	CHECK(strstr(json_string_value(json_object_get(e, "message")), "gpt-4o") != NULL);
	json_decref(j);

	/* the request limit denied: its family only */
	memset(&r, 0, sizeof(r));
	view(&r, 0, 10, 1, SEC, 10, 1);
	denied(&r, 0, LT_ADM_LIMITED);
	lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, 0);
	CHECK(has(&a, "x-ratelimit-limit-requests: 10\r\n"));
	CHECK(has(&a, "x-ratelimit-remaining-requests: 0\r\n"));
	CHECK(!has(&a, "-tokens"));
	j = body_json(&a);
	CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
		      "requests"));
	json_decref(j);
}

static void retry_after_is_never_early_and_jittered(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	unsigned long long ra, ms, first = 0;
	__u64 wait_ms;
	unsigned rnd;
	int differ = 0;
	const char *p;

	view(&r, 2, 100, 7, SEC, 100, 50); /* 50 tokens at 7/s: 7.142857143 s */
	denied(&r, 2, LT_ADM_LIMITED);
	wait_ms = (r.retry_after_ns + 999999) / 1000000;
	for (rnd = 0; rnd < 3000; rnd += 7) {
		lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, rnd * 2654435761U);
		p = strstr(a.head, "Retry-After: ");
		CHECK(p && sscanf(p, "Retry-After: %llu", &ra) == 1);
		p = strstr(a.head, "retry-after-ms: ");
		CHECK(p && sscanf(p, "retry-after-ms: %llu", &ms) == 1);
		CHECK(ms >= wait_ms && ms <= wait_ms + wait_ms / 10);
		CHECK(ra * 1000 >= ms && (ra - 1) * 1000 < ms);
		if (!first)
			first = ms;
		differ |= ms != first;
	}
	CHECK(differ);
}

static void long_waits_say_do_not_retry(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	char want[64];

	view(&r, 2, 100, 1, SEC, 100, 60); /* exactly 60 s */
	denied(&r, 2, LT_ADM_LIMITED);
	lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, 0);
	CHECK(!has(&a, "x-should-retry"));
	view(&r, 2, 100, 1, SEC, 100, 61);
	denied(&r, 2, LT_ADM_LIMITED);
	lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, 0);
	CHECK(has(&a, "x-should-retry: false\r\n"));
	CHECK(has(&a, "Retry-After: 61\r\n"));
	/* a wait beyond 2^64 ns is still a (huge) wait, never a small one */
	view(&r, 2, 1000000, 1, 365 * 24 * 3600 * SEC, 1000000, 1000000);
	denied(&r, 2, LT_ADM_LIMITED);
	lt_answer_denied(&a, LT_ROUTE_GENERIC, L, 4, &r, NULL, 0);
	/* about 10^6 years, exact to the second where the ns form saturates */
	CHECK_EQ(r.retry_after_ns, ~0ULL);
	CHECK(r.view.retry_after_s > 31535000000000ULL);
	snprintf(want, sizeof(want), "Retry-After: %llu\r\n",
		 (unsigned long long)r.view.retry_after_s);
	CHECK(has(&a, want));
	CHECK(has(&a, "x-should-retry: false\r\n"));
}

static void problem_json_lists_the_violated_policies(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	json_t *j, *vp;

	view(&r, 0, 10, 1, SEC, 10, 1); /* denied too, shorter */
	view(&r, 1, 1000, 10, SEC, 0, 50); /* passes */
	view(&r, 2, 100, 1, SEC, 100, 50); /* the longest wait */
	denied(&r, 2, LT_ADM_LIMITED);
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_GENERIC, L, 3, &r, NULL, 0), 429);
	CHECK(has(&a, "Content-Type: application/problem+json\r\n"));
	CHECK(!has(&a, "x-ratelimit"));
	j = body_json(&a);
	CHECK_EQ(json_integer_value(json_object_get(j, "status")), 429);
	CHECK(!strcmp(json_string_value(json_object_get(j, "type")),
		      "https://iana.org/assignments/http-problem-types#quota-exceeded"));
	vp = json_object_get(j, "violated-policies");
	CHECK_EQ(json_array_size(vp), 2);
	CHECK(!strcmp(json_string_value(json_array_get(vp, 0)), "org-tokens"));
	CHECK(!strcmp(json_string_value(json_array_get(vp, 1)), "key-requests"));
	json_decref(j);
}

static void never_fits_is_400_not_429(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	json_t *j;

	view(&r, 2, 100, 10, SEC, 0, 500);
	denied(&r, 2, LT_ADM_NEVER_FITS);
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, 0), 400);
	CHECK(!has(&a, "Retry-After"));
	CHECK(!has(&a, "x-should-retry"));
	CHECK(has(&a, "RateLimit-Policy: \"org-tokens\";q=100;w=10\r\n"));
	j = body_json(&a);
	CHECK(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
		     "exceeds the budget") != NULL);
	CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
		      "invalid_request_error"));
	json_decref(j);
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_GENERIC, L, 4, &r, NULL, 0), 400);
	j = body_json(&a);
	CHECK_EQ(json_integer_value(json_object_get(j, "status")), 400);
	CHECK(strstr(json_string_value(json_object_get(j, "detail")), "exceeds the budget"));
	json_decref(j);
}

static void unavailable_and_no_quota(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;
	json_t *j;

	r.verdict = LT_ADM_UNAVAILABLE;
	r.which = 1;
	r.retry_after_ns = SEC;
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_OPENAI, L, 4, &r, NULL, 0), 503);
	CHECK(has(&a, "Retry-After: 1\r\n"));
	j = body_json(&a);
	CHECK(j != NULL);
	json_decref(j);
	r.verdict = LT_ADM_NO_QUOTA;
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_GENERIC, L, 4, &r, NULL, 0), 403);
	CHECK(!has(&a, "Retry-After"));
	j = body_json(&a);
	CHECK_EQ(json_integer_value(json_object_get(j, "status")), 403);
	json_decref(j);
	r.verdict = LT_ADM_BAD_REQUEST;
	r.which = -1;
	CHECK_EQ(lt_answer_denied(&a, LT_ROUTE_GENERIC, L, 4, &r, NULL, 0), 500);
}

static void success_carries_the_tightest_limit(void)
{
	struct lt_admit_result r = { 0 };
	struct lt_answer a;

	view(&r, 0, 10, 1, SEC, 5, 1); /* 5/10 left */
	view(&r, 1, 1000, 10, SEC, 100, 0); /* 900/1000 */
	view(&r, 2, 100, 10, SEC, 70, 0); /* 30/100: the tightest */
	view(&r, 3, 100000, 1000, SEC, 0, 0);
	r.verdict = LT_ADM_OK;
	r.which = 2;
	r.view = r.views[2];
	lt_answer_ok(&a, LT_ROUTE_OPENAI, L, 4, &r);
	CHECK_EQ(a.status, 0);
	CHECK_EQ(a.body_len, 0);
	CHECK(has(&a, "RateLimit-Policy: \"org-tokens\";q=100;w=10\r\n"));
	CHECK(has(&a, "RateLimit: \"org-tokens\";r=30;t=7\r\n"));
	CHECK(has(&a, "x-ratelimit-remaining-requests: 5\r\n"));
	CHECK(has(&a, "x-ratelimit-remaining-tokens: 30\r\n"));
	CHECK(has(&a, "x-ratelimit-reset-tokens: 7s\r\n"));
	lt_answer_ok(&a, LT_ROUTE_GENERIC, L, 4, &r);
	CHECK(!has(&a, "x-ratelimit"));
}

/* Random views, names and models: bounded output, one "Name: value" per line, valid JSON. */
static void random_inputs_never_break_the_answer(void)
{
	static const char *names[] = { "a\"b",
				       "x\r\nInjected: 1",
				       "",
				       "\xff\xfe",
				       "ok-name",
				       "0123456789012345678901234567890123456789012345678901234567"
				       "890123456789012345678901234567890123456789" };
	struct lt_admit_limit lim[4];
	struct lt_admit_result r;
	struct lt_answer a;
	unsigned seed = 42;
	char model[64];
	int it, i, bad = 0;

	for (it = 0; it < 3000; it++) {
		memset(&r, 0, sizeof(r));
		for (i = 0; i < 4; i++) {
			lim[i] = L[i];
			lim[i].policy = names[rand_r(&seed) % 6];
			lim[i].cost = ((__u64)rand_r(&seed) << 33) ^ (__u64)rand_r(&seed);
			r.decided[i] = rand_r(&seed) & 1;
			r.views[i].capacity = ((__u64)rand_r(&seed) << 40) ^ (__u64)rand_r(&seed);
			r.views[i].remaining = (__u64)rand_r(&seed) << (rand_r(&seed) % 34);
			r.views[i].retry_after_ns =
				rand_r(&seed) % 3 ? (__u64)rand_r(&seed) << (rand_r(&seed) % 34) :
						    ~0ULL;
			r.views[i].retry_after_s = (__u64)rand_r(&seed) << (rand_r(&seed) % 34);
			r.views[i].full_in_ns = ~0ULL >> (rand_r(&seed) % 64);
			r.views[i].full_in_s = (__u64)rand_r(&seed) << (rand_r(&seed) % 34);
			r.views[i].leak_tokens = ~0ULL >> (rand_r(&seed) % 64);
			r.views[i].leak_period_ns = ~0ULL >> (rand_r(&seed) % 64);
			r.views[i].unlimited = !(rand_r(&seed) % 5);
		}
		for (i = 0; i < (int)sizeof(model) - 1; i++)
			model[i] = (char)(1 + rand_r(&seed) % 255);
		model[rand_r(&seed) % sizeof(model)] = '\0';
		model[sizeof(model) - 1] = '\0';
		r.verdict = rand_r(&seed) % 6;
		r.which = (int)(rand_r(&seed) % 6) - 1;
		if (r.which >= 0 && r.which < 4)
			r.view = r.views[r.which];
		r.retry_after_ns = r.view.retry_after_ns;
		if (r.verdict == LT_ADM_OK)
			lt_answer_ok(&a, (enum lt_answer_route)(it & 1), lim, 4, &r);
		else
			lt_answer_denied(&a, (enum lt_answer_route)(it & 1), lim, 4, &r, model,
					 (unsigned)rand_r(&seed));
		bad |= a.head_len >= sizeof(a.head) || a.body_len >= sizeof(a.body) ||
		       strlen(a.head) != a.head_len || strlen(a.body) != a.body_len;
		/* every line is "Name: value" with a name of token characters */
		{
			const char *p = a.head, *eol;

			while (*p) {
				eol = strstr(p, "\r\n");
				if (!eol || !memchr(p, ':', (size_t)(eol - p)) ||
				    memchr(p, '\n', (size_t)(eol - p)) ||
				    strcspn(p, ": \"") !=
					    (size_t)((char *)memchr(p, ':', (size_t)(eol - p)) -
						     p)) {
					bad = 1;
					break;
				}
				p = eol + 2;
			}
		}
		if (a.body_len) {
			json_t *j = body_json(&a);

			bad |= !j;
			json_decref(j);
		}
		if (r.verdict == LT_ADM_NEVER_FITS && r.which >= 0 && r.which < 4)
			bad |= a.status != 400;
	}
	CHECK(!bad);
}

int main(void)
{
	RUN(openai_duration_format);
	RUN(the_429_describes_the_limit_that_denied);
	RUN(retry_after_is_never_early_and_jittered);
	RUN(long_waits_say_do_not_retry);
	RUN(problem_json_lists_the_violated_policies);
	RUN(never_fits_is_400_not_429);
	RUN(unavailable_and_no_quota);
	RUN(success_carries_the_tightest_limit);
	RUN(random_inputs_never_break_the_answer);
	return lt_t_done();
}
