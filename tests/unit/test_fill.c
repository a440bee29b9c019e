// SPDX-License-Identifier: MIT
/*
 * test_fill.c - lt_quota_fullest, behind /metrics' lt_bucket_fill_ratio and the "tenant near
 * its limit" alert: the k fullest limited buckets, fullest first, each with the share of its
 * capacity in use; empty buckets are not listed, and fewer than k buckets give fewer rows.
 */
#include <unistd.h>
#include "lt_test.h"
#include "lt_slot.h"
#include "quota.h"
#include "units.h"

#define SEC 1000000000ULL

static struct lt_slot *slots;
static struct lt_rate *rates;
static struct lt_usage *usage;
static char err[256], dbpath[64];

static void the_fullest_buckets_come_first_with_their_share_in_use(void)
{
	/* 1000 tokens, 1 per hour: the levels hold still during the test */
	struct lt_limit lim = { 1000, 1, 3600 * SEC };
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	static const __u64 used[] = { 100, 950, 0, 500, 990, 10, 700 };
	struct lt_fill top[4], wide[16];
	struct lt_slot_seen res;
	struct lt_quota *q = NULL;
	struct lt_store st;
	struct lt_view v;
	char key[64];
	unsigned i, n;
	__u32 h;
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-fill-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	CHECK_EQ(lt_store_open(&st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, &st, &m, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_fullest(q, lt_now_ns(), top, 4), 0); /* no bucket yet */
	for (i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
		snprintf(key, sizeof(key), "o/p/org%u", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &h, err, sizeof(err)), 0);
		if (used[i])
			CHECK_EQ(lt_quota_consume(q, h, used[i], lt_now_ns(), &v, &res), LT_ADMIT);
	}
	n = lt_quota_fullest(q, lt_now_ns(), top, 4);
	CHECK_EQ(n, 4);
	CHECK(!strcmp(top[0].key, "o/p/org4"));
	CHECK(!strcmp(top[1].key, "o/p/org1"));
	CHECK(!strcmp(top[2].key, "o/p/org6"));
	CHECK(!strcmp(top[3].key, "o/p/org3"));
	/* remaining is rounded down (a bucket never shows room it does not have): + 1 token */
	CHECK(top[0].ratio >= 0.99 && top[0].ratio <= 0.991);
	CHECK(top[1].ratio >= 0.95 && top[1].ratio <= 0.951);
	CHECK(top[3].ratio >= 0.5 && top[3].ratio <= 0.501);
	/* room for all: the six that hold tokens, never the empty one */
	n = lt_quota_fullest(q, lt_now_ns(), wide, 16);
	CHECK_EQ(n, 6);
	for (i = 0; i < n; i++) {
		CHECK(strcmp(wide[i].key, "o/p/org2") != 0);
		CHECK(!i || wide[i - 1].ratio >= wide[i].ratio);
	}
	CHECK(!strcmp(wide[5].key, "o/p/org5"));
	CHECK_EQ(lt_quota_fullest(q, lt_now_ns(), wide, 0), 0);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(the_fullest_buckets_come_first_with_their_share_in_use);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
