// SPDX-License-Identifier: MIT
/*
 * test_consume_body.c - the consume API's 200 and 429 bodies written without
 * jansson (agent/consume_body.c) are byte for byte what the jansson path
 * (lt_view_json, lt_problem_json, json_dumps JSON_COMPACT, as lib/httpd.c
 * sends it) gives, over views drawn at random and at the edges (saturated
 * ms, unlimited, rates of every unit, huge counts); where they could differ
 * (a string to escape, a rate per second that is not whole) the fast builder
 * declines, so the caller takes the jansson path. The fast path must also be
 * taken for every view with a whole rate per second: a builder that always
 * declined would pass the byte checks and defeat its purpose.
 */
#include <jansson.h>
#include "consume_body.h"
#include "lt_test.h"
#include "problem.h"

static __u64 lt_rng_state = 0x9e3779b97f4a7c15ULL;

static __u64 lt_rng(void)
{
	__u64 x = lt_rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return lt_rng_state = x;
}

/* a value of n bits at most, sometimes an edge */
static __u64 lt_val(void)
{
	static const __u64 edge[] = {
		0, 1, 999999, 1000000, 1000001, 1ULL << 40, ~0ULL - 1, ~0ULL
	};
	__u64 r = lt_rng();

	if (r % 8 == 0)
		return edge[(r >> 8) % (sizeof(edge) / sizeof(edge[0]))];
	return lt_rng() >> (r % 64);
}

static struct lt_view lt_view_rand(void)
{
	static const __u64 period[] = { 1000000000ULL,	   60000000000ULL, 3600000000000ULL,
					86400000000000ULL, 250000000ULL,   3ULL };
	struct lt_view v = { 0 };

	v.capacity = lt_val() & ((1ULL << 40) - 1);
	v.remaining = lt_rng() % 4 ? v.capacity / ((lt_rng() % 7) + 1) : lt_val() >> 24;
	v.retry_after_ns = lt_val();
	v.full_in_ns = lt_val();
	v.leak_tokens = 1 + (lt_rng() % 3 ? lt_rng() % 100000 : lt_val() >> 30);
	v.leak_period_ns = period[lt_rng() % (sizeof(period) / sizeof(period[0]))];
	v.unlimited = lt_rng() % 16 == 0;
	return v;
}

/* a view the fast builders must take: its rate per second is whole (jansson prints it as N.0) */
static int lt_fast_expected(const struct lt_view *v)
{
	double per_s =
		v->unlimited ? 0.0 : (double)v->leak_tokens * 1e9 / (double)v->leak_period_ns;

	return per_s < 1e15 && per_s == (double)(long long)per_s;
}

static char *lt_dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return s;
}

static char *lt_ok_ref(const struct lt_view *v, const char *user, const char *org,
		       const char *provider, const char *tier, const char *key_id,
		       long long charged, long long key_remaining)
{
	json_t *out = lt_view_json(v);

	json_object_set_new(out, "userId", json_string(user));
	json_object_set_new(out, "orgId", org ? json_string(org) : json_null());
	json_object_set_new(out, "provider", json_string(provider));
	json_object_set_new(out, "tier", json_string(tier));
	json_object_set_new(out, "charged", json_integer((json_int_t)charged));
	if (key_id)
		json_object_set_new(out, "apiKey",
				    json_pack("{s:s, s:I}", "id", key_id, "remaining",
					      (json_int_t)key_remaining));
	return lt_dump(out);
}

static char *lt_deny_ref(const struct lt_view *v)
{
	json_t *out = lt_problem_json(429, "quota-exceeded", "Too Many Requests", "/tokens",
				      "the bucket cannot take these tokens now");

	json_object_set_new(out, "retryAfterMs", lt_ms_json(v->retry_after_ns));
	json_object_set_new(out, "quota", lt_view_json(v));
	return lt_dump(out);
}

static int lt_same(const char *fast, const char *ref)
{
	if (!ref || strcmp(fast, ref)) {
		printf("#   fast: %s\n#   ref:  %s\n", fast, ref ? ref : "(null)");
		return 0;
	}
	return 1;
}

static void ok_body_is_jansson_bytes(void)
{
	static const char *users[] = { "00000000-0000-0000-0000-000000000001", "u", "" };
	static const char *orgs[] = { NULL, "00000000-0000-0000-0000-0000000000aa", "acme" };
	static const char *keys[] = { NULL, "k_0123456789abcdef", "" };
	unsigned i, fast_n = 0, bad = 0, missed = 0;

	for (i = 0; i < 20000 && bad < 3; i++) {
		struct lt_view v = lt_view_rand();
		const char *u = users[i % 3], *o = orgs[(i / 3) % 3], *k = keys[(i / 9) % 3];
		long long charged = (long long)(lt_val() >> 1), krem = (long long)(lt_val() >> 1);
		char *fast = lt_consume_ok_body(&v, u, o, "openai", o ? "org" : "USER", k, charged,
						krem);
		char *ref;

		missed += !fast && lt_fast_expected(&v);
		if (!fast)
			continue;
		fast_n++;
		ref = lt_ok_ref(&v, u, o, "openai", o ? "org" : "USER", k, charged, krem);
		bad += !lt_same(fast, ref);
		free(fast);
		free(ref);
	}
	CHECK_EQ(bad, 0);
	printf("# %u of %u bodies on the fast path\n", fast_n, i);
	CHECK_EQ(missed, 0);
	CHECK(fast_n > i / 4);
}

static void deny_body_is_jansson_bytes(void)
{
	unsigned i, fast_n = 0, bad = 0, missed = 0;

	for (i = 0; i < 20000 && bad < 3; i++) {
		struct lt_view v = lt_view_rand();
		char *fast = lt_consume_deny_body(&v), *ref;

		missed += !fast && lt_fast_expected(&v);
		if (!fast)
			continue;
		fast_n++;
		ref = lt_deny_ref(&v);
		bad += !lt_same(fast, ref);
		free(fast);
		free(ref);
	}
	CHECK_EQ(bad, 0);
	printf("# %u of %u bodies on the fast path\n", fast_n, i);
	CHECK_EQ(missed, 0);
	CHECK(fast_n > i / 4);
}

/* what only jansson writes alike: the builder declines, never writes other bytes */
static void declines_what_needs_jansson(void)
{
	static const char *hostile[] = { "a\"b", "a\\b", "a\nb", "\x01", "tab\there" };
	struct lt_view v = { .capacity = 100,
			     .remaining = 5,
			     .leak_tokens = 1,
			     .leak_period_ns = 1000000000ULL,
			     .full_in_ns = 95000000000ULL };
	unsigned i;

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		CHECK(!lt_consume_ok_body(&v, hostile[i], NULL, "openai", "USER", NULL, 1, 0));
		CHECK(!lt_consume_ok_body(&v, "u", hostile[i], "openai", "org", NULL, 1, 0));
		CHECK(!lt_consume_ok_body(&v, "u", NULL, hostile[i], "USER", NULL, 1, 0));
		CHECK(!lt_consume_ok_body(&v, "u", NULL, "openai", hostile[i], NULL, 1, 0));
		CHECK(!lt_consume_ok_body(&v, "u", NULL, "openai", "USER", hostile[i], 1, 0));
	}
	/* 1 token per 3 ns: 333333333.33/s, a real jansson prints with its digits */
	v.leak_period_ns = 3;
	CHECK(!lt_consume_ok_body(&v, "u", NULL, "openai", "USER", NULL, 1, 0));
	CHECK(!lt_consume_deny_body(&v));
	/* UTF-8 needs no escape in jansson's default output: the fast path keeps it */
	v.leak_period_ns = 1000000000ULL;
	{
		char *fast =
			lt_consume_ok_body(&v, "u", "\xc3\xa9quipe", "openai", "org", NULL, 1, 0);
		char *ref = lt_ok_ref(&v, "u", "\xc3\xa9quipe", "openai", "org", NULL, 1, 0);

		CHECK(fast && lt_same(fast, ref));
		free(fast);
		free(ref);
	}
}

int main(void)
{
	RUN(ok_body_is_jansson_bytes);
	RUN(deny_body_is_jansson_bytes);
	RUN(declines_what_needs_jansson);
	return lt_t_done();
}
