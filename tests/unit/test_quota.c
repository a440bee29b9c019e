// SPDX-License-Identifier: MIT
/*
 * test_quota.c - the quota engine on plain memory standing in for the mmapped
 * lt_slots/lt_rates/lt_usage, with a real SQLite store: limit fallbacks, live
 * limit changes that keep the level, refunds, and a restart that resumes.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include "lt_test.h"
#include "quota.h"
#include "units.h"

#define SEC 1000000000ULL

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static char err[256], dbpath[64];

static struct lt_quota *open_q(struct lt_store *st)
{
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	struct lt_quota *q = NULL;

	CHECK_EQ(lt_store_open(st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, st, &m, err, sizeof(err)), 0);
	return q;
}

static void *known_elsewhere(void *q)
{
	return (void *)(long)lt_quota_provider_known(q, "mistral");
}

/* lt_quota_provider_known reads a per-thread copy: every change shows at once, in every thread */
static void provider_changes_seen(struct lt_quota *q)
{
	pthread_t t;
	void *known;

	CHECK(!lt_quota_provider_known(q, "mistral"));
	CHECK_EQ(lt_quota_provider_add(q, "mistral", err, sizeof(err)), 0);
	CHECK(lt_quota_provider_known(q, "mistral"));
	CHECK_EQ(pthread_create(&t, NULL, known_elsewhere, q), 0);
	pthread_join(t, &known);
	CHECK(known != NULL);
	CHECK_EQ(lt_quota_provider_del(q, "mistral", err, sizeof(err)), 0);
	CHECK(!lt_quota_provider_known(q, "mistral"));
	CHECK(lt_quota_provider_known(q, "openai"));
	CHECK_EQ(pthread_create(&t, NULL, known_elsewhere, q), 0);
	pthread_join(t, &known);
	CHECK(known == NULL);
}

static void limits_buckets_and_restart(void)
{
	struct lt_limit user = { 100, 10, SEC }, org = { 1000, 100, SEC }, big = { 200, 10, SEC };
	struct lt_view v;
	struct lt_slot_seen r1, rx;
	struct lt_store st;
	struct lt_quota *q;
	__u32 s1, s2, s3;
	__u64 now = lt_now_ns();
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-quota-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	q = open_q(&st);
	CHECK_EQ(lt_quota_provider_add(q, "openai", err, sizeof(err)), 0);
	CHECK(lt_quota_provider_known(q, "openai"));
	CHECK(!lt_quota_provider_known(q, "nope"));
	provider_changes_seen(q);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "USER", "*", &user, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &org, err, sizeof(err)), 0);
	CHECK(lt_quota_tier_exists(q, "USER"));

	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/u1", NULL, &s1, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/u1", NULL, &s2, err, sizeof(err)), 0);
	CHECK_EQ(s1, s2);
	CHECK_EQ(lt_quota_bucket(q, "o/openai/org1", NULL, &s3, err, sizeof(err)), 0);
	CHECK(s3 != s1);
	CHECK_EQ(lt_quota_bucket(q, "u/NOTIER/openai/u1", NULL, &s2, err, sizeof(err)), -ENOENT);

	CHECK_EQ(lt_quota_consume(q, s1, 60, now, &v, &r1), LT_ADMIT);
	CHECK_EQ(v.capacity, 100);
	/*
	 * An empty bucket restarts at ceil(now * rate): at the very same
	 * nanosecond one unit (2^-28 token here) is still owed, so 39 fit;
	 * under a nanosecond later, 40. Rounding never favours the caller.
	 */
	CHECK(v.remaining == 39 || v.remaining == 40);
	now += 1000; /* 1 us */
	CHECK_EQ(lt_quota_consume(q, s1, 41, now, &v, &rx), LT_DENY);
	CHECK_EQ(v.remaining, 40);
	/* 1 token at 10/s, less the 1 us already leaked, plus the owed unit */
	CHECK(v.retry_after_ns > 100000000ULL - 1000 - 2 && v.retry_after_ns <= 100000000ULL);
	CHECK_EQ(lt_quota_consume(q, s1, 101, now, &v, &rx), LT_TOO_BIG);
	CHECK_EQ(lt_quota_consume(q, s3, 1000, now, &v, &rx), LT_ADMIT); /* the default org quota */

	/* a live change keeps the level: 60 used of a bigger bucket */
	CHECK_EQ(lt_quota_limit_set(q, "tier", "USER", "*", &big, err, sizeof(err)), 0);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.capacity, 200);
	CHECK_EQ(v.remaining, 140);
	/* a provider-specific tier limit takes over from "*" */
	CHECK_EQ(lt_quota_limit_set(q, "tier", "USER", "openai", &user, err, sizeof(err)), 0);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.capacity, 100);
	CHECK_EQ(v.remaining, 40);

	/* a reservation made before a rate change is void: nothing comes back */
	CHECK_EQ(lt_quota_refund(q, &r1, 30, now), 0);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.remaining, 40);
	/* one made on the current rate is taken back whole (all or nothing) */
	CHECK_EQ(lt_quota_consume(q, s1, 30, now, &v, &rx), LT_ADMIT);
	lt_quota_undo(q, &rx, now);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.remaining, 40);
	{
		struct lt_usage u;

		lt_quota_usage(q, s1, &u);
		CHECK_EQ(u.admitted, 1); /* 60, and 30 that was taken back */
		CHECK_EQ(u.rejected, 1);
		CHECK_EQ(u.tokens, 60);
	}
	CHECK_EQ(lt_quota_buckets(q), 2);
	lt_quota_close(q);
	lt_store_close(&st);

	/* restart: same store, same (pinned) maps: everything resumes */
	q = open_q(&st);
	CHECK(lt_quota_provider_known(q, "openai"));
	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/u1", NULL, &s2, err, sizeof(err)), 0);
	CHECK_EQ(s2, s1);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.remaining, 40);
	CHECK_EQ(v.capacity, 100);
	/* deleting the provider-specific limit falls back to "*" (200), level kept */
	CHECK_EQ(lt_quota_limit_del(q, "tier", "USER", "openai", err, sizeof(err)), 0);
	lt_quota_peek(q, s1, now, &v);
	CHECK_EQ(v.capacity, 200);
	CHECK_EQ(v.remaining, 140);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

/* 20000 live buckets of one tier: a limit change rebases all of them, fast. */
static void live_change_at_scale(void)
{
	struct lt_limit a = { 1000, 10, SEC }, b = { 2000, 10, SEC };
	struct lt_view v;
	struct lt_slot_seen rx;
	struct lt_store st;
	struct lt_quota *q;
	char key[64];
	__u32 s, first = 0;
	__u64 t0;
	int i, fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-quota-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "T", "*", &a, err, sizeof(err)), 0);
	lt_store_begin(&st);
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "u/T/p/%d", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), 0);
		if (!i)
			first = s;
	}
	lt_store_commit(&st);
	CHECK_EQ(lt_quota_consume(q, first, 500, lt_now_ns(), &v, &rx), LT_ADMIT);
	t0 = lt_now_ns();
	CHECK_EQ(lt_quota_limit_set(q, "tier", "T", "*", &b, err, sizeof(err)), 0);
	printf("# rebased 20000 buckets in %llu ms\n",
	       (unsigned long long)((lt_now_ns() - t0) / 1000000));
	CHECK(lt_now_ns() - t0 < 2 * SEC);
	lt_quota_peek(q, first, lt_now_ns(), &v);
	CHECK_EQ(v.capacity, 2000);
	CHECK(v.remaining >= 1500 && v.remaining <= 1501);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(limits_buckets_and_restart);
	RUN(live_change_at_scale);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
