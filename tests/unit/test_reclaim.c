// SPDX-License-Identifier: MIT
/*
 * test_reclaim.c - bounded L7 state (#8 item 2). A small bucket table fills;
 * reclaim frees the buckets that have been empty for their idle time, never
 * one that still holds level (so pausing never resets a limit); a full table
 * is counted and recovers by itself; and a reclaimed slot given to another
 * key is never charged through an old handle or an old lt_keyidx (slot, gen),
 * even when the reassignment lands inside a decision.
 */
#include <errno.h>
#include <unistd.h>
#include "lt_test.h"

/* Acts inside a decider's read-validate window: reclaim + reassign the slot. */
struct lt_slot;
static void race_reassign(struct lt_slot *s);
#define LT_SLOT_RACE_HOOK(s) race_reassign(s)
#include "lt_slot.h"
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
	int fd;

	snprintf(dbpath, sizeof(dbpath), "/tmp/lt-reclaim-XXXXXX");
	fd = mkstemp(dbpath);
	close(fd);
	memset(slots, 0, LT_MAX_SLOTS * sizeof(*slots));
	memset(rates, 0, LT_MAX_RATES * sizeof(*rates));
	memset(usage, 0, LT_MAX_SLOTS * sizeof(*usage));
	CHECK_EQ(lt_store_open(st, dbpath, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_open(&q, st, &m, err, sizeof(err)), 0);
	return q;
}

static void close_q(struct lt_quota *q, struct lt_store *st)
{
	lt_quota_close(q);
	lt_store_close(st);
	unlink(dbpath);
}

static __u64 remaining(struct lt_quota *q, __u32 h)
{
	struct lt_view v;

	CHECK_EQ(lt_quota_peek(q, h, lt_now_ns(), &v), 0);
	return v.remaining;
}

static void a_full_table_reclaims_idle_empty_buckets_never_a_busy_one(void)
{
	struct lt_limit lim = { 100, 10, SEC }; /* 100 tokens, 10/s: 5 s to drain 50 */
	struct lt_quota_stats st;
	struct lt_view v;
	struct lt_slot_seen res;
	struct lt_store s;
	struct lt_quota *q = open_q(&s);
	__u32 h[8], busy, h9, again;
	char key[64];
	int i;

	lt_quota_set_limits(q, 8, 1 * SEC);
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "o/p/org%d", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &h[i], err, sizeof(err)), 0);
	}
	busy = h[3];
	CHECK_EQ(lt_quota_consume(q, busy, 50, lt_now_ns(), &v, &res), LT_ADMIT);
	/* the 9th: no free slot, so one reclaim pass runs: 7 idle empty ones go
	 * (made a moment ago, they are idle only since then: idle 0 for it) */
	lt_quota_set_limits(q, 8, 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/org8", NULL, &h9, err, sizeof(err)), 0);
	lt_quota_set_limits(q, 8, 1 * SEC);
	lt_quota_stats(q, &st);
	CHECK_EQ(st.reclaimed, 7);
	CHECK_EQ(st.buckets, 2);
	CHECK_EQ(st.table_full, 0);
	/* the one holding level kept its slot, its handle and its level */
	CHECK_EQ(lt_quota_bucket(q, "o/p/org3", NULL, &again, err, sizeof(err)), 0);
	CHECK_EQ(again, busy);
	CHECK(remaining(q, busy) >= 50 && remaining(q, busy) <= 51);
	/* the others' handles are dead: a decision on one says LT_FREED */
	CHECK_EQ(lt_quota_consume(q, h[0], 1, lt_now_ns(), &v, &res), LT_FREED);

	/* fill it with buckets that all hold level: the table is full for real */
	for (i = 9; i < 15; i++) {
		__u32 x;

		snprintf(key, sizeof(key), "o/p/org%d", i);
		CHECK_EQ(lt_quota_bucket(q, key, NULL, &x, err, sizeof(err)), 0);
		CHECK_EQ(lt_quota_consume(q, x, 10, lt_now_ns(), &v, &res), LT_ADMIT);
	}
	CHECK_EQ(lt_quota_consume(q, h9, 10, lt_now_ns(), &v, &res), LT_ADMIT);
	CHECK_EQ(lt_quota_bucket(q, "o/p/late", NULL, &again, err, sizeof(err)), -ENOSPC);
	CHECK(strstr(err, "full") != NULL);
	lt_quota_stats(q, &st);
	CHECK_EQ(st.table_full, 1);
	CHECK_EQ(st.buckets, 8);
	/* a pass now frees nothing: every bucket holds level */
	CHECK_EQ(lt_quota_reclaim(q, lt_now_ns(), 0), 0);
	CHECK(remaining(q, busy) >= 50 && remaining(q, busy) <= 51);
	/* 7 s later every bucket has drained for at least 1 s: all reclaimable */
	CHECK_EQ(lt_quota_reclaim(q, lt_now_ns() + 7 * SEC, 0), 8);
	CHECK_EQ(lt_quota_buckets(q), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/late", NULL, &again, err, sizeof(err)), 0);
	close_q(q, &s);
}

static void reclaimed_buckets_are_forgotten_by_the_store_too(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_store s;
	struct lt_quota *q = open_q(&s);
	struct lt_quota_maps m = { slots, rates, usage, -1 };
	__u32 a, b, c;

	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/a", NULL, &a, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/b", NULL, &b, err, sizeof(err)), 0);
	lt_quota_set_limits(q, 0, 0);
	CHECK_EQ(lt_quota_reclaim(q, lt_now_ns(), 0), 2);
	lt_quota_close(q);
	/* a restart: nothing comes back, and the freed slots are reused */
	CHECK_EQ(lt_quota_open(&q, &s, &m, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_buckets(q), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/c", NULL, &c, err, sizeof(err)), 0);
	CHECK((c & (LT_MAX_SLOTS - 1)) == (a & (LT_MAX_SLOTS - 1)) ||
	      (c & (LT_MAX_SLOTS - 1)) == (b & (LT_MAX_SLOTS - 1)));
	CHECK(c != a && c != b); /* same slot, new owner generation */
	close_q(q, &s);
}

/*
 * A bucket is made for a decision that follows at once (a gateway's POST
 * /admin/buckets, then its CAS): the sweep must not free it in between. It
 * started at tat 0, "empty since boot", so any sweep after its making found
 * it idle for token.bucket_idle and freed it: the gateway's first request
 * for a new user got 503 ("the agent made the bucket but lt_keyidx does not
 * show it"). Its idle time starts at its making.
 */
static void a_new_bucket_is_idle_only_from_its_making(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_slot_seen res;
	struct lt_view v;
	struct lt_store s;
	struct lt_quota *q = open_q(&s);
	__u32 used, unused, again;
	__u64 now;

	lt_quota_set_limits(q, 0, 1 * SEC);
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/used", NULL, &used, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/unused", NULL, &unused, err, sizeof(err)), 0);
	now = lt_now_ns();
	/* the sweep lands right after the making, before the first decision */
	CHECK_EQ(lt_quota_reclaim(q, now, 0), 0);
	CHECK_EQ(lt_quota_buckets(q), 2);
	CHECK_EQ(lt_quota_consume(q, used, 1, now, &v, &res), LT_ADMIT);
	CHECK_EQ(lt_quota_bucket(q, "o/p/unused", NULL, &again, err, sizeof(err)), 0);
	CHECK_EQ(again, unused);
	/* both empty and idle for 1 s later on (1 token drains in 0.1 s): both go */
	CHECK_EQ(lt_quota_reclaim(q, now + 2 * SEC, 0), 2);
	CHECK_EQ(lt_quota_buckets(q), 0);
	close_q(q, &s);
}

/* A stale (slot, gen), as a gateway's lt_keyidx cache would hold it. */
static void a_stale_cached_slot_never_charges_the_new_owner(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_view v;
	struct lt_slot_seen res;
	struct lt_store s;
	struct lt_quota *q = open_q(&s);
	__u32 old, nw, slot, gen;

	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/old", NULL, &old, err, sizeof(err)), 0);
	slot = old & (LT_MAX_SLOTS - 1);
	gen = usage[slot].gen; /* what lt_keyidx said for o/p/old */
	lt_quota_set_limits(q, 0, 0);
	CHECK_EQ(lt_quota_reclaim(q, lt_now_ns(), 0), 1);
	CHECK_EQ(lt_slot_consume_owned(slots, rates, usage, slot, gen, ~0U, lt_now_ns(), 1, &res),
		 LT_FREED);
	CHECK_EQ(lt_quota_bucket(q, "o/p/new", NULL, &nw, err, sizeof(err)), 0);
	CHECK_EQ(nw & (LT_MAX_SLOTS - 1), slot); /* the same slot, reused */
	CHECK_EQ(lt_slot_consume_owned(slots, rates, usage, slot, gen, ~0U, lt_now_ns(), 7, &res),
		 LT_FREED);
	CHECK_EQ(lt_quota_consume(q, old, 7, lt_now_ns(), &v, &res), LT_FREED);
	CHECK_EQ(remaining(q, nw), 100); /* nothing reached the new owner */
	close_q(q, &s);
}

/* The reassignment lands between a decider's read and its CAS. */
static struct lt_quota *race_q;
static int race_armed;
static __u32 race_slot;

static void race_reassign(struct lt_slot *s)
{
	__u32 oid, rid;
	int was_free;

	if (!race_armed || s != &slots[race_slot])
		return;
	race_armed = 0;
	/* what the agent does: free (empty, idle 0), then give it to a new key */
	CHECK_EQ(lt_slot_free_if_empty(slots, rates, race_slot, lt_now_ns(), 0, &oid), 0);
	__atomic_store_n(&usage[race_slot].gen, usage[race_slot].gen + 1, __ATOMIC_RELEASE);
	CHECK_EQ(lt_slot_assign(slots, race_slot, oid, &rid, &was_free), 0);
}

static void a_reassignment_inside_a_decision_is_taken_back(void)
{
	struct lt_limit lim = { 100, 10, SEC };
	struct lt_slot_seen res, seen;
	struct lt_store s;
	struct lt_quota *q = open_q(&s);
	__u32 h, gen;

	race_q = q;
	CHECK_EQ(lt_quota_limit_set(q, "org", "*", "*", &lim, err, sizeof(err)), 0);
	CHECK_EQ(lt_quota_bucket(q, "o/p/x", NULL, &h, err, sizeof(err)), 0);
	race_slot = h & (LT_MAX_SLOTS - 1);
	gen = usage[race_slot].gen;
	race_armed = 1;
	/* the decider read the old word; the slot changes owner; its CAS fails,
	 * it retries on the new owner's word and admits there: then it must see
	 * the new gen and give the tokens back */
	CHECK_EQ(lt_slot_consume_owned(slots, rates, usage, race_slot, gen, ~0U, lt_now_ns(), 40,
				       &res),
		 LT_FREED);
	CHECK(!race_armed);
	CHECK_EQ(lt_slot_peek(slots, rates, race_slot, lt_now_ns(), &seen), 0);
	CHECK_EQ(lt_level_units(seen.tat, lt_now_ns(), &seen.rate), 0);
	close_q(q, &s);
}

int main(void)
{
	slots = calloc(LT_MAX_SLOTS, sizeof(*slots));
	rates = calloc(LT_MAX_RATES, sizeof(*rates));
	usage = calloc(LT_MAX_SLOTS, sizeof(*usage));
	RUN(a_full_table_reclaims_idle_empty_buckets_never_a_busy_one);
	RUN(reclaimed_buckets_are_forgotten_by_the_store_too);
	RUN(a_new_bucket_is_idle_only_from_its_making);
	RUN(a_stale_cached_slot_never_charges_the_new_owner);
	RUN(a_reassignment_inside_a_decision_is_taken_back);
	free(slots);
	free(rates);
	free(usage);
	return lt_t_done();
}
