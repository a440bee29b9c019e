// SPDX-License-Identifier: MIT
/*
 * test_quota_state.c - what happens to live buckets when the limits that
 * govern them go away: deleting a limit never makes a bucket unlimited (it
 * keeps its last limit and level until a limit governs it again), a restored
 * limit keeps the level, and after a restart on new maps such a bucket is
 * refused like any new one, never admitted as unlimited.
 */
#include <errno.h>
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

static void new_db(void)
{
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-qstate-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	memset(slots, 0, LT_MAX_SLOTS * sizeof(*slots));
	memset(rates, 0, LT_MAX_RATES * sizeof(*rates));
}

/* kind/name is the only limit governing key; it is deleted and restored. */
static void delete_and_restore(const char *kind, const char *name, const char *key,
			       const char *key2)
{
	struct lt_limit lim = { 100, 10, SEC }, bigger = { 200, 10, SEC };
	struct lt_view v;
	struct lt_slot_seen rx;
	struct lt_store st;
	struct lt_quota *q;
	__u32 s, s2;
	__u64 now = lt_now_ns();

	new_db();
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_set(q, kind, name, "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, key, NULL, &s, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_consume(q, s, 60, now, &v, &rx), LT_ADMIT);

	CHECK_EQ(lt_quota_limit_del(q, kind, name, "*", err, sizeof(err)), 0);
	/* the live bucket keeps its last limit and its level */
	lt_quota_peek(q, s, now, &v);
	CHECK(!v.unlimited);
	CHECK_EQ(v.capacity, 100);
	CHECK(v.remaining >= 39 && v.remaining <= 40);
	CHECK_EQ(lt_quota_consume(q, s, 1000000000000ULL, now, &v, &rx), LT_TOO_BIG);
	CHECK_EQ(lt_quota_consume(q, s, 41, now, &v, &rx), LT_DENY);
	/* the same bucket is found again, limited; a new one is refused */
	CHECK_EQ(lt_quota_bucket(q, key, NULL, &s2, err, sizeof(err)), 0);
	CHECK_EQ(s2, s);
	CHECK_EQ(lt_quota_bucket(q, key2, NULL, &s2, err, sizeof(err)), -ENOENT);

	/* a restart on the same (pinned) maps changes nothing */
	lt_quota_close(q);
	lt_store_close(&st);
	q = open_q(&st);
	lt_quota_peek(q, s, now, &v);
	CHECK(!v.unlimited);
	CHECK_EQ(v.capacity, 100);
	CHECK(v.remaining >= 39 && v.remaining <= 40);

	/* restoring the same limit keeps the level; a bigger one too */
	CHECK_EQ(lt_quota_limit_set(q, kind, name, "*", &lim, err, sizeof(err)), 0);
	lt_quota_peek(q, s, now, &v);
	CHECK_EQ(v.capacity, 100);
	CHECK(v.remaining >= 39 && v.remaining <= 40);
	CHECK_EQ(lt_quota_limit_del(q, kind, name, "*", err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, kind, name, "*", &bigger, err, sizeof(err)), 0);
	lt_quota_peek(q, s, now, &v);
	CHECK_EQ(v.capacity, 200);
	CHECK(v.remaining >= 139 && v.remaining <= 140);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

static void deleting_a_tier_limit_never_makes_live_buckets_unlimited(void)
{
	delete_and_restore("tier", "USER", "u/USER/openai/u1", "u/USER/openai/u2");
}

static void deleting_the_default_org_quota_never_makes_live_buckets_unlimited(void)
{
	delete_and_restore("org", "*", "o/openai/org1", "o/openai/org2");
}

/*
 * New maps (a reboot) under a store whose bucket lost its limit: there is no
 * last limit to keep, so the bucket is forgotten and refused like a new one.
 */
static void on_new_maps_a_bucket_without_limit_is_refused_not_unlimited(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_store st;
	struct lt_quota *q;
	__u32 s, other;

	new_db();
	q = open_q(&st);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "USER", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_set(q, "tier", "PRO", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/u1", NULL, &s, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "u/PRO/openai/u1", NULL, &other, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_limit_del(q, "tier", "USER", "*", err, sizeof(err)), 0);
	lt_quota_close(q);
	lt_store_close(&st);
	memset(slots, 0, LT_MAX_SLOTS * sizeof(*slots)); /* the maps are new */
	memset(rates, 0, LT_MAX_RATES * sizeof(*rates));
	q = open_q(&st);
	CHECK_EQ(lt_quota_bucket(q, "u/USER/openai/u1", NULL, &s, err, sizeof(err)), -ENOENT);
	CHECK_EQ(lt_quota_buckets(q), 1);
	/* the governed one is back on its limit */
	CHECK_EQ(lt_quota_bucket(q, "u/PRO/openai/u1", NULL, &s, err, sizeof(err)), 0);
	CHECK_EQ(s, other);
	CHECK(rates[lt_meta_rid(slots[s & (LT_MAX_SLOTS - 1)].meta)].period_ns != 0);
	lt_quota_close(q);
	lt_store_close(&st);
	unlink(dbpath);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(deleting_a_tier_limit_never_makes_live_buckets_unlimited);
	RUN(deleting_the_default_org_quota_never_makes_live_buckets_unlimited);
	RUN(on_new_maps_a_bucket_without_limit_is_refused_not_unlimited);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
